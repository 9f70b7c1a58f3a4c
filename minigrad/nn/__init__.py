"""`minigrad.nn`: modules, parameters and the functional ops (as `torch.nn`)."""

from . import functional
from .layers import GELU, Dropout, Embedding, LayerNorm, Linear, ModuleList, ReLU, RMSNorm, Sequential, SiLU, Tanh
from .module import Module, Parameter
from .utils import clip_grad_norm_

__all__ = [
    "functional", "Module", "Parameter", "Linear", "Embedding", "LayerNorm", "GELU", "ReLU",
    "Tanh", "Dropout", "RMSNorm", "SiLU", "ModuleList", "Sequential", "clip_grad_norm_",
]
