"""The error function, which NumPy lacks (exact GELU needs it).

Reference: Python's `math.erf` applied to each element. numba: the same libm
`erf` in a compiled parallel loop. Both evaluate in float64 and round to the
input's dtype, so they agree bit for bit.
"""

import math

import numba
import numpy as np

_erf_object = np.frompyfunc(math.erf, 1, 1)


def erf_reference(x: np.ndarray) -> np.ndarray:
    x64 = np.asarray(x, dtype=np.float64)
    return np.asarray(_erf_object(x64), dtype=np.float64).astype(x.dtype)  # 0-d: frompyfunc gives a float


@numba.njit(parallel=True, cache=True)
def _erf_loop(flat, out):
    for i in numba.prange(flat.shape[0]):
        out[i] = math.erf(np.float64(flat[i]))


def erf_numba(x: np.ndarray) -> np.ndarray:
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty(flat.shape, dtype=x.dtype)
    _erf_loop(flat, out)
    return out.reshape(x.shape)
