"""The fused token log-prob kernel: numba against its NumPy reference, gradcheck, torch
parity with -cross_entropy(reduction="none") (forward and backward, up to V = 32,000),
memory (no (..., V) tensor in forward, one in backward), ignore_index, bad input."""

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad
import minigrad.nn.functional as F
from minigrad.ops.token_logprobs import TokenLogprobs
from tests.minigrad.accel.helpers import (
    REFERENCE_ATOL,
    TORCH_ATOL,
    assert_close,
    float32_gradient_atol,
    leaf,
    non_contiguous,
    op_both_paths,
    torch_leaf,
)


def _targets(rng, shape, vocab, ignore_index=-100, ignored=0.25):
    targets = rng.integers(0, vocab, size=shape)
    return np.where(rng.random(shape) < ignored, ignore_index, targets)


@settings(max_examples=60, deadline=None)
@given(
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=3).map(tuple),
    vocab=st.integers(1, 80),
    spread=st.sampled_from([1.0, 30.0, 300.0]),
    ignore_index=st.sampled_from([-100, 0, 3]),
    seed=st.integers(0, 2**16),
)
def test_numba_matches_reference_float64(shape, vocab, spread, ignore_index, seed):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal(shape + (vocab,)) * spread
    targets = _targets(rng, shape, vocab, ignore_index)
    g = rng.standard_normal(shape)
    results = op_both_paths(TokenLogprobs, (logits,), g, targets=targets, ignore_index=ignore_index)
    (out_fast, dx_fast), (out_ref, dx_ref) = results["numba"], results["numpy"]
    assert_close(out_fast, out_ref, REFERENCE_ATOL, "log p(target) (accelerated vs core)")
    assert_close(dx_fast, dx_ref, REFERENCE_ATOL, "d logits (accelerated vs core)")


@pytest.mark.parametrize("name", ["sequence", "one_class", "all_ignored", "non_contiguous"])
def test_gradcheck(name, kernel_mode):
    rng = np.random.default_rng(1)
    vocab = 1 if name == "one_class" else 5
    logits = rng.standard_normal((2, 3, vocab)) * 2
    targets = _targets(rng, (2, 3), vocab)
    if name == "all_ignored":
        targets[...] = -100
    if name == "non_contiguous":
        logits = non_contiguous(logits)
    x = leaf(logits)
    assert minigrad.gradcheck(lambda x: F.token_logprobs(x, targets), (x,))


TORCH_CASES = {  # name: (rows, vocab, ignore_index)
    "tinygpt_vocab": (24 * 4, 260, -100),
    "custom_ignore_index": (12, 7, 2),
    "vocab_32000": (6, 32_000, -100),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", TORCH_CASES)
def test_matches_torch_cross_entropy(name, dtype, kernel_mode, torch):
    rows, vocab, ignore_index = TORCH_CASES[name]
    rng = np.random.default_rng(2)
    logits = (rng.standard_normal((rows, vocab)) * 3).astype(dtype)
    targets = _targets(rng, (rows,), vocab, ignore_index)
    g = rng.standard_normal(rows).astype(dtype)
    mine = leaf(logits)
    out = F.token_logprobs(mine, targets, ignore_index=ignore_index)
    out.backward(gradient=g)
    theirs = torch_leaf(torch, logits)
    expected = -torch.nn.functional.cross_entropy(
        theirs, torch.tensor(targets), ignore_index=ignore_index, reduction="none"
    )
    expected.backward(torch.tensor(g))
    assert out.dtype == dtype and mine.grad.dtype == dtype
    assert_close(out.data, expected.detach().numpy(), TORCH_ATOL[dtype], f"{name}: log p(target)")
    assert_close(mine.grad.data, theirs.grad.numpy(), TORCH_ATOL[dtype], f"{name}: d logits")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sequence_logits_match_torch(dtype, kernel_mode, torch):
    """(B, T, V) logits, non-contiguous, against torch's log_softmax + gather."""
    rng = np.random.default_rng(3)
    logits = non_contiguous((rng.standard_normal((3, 5, 11)) * 2).astype(dtype))
    targets = _targets(rng, (3, 5), 11)
    g = rng.standard_normal((3, 5)).astype(dtype)
    mine = leaf(logits)
    out = F.token_logprobs(mine, minigrad.tensor(targets))
    out.backward(gradient=g)
    theirs = torch_leaf(torch, logits)
    valid = torch.tensor(targets != -100)
    picked = torch.nn.functional.log_softmax(theirs, dim=-1).gather(-1, torch.tensor(np.maximum(targets, 0))[..., None])
    expected = picked[..., 0].masked_fill(~valid, 0.0)
    expected.backward(torch.tensor(g))
    assert_close(out.data, expected.detach().numpy(), TORCH_ATOL[dtype], "log p(target)")
    grad_atol = TORCH_ATOL[dtype] if dtype == np.float64 else float32_gradient_atol(g)
    assert_close(mine.grad.data, theirs.grad.numpy(), grad_atol, "d logits")


def test_cross_entropy_runs_on_the_fused_op(kernel_mode, torch):
    rng = np.random.default_rng(4)
    logits, targets = rng.standard_normal((2, 5, 3)), _targets(rng, (2, 3), 5)  # class dim 1, as torch
    mine = leaf(logits)
    loss = F.cross_entropy(mine, minigrad.tensor(targets))
    loss.backward()
    theirs = torch_leaf(torch, logits)
    torch.nn.functional.cross_entropy(theirs, torch.tensor(targets)).backward()
    assert_close(mine.grad.data, theirs.grad.numpy(), TORCH_ATOL[np.float64], "cross_entropy d logits")
    assert isinstance(F.token_logprobs(leaf(logits[:, :, 0]), targets[:, 0]).grad_fn, TokenLogprobs)


def test_ignored_positions_give_zero_and_no_gradient(kernel_mode):
    logits = leaf(np.random.default_rng(5).standard_normal((4, 6)))
    targets = np.array([1, -100, 5, -100])
    out = F.token_logprobs(logits, targets)
    out.backward(gradient=np.ones(4))
    np.testing.assert_array_equal(out.data[[1, 3]], 0.0)
    np.testing.assert_array_equal(logits.grad.data[[1, 3]], 0.0)
    assert (out.data[[0, 2]] < 0).all()
    np.testing.assert_allclose(logits.grad.data[[0, 2]].sum(axis=-1), 0.0, atol=1e-12)  # 1 - Σ softmax = 0


def _peak_bytes(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_numba_forward_builds_no_vocab_sized_array_and_backward_one():
    """At V = 32,000: forward allocates O(rows), backward exactly one (rows, V) array."""
    rng = np.random.default_rng(6)
    logits = rng.standard_normal((64, 32_000)).astype(np.float32)  # 8 MiB
    targets = _targets(rng, (64,), 32_000)
    g = np.ones(64, dtype=np.float32)
    from minigrad.accel import token_logprobs

    out, lse = token_logprobs.forward(logits, targets, -100)  # compile outside the measurement
    token_logprobs.backward(logits, targets, lse, g, -100)
    forward_peak = _peak_bytes(lambda: token_logprobs.forward(logits, targets, -100))
    backward_peak = _peak_bytes(lambda: token_logprobs.backward(logits, targets, lse, g, -100))
    assert forward_peak < logits.nbytes / 100, f"forward peak {forward_peak} bytes"
    assert logits.nbytes <= backward_peak < 1.1 * logits.nbytes, f"backward peak {backward_peak} bytes"


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: F.token_logprobs(minigrad.tensor(np.zeros((2, 3, 4))), np.zeros((3, 2), dtype=np.int64)),
         ValueError, r"logits of shape \(2, 3, 4\) need targets of shape \(2, 3\), got \(3, 2\)"),
        (lambda: F.token_logprobs(minigrad.tensor(np.zeros((2, 4))), np.array([1, 4])), IndexError,
         r"target 4 is out of range for 4 classes \(at position \(1,\); it is not ignore_index=-100\)"),
        (lambda: F.token_logprobs(minigrad.tensor(np.zeros((2, 4))), np.array([-1, 0])), IndexError,
         "target -1 is out of range for 4 classes"),
        (lambda: F.token_logprobs(minigrad.tensor(np.zeros((2, 4))), np.array([0.0, 1.0])), TypeError,
         "token_logprobs: index must be an integer tensor, got float64"),
        (lambda: F.token_logprobs(minigrad.tensor(np.zeros((2, 4), dtype=np.int64)), np.array([0, 1])), TypeError,
         "token_logprobs: logits must be a float32 or float64 array, got int64"),
        (lambda: F.token_logprobs(minigrad.tensor(np.zeros((2, 0))), np.zeros(2, dtype=np.int64)), ValueError,
         r"logits need a last \(vocabulary\) dim of size >= 1"),
    ],
    ids=["target_shape", "target_too_big", "target_negative", "float_targets", "integer_logits", "empty_vocab"],
)
def test_bad_input_raises_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()


def _head_logprobs(rng, rows=64, width=16, vocab=32_000):
    """w (vocab, width) leaf, x (rows, width) and targets: an LM head, F.linear(x, w), then the op
    (the Linear's output is a reshaped view of its matmul's result, held by nothing else)."""
    w = leaf(rng.standard_normal((vocab, width)) * 0.1)
    return w, minigrad.tensor(rng.standard_normal((rows, width))), _targets(rng, (rows,), vocab)


def _core_grad(w, x, targets):
    with minigrad.accel.kernel_mode("numpy"):
        w2 = leaf(w.data.copy())
        F.token_logprobs(F.linear(x, w2), minigrad.tensor(targets)).sum().backward()
    return w2.grad.data


def test_backward_writes_into_logits_that_nothing_else_holds():
    """The logits' memory takes their gradient when only the graph holds them: no second
    (rows, V) array during backward, and the same weight gradient as the core op's."""
    rng = np.random.default_rng(7)
    w, x, targets = _head_logprobs(rng)
    with minigrad.accel.kernel_mode("numba"):
        F.token_logprobs(F.linear(x, w), minigrad.tensor(targets)).sum().backward()  # compiles, untimed
        w.grad = None
        loss = F.token_logprobs(F.linear(x, w), minigrad.tensor(targets)).sum()
        logits_bytes = 64 * 32_000 * 8
        peak = _peak_bytes(loss.backward)
    assert peak < 0.6 * logits_bytes, f"backward peak {peak} bytes: the logits' gradient got its own array"
    assert_close(w.grad.data, _core_grad(w, x, targets), REFERENCE_ATOL, "d w (logits' memory reused)")


@pytest.mark.parametrize("holder", ["variable", "detached_alias", "view", "base", "retain_graph"])
def test_backward_leaves_logits_that_something_else_holds(holder):
    """Held by the user (the tensor, a detached tensor sharing its memory, a view of its
    array or of its base array) or needed again (retain_graph): the logits keep their values, the gradient is
    the core op's, and a second backward through a retained graph gives it again."""
    rng = np.random.default_rng(8)
    w, x, targets = _head_logprobs(rng, rows=8, vocab=50)
    with minigrad.accel.kernel_mode("numba"):
        logits = F.linear(x, w)
        assert logits.data.base is not None, "the base case below needs the Linear's reshaped view"
        before = logits.data.copy()
        loss = F.token_logprobs(logits, minigrad.tensor(targets)).sum()
        kept = {"detached_alias": logits.detach, "view": lambda: logits.data[:2],
                "base": lambda: logits.data.base}.get(holder, lambda: None)()
        if holder != "variable":
            del logits
        loss.backward(retain_graph=holder == "retain_graph")
        if holder == "retain_graph":
            first = w.grad.data.copy()
            loss.backward()
            assert_close(w.grad.data, 2 * first, REFERENCE_ATOL, "second backward through the retained graph")
            w.grad.data[...] = first
    assert_close(w.grad.data, _core_grad(w, x, targets), REFERENCE_ATOL, f"d w ({holder})")
    if holder == "variable":  # the only other holder is `logits` itself
        np.testing.assert_array_equal(logits.data, before)
    elif holder == "detached_alias":
        np.testing.assert_array_equal(kept.data, before)
    elif holder == "view":
        np.testing.assert_array_equal(kept, before[:2])
    elif holder == "base":
        np.testing.assert_array_equal(kept.reshape(before.shape), before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_in_place_kernel_equals_the_two_array_kernel(dtype):
    """backward(..., into_logits=True) returns the logits' own memory holding exactly what the
    kernel writes into a new array, ignored rows (zeros) included."""
    from minigrad.accel import token_logprobs

    rng = np.random.default_rng(9)
    logits = (rng.standard_normal((2, 5, 300)) * 4).astype(dtype)
    targets = _targets(rng, (2, 5), 300, ignored=0.3)
    g = rng.standard_normal((2, 5)).astype(dtype)
    _, lse = token_logprobs.forward(logits, targets, -100)
    expected = token_logprobs.backward(logits, targets, lse, g, -100)
    buffer = logits.copy()
    got = token_logprobs.backward(buffer, targets, lse, g, -100, into_logits=True)
    assert np.shares_memory(got, buffer) and got.shape == logits.shape
    np.testing.assert_array_equal(got, expected)
