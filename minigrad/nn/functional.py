"""`minigrad.nn.functional`: the functional ops a model and a loss need, named and
ordered as in `torch.nn.functional`. Import as `import minigrad.nn.functional as F`.
"""

import math

import numpy as np

from ..dtypes import bool_
from ..ops import attention as attention_ops
from ..ops import dropout as dropout_ops
from ..ops import embedding as embedding_ops
from ..ops import layer_norm as layer_norm_ops
from ..ops import linear as linear_ops
from ..ops import log_softmax as log_softmax_ops
from ..ops import pointwise
from ..ops import rms_norm as rms_norm_ops
from ..ops import softmax as softmax_ops
from ..ops import token_logprobs as token_logprobs_ops
from ..random import resolve
from ..tensor import Tensor, _index_array, cat

__all__ = [
    "linear", "relu", "gelu", "sigmoid", "tanh", "softplus", "logsigmoid", "softmax",
    "log_softmax", "layer_norm", "embedding", "dropout", "cross_entropy", "nll_loss",
    "mse_loss", "token_logprobs", "scaled_dot_product_attention",
    "silu", "rms_norm", "rotary_embedding", "repeat_interleave",
]


def linear(input, weight, bias=None):
    """input @ weight.T + bias, weight of shape (out_features, in_features)."""
    return linear_ops.Linear.apply(input, weight, bias)


def relu(input):
    return pointwise.ReLU.apply(input)


def gelu(input, approximate="none"):
    """Exact GELU x·Φ(x) (default), or the tanh approximation with approximate='tanh'."""
    return pointwise.GELU.apply(input, approximate)


def silu(input):
    """x·σ(x) (swish), the gate of Llama's SwiGLU MLP: down(silu(gate(x)) ∘ up(x))."""
    return input * pointwise.Sigmoid.apply(input)


def _shape(normalized_shape):
    """An int n means (n,), as in torch's norms."""
    return (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)


def rms_norm(input, normalized_shape, weight=None, eps=None):
    """x / sqrt(mean(x²) + eps) · weight over the trailing `normalized_shape` axes;
    eps=None means the float type's machine epsilon, as torch."""
    if eps is None:
        eps = float(np.finfo(input.dtype).eps)
    return rms_norm_ops.RMSNorm.apply(input, _shape(normalized_shape), weight, eps)


def rotary_embedding(input, cos, sin):
    """x∘cos + rotate_half(x)∘sin: rotary position embedding in the "rotate half"
    layout (Llama, Qwen2: feature j pairs with feature j + D/2, rotate_half([x1, x2])
    = [-x2, x1]), with cos and sin (..., T, D) broadcastable to x (..., T, D).

    Not a torch function (minigrad's extension; the torch backend adds the same
    formula written with torch ops). cos and sin are constants: they get no gradient.
    """
    cos, sin = (np.asarray(a.data if isinstance(a, Tensor) else a, dtype=input.dtype) for a in (cos, sin))
    if input.shape[-1] % 2:
        raise RuntimeError(f"rotary_embedding: the last dim of x must be even, got shape {tuple(input.shape)}")
    if not (_broadcasts_to(cos.shape, tuple(input.shape)) and _broadcasts_to(sin.shape, tuple(input.shape))):
        raise RuntimeError(f"rotary_embedding: cos {cos.shape} and sin {sin.shape} do not broadcast to x "
                           f"{tuple(input.shape)}")
    half = input.shape[-1] // 2
    rotated = cat((-input[..., half:], input[..., :half]), dim=-1)
    return input * Tensor._wrap(cos, False, None) + rotated * Tensor._wrap(sin, False, None)


def repeat_interleave(input, repeats, dim):
    """torch.repeat_interleave(input, repeats, dim) with an int `repeats` (tensor
    `repeats` are not supported): each slice along `dim` repeated in place, as an
    expand of a new axis after `dim` (so the gradient sums over the copies).
    Grouped-query attention shares each key/value head among query heads this way."""
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise ValueError(f"repeat_interleave: repeats must be a positive int, got {repeats!r}")
    if not -input.ndim <= dim < input.ndim:
        raise IndexError(f"repeat_interleave: dim {dim} is out of range for a tensor of {input.ndim} dimensions")
    dim, shape = dim % input.ndim, tuple(input.shape)
    copies = input.unsqueeze(dim + 1).expand(shape[:dim + 1] + (int(repeats),) + shape[dim + 1:])
    return copies.reshape(shape[:dim] + (shape[dim] * int(repeats),) + shape[dim + 1:])


def sigmoid(input):
    return pointwise.Sigmoid.apply(input)


def tanh(input):
    return pointwise.Tanh.apply(input)


def softplus(input, beta=1.0, threshold=20.0):
    return pointwise.Softplus.apply(input, beta, threshold)


def logsigmoid(input):
    """log σ(x), finite for any finite x (checked to |x| = 1e4)."""
    return pointwise.LogSigmoid.apply(input)


def softmax(input, dim):
    return softmax_ops.Softmax.apply(input, dim)


def log_softmax(input, dim):
    """log softmax along `dim`. A row of all -inf gives NaN, as in torch."""
    return log_softmax_ops.LogSoftmax.apply(input, dim)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    return layer_norm_ops.LayerNorm.apply(input, _shape(normalized_shape), weight, bias, eps)


def embedding(input, weight, padding_idx=None):
    """Rows of `weight` picked by the integer ids in `input`."""
    ids = _index_array(input, "embedding")
    return embedding_ops.Embedding.apply(ids, weight, padding_idx)


def dropout(input, p=0.5, training=True, generator=None):
    """Zero entries with probability p and scale the rest by 1/(1-p); identity when
    not training. `generator` is a minigrad extension (default: the global one)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    keep = resolve(generator).random(input.shape) >= p
    return dropout_ops.Dropout.apply(input, keep, p)


def token_logprobs(logits, targets, ignore_index=-100):
    """log softmax(logits)[..., target] at every position: shape `targets.shape`.

    Not a torch function (it is `-cross_entropy(..., reduction="none")` with the
    class dim last). Positions whose target is `ignore_index` give 0 and get no
    gradient. One fused kernel: the (..., V) log-probs are never built in forward,
    the (..., V) gradient once in backward.
    """
    targets = _index_array(targets, "token_logprobs")
    return token_logprobs_ops.TokenLogprobs.apply(logits, targets=targets, ignore_index=ignore_index)


def _reduce(loss, reduction, count=None):
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        if count is None:
            return loss.mean()
        with np.errstate(invalid="ignore", divide="ignore"):
            return loss.sum() / count
    raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")


def _class_dim_last(input, target, name):
    """(N, C, d1, ...) -> (N, d1, ..., C) and check target's shape."""
    input_shape = tuple(input.shape)
    if input.ndim == 1:
        input, target_shape = input.unsqueeze(0), ()
    elif input.ndim == 2:
        target_shape = (input.shape[0],)
    else:
        target_shape = (input.shape[0],) + tuple(input.shape[2:])
        input = input.permute(0, *range(2, input.ndim), 1)
    if tuple(target.shape) != target_shape:
        raise ValueError(
            f"{name}: input of shape {input_shape} needs class-index targets of shape "
            f"{target_shape}, got {tuple(target.shape)}"
        )
    return input, target.reshape(input.shape[:-1])


def cross_entropy(input, target, ignore_index=-100, reduction="mean"):
    """-log softmax(input)[target] with the class dim at 1 (input (N, C) or (N, C, d...)
    or (C,)). 'mean' averages over targets that are not `ignore_index`.

    Difference from torch: class-index targets only; no `weight` and no
    `label_smoothing`.
    """
    targets = _index_array(target, "cross_entropy")
    logits, flat_targets = _class_dim_last(input, targets, "cross_entropy")
    loss = -token_logprobs(logits, flat_targets, ignore_index).reshape(targets.shape)
    return _reduce(loss, reduction, count=int(np.sum(targets != ignore_index)))


def nll_loss(input, target, ignore_index=-100, reduction="mean"):
    """-input[target] for log-probabilities `input` with the class dim at 1."""
    targets = _index_array(target, "nll_loss")
    logp, flat_targets = _class_dim_last(input, targets, "nll_loss")
    valid = flat_targets != ignore_index
    safe = np.where(valid, flat_targets, 0)
    picked = logp.gather(-1, safe[..., None])[..., 0].masked_fill(~valid, 0.0)
    return _reduce(-picked.reshape(targets.shape), reduction, count=int(valid.sum()))


def mse_loss(input, target, reduction="mean"):
    diff = input - target
    return _reduce(diff * diff, reduction)


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None):
    """softmax(q kᵀ · scale + mask) v over the last two dims: q (..., L, E), k (..., S, E),
    v (..., S, Ev).

    `attn_mask`: bool (True = may attend, as torch) or additive float, broadcastable
    to (..., L, S); with `is_causal` both apply (as torch 2.13's fused CPU kernel does;
    its fallback for other shapes, e.g. a value dim unlike the key dim, refuses the pair). `scale`
    defaults to 1/sqrt(E). A query row that may attend to no key gives zeros and
    zero gradients, as torch 2.13.

    Runs as one op (`ops/attention.py`) when q, k, v share their leading dims; a bool mask of
    shape (B, 1, 1, S) with 4-d inputs is read as a key-padding mask (fast path),
    any other mask becomes an additive bias. With dropout_p > 0, leading dims that
    broadcast, or a float mask that requires grad, it is composed of minigrad ops.
    """
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise RuntimeError(
            f"scaled_dot_product_attention: shapes q {tuple(query.shape)}, k {tuple(key.shape)}, "
            f"v {tuple(value.shape)} do not fit (q and k need the same last dim, k and v the same length)"
        )
    if attn_mask is not None and not isinstance(attn_mask, Tensor):
        attn_mask = Tensor(np.asarray(attn_mask))
    if attn_mask is not None and attn_mask.dtype != bool_ and not np.issubdtype(attn_mask.dtype, np.floating):
        raise TypeError(f"scaled_dot_product_attention: attn_mask must be bool or float, got {attn_mask.dtype}")
    lead, (L, S) = tuple(query.shape[:-2]), (query.shape[-2], key.shape[-2])
    mask_fits = attn_mask is None or _broadcasts_to(attn_mask.shape, lead + (L, S))
    if (dropout_p > 0.0 or tuple(key.shape[:-2]) != lead or tuple(value.shape[:-2]) != lead or not mask_fits
            or (attn_mask is not None and attn_mask.requires_grad)):
        return _composed_attention(query, key, value, attn_mask, dropout_p, is_causal, scale)
    key_padding_mask, attn_bias = _kernel_masks(attn_mask, lead, L, S, query.dtype)
    if len(lead) != 2:  # the kernel takes (B, H, L, E): other ranks go through (1, N, L, E)
        n = int(np.prod(lead))
        query, key, value = (t.reshape(1, n, *t.shape[-2:]) for t in (query, key, value))
    out = attention_ops.ScaledDotProductAttention.apply(
        query, key, value, key_padding_mask=key_padding_mask, attn_bias=attn_bias, is_causal=is_causal, scale=scale
    )
    return out if len(lead) == 2 else out.reshape(*lead, L, out.shape[-1])


def _broadcasts_to(shape, target):
    try:
        return np.broadcast_shapes(shape, target) == target
    except ValueError:
        return False


def _kernel_masks(attn_mask, lead, L, S, dtype):
    """attn_mask -> (key_padding_mask (B, S) or None, additive bias or None) for the kernel."""
    if attn_mask is None:
        return None, None
    mask = attn_mask.data
    if mask.dtype == bool_ and len(lead) == 2 and mask.ndim == 4 and mask.shape[1:3] == (1, 1):
        return np.broadcast_to(mask[:, 0, 0, :], (lead[0], S)), None  # (B or 1, 1, 1, S): key padding
    bias = np.where(mask, 0.0, -np.inf).astype(dtype) if mask.dtype == bool_ else mask.astype(dtype, copy=False)
    if len(lead) != 2:
        bias = np.broadcast_to(bias, lead + (L, S)).reshape(1, -1, L, S)
    return None, bias


def _composed_attention(query, key, value, attn_mask, dropout_p, is_causal, scale):
    """scaled_dot_product_attention built from minigrad ops (matmul, softmax, masked_fill)."""
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = (query @ key.transpose(-2, -1)) * scale
    if attn_mask is not None and attn_mask.dtype != bool_:
        scores = scores + attn_mask
    # is_causal and a bool attn_mask folded into one bool 'may attend' array, or None
    allowed = np.tril(np.ones(scores.shape[-2:], dtype=bool)) if is_causal else None
    if attn_mask is not None and attn_mask.dtype == bool_:
        allowed = attn_mask.data if allowed is None else (allowed & attn_mask.data)
    if allowed is not None:
        allowed = np.broadcast_to(allowed, scores.shape)
        dead_rows = ~allowed.any(axis=-1, keepdims=True)
        # fill dead rows with 0 before softmax (finite), zero their weights after
        scores = scores.masked_fill(~allowed & ~dead_rows, float("-inf")).masked_fill(dead_rows, 0.0)
        weights = softmax(scores, dim=-1).masked_fill(dead_rows, 0.0)
    else:
        weights = softmax(scores, dim=-1)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p)
    return weights @ value


def __getattr__(name):
    """Only reached for a name this module lacks: say so, in torch user's terms."""
    raise AttributeError(f"module 'minigrad.nn.functional' has no attribute {name!r}: minigrad implements a "
                         "subset of torch.nn.functional and does not have it")
