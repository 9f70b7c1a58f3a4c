"""The affine map of a Linear layer, fused into one node."""

from ..autograd import Function


class Linear(Function):
    """out = x @ wᵀ + b, w of shape (out, in) as torch;
    d/dx = g @ w,  d/dw = gᵀ @ x,  d/db = Σ g  (the leading axes are flattened,
    so each product is one 2-D matrix product)."""

    @staticmethod
    def forward(ctx, x, weight, bias=None):
        if weight.ndim != 2 or x.shape[-1] != weight.shape[1]:
            raise RuntimeError(
                f"linear: input of shape {tuple(x.shape)} does not fit weight of shape "
                f"{tuple(weight.shape)} (last input dim must be {weight.shape[-1]})"
            )
        ctx.x, ctx.weight = x, weight
        out = (x.reshape(-1, x.shape[-1]) @ weight.T).reshape(x.shape[:-1] + (weight.shape[0],))
        if bias is not None:
            out += bias
        return out

    @staticmethod
    def backward(ctx, g):
        need_x, need_w, need_b = ctx.needs_input_grad
        g2, x2 = g.reshape(-1, g.shape[-1]), ctx.x.reshape(-1, ctx.x.shape[-1])
        gx = (g2 @ ctx.weight).reshape(ctx.x.shape) if need_x else None
        gw = g2.T @ x2 if need_w else None
        gb = g2.sum(axis=0) if need_b else None
        return gx, gw, gb
