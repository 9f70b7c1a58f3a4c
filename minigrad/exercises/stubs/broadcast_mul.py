"""Exercise `broadcast_mul`: the backward of out = a * b when a and b broadcast.

    check it:   python -m minigrad.exercises check broadcast_mul

Forward (given):  out = a * b with NumPy broadcasting: shapes are aligned from the
                  right; missing leading axes are added and size-1 axes stretched.
                  (3, 4) * (4,) -> (3, 4);  (2, 1, 3) * (4, 1) -> (2, 4, 3).
To derive:        dL/da and dL/db. Entry by entry, d out/da = b and d out/db = a;
                  but one entry of b is used by many entries of out.
Your backward:    gets `grad` = dL/dout (the shape of out) and returns (dL/da, dL/db),
                  EACH IN ITS INPUT'S SHAPE (ctx.a.shape, ctx.b.shape).

minigrad's engine would undo the broadcasting for you (`minigrad.autograd.sum_to_shape`);
in this exercise you do it yourself, so return exactly a's and b's shapes.
"""

import numpy as np  # noqa: F401  (for your backward)

from minigrad import Function


class BroadcastMul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.a, ctx.b = a, b
        return a * b

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError("your turn: return (dL/da, dL/db), each in its input's shape")
