"""The accelerator's switch and dispatch table: MINIGRAD_KERNELS and set_kernel_mode /
kernel_mode pick the path at call time; an op's backward belongs to its forward's path;
importing minigrad imports no numba; the core runs with numba absent."""

import inspect
import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import minigrad
import minigrad.nn.functional as F
from minigrad import accel, autograd
from minigrad.accel import ops as accelerated
from minigrad.ops.log_softmax import LogSoftmax
from tests.minigrad.accel.helpers import REFERENCE_ATOL, assert_close

ROOT = pathlib.Path(__file__).resolve().parents[3]
CORE_FILES = sorted(p for p in (ROOT / "minigrad").rglob("*.py")
                    if "accel" not in p.parts and "exercises" not in p.parts)

# One forward + backward through each accelerated op; prints the results as JSON.
OPS_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import minigrad
    import minigrad.nn.functional as F

    rng = np.random.default_rng(0)
    q, k, v = (minigrad.tensor(rng.standard_normal((2, 2, 5, 3)), requires_grad=True) for _ in range(3))
    keep = np.ones((2, 1, 1, 5), dtype=bool)
    keep[1, ..., :2] = False
    F.scaled_dot_product_attention(q, k, v, attn_mask=keep, is_causal=True).sum().backward()
    x = minigrad.tensor(rng.standard_normal((3, 7)), requires_grad=True)
    y = F.gelu(F.layer_norm(x, (7,)))
    (F.log_softmax(y, dim=-1) * minigrad.tensor(rng.standard_normal((3, 7)))).sum().backward()
    z = minigrad.tensor(rng.standard_normal((3, 7)), requires_grad=True)
    F.token_logprobs(z, np.array([1, -100, 6])).sum().backward()
    w = minigrad.tensor(rng.standard_normal((4, 2)), requires_grad=True)
    F.embedding(np.array([0, 3, 3]), w).sum().backward()
    print(json.dumps({"mode": minigrad.get_kernel_mode(), "numba_imported": sys.modules.get("numba") is not None,
                      "grads": [t.grad.data.tolist() for t in (q, k, v, x, z, w)]}))
""")
BLOCK_NUMBA = "import sys; sys.modules['numba'] = None\n"  # `import numba` then fails, as if not installed


def _run(code, mode=None):
    env = dict(os.environ)
    env.pop("MINIGRAD_KERNELS", None)
    if mode is not None:
        env["MINIGRAD_KERNELS"] = mode
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def _grads_here(mode):
    namespace = {}
    with accel.kernel_mode(mode):
        exec(OPS_SCRIPT.split("print(")[0], namespace)
    return [namespace[name].grad.data for name in ("q", "k", "v", "x", "z", "w")]


@pytest.mark.parametrize("how", ["environment", "numba_missing"])
def test_every_op_runs_its_core_code_without_numba(how):
    """MINIGRAD_KERNELS=numpy, or numba not importable: no numba is imported, and the
    gradients equal the accelerated ones of this process."""
    result = _run(OPS_SCRIPT, mode="numpy") if how == "environment" else _run(BLOCK_NUMBA + OPS_SCRIPT)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["mode"] == "numpy" and not report["numba_imported"]
    for name, theirs, mine in zip("q k v x z w".split(), report["grads"], _grads_here("numba")):
        assert_close(np.array(theirs), mine, REFERENCE_ATOL, f"d{name}: core path (subprocess) vs accelerated")


def test_core_files_import_no_numba_llvmlite_or_ctypes():
    pattern = re.compile(r"^\s*(from|import)\s+(numba|llvmlite|ctypes)\b|\baccel\b.*import|import.*\baccel\b", re.M)
    offenders = [str(p.relative_to(ROOT)) for p in CORE_FILES
                 if p.name != "__init__.py" or p.parent.name != "minigrad"
                 if pattern.search(p.read_text())]
    assert not offenders, f"core files importing numba, llvmlite, ctypes or the accelerator: {offenders}"


def test_environment_variable_default_is_numba():
    result = _run("import minigrad; print(minigrad.get_kernel_mode())")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "numba"


def test_bad_environment_variable_fails_at_import_with_clear_message():
    result = _run("import minigrad", mode="cuda")
    assert result.returncode != 0
    assert "MINIGRAD_KERNELS: kernel mode must be one of numba, numpy, got 'cuda'" in result.stderr


def test_importing_minigrad_imports_no_numba():
    code = ("import sys, minigrad, minigrad.nn.functional; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numba', 'llvmlite')))")
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_one_dispatch_table_with_a_replacement_per_accelerated_op():
    assert autograd._faster == accelerated.ACCELERATED
    for core, fast in accelerated.ACCELERATED.items():
        if isinstance(core, type):  # an op: its faster subclass
            assert issubclass(fast, core) and core.__module__.startswith("minigrad.ops."), core
        else:  # an in-place update (the optimizer's, the engine's gradient sum): same name and arguments
            assert core.__module__ in ("minigrad.optim.adam", "minigrad.autograd"), core
            assert fast.__name__ == core.__name__ and inspect.signature(fast) == inspect.signature(core), core
    functions = {core.__name__ for core in accelerated.ACCELERATED if not isinstance(core, type)}
    assert functions == {"adam_update", "accumulate"}
    with accel.kernel_mode("numpy"):
        assert autograd._faster == {}


def test_set_kernel_mode_and_context_manager():
    before = accel.get_kernel_mode()
    with pytest.raises(RuntimeError, match="boom"), minigrad.kernel_mode("numpy"):
        assert minigrad.get_kernel_mode() == "numpy"
        raise RuntimeError("boom")
    assert accel.get_kernel_mode() == before  # restored even after an error
    with pytest.raises(ValueError, match="set_kernel_mode: kernel mode must be one of numba, numpy, got 'gpu'"):
        minigrad.set_kernel_mode("gpu")
    assert accel.get_kernel_mode() == before


def test_mode_is_read_at_call_time():
    x = minigrad.tensor(np.zeros((2, 3)), requires_grad=True)
    ran = []
    for mode in ("numba", "numpy", "numba"):
        with accel.kernel_mode(mode):
            ran.append(type(F.log_softmax(x, dim=-1).grad_fn))
    assert ran == [accelerated.LogSoftmax, LogSoftmax, accelerated.LogSoftmax]


@pytest.mark.parametrize("forward_mode", accel.MODES)
def test_backward_uses_the_path_of_its_forward(forward_mode, monkeypatch):
    """Switching modes between forward and backward does not mix the two paths (the
    saved values belong to the forward's path)."""
    from minigrad.accel import attention, log_softmax, token_logprobs
    from minigrad.ops import attention as core_attention
    from minigrad.ops import token_logprobs as core_token_logprobs

    def refuse(*args):
        raise AssertionError("backward ran on the other path")

    if forward_mode == "numpy":
        for module in (attention, log_softmax, token_logprobs):
            monkeypatch.setattr(module, "backward", refuse)
    else:
        for op in (core_attention.ScaledDotProductAttention, LogSoftmax, core_token_logprobs.TokenLogprobs):
            monkeypatch.setattr(op, "backward", staticmethod(refuse))
    other = "numpy" if forward_mode == "numba" else "numba"
    rng = np.random.default_rng(1)
    q, k, v = (minigrad.tensor(rng.standard_normal((1, 2, 4, 3)), requires_grad=True) for _ in range(3))
    x = minigrad.tensor(rng.standard_normal((2, 5)), requires_grad=True)
    with accel.kernel_mode(forward_mode):
        loss = (F.scaled_dot_product_attention(q, k, v, is_causal=True).sum() + F.log_softmax(x, -1).sum()
                + F.token_logprobs(x, np.array([0, 4])).sum())
    with accel.kernel_mode(other):
        loss.backward()
    assert q.grad is not None and x.grad is not None
