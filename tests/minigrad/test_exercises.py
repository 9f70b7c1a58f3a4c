"""The gradient-check exercises: every reference solution passes the checker, a deliberately
wrong one fails it with a verdict naming the case, the input, the entry, the expected and the
obtained value and the exercise's hint; the unfilled stubs are "not started"; the command
line's messages and exit codes; the exercises' DPO losses are the project's."""

import os
import subprocess
import sys
import types
import zlib
from pathlib import Path

import numpy as np
import pytest

import minigrad
from minigrad.exercises import EXERCISES, FAIL, NAMES, NOT_STARTED, PASS, check, check_module
from minigrad.exercises import checker as checker_module
from minigrad.exercises.checker import GRADCHECK_ATOL, GRADCHECK_RTOL, TORCH_MISSING_NOTE, load_module, stub_path
from minigrad.exercises.cli import EXIT_FAIL, EXIT_NOT_STARTED, EXIT_PASS, EXIT_USAGE, main
from minigrad.exercises.solutions import (
    attention,
    broadcast_mul,
    cross_entropy,
    dpo_sigmoid,
    embedding,
    gelu,
    ipo,
    layer_norm,
    log_softmax,
    logsigmoid,
    softmax,
)
from tests.conftest import require_torch

ROOT = Path(__file__).resolve().parents[2]
THIS_FILE = str(Path(__file__).resolve())


def with_backward(solution_class, backward):
    """The solution's Function with another backward."""
    return type(f"Wrong{solution_class.__name__}", (solution_class,), {"backward": staticmethod(backward)})


def mean_to_shape(grad, shape):
    """The classic slip: average over the broadcast axes instead of summing."""
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.mean(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.mean(axis=stretched, keepdims=True) if stretched else grad


def layer_norm_without_variance_term(ctx, grad):
    ghat = grad * ctx.weight
    dx = ctx.rstd * (ghat - ghat.mean(axis=-1, keepdims=True))
    rows = grad.reshape(-1, grad.shape[-1])
    return dx, (rows * ctx.xhat.reshape(rows.shape)).sum(axis=0), rows.sum(axis=0)


def embedding_without_accumulation(ctx, grad):
    dweight = np.zeros(ctx.weight_shape)
    dweight[ctx.ids] += grad  # a repeated id keeps only one of its gradients
    return None, dweight


def attention_without_rowsum(ctx, grad):
    dS = ctx.P * (grad @ ctx.v.T)  # softmax's backward without the rowsum term
    return ctx.scale * dS @ ctx.k, ctx.scale * dS.T @ ctx.q, ctx.P.T @ grad


def cross_entropy_without_mean(ctx, grad):
    dlogits = ctx.probs.copy()
    dlogits[np.arange(len(ctx.targets)), ctx.targets] -= 1.0
    return grad * dlogits, None


def dpo_with_sigma_of_z(pc, pr, rc, rr, beta):
    weight = beta * dpo_sigmoid.sigmoid(beta * ((pc - rc) - (pr - rr)))  # σ(z) where σ(-z) belongs
    return -weight, weight, weight, -weight


def ipo_without_the_two(pc, pr, rc, rr, chosen_lengths, rejected_lengths, beta):
    h = (pc - rc) / chosen_lengths - (pr - rr) / rejected_lengths
    slope = h - 1.0 / (2.0 * beta)  # d(u²)/du = 2u: the 2 is missing
    return slope / chosen_lengths, -slope / rejected_lengths, -slope / chosen_lengths, slope / rejected_lengths


# name -> (a module-like object holding the wrong code, the input(s) the verdict should name, the failing case)
WRONG = {
    "logsigmoid": (types.SimpleNamespace(LogSigmoid=with_backward(
        logsigmoid.LogSigmoid, lambda ctx, g: g * logsigmoid.sigmoid(ctx.x))), ("x",), "a vector"),
    "gelu": (types.SimpleNamespace(GELU=with_backward(gelu.GELU, lambda ctx, g: g * ctx.cdf)), ("x",), "a vector"),
    "broadcast_mul": (types.SimpleNamespace(BroadcastMul=with_backward(
        broadcast_mul.BroadcastMul, lambda ctx, g: (mean_to_shape(g * ctx.b, ctx.a.shape),
                                                    mean_to_shape(g * ctx.a, ctx.b.shape)))),
        ("b",), "(3, 4) * (4,)"),
    "softmax": (types.SimpleNamespace(Softmax=with_backward(
        softmax.Softmax, lambda ctx, g: g * ctx.y * (1 - ctx.y))), ("x",), "one row"),
    "log_softmax": (types.SimpleNamespace(LogSoftmax=with_backward(
        log_softmax.LogSoftmax, lambda ctx, g: g - np.exp(ctx.y) * g)), ("x",), "one row"),
    "cross_entropy": (types.SimpleNamespace(CrossEntropy=with_backward(
        cross_entropy.CrossEntropy, cross_entropy_without_mean)), ("logits",), "4 rows, 5 classes"),
    "layer_norm": (types.SimpleNamespace(LayerNorm=with_backward(
        layer_norm.LayerNorm, layer_norm_without_variance_term)), ("x",), "rows"),
    "embedding": (types.SimpleNamespace(Embedding=with_backward(
        embedding.Embedding, embedding_without_accumulation)), ("weight",), "repeated ids"),
    "attention": (types.SimpleNamespace(CausalAttention=with_backward(
        attention.CausalAttention, attention_without_rowsum)), ("q", "k"), "T=4, d=3"),
    "dpo_sigmoid": (types.SimpleNamespace(dpo_loss=dpo_sigmoid.dpo_loss, dpo_loss_grads=dpo_with_sigma_of_z),
                    ("policy_chosen",), "4 pairs, beta 0.1"),
    "ipo": (types.SimpleNamespace(ipo_loss=ipo.ipo_loss, ipo_loss_grads=ipo_without_the_two),
            ("policy_chosen",), "4 pairs, beta 0.1"),
}


def torch_installed():
    return checker_module._torch_or_none() is not None


def solution_of(name):
    return load_module(EXERCISES[name], "solution")[0]


# ---- the catalog ------------------------------------------------------------------------
def test_at_least_eight_exercises_each_with_stub_solution_cases_and_hints():
    assert len(NAMES) >= 8
    for required in ("logsigmoid", "softmax", "layer_norm", "embedding", "broadcast_mul", "attention",
                     "dpo_sigmoid", "ipo"):
        assert required in NAMES
    for name, exercise in EXERCISES.items():
        assert (ROOT / "minigrad" / "exercises" / "stubs" / f"{name}.py").is_file(), name
        assert (ROOT / "minigrad" / "exercises" / "solutions" / f"{name}.py").is_file(), name
        assert len(exercise.cases) >= 3, f"{name}: too few cases"
        inputs, _ = exercise.cases[0].make(np.random.default_rng(0))
        for item in inputs:
            if item.differentiable:
                assert exercise.hint(item.name), f"{name}: no hint for {item.name}"


def test_every_exercise_has_a_deliberately_wrong_solution_here():
    assert set(WRONG) == set(NAMES)


# ---- reference solutions pass, stubs are not started ---------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_reference_solution_passes(name):
    verdict = check(name, "solution")
    assert verdict.status == PASS, verdict.text()
    assert verdict.cases == len(EXERCISES[name].cases)
    assert verdict.torch_checked == torch_installed()
    assert verdict.text().startswith(f"PASS  {name}:")


@pytest.mark.parametrize("name", NAMES)
def test_unfilled_stub_is_not_started(name):
    verdict = check(name, "stub")
    assert verdict.status == NOT_STARTED, (
        f"{verdict.text()}\nthe stubs in the repository stay unfilled: work in a copy checked with --file, or "
        "restore the stub")
    text = verdict.text()
    entry = EXERCISES[name].entry
    assert "not started yet" in text and f"stubs/{name}.py" in text and entry in text, text
    assert "note:" not in text  # nothing was compared yet


@pytest.mark.parametrize("name", NAMES)
def test_stub_forward_is_the_solution_forward(name):
    """The stub and the solution compute the same forward (the learner only writes the backward)."""
    exercise = EXERCISES[name]
    stub, _ = load_module(exercise, "stub")
    solution, _ = load_module(exercise, "solution")
    for case in exercise.cases:
        inputs, options = case.make(np.random.default_rng(1))
        outputs = []
        for module in (stub, solution):
            tensors = [minigrad.tensor(i.values) for i in inputs]  # no grad: only the forward runs
            outputs.append(exercise.function(module).apply(*tensors, **options).data)
        np.testing.assert_array_equal(outputs[0], outputs[1], err_msg=f"{name}, case {case.name}")


# ---- wrong solutions fail, and the verdict says where ------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_wrong_solution_fails_naming_case_input_entry_expected_got_and_hint(name):
    module, inputs, case = WRONG[name]
    exercise = EXERCISES[name]
    verdict = check_module(exercise, module, THIS_FILE, use_torch=False)
    assert verdict.status == FAIL, verdict.text()
    assert verdict.case == case
    assert verdict.input_name in inputs
    assert verdict.index is not None
    assert not abs(verdict.got - verdict.expected) <= GRADCHECK_ATOL + GRADCHECK_RTOL * abs(verdict.expected)
    text = verdict.text()
    assert f'case "{case}"' in text
    assert f"the gradient of {verdict.input_name} is wrong at entry {verdict.index}" in text
    assert f"expected {verdict.expected: .10g}" in text and f"got      {verdict.got: .10g}" in text
    assert f"hint: {exercise.hint(verdict.input_name)}" in text


def test_embedding_hint_asks_about_repeated_ids():
    module, _, _ = WRONG["embedding"]
    text = check_module(EXERCISES["embedding"], module, use_torch=False).text()
    assert "did you sum the gradient over repeated ids?" in text


@pytest.mark.parametrize("name", ["dpo_sigmoid", "ipo"])
def test_hand_gradient_verdict_reports_the_learners_own_numbers(name):
    """For the DPO losses, `got` is what the learner's function returned and `expected` the true
    derivative at that entry (the reference solution's), not values scaled by an upstream gradient."""
    module, _, case_name = WRONG[name]
    exercise = EXERCISES[name]
    verdict = check_module(exercise, module, use_torch=False)
    case = next(c for c in exercise.cases if c.name == case_name)
    inputs, options = case.make(np.random.default_rng(zlib.crc32(f"{name}/{case_name}".encode())))  # the checker's
    arrays = [i.values for i in inputs]
    position = [i.name for i in inputs].index(verdict.input_name)
    true = getattr(solution_of(name), exercise.entry)(*arrays, **options)[position]
    wrong = getattr(module, exercise.entry)(*arrays, **options)[position]
    assert verdict.got == pytest.approx(wrong[verdict.index], rel=1e-12)
    assert verdict.expected == pytest.approx(true[verdict.index], rel=1e-5, abs=1e-9)
    assert "(your " + exercise.entry + ")" in verdict.text()


def test_gradcheck_verdict_numbers_are_the_analytic_and_numeric_values():
    """A backward twice too large: got is twice expected at the reported entry."""
    doubled = with_backward(softmax.Softmax, lambda ctx, g: 2 * softmax.Softmax.backward(ctx, g))
    verdict = check_module(EXERCISES["softmax"], types.SimpleNamespace(Softmax=doubled), use_torch=False)
    assert verdict.status == FAIL and verdict.case == "one row"
    assert verdict.got == pytest.approx(2 * verdict.expected, rel=1e-6)
    assert "finite differences" in verdict.judge


def test_a_small_error_that_finite_differences_miss_is_caught_by_pytorch():
    require_torch()
    off = with_backward(softmax.Softmax, lambda ctx, g: (1 + 1e-4) * softmax.Softmax.backward(ctx, g))
    verdict = check_module(EXERCISES["softmax"], types.SimpleNamespace(Softmax=off))
    assert verdict.status == FAIL, verdict.text()
    assert verdict.judge.startswith("PyTorch autograd") and verdict.input_name == "x"
    assert verdict.got == pytest.approx((1 + 1e-4) * verdict.expected, rel=1e-9)


def test_an_edited_forward_is_reported_against_pytorch():
    require_torch()

    class EditedForward(softmax.Softmax):
        @staticmethod
        def forward(ctx, x):
            return 2 * softmax.Softmax.forward(ctx, x)

        @staticmethod
        def backward(ctx, grad):
            return 2 * softmax.Softmax.backward(ctx, grad)

    verdict = check_module(EXERCISES["softmax"], types.SimpleNamespace(Softmax=EditedForward))
    assert verdict.status == FAIL
    assert "the given forward no longer matches PyTorch" in verdict.problem
    assert "solutions/softmax.py" in verdict.problem


# ---- what the backward returns: count, shape, type, exceptions ------------------------------
def check_wrong_structure(name, entry, backward):
    solution = getattr(solution_of(name), entry)
    module = types.SimpleNamespace(**{entry: with_backward(solution, backward)})
    verdict = check_module(EXERCISES[name], module, THIS_FILE, use_torch=False)
    assert verdict.status == FAIL, verdict.text()
    return verdict


def test_gradient_of_the_broadcast_shape_is_named_with_both_shapes():
    verdict = check_wrong_structure("broadcast_mul", "BroadcastMul", lambda ctx, g: (g * ctx.b, g * ctx.a))
    assert verdict.problem == ("your BroadcastMul.backward returned a gradient of shape (3, 4) for b, which has "
                               "shape (4,): a gradient always has the shape of its input")
    assert "hint: an entry used by several outputs receives the SUM" in verdict.text()


def test_wrong_number_of_gradients_lists_what_is_expected():
    verdict = check_wrong_structure("layer_norm", "LayerNorm", lambda ctx, g: g)
    assert "returned a ndarray; it must return 3, one per input, in order: d/dx, d/dweight, d/dbias" \
        in verdict.problem
    verdict = check_wrong_structure("embedding", "Embedding", lambda ctx, g: (np.zeros(ctx.weight_shape),))
    assert "returned 1 values; it must return 2, one per input, in order: None for ids, d/dweight" in verdict.problem
    assert "hint:" not in verdict.text()  # the exercise's math hint would point away from the real problem


def test_none_for_a_differentiable_input_and_a_tensor_instead_of_an_array():
    verdict = check_wrong_structure("layer_norm", "LayerNorm", lambda ctx, g: (g, None, g.sum(0)))
    assert verdict.problem == "your LayerNorm.backward returned None for weight, which needs a gradient"
    verdict = check_wrong_structure("logsigmoid", "LogSigmoid", lambda ctx, g: minigrad.tensor(g))
    assert "returned a minigrad Tensor for x; backward works on NumPy arrays" in verdict.problem


def test_hand_gradient_returning_a_scalar_is_a_shape_error():
    def mean_gradients(pc, pr, rc, rr, beta):
        return tuple(np.mean(d) for d in dpo_sigmoid.dpo_loss_grads(pc, pr, rc, rr, beta))

    module = types.SimpleNamespace(dpo_loss=dpo_sigmoid.dpo_loss, dpo_loss_grads=mean_gradients)
    verdict = check_module(EXERCISES["dpo_sigmoid"], module, use_torch=False)
    assert verdict.problem == ("your dpo_loss_grads returned a gradient of shape () for policy_chosen, which has "
                               "shape (4,): a gradient always has the shape of its input")


def test_an_exception_in_the_backward_names_its_type_and_line():
    def broken(ctx, grad):
        return grad / undefined_name  # noqa: F821

    verdict = check_wrong_structure("gelu", "GELU", broken)
    assert verdict.problem.startswith("your GELU.backward raised NameError: name 'undefined_name' is not defined")
    assert "return grad / undefined_name" in verdict.problem
    assert "hint:" not in verdict.text()


# ---- without torch ----------------------------------------------------------------------------
def test_without_torch_the_check_runs_on_finite_differences_and_says_so(monkeypatch):
    monkeypatch.setattr(checker_module, "_torch_or_none", lambda: None)
    verdict = check("attention", "solution")
    assert verdict.status == PASS and not verdict.torch_checked
    assert verdict.notes == [TORCH_MISSING_NOTE]
    assert "agree with finite differences on all" in verdict.text() and TORCH_MISSING_NOTE in verdict.text()
    module, _, _ = WRONG["attention"]
    assert check_module(EXERCISES["attention"], module).status == FAIL  # finite differences alone catch it


# ---- the command line ---------------------------------------------------------------------------
def run_cli(capsys, *argv):
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_cli_list_names_every_exercise_and_its_file(capsys):
    status, out, _ = run_cli(capsys, "list")
    assert status == EXIT_PASS
    for name, exercise in EXERCISES.items():
        assert name in out and exercise.title in out and f"minigrad/exercises/stubs/{name}.py" in out


def test_cli_check_solution_passes_and_stub_is_not_started(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no working copies here: check falls back to the packaged stub
    status, out, _ = run_cli(capsys, "check", "softmax", "--solution")
    assert status == EXIT_PASS and out.startswith("PASS  softmax")
    status, out, _ = run_cli(capsys, "check", "softmax")
    assert status == EXIT_NOT_STARTED and out.startswith(
        "NOT STARTED  softmax: not started yet: run `python -m minigrad.exercises start softmax`, then write")
    assert "is never edited" in out and "open " not in out


def test_cli_check_all_solutions(capsys):
    status, out, _ = run_cli(capsys, "check", "all", "--solution", "--no-torch")
    assert status == EXIT_PASS
    assert f"{len(NAMES)} passed, 0 failed, 0 not started of {len(NAMES)}" in out
    assert out.count("note: the comparison with PyTorch was turned off") == len(NAMES)


def test_cli_check_all_stubs_is_not_started(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, out, _ = run_cli(capsys, "check", "all", "--no-torch")
    assert status == EXIT_NOT_STARTED
    assert f"0 passed, 0 failed, {len(NAMES)} not started of {len(NAMES)}" in out


def test_cli_check_a_wrong_file_fails(capsys, tmp_path):
    wrong = tmp_path / "my_softmax.py"
    source = Path(softmax.__file__).read_text().replace(
        "return y * (grad - (grad * y).sum(axis=-1, keepdims=True))", "return grad * y * (1 - y)")
    assert source != Path(softmax.__file__).read_text()
    wrong.write_text(source)
    status, out, _ = run_cli(capsys, "check", "softmax", "--file", str(wrong), "--no-torch")
    assert status == EXIT_FAIL
    assert out.startswith('FAIL  softmax, case "one row" (x: shape (5,))')
    assert f"file: {wrong}" in out


def test_cli_a_file_with_a_syntax_error_or_missing_class(capsys, tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("import numpy as np\n\ndef backward(ctx, grad:\n    return grad\n")
    status, out, _ = run_cli(capsys, "check", "softmax", "--file", str(broken))
    assert status == EXIT_FAIL and f"{broken} has a syntax error on line 3" in out
    renamed = tmp_path / "renamed.py"
    renamed.write_text("class MySoftmax:\n    pass\n")
    status, out, _ = run_cli(capsys, "check", "softmax", "--file", str(renamed))
    assert status == EXIT_FAIL and "has no 'Softmax': keep the names the stub gives ('Softmax')" in out
    assert "hint:" not in out


def test_cli_usage_errors(capsys):
    status, _, err = run_cli(capsys, "check", "sofmax")
    assert status == EXIT_USAGE and "unknown exercise 'sofmax'; choose from: logsigmoid," in err
    status, _, err = run_cli(capsys, "check", "all", "--file", "x.py")
    assert status == EXIT_USAGE and "--file checks one exercise" in err
    status, _, err = run_cli(capsys, "check", "softmax", "--file", "no/such/file.py")
    assert status == EXIT_USAGE and "--file: no such file: no/such/file.py" in err
    status, _, err = run_cli(capsys, "check", "softmax", "--solution", "--file", "x.py")
    assert status == EXIT_USAGE and "not allowed with argument" in err
    status, out, _ = run_cli(capsys)
    assert status == EXIT_USAGE and "usage: python -m minigrad.exercises" in out


def test_python_dash_m_runs_the_checker_with_its_exit_status(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "minigrad.exercises", "check", "ipo", "--no-torch"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == EXIT_NOT_STARTED, result.stderr
    assert "NOT STARTED  ipo: not started yet: run `python -m minigrad.exercises start ipo`" in result.stdout
    assert "minigrad/exercises/stubs/ipo.py" in result.stdout


def test_start_copies_the_stub_and_check_then_reads_the_copy(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, out, _ = run_cli(capsys, "start", "softmax")
    copy = tmp_path / "exercises" / "softmax.py"
    assert status == EXIT_PASS and copy.read_text() == Path(stub_path("softmax")).read_text()
    assert "exercises/softmax.py: edit its backward, then run: python -m minigrad.exercises check softmax" in out
    status, out, _ = run_cli(capsys, "check", "softmax", "--no-torch")
    assert status == EXIT_NOT_STARTED and "open exercises/softmax.py" in out
    copy.write_text(Path(solution_of("softmax").__file__).read_text())  # the learner solves it
    status, out, _ = run_cli(capsys, "check", "softmax", "--no-torch")
    assert status == EXIT_PASS and out.startswith("PASS  softmax")
    status, out, _ = run_cli(capsys, "start", "softmax")  # never overwrites the learner's work
    assert "exists already: kept as it is" in out
    assert copy.read_text() == Path(solution_of("softmax").__file__).read_text()
    status, _, err = run_cli(capsys, "start", "sofmax")
    assert status == EXIT_USAGE and "unknown exercise 'sofmax'" in err


def test_importing_the_exercises_does_not_import_torch():
    script = ("import sys; import minigrad.exercises, minigrad.exercises.cli; "
              "print(any(m == 'torch' or m.startswith('torch.') for m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr


# ---- the exercises' DPO losses are the project's -------------------------------------------------
def test_dpo_and_ipo_exercises_compute_the_projects_losses_and_derivatives():
    from backends import get_backend
    from dpo.losses import analytic_grad_chosen, dpo_loss

    be = get_backend("numpy", dtype="float64")
    rng = np.random.default_rng(3)
    pc, pr, rc, rr = (-20.0 + 5.0 * rng.standard_normal(5) for _ in range(4))
    lengths_c, lengths_r = rng.integers(1, 30, 5).astype(np.float64), rng.integers(1, 30, 5).astype(np.float64)
    tensors = [be.tensor(a) for a in (pc, pr, rc, rr)]

    theirs = be.to_numpy(dpo_loss(*tensors, beta=0.3, loss_type="sigmoid", backend=be).losses)
    np.testing.assert_allclose(dpo_sigmoid.dpo_loss(pc, pr, rc, rr, 0.3), theirs, rtol=1e-13)
    np.testing.assert_allclose(dpo_sigmoid.dpo_loss_grads(pc, pr, rc, rr, 0.3)[0],
                               analytic_grad_chosen("sigmoid", pc, pr, rc, rr, beta=0.3), rtol=1e-13)

    theirs = be.to_numpy(dpo_loss(*tensors, beta=0.3, loss_type="ipo", chosen_lengths=lengths_c,
                                  rejected_lengths=lengths_r, backend=be).losses)
    np.testing.assert_allclose(ipo.ipo_loss(pc, pr, rc, rr, lengths_c, lengths_r, 0.3), theirs, rtol=1e-13)
    np.testing.assert_allclose(ipo.ipo_loss_grads(pc, pr, rc, rr, lengths_c, lengths_r, 0.3)[0],
                               analytic_grad_chosen("ipo", pc, pr, rc, rr, beta=0.3, chosen_lengths=lengths_c,
                                                    rejected_lengths=lengths_r), rtol=1e-12)
