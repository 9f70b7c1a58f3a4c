"""Kernels: the hot spots, each as a numba implementation beside a plain-NumPy
reference of the same math.

One switch picks the path for the whole process: the environment variable
`MINIGRAD_KERNELS=numba|numpy` (read at import, default numba), or at run time
`set_kernel_mode("numpy")` / `with kernel_mode("numpy"): ...`. The NumPy path is
there to be read and stepped through; the tests hold the two against each other.

Nothing compiles at import: the kernel modules (and numba itself) are imported
on the first call of an entry point below, each numba function compiles on its
first call and is cached on disk (`cache=True`), so later processes load it in
milliseconds. numba's cache checks only the timestamp of the file a function is
defined in: after editing `fast_exp.py` or `tiles.py`, delete
`minigrad/kernels/__pycache__` so the kernels that inline them recompile.

Entry points (raw NumPy arrays in and out; `mode=None` means the active mode,
and an op that saved its forward's mode passes it to its backward):

    attention_forward / attention_backward          attention.py
    log_softmax_forward / log_softmax_backward      log_softmax.py   (last axis)
    token_logprobs_forward / token_logprobs_backward  token_logprobs.py
    gelu_forward                                    gelu.py          (output and its derivative)
    layer_norm_forward / layer_norm_backward        layer_norm.py    (rows of (R, C))
    embedding_backward                              embedding.py
    nonzero_rows                                    zero_rows.py     (rows of a 2-D array)
    erf                                             special.py
"""

import contextlib
import math
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


_tuned = False


def use_numba(mode=None) -> bool:
    """True when `mode` (default: the active mode) is 'numba'. The first time it is,
    the process is tuned for numba beside OpenBLAS (`minigrad.cpu_tuning`), before
    numba starts its threads."""
    global _tuned
    numba_path = (_mode if mode is None else _validated(mode, "mode")) == "numba"
    if numba_path and not _tuned:
        from .. import cpu_tuning

        cpu_tuning.tune_process()
        _tuned = True
    return numba_path


def erf(x):
    """Elementwise error function (NumPy has none): see `special.py`."""
    from . import special

    return special.erf_numba(x) if use_numba() else special.erf_reference(x)


def attention_forward(q, k, v, key_padding_mask=None, attn_bias=None, is_causal=False, scale=None, mode=None):
    """softmax(q kᵀ·scale + attn_bias, masked) v for q, k, v of shape (B, H, L, D): returns (out, probs).

    `key_padding_mask` (B, S) bool, True = may attend; `attn_bias` additive, of
    q's dtype, broadcastable to (B, H, L, S); `scale` defaults to 1/sqrt(D).
    """
    from . import attention

    attention.check_inputs(q, k, v, key_padding_mask, attn_bias)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    impl = attention.forward_numba if use_numba(mode) else attention.forward_reference
    return impl(q, k, v, key_padding_mask, attn_bias, bool(is_causal), scale)


def attention_backward(q, k, v, out, probs, grad_out, is_causal=False, scale=None, mode=None):
    """(dq, dk, dv) from what `attention_forward` took and returned, and dL/dout."""
    from . import attention

    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    if grad_out.shape != out.shape:
        raise ValueError(f"attention: grad_out has shape {grad_out.shape}, the output {out.shape}")
    if use_numba(mode):
        return attention.backward_numba(q, k, v, out, probs, grad_out, bool(is_causal), scale)
    return attention.backward_reference(q, k, v, out, probs, grad_out, scale)


def log_softmax_forward(x, mode=None):
    """log-softmax over the last axis."""
    from . import log_softmax

    log_softmax.check_input(x)
    return log_softmax.forward_numba(x) if use_numba(mode) else log_softmax.forward_reference(x)


def log_softmax_backward(y, grad, mode=None):
    """dL/dx from the forward's output y and dL/dy."""
    from . import log_softmax

    if grad.shape != y.shape:
        raise ValueError(f"log_softmax: grad has shape {grad.shape}, the output {y.shape}")
    return log_softmax.backward_numba(y, grad) if use_numba(mode) else log_softmax.backward_reference(y, grad)


def token_logprobs_forward(logits, targets, ignore_index=-100, mode=None):
    """(log softmax(logits)[..., target], row log-sum-exp), both of targets' shape."""
    from . import token_logprobs

    token_logprobs.check_inputs(logits, targets, ignore_index)
    impl = token_logprobs.forward_numba if use_numba(mode) else token_logprobs.forward_reference
    return impl(logits, targets, ignore_index)


def token_logprobs_backward(logits, targets, lse, grad, ignore_index=-100, mode=None):
    """dL/dlogits from dL/dout (`grad`, targets' shape) and the forward's lse."""
    from . import token_logprobs

    if grad.shape != targets.shape:
        raise ValueError(f"token_logprobs: grad has shape {grad.shape}, the output {targets.shape}")
    impl = token_logprobs.backward_numba if use_numba(mode) else token_logprobs.backward_reference
    return impl(logits, targets, lse, grad, ignore_index)


def gelu_forward(x, approximate="none", with_slope=True, mode=None):
    """(GELU(x), dGELU/dx) elementwise, the second None unless `with_slope`;
    `approximate` is 'none' (exact, with erf) or 'tanh'."""
    from . import gelu

    gelu.check_input(x, approximate)
    impl = gelu.forward_numba if use_numba(mode) else gelu.forward_reference
    return impl(x, approximate, bool(with_slope))


def layer_norm_forward(x, weight=None, bias=None, eps=1e-5, mode=None):
    """Layer norm of each row of x (R, C), weight and bias (C,) or None: returns
    (out, mean, rstd), mean and rstd = 1/sqrt(var + eps) of shape (R,)."""
    from . import layer_norm

    layer_norm.check_inputs(x, weight, bias, eps)
    impl = layer_norm.forward_numba if use_numba(mode) else layer_norm.forward_reference
    return impl(x, weight, bias, float(eps))


def layer_norm_backward(x, mean, rstd, weight, grad, need_x=True, need_weight=True, need_bias=True, mode=None):
    """(dx, dweight, dbias) from the forward's x, mean, rstd and dL/dout; each None where
    not needed (dweight also where weight is None)."""
    from . import layer_norm

    if grad.shape != x.shape:
        raise ValueError(f"layer_norm: grad has shape {grad.shape}, the output {x.shape}")
    impl = layer_norm.backward_numba if use_numba(mode) else layer_norm.backward_reference
    return impl(x, mean, rstd, weight, grad, bool(need_x), bool(need_weight), bool(need_bias))


def embedding_backward(ids, grad, num_embeddings, padding_idx=None, mode=None):
    """dL/dweight (num_embeddings, D) of `weight[ids]` from dL/dout (ids.shape + (D,)):
    repeated ids accumulate, the row `padding_idx` gets none."""
    from . import embedding

    embedding.check_inputs(ids, grad, num_embeddings, padding_idx)
    impl = embedding.backward_numba if use_numba(mode) else embedding.backward_reference
    return impl(ids, grad, int(num_embeddings), padding_idx)


def nonzero_rows(a, mode=None):
    """Indices (int64, ascending) of the rows of the 2-D array `a` that hold a nonzero or NaN."""
    from . import zero_rows

    zero_rows.check_input(a)
    return zero_rows.nonzero_rows_numba(a) if use_numba(mode) else zero_rows.nonzero_rows_reference(a)
