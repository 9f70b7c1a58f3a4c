"""Exercise `softmax`: the backward of y = softmax(x) along the last axis.

    check it:   python -m minigrad.exercises check softmax

Forward (given):  y_i = e^(x_i) / Σ_j e^(x_j) over each row (the last axis); the row's
                  max is subtracted first, which changes nothing but avoids overflow.
To derive:        dy_i/dx_j (it is not zero for i ≠ j: every output of a row depends on
                  every input of that row), then dL/dx_j = Σ_i grad_i · dy_i/dx_j.
Your backward:    gets `grad` = dL/dy (the shape of x) and returns dL/dx.
                  `ctx.y` is the forward's output.
"""

import numpy as np

from minigrad import Function


class Softmax(Function):
    @staticmethod
    def forward(ctx, x):
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        ctx.y = e / e.sum(axis=-1, keepdims=True)
        return ctx.y

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError("your turn: return dL/dx from grad and ctx.y")
