"""Check analytic gradients against central finite differences.

For a random cotangent u (one per output, drawn from a fixed seed) the scalar
L(x) = Σ u ∘ fn(x) has gradient Jᵀu. Backward gives it analytically; central
differences (L(x + eps·e_j) - L(x - eps·e_j)) / 2eps give it numerically, entry
by entry. An entry passes when |analytic - numeric| ≤ atol + rtol·|numeric|,
the same test as torch.autograd.gradcheck.
"""

import warnings

import numpy as np

from .autograd import no_grad
from .tensor import Tensor


class GradcheckError(AssertionError):
    """Raised when an analytic gradient disagrees with finite differences.

    Besides the message it carries the verdict as fields: `input_name`, `index`
    (a tuple), `analytic`, `numeric`, `failures` (entries that disagree) and
    `total` (entries of that input).
    """

    def __init__(self, message, input_name=None, index=None, analytic=None, numeric=None, failures=None,
                 total=None):
        super().__init__(message)
        self.input_name, self.index, self.analytic, self.numeric = input_name, index, analytic, numeric
        self.failures, self.total = failures, total


def _outputs(result):
    outs = result if isinstance(result, (tuple, list)) else (result,)
    outs = tuple(o for o in outs if isinstance(o, Tensor) and np.issubdtype(o.dtype, np.floating))
    if not outs:
        raise TypeError("gradcheck: fn must return a floating-point Tensor or a tuple containing one")
    return outs


def _projected(fn, inputs, cotangents):
    """L = Σ_k Σ u_k ∘ out_k, accumulated in float64."""
    outs = _outputs(fn(*inputs))
    return sum(float(np.sum(u * o.data.astype(np.float64))) for u, o in zip(cotangents, outs))


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, names=None, seed=0, raise_exception=True):
    """Return True when every input's analytic gradient matches finite differences.

    `fn(*inputs)` returns a Tensor (any shape) or a tuple of Tensors. Every input
    Tensor with requires_grad=True is checked; others are passed through. On a
    mismatch raises GradcheckError naming the input, the index, and the analytic
    and numeric value of the worst entry (or returns False if raise_exception is
    False). Inputs should be float64: float32 differences are mostly rounding
    noise, and a warning says so.
    """
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True, so there is nothing to check")
    names = list(names) if names is not None else [f"input {i}" for i in range(len(inputs))]
    for i in checked:
        if inputs[i].dtype != np.float64:
            warnings.warn(
                f"gradcheck: {names[i]} is {inputs[i].dtype}; finite differences need float64 "
                "to be meaningful (use .double())",
                stacklevel=2,
            )

    rng = np.random.default_rng(seed)
    outs = _outputs(fn(*inputs))
    cotangents = [rng.standard_normal(o.shape) for o in outs]
    saved_grads = [inputs[i].grad for i in checked]
    for i in checked:
        inputs[i].grad = None
    loss = None
    for u, o in zip(cotangents, outs):
        if o.requires_grad:
            term = (o * Tensor(u.astype(o.dtype))).sum()
            loss = term if loss is None else loss + term
    analytic = {}
    if loss is not None:
        loss.backward()
    for i, saved in zip(checked, saved_grads):
        x = inputs[i]
        analytic[i] = np.zeros(x.shape) if x.grad is None else x.grad.data.astype(np.float64)
        x.grad = saved

    worst = None  # (excess, input, index, analytic, numeric, failures, total)
    with no_grad():
        for i in checked:
            data = inputs[i].data
            numeric = np.zeros(data.shape)
            for index in np.ndindex(data.shape):
                original = data[index]
                data[index] = original + eps
                plus = _projected(fn, inputs, cotangents)
                data[index] = original - eps
                minus = _projected(fn, inputs, cotangents)
                data[index] = original
                numeric[index] = (plus - minus) / (2 * eps)
            diff = np.abs(analytic[i] - numeric)
            allowed = atol + rtol * np.abs(numeric)
            bad = ~(diff <= allowed)  # NaN counts as bad
            if bad.any():
                excess = np.where(bad, np.nan_to_num(diff / allowed, nan=np.inf), -np.inf)
                index = np.unravel_index(int(np.argmax(excess)), data.shape)
                candidate = (excess[index], i, index, analytic[i][index], numeric[index], int(bad.sum()), data.size)
                if worst is None or candidate[0] > worst[0]:
                    worst = candidate
    if worst is None:
        return True
    _, i, index, a, n, failures, total = worst
    index = tuple(int(j) for j in index)
    message = (
        f"gradcheck failed for {names[i]} (shape {tuple(inputs[i].shape)}) at index {index}: "
        f"analytic gradient {a:.10g}, numeric (finite differences) {n:.10g}; "
        f"|difference| {abs(a - n):.3g} > atol + rtol*|numeric| = {atol + rtol * abs(n):.3g}. "
        f"{failures} of {total} entries of this input disagree."
    )
    if raise_exception:
        raise GradcheckError(message, names[i], index, float(a), float(n), failures, total)
    warnings.warn(message, stacklevel=2)
    return False
