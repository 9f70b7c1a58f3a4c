"""minigrad: reverse-mode autodiff on NumPy that speaks a subset of PyTorch's API.

    import minigrad
    import minigrad.nn.functional as F

    x = minigrad.randn(3, 4, requires_grad=True)
    loss = F.log_softmax(x, dim=-1).sum()
    loss.backward()
    x.grad   # a Tensor of shape (3, 4)

The core (everything here but `minigrad.accel`) is plain NumPy. `minigrad.accel`
registers numba versions of a few ops in the core's dispatch table; it imports no
numba until one of them runs, and nothing of it is needed (see docs/read-the-engine.md).
"""

from . import accel, nn, optim
from .accel import get_kernel_mode, kernel_mode, set_kernel_mode
from .autograd import Function, enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .dtypes import get_default_dtype, set_default_dtype
from .gradcheck import GradcheckError, gradcheck
from .random import Generator, manual_seed
from .tensor import (
    Tensor,
    arange,
    cat,
    einsum,
    eye,
    float32,
    float64,
    from_numpy,
    full,
    int64,
    linspace,
    ones,
    ones_like,
    rand,
    randint,
    randn,
    stack,
    tensor,
    tril,
    triu,
    where,
    zeros,
    zeros_like,
)
from .tensor import bool_ as bool  # noqa: A001  (torch spells it minigrad.bool)

__version__ = "0.1.0"


# torch's top-level forms of Tensor methods
def exp(input):
    return input.exp()


def log(input):
    return input.log()


def sqrt(input):
    return input.sqrt()


def abs(input):  # noqa: A001
    return input.abs()


def tanh(input):
    return input.tanh()


def sigmoid(input):
    return input.sigmoid()


def sum(input, dim=None, keepdim=False):  # noqa: A001
    return input.sum(dim, keepdim)


def mean(input, dim=None, keepdim=False):
    return input.mean(dim, keepdim)


def matmul(input, other):
    return input @ other


def softmax(input, dim):
    return input.softmax(dim)


def log_softmax(input, dim):
    return input.log_softmax(dim)


def __getattr__(name):
    """Only reached for a name minigrad lacks: say so, in torch user's terms."""
    raise AttributeError(f"module 'minigrad' has no attribute {name!r}: minigrad implements a subset of "
                         "torch's API and does not have it")


__all__ = [
    "Tensor", "tensor", "from_numpy", "zeros", "ones", "full", "zeros_like", "ones_like",
    "randn", "rand", "randint", "arange", "linspace", "eye", "cat", "stack", "where", "tril", "triu",
    "einsum", "exp", "log", "sqrt", "abs", "tanh", "sigmoid", "sum", "mean", "matmul", "softmax", "log_softmax",
    "float32", "float64", "int64", "bool", "set_default_dtype", "get_default_dtype",
    "no_grad", "enable_grad", "is_grad_enabled", "set_grad_enabled", "Function",
    "Generator", "manual_seed", "gradcheck", "GradcheckError", "nn", "optim", "accel",
    "get_kernel_mode", "set_kernel_mode", "kernel_mode",
]
