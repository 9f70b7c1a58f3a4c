"""The accelerated ops: each a subclass of its core op whose forward and backward call
the numba kernels beside this file. Same inputs, options, checks and saved-value
contract as the core op; the kernel modules (and numba) are imported on first use.

`ACCELERATED` is what `minigrad.accel` puts in the core's dispatch table: these ops, the
optimizer's Adam update (`adam_update`) and the engine's gradient sums (gradients.py).
"""

import importlib
import math
import sys

import numpy as np

from .. import autograd
from ..autograd import is_grad_enabled
from ..ops import attention, embedding, layer_norm, log_softmax, pointwise, token_logprobs
from ..optim import adam
from . import gradients


def _kernels(name):
    return importlib.import_module(f"{__package__}.{name}")


class ScaledDotProductAttention(attention.ScaledDotProductAttention):
    @staticmethod
    def forward(ctx, q, k, v, key_padding_mask=None, attn_bias=None, is_causal=False, scale=None):
        attention.check_inputs(q, k, v, key_padding_mask, attn_bias)
        scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
        out, probs = _kernels("attention").forward(q, k, v, key_padding_mask, attn_bias, bool(is_causal), scale)
        ctx.saved, ctx.scale, ctx.is_causal = (q, k, v, out, probs), scale, bool(is_causal)
        return out

    @staticmethod
    def backward(ctx, g):
        q, k, v, out, probs = ctx.saved
        return _kernels("attention").backward(q, k, v, out, probs, g, ctx.is_causal, ctx.scale)


class Embedding(embedding.Embedding):
    @staticmethod
    def backward(ctx, g):
        return None, _kernels("embedding").backward(ctx.ids, g, ctx.rows, ctx.padding_idx), None


class LayerNorm(layer_norm.LayerNorm):
    @staticmethod
    def forward(ctx, x, normalized_shape, weight=None, bias=None, eps=1e-5):
        if not eps >= 0:
            raise ValueError(f"layer_norm: eps must be >= 0, got {eps}")
        rows, w, b = layer_norm.as_rows(x, normalized_shape, weight, bias)
        out, ctx.mean, ctx.rstd = _kernels("layer_norm").forward(rows, w, b, float(eps))
        ctx.rows, ctx.weight, ctx.shape, ctx.param_shape = rows, w, x.shape, tuple(normalized_shape)
        return out.reshape(x.shape)

    @staticmethod
    def backward(ctx, g):
        need_x, _, need_w, need_b, _ = ctx.needs_input_grad
        gx, gw, gb = _kernels("layer_norm").backward(
            ctx.rows, ctx.mean, ctx.rstd, ctx.weight, g.reshape(ctx.rows.shape), need_x, need_w, need_b)
        return (None if gx is None else gx.reshape(ctx.shape), None,
                None if gw is None else gw.reshape(ctx.param_shape),
                None if gb is None else gb.reshape(ctx.param_shape), None)


class LogSoftmax(log_softmax.LogSoftmax):
    """The kernels work on the last axis: another dim is moved there and back."""

    @staticmethod
    def forward(ctx, a, dim):
        dim = log_softmax.checked_dim(a, dim)
        rows = a.reshape(1) if a.ndim == 0 else a
        ctx.dim, ctx.shape = dim, a.shape
        ctx.out_last = _kernels("log_softmax").forward(np.moveaxis(rows, dim, -1))
        return np.moveaxis(ctx.out_last, -1, dim).reshape(a.shape)

    @staticmethod
    def backward(ctx, g):
        g_last = np.moveaxis(g.reshape(1) if g.ndim == 0 else g, ctx.dim, -1)
        grad = _kernels("log_softmax").backward(ctx.out_last, g_last)
        return np.moveaxis(grad, -1, ctx.dim).reshape(ctx.shape), None


class TokenLogprobs(token_logprobs.TokenLogprobs):
    @staticmethod
    def forward(ctx, logits, targets=None, ignore_index=-100):
        token_logprobs.check_inputs(logits, targets, ignore_index)
        out, lse = _kernels("token_logprobs").forward(logits, targets, ignore_index)
        ctx.saved, ctx.ignore_index = (logits, targets, lse), ignore_index
        return out

    @staticmethod
    def backward(ctx, g):
        logits, targets, lse = ctx.saved
        into = _only_the_graph_holds(ctx, logits)
        return _kernels("token_logprobs").backward(logits, targets, lse, g, ctx.ignore_index, into_logits=into)


def _only_the_graph_holds(ctx, array):
    """True when the gradient may be written over `array`, the op's first input as saved in
    ctx.saved: the engine frees ctx after this backward (ctx.releasing, no retain_graph), the
    array is C-contiguous and writable, and nothing outside the graph holds its memory.
    CPython reference counts: the input tensor is held only by this node's parents and the
    engine's pending order (minigrad.autograd.run_backward), the array only by that tensor,
    ctx.saved and the two frames here, and its memory is its own or that of a base array
    held by it alone (a Linear's output is a reshaped view of its matmul's result); any
    other holder (the user's variable, another node, another view, a detached tensor
    sharing it) makes a count higher."""
    tensor, base = ctx.parents[0], array.base
    return (getattr(ctx, "releasing", False) and tensor is not None and tensor.data is array
            and array.flags.c_contiguous and array.flags.writeable
            and sys.getrefcount(tensor) == _TENSOR_REFS and sys.getrefcount(array) == _ARRAY_REFS
            and (base is None or (type(base) is np.ndarray and base.base is None
                                  and sys.getrefcount(base) == _BASE_REFS)))


_TENSOR_REFS = 4  # ctx.parents, the engine's order, `tensor` above, getrefcount's argument
_ARRAY_REFS = 5  # ctx.saved, tensor.data, the caller's `logits`, `array` above, getrefcount's argument
_BASE_REFS = 3  # array.base, `base` above, getrefcount's argument


class GELU(pointwise.GELU):
    """From GELU_RECOMPUTE_MIN_ELEMENTS entries on, keeps its input, not the slope: backward
    runs the kernel again for the slope, so the graph holds no second array of the input's
    size (the input is held anyway, as the output of the op before; torch's GELU keeps its
    input too). Below it the slope is small next to a step's memory, and keeping it saves
    that second pass."""

    @staticmethod
    def forward(ctx, a, approximate="none"):
        if approximate not in ("none", "tanh"):
            raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
        if a.dtype not in (np.float32, np.float64):
            raise TypeError(f"gelu: input must be a float32 or float64 array, got {a.dtype}")
        recompute = is_grad_enabled() and a.size >= GELU_RECOMPUTE_MIN_ELEMENTS
        out, ctx.slope = _kernels("gelu").forward(a, approximate, is_grad_enabled() and not recompute)
        if recompute:
            ctx.a, ctx.approximate = a, approximate
        return out

    @staticmethod
    def backward(ctx, g):
        slope, owned = ctx.slope, getattr(ctx, "releasing", False)  # owned: nothing reads ctx.slope after
        if slope is None:
            (_, slope), owned = _kernels("gelu").forward(ctx.a, ctx.approximate, True), True
        return (np.multiply(g, slope, out=slope) if owned and g.dtype == slope.dtype else g * slope), None


GELU_RECOMPUTE_MIN_ELEMENTS = 1 << 22


def adam_update(p, g, m, v, t, lr, b1, b2, eps, wd, decoupled):
    """`minigrad.optim.adam.adam_update` in one parallel pass (accel/adamw.py); the core's
    code where the arrays do not fit the kernel (mixed dtypes, non-contiguous)."""
    kernels = _kernels("adamw")
    update = kernels.update if kernels.usable(p, g, m, v) else adam.adam_update
    update(p, g, m, v, t, lr, b1, b2, eps, wd, decoupled)


ACCELERATED = {cls.__mro__[1]: cls for cls in (
    ScaledDotProductAttention, Embedding, LayerNorm, LogSoftmax, TokenLogprobs, GELU)}
ACCELERATED[adam.adam_update] = adam_update
ACCELERATED[autograd.accumulate] = gradients.accumulate
