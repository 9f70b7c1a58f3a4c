"""The kernel switch: MINIGRAD_KERNELS and set_kernel_mode / kernel_mode pick the path at
call time; importing minigrad compiles nothing; an op's backward uses its forward's path."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import minigrad
import minigrad.nn.functional as F
from minigrad import kernels
from tests.minigrad.kernels.helpers import REFERENCE_ATOL, assert_close

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

# One forward + backward through each kernel-backed op; prints the results as JSON.
OPS_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import minigrad
    import minigrad.nn.functional as F
    from minigrad import kernels

    rng = np.random.default_rng(0)
    q, k, v = (minigrad.tensor(rng.standard_normal((2, 2, 5, 3)), requires_grad=True) for _ in range(3))
    keep = np.ones((2, 1, 1, 5), dtype=bool)
    keep[1, ..., :2] = False
    F.scaled_dot_product_attention(q, k, v, attn_mask=keep, is_causal=True).sum().backward()
    x = minigrad.tensor(rng.standard_normal((3, 7)), requires_grad=True)
    (F.log_softmax(x, dim=-1) * minigrad.tensor(rng.standard_normal((3, 7)))).sum().backward()
    z = minigrad.tensor(rng.standard_normal((3, 7)), requires_grad=True)
    F.token_logprobs(z, np.array([1, -100, 6])).sum().backward()
    compiled = []
    if "numba" in sys.modules:
        from minigrad.kernels import attention, log_softmax, token_logprobs
        loops = [attention._forward_loop, attention._backward_loop, log_softmax._forward_rows,
                 log_softmax._backward_rows, token_logprobs._forward_rows, token_logprobs._backward_rows]
        compiled = [f.__name__ for f in loops if f.signatures]
    print(json.dumps({"mode": kernels.get_kernel_mode(), "compiled": compiled,
                      "grads": [t.grad.data.tolist() for t in (q, k, v, x, z)]}))
""")


def _run(code, mode=None):
    env = dict(os.environ)
    env.pop("MINIGRAD_KERNELS", None)
    if mode is not None:
        env["MINIGRAD_KERNELS"] = mode
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_environment_variable_selects_the_numpy_path():
    """MINIGRAD_KERNELS=numpy: the ops run on the NumPy references (no numba function
    compiles) and give the same gradients as the numba kernels in this process."""
    result = _run(OPS_SCRIPT, mode="numpy")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["mode"] == "numpy"
    assert report["compiled"] == [], f"numba functions compiled under MINIGRAD_KERNELS=numpy: {report['compiled']}"
    with kernels.kernel_mode("numba"):
        here = _run_ops_in_process()
    for name, theirs, mine in zip(("dq", "dk", "dv", "d log_softmax", "d token_logprobs"), report["grads"], here):
        assert_close(np.array(theirs), mine, REFERENCE_ATOL, f"{name}: numpy path (subprocess) vs numba path")


def _run_ops_in_process():
    """The ops part of OPS_SCRIPT, run here: the gradients of q, k, v, x, z."""
    namespace = {}
    exec(OPS_SCRIPT.split("compiled = []")[0], namespace)
    return [namespace[name].grad.data for name in ("q", "k", "v", "x", "z")]


def test_environment_variable_default_is_numba():
    result = _run("from minigrad import kernels; print(kernels.get_kernel_mode())")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "numba"


def test_bad_environment_variable_fails_at_import_with_clear_message():
    result = _run("import minigrad", mode="cuda")
    assert result.returncode != 0
    assert "MINIGRAD_KERNELS: kernel mode must be one of numba, numpy, got 'cuda'" in result.stderr


def test_importing_minigrad_compiles_nothing():
    """numba itself is not even imported until a kernel runs."""
    code = ("import sys, minigrad, minigrad.nn.functional; "
            "print(sorted(m for m in sys.modules if m == 'numba' or m.startswith('minigrad.kernels.')))")
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_set_kernel_mode_and_context_manager():
    before = kernels.get_kernel_mode()
    with pytest.raises(RuntimeError, match="boom"), minigrad.kernel_mode("numpy"):
        assert minigrad.get_kernel_mode() == "numpy"
        raise RuntimeError("boom")
    assert kernels.get_kernel_mode() == before  # restored even after an error
    with pytest.raises(ValueError, match="set_kernel_mode: kernel mode must be one of numba, numpy, got 'gpu'"):
        minigrad.set_kernel_mode("gpu")
    assert kernels.get_kernel_mode() == before


def test_mode_is_read_at_call_time(monkeypatch):
    """The same op, called under each mode, runs that mode's implementation."""
    from minigrad.kernels import log_softmax

    calls = []
    for name in ("forward_numba", "forward_reference"):
        original = getattr(log_softmax, name)
        monkeypatch.setattr(log_softmax, name, lambda x, _f=original, _n=name: calls.append(_n) or _f(x))
    x = minigrad.tensor(np.zeros((2, 3)))
    for mode in ("numba", "numpy", "numba"):
        with kernels.kernel_mode(mode):
            F.log_softmax(x, dim=-1)
    assert calls == ["forward_numba", "forward_reference", "forward_numba"]


@pytest.mark.parametrize("forward_mode", kernels.MODES)
def test_backward_uses_the_path_of_its_forward(forward_mode, monkeypatch):
    """Switching modes between forward and backward does not mix the two paths (the
    saved tensors belong to the forward's path)."""
    from minigrad.kernels import attention, log_softmax, token_logprobs

    other = "numpy" if forward_mode == "numba" else "numba"
    forbidden = "backward_reference" if other == "numpy" else "backward_numba"

    def refuse(*args):
        raise AssertionError(f"backward ran on the {other} path")

    for module in (attention, log_softmax, token_logprobs):
        monkeypatch.setattr(module, forbidden, refuse)
    rng = np.random.default_rng(1)
    q, k, v = (minigrad.tensor(rng.standard_normal((1, 2, 4, 3)), requires_grad=True) for _ in range(3))
    x = minigrad.tensor(rng.standard_normal((2, 5)), requires_grad=True)
    with kernels.kernel_mode(forward_mode):
        loss = (F.scaled_dot_product_attention(q, k, v, is_causal=True).sum() + F.log_softmax(x, -1).sum()
                + F.token_logprobs(x, np.array([0, 4])).sum())
    with kernels.kernel_mode(other):
        loss.backward()
    assert q.grad is not None and x.grad is not None
