"""The one-pass Adam/AdamW kernel (accel/adamw.py) against the core's NumPy update
(`minigrad.optim.adam.adam_update`): float64 at the issue's bound over several steps,
float32 to the last bit; the optimizer dispatching to it in "numba"
mode only; layouts the kernel does not take falling back to the core code. Torch parity
of the optimizers themselves is tests/minigrad/test_optim.py (run in the default mode)."""

import numpy as np
import pytest

import minigrad
from minigrad import accel as kernels
from minigrad.accel import adamw, ops
from minigrad.autograd import _faster
from minigrad.optim.adam import adam_update
from tests.minigrad.accel.helpers import REFERENCE_ATOL, assert_close

CASES = {  # (lr, betas, eps, weight_decay, decoupled)
    "adam": (1e-2, (0.9, 0.999), 1e-8, 0.0, False),
    "adam_l2": (3e-2, (0.8, 0.99), 1e-6, 0.1, False),
    "adamw": (3e-2, (0.9, 0.999), 1e-8, 0.01, True),
    "adamw_no_decay": (1e-3, (0.5, 0.9), 1e-8, 0.0, True),
}

SHAPES = [(37, 53), (300, 257)]  # one thread, and threads (>= adamw.PARALLEL_MIN_ELEMENTS entries)


def _run(update, dtype, case, steps=4, seed=0, shape=(37, 53)):
    """p, m, v after `steps` updates with fresh random gradients (the same for every update function)."""
    lr, (b1, b2), eps, wd, decoupled = CASES[case]
    rng = np.random.default_rng(seed)
    p = rng.standard_normal(shape).astype(dtype)
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t in range(1, steps + 1):
        g = (rng.standard_normal(shape) * 10.0 ** rng.integers(-4, 2, shape)).astype(dtype)
        before = g.copy()
        update(p, g, m, v, t, lr, b1, b2, eps, wd, decoupled)
        np.testing.assert_array_equal(g, before, err_msg="the update must not write the gradient")
    return p, m, v


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("case", CASES)
def test_kernel_matches_core_update_in_float64(case, shape):
    runs = (_run(update, np.float64, case, shape=shape) for update in (ops.adam_update, adam_update))
    for fast, ref, name in zip(*runs, ("p", "exp_avg", "exp_avg_sq")):
        assert_close(fast, ref, REFERENCE_ATOL * max(1.0, float(np.max(np.abs(ref)))), f"{case}: {name}")


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("case", CASES)
def test_kernel_matches_core_update_in_float32(case, shape):
    runs = (_run(update, np.float32, case, shape=shape) for update in (ops.adam_update, adam_update))
    for fast, ref, name in zip(*runs, ("p", "exp_avg", "exp_avg_sq")):
        assert fast.dtype == np.float32
        np.testing.assert_array_equal(fast, ref, err_msg=f"{case}: {name} differs from NumPy's float32 update")


def test_shapes_cover_both_kernels():
    assert min(np.prod(s) for s in SHAPES) < adamw.PARALLEL_MIN_ELEMENTS <= max(np.prod(s) for s in SHAPES)


def test_optimizer_uses_the_kernel_in_numba_mode_only():
    with kernels.kernel_mode("numba"):
        assert _faster.get(adam_update) is ops.adam_update
    with kernels.kernel_mode("numpy"):
        assert adam_update not in _faster


def test_adamw_steps_agree_between_modes():
    """Whole optimizer, both paths, float64: same parameters after three steps."""
    results = {}
    for mode in kernels.MODES:
        with kernels.kernel_mode(mode):
            rng = np.random.default_rng(3)
            w = minigrad.Tensor(rng.standard_normal((6, 5)), requires_grad=True)
            b = minigrad.Tensor(rng.standard_normal(5), requires_grad=True)
            opt = minigrad.optim.AdamW([w, b], lr=0.05, weight_decay=0.1)
            x = minigrad.tensor(rng.standard_normal((4, 6)))
            for _ in range(3):
                opt.zero_grad()
                ((x @ w + b) ** 2).sum().backward()
                opt.step()
            results[mode] = (w.data.copy(), b.data.copy(), opt.state_dict()["state"][0]["exp_avg_sq"])
    for fast, ref, name in zip(results["numba"], results["numpy"], ("w", "b", "exp_avg_sq of w")):
        assert_close(fast, ref, REFERENCE_ATOL * max(1.0, float(np.max(np.abs(ref)))), name)


def test_layouts_the_kernel_does_not_take_run_the_core_update():
    """A transposed (non-contiguous) parameter and a float32 gradient on a float64 parameter:
    the accelerated entry point falls back and still updates in place, as the core does."""
    case = CASES["adamw"]
    rng = np.random.default_rng(5)
    for make_p, g_dtype in ((lambda a: a.T, np.float64), (lambda a: a, np.float32)):
        start, outs = rng.standard_normal((7, 9)), []
        for update in (ops.adam_update, adam_update):
            p = make_p(start.copy())
            g = np.full(p.shape, 0.5, dtype=g_dtype)
            m, v = np.zeros_like(p), np.zeros_like(p)
            update(p, g, m, v, 1, case[0], *case[1], case[2], case[3], case[4])
            assert not np.array_equal(p, make_p(start)), "the parameter was not updated in place"
            outs.append(p.copy())
        assert_close(outs[0], outs[1], REFERENCE_ATOL, "fallback update")
