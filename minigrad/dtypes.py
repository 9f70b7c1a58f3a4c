"""minigrad's dtypes and torch's promotion rules for them, in one public module.

float32, float64, int64 and bool; integer input of any width becomes int64. The
default dtype (what Python floats and `zeros`/`randn` get) is float32 unless set.
"""

import numbers

import numpy as np

float32 = np.dtype("float32")
float64 = np.dtype("float64")
int64 = np.dtype("int64")
bool_ = np.dtype("bool")
SUPPORTED = (float32, float64, int64, bool_)
_default = float32


def set_default_dtype(dtype) -> None:
    """The dtype that Python floats and `zeros`/`randn` etc. get (float32 by default)."""
    global _default
    dtype = np.dtype(dtype)
    if dtype not in (float32, float64):
        raise TypeError(f"set_default_dtype: only float32 or float64, got {dtype}")
    _default = dtype


def get_default_dtype():
    return _default


def canonical(dtype):
    """Map any requested dtype to one minigrad supports, or say which it was."""
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"unsupported dtype {dtype!r}; minigrad supports float32, float64, int64, bool") from None
    if dtype in SUPPORTED:
        return dtype
    if np.issubdtype(dtype, np.integer):
        return int64
    raise TypeError(f"unsupported dtype {dtype}; minigrad supports float32, float64, int64, bool")


def or_default(dtype):
    return _default if dtype is None else canonical(dtype)


def is_dtype_name(name) -> bool:
    try:
        np.dtype(name)
        return True
    except TypeError:
        return False


def promote_types(a, b):
    """torch.promote_types for minigrad's dtypes: a float beats a non-float
    (int64 + float32 -> float32, where NumPy gives float64); otherwise NumPy's rule."""
    if a is None or b is None:
        return a if b is None else b
    if (a.kind == "f") != (b.kind == "f"):
        return a if a.kind == "f" else b
    return np.promote_types(a, b)


def _combine_tiers(higher, lower):
    """A lower-priority operand only matters when it brings a higher category
    (bool < integer < float) than the higher-priority ones (c10's rule)."""
    if higher is None:
        return lower
    if higher.kind == "f":
        return higher
    if higher == bool_ or (lower is not None and lower.kind == "f"):
        return promote_types(higher, lower)
    return higher


def result_type(*operands):
    """The dtype torch gives a binary op on these operands (torch.result_type).

    Priority: tensors with dimensions, then 0-d tensors, then Python numbers
    (a Python float counts as the default dtype). A lower tier changes the result
    only by raising its category: float32 tensor * float64 0-d tensor -> float32,
    int64 tensor * 0.5 -> float32 (the default dtype).
    """
    tiers = [None, None, None]
    for x in operands:
        if hasattr(x, "dtype") and hasattr(x, "ndim"):  # a Tensor
            tier, dtype = (0 if x.ndim else 1), x.dtype
        elif isinstance(x, bool):
            tier, dtype = 2, bool_
        elif isinstance(x, numbers.Integral):
            tier, dtype = 2, int64
        else:
            tier, dtype = 2, _default
        tiers[tier] = promote_types(tiers[tier], dtype)
    return _combine_tiers(tiers[0], _combine_tiers(tiers[1], tiers[2]))
