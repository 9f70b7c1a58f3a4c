"""minigrad: reverse-mode autodiff on NumPy that speaks a subset of PyTorch's API.

    import minigrad
    import minigrad.nn.functional as F

    x = minigrad.randn(3, 4, requires_grad=True)
    loss = F.log_softmax(x, dim=-1).sum()
    loss.backward()
    x.grad   # a Tensor of shape (3, 4)
"""

from . import nn, optim
from .autograd import Function, enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .gradcheck import GradcheckError, gradcheck
from .random import Generator, manual_seed
from .tensor import (
    Tensor,
    arange,
    cat,
    float32,
    float64,
    from_numpy,
    full,
    get_default_dtype,
    int64,
    ones,
    ones_like,
    rand,
    randint,
    randn,
    set_default_dtype,
    stack,
    tensor,
    tril,
    triu,
    where,
    zeros,
    zeros_like,
)
from .tensor import bool_ as bool  # noqa: A001  (torch spells it minigrad.bool)

# The accelerator registers its faster ops in the core's dispatch table; it imports no numba here.
from . import accel  # noqa: E402
from .accel import get_kernel_mode, kernel_mode, set_kernel_mode  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Tensor", "tensor", "from_numpy", "zeros", "ones", "full", "zeros_like", "ones_like",
    "randn", "rand", "randint", "arange", "cat", "stack", "where", "tril", "triu",
    "float32", "float64", "int64", "bool", "set_default_dtype", "get_default_dtype",
    "no_grad", "enable_grad", "is_grad_enabled", "set_grad_enabled", "Function",
    "Generator", "manual_seed", "gradcheck", "GradcheckError", "nn", "optim",
    "get_kernel_mode", "set_kernel_mode", "kernel_mode",
]
