"""`minigrad.nn.init`: fill a tensor in place, under no_grad, as `torch.nn.init`.

Difference from torch: the values come from minigrad's generator (`generator=` or the
global one), so they differ from torch's for the same seed; the distributions match.
"""

import math

from ..autograd import no_grad
from ..random import resolve


def _fan_in_and_fan_out(tensor):
    if tensor.ndim < 2:
        raise ValueError(f"fan in and fan out need a tensor of at least 2 dimensions, got {tensor.ndim}")
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


@no_grad()
def uniform_(tensor, a=0.0, b=1.0, generator=None):
    return tensor.copy_(resolve(generator).uniform(a, b, tensor.shape))


@no_grad()
def normal_(tensor, mean=0.0, std=1.0, generator=None):
    return tensor.copy_(resolve(generator).normal(mean, std, tensor.shape))


@no_grad()
def constant_(tensor, val):
    return tensor.fill_(val)


def zeros_(tensor):
    return constant_(tensor, 0.0)


def ones_(tensor):
    return constant_(tensor, 1.0)


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """U(-a, a), a = gain·sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """U(-b, b), b = gain·sqrt(3 / fan), gain = sqrt(2 / (1 + a²)) for (leaky) ReLU, 1 for linear."""
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming_uniform_: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    gains = {"relu": math.sqrt(2.0), "leaky_relu": math.sqrt(2.0 / (1 + a * a)), "linear": 1.0}
    if nonlinearity not in gains:
        raise ValueError(f"kaiming_uniform_: nonlinearity must be one of {', '.join(gains)}, got {nonlinearity!r}")
    fan = _fan_in_and_fan_out(tensor)[0 if mode == "fan_in" else 1]
    bound = gains[nonlinearity] * math.sqrt(3.0 / fan)
    return uniform_(tensor, -bound, bound, generator)
