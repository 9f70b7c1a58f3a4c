"""log softmax(logits)[..., target] as one fused op, on the kernels in
`minigrad.kernels.token_logprobs`: no (..., V) log-prob tensor in forward."""

from .. import kernels
from ..autograd import Function


class TokenLogprobs(Function):
    """out = logits[..., t] - logsumexp(logits) (0 where t == ignore_index);
    d/dlogits = g · (onehot(t) - softmax(logits)), 0 on ignored rows.

    `targets` (an integer array of logits.shape[:-1]) and `ignore_index` are
    keywords, not differentiated.
    """

    @staticmethod
    def forward(ctx, logits, targets=None, ignore_index=-100):
        ctx.mode = kernels.get_kernel_mode()
        out, lse = kernels.token_logprobs_forward(logits, targets, ignore_index, mode=ctx.mode)
        ctx.saved = (logits, targets, lse)
        ctx.ignore_index = ignore_index
        return out

    @staticmethod
    def backward(ctx, g):
        logits, targets, lse = ctx.saved
        return kernels.token_logprobs_backward(logits, targets, lse, g, ctx.ignore_index, mode=ctx.mode)
