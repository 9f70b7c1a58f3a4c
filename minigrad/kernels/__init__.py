"""Kernels: the hot spots, each as a numba implementation beside a plain-NumPy
reference of the same math.

One switch picks the path for the whole process: the environment variable
`MINIGRAD_KERNELS=numba|numpy` (read at import, default numba), or at run time
`set_kernel_mode("numpy")` / `with kernel_mode("numpy"): ...`. The NumPy path is
there to be read and stepped through; the tests hold the two against each other.

Nothing compiles at import: each numba function compiles on its first call and
is cached on disk (`cache=True`), so later processes load it in milliseconds.
"""

import contextlib
import os

MODES = ("numba", "numpy")


def _validated(mode, where):
    if mode not in MODES:
        raise ValueError(f"{where}: kernel mode must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


_mode = _validated(os.environ.get("MINIGRAD_KERNELS", "numba"), "MINIGRAD_KERNELS")


def get_kernel_mode() -> str:
    """The active kernel path: 'numba' or 'numpy'."""
    return _mode


def set_kernel_mode(mode: str) -> None:
    """Select the kernel path for every later op: 'numba' or 'numpy'."""
    global _mode
    _mode = _validated(mode, "set_kernel_mode")


@contextlib.contextmanager
def kernel_mode(mode: str):
    """Run a block with the given kernel path, restoring the previous one after."""
    previous = get_kernel_mode()
    set_kernel_mode(mode)
    try:
        yield
    finally:
        set_kernel_mode(previous)


def use_numba() -> bool:
    return _mode == "numba"


def erf(x):
    """Elementwise error function (NumPy has none): see `special.py`."""
    from . import special

    return special.erf_numba(x) if _mode == "numba" else special.erf_reference(x)
