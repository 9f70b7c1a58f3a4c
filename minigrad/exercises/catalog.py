"""The exercises: what each one asks, the inputs it is checked on, and its hints.

An `Exercise` names the file a learner edits (`stubs/NAME.py`, solution in
`solutions/NAME.py`), the object in it that the checker runs (`entry`), the
cases (random float64 inputs of several shapes, edge cases included), the same
computation written with PyTorch (used only where torch is installed), and a
hint for each input.

Two kinds of exercise:

- a `Function` subclass whose backward the learner writes (`entry` is the class);
  it is called as `Entry.apply(*inputs, **options)`;
- a loss whose gradients the learner derives by hand (`loss` is the given loss
  function, `entry` the function returning one gradient per input); the checker
  turns the pair into a Function (`hand_gradient_function`) and checks it the
  same way.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

from ..autograd import Function


@dataclasses.dataclass(frozen=True)
class Input:
    """One positional input of a case: its name in messages, its values, whether it gets a gradient."""

    name: str
    values: np.ndarray
    differentiable: bool = True


@dataclasses.dataclass(frozen=True)
class Case:
    """A named way to call the exercise: `make(rng)` -> ([Input, ...], {option: value})."""

    name: str
    make: Callable


@dataclasses.dataclass(frozen=True)
class Exercise:
    name: str
    title: str
    entry: str  # the Function subclass (or, with `loss`, the gradient function) the learner writes
    cases: tuple
    torch_reference: Callable  # (torch, *torch inputs, **options) -> torch tensor
    hints: dict  # input name -> hint; "" -> a hint for every input
    loss: str | None = None  # hand-gradient exercises: the name of the given loss function

    def function(self, module):
        """The Function class to check, taken from `module` (stub, solution or the learner's file)."""
        entry = getattr(module, self.entry)
        if self.loss is None:
            return entry
        return hand_gradient_function(getattr(module, self.loss), entry)

    def hint(self, input_name=None) -> str:
        return self.hints.get(input_name) or self.hints.get("", "")


def hand_gradient_function(loss, grads):
    """A Function whose forward is `loss(*arrays, **options)` (per-example losses) and whose
    backward multiplies the incoming gradient into `grads(*arrays, **options)` (one array per input)."""

    class HandGradient(Function):
        @staticmethod
        def forward(ctx, *arrays, **options):
            ctx.arrays, ctx.options = arrays, options
            return np.asarray(loss(*arrays, **options), dtype=np.float64)

        @staticmethod
        def backward(ctx, grad):
            derivatives = grads(*ctx.arrays, **ctx.options)
            if not isinstance(derivatives, (tuple, list)) or any(np.shape(d) != grad.shape for d in derivatives):
                return derivatives  # the wrong count or shape, as it is: the checker names what is wrong
            return tuple(grad * np.asarray(d) for d in derivatives)

    HandGradient.__name__ = HandGradient.__qualname__ = grads.__name__
    return HandGradient


# ---- case builders ------------------------------------------------------------------------
def normal(*shape, scale=1.0):
    return lambda rng: rng.standard_normal(shape) * scale


def one_input(name, sample, **options):
    return lambda rng: ([Input(name, sample(rng))], options)


def fixed(values):
    return lambda rng: np.array(values, dtype=np.float64)


def _log_probs(rng, batch, spread=8.0):
    """Four arrays of summed log-probs (policy chosen, policy rejected, ref chosen, ref rejected)."""
    names = ("policy_chosen", "policy_rejected", "ref_chosen", "ref_rejected")
    return [Input(name, -30.0 + spread * rng.standard_normal(batch)) for name in names]


def dpo_case(batch, beta, spread=8.0, policy_is_reference=False):
    def make(rng):
        inputs = _log_probs(rng, batch, spread)
        if policy_is_reference:
            inputs[2] = Input("ref_chosen", inputs[0].values.copy())
            inputs[3] = Input("ref_rejected", inputs[1].values.copy())
        return inputs, {"beta": beta}

    return make


def ipo_case(batch, beta, lengths):
    def make(rng):
        chosen = np.asarray(lengths(rng, batch), dtype=np.float64)
        rejected = np.asarray(lengths(rng, batch), dtype=np.float64)
        return _log_probs(rng, batch, spread=3.0), {
            "chosen_lengths": chosen, "rejected_lengths": rejected, "beta": beta}

    return make


def _torch_dpo(torch, pc, pr, rc, rr, beta):
    return -torch.nn.functional.logsigmoid(beta * ((pc - rc) - (pr - rr)))


def _torch_ipo(torch, pc, pr, rc, rr, chosen_lengths, rejected_lengths, beta):
    lc, lr = torch.from_numpy(chosen_lengths), torch.from_numpy(rejected_lengths)
    return ((pc - rc) / lc - (pr - rr) / lr - 1.0 / (2.0 * beta)) ** 2


def _torch_causal_attention(torch, q, k, v):
    T = q.shape[0]
    scores = q @ k.T / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~torch.tril(torch.ones(T, T, dtype=torch.bool)), float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def _torch_layer_norm(torch, x, weight, bias, eps=1e-5):
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), weight, bias, eps)


ROWS_HINT = ("The rows are independent: each sum or mean runs over the last axis only, "
             "kept as a column (keepdims=True)")
DPO_NAMES = ("policy_chosen", "policy_rejected", "ref_chosen", "ref_rejected")

EXERCISES = {e.name: e for e in (
    Exercise(
        "logsigmoid", "y = log σ(x): the backward of an elementwise function", "LogSigmoid",
        cases=(
            Case("a vector", one_input("x", normal(6, scale=3.0))),
            Case("a matrix", one_input("x", normal(3, 4))),
            Case("large |x|", one_input("x", fixed([-40.0, -10.0, -1e-3, 0.0, 1e-3, 10.0, 40.0]))),
        ),
        torch_reference=lambda torch, x: torch.nn.functional.logsigmoid(x),
        hints={"": "d/dx log σ(x) = σ'(x)/σ(x) = 1 - σ(x) = σ(-x): check the sign of x inside σ, "
                   "and multiply by `grad` (the chain rule)"},
    ),
    Exercise(
        "gelu", "y = x·Φ(x): the product rule", "GELU",
        cases=(
            Case("a vector", one_input("x", normal(7))),
            Case("a matrix", one_input("x", normal(3, 4, scale=2.0))),
            Case("the tails", one_input("x", fixed([-6.0, -3.0, -0.5, 0.0, 0.5, 3.0, 6.0]))),
        ),
        torch_reference=lambda torch, x: torch.nn.functional.gelu(x),
        hints={"": "product rule: dy/dx = Φ(x) + x·φ(x) with φ(x) = e^(-x²/2)/√(2π); "
                   "did you forget the x·φ(x) term or the 1/√(2π)?"},
    ),
    Exercise(
        "broadcast_mul", "out = a * b with broadcasting: undo it in the backward", "BroadcastMul",
        cases=(
            Case("(3, 4) * (4,)", lambda rng: ([Input("a", normal(3, 4)(rng)), Input("b", normal(4)(rng))], {})),
            Case("(2, 1, 3) * (4, 1)",
                 lambda rng: ([Input("a", normal(2, 1, 3)(rng)), Input("b", normal(4, 1)(rng))], {})),
            Case("(3, 1) * (1, 4)", lambda rng: ([Input("a", normal(3, 1)(rng)), Input("b", normal(1, 4)(rng))], {})),
            Case("(1,) * (2, 3)", lambda rng: ([Input("a", normal(1)(rng)), Input("b", normal(2, 3)(rng))], {})),
        ),
        torch_reference=lambda torch, a, b: a * b,
        hints={"": "an entry used by several outputs receives the SUM of their gradients: sum grad ∘ (the other "
                   "operand) over the axes broadcasting added (leading) or stretched (size 1, keepdims) — "
                   "a sum, not a mean"},
    ),
    Exercise(
        "softmax", "y = softmax(x) per row: a Jacobian that is not diagonal", "Softmax",
        cases=(
            Case("one row", one_input("x", normal(5))),
            Case("rows", one_input("x", normal(3, 4))),
            Case("3-d", one_input("x", normal(2, 3, 4))),
            Case("large logits", one_input("x", fixed([[1000.0, 1001.0, 999.5, 998.0], [-3.0, 0.0, 3.0, 0.5]]))),
            Case("rows of one entry", one_input("x", normal(3, 1))),
        ),
        torch_reference=lambda torch, x: torch.softmax(x, dim=-1),
        hints={"": "every output of a row depends on every input of that row: dy_i/dx_j = y_i([i=j] - y_j), "
                   "and dx_j = Σ_i grad_i dy_i/dx_j sums over all of them; y(1 - y)·grad alone is only the "
                   "diagonal (i = j). " + ROWS_HINT},
    ),
    Exercise(
        "log_softmax", "y = log softmax(x) per row", "LogSoftmax",
        cases=(
            Case("one row", one_input("x", normal(5))),
            Case("rows", one_input("x", normal(3, 4))),
            Case("3-d", one_input("x", normal(2, 3, 4))),
            Case("large logits", one_input("x", fixed([[1000.0, 1001.0, 999.5, 998.0], [-3.0, 0.0, 3.0, 0.5]]))),
        ),
        torch_reference=lambda torch, x: torch.log_softmax(x, dim=-1),
        hints={"": "dy_i/dx_j = [i=j] - softmax(x)_j: every output of a row moves with every input, so "
                   "dx_j = Σ_i grad_i dy_i/dx_j, and softmax(x) is exp(y), which forward already has. "
                   + ROWS_HINT},
    ),
    Exercise(
        "cross_entropy", "mean cross-entropy of logits: softmax minus one-hot", "CrossEntropy",
        cases=(
            Case("4 rows, 5 classes", lambda rng: (
                [Input("logits", normal(4, 5)(rng)), Input("targets", rng.integers(0, 5, 4), False)], {})),
            Case("one row", lambda rng: (
                [Input("logits", normal(1, 3)(rng)), Input("targets", np.array([2]), False)], {})),
            Case("every row the same class", lambda rng: (
                [Input("logits", normal(3, 4, scale=3.0)(rng)), Input("targets", np.array([1, 1, 1]), False)], {})),
        ),
        torch_reference=lambda torch, logits, targets: torch.nn.functional.cross_entropy(logits, targets),
        hints={"": "d loss/d logits[n, c] = (softmax(logits[n])_c - [c = target_n]) / N: subtract 1 at each row's "
                   "target, divide by the number of rows N (the loss is a mean), and multiply by `grad`"},
    ),
    Exercise(
        "layer_norm", "layer normalisation: gradients through the mean and the variance", "LayerNorm",
        cases=(
            Case("rows", lambda rng: ([Input("x", normal(3, 5)(rng)), Input("weight", normal(5)(rng)),
                                       Input("bias", normal(5)(rng))], {})),
            Case("3-d input", lambda rng: ([Input("x", normal(2, 3, 4, scale=2.0)(rng)),
                                            Input("weight", normal(4)(rng)), Input("bias", normal(4)(rng))], {})),
            Case("two features", lambda rng: ([Input("x", normal(4, 2)(rng)), Input("weight", normal(2)(rng)),
                                               Input("bias", normal(2)(rng))], {})),
        ),
        torch_reference=_torch_layer_norm,
        hints={
            "x": "μ and σ² depend on every entry of the row: dx = r·(ĝ - mean(ĝ) - x̂·mean(ĝ∘x̂)) with ĝ = grad∘w; "
                 "the mean(ĝ) term comes through μ, the x̂·mean(ĝ∘x̂) term through σ²",
            "weight": "weight is shared by every row: dweight = Σ over ALL leading axes of grad ∘ x̂",
            "bias": "bias is shared by every row: dbias = Σ over ALL leading axes of grad",
        },
    ),
    Exercise(
        "embedding", "an embedding lookup: ids that repeat must accumulate", "Embedding",
        cases=(
            Case("distinct ids", lambda rng: ([Input("ids", np.array([0, 2, 4]), False),
                                               Input("weight", normal(6, 3)(rng))], {})),
            Case("repeated ids", lambda rng: ([Input("ids", np.array([[1, 3, 1], [3, 3, 0]]), False),
                                               Input("weight", normal(5, 4)(rng))], {})),
            Case("one id everywhere", lambda rng: ([Input("ids", np.array([2, 2, 2, 2]), False),
                                                    Input("weight", normal(4, 2)(rng))], {})),
        ),
        torch_reference=lambda torch, ids, weight: torch.nn.functional.embedding(ids, weight),
        hints={"": "did you sum the gradient over repeated ids? Row v gets Σ of grad[p] over every position p with "
                   "ids[p] = v; `dW[ids] += grad` keeps only one of them when an id repeats (NumPy buffers "
                   "fancy-index writes): look for an unbuffered add in NumPy's ufunc methods"},
    ),
    Exercise(
        "attention", "single-head causal attention: dV, dP, dS, dQ, dK", "CausalAttention",
        cases=(
            Case("T=4, d=3", lambda rng: ([Input(n, normal(4, 3)(rng)) for n in ("q", "k", "v")], {})),
            Case("one token", lambda rng: ([Input(n, normal(1, 2)(rng)) for n in ("q", "k", "v")], {})),
            Case("v wider than q", lambda rng: ([Input("q", normal(5, 2)(rng)), Input("k", normal(5, 2)(rng)),
                                                 Input("v", normal(5, 3)(rng))], {})),
            Case("peaked scores", lambda rng: ([Input("q", normal(4, 2, scale=3.0)(rng)),
                                                Input("k", normal(4, 2, scale=3.0)(rng)),
                                                Input("v", normal(4, 2)(rng))], {})),
        ),
        torch_reference=_torch_causal_attention,
        hints={
            "v": "out = P v, so dv = Pᵀ grad",
            "q": "dS = P ∘ (dP - rowsum(dP ∘ P)) with dP = grad vᵀ, then dq = scale · dS k "
                 "(did you keep the scale 1/√d, and the rowsum term of softmax's backward?)",
            "k": "dk = scale · dSᵀ q: the transpose of dS, times q (not k), times the scale 1/√d",
        },
    ),
    Exercise(
        "dpo_sigmoid", "the DPO loss: its gradient with respect to the four log-probs", "dpo_loss_grads",
        loss="dpo_loss",
        cases=(
            Case("4 pairs, beta 0.1", dpo_case(4, beta=0.1)),
            Case("large margins, beta 1 (saturation)", dpo_case(5, beta=1.0, spread=30.0)),
            Case("policy = reference (start of training)", dpo_case(3, beta=0.5, policy_is_reference=True)),
            Case("one pair", dpo_case(1, beta=2.0)),
        ),
        torch_reference=_torch_dpo,
        hints={"": "d(-log σ(z))/dz = -σ(-z) (not -σ(z)); z = β·((π_c - ρ_c) - (π_r - ρ_r)) gives dz/dπ_c = β, "
                   "dz/dπ_r = -β, dz/dρ_c = -β, dz/dρ_r = +β; return them in the order "
                   + ", ".join(DPO_NAMES)},
    ),
    Exercise(
        "ipo", "the IPO loss: a squared distance to the target margin 1/(2β)", "ipo_loss_grads",
        loss="ipo_loss",
        cases=(
            Case("4 pairs, beta 0.1", ipo_case(4, beta=0.1, lengths=lambda rng, n: rng.integers(1, 20, n))),
            Case("lengths 1 (the paper's summed form)", ipo_case(3, beta=0.5, lengths=lambda rng, n: np.ones(n))),
            Case("long completions, beta 2", ipo_case(2, beta=2.0, lengths=lambda rng, n: rng.integers(50, 200, n))),
        ),
        torch_reference=_torch_ipo,
        hints={"": "dℓ/dh = 2·(h - 1/(2β)) (keep the 2), then dh/dπ_c = 1/L_c, dh/dπ_r = -1/L_r, dh/dρ_c = -1/L_c, "
                   "dh/dρ_r = 1/L_r; return them in the order " + ", ".join(DPO_NAMES)},
    ),
)}

NAMES = tuple(EXERCISES)
