"""Exercise `cross_entropy`: the backward of the mean cross-entropy of logits (N, C).

    check it:   python -m minigrad.exercises check cross_entropy

Forward (given):  loss = (1/N) Σ_n -log softmax(logits[n])[targets[n]]   (a scalar)
                  `targets` are class ids (N,); they get no gradient.
To derive:        d loss / d logits[n, c] (the softmax, the one-hot of the target, the 1/N).
Your backward:    gets `grad` = dL/dloss (a 0-d array) and returns
                  (dL/dlogits of shape (N, C), None for the targets).
                  `ctx.probs` is softmax(logits) row by row, `ctx.targets` the ids.
"""

import numpy as np

from minigrad import Function


class CrossEntropy(Function):
    @staticmethod
    def forward(ctx, logits, targets):
        shifted = logits - logits.max(axis=-1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        ctx.probs, ctx.targets = np.exp(log_probs), targets
        rows = np.arange(logits.shape[0])
        return np.asarray(-log_probs[rows, targets].mean())

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError("your turn: return (dL/dlogits, None)")
