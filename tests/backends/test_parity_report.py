"""backends.parity: the per-tensor comparison formulas on hand-made arrays, and the report."""

import io

import numpy as np
import pytest

import minigrad
from backends import get_backend
from backends.parity import ParityReport, compare_arrays, compare_gradients, compare_named, compare_parameters
from tests.conftest import require_torch


def test_identical_arrays():
    c = compare_arrays(np.array([1.0, -2.0, 3.0]), np.array([1.0, -2.0, 3.0]), "w")
    assert (c.name, c.shape, c.cosine, c.max_abs_err, c.max_rel_err) == ("w", (3,), 1.0, 0.0, 0.0)


def test_formulas_at_hand_computed_values():
    a = np.array([[1.0, 2.0], [0.0, 4.0]])
    b = np.array([[1.0, 2.5], [0.0, 3.0]])
    c = compare_arrays(a, b)
    # <a,b> = 1 + 5 + 12 = 18; |a| = sqrt(21); |b| = sqrt(16.25)
    assert c.cosine == pytest.approx(18 / np.sqrt(21 * 16.25), rel=1e-15)
    assert c.max_abs_err == 1.0  # at (1, 1)
    # relative errors: 0.5/2.5 = 0.2 at (0, 1); 1/4 = 0.25 at (1, 1); 0/0 at (1, 0) counts 0
    assert c.max_rel_err == 0.25
    assert (c.worst_index, c.a, c.b) == ((1, 1), 4.0, 3.0)


def test_zero_and_opposite_and_nan():
    zeros = np.zeros(3)
    assert compare_arrays(zeros, zeros).cosine == 1.0
    one_sided = compare_arrays(zeros, np.array([0.0, 1e-30, 0.0]))
    assert one_sided.cosine == 0.0 and one_sided.max_rel_err == 1.0 and one_sided.worst_index == (1,)
    assert compare_arrays(np.array([1.0, 2.0]), np.array([-1.0, -2.0])).cosine == pytest.approx(-1.0)
    with_nan = compare_arrays(np.array([1.0, np.nan]), np.array([1.0, 1.0]))
    assert with_nan.max_rel_err == np.inf and with_nan.worst_index == (1,)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match=r"compare_arrays: w has shape \(2,\) on one side and \(3,\) on the other"):
        compare_arrays(np.zeros(2), np.zeros(3), "w")


def test_names_must_match():
    with pytest.raises(ValueError, match=r"only in a \['x'\], only in b \['y'\]"):
        compare_named({"x": np.zeros(1)}, {"y": np.zeros(1)})


def test_check_names_each_offender_and_its_worst_entry():
    report = compare_named({"good": np.ones(3), "bad": np.array([1.0, 2.0, 3.0])},
                           {"good": np.ones(3), "bad": np.array([1.0, 2.0, 3.3])})
    assert isinstance(report, ParityReport) and list(report) == ["good", "bad"]
    report.check(min_cosine=0.99, max_rel_err=0.1)  # passes: 0.3/3.3 < 0.1
    assert report.failures(max_rel_err=1e-6) == {"bad": ["max rel err 9.091e-02 > 1.0e-06"]}
    with pytest.raises(AssertionError) as err:
        report.check(min_cosine=1 - 1e-9, max_rel_err=1e-6)
    message = str(err.value)
    assert message.startswith("1 of 2 tensors disagree:\n  bad: 1-cosine ")
    assert "> 1.0e-09; max rel err 9.091e-02 > 1.0e-06;" in message
    assert "worst entry (2,): a=3.0 b=3.3" in message
    assert "good" in message.split("\n\n", 1)[1]  # the whole table follows


def test_compare_gradients_and_parameters_of_minigrad_models():
    a, b = minigrad.nn.Linear(3, 2), minigrad.nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    x = minigrad.tensor(np.arange(6.0).reshape(2, 3).astype(np.float32))
    a(x).sum().backward()
    (b(x) * 2).sum().backward()
    out = io.StringIO()
    report = compare_gradients(a, b, file=out)
    assert list(report) == ["weight", "bias"]
    assert report["weight"].cosine == pytest.approx(1.0) and report["weight"].max_rel_err == pytest.approx(0.5)
    assert out.getvalue().splitlines()[0].split()[:2] == ["name", "shape"]
    assert compare_parameters(a, b, verbose=False).failures(max_abs_err=0.0) == {}


def test_a_missing_gradient_counts_as_zeros():
    a, b = minigrad.nn.Linear(2, 1), minigrad.nn.Linear(2, 1)
    a(minigrad.ones(1, 2)).sum().backward()
    report = compare_gradients(a, b, verbose=False)
    assert report["weight"].cosine == 0.0 and report["bias"].max_rel_err == 1.0


def test_works_across_backends_without_conversion_by_the_caller():
    require_torch()
    be_a, be_b = get_backend("numpy", dtype="float64"), get_backend("torch", dtype="float64")
    a, b = be_a.place(be_a.nn.Linear(3, 2)), be_b.place(be_b.nn.Linear(3, 2))
    be_b.load_numpy_state(b, be_a.state_to_numpy(a))
    x = np.random.default_rng(0).standard_normal((4, 3))
    for be, m in ((be_a, a), (be_b, b)):
        (m(be.tensor(x)) ** 2).sum().backward()
    compare_gradients(a, b, verbose=False).check(min_cosine=1 - 1e-12, max_rel_err=1e-12)


def test_the_module_docstring_example_runs(capsys):
    require_torch()
    import textwrap

    import backends.parity

    chunks = backends.parity.__doc__.split("\n\n")
    start = next(i for i, c in enumerate(chunks) if c.startswith("    from backends import get_backend"))
    end = next(i for i, c in enumerate(chunks) if "compare_gradients(a, b)" in c)
    exec(textwrap.dedent("\n\n".join(chunks[start:end + 1])), {})
    assert capsys.readouterr().out.splitlines()[0].split()[:2] == ["name", "shape"]
