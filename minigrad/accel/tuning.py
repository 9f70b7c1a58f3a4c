"""Process settings that keep NumPy, OpenBLAS and numba from fighting over a few cores.

A minigrad training step alternates between OpenBLAS matmuls (the Linear layers)
and numba's parallel kernels (attention, and the rest), each with its own pool of
threads, and it allocates the same large arrays every step. Left at their
defaults, three things cost time on a small machine (docs/kernels.md and
benchmarks/results/ give the figures):

1. **numba's OpenMP threads spin** after each parallel kernel (GNU OpenMP's
   default wait policy), on the cores OpenBLAS needs for the next matmul. With
   `OMP_WAIT_POLICY=passive` they sleep instead. GNU OpenMP reads the variable
   once, when numba loads its threading layer (at the first parallel kernel), so
   call `tune_process()` before the first accelerated op runs.
2. **OpenBLAS's threads spin** for about 2^28 cycles after each call, on the
   cores numba's next kernel needs. OpenBLAS reads `OPENBLAS_THREAD_TIMEOUT`
   when its thread pool starts, which happened when NumPy was imported; we set
   it to 4 (2^4 cycles) and ask the OpenBLAS that NumPy loaded to read its
   environment again and restart its pool (`openblas_read_env`,
   `blas_thread_shutdown_`, both exported for this kind of use; the pool
   restarts on the next call).
3. **glibc hands freed large arrays back to the OS** (above its mmap threshold
   they are unmapped on free), so every step page-faults its activations and
   gradients in again. `mallopt` raises the mmap threshold to 64 MiB and turns
   heap trimming off (trim threshold -1): freed blocks stay in the heap and are
   reused next step. A finite trim threshold is not enough once the backward
   frees activations as it goes: the freed top of the heap then passes any
   threshold below the step's peak, is handed back, and is faulted in again by
   the next forward. The price is that the process keeps its peak heap until it
   exits. (Setting only the trim threshold is worse than nothing: any `mallopt`
   of these turns off glibc's own adaptive mmap threshold.)

`tune_process()` applies them once per process, and only when called: importing
minigrad or running an op never does. Entry points that want them call it (the CLI
through `backend.tune_process()`, the benchmarks). Each setting is left alone where
the user chose it already (the environment variable is set, or
`MALLOC_MMAP_THRESHOLD_` / `GLIBC_TUNABLES` for malloc), and
`MINIGRAD_CPU_TUNING=0` turns all three off. They are process-wide: torch in the
same process shares the malloc settings (harmless) and, where it loaded the same
OpenMP runtime, the wait policy.
"""

from __future__ import annotations

import ctypes
import glob
import logging
import os
import sys

_applied: dict | None = None

MMAP_THRESHOLD = 64 << 20
TRIM_THRESHOLD = -1  # mallopt's value for "never trim"
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers


def enabled() -> bool:
    """False when the user turned tuning off with MINIGRAD_CPU_TUNING=0."""
    return os.environ.get("MINIGRAD_CPU_TUNING", "1").strip().lower() not in ("0", "false", "no", "off")


def _openmp_wait_policy() -> str:
    if "OMP_WAIT_POLICY" in os.environ:
        return "left as set: OMP_WAIT_POLICY=" + os.environ["OMP_WAIT_POLICY"]
    os.environ["OMP_WAIT_POLICY"] = "passive"
    return "OMP_WAIT_POLICY=passive"


def _numpy_openblas():
    """The OpenBLAS shared library NumPy's wheel ships, or None (another BLAS, or a NumPy
    built against a system library: then it is the user's to configure)."""
    import numpy

    site = os.path.dirname(os.path.dirname(numpy.__file__))
    for path in sorted(glob.glob(os.path.join(site, "numpy.libs", "*openblas*.so*"))):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        if hasattr(lib, "openblas_read_env") and hasattr(lib, "blas_thread_shutdown_"):
            return lib
    return None


def _openblas_thread_timeout() -> str:
    if "OPENBLAS_THREAD_TIMEOUT" in os.environ:
        return "left as set: OPENBLAS_THREAD_TIMEOUT=" + os.environ["OPENBLAS_THREAD_TIMEOUT"]
    lib = _numpy_openblas()
    if lib is None:
        return "skipped: NumPy's OpenBLAS not found"
    os.environ["OPENBLAS_THREAD_TIMEOUT"] = "4"
    lib.openblas_read_env()
    lib.blas_thread_shutdown_()  # the pool restarts on the next BLAS call, with the new timeout
    return "OPENBLAS_THREAD_TIMEOUT=4"


def _malloc_thresholds() -> str:
    if not sys.platform.startswith("linux"):
        return "skipped: not Linux"
    chosen = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")
    if any(name in os.environ for name in chosen) or "malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return "left as set in the environment"
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return "skipped: no glibc mallopt"
    if not (mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        return "skipped: mallopt refused"
    return f"malloc mmap threshold {MMAP_THRESHOLD >> 20} MiB, heap trimming off"


def tune_process() -> dict:
    """Apply the three settings (once per process) and return what was done, by name."""
    global _applied
    if _applied is None:
        if not enabled():
            _applied = {"all": "off: MINIGRAD_CPU_TUNING=0"}
        else:
            _applied = {
                "openmp": _openmp_wait_policy(),
                "openblas": _openblas_thread_timeout(),
                "malloc": _malloc_thresholds(),
            }
        logging.getLogger("minigrad.accel").info("process tuning: %s", "; ".join(_applied.values()))
    return dict(_applied)
