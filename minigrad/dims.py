"""The one place a torch-style `dim` argument is checked and made non-negative."""

import numpy as np


def normalize_dim(dim, ndim, where, extra=0):
    """`dim` as an index in [0, ndim + extra), negatives counted from the end (a 0-d
    tensor has one dim, -1 or 0, as in torch; `extra` = 1 for unsqueeze, which may name
    the position after the last dim); an IndexError naming the op otherwise."""
    size = max(ndim + extra, 1)
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool) or not -size <= dim < size:
        raise IndexError(f"{where}: dim {dim!r} is out of range for a tensor of {ndim} dimension(s) "
                         f"(expected in [{-size}, {size - 1}])")
    return int(dim) % size


def normalize_dims(dim, ndim, where):
    """None, an int or a tuple of ints -> a sorted tuple of distinct dims; None or an empty
    tuple means every dim, as in torch (a 0-d tensor has none to reduce)."""
    dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim or ())
    if not dims or not ndim:
        for d in dims:
            normalize_dim(d, ndim, where)
        return tuple(range(ndim))
    out = [normalize_dim(d, ndim, where) for d in dims]
    if len(set(out)) != len(out):
        raise RuntimeError(f"{where}: dim {dim} names the same dimension twice")
    return tuple(sorted(out))
