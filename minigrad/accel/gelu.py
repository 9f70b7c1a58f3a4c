"""GELU, elementwise, forward together with its derivative (the "slope").

    exact:  out = x·Φ(x),   Φ(x) = (1 + erf(x/√2))/2
            slope = Φ(x) + x·φ(x),   φ(x) = exp(-x²/2)/√(2π)       (product rule, Φ' = φ)
    tanh:   out = x·s,   s = (1 + tanh(u))/2,   u = √(2/π)·(x + 0.044715·x³)
            slope = s + x/2·(1 - tanh²(u))·√(2/π)·(1 + 3·0.044715·x²)

The forward returns the slope beside the output, so a backward pass keeps that
one array (grad · slope) instead of x and the cdf.

The core op (`minigrad.ops.pointwise.GELU`) is the math in NumPy (erf from
`math.erf`), in the input's dtype.

numba (`forward_numba`): one pass over the elements, no temporaries. `math.erf`
is a libm call per element that LLVM cannot vectorise, so Φ is written as
arithmetic it can:

    Φ(-a) = erfc(z)/2 = exp(-z²)·R(z)/2   for a >= 0, z = a/√2;   Φ(a) = 1 - Φ(-a)
    R(z) = erfc(z)·exp(z²) = Σ_k c_k·T_k(w),   w = (3 - z)/(3 + z) ∈ (-1, 1]

R is smooth and bounded (1 at z = 0, ~1/(z√π) for large z). `ERFC_SERIES` holds
its Chebyshev coefficients, computed once by interpolation at 96 Chebyshev nodes
in 50-digit arithmetic (mpmath) and truncated; the kernel evaluates the series
rewritten in powers of w (Horner; the power coefficients sum to 1.003 in
absolute value, so no cancellation), and exp with `fast_exp.exp_nonpositive`.
The tanh form uses s = 1/(1 + e) for u >= 0 and e/(1 + e) below, e = exp(-2|u|),
and 1 - tanh² = 4·s·(1 - s).

float64 (23 terms): erfc within 5e-16 of math.erfc for every z >= 0; for x < 0,
Φ is rounded as 1 + erf(x/√2) the way the reference and torch round it (it is
0 below x ≈ -8.3), so results match the core op to ~1e-15.

float32 (14 terms, float32 arithmetic: twice the SIMD width of float64): the
exponents -x²/2 and -2|u| are formed in float64 (exactly, or nearly) and split
into a float32 head and tail, exp(head)·(1 + tail), so exp carries no error
from rounding x²; Φ(x < 0) is taken as erfc/2 directly (no 1 + erf
cancellation). Measured against float64 math (math.erfc, exp) on a dense grid
over [-13, 13], wherever |value| >= 1e-35 (below that exp flushes to 0, see
fast_exp): exact within 5.4 ulps (output) and 4.8 ulps of |Φ| + |x·φ| (slope,
which crosses 0 at x ≈ -0.75, is judged on the scale of its two terms); tanh
within 4.1 and 5.8 ulps likewise. Tests hold both to 6 ulps.

Parallel or serial: waking numba's threads costs more than the work on small
arrays, so arrays below `PARALLEL_MIN_ELEMENTS` run in one thread; above, blocks
of `BLOCK` elements run in parallel (worth it only with `minigrad.accel.tune_process()`
applied: otherwise numba's and OpenBLAS's idle threads spin against each other).
"""

import math

import numba
import numpy as np
from numba import types
from numba.extending import overload

from .fast_exp import exp_nonpositive
from .tiles import INNER

APPROXIMATIONS = ("none", "tanh")
PARALLEL_MIN_ELEMENTS = 1 << 17
BLOCK = 1 << 14

# fused multiply-add only: with "reassoc" as well (tiles.FASTMATH), LLVM rewrites the Horner loop
# into a much slower form
CONTRACT = {"contract"}
_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_CUBIC = 0.044715

# Chebyshev coefficients of R(z) = erfc(z)·exp(z²) in w = (3 - z)/(3 + z): see the module docstring
ERFC_SERIES = (
    0.32986277475303677,
    0.45366152053780207,
    0.16039834082156296,
    0.044908121151122825,
    0.009641428650695697,
    0.0014425080777443955,
    0.00010099436735379916,
    -1.20850245344553e-05,
    -3.6254206027537556e-06,
    -7.186810742476415e-08,
    8.914235859898217e-08,
    7.421566624959606e-09,
    -2.389336570265878e-09,
    -3.062235535489925e-10,
    7.788945388151088e-11,
    1.0973745829245584e-11,
    -3.0915207311917734e-12,
    -3.525433881723422e-13,
    1.3990452179771617e-13,
    8.246037476838809e-15,
    -6.6399614269893215e-15,
    7.978348824752611e-17,
    3.0472412376040985e-16,
)


SERIES_TERMS = {np.dtype(np.float64): 23, np.dtype(np.float32): 14}


def _powers_high_to_low(dtype):
    """The first terms of `ERFC_SERIES` as a polynomial in w, highest power first, in `dtype`:
    a tuple, so that its length is known at compile time (the Horner loop unrolls and the
    loop over elements vectorises; with an array, or a tuple indexed in a loop, it does not)."""
    powers = np.polynomial.chebyshev.cheb2poly(np.array(ERFC_SERIES[: SERIES_TERMS[dtype]]))
    return tuple(dtype.type(a) for a in powers[::-1])


_POWERS = {dtype: _powers_high_to_low(dtype) for dtype in SERIES_TERMS}


def exp_like(a, like):
    """exp(a) for a float64 a <= 0, in the precision of `like` (numba only)."""
    return math.exp(a)


@overload(exp_like)
def _exp_like_numba(a, like):
    if like == types.float64:
        return lambda a, like: exp_nonpositive(a)
    if like == types.float32:
        def float32_exp(a, like):
            head = np.float32(a)
            return exp_nonpositive(head) * (np.float32(1.0) + np.float32(a - head))  # exp(head + tail)
        return float32_exp
    return None


@numba.njit(fastmath=CONTRACT, error_model="numpy", cache=True, **INNER)
def _horner(w, powers_high_to_low):
    acc = powers_high_to_low[0]
    for a in powers_high_to_low[1:]:
        acc = acc * w + a
    return acc


@numba.njit(fastmath=CONTRACT, error_model="numpy", cache=True)
def _exact_span(x, out, slope, powers, with_slope, round_like_reference):
    one, two, three = x.dtype.type(1.0), x.dtype.type(2.0), x.dtype.type(3.0)
    half, sqrt_half, inv_sqrt_2pi = x.dtype.type(0.5), x.dtype.type(_SQRT_HALF), x.dtype.type(_INV_SQRT_2PI)
    for i in range(x.shape[0]):
        v = x[i]
        v64 = np.float64(v)
        e = exp_like(-0.5 * v64 * v64, v)  # exp(-z²) = √(2π)·φ(v)
        z = abs(v) * sqrt_half
        tail = half * e * _horner((three - z) / (three + z), powers)  # Φ(-|v|)
        if round_like_reference:  # Φ = (1 + erf(v/√2))/2 with erf rounded to ±(1 - 2·tail) first
            erf_abs = one - two * tail
            cdf = half * (one + (erf_abs if v >= 0 else -erf_abs))
        else:
            cdf = tail if v < 0 else one - tail
        out[i] = v * cdf
        if with_slope:
            slope[i] = cdf + v * e * inv_sqrt_2pi


@numba.njit(fastmath=CONTRACT, error_model="numpy", cache=True)
def _tanh_span(x, out, slope, with_slope):
    one, two, three = x.dtype.type(1.0), x.dtype.type(2.0), x.dtype.type(3.0)
    cubic, sqrt_2_over_pi = x.dtype.type(_CUBIC), x.dtype.type(_SQRT_2_OVER_PI)
    for i in range(x.shape[0]):
        v = x[i]
        v64 = np.float64(v)
        u = _SQRT_2_OVER_PI * (v64 + _CUBIC * v64 * v64 * v64)
        e = exp_like(-2.0 * abs(u), v)
        low = e / (one + e)  # σ(-2|u|)
        high = one / (one + e)  # σ(2|u|)
        s = high if u >= 0 else low  # (1 + tanh u)/2 = σ(2u)
        out[i] = v * s
        if with_slope:
            slope[i] = s + two * v * low * high * sqrt_2_over_pi * (one + three * cubic * v * v)


@numba.njit(parallel=True, error_model="numpy", cache=True)
def _exact_blocks(x, out, slope, powers, with_slope, round_like_reference):
    n = x.shape[0]
    for b in numba.prange((n + BLOCK - 1) // BLOCK):
        lo, hi = b * BLOCK, min(n, (b + 1) * BLOCK)
        _exact_span(x[lo:hi], out[lo:hi], slope[lo:hi], powers, with_slope, round_like_reference)


@numba.njit(parallel=True, error_model="numpy", cache=True)
def _tanh_blocks(x, out, slope, with_slope):
    n = x.shape[0]
    for b in numba.prange((n + BLOCK - 1) // BLOCK):
        lo, hi = b * BLOCK, min(n, (b + 1) * BLOCK)
        _tanh_span(x[lo:hi], out[lo:hi], slope[lo:hi], with_slope)


def forward(x, approximate="none", with_slope=True):
    flat = np.require(x, x.dtype, ("C", "W")).reshape(-1)
    out = np.empty(flat.shape, dtype=x.dtype)
    slope = np.empty(flat.shape if with_slope else (0,), dtype=x.dtype)  # (0,): never written
    parallel = flat.size >= PARALLEL_MIN_ELEMENTS
    if approximate == "tanh":
        (_tanh_blocks if parallel else _tanh_span)(flat, out, slope, with_slope)
    else:
        round_like_reference = x.dtype == np.float64
        (_exact_blocks if parallel else _exact_span)(flat, out, slope, _POWERS[x.dtype], with_slope,
                                                      round_like_reference)
    return out.reshape(x.shape), (slope.reshape(x.shape) if with_slope else None)
