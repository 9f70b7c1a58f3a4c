"""The accelerator: numba kernels that replace named core ops, and process tuning.

The core (`minigrad/`) is plain NumPy and runs alone. This package registers, in
the core's one dispatch table (`minigrad.autograd.set_faster`), a faster Function
for each op listed in `ops.ACCELERATED`; `Function.apply` then runs that one
instead. Each replacement takes the same inputs and options as its core op and
gives the same values (the tests hold them together: float64, relative 1e-12,
forward and backward).

The switch: `MINIGRAD_KERNELS=numba|numpy` (read at import, default numba), or at
run time `set_kernel_mode("numpy")` / `with kernel_mode("numpy"): ...`. Where numba
is not installed the mode is always "numpy" and every op runs its core code.

Nothing compiles at import: numba itself is imported by the first accelerated op
that runs, and each kernel compiles on its first call and is cached on disk
(`cache=True`). numba's cache checks only the timestamp of the file a function is
defined in: after editing `fast_exp.py`, `tiles.py`, `register_tile.py` or
`vector_copy.py`, delete this folder's `__pycache__` so the kernels that inline them
recompile.

Process tuning (`tune_process`, in `tuning.py`) is separate and never automatic:
entry points that want it call it once.
"""

import contextlib
import importlib.util
import os

from .. import autograd
from .tuning import tune_process

MODES = ("numba", "numpy")


def _validated(mode, where):
    if mode not in MODES:
        raise ValueError(f"{where}: kernel mode must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def numba_available() -> bool:
    """True when numba can be imported (the accelerator is optional)."""
    try:
        return importlib.util.find_spec("numba") is not None
    except ValueError:  # sys.modules["numba"] is None: blocked on purpose
        return False


_mode = "numpy"


def get_kernel_mode() -> str:
    """The active path: 'numba' (accelerated ops) or 'numpy' (every op its core code)."""
    return _mode


def set_kernel_mode(mode: str) -> None:
    """Select the path for every later op: 'numba' or 'numpy'. 'numba' without numba
    installed stays on 'numpy'."""
    global _mode
    _mode = "numba" if _validated(mode, "set_kernel_mode") == "numba" and numba_available() else "numpy"
    from . import ops

    autograd.set_faster(ops.ACCELERATED if _mode == "numba" else {})


@contextlib.contextmanager
def kernel_mode(mode: str):
    """Run a block with the given path, restoring the previous one after."""
    previous = get_kernel_mode()
    set_kernel_mode(mode)
    try:
        yield
    finally:
        set_kernel_mode(previous)


set_kernel_mode(_validated(os.environ.get("MINIGRAD_KERNELS", "numba"), "MINIGRAD_KERNELS"))

__all__ = ["MODES", "get_kernel_mode", "set_kernel_mode", "kernel_mode", "numba_available", "tune_process"]
