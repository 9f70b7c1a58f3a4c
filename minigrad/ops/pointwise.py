"""Elementwise (unary) ops, plus where / masked_fill / clamp."""

import math

import numpy as np

from ..autograd import Function, is_grad_enabled


class Exp(Function):
    """out = exp(a);  d/da = out."""

    @staticmethod
    def forward(ctx, a):
        ctx.out = np.exp(a)
        return ctx.out

    @staticmethod
    def backward(ctx, g):
        return g * ctx.out


class Log(Function):
    """out = log(a);  d/da = 1/a."""

    @staticmethod
    def forward(ctx, a):
        ctx.a = a
        return np.log(a)

    @staticmethod
    def backward(ctx, g):
        return g / ctx.a


class Sqrt(Function):
    """out = sqrt(a);  d/da = 1 / (2·out)."""

    @staticmethod
    def forward(ctx, a):
        ctx.out = np.sqrt(a)
        return ctx.out

    @staticmethod
    def backward(ctx, g):
        return g / (2 * ctx.out)


class Abs(Function):
    """out = |a|;  d/da = sign(a) (0 at 0, as torch)."""

    @staticmethod
    def forward(ctx, a):
        ctx.a = a
        return np.abs(a)

    @staticmethod
    def backward(ctx, g):
        return g * np.sign(ctx.a)


class Tanh(Function):
    """out = tanh(a);  d/da = 1 - out²."""

    @staticmethod
    def forward(ctx, a):
        ctx.out = np.tanh(a)
        return ctx.out

    @staticmethod
    def backward(ctx, g):
        return g * (1 - ctx.out * ctx.out)


def _sigmoid(a):
    """σ(a) without overflow: with z = exp(-|a|), σ = 1/(1+z) for a ≥ 0, z/(1+z) below."""
    z = np.exp(-np.abs(a))
    return np.where(a >= 0, 1 / (1 + z), z / (1 + z))


class Sigmoid(Function):
    """out = σ(a) = 1/(1+e^-a);  d/da = out·(1 - out)."""

    @staticmethod
    def forward(ctx, a):
        ctx.out = _sigmoid(a)
        return ctx.out

    @staticmethod
    def backward(ctx, g):
        return g * ctx.out * (1 - ctx.out)


class ReLU(Function):
    """out = max(a, 0);  d/da = 1 where a > 0 else 0."""

    @staticmethod
    def forward(ctx, a):
        ctx.positive = a > 0
        return np.where(ctx.positive, a, 0).astype(a.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        return g * ctx.positive


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_CUBIC = 0.044715
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_erf_object = np.frompyfunc(math.erf, 1, 1)


def erf(x: np.ndarray) -> np.ndarray:
    """The error function elementwise (NumPy has none): Python's math.erf in float64,
    rounded to x's dtype."""
    return np.asarray(_erf_object(np.asarray(x, dtype=np.float64)), dtype=np.float64).astype(x.dtype)


class GELU(Function):
    """Exact: out = a·Φ(a), Φ(a) = (1 + erf(a/√2))/2;  d/da = Φ(a) + a·φ(a)  (product rule, Φ' = φ).

    approximate="tanh": out = a·s, s = (1 + tanh(u))/2, u = √(2/π)(a + 0.044715a³);
    d/da = s + a/2·(1 - tanh²(u))·√(2/π)(1 + 3·0.044715a²).

    Forward keeps d/da (the "slope") for backward, and computes it only in grad mode.
    """

    @staticmethod
    def forward(ctx, a, approximate="none"):
        if approximate not in ("none", "tanh"):
            raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
        if a.dtype not in (np.float32, np.float64):
            raise TypeError(f"gelu: input must be a float32 or float64 array, got {a.dtype}")
        slope = None
        if approximate == "tanh":
            t = np.tanh(_SQRT_2_OVER_PI * (a + _CUBIC * a**3))
            out = 0.5 * a * (1 + t)
            if is_grad_enabled():
                slope = 0.5 * (1 + t) + 0.5 * a * (1 - t * t) * _SQRT_2_OVER_PI * (1 + 3 * _CUBIC * a * a)
        else:
            cdf = 0.5 * (1 + erf(a * math.sqrt(0.5)))
            out = a * cdf
            if is_grad_enabled():
                slope = cdf + a * (_INV_SQRT_2PI * np.exp(-0.5 * a * a))
        ctx.slope = slope
        return out

    @staticmethod
    def backward(ctx, g):
        return g * ctx.slope, None


class Softplus(Function):
    """out = log(1 + e^(βa))/β, or a where βa > threshold (torch's rule);
    d/da = σ(βa), or 1 above the threshold."""

    @staticmethod
    def forward(ctx, a, beta=1.0, threshold=20.0):
        ba = a * beta
        ctx.linear = ba > threshold
        ctx.ba = ba
        with np.errstate(over="ignore"):
            soft = np.log1p(np.exp(ba)) / beta
        return np.where(ctx.linear, a, soft).astype(a.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        return g * np.where(ctx.linear, 1, _sigmoid(ctx.ba)), None, None


class LogSigmoid(Function):
    """out = log σ(a) = min(a, 0) - log(1 + e^-|a|)  (no overflow at any |a|);
    d/da = 1 - σ(a) = σ(-a)."""

    @staticmethod
    def forward(ctx, a):
        ctx.a = a
        return np.minimum(a, 0) - np.log1p(np.exp(-np.abs(a)))

    @staticmethod
    def backward(ctx, g):
        return g * _sigmoid(-ctx.a)


class Clamp(Function):
    """out = min(max(a, lo), hi);  d/da = 1 where lo ≤ a ≤ hi else 0 (torch's rule)."""

    @staticmethod
    def forward(ctx, a, lo=None, hi=None):
        if lo is None and hi is None:
            raise ValueError("clamp: at least one of min and max must be given")
        inside = np.ones(a.shape, dtype=bool)
        out = a
        if lo is not None:
            inside &= a >= lo
            out = np.maximum(out, lo)
        if hi is not None:
            inside &= a <= hi
            out = np.minimum(out, hi)
        ctx.inside = inside
        return np.asarray(out, dtype=a.dtype)

    @staticmethod
    def backward(ctx, g):
        return g * ctx.inside, None, None


class Where(Function):
    """out = cond ? a : b;  d/da = cond, d/db = not cond (cond gets no gradient)."""

    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.cond = np.asarray(cond, dtype=bool)
        out = np.where(ctx.cond, a, b)
        return out

    @staticmethod
    def backward(ctx, g):
        _, need_a, need_b = ctx.needs_input_grad
        zero = np.zeros((), dtype=g.dtype)
        return (
            None,
            np.where(ctx.cond, g, zero) if need_a else None,
            np.where(ctx.cond, zero, g) if need_b else None,
        )


class MaskedFill(Function):
    """out = value where mask else a (value may be -inf);  d/da = not mask."""

    @staticmethod
    def forward(ctx, a, mask, value):
        ctx.mask = np.asarray(mask, dtype=bool)
        return np.where(ctx.mask, np.asarray(value, dtype=a.dtype), a)

    @staticmethod
    def backward(ctx, g):
        return np.where(ctx.mask, np.zeros((), dtype=g.dtype), g), None, None
