"""Gradient utilities (torch.nn.utils)."""

import numpy as np

from ..tensor import Tensor


def zero_grads(parameters, set_to_none=True):
    """Module.zero_grad and Optimizer.zero_grad: drop each gradient, or fill it with zeros."""
    for p in parameters:
        if set_to_none:
            p.grad = None
        elif p.grad is not None:
            p.grad.data[...] = 0


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale all gradients in place so their joint norm is at most `max_norm`.

    Returns the total norm before clipping (a 0-d tensor), as torch does; the
    scale is max_norm / (total + 1e-6), applied only when below 1.
    """
    parameters = [parameters] if isinstance(parameters, Tensor) else parameters
    grads = [p.grad.data for p in parameters if p.grad is not None]
    if not grads:
        return Tensor(np.zeros((), dtype=np.float32))  # torch: a float32 zero
    if norm_type == float("inf"):
        total = max(float(np.max(np.abs(g))) for g in grads)
    elif norm_type == 2:  # a BLAS dot per block of <= 2**16 entries, summed in float64: one pass, as exact as np.sum
        total = sum(float(np.vdot(b, b)) for g in grads for b in np.array_split(g.ravel(), 1 + g.size // 2**16)) ** 0.5
    else:
        total = float(sum(float(np.sum(np.abs(g) ** norm_type)) for g in grads) ** (1.0 / norm_type))
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(
            f"the total norm of order {norm_type} of the gradients is non-finite ({total}); "
            "pass error_if_nonfinite=False to clip anyway"
        )
    coef = max_norm / (total + 1e-6)
    if coef < 1:
        for g in grads:
            g *= coef
    return Tensor(np.asarray(total, dtype=grads[0].dtype))
