"""`minigrad.optim`: SGD, Adam, AdamW, RMSprop, learning-rate schedules, gradient clipping."""

from ..nn.utils import clip_grad_norm_
from . import lr_scheduler
from .adam import Adam, AdamW
from .lr_scheduler import LambdaLR, get_linear_schedule_with_warmup
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = [
    "Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "LambdaLR", "get_linear_schedule_with_warmup",
    "clip_grad_norm_", "lr_scheduler",
]
