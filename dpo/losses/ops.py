"""The handful of elementwise ops the loss formulas use, on two kinds of arrays.

A loss formula and the quantities it reads (`pair.py`) are written once against
an `ops` object, so the same line of math builds:

- `TensorOps(backend)`: backend tensors (minigrad or torch), differentiable;
  this is what `dpo_loss` uses;
- `NumpyOps()`: plain float64 NumPy arrays, no graph; this is what the
  hand-written derivatives in `analytic_grad_chosen` use.

Only ops that minigrad and torch both have are used: tensor methods `exp`,
`log`, `sigmoid`, `relu` and `F.logsigmoid`. Sorting (for `aot`) happens on
NumPy values: the order is computed with `np.argsort` and the tensor is
indexed with it, which is differentiable on both backends (the gradient of
x[order] scatters back through the same order).
"""

import numpy as np


class TensorOps:
    """Elementwise ops on the tensors of one backend."""

    def __init__(self, backend):
        self.backend = backend

    def exp(self, x):
        return x.exp()

    def log(self, x):
        return x.log()

    def sigmoid(self, x):
        return x.sigmoid()

    def logsigmoid(self, x):
        return self.backend.F.logsigmoid(x)

    def relu(self, x):
        return x.relu()

    def sort(self, x):
        """(x sorted ascending, the order as a NumPy int array); gradient flows through the values."""
        order = np.argsort(self.backend.to_numpy(x), kind="stable")
        return x[self.backend.tensor(order)], order


def sigmoid(x):
    """σ(x) = 1/(1+e^-x) without overflow: with z = e^-|x|, σ = 1/(1+z) for x ≥ 0 and z/(1+z) below."""
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))


def logsigmoid(x):
    """log σ(x) = min(x, 0) - log(1 + e^-|x|), finite for any finite x."""
    return np.minimum(x, 0.0) - np.log1p(np.exp(-np.abs(x)))


class NumpyOps:
    """The same ops on float64 NumPy arrays (for the hand-written derivatives)."""

    exp = staticmethod(np.exp)
    log = staticmethod(np.log)
    sigmoid = staticmethod(sigmoid)
    logsigmoid = staticmethod(logsigmoid)

    @staticmethod
    def relu(x):
        return np.maximum(x, 0.0)

    @staticmethod
    def sort(x):
        order = np.argsort(x, kind="stable")
        return x[order], order
