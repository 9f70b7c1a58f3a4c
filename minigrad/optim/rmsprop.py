"""RMSprop (torch's update rule and defaults); the original DPO code trained with it."""

import numpy as np

from .optimizer import Optimizer


class RMSprop(Optimizer):
    """g ← g + wd·p;  v ← α·v + (1-α)·g²;  centered: ḡ ← α·ḡ + (1-α)·g, v' = v - ḡ², else v' = v;
    d = sqrt(v') + eps;  momentum μ > 0: buf ← μ·buf + g/d, p ← p - lr·buf;  else p ← p - lr·g/d."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
        if lr < 0 or eps < 0 or weight_decay < 0 or momentum < 0:
            raise ValueError("RMSprop: lr, eps, weight_decay and momentum must be >= 0")
        if not 0 <= alpha < 1:
            raise ValueError(f"RMSprop: alpha must be in [0, 1), got {alpha}")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered))

    def step(self):
        for group in self.param_groups:
            lr, alpha, eps, wd, mu = group["lr"], group["alpha"], group["eps"], group["weight_decay"], group["momentum"]
            for p, g, state in self._params_with_grad(group):
                if not state:
                    state["step"] = 0
                    state["square_avg"] = np.zeros_like(p.data)
                    if mu:
                        state["momentum_buffer"] = np.zeros_like(p.data)
                    if group["centered"]:
                        state["grad_avg"] = np.zeros_like(p.data)
                state["step"] += 1
                if wd:
                    g = g + wd * p.data
                v = state["square_avg"]
                v *= alpha
                v += (1 - alpha) * g * g
                if group["centered"]:
                    ga = state["grad_avg"]
                    ga *= alpha
                    ga += (1 - alpha) * g
                    denom = np.sqrt(v - ga * ga) + eps
                else:
                    denom = np.sqrt(v) + eps
                if mu:
                    buf = state["momentum_buffer"]
                    buf *= mu
                    buf += g / denom
                    p.data -= lr * buf
                else:
                    p.data -= lr * (g / denom)
