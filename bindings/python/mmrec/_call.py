"""The generic call path: Python arguments in, library call, status checked,
outputs out.

call("mmrec_matmul", tape, a, b, flags) converts each argument by the C
parameter's type, calls the function, raises the status's Error on failure
and returns the trailing output parameters not given (one value, a tuple,
or None).  Conversions, by C parameter type:

- mmrec_tensor *: a Tensor (checked live: a stale tape tensor raises
  StaleTensorError before anything reaches the library), a float32 numpy
  array (wrapped on the call's tape without a copy, read-only), or None.
- mmrec_tensor *const *: a sequence of those.
- other handles (mmrec_model *, mmrec_graph *, ...): the wrapping object.
- a config struct pointer: a Config, a dict of fields, or None for the
  defaults (see config.py).
- const char *: str (encoded as UTF-8) or bytes.
- const float * / const int64_t * / ...: a numpy array or sequence, copied
  only when its dtype or layout differ from the C type.
- float * / int64_t * / ... written by the library: a numpy array of
  exactly that dtype, C-contiguous and writeable (never copied: a copy would
  lose the library's writes); TypeError / ValueError naming the parameter
  otherwise.
- enums: the enumerator's name without prefix ("relu") or an int.

Outputs: mmrec_tensor ** gives a Tensor owned by the call's tape; a number
gives a Python number; a string pointer gives str; other pointers come back
as cdata.  Arrays, caller-owned tensors and handles (a Graph, a Cache)
passed to a call on a tape stay referenced, and their library objects
alive even if closed, until that tape's reset, since the step may read
them in backward.
"""
import re

import numpy as np

from ._ffi import ffi, lib
from ._cdef import CDEF
from .config import Config, enum_value, make_config, _NP_OF_C
from .errors import check
from .tensor import Tensor

__all__ = ["call", "bind", "params_of"]


def _parse_params():
    text = re.sub(r"\s+", " ", CDEF)
    out = {}
    for m in re.finditer(r"\b(mmrec_[a-z0-9_]+)\(([^()]*)\);", text):
        decls = [p.strip() for p in m.group(2).split(",")]
        if decls == ["void"]:
            decls = []
        out[m.group(1)] = [(d, re.search(r"([A-Za-z_][A-Za-z0-9_]*)$", d).group(1))
                           for d in decls]
    return out


_PARAMS = _parse_params()
_PLANS = {}
_TENSOR = ffi.typeof("mmrec_tensor *")
_TENSOR_PP = ffi.typeof("mmrec_tensor **")
_TAPE = ffi.typeof("mmrec_tape *")


def params_of(fname):
    """[(C declaration, name), ...] of a library function's parameters."""
    return _PARAMS[fname]


class _Plan:
    __slots__ = ("fname", "func", "types", "decls", "names", "tape_index", "outs")

    def __init__(self, fname):
        self.fname = fname
        self.func = getattr(lib, fname)
        self.types = ffi.typeof(self.func).args
        self.decls = [d for d, _ in _PARAMS[fname]]
        self.names = [n for _, n in _PARAMS[fname]]
        self.tape_index = next((i for i, t in enumerate(self.types) if t is _TAPE), None)
        self.outs = {}  # number of inputs given -> [(ctype, kind)] of the outputs

    def outputs(self, given):
        """[(pointer ctype, kind)] of the parameters after `given` inputs."""
        res = self.outs.get(given)
        if res is None:
            res = []
            for i in range(given, len(self.types)):
                t, decl = self.types[i], self.decls[i]
                if t.kind != "pointer" or (decl.startswith("const") and "**" not in decl):
                    raise TypeError("%s: missing argument %s" % (self.fname, self.names[i]))
                item = t.item
                if item is _TENSOR:
                    kind = "tensor"
                elif item.kind == "pointer" and item.item.cname == "char":
                    kind = "string"
                else:
                    kind = "cdata"
                res.append((t, kind))
            self.outs[given] = res
        return res


def _plan(fname):
    p = _PLANS.get(fname)
    if p is None:
        p = _PLANS[fname] = _Plan(fname)
    return p


def _array_arg(ctype, decl, value, what, keep):
    """A pointer to numpy/sequence data for a primitive pointer parameter."""
    item = ctype.item
    dtype = _NP_OF_C.get(item.cname)
    const = decl.lstrip().startswith("const") and "* const" not in decl
    if dtype is None:
        raise TypeError("%s: cannot pass %s as %s" % (what, type(value).__name__, ctype.cname))
    if not const:
        if not isinstance(value, np.ndarray):
            raise TypeError("%s: expected a numpy array of %s (the library writes it), got %s"
                            % (what, np.dtype(dtype).name, type(value).__name__))
        if value.dtype != dtype:
            raise TypeError("%s: expected dtype %s, got %s"
                            % (what, np.dtype(dtype).name, value.dtype))
        if not value.flags.c_contiguous:
            raise ValueError("%s: the array must be C-contiguous" % what)
        if not value.flags.writeable:
            raise ValueError("%s: the array must be writeable" % what)
        keep.append(value)
        return ffi.cast(ctype, ffi.from_buffer(value, require_writable=True))
    arr = np.ascontiguousarray(value, dtype=dtype)
    keep.append(arr)
    return ffi.cast(ctype, ffi.from_buffer(arr))


def _convert(plan, i, value, tape, keep):
    ctype = plan.types[i]
    what = "%s: %s" % (plan.fname, plan.names[i])
    kind = ctype.kind
    if kind == "pointer":
        if value is None:
            return ffi.NULL
        item = ctype.item
        if ctype is _TENSOR:
            if isinstance(value, Tensor):
                return value._cptr(tape)
            if isinstance(value, np.ndarray) and tape is not None:
                return tape.wrap(value)._cptr(tape)
            raise TypeError("%s: expected a Tensor, got %s" % (what, type(value).__name__))
        if item.kind == "pointer" and item.item is _TENSOR.item:  # mmrec_tensor *const *
            ptrs = [_convert_tensor(v, what, tape) for v in value]
            arr = ffi.new("mmrec_tensor *[]", ptrs)
            keep.append(arr)
            return arr
        if hasattr(value, "_handle"):
            ptr = value._handle()
            if ffi.typeof(ptr) is not ctype:
                raise TypeError("%s: expected a %s, got a %s"
                                % (what, ctype.item.cname, type(value).__name__))
            if tape is not None and hasattr(value, "_pin") and value is not tape:
                tape._step_pin(value)  # the step's record may use it until reset
            return ptr
        if isinstance(value, ffi.CData):
            return value
        if item.kind == "struct":
            if item.fields is not None and any(f == "struct_size" for f, _ in item.fields):
                cfg = make_config(item.cname, value, what)
                keep.append(cfg)
                return cfg.cdata
            raise TypeError("%s: expected a %s object" % (what, item.cname))
        if item.cname == "char":
            if isinstance(value, str):
                value = value.encode("utf-8")
            if not isinstance(value, bytes):
                raise TypeError("%s: expected a str, got %s" % (what, type(value).__name__))
            return value
        if item.kind == "primitive":
            return _array_arg(ctype, plan.decls[i], value, what, keep)
        raise TypeError("%s: cannot convert %s to %s" % (what, type(value).__name__, ctype.cname))
    if kind == "enum":
        return enum_value(ctype, value, what)
    if kind == "function":
        if value is None:
            return ffi.NULL
        return value
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _convert_tensor(value, what, tape):
    if isinstance(value, np.ndarray) and tape is not None:
        value = tape.wrap(value)
    if not isinstance(value, Tensor):
        raise TypeError("%s: expected Tensors, got %s" % (what, type(value).__name__))
    return value._cptr(tape)


def call(fname, *args, owner=None):
    """Calls the library function `fname` with `args` converted (see the
    module docstring); the parameters after the given ones are outputs.
    `owner`: the object that owns output handles other than tape tensors
    (kept alive by them).  Returns the outputs: None, one value or a tuple.
    Raises the status's Error on failure, TypeError / ValueError naming the
    parameter for an argument that cannot be converted."""
    plan = _PLANS.get(fname) or _plan(fname)
    types = plan.types
    if len(args) > len(types):
        raise TypeError("%s takes at most %d arguments (%d given)"
                        % (fname, len(types), len(args)))
    tape = None
    ti = plan.tape_index
    if ti is not None and ti < len(args) and args[ti] is not None:
        tape = args[ti]
        if not hasattr(tape, "_step_keep"):
            raise TypeError("%s: %s: expected a Tape, got %s"
                            % (fname, plan.names[ti], type(tape).__name__))
    keep = []
    cargs = [_convert(plan, i, v, tape, keep) for i, v in enumerate(args)]
    outs = []
    for t, kind in plan.outputs(len(args)):
        o = ffi.new(t)
        outs.append((o, kind))
        cargs.append(o)
    status = plan.func(*cargs)
    if status:
        check(status)
    if tape is not None and keep:
        tape._step_keep.extend(keep)
    res = []
    for o, kind in outs:
        v = o[0]
        if kind == "tensor":
            if v == ffi.NULL:
                res.append(None)
            elif tape is not None:
                res.append(Tensor._of_tape(v, tape))
            else:
                res.append(Tensor._borrowed(v, owner))
        elif kind == "string":
            res.append(None if v == ffi.NULL else ffi.string(v).decode("utf-8"))
        else:
            res.append(v)
    if not res:
        return None
    return res[0] if len(res) == 1 else tuple(res)


_COUNT_TYPES = ("size_t", "int", "int64_t")


def _signature(fname):
    """[(name, role)] of the inputs: role "arg", "count" (a length right after
    an array parameter) or "cfg:<struct>" (a config pointer)."""
    params = list(_PARAMS[fname])
    while params and "**" in params[-1][0] and params[-1][1].endswith("out"):
        params.pop()
    spec = []
    for i, (decl, name) in enumerate(params):
        typ = decl[:-len(name)].strip()
        prev = params[i - 1][0] if i else ""
        if (typ in _COUNT_TYPES and name.startswith("n") and i
                and "*" in prev and "cfg" not in prev
                and not re.fullmatch(r"(const )?mmrec_\w+ \*\w+", prev)):
            spec.append((name, "count"))
        elif name == "cfg" and typ.endswith("_config *"):
            spec.append((name, "cfg:" + typ.replace("const ", "")[:-2].strip()))
        else:
            spec.append((name, "arg"))
    return spec


def bind(fname, owner=None):
    """A Python function for the library function `fname`: its inputs in
    order (by position or by their C names as keywords), with two
    conveniences: a count parameter right after an array parameter (n,
    n_rows, num_ids, ...) is filled with the array's length unless given
    by keyword, and a config parameter may be left out (the defaults) and
    its fields given as keywords.  Returns the outputs as call() does."""
    spec = _signature(fname)
    pyname = fname[len("mmrec_"):]

    def fn(*args, **kw):
        args = list(args)
        cargs = []
        for name, role in spec:
            if role == "arg":
                if name in kw:
                    cargs.append(kw.pop(name))
                elif args:
                    cargs.append(args.pop(0))
                else:
                    raise TypeError("%s() missing argument %r" % (pyname, name))
            elif role == "count":
                if name in kw:
                    cargs.append(kw.pop(name))
                else:
                    prev = cargs[-1]
                    cargs.append(0 if prev is None else
                                 prev.size if isinstance(prev, np.ndarray) else len(prev))
            else:
                cfg = kw.pop(name, None)
                if cfg is None and args:
                    cfg = args.pop(0)
                cfg = make_config(role[4:], cfg, "%s: %s" % (fname, name))
                for k, v in kw.items():
                    setattr(cfg, k, v)
                kw = {}
                cargs.append(cfg)
        if args:
            raise TypeError("%s() takes %d arguments (%d extra given)"
                            % (pyname, len(cargs), len(args)))
        if kw:
            raise TypeError("%s() got an unexpected keyword %r" % (pyname, next(iter(kw))))
        return call(fname, *cargs, owner=owner)

    fn.__name__ = fn.__qualname__ = pyname
    fn.arg_names = [n for n, r in spec if r == "arg"]
    fn.__doc__ = "%s(%s): calls %s; returns its outputs." % (
        pyname, ", ".join(fn.arg_names), fname)
    return fn
