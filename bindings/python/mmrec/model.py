"""The model (named parameters and the modules that own them) and modules.

Module constructors are generated from the library: for every
mmrec_<kind>_create(model, name, cfg, &out) there is Model.<kind>(name,
**fields), which fills mmrec_<kind>_config through its init function and
then the keywords (model.linear("fc", in_dim=8, out_dim=4, bias=True);
enum fields take names: activation="relu").  A Module's methods are the
library's mmrec_<kind>_<verb>(module, ...) functions: module.forward(tape,
x) calls mmrec_<kind>_forward and returns Tensors (counts after arrays are
filled in and configs taken from keywords, as for mmrec.ops).
"""
import re

import numpy as np

from ._ffi import ffi, lib
from ._handle import Handle
from ._call import bind, call, _PARAMS
from .config import Config
from .errors import StateError, check
from .tensor import Tensor, _shape_arg

__all__ = ["Model", "Module", "MODULE_KINDS"]


def _module_kinds():
    kinds = []
    for fname, params in _PARAMS.items():
        m = re.fullmatch(r"mmrec_([a-z0-9_]+)_create", fname)
        if (m and len(params) == 4 and params[0][0].startswith("mmrec_model")
                and params[2][0].endswith("_config *cfg") and params[3][0] == "mmrec_module **out"):
            kinds.append(m.group(1))
    return tuple(kinds)


MODULE_KINDS = _module_kinds()


class Module:
    """A module created into a Model (it belongs to the model and dies with
    it; the Module object keeps the Model alive).  Attribute access maps to
    the library: module.forward(tape, x) is mmrec_<kind>_forward(module,
    tape, x, &out); module.call("lora_attach", cfg) any other function whose
    first parameter is the module."""

    def __init__(self, model, ptr, kind, name):
        self._model = model
        self._ptr = ptr
        self.kind = kind
        self.name = name

    def _handle(self):
        if self._model._closed:
            raise StateError("module %r used after its model was closed" % self.name)
        return self._ptr

    def call(self, fname, *args, **kw):
        """Calls mmrec_<fname> (or `fname` as given when it starts with
        "mmrec_") with this module first, then `args` (config fields as
        keywords: linear.call("lora_attach", rank=4)); returns the outputs."""
        if not fname.startswith("mmrec_"):
            fname = "mmrec_" + fname
        return bind(fname, owner=self._model)(self, *args, **kw)

    def __getattr__(self, verb):
        if verb.startswith("_"):
            raise AttributeError(verb)
        fname = "mmrec_%s_%s" % (self.kind, verb)
        if fname not in _PARAMS:
            raise AttributeError("%s module has no %s (no %s in the library)"
                                 % (self.kind, verb, fname))

        fn = bind(fname, owner=self._model)

        def method(*args, **kw):
            return fn(self, *args, **kw)
        method.__name__ = verb
        method.__doc__ = "Calls %s(module, %s); returns its outputs." % (
            fname, ", ".join(fn.arg_names[1:]))
        return method

    def params(self):
        """{name: Tensor} of this module's parameters (names under its own)."""
        return {k: v for k, v in self._model.params().items()
                if k == self.name or k.startswith(self.name + ".")}

    def __repr__(self):
        return "<mmrec.Module %s %r>" % (self.kind, self.name)


class Model(Handle):
    """A registry of named parameters and of the modules that own them.

    Parameters (Tensors) and Modules keep the Model alive; close() releases
    it (optimizers and tapes that refer to it keep the library object until
    they let go)."""

    _destroy_fn = "mmrec_model_destroy"
    _kind = "Model"

    def __init__(self, seed=None):
        out = ffi.new("mmrec_model **")
        check(lib.mmrec_model_create(out))
        super().__init__(out[0])
        self.modules = {}
        if seed is not None:
            self.seed(seed)

    def seed(self, seed):
        """Reseeds the generator that initializes modules created afterwards."""
        check(lib.mmrec_model_seed(self._handle(), int(seed)))

    # ---- modules ----
    def module(self, kind, name, cfg=None, **fields):
        """Creates a module mmrec_<kind>_create(model, name, cfg): the config
        is `cfg` (a Config or dict) or the defaults, then `fields`
        (unknown names raise TypeError).  Returns the Module."""
        fname = "mmrec_%s_create" % kind
        if kind not in MODULE_KINDS:
            raise ValueError("kind: no module %r (one of %s)" % (kind, ", ".join(MODULE_KINDS)))
        config = cfg if isinstance(cfg, Config) else Config("mmrec_%s_config" % kind,
                                                            **dict(cfg or {}, **fields))
        if isinstance(cfg, Config):
            for k, v in fields.items():
                setattr(config, k, v)
        ptr = call(fname, self, name, config)
        mod = Module(self, ptr, kind, name)
        self.modules[name] = mod
        return mod

    # ---- parameters ----
    def add_param(self, name, shape):
        """Adds a zero-filled trainable parameter; returns its Tensor."""
        shape, cshape = _shape_arg(shape)
        out = ffi.new("mmrec_tensor **")
        check(lib.mmrec_model_add_param(self._handle(), name.encode(), len(shape), cshape, out))
        return Tensor._borrowed(out[0], self)

    def param(self, name):
        """The parameter called `name` (NotFound if none)."""
        out = ffi.new("mmrec_tensor **")
        check(lib.mmrec_model_param(self._handle(), name.encode(), out))
        return Tensor._borrowed(out[0], self)

    def params(self):
        """{name: Tensor} of every parameter, in creation order."""
        n = ffi.new("size_t *")
        ptr = self._handle()
        check(lib.mmrec_model_num_params(ptr, n))
        name, out = ffi.new("const char **"), ffi.new("mmrec_tensor **")
        res = {}
        for i in range(n[0]):
            check(lib.mmrec_model_param_at(ptr, i, name, out))
            res[ffi.string(name[0]).decode()] = Tensor._borrowed(out[0], self)
        return res

    def freeze(self, prefix=""):
        """Freezes the parameters under `prefix`; returns how many matched."""
        n = ffi.new("size_t *")
        check(lib.mmrec_model_freeze(self._handle(), prefix.encode(), n))
        return n[0]

    def unfreeze(self, prefix=""):
        """Unfreezes the parameters under `prefix`; returns how many matched."""
        n = ffi.new("size_t *")
        check(lib.mmrec_model_unfreeze(self._handle(), prefix.encode(), n))
        return n[0]

    def param_count(self):
        """(trainable, total) element counts."""
        t, a = ffi.new("size_t *"), ffi.new("size_t *")
        check(lib.mmrec_model_param_count(self._handle(), t, a))
        return t[0], a[0]

    def zero_grad(self):
        """Zeroes every trainable parameter's gradient."""
        check(lib.mmrec_model_zero_grad(self._handle()))

    def _flat(self, fname, out):
        n = self.param_count()[0]
        if out is None:
            out = np.empty(n, dtype=np.float32)
        call(fname, self, out, out.size)
        return out

    def export_params(self, out=None):
        """The trainable parameters as one flat float32 array (a copy; into
        `out` when given: float32, contiguous, trainable-count long)."""
        return self._flat("mmrec_model_export_params", out)

    def export_grads(self, out=None):
        """The trainable gradients as one flat float32 array (a copy)."""
        return self._flat("mmrec_model_export_grads", out)

    def import_params(self, values):
        """Overwrites the trainable parameters from a flat array (copied in)."""
        values = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
        call("mmrec_model_import_params", self, values, values.size)

    def import_grads(self, values):
        """Overwrites the trainable gradients from a flat array (copied in)."""
        values = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
        call("mmrec_model_import_grads", self, values, values.size)

    # ---- files ----
    def save(self, path, optimizer=None):
        """Saves every parameter (and the optimizer's state when given) to
        `path`, crash-safely (mmrec_checkpoint_save)."""
        call("mmrec_checkpoint_save", self, optimizer, str(path))

    def load(self, path, optimizer=None):
        """Loads a checkpoint into this model (and the optimizer when given);
        on any error nothing changed (mmrec_checkpoint_load)."""
        call("mmrec_checkpoint_load", self, optimizer, str(path))

    def __repr__(self):
        if self._closed:
            return "<mmrec.Model closed>"
        t, a = self.param_count()
        return "<mmrec.Model %d params, %d trainable elements of %d>" % (
            len(self.params()), t, a)


def _constructor(kind):
    def make(self, name, cfg=None, **fields):
        return self.module(kind, name, cfg, **fields)
    make.__name__ = kind
    make.__qualname__ = "Model." + kind
    make.__doc__ = ("Creates a %s module (mmrec_%s_create): fields of mmrec_%s_config as "
                    "keywords; returns the Module." % (kind, kind, kind))
    return make


for _k in MODULE_KINDS:
    if not hasattr(Model, _k):
        setattr(Model, _k, _constructor(_k))
