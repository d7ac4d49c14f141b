"""mmrec: Python bindings of libmmrec (cffi, ABI mode, no compiled code).

    import numpy as np, mmrec
    model = mmrec.Model(seed=1)
    tower = model.mlp("tower", sizes=[32, 64, 1], activation="relu")
    opt = mmrec.Optimizer(model, "adamw", lr=3e-3)
    with mmrec.Tape() as tape:
        for step in range(100):
            x = tape.wrap(features)                 # no copy
            y = tower.forward(tape, x)
            loss = mmrec.ops.loss_bce_logits(tape, y, targets)
            tape.backward(loss)
            opt.step()
            tape.reset()                            # x, y, loss go stale

Errors raise mmrec.Error subclasses carrying .status, .status_name and the
library's message.  The library is found through $MMREC_LIBRARY, the
package folder, the build tree, then the system loader (see mmrec._ffi).
"""
from ._ffi import ffi, lib, LIBRARY_PATH, LibraryVersionError, CONSTANTS, HEADER_VERSION
from .errors import (Error, InvalidArgument, ShapeError, RangeError, NotFound, StateError,
                     StaleTensorError, Unsupported, OutOfMemory, FileError, FormatError,
                     NumericError)
from .config import Config
from .tensor import Tensor
from .tape import Tape
from .model import Model, Module
from .optim import Optimizer
from .rng import Rng
from .data import Interactions
from .graph import Graph
from .cache import Cache, CacheWriter
from .index import Index
from .metrics import eval_full_ranking
from ._call import call
from . import ops

globals().update(CONSTANTS)

__version__ = ffi.string(lib.mmrec_version_string()).decode()


def version():
    """The loaded library's version string ("0.2.0")."""
    return ffi.string(lib.mmrec_version_string()).decode()


def set_num_threads(n):
    """Sets the library's thread count (global; call before starting threads)."""
    from .errors import check
    check(lib.mmrec_set_num_threads(int(n)))


def get_num_threads():
    """The library's thread count."""
    return lib.mmrec_get_num_threads()


def set_check_finite(enabled):
    """Turns the check-finite mode on or off (process-wide): every op then
    checks its output and backward every gradient a node wrote, raising
    the MMREC_ENUMERIC error that names the op and the first bad index."""
    from .errors import check
    check(lib.mmrec_set_check_finite(1 if enabled else 0))


def get_check_finite():
    """Whether the check-finite mode is on."""
    return bool(lib.mmrec_get_check_finite())
