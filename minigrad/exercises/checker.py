"""The checker: runs an exercise's backward on every case and gives a verdict a beginner can act on.

For each case (random float64 inputs from a fixed seed, several shapes, edge cases):

1. structure: the backward (or gradient function) is called once on the forward's
   context; it must return one gradient per input, each of its input's shape;
2. values: `minigrad.gradcheck` compares it with central finite differences;
3. PyTorch, where torch is installed: the forward and the gradients are compared
   with torch autograd on the same inputs and the same upstream gradient.

The first failure stops the check. The verdict names the case, the input, the
entry, the expected and the obtained value, and a hint written for the exercise.
A backward that still raises NotImplementedError is "not started", not a failure.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import traceback
import zlib

import numpy as np

from ..autograd import no_grad
from ..gradcheck import GradcheckError, gradcheck
from ..tensor import Tensor, tensor
from .catalog import EXERCISES, Exercise

PASS, FAIL, NOT_STARTED = "PASS", "FAIL", "NOT STARTED"
GRADCHECK_EPS, GRADCHECK_ATOL, GRADCHECK_RTOL = 1e-6, 1e-5, 1e-3  # minigrad.gradcheck's defaults, said out loud
TORCH_ATOL, TORCH_RTOL = 1e-8, 1e-6  # analytic gradients against torch autograd, float64
FORWARD_ATOL, FORWARD_RTOL = 1e-10, 1e-8  # the given forward against torch
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
TORCH_MISSING_NOTE = ("PyTorch is not installed, so only finite differences were checked "
                      "(install torch to compare with PyTorch too)")


@dataclasses.dataclass
class Verdict:
    """The outcome of checking one exercise. `text()` is what the command line prints."""

    exercise: str
    status: str  # PASS | FAIL | NOT STARTED
    file: str
    cases: int = 0  # how many cases were run to the end
    case: str | None = None  # the failing case, and its inputs' shapes
    shapes: str = ""
    problem: str = ""  # what is wrong, in a sentence (failures and "not started")
    input_name: str | None = None  # for a wrong value: where, and the two numbers
    index: tuple | None = None
    expected: float | None = None
    got: float | None = None
    judge: str = ""  # where `expected` comes from, in words
    got_from: str = ""  # where `got` comes from, in words
    disagreeing: str = ""  # "3 of 12"
    hint: str = ""
    notes: list = dataclasses.field(default_factory=list)
    torch_checked: bool = False  # whether PyTorch took part

    @property
    def passed(self) -> bool:
        return self.status == PASS

    def text(self) -> str:
        if self.status == PASS:
            judges = "finite differences" + (" and with PyTorch" if self.torch_checked else "")
            lines = [f"PASS  {self.exercise}: your gradients agree with {judges} on all {self.cases} cases."]
        elif self.status == NOT_STARTED:
            lines = [f"NOT STARTED  {self.exercise}: {self.problem}"]
        else:
            lines = [f'FAIL  {self.exercise}, case "{self.case}" ({self.shapes})' if self.case
                     else f"FAIL  {self.exercise}"]
            if self.index is not None:
                lines += [
                    f"  the gradient of {self.input_name} is wrong at entry {self.index}:",
                    f"    expected {self.expected: .10g}   ({self.judge})",
                    f"    got      {self.got: .10g}   ({self.got_from})",
                ]
                if self.disagreeing:
                    lines.append(f"  {self.disagreeing} entries of {self.input_name} disagree.")
            else:
                lines.append(f"  {self.problem}")
            if self.hint:
                lines.append(f"  hint: {self.hint}")
            lines.append(f"  file: {self.file}")
        if self.status != NOT_STARTED:  # nothing was compared yet
            lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


# ---- where the code comes from -------------------------------------------------------------
def display_path(path: str) -> str:
    """`path` relative to the working directory when it lies below it, else absolute."""
    path = os.path.abspath(path)
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def stub_path(name: str) -> str:
    return os.path.join(PACKAGE_DIR, "stubs", f"{name}.py")


def solution_path(name: str) -> str:
    return os.path.join(PACKAGE_DIR, "solutions", f"{name}.py")


class LoadError(Exception):
    """The learner's file could not be imported; str() says why, in one or two lines."""


def load_module(exercise: Exercise, source: str = "stub"):
    """(module, file) for `source`: "stub", "solution", or a path to a copy of the stub."""
    if source in ("stub", "solution"):
        package = "stubs" if source == "stub" else "solutions"
        path = stub_path(exercise.name) if source == "stub" else solution_path(exercise.name)
        module_name = f"{__package__}.{package}.{exercise.name}"
        return _import(lambda: importlib.import_module(module_name), path), path
    path = os.fspath(source)
    if not os.path.isfile(path):
        raise LoadError(f"no such file: {path}")
    spec = importlib.util.spec_from_file_location(f"_exercise_{exercise.name}", path)
    module = importlib.util.module_from_spec(spec)
    return _import(lambda: spec.loader.exec_module(module) or module, path), path


def _import(run, path):
    try:
        return run()
    except SyntaxError as error:
        raise LoadError(f"{display_path(path)} has a syntax error on line {error.lineno}: {error.msg}") from None
    except Exception as error:  # an exception while importing the learner's file
        raise LoadError(f"importing {display_path(path)} raised {type(error).__name__}: {error}"
                        f"{_location(error, path)}") from None


def _location(error, path):
    """' (line N: code)' for the innermost frame of `error` in the file `path`, or ''."""
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if path and os.path.abspath(f.filename) == os.path.abspath(path)]
    if not frames:
        return ""
    frame = frames[-1]
    return f" (line {frame.lineno}: {frame.line})" if frame.line else f" (line {frame.lineno})"


# ---- checking ------------------------------------------------------------------------------
def _torch_or_none():
    try:
        import torch
    except ImportError:
        return None
    return torch


def check(name: str, source: str = "stub", use_torch: bool = True) -> Verdict:
    """Check exercise `name` on the stub (default), the reference solution, or a file."""
    if name not in EXERCISES:
        raise KeyError(f"unknown exercise {name!r}; choose from: {', '.join(EXERCISES)}")
    exercise = EXERCISES[name]
    path = stub_path(name) if source == "stub" else solution_path(name) if source == "solution" else source
    try:
        module, path = load_module(exercise, source)
    except LoadError as error:
        return Verdict(name, FAIL, display_path(path), problem=str(error))
    return check_module(exercise, module, path, use_torch=use_torch)


def check_module(exercise: Exercise, module, path: str = "", use_torch: bool = True) -> Verdict:
    """Check the entry of `module` (any object with the exercise's attributes) on every case."""
    verdict = Verdict(exercise.name, PASS, display_path(path) if path else "<module>")
    torch = _torch_or_none() if use_torch else None
    verdict.torch_checked = torch is not None
    if torch is None:
        verdict.notes.append(TORCH_MISSING_NOTE if use_torch else "the comparison with PyTorch was turned off")
    try:
        function = exercise.function(module)
    except AttributeError as error:
        names = " and ".join(repr(n) for n in (exercise.entry, exercise.loss) if n)
        return _fail(verdict, exercise, hint="", problem=f"{verdict.file} has no {error.name!r}: keep the names "
                                                         f"the stub gives ({names})")
    for number, case in enumerate(exercise.cases):
        rng = np.random.default_rng(zlib.crc32(f"{exercise.name}/{case.name}".encode()))
        inputs, options = case.make(rng)
        verdict.case = case.name
        verdict.shapes = ", ".join(f"{i.name}: shape {tuple(i.values.shape)}" for i in inputs)
        failed = _check_case(verdict, exercise, function, inputs, options, rng, torch, path)
        if failed is not None:
            return failed
        verdict.cases = number + 1
    verdict.case, verdict.shapes = None, ""
    return verdict


def _fail(verdict, exercise, input_name=None, **fields):
    fields.setdefault("hint", exercise.hint(input_name))
    return dataclasses.replace(verdict, status=FAIL, input_name=input_name, **fields)


def _as_tensors(inputs):
    return [tensor(i.values.astype(np.float64), requires_grad=True) if i.differentiable
            else tensor(np.asarray(i.values)) for i in inputs]


def _check_case(verdict, exercise, function, inputs, options, rng, torch, path):
    """None when the case passes, else the failing Verdict."""
    where = f"{exercise.entry}" if exercise.loss else f"{exercise.entry}.backward"
    tensors = _as_tensors(inputs)
    try:
        with np.errstate(all="ignore"):
            out = function.apply(*tensors, **options)
    except Exception as error:
        return _fail(verdict, exercise, hint="", problem=(
            f"the given forward raised {type(error).__name__}: {error}{_location(error, path)}; it is not part of "
            f"the exercise: restore it from {display_path(solution_path(exercise.name))}"))
    # a hand-gradient function returns dℓ_i/dx_i itself: upstream ones leave it as it is
    upstream = np.ones(out.shape) if exercise.loss else rng.standard_normal(out.shape)
    try:
        with np.errstate(all="ignore"):
            grads = type(out.grad_fn).backward(out.grad_fn, upstream.copy())  # a copy: a backward may write into it
    except NotImplementedError:
        if os.path.abspath(path) == os.path.abspath(stub_path(exercise.name)):  # the packaged stub stays as it is
            todo = (f"run `python -m minigrad.exercises start {exercise.name}`, then write {where} in the copy it "
                    f"makes (the packaged stub {verdict.file} is never edited)")
        else:
            todo = f"open {verdict.file} and write {where} (it still raises NotImplementedError)"
        return dataclasses.replace(verdict, status=NOT_STARTED, case=None, shapes="",
                                   problem="not started yet: " + todo)
    except Exception as error:  # an error in the learner's code: the exercise's math hint is beside the point
        return _fail(verdict, exercise, hint="", problem=f"your {where} raised {type(error).__name__}: {error}"
                                                         f"{_location(error, path)}")
    problem, grads = _structure_problem(exercise, where, inputs, grads)
    if problem:  # the hint speaks of the math: it fits a gradient of the wrong shape, not a wrong return value
        return _fail(verdict, exercise, problem=problem, **({} if "a gradient always has the shape" in problem
                                                           else {"hint": ""}))

    names = [i.name for i in inputs]
    try:
        with np.errstate(all="ignore"):
            gradcheck(lambda *xs: function.apply(*xs, **options), tensors, eps=GRADCHECK_EPS, atol=GRADCHECK_ATOL,
                      rtol=GRADCHECK_RTOL, names=names)
    except GradcheckError as error:
        if exercise.loss:
            failure = _hand_gradient_failure(verdict, exercise, function, tensors, inputs, options, grads)
            if failure is not None:
                return failure
        return _gradcheck_failure(verdict, exercise, where, error)
    if torch is not None:
        return _torch_problem(verdict, exercise, where, inputs, options, out.data, grads, upstream, torch)
    return None


def _structure_problem(exercise, where, inputs, grads):
    """(a sentence saying what is wrong with the returned gradients or '', the gradients as a list)."""
    count = len(inputs)
    if not isinstance(grads, (tuple, list)):
        grads = [grads] if count == 1 else grads
    if not isinstance(grads, (tuple, list)) or len(grads) != count:
        got = f"{len(grads)} values" if isinstance(grads, (tuple, list)) else f"a {type(grads).__name__}"
        wanted = ", ".join(f"d/d{i.name}" if i.differentiable else f"None for {i.name}" for i in inputs)
        return f"your {where} returned {got}; it must return {count}, one per input, in order: {wanted}", None
    grads = list(grads)
    for position, (item, grad) in enumerate(zip(inputs, grads)):
        if not item.differentiable:
            continue
        if grad is None:
            return f"your {where} returned None for {item.name}, which needs a gradient", None
        if isinstance(grad, Tensor):
            return (f"your {where} returned a minigrad Tensor for {item.name}; backward works on NumPy arrays "
                    "(ctx holds NumPy arrays, so plain NumPy operations give one)"), None
        array = np.asarray(grad)
        if not np.issubdtype(array.dtype, np.number):
            return f"your {where} returned {type(grad).__name__} for {item.name}, not an array of numbers", None
        if array.shape != item.values.shape:
            return (f"your {where} returned a gradient of shape {array.shape} for {item.name}, which has shape "
                    f"{item.values.shape}: a gradient always has the shape of its input"), None
        grads[position] = array.astype(np.float64)
    return "", grads


def _gradcheck_failure(verdict, exercise, where, error):
    """The verdict for a gradcheck failure, from the fields GradcheckError carries."""
    return _fail(verdict, exercise, input_name=error.input_name, index=error.index, expected=error.numeric,
                 got=error.analytic, disagreeing=f"{error.failures} of {error.total}",
                 judge="finite differences of the forward, for the upstream gradient the checker passed in",
                 got_from=f"your {where}, given that upstream gradient")


def _hand_gradient_failure(verdict, exercise, function, tensors, inputs, options, grads):
    """For a hand-gradient exercise, the worst entry in the learner's own terms: the derivatives
    their function returned against central differences of the summed loss (each example's
    loss depends on that example only, so d Σ_k ℓ_k / dx_i = dℓ_i/dx_i)."""
    with no_grad(), np.errstate(all="ignore"):
        for tensor_, item, grad in zip(tensors, inputs, grads):
            if not item.differentiable:
                continue
            data, numeric = tensor_.data, np.zeros(item.values.shape)
            for index in np.ndindex(data.shape):
                original = data[index]
                data[index] = original + GRADCHECK_EPS
                plus = float(function.apply(*tensors, **options).data.sum())
                data[index] = original - GRADCHECK_EPS
                minus = float(function.apply(*tensors, **options).data.sum())
                data[index] = original
                numeric[index] = (plus - minus) / (2 * GRADCHECK_EPS)
            index, count = _worst(grad, numeric, GRADCHECK_ATOL, GRADCHECK_RTOL)
            if index is not None:
                return _fail(verdict, exercise, input_name=item.name, index=tuple(int(j) for j in index),
                             expected=float(numeric[index]), got=float(grad[index]),
                             disagreeing=f"{count} of {grad.size}", judge="finite differences of the loss",
                             got_from=f"your {exercise.entry}")
    return None


def _worst(got, expected, atol, rtol):
    """(index of the worst entry, number of entries outside atol + rtol·|expected|) or (None, 0)."""
    excess = np.abs(got - expected) - (atol + rtol * np.abs(expected))
    excess = np.where(np.isnan(excess), np.inf, excess)
    bad = excess > 0
    if not bad.any():
        return None, 0
    return np.unravel_index(int(np.argmax(excess)), got.shape), int(bad.sum())


def _torch_problem(verdict, exercise, where, inputs, options, out, grads, upstream, torch):
    """Compare the forward and the gradients with torch autograd; None when they agree."""
    leaves = [torch.tensor(i.values, dtype=torch.float64, requires_grad=True) if i.differentiable
              else torch.from_numpy(np.asarray(i.values, dtype=np.int64)) for i in inputs]
    expected_out = exercise.torch_reference(torch, *leaves, **options)
    index, count = _worst(out, expected_out.detach().numpy(), FORWARD_ATOL, FORWARD_RTOL)
    if index is not None:
        return _fail(verdict, exercise, hint="", problem=(
            f"the given forward no longer matches PyTorch (output entry {tuple(int(j) for j in index)}: expected "
            f"{float(expected_out.detach().numpy()[index]):.10g}, got {float(out[index]):.10g}); did you edit it? "
            f"Restore it from {display_path(solution_path(exercise.name))}"))
    expected_out.backward(torch.from_numpy(np.asarray(upstream, dtype=np.float64)))
    for item, leaf, grad in zip(inputs, leaves, grads):
        if not item.differentiable:
            continue
        expected = leaf.grad.numpy() if leaf.grad is not None else np.zeros(item.values.shape)
        index, count = _worst(grad, expected, TORCH_ATOL, TORCH_RTOL)
        if index is not None:
            judge = "PyTorch autograd" + ("" if exercise.loss else ", for the same upstream gradient")
            return _fail(verdict, exercise, input_name=item.name, index=tuple(int(j) for j in index),
                         expected=float(expected[index]), got=float(grad[index]), judge=judge,
                         got_from=f"your {where}", disagreeing=f"{count} of {grad.size}")
    return None
