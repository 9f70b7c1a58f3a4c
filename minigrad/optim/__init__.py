"""`minigrad.optim`: SGD, Adam, AdamW, RMSprop, learning-rate schedules, gradient clipping."""

from ..nn.utils import clip_grad_norm_
from . import lr_scheduler
from .adam import Adam, AdamW
from .lr_scheduler import CosineAnnealingLR, LambdaLR, StepLR, get_linear_schedule_with_warmup
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = [
    "Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "LambdaLR", "get_linear_schedule_with_warmup",
    "clip_grad_norm_", "lr_scheduler", "StepLR", "CosineAnnealingLR",
]


def __getattr__(name):
    """Only reached for a name minigrad.optim lacks: say so, in torch user's terms."""
    raise AttributeError(f"module 'minigrad.optim' has no attribute {name!r}: minigrad implements a subset of "
                         "torch.optim and does not have it")
