"""The ops a model and a loss need: softmax, log_softmax, layer_norm, embedding,
cross_entropy / nll_loss / mse_loss, linear, scaled_dot_product_attention
(gradcheck, torch parity, float32 dtypes), and dropout (mask semantics, and torch
parity with the mask torch drew)."""

import numpy as np
import pytest

import minigrad
import minigrad.nn.functional as F
from minigrad.ops.dropout import Dropout
from tests.minigrad.op_cases import (
    Arg,
    as_numpy,
    assert_close,
    case,
    check_float32_dtypes,
    check_gradcheck,
    check_torch_parity,
    params,
)

IDS = np.array([[1, 4, 1], [0, 2, 4]])  # id 1 and id 4 used twice
TARGETS = np.array([1, -100, 4, 0])
TARGETS_CUSTOM_IGNORE = np.array([1, 2, 4, 2])
TARGETS_ALL_IGNORED = np.array([-100, -100, -100, -100])
TARGETS_3D = np.array([[0, 4, -100], [2, 2, 1]])
ALLOWED = np.array([  # (L=4, S=5): True = may attend
    [True, False, True, True, False],
    [True, True, False, False, False],
    [False, True, True, True, True],
    [True, False, False, False, True],
])
DEAD_ROW = ALLOWED.copy()
DEAD_ROW[1] = False  # query 1 may attend to nothing
ADDITIVE = np.array([
    [0.0, -1.0, 0.5, -np.inf, 0.0],
    [1.0, 0.0, -2.0, 0.0, -np.inf],
    [0.0, 0.0, 0.0, 0.0, 0.0],
    [-0.5, 2.0, -np.inf, 1.0, 0.0],
])
Q, KV = (2, 2, 4, 3), (2, 2, 5, 3)


def _t(lib, array):
    return lib.tensor(array)


CASES = [
    case("softmax_last", lambda lib, F, x: F.softmax(x, dim=-1), (3, 5)),
    case("softmax_first", lambda lib, F, x: F.softmax(x, dim=0), (3, 5)),
    case("softmax_middle_3d", lambda lib, F, x: F.softmax(x, dim=1), (2, 3, 4)),
    case("softmax_method", lambda lib, F, x: x.softmax(-1), (2, 3, 4)),
    case("softmax_large_logits", lambda lib, F, x: F.softmax(x * 300.0, dim=-1), (3, 5)),
    case("log_softmax_last", lambda lib, F, x: F.log_softmax(x, dim=-1), (3, 5)),
    case("log_softmax_first", lambda lib, F, x: F.log_softmax(x, dim=0), (3, 5)),
    case("log_softmax_middle_3d", lambda lib, F, x: F.log_softmax(x, dim=-2), (2, 3, 4)),
    case("log_softmax_method", lambda lib, F, x: x.log_softmax(-1), (2, 3, 4)),
    case("log_softmax_large_logits", lambda lib, F, x: F.log_softmax(x * 300.0, dim=-1), (3, 5)),
    case("layer_norm", lambda lib, F, x, w, b: F.layer_norm(x, (4,), w, b), (2, 3, 4), (4,), (4,)),
    case("layer_norm_int_shape_eps", lambda lib, F, x, w, b: F.layer_norm(x, [4], w, b, eps=1e-2),
         (3, 4), (4,), (4,)),
    case("layer_norm_no_affine", lambda lib, F, x: F.layer_norm(x, (4,)), (2, 3, 4)),
    case("layer_norm_weight_only", lambda lib, F, x, w: F.layer_norm(x, (4,), w), (3, 4), (4,)),
    case("layer_norm_two_dims", lambda lib, F, x, w, b: F.layer_norm(x, (3, 4), w, b), (2, 3, 4), (3, 4), (3, 4)),
    case("embedding", lambda lib, F, w: F.embedding(_t(lib, IDS), w), (5, 3)),
    # the padding row gets no gradient by definition (not its derivative): torch parity only
    case("embedding_padding_idx", lambda lib, F, w: F.embedding(_t(lib, IDS), w, padding_idx=4), (5, 3),
         finite_differences=False),
    case("embedding_then_matmul", lambda lib, F, w, m: F.embedding(_t(lib, IDS), w) @ m, (5, 3), (3, 2)),
    case("cross_entropy_mean", lambda lib, F, x: F.cross_entropy(x, _t(lib, TARGETS)), (4, 5)),
    case("cross_entropy_sum", lambda lib, F, x: F.cross_entropy(x, _t(lib, TARGETS), reduction="sum"), (4, 5)),
    case("cross_entropy_none", lambda lib, F, x: F.cross_entropy(x, _t(lib, TARGETS), reduction="none"), (4, 5)),
    case("cross_entropy_ignore_index",
         lambda lib, F, x: F.cross_entropy(x, _t(lib, TARGETS_CUSTOM_IGNORE), ignore_index=2), (4, 5)),
    case("cross_entropy_spatial", lambda lib, F, x: F.cross_entropy(x, _t(lib, TARGETS_3D)), (2, 5, 3)),
    case("cross_entropy_spatial_none",
         lambda lib, F, x: F.cross_entropy(x, _t(lib, TARGETS_3D), reduction="none"), (2, 5, 3)),
    case("cross_entropy_unbatched", lambda lib, F, x: F.cross_entropy(x, _t(lib, np.array(3))), (5,)),
    case("cross_entropy_all_ignored", lambda lib, F, x: F.cross_entropy(x, _t(lib, TARGETS_ALL_IGNORED)), (4, 5),
         finite_differences=False),
    case("nll_loss", lambda lib, F, x: F.nll_loss(F.log_softmax(x, dim=1), _t(lib, TARGETS)), (4, 5)),
    case("nll_loss_sum", lambda lib, F, x: F.nll_loss(x, _t(lib, TARGETS), reduction="sum"), (4, 5)),
    case("mse_loss", lambda lib, F, x, y: F.mse_loss(x, y), (3, 4), (3, 4)),
    case("mse_loss_none", lambda lib, F, x, y: F.mse_loss(x, y, reduction="none"), (3, 4), (3, 4)),
    case("linear", lambda lib, F, x, w, b: F.linear(x, w, b), (2, 3, 4), (5, 4), (5,)),
    case("linear_no_bias", lambda lib, F, x, w: F.linear(x, w), (3, 4), (5, 4)),
    case("linear_vector_input", lambda lib, F, x, w, b: F.linear(x, w, b), (4,), (5, 4), (5,)),
    case("linear_frozen_weight", lambda lib, F, x, w: F.linear(x, w), (3, 4), Arg((5, 4), requires_grad=False)),
    case("sdpa", lambda lib, F, q, k, v: F.scaled_dot_product_attention(q, k, v), Q, KV, KV),
    case("sdpa_causal", lambda lib, F, q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), Q, Q, Q),
    case("sdpa_3d_scale", lambda lib, F, q, k, v: F.scaled_dot_product_attention(q, k, v, scale=0.3),
         (2, 4, 3), (2, 5, 3), (2, 5, 2)),
    case("sdpa_bool_mask",
         lambda lib, F, q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=_t(lib, ALLOWED)), Q, KV, KV),
    case("sdpa_additive_mask",
         lambda lib, F, q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=_t(lib, ADDITIVE).to(q.dtype)),
         Q, KV, KV),
    case("sdpa_fully_masked_row",
         lambda lib, F, q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=_t(lib, DEAD_ROW)), Q, KV, KV),
]


@pytest.mark.parametrize(("op_case", "layout"), params(CASES, for_gradcheck=True))
def test_gradcheck(op_case, layout):
    check_gradcheck(op_case, layout)


@pytest.mark.parametrize(("op_case", "layout"), params(CASES))
def test_matches_torch(op_case, layout, torch):
    check_torch_parity(op_case, layout, torch)


@pytest.mark.parametrize("op_case", CASES, ids=str)
def test_float32_dtypes_match_torch(op_case, torch):
    check_float32_dtypes(op_case, torch)


# ---- by-hand values -------------------------------------------------------------------------
def test_fully_masked_attention_row_gives_zeros_and_zero_grads():
    rng = np.random.default_rng(0)
    q, k, v = (minigrad.tensor(rng.standard_normal(s), requires_grad=True) for s in (Q, KV, KV))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=minigrad.tensor(DEAD_ROW))
    np.testing.assert_array_equal(out.data[:, :, 1], 0.0)
    out.backward(gradient=rng.standard_normal(out.shape))
    np.testing.assert_array_equal(q.grad.data[:, :, 1], 0.0)
    assert np.abs(q.grad.data[:, :, 0]).sum() > 0  # the live rows do get gradient


def test_embedding_gradient_accumulates_repeated_ids_and_skips_padding():
    w = minigrad.tensor(np.zeros((5, 2)), requires_grad=True)
    F.embedding(minigrad.tensor(IDS), w, padding_idx=4).sum().backward()
    np.testing.assert_array_equal(w.grad.data, [[1, 1], [2, 2], [1, 1], [0, 0], [0, 0]])


def test_cross_entropy_by_hand():
    """Uniform logits over 4 classes: every loss is log 4; the ignored target adds nothing."""
    x = minigrad.tensor(np.zeros((3, 4)), requires_grad=True)
    target = minigrad.tensor([2, -100, 0])
    assert F.cross_entropy(x, target).item() == pytest.approx(np.log(4))
    assert F.cross_entropy(x, target, reduction="sum").item() == pytest.approx(2 * np.log(4))
    np.testing.assert_allclose(F.cross_entropy(x, target, reduction="none").data, [np.log(4), 0.0, np.log(4)])
    F.cross_entropy(x, target).backward()
    expected = np.array([[0.25, 0.25, -0.75, 0.25], [0.0] * 4, [-0.75, 0.25, 0.25, 0.25]]) / 2
    np.testing.assert_allclose(x.grad.data, expected, rtol=1e-12)


def test_layer_norm_normalises_by_hand():
    x = minigrad.tensor([[1.0, 2.0, 3.0, 6.0]])  # mean 3, biased var 14/4
    out = F.layer_norm(x, (4,), eps=0.0)
    np.testing.assert_allclose(out.data, (np.array([[1.0, 2.0, 3.0, 6.0]]) - 3) / np.sqrt(3.5), rtol=1e-6)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: F.cross_entropy(minigrad.zeros(3, 4), minigrad.tensor([0, 1])), ValueError,
         r"cross_entropy: input of shape \(3, 4\) needs class-index targets of shape \(3,\), got \(2,\)"),
        (lambda: F.cross_entropy(minigrad.zeros(2, 4, 3), minigrad.tensor([[0, 1]])), ValueError,
         r"cross_entropy: input of shape \(2, 4, 3\) needs class-index targets of shape \(2, 3\)"),
        (lambda: F.cross_entropy(minigrad.zeros(3, 4), minigrad.tensor([0, 4, 1])), IndexError,
         "target 4 is out of range for 4 classes"),
        (lambda: F.cross_entropy(minigrad.zeros(3, 4), minigrad.tensor([0.0, 1.0, 1.0])), TypeError,
         "cross_entropy: index must be an integer tensor"),
        (lambda: F.cross_entropy(minigrad.zeros(3, 4), minigrad.tensor([0, 1, 1]), reduction="avg"), ValueError,
         "reduction must be 'none', 'mean' or 'sum', got 'avg'"),
        (lambda: F.layer_norm(minigrad.zeros(2, 3), (4,)), RuntimeError,
         r"layer_norm: normalized_shape \(4,\) does not match the trailing dimensions of the input shape \(2, 3\)"),
        (lambda: F.layer_norm(minigrad.zeros(2, 3), (3,), minigrad.ones(4)), RuntimeError,
         r"layer_norm: weight has shape \(4,\), expected \(3,\)"),
        (lambda: F.embedding(minigrad.tensor([0, 5]), minigrad.zeros(5, 2)), IndexError,
         "embedding: id 5 is out of range for an embedding of 5 rows"),
        (lambda: F.embedding(minigrad.tensor([0.0]), minigrad.zeros(5, 2)), TypeError,
         "embedding: index must be an integer tensor"),
        (lambda: F.linear(minigrad.zeros(2, 3), minigrad.zeros(4, 5)), RuntimeError,
         r"linear: input of shape \(2, 3\) does not fit weight of shape \(4, 5\)"),
        (lambda: F.dropout(minigrad.zeros(3), p=1.5), ValueError, "dropout probability has to be between 0 and 1"),
        (lambda: F.scaled_dot_product_attention(minigrad.zeros(1, 2, 3), minigrad.zeros(1, 2, 4),
                                                minigrad.zeros(1, 2, 4)), RuntimeError,
         "scaled_dot_product_attention: shapes"),
    ],
    ids=["ce_target_shape", "ce_spatial_target_shape", "ce_target_range", "ce_float_target", "ce_reduction",
         "ln_shape", "ln_weight", "embedding_range", "embedding_float_ids", "linear_shapes", "dropout_p",
         "sdpa_shapes"],
)
def test_bad_arguments_raise_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


# ---- dropout ----------------------------------------------------------------------------------
def test_dropout_mask_semantics_and_scaling():
    """Each entry is dropped with probability p; kept entries are scaled by 1/(1-p);
    the gradient is the same mask and scale."""
    p, n = 0.3, 200_000
    x = minigrad.tensor(np.full(n, 2.0), requires_grad=True)
    out = F.dropout(x, p=p, generator=minigrad.Generator(0))
    kept = out.data != 0
    np.testing.assert_array_equal(out.data[kept], 2.0 / (1 - p))
    dropped_fraction = 1 - kept.mean()
    sigma = np.sqrt(p * (1 - p) / n)
    assert abs(dropped_fraction - p) < 5 * sigma, f"dropped {dropped_fraction:.4f} of entries, expected {p}"
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.data, np.where(kept, 1 / (1 - p), 0.0))


def test_dropout_gradcheck_float64_with_a_fixed_mask():
    """With the generator re-seeded on every call the mask is the same each time, so
    dropout is a fixed linear map and finite differences check its backward."""
    rng = np.random.default_rng(0)
    x = minigrad.tensor(rng.standard_normal((4, 5)), requires_grad=True)
    assert minigrad.gradcheck(lambda t: F.dropout(t, p=0.4, generator=minigrad.Generator(3)), [x])
    assert minigrad.gradcheck(lambda t: F.dropout(t.T, p=0.4, generator=minigrad.Generator(3)), [x])


def test_dropout_eval_and_p0_are_identity():
    x = minigrad.randn(4, 5, requires_grad=True)
    assert F.dropout(x, p=0.5, training=False) is x
    assert F.dropout(x, p=0.0) is x
    np.testing.assert_array_equal(F.dropout(x, p=1.0).data, 0.0)
    module = minigrad.nn.Dropout(0.5).eval()
    assert module(x) is x


def test_dropout_generator_reproducibility():
    x = minigrad.ones(1000)
    a = F.dropout(x, 0.5, generator=minigrad.Generator(7)).data
    b = F.dropout(x, 0.5, generator=minigrad.Generator(7)).data
    c = F.dropout(x, 0.5, generator=minigrad.Generator(8)).data
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    minigrad.manual_seed(3)
    d = F.dropout(x, 0.5).data
    minigrad.manual_seed(3)
    np.testing.assert_array_equal(F.dropout(x, 0.5).data, d)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_matches_torch_with_torchs_mask(p, torch):
    """torch draws its mask; minigrad's Dropout op gets the same mask: same output and grad."""
    rng = np.random.default_rng(0)
    values = rng.uniform(0.5, 2.0, (6, 7))  # never 0, so torch's zeros show its mask
    cotangent = rng.standard_normal((6, 7))
    torch.manual_seed(0)
    tx = torch.tensor(values, requires_grad=True)
    tout = torch.nn.functional.dropout(tx, p=p, training=True)
    tout.backward(torch.tensor(cotangent))
    keep = as_numpy(tout) != 0
    x = minigrad.tensor(values, requires_grad=True)
    out = Dropout.apply(x, keep, p)
    out.backward(gradient=cotangent)
    assert_close(out.data, as_numpy(tout), f"dropout p={p} output")
    assert_close(x.grad.data, as_numpy(tx.grad), f"dropout p={p} grad")
