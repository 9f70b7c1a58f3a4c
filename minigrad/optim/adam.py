"""Adam and AdamW (torch's update rule, bias correction and defaults)."""

import math

import numpy as np

from ..autograd import faster
from .optimizer import Optimizer


class Adam(Optimizer):
    """m ← β1·m + (1-β1)·g;  v ← β2·v + (1-β2)·g²;  (t = step count)
    p ← p - lr/(1-β1ᵗ) · m / (sqrt(v)/sqrt(1-β2ᵗ) + eps).

    Adam adds weight decay to the gradient (g ← g + wd·p, L2); AdamW decays the
    weights directly (p ← p·(1 - lr·wd)) before the update.
    """

    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        if lr < 0 or eps < 0 or weight_decay < 0:
            raise ValueError(f"{type(self).__name__}: lr, eps and weight_decay must be >= 0")
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"{type(self).__name__}: betas must be in [0, 1), got {betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def step(self):
        update = faster(adam_update)  # the accelerator's one-pass kernel, when registered
        for group in self.param_groups:
            lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p, g, state in self._params_with_grad(group):
                if not state:
                    state.update(step=0, exp_avg=np.zeros_like(p.data), exp_avg_sq=np.zeros_like(p.data))
                state["step"] += 1
                update(p.data, g, state["exp_avg"], state["exp_avg_sq"], state["step"], lr, b1, b2, eps, wd,
                       self.decoupled)


def adam_update(p, g, m, v, t, lr, b1, b2, eps, wd, decoupled):
    """One parameter's Adam (AdamW when `decoupled`) update at step t, in place on the arrays
    p, m, v; `g` is only read. The reference of the accelerator's kernel (minigrad.accel)."""
    if wd and decoupled:
        p *= 1 - lr * wd
    elif wd:
        g = g + wd * p
    m += (1 - b1) * (g - m)
    v *= b2
    v += (1 - b2) * g * g
    p -= lr / (1 - b1**t) * (m / (np.sqrt(v) / math.sqrt(1 - b2**t) + eps))


class AdamW(Adam):
    """Adam with decoupled weight decay (default weight_decay=0.01, as torch)."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr, betas, eps, weight_decay)
