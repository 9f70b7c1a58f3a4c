"""exp(x) for x <= 0 that numba can vectorise (numba kernels only).

`math.exp` compiles to a call into libm, one element at a time: LLVM cannot turn
a loop of such calls into SIMD code, and softmax rows spend most of their time
there. `exp_nonpositive` is the same function written as arithmetic LLVM can
vectorise:

    x = n·ln2 + r,  n = round(x / ln2),  |r| <= ln2/2
    exp(x) = 2**n · exp(r)

exp(r) is its Taylor polynomial (degree 7 in float32, 13 in float64: truncation
below half an ulp on |r| <= ln2/2), and 2**n is built by writing n + bias into
the exponent bits of a float. Measured against NumPy: within 1 ulp in float32,
within 2.3e-16 relative in float64.

Domain: x <= 0, the only case softmax needs (x - max, x - logsumexp). Where
exp(x) would be subnormal (x < -87 in float32, x < -708 in float64) it returns 0,
so exp(-inf) = 0; NaN stays NaN. Large positive x is out of the domain.
"""

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload


@intrinsic
def _float_from_bits(typingctx, bits):
    """Reinterpret an int32 (int64) bit pattern as a float32 (float64)."""
    if bits == types.int32:
        signature, float_type = types.float32(types.int32), ir.FloatType()
    elif bits == types.int64:
        signature, float_type = types.float64(types.int64), ir.DoubleType()
    else:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], float_type)

    return signature, codegen


def exp_nonpositive(x):
    """Pure-Python meaning of the numba function below (not used by the kernels)."""
    return math.exp(x)


@overload(exp_nonpositive)
def _exp_nonpositive_numba(x):
    if x == types.float32:
        return _exp_float32
    if x == types.float64:
        return _exp_float64
    return None


def _exp_float32(x):
    if x < np.float32(-87.0):
        return np.float32(0.0)
    n = np.floor(x * np.float32(1.4426950408889634) + np.float32(0.5))
    # ln2 split in two so that n·ln2 is exact to float32 precision
    r = x - n * np.float32(0.693359375) - n * np.float32(-2.12194440e-4)
    p = np.float32(1.0 / 5040.0)
    p = p * r + np.float32(1.0 / 720.0)
    p = p * r + np.float32(1.0 / 120.0)
    p = p * r + np.float32(1.0 / 24.0)
    p = p * r + np.float32(1.0 / 6.0)
    p = p * r + np.float32(0.5)
    p = p * r + np.float32(1.0)
    p = p * r + np.float32(1.0)
    return p * _float_from_bits(np.int32((np.int32(n) + np.int32(127)) << np.int32(23)))


def _exp_float64(x):
    if x < -708.0:
        return 0.0
    n = np.floor(x * 1.4426950408889634 + 0.5)
    r = x - n * 6.93147180369123816490e-01 - n * 1.90821492927058770002e-10
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    return p * _float_from_bits((np.int64(n) + np.int64(1023)) << np.int64(52))
