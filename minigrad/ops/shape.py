"""Ops that move entries without changing them: their backward moves the gradient back."""

import numpy as np

from ..autograd import Function
from ..dims import normalize_dim


class Reshape(Function):
    """out = a viewed as `shape`;  d/da = g reshaped to a's shape.

    Also serves `view`: NumPy copies when a view is impossible, so unlike torch,
    `view` never fails on a non-contiguous tensor.
    """

    @staticmethod
    def forward(ctx, a, shape):
        ctx.shape = a.shape
        try:
            return a.reshape(shape)
        except ValueError:
            raise RuntimeError(
                f"shape {tuple(shape)} is invalid for a tensor of shape {tuple(a.shape)} "
                f"({a.size} elements)"
            ) from None

    @staticmethod
    def backward(ctx, g):
        return g.reshape(ctx.shape), None


class Permute(Function):
    """out = a with axes reordered by `dims`;  d/da = g with the inverse order.
    Transpose is the permutation that swaps two axes."""

    @staticmethod
    def forward(ctx, a, dims):
        ctx.dims = dims
        return np.transpose(a, dims)

    @staticmethod
    def backward(ctx, g):
        return np.transpose(g, np.argsort(ctx.dims)), None


class Expand(Function):
    """out = a broadcast to `shape` (a read-only view, no copy);
    d/da = g summed over the broadcast axes, which the engine's sum_to_shape does."""

    @staticmethod
    def forward(ctx, a, shape):
        return np.broadcast_to(a, shape)

    @staticmethod
    def backward(ctx, g):
        return g, None


def _may_repeat(index, shape):
    """Whether `index` may pick one entry twice (its gradient must then accumulate). Only
    integer arrays can: when the index is nothing but integer arrays, it does exactly when
    two of their broadcast tuples name the same entry; mixed with other items, assume so."""
    items = index if isinstance(index, tuple) else (index,)
    arrays = [np.asarray(i) for i in items if isinstance(i, (np.ndarray, list))]
    if not any(a.dtype.kind in "iu" for a in arrays):
        return False
    if len(arrays) < len(items) or any(a.dtype.kind not in "iu" for a in arrays):
        return True
    flat = np.ravel_multi_index(np.broadcast_arrays(*arrays), shape[:len(arrays)], mode="wrap").ravel()
    return np.unique(flat).size < flat.size


class Index(Function):
    """out = a[index] for ints, slices, None, Ellipsis and integer/bool arrays;
    d/da = g at the picked positions, 0 elsewhere; entries picked more than once
    accumulate (np.add.at), so x[[0, 0]] gives x[0] a gradient of 2. The gradient is laid
    out in memory as a is (a permuted view gets a permuted gradient, which its
    Permute backward turns back into C order without a copy)."""

    @staticmethod
    def forward(ctx, a, index):
        ctx.index, ctx.a = index, a
        try:
            return a[index]
        except IndexError as error:
            raise IndexError(f"index {index!r} is out of range for shape {tuple(a.shape)}: {error}") from None

    @staticmethod
    def backward(ctx, g):
        grad = np.zeros_like(ctx.a, dtype=g.dtype)
        if _may_repeat(ctx.index, ctx.a.shape):
            np.add.at(grad, ctx.index, g)  # unbuffered: each repeat adds
        else:
            grad[ctx.index] = g
        return grad, None


class Gather(Function):
    """out[..i..] = a[..index[..i..]..] along `dim` (torch.gather);
    d/da = g scattered back to the gathered positions, accumulating repeats."""

    @staticmethod
    def forward(ctx, a, dim, index):
        if index.ndim != a.ndim:
            raise RuntimeError(
                f"gather: index has {index.ndim} dimensions but input has {a.ndim}; they must match"
            )
        d = normalize_dim(dim, a.ndim, "gather")
        # torch lets index be smaller than the input off `dim`: crop the input to match
        crop = tuple(slice(None) if i == d else slice(0, n) for i, n in enumerate(index.shape))
        for i, n in enumerate(index.shape):
            if i != d and n > a.shape[i]:
                raise RuntimeError(
                    f"gather: index size {n} exceeds input size {a.shape[i]} in dimension {i}"
                )
        if index.size and (index.min() < 0 or index.max() >= a.shape[d]):
            bad = index[(index < 0) | (index >= a.shape[d])].ravel()[0]
            raise IndexError(
                f"gather: index {bad} out of range for dimension {dim} of size {a.shape[d]} "
                f"(must be in [0, {a.shape[d] - 1}]; negative indices are not allowed, as in torch)"
            )
        ctx.dim, ctx.index, ctx.shape = d, index, a.shape
        return np.take_along_axis(a[crop], index, axis=d)

    @staticmethod
    def backward(ctx, g):
        where = list(np.indices(ctx.index.shape, sparse=True))
        where[ctx.dim] = ctx.index
        grad = np.zeros(ctx.shape, dtype=g.dtype)
        np.add.at(grad, tuple(where), g)
        return grad, None, None


class Cat(Function):
    """out = inputs joined along `dim`;  d/d(input i) = the slice of g it occupies."""

    @staticmethod
    def forward(ctx, *arrays, dim=0):
        d = normalize_dim(dim, arrays[0].ndim, "cat")
        ctx.dim, ctx.bounds = d, np.cumsum([a.shape[d] for a in arrays])[:-1]
        try:
            return np.concatenate(arrays, axis=d)
        except ValueError as error:
            shapes = ", ".join(str(tuple(a.shape)) for a in arrays)
            raise RuntimeError(f"cat: shapes {shapes} do not fit along dim {dim}: {error}") from None

    @staticmethod
    def backward(ctx, g):
        return tuple(np.split(g, ctx.bounds, axis=ctx.dim))


class Triangle(Function):
    """out = a with the entries outside a triangle of its last two dims set to 0
    (lower: j <= i + diagonal; upper: j >= i + diagonal);  d/da = g on the same triangle."""

    @staticmethod
    def forward(ctx, a, diagonal=0, upper=False):
        if a.ndim < 2:
            raise RuntimeError(f"{'triu' if upper else 'tril'}: needs a tensor of at least 2 dimensions, got {a.ndim}")
        ctx.keep = (np.triu if upper else np.tril)(np.ones(a.shape[-2:], dtype=bool), diagonal)
        return np.where(ctx.keep, a, np.zeros((), dtype=a.dtype))

    @staticmethod
    def backward(ctx, g):
        return np.where(ctx.keep, g, np.zeros((), dtype=g.dtype)), None, None
