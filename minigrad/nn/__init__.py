"""`minigrad.nn`: modules, parameters and the functional ops (as `torch.nn`)."""

from . import functional, init
from .layers import (
    GELU,
    CrossEntropyLoss,
    Dropout,
    Embedding,
    LayerNorm,
    Linear,
    ModuleList,
    MSELoss,
    ReLU,
    RMSNorm,
    Sequential,
    SiLU,
    Tanh,
)
from .module import Module, Parameter
from .utils import clip_grad_norm_

__all__ = [
    "functional", "Module", "Parameter", "Linear", "Embedding", "LayerNorm", "GELU", "ReLU",
    "Tanh", "Dropout", "RMSNorm", "SiLU", "ModuleList", "Sequential", "clip_grad_norm_", "MSELoss",
    "CrossEntropyLoss", "init",
]


def __getattr__(name):
    """Only reached for a name minigrad.nn lacks: say so, in torch user's terms."""
    raise AttributeError(f"module 'minigrad.nn' has no attribute {name!r}: minigrad implements a subset of "
                         "torch.nn and does not have it")
