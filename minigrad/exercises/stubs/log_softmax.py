"""Exercise `log_softmax`: the backward of y = log softmax(x) along the last axis.

    check it:   python -m minigrad.exercises check log_softmax

Forward (given):  y_i = x_i - log Σ_j e^(x_j) over each row (the last axis), with the
                  row's max subtracted first.
To derive:        dy_i/dx_j = [i = j] - softmax(x)_j, then dL/dx_j = Σ_i grad_i · dy_i/dx_j.
Your backward:    gets `grad` = dL/dy (the shape of x) and returns dL/dx.
                  `ctx.y` is the forward's output (so softmax(x) = exp(ctx.y)).
"""

import numpy as np

from minigrad import Function


class LogSoftmax(Function):
    @staticmethod
    def forward(ctx, x):
        shifted = x - x.max(axis=-1, keepdims=True)
        ctx.y = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        return ctx.y

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError("your turn: return dL/dx from grad and ctx.y")
