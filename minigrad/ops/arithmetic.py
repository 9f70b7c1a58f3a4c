"""Binary arithmetic and matmul. Inputs broadcast; the engine un-broadcasts grads.

An operand may be a Python number (it arrives here as a plain float/int and
never needs a gradient).
"""

import numpy as np

from ..autograd import Function


class Add(Function):
    """out = a + b;  d/da = 1, d/db = 1."""

    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, g):
        return g, g


class Sub(Function):
    """out = a - b;  d/da = 1, d/db = -1."""

    @staticmethod
    def forward(ctx, a, b):
        return a - b

    @staticmethod
    def backward(ctx, g):
        return g, (-g if ctx.needs_input_grad[1] else None)


class Mul(Function):
    """out = a * b;  d/da = b, d/db = a."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.a, ctx.b = a, b
        return a * b

    @staticmethod
    def backward(ctx, g):
        need_a, need_b = ctx.needs_input_grad
        return (g * ctx.b if need_a else None), (g * ctx.a if need_b else None)


class Div(Function):
    """out = a / b;  d/da = 1/b, d/db = -a/b² = -out/b.

    Division by zero gives ±inf or NaN without a NumPy warning, as in torch
    (e.g. a 'mean' loss over zero counted targets is NaN)."""

    @staticmethod
    def forward(ctx, a, b):
        with np.errstate(divide="ignore", invalid="ignore"):
            out = a / b
        ctx.b, ctx.out = b, out
        return out

    @staticmethod
    def backward(ctx, g):
        need_a, need_b = ctx.needs_input_grad
        with np.errstate(divide="ignore", invalid="ignore"):
            ga = g / ctx.b
            return (ga if need_a else None), (-ga * ctx.out if need_b else None)


class Neg(Function):
    """out = -a;  d/da = -1."""

    @staticmethod
    def forward(ctx, a):
        return -a

    @staticmethod
    def backward(ctx, g):
        return -g


class Pow(Function):
    """out = a ** b;  d/da = b·a^(b-1),  d/db = out·log(a).

    At the edges the limits are used, as torch does: d/da = 0 where b = 0, and
    d/db = 0 where a = 0 and b >= 0 (instead of 0·inf = NaN).
    """

    @staticmethod
    def forward(ctx, a, b):
        out = np.power(a, b)
        ctx.a, ctx.b, ctx.out = a, b, out
        return out

    @staticmethod
    def backward(ctx, g):
        need_a, need_b = ctx.needs_input_grad
        a, b = ctx.a, ctx.b
        ga = gb = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if need_a:
                ga = np.where(b == 0, 0, g * b * np.power(a, b - 1)).astype(g.dtype, copy=False)
            if need_b:
                gb = np.where((a == 0) & (b >= 0), 0, g * ctx.out * np.log(a)).astype(g.dtype, copy=False)
        return ga, gb


class MatMul(Function):
    """out = a @ b (torch semantics: batched, broadcast batch dims, 1-D cases).

    d/da = g @ bᵀ,  d/db = aᵀ @ g. A 1-D operand is promoted to a matrix
    ((k,) -> (1, k) on the left, (k, 1) on the right) and the added axis is
    dropped again from its gradient.
    """

    @staticmethod
    def forward(ctx, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise RuntimeError("matmul: both arguments need at least 1 dimension, got a 0-d tensor")
        if a.shape[-1] != b.shape[0 if b.ndim == 1 else -2]:
            raise RuntimeError(
                f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be multiplied "
                f"({a.shape[-1]} != {b.shape[0 if b.ndim == 1 else -2]})"
            )
        ctx.a, ctx.b = a, b
        return np.matmul(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.a, ctx.b
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        out_shape = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2]) + (a2.shape[-2], b2.shape[-1])
        g2 = g.reshape(out_shape)
        need_a, need_b = ctx.needs_input_grad
        ga = gb = None
        if need_a:
            ga = np.matmul(g2, np.swapaxes(b2, -1, -2))
            if a.ndim == 1:
                ga = ga[..., 0, :]
        if need_b:
            gb = np.matmul(np.swapaxes(a2, -1, -2), g2)
            if b.ndim == 1:
                gb = gb[..., 0]
        return ga, gb
