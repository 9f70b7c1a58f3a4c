"""Parity reports: do two models (on any backends) hold the same numbers?

A per-parameter report in the spirit of llm.c's gradient check: for each
parameter, how well the two gradients agree and where they disagree most.

    from backends import get_backend
    from backends.parity import compare_gradients
    from dpo.model import TinyGPT

    a = TinyGPT(backend=get_backend("numpy", dtype="float64"))
    b = a.to_backend(get_backend("torch", dtype="float64"))
    ids = [[5, 7, 9, 11]]
    a(ids).sum().backward()
    b(ids).sum().backward()
    report = compare_gradients(a, b)          # prints the table
    report.check(min_cosine=1 - 1e-9, max_rel_err=1e-6)   # AssertionError naming each offender

For arrays a and b of one parameter (computed in float64):

    cosine       <a, b> / (‖a‖ ‖b‖)            1 when both are all zero, 0 when only one is
    max_abs_err  max_i |a_i - b_i|
    max_rel_err  max_i |a_i - b_i| / max(|a_i|, |b_i|)   (an entry where both are 0 counts 0;
                 one that is NaN or infinite on either side counts inf)
    worst        the entry i with the largest relative error, and a_i, b_i there

A gradient that is None counts as zeros. Tensors may be NumPy arrays, minigrad
tensors or torch tensors (torch is never imported here).
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np

import minigrad


def as_numpy(x) -> np.ndarray:
    """A float64 NumPy copy of a NumPy array, minigrad tensor or torch tensor."""
    if isinstance(x, minigrad.Tensor):
        x = x.data
    elif hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, without importing torch
        x = x.detach().cpu().double().numpy()
    return np.array(x, dtype=np.float64, copy=True)


@dataclasses.dataclass(frozen=True)
class Comparison:
    """How two arrays of one name agree (see the module docstring for the formulas)."""

    name: str
    shape: tuple
    cosine: float
    max_abs_err: float
    max_rel_err: float
    worst_index: tuple
    a: float
    b: float

    def problems(self, min_cosine=None, max_rel_err=None, max_abs_err=None) -> list[str]:
        """The limits this comparison breaks, as short phrases (empty when none)."""
        found = []
        if min_cosine is not None and not self.cosine >= min_cosine:
            found.append(f"1-cosine {1.0 - self.cosine:.3e} > {1.0 - min_cosine:.1e}")
        if max_rel_err is not None and not self.max_rel_err <= max_rel_err:
            found.append(f"max rel err {self.max_rel_err:.3e} > {max_rel_err:.1e}")
        if max_abs_err is not None and not self.max_abs_err <= max_abs_err:
            found.append(f"max abs err {self.max_abs_err:.3e} > {max_abs_err:.1e}")
        return found

    def row(self) -> str:
        return (f"{self.name:<34} {str(self.shape):<12} {1.0 - self.cosine:>10.2e} {self.max_abs_err:>10.2e} "
                f"{self.max_rel_err:>10.2e}  {str(self.worst_index):<12} {self.a:>+.12e} {self.b:>+.12e}")


HEADER = (f"{'name':<34} {'shape':<12} {'1-cosine':>10} {'max|a-b|':>10} {'max rel':>10}  "
          f"{'worst at':<12} {'a there':>19} {'b there':>19}")


def compare_arrays(a, b, name="tensor") -> Comparison:
    """Compare two arrays (or tensors) of the same shape."""
    a, b = as_numpy(a), as_numpy(b)
    if a.shape != b.shape:
        raise ValueError(f"compare_arrays: {name} has shape {a.shape} on one side and {b.shape} on the other")
    norm_a, norm_b = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if norm_a == 0.0 and norm_b == 0.0:
        cosine = 1.0
    elif norm_a == 0.0 or norm_b == 0.0:
        cosine = 0.0
    else:
        cosine = float(np.dot(a.ravel(), b.ravel()) / (norm_a * norm_b))
    diff = np.abs(a - b)
    scale = np.maximum(np.abs(a), np.abs(b))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(scale > 0, diff / np.where(scale > 0, scale, 1.0), np.where(diff > 0, np.inf, 0.0))
    rel = np.where(np.isfinite(diff), rel, np.inf)  # NaN or inf on either side: the worst disagreement
    if a.size == 0:
        return Comparison(name, a.shape, cosine, 0.0, 0.0, (), 0.0, 0.0)
    worst = np.unravel_index(int(np.argmax(rel)), a.shape)
    return Comparison(
        name=name, shape=a.shape, cosine=cosine, max_abs_err=float(np.max(diff)), max_rel_err=float(rel[worst]),
        worst_index=tuple(int(i) for i in worst), a=float(a[worst]), b=float(b[worst]),
    )


class ParityReport(dict):
    """{name: Comparison}, in the order compared, with a printable table."""

    def table(self) -> str:
        return "\n".join([HEADER] + [c.row() for c in self.values()])

    def failures(self, min_cosine=None, max_rel_err=None, max_abs_err=None) -> dict:
        """{name: [broken limits]} for every comparison that breaks a given limit."""
        found = {}
        for name, c in self.items():
            problems = c.problems(min_cosine, max_rel_err, max_abs_err)
            if problems:
                found[name] = problems
        return found

    def check(self, min_cosine=None, max_rel_err=None, max_abs_err=None) -> None:
        """Raise AssertionError listing each offender (its limits broken and its
        worst entry) followed by the whole table; do nothing when all pass."""
        failed = self.failures(min_cosine, max_rel_err, max_abs_err)
        if not failed:
            return
        lines = [f"{len(failed)} of {len(self)} tensors disagree:"]
        for name, problems in failed.items():
            c = self[name]
            lines.append(f"  {name}: {'; '.join(problems)}; worst entry {c.worst_index}: a={c.a!r} b={c.b!r}")
        raise AssertionError("\n".join(lines + ["", self.table()]))


def compare_named(named_a, named_b) -> ParityReport:
    """Compare two {name: array or tensor} mappings with the same names."""
    named_a, named_b = dict(named_a), dict(named_b)
    if set(named_a) != set(named_b):
        only_a = sorted(set(named_a) - set(named_b))
        only_b = sorted(set(named_b) - set(named_a))
        raise ValueError(f"the two sides name different tensors: only in a {only_a}, only in b {only_b}")
    return ParityReport((name, compare_arrays(named_a[name], named_b[name], name)) for name in named_a)


def _gradients(model):
    return {name: (p.grad if p.grad is not None else np.zeros(tuple(p.shape))) for name, p in model.named_parameters()}


def compare_gradients(model_a, model_b, file=None, verbose=True) -> ParityReport:
    """Compare the `.grad` of every parameter of two models (matched by name; a
    missing gradient counts as zeros) and print the table to `file` (default:
    sys.stdout) when verbose."""
    report = compare_named(_gradients(model_a), _gradients(model_b))
    if verbose:
        print(report.table(), file=file or sys.stdout)
    return report


def compare_parameters(model_a, model_b, file=None, verbose=True) -> ParityReport:
    """Compare the values of every parameter of two models, matched by name."""
    report = compare_named(model_a.named_parameters(), model_b.named_parameters())
    if verbose:
        print(report.table(), file=file or sys.stdout)
    return report
