"""The attention kernel: numba against its NumPy reference, gradcheck, torch parity
(forward and backward), masks and fully masked rows, layouts and bad input."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad
import minigrad.nn.functional as F
from minigrad.ops.attention import ScaledDotProductAttention
from tests.minigrad.accel.helpers import REFERENCE_ATOL, TORCH_ATOL, assert_close, leaf, op_both_paths, torch_leaf


def _inputs(rng, B, H, L, S, D, Dv, dtype=np.float64):
    q, k = rng.standard_normal((B, H, L, D)), rng.standard_normal((B, H, S, D))
    v, g = rng.standard_normal((B, H, S, Dv)), rng.standard_normal((B, H, L, Dv))
    return tuple(a.astype(dtype) for a in (q, k, v, g))


def _model_qkv(rng, B, T, H, D, dtype):
    """q, k, v as TinyGPT makes them: non-contiguous slices of a permuted (B, T, 3, H, D) array."""
    qkv = rng.standard_normal((B, T, 3, H, D)).astype(dtype).transpose(2, 0, 3, 1, 4)
    return qkv[0], qkv[1], qkv[2]


def _both_paths(q, k, v, g, key_padding_mask, attn_bias, is_causal, scale=None):
    return op_both_paths(ScaledDotProductAttention, (q, k, v), g, key_padding_mask=key_padding_mask,
                         attn_bias=attn_bias, is_causal=is_causal, scale=scale)


NAMES = ("out", "dq", "dk", "dv")


# ---- accelerated op == core op ------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(
    dims=st.tuples(*(st.integers(1, n) for n in (3, 3, 13, 13, 9, 9))),
    is_causal=st.booleans(),
    padding=st.booleans(),
    bias=st.sampled_from([None, "full", "per_head", "keys_only"]),
    seed=st.integers(0, 2**16),
)
def test_numba_matches_reference_float64(dims, is_causal, padding, bias, seed):
    B, H, L, S, D, Dv = dims
    rng = np.random.default_rng(seed)
    q, k, v, g = _inputs(rng, B, H, L, S, D, Dv)
    key_padding_mask = rng.random((B, S)) < 0.7 if padding else None
    bias_shape = {"full": (B, H, L, S), "per_head": (H, 1, S), "keys_only": (S,)}.get(bias)
    attn_bias = None
    if bias_shape is not None:
        attn_bias = np.where(rng.random(bias_shape) < 0.2, -np.inf, rng.standard_normal(bias_shape))
    results = _both_paths(q, k, v, g, key_padding_mask, attn_bias, is_causal)
    for name, fast, reference in zip(NAMES, results["numba"], results["numpy"]):
        assert np.isfinite(fast).all(), f"{name}: numba gave a non-finite value"
        assert_close(fast, reference, REFERENCE_ATOL, f"{name} (accelerated vs core)")


@pytest.mark.parametrize("is_causal", [True, False])
@pytest.mark.parametrize("L,S", [(37, 70), (70, 37), (64, 64), (48, 17)])
def test_numba_matches_reference_across_tile_and_block_edges(L, S, is_causal):
    """Lengths past the 4-row tiles and 16 x 16 transpose blocks of the numba kernel,
    queries and keys of different lengths, with padding and an additive bias."""
    rng = np.random.default_rng(L * 100 + S)
    q, k, v, g = _inputs(rng, 2, 2, L, S, 5, 3)
    key_padding_mask = rng.random((2, S)) < 0.8
    attn_bias = np.where(rng.random((2, 1, L, S)) < 0.1, -np.inf, rng.standard_normal((2, 1, L, S)))
    results = _both_paths(q, k, v, g, key_padding_mask, attn_bias, is_causal)
    for name, fast, reference in zip(NAMES, results["numba"], results["numpy"]):
        assert_close(fast, reference, REFERENCE_ATOL, f"{name} (accelerated vs core)")


def test_padding_masks_a_key_whatever_the_bias_holds_there():
    """The kernel adds padding and bias as one bias: a padding key stays masked out even
    where attn_bias is NaN or +inf, as in the core op, which sets its score to -inf."""
    rng = np.random.default_rng(4)
    q, k, v, g = _inputs(rng, 2, 2, 6, 6, 4, 3)
    key_padding_mask = np.array([[True] * 4 + [False] * 2, [True] * 6])
    attn_bias = rng.standard_normal((2, 1, 6, 6))
    attn_bias[0, :, :, 4] = np.nan
    attn_bias[0, :, :, 5] = np.inf
    results = _both_paths(q, k, v, g, key_padding_mask, attn_bias, False)
    for name, fast, reference in zip(NAMES, results["numba"], results["numpy"]):
        assert np.isfinite(fast).all(), f"{name}: numba gave a non-finite value"
        assert_close(fast, reference, REFERENCE_ATOL, f"{name} (accelerated vs core)")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numba_matches_reference_on_model_layout_and_tinygpt_size(dtype):
    """Non-contiguous q, k, v as the model makes them, key padding and causal, at B=24, H=4, T=96, D=16."""
    rng = np.random.default_rng(1)
    q, k, v = _model_qkv(rng, 24, 96, 4, 16, dtype)
    g = rng.standard_normal(q.shape).astype(dtype)
    lengths = rng.integers(1, 97, size=24)
    key_padding_mask = np.arange(96)[None, :] < lengths[:, None]
    results = _both_paths(q, k, v, g, key_padding_mask, None, True)
    atol = REFERENCE_ATOL if dtype == np.float64 else 2e-5
    for name, fast, reference in zip(NAMES, results["numba"], results["numpy"]):
        assert fast.dtype == dtype, f"{name}: dtype {fast.dtype}, expected {dtype}"
        assert_close(fast, reference, atol, f"{name} (accelerated vs core, {np.dtype(dtype)})")


@pytest.mark.parametrize("is_causal", [True, False])
def test_numba_matches_reference_at_t512_float64(is_causal):
    """The long-sequence case: T = 512, D = 64, the model's layout, right padding."""
    rng = np.random.default_rng(2)
    q, k, v = _model_qkv(rng, 2, 512, 2, 64, np.float64)
    g = rng.standard_normal(q.shape)
    key_padding_mask = np.arange(512)[None, :] < np.array([512, 300])[:, None]
    results = _both_paths(q, k, v, g, key_padding_mask, None, is_causal)
    for name, fast, reference in zip(NAMES, results["numba"], results["numpy"]):
        assert_close(fast, reference, REFERENCE_ATOL, f"{name} (accelerated vs core, T=512)")


# ---- gradcheck (float64), under both kernel paths -----------------------------------------
def _dead_row_padding():
    keep = np.ones((2, 1, 1, 5), dtype=bool)
    keep[1, ..., :2] = False  # batch 1 is left-padded: its causal rows 0 and 1 see no key
    return keep


GRADCHECK_CASES = {
    "causal": (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), (2, 2, 5, 3), (2, 2, 5, 3)),
    "causal_key_padding_dead_rows": (
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=_dead_row_padding(), is_causal=True),
        (2, 2, 5, 3), (2, 2, 5, 3)),
    "bool_mask_cross_lengths": (
        lambda q, k, v: F.scaled_dot_product_attention(
            q, k, v, attn_mask=np.array([[1, 0, 1, 1, 0, 1], [0, 0, 0, 0, 0, 0], [1, 1, 0, 0, 1, 1]], dtype=bool)),
        (2, 1, 3, 4), (2, 1, 6, 4)),
    "additive_mask_and_scale": (
        lambda q, k, v: F.scaled_dot_product_attention(
            q, k, v, attn_mask=np.array([[0.5, -np.inf, 0.0, 1.0]]), is_causal=True, scale=0.7),
        (1, 2, 4, 3), (1, 2, 4, 3)),
    "three_dims": (lambda q, k, v: F.scaled_dot_product_attention(q, k, v), (3, 2, 4), (3, 5, 4)),
    "two_dims_one_query": (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), (1, 3), (4, 3)),
}


@pytest.mark.parametrize("name", GRADCHECK_CASES)
def test_gradcheck(name, kernel_mode):
    fn, q_shape, kv_shape = GRADCHECK_CASES[name]
    rng = np.random.default_rng(2)
    q, k, v = (leaf(rng.standard_normal(s)) for s in (q_shape, kv_shape, kv_shape))
    assert minigrad.gradcheck(fn, (q, k, v), names=("q", "k", "v"))


def test_gradcheck_non_contiguous_inputs(kernel_mode):
    rng = np.random.default_rng(3)
    q, k, v = (leaf(a) for a in _model_qkv(rng, 2, 4, 2, 3, np.float64))
    assert not q.data.flags.c_contiguous
    fn = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)  # noqa: E731
    assert minigrad.gradcheck(fn, (q, k, v), names=("q", "k", "v"))


# ---- torch parity, forward and backward ---------------------------------------------------
def _torch_case(name, rng, dtype):
    """(q, k, v, minigrad kwargs, torch kwargs) for one named case."""
    if name == "model_call":  # as dpo/model.py: non-contiguous q, k, v, key mask (B, 1, 1, T), causal
        q, k, v = _model_qkv(rng, 3, 7, 2, 4, dtype)
        keep = np.ones((3, 1, 1, 7), dtype=bool)
        keep[0, ..., 5:] = False  # right padding
        keep[2, ..., :3] = False  # left padding: rows 0..2 of batch 2 see no key
        return q, k, v, {"attn_mask": keep, "is_causal": True}, {"attn_mask": keep, "is_causal": True}
    if name == "one_token":
        q, k, v, _ = _inputs(rng, 2, 3, 1, 1, 8, 8, dtype)
        return q, k, v, {"is_causal": True}, {"is_causal": True}
    if name == "causal_t512":
        q, k, v, _ = _inputs(rng, 1, 2, 512, 512, 8, 8, dtype)
        return q, k, v, {"is_causal": True}, {"is_causal": True}
    if name == "bool_mask_per_head":
        q, k, v, _ = _inputs(rng, 2, 3, 4, 6, 5, 2, dtype)
        mask = rng.random((2, 3, 4, 6)) < 0.7
        mask[..., 0] = True  # every row keeps a key (dead rows are tested with torch's fused path above)
        return q, k, v, {"attn_mask": mask}, {"attn_mask": mask}
    if name == "additive_and_causal":
        q, k, v, _ = _inputs(rng, 2, 2, 5, 5, 4, 4, dtype)
        bias = rng.standard_normal((2, 1, 5, 5)).astype(dtype)
        return q, k, v, {"attn_mask": bias, "is_causal": True}, {"attn_mask": bias, "is_causal": True}
    if name == "three_dims_scale":
        q, k, v, _ = _inputs(rng, 1, 3, 4, 6, 5, 2, dtype)
        return q[0], k[0], v[0], {"scale": 0.3}, {"scale": 0.3}
    if name == "broadcast_batch_dims":  # leading dims that broadcast: the composed fallback
        q, _, _, _ = _inputs(rng, 2, 3, 4, 6, 5, 2, dtype)
        _, k, v, _ = _inputs(rng, 1, 3, 4, 6, 5, 2, dtype)
        return q, k, v, {}, {}
    raise KeyError(name)


TORCH_CASES = ["model_call", "one_token", "causal_t512", "bool_mask_per_head", "additive_and_causal",
               "three_dims_scale", "broadcast_batch_dims"]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", TORCH_CASES)
def test_matches_torch(name, dtype, kernel_mode, torch):
    rng = np.random.default_rng(4)
    q, k, v, mine_kwargs, torch_kwargs = _torch_case(name, rng, dtype)
    tensors = [leaf(a) for a in (q, k, v)]
    out = F.scaled_dot_product_attention(*tensors, **mine_kwargs)
    torch_tensors = [torch_leaf(torch, a) for a in (q, k, v)]
    torch_kwargs = {key: torch.tensor(val) if isinstance(val, np.ndarray) else val for key, val in torch_kwargs.items()}
    expected = torch.nn.functional.scaled_dot_product_attention(*torch_tensors, **torch_kwargs)
    atol = TORCH_ATOL[dtype]
    assert out.dtype == dtype
    assert_close(out.data, expected.detach().numpy(), atol, f"{name}: output")
    g = rng.standard_normal(out.shape).astype(dtype)
    out.backward(gradient=g)
    expected.backward(torch.tensor(g))
    for label, mine, theirs in zip("qkv", tensors, torch_tensors):
        assert mine.grad.dtype == dtype
        assert_close(mine.grad.data, theirs.grad.numpy(), atol, f"{name}: d{label}")


def test_float_mask_that_requires_grad_gets_its_gradient(kernel_mode, torch):
    rng = np.random.default_rng(5)
    q, k, v, g = _inputs(rng, 1, 2, 3, 4, 5, 2)
    bias = rng.standard_normal((1, 2, 3, 4))
    mine = [leaf(a) for a in (q, k, v, bias)]
    out = F.scaled_dot_product_attention(*mine[:3], attn_mask=mine[3])
    out.backward(gradient=g)
    theirs = [torch_leaf(torch, a) for a in (q, k, v, bias)]
    torch.nn.functional.scaled_dot_product_attention(*theirs[:3], attn_mask=theirs[3]).backward(torch.tensor(g))
    assert_close(mine[3].grad.data, theirs[3].grad.numpy(), TORCH_ATOL[np.float64], "d attn_mask")


# ---- fully masked rows --------------------------------------------------------------------
def _left_padded(B, T):
    """(B, 1, 1, T) key mask, first half padding: with causal, the first T/2 rows see no key."""
    keep = np.ones((B, 1, 1, T), dtype=bool)
    keep[..., : T // 2] = False
    return keep


def _odd_rows_blocked(B, T):
    allowed = np.ones((T, T), dtype=bool)
    allowed[1::2] = False
    return allowed


def _every_third_row_minus_inf(B, T):
    bias = np.zeros((T, T))
    bias[::3] = -np.inf
    return bias


DEAD_MASKS = {  # name: (mask for batch B and length T, is_causal)
    "left_padding_causal": (_left_padded, True),
    "whole_batch_padded": (lambda B, T: np.zeros((B, 1, 1, T), dtype=bool), True),
    "bool_rows_all_false": (_odd_rows_blocked, False),
    "additive_rows_all_minus_inf": (_every_third_row_minus_inf, False),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", DEAD_MASKS)
def test_fully_masked_rows_give_zeros_and_no_nan(name, dtype, kernel_mode):
    B, H, T, D = 2, 2, 6, 4
    make_mask, is_causal = DEAD_MASKS[name]
    mask = make_mask(B, T)
    mask = mask.astype(dtype) if mask.dtype != bool else mask
    rng = np.random.default_rng(6)
    q, k, v, g = _inputs(rng, B, H, T, T, D, D, dtype)
    tensors = [leaf(a) for a in (q, k, v)]
    out = F.scaled_dot_product_attention(*tensors, attn_mask=mask, is_causal=is_causal)
    out.backward(gradient=g)
    allowed = np.broadcast_to(mask if mask.dtype == bool else mask == 0, (B, H, T, T))
    if is_causal:
        allowed = allowed & np.tril(np.ones((T, T), dtype=bool))
    dead = ~allowed.any(axis=-1)
    assert dead.any(), "the case must have a fully masked row"
    for label, array in [("out", out.data)] + [(f"d{n}", t.grad.data) for n, t in zip("qkv", tensors)]:
        assert np.isfinite(array).all(), f"{name}: {label} has NaN or inf"
    np.testing.assert_array_equal(out.data[dead], 0.0)
    np.testing.assert_array_equal(tensors[0].grad.data[dead], 0.0)
    if not dead.all():
        assert np.abs(out.data[~dead]).sum() > 0  # the live rows are not zeroed too


def test_fully_masked_rows_match_torch(kernel_mode, torch):
    """torch 2.13's fused CPU attention also gives zeros and zero gradients there."""
    rng = np.random.default_rng(7)
    q, k, v, g = _inputs(rng, 2, 2, 6, 6, 4, 4)
    keep = _left_padded(2, 6)
    tensors = [leaf(a) for a in (q, k, v)]
    out = F.scaled_dot_product_attention(*tensors, attn_mask=keep, is_causal=True)
    out.backward(gradient=g)
    theirs = [torch_leaf(torch, a) for a in (q, k, v)]
    expected = torch.nn.functional.scaled_dot_product_attention(*theirs, attn_mask=torch.tensor(keep), is_causal=True)
    expected.backward(torch.tensor(g))
    assert_close(out.data, expected.detach().numpy(), TORCH_ATOL[np.float64], "output")
    for label, mine, other in zip("qkv", tensors, theirs):
        assert_close(mine.grad.data, other.grad.numpy(), TORCH_ATOL[np.float64], f"d{label}")


# ---- the op and its path -----------------------------------------------------------------
def test_model_call_runs_on_the_kernel_op():
    rng = np.random.default_rng(8)
    q, k, v = (leaf(a) for a in _model_qkv(rng, 2, 5, 2, 3, np.float64))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=np.ones((2, 1, 1, 5), dtype=bool), is_causal=True)
    assert isinstance(out.grad_fn, ScaledDotProductAttention)


# ---- bad input ------------------------------------------------------------------------------
def _sdpa(q, k, v, **options):
    """The op on raw arrays (bad-input checks are the op's, on both paths)."""
    return ScaledDotProductAttention.apply(*(minigrad.tensor(a) for a in (q, k, v)), **options)


_rng = np.random.default_rng(9)
_q, _k, _v, _ = _inputs(_rng, 2, 2, 3, 4, 5, 6)

BAD_KERNEL_INPUTS = {
    "rank": (lambda: _sdpa(_q[0], _k[0], _v[0]), ValueError,
             r"q must be an array of shape \(batch, heads, length, dim\), got \(2, 3, 5\)"),
    "dtypes": (lambda: _sdpa(_q.astype(np.float32), _k, _v), TypeError,
               "q, k, v must all be float32 or all float64, got float32, float64, float64"),
    "integer": (lambda: _sdpa(*(a.astype(np.int64) for a in (_q, _k, _v))), TypeError,
                "must all be float32 or all float64"),
    "key_dim": (lambda: _sdpa(_q, _k[..., :4], _v), ValueError,
                "q and k the same last dim"),
    "heads": (lambda: _sdpa(_q, _k[:, :1], _v[:, :1]), ValueError,
              r"the same \(batch, heads\)"),
    "padding_shape": (lambda: _sdpa(_q, _k, _v, key_padding_mask=np.ones((2, 3), bool)),
                      ValueError, r"key_padding_mask must be a bool array of shape \(batch, keys\) = \(2, 4\)"),
    "padding_dtype": (lambda: _sdpa(_q, _k, _v, key_padding_mask=np.ones((2, 4))),
                      ValueError, "key_padding_mask must be a bool array"),
    "bias_shape": (lambda: _sdpa(_q, _k, _v, attn_bias=np.zeros((5, 4))), ValueError,
                   r"attn_bias of shape \(5, 4\) does not broadcast to \(batch, heads, queries, keys\)"),
    "bias_dtype": (lambda: _sdpa(_q, _k, _v, attn_bias=np.zeros((3, 4), np.float32)),
                   TypeError, "attn_bias must have q's dtype float64"),
    "F_shapes": (lambda: F.scaled_dot_product_attention(*(minigrad.tensor(a) for a in (_q, _k[..., :4], _v))),
                 RuntimeError, "q and k need the same last dim"),
    "F_integer_mask": (lambda: F.scaled_dot_product_attention(*(minigrad.tensor(a) for a in (_q, _k, _v)),
                                                             attn_mask=np.ones((3, 4), dtype=np.int64)),
                       TypeError, "attn_mask must be bool or float, got int64"),
}


@pytest.mark.parametrize("name", BAD_KERNEL_INPUTS)
def test_bad_input_raises_clear_error(name):
    call, error, message = BAD_KERNEL_INPUTS[name]
    with pytest.raises(error, match=message):
        call()


def test_an_empty_batch_gives_empty_outputs_and_gradients(kernel_mode):
    q = np.zeros((0, 2, 3, 4))
    results = _both_paths(q, q, q, np.zeros(q.shape), None, None, True)
    for mode, arrays in results.items():
        assert [a.shape for a in arrays] == [(0, 2, 3, 4)] * 4, mode
