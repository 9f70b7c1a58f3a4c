"""Solution `broadcast_mul`: out = a * b;  dL/da = unbroadcast(grad ∘ b), dL/db = unbroadcast(grad ∘ a).

Entry by entry d out/da = b, so grad ∘ b has the shape of out. Broadcasting used each
entry of a for several entries of out, and a used several times receives the sum of
those gradients. Undo broadcasting in the order it was done: sum away the leading axes
it added, then sum (keeping the axis) over every axis where a had size 1 and out has
more. (`minigrad.autograd.sum_to_shape` is the engine's version of `unbroadcast`.)
"""

from minigrad import Function


def unbroadcast(grad, shape):
    """Sum `grad` (the shape of out) down to `shape`."""
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


class BroadcastMul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.a, ctx.b = a, b
        return a * b

    @staticmethod
    def backward(ctx, grad):
        return unbroadcast(grad * ctx.b, ctx.a.shape), unbroadcast(grad * ctx.a, ctx.b.shape)
