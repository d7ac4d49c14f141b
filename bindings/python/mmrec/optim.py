"""Optimizers over a model's trainable parameters."""
from ._ffi import ffi, lib
from ._handle import Handle
from ._call import call
from .config import Config
from .errors import check

__all__ = ["Optimizer"]


class Optimizer(Handle):
    """SGD, Adam, AdamW or Adagrad over `model`'s trainable parameters.

    Optimizer(model, "adamw", lr=3e-3, weight_decay=0.01, ...): the fields of
    mmrec_optimizer_config as keywords (type names: "sgd", "adam", "adamw",
    "adagrad").  Keeps the Model alive."""

    _destroy_fn = "mmrec_optimizer_destroy"
    _kind = "Optimizer"

    def __init__(self, model, type="adam", cfg=None, **fields):
        config = cfg if isinstance(cfg, Config) else Config("mmrec_optimizer_config",
                                                            type=type, **dict(cfg or {}))
        for k, v in fields.items():
            setattr(config, k, v)
        ptr = call("mmrec_optimizer_create", model, config)
        super().__init__(ptr)
        self.model = model

    def step(self):
        """Updates every trainable parameter, then clears the gradients."""
        check(lib.mmrec_optimizer_step(self._handle()))

    def add_group(self, prefix, lr, weight_decay=0.0):
        """Moves the parameters under `prefix` into a new group; returns its id."""
        out = ffi.new("int *")
        check(lib.mmrec_optimizer_add_group(self._handle(), prefix.encode(), lr,
                                            weight_decay, out))
        return out[0]

    def set_lr(self, lr, group=0):
        """Sets a group's learning rate from the next step on."""
        check(lib.mmrec_optimizer_set_lr(self._handle(), group, lr))

    def get_lr(self, group=0):
        """A group's current learning rate."""
        out = ffi.new("float *")
        check(lib.mmrec_optimizer_get_lr(self._handle(), group, out))
        return out[0]

    lr = property(get_lr, set_lr, doc="Group 0's learning rate.")

    @property
    def step_count(self):
        """Number of successful steps (restored by a checkpoint)."""
        out = ffi.new("uint64_t *")
        check(lib.mmrec_optimizer_step_count(self._handle(), out))
        return out[0]

    @property
    def skipped_steps(self):
        """Steps skipped for a NaN or infinite gradient (nonfinite_grads=MMREC_NONFINITE_SKIP)."""
        out = ffi.new("uint64_t *")
        check(lib.mmrec_optimizer_skipped_steps(self._handle(), out))
        return out[0]

    @property
    def last_grad_norm(self):
        """The global gradient norm seen by the last step, before clipping."""
        out = ffi.new("float *")
        check(lib.mmrec_optimizer_last_grad_norm(self._handle(), out))
        return out[0]

    def save(self, path):
        """Saves the model and this optimizer's state (mmrec_checkpoint_save)."""
        self.model.save(path, self)

    def load(self, path):
        """Loads a checkpoint into the model and this optimizer."""
        self.model.load(path, self)
