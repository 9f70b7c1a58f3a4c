"""reshape / view, transpose, permute, (un)squeeze, expand, slicing and integer-array
indexing, gather, cat, stack, split / chunk: gradcheck, torch parity, float32 dtypes.

Entries picked more than once (x[[0, 0]], gather with repeats) must accumulate
their gradients.
"""

import numpy as np
import pytest

import minigrad
from tests.minigrad.op_cases import (
    Arg,
    case,
    check_float32_dtypes,
    check_gradcheck,
    check_torch_parity,
    params,
)

X3 = (2, 3, 4)
ROWS = np.array([0, 2, 0])  # row 0 twice
COLS = np.array([3, 1, 3, 3])
INDEX_2D = np.array([[1, 0], [1, 1]])
PICK = np.array([[True, False, True, False], [False, False, False, True], [True, True, False, False]])
GATHER_DIM1 = np.array([[0, 0, 2], [1, 3, 1], [2, 2, 2]])  # repeats inside rows
GATHER_DIM0 = np.array([[0, 1, 1, 0], [1, 1, 0, 0]])
GATHER_SMALL = np.array([[2, 0], [1, 1]])  # smaller than the input off the gather dim, as torch allows


def _t(lib, array):
    return lib.tensor(array)


CASES = [
    case("reshape", lambda lib, F, x: x.reshape(4, 6), X3),
    case("reshape_tuple_infer", lambda lib, F, x: x.reshape((3, -1)), X3),
    case("reshape_flat", lambda lib, F, x: x.reshape(-1), X3),
    # torch's view() refuses the transposed layout (minigrad's copies, see below)
    case("view", lambda lib, F, x: x.view(2, 12), X3, layouts=("contiguous", "sliced")),
    case("view_infer", lambda lib, F, x: x.view(-1, 4) * 2.0, X3, layouts=("contiguous", "sliced")),
    case("flatten", lambda lib, F, x: x.flatten(), X3),
    case("flatten_from_1", lambda lib, F, x: x.flatten(1), X3),
    case("transpose", lambda lib, F, x: x.transpose(0, 1), (3, 4)),
    case("transpose_negative", lambda lib, F, x: x.transpose(-1, -3), X3),
    case("T", lambda lib, F, x: x.T, (3, 4)),
    case("mT", lambda lib, F, x: x.mT, X3),
    case("permute", lambda lib, F, x: x.permute(2, 0, 1), X3),
    case("permute_negative", lambda lib, F, x: x.permute(-1, 0, -2), X3),
    case("permute_tuple", lambda lib, F, x: x.permute((1, 2, 0)), X3),
    case("unsqueeze_front", lambda lib, F, x: x.unsqueeze(0), (3, 4)),
    case("unsqueeze_middle", lambda lib, F, x: x.unsqueeze(1), (3, 4)),
    case("unsqueeze_negative", lambda lib, F, x: x.unsqueeze(-1), (3, 4)),
    case("squeeze_all", lambda lib, F, x: x.squeeze(), (1, 3, 1, 2)),
    case("squeeze_dim", lambda lib, F, x: x.squeeze(0), (1, 3, 1, 2)),
    case("squeeze_negative", lambda lib, F, x: x.squeeze(-2), (1, 3, 1, 2)),
    case("squeeze_not_one_is_noop", lambda lib, F, x: x.squeeze(1), (1, 3, 1, 2)),
    case("squeeze_tuple", lambda lib, F, x: x.squeeze((0, 2)), (1, 3, 1, 2)),
    case("expand", lambda lib, F, x: x.expand(2, 3, 4), (3, 1)),
    case("expand_keep", lambda lib, F, x: x.expand(-1, 5), (3, 1)),
    case("expand_then_mul", lambda lib, F, x, y: x.expand(2, 3, 4) * y, (1, 4), X3),
    case("expand_as", lambda lib, F, x, y: x.expand_as(y) + y, (3, 1), (3, 4)),
    case("contiguous", lambda lib, F, x: x.transpose(0, 1).contiguous(), (3, 4)),
    case("clone", lambda lib, F, x: x.clone(), (3, 4)),
    case("slice", lambda lib, F, x: x[1:, ::2], (3, 4)),
    case("slice_negative", lambda lib, F, x: x[-2:, :-1], (3, 4)),
    case("index_int", lambda lib, F, x: x[1], X3),
    case("index_negative_int", lambda lib, F, x: x[-1], X3),
    case("index_ellipsis", lambda lib, F, x: x[..., 1], X3),
    case("index_none", lambda lib, F, x: x[None, :, 0], (3, 4)),
    case("index_mixed", lambda lib, F, x: x[0, 1:, -1], X3),
    case("index_repeated_rows", lambda lib, F, x: x[_t(lib, ROWS)], (3, 4)),
    case("index_repeated_columns", lambda lib, F, x: x[:, _t(lib, COLS)], (3, 4)),
    case("index_2d_array", lambda lib, F, x: x[_t(lib, INDEX_2D)], (3, 4)),
    case("index_pairs", lambda lib, F, x: x[_t(lib, np.array([0, 2, 0])), _t(lib, np.array([1, 1, 1]))], (3, 4)),
    case("index_pairs_unique", lambda lib, F, x: x[_t(lib, np.array([0, 2, 1])), _t(lib, np.array([1, 3, 1]))],
         (3, 4)),
    # -3 is row 0 and -1 column 3: (0, 3) picked twice
    case("index_pairs_negative_repeat",
         lambda lib, F, x: x[_t(lib, np.array([0, -3, 2])), _t(lib, np.array([-1, 3, 3]))], (3, 4)),
    case("index_array_then_int", lambda lib, F, x: x[_t(lib, np.array([1, 1])), 2], X3),
    case("index_bool_mask", lambda lib, F, x: x[_t(lib, PICK)], (3, 4)),
    case("unbind", lambda lib, F, x: x.unbind(1), (3, 4)),
    case("gather_dim1", lambda lib, F, x: x.gather(1, _t(lib, GATHER_DIM1)), (3, 4)),
    case("gather_dim0", lambda lib, F, x: x.gather(0, _t(lib, GATHER_DIM0)), (3, 4)),
    case("gather_negative_dim_smaller_index", lambda lib, F, x: x.gather(-1, _t(lib, GATHER_SMALL)), (3, 4)),
    case("cat", lambda lib, F, x, y: lib.cat([x, y]), (2, 3), (4, 3)),
    case("cat_negative_dim", lambda lib, F, x, y, z: lib.cat([x, y, z], dim=-1), (2, 3), (2, 1), (2, 2)),
    case("cat_one_constant", lambda lib, F, x, y: lib.cat([x, y], dim=1), (2, 3), Arg((2, 2), requires_grad=False)),
    case("cat_same_tensor_twice", lambda lib, F, x: lib.cat([x, x * 2.0], dim=0), (2, 3)),
    case("stack", lambda lib, F, x, y: lib.stack([x, y]), (2, 3), (2, 3)),
    case("stack_negative_dim", lambda lib, F, x, y, z: lib.stack([x, y, z], dim=-1), (2, 3), (2, 3), (2, 3)),
    case("stack_middle", lambda lib, F, x, y: lib.stack([x, y], dim=1), (2, 3), (2, 3)),
    case("split_size", lambda lib, F, x: x.split(2, dim=1), (3, 5)),
    case("split_sections_negative_dim", lambda lib, F, x: x.split([1, 3, 1], dim=-1), (3, 5)),
    case("split_uneven_rows", lambda lib, F, x: x.split(2), (5, 3)),
    case("chunk", lambda lib, F, x: x.chunk(3, dim=0), (7, 2)),
    case("chunk_negative_dim", lambda lib, F, x: x.chunk(2, dim=-1), (2, 3, 4)),
    case("split_then_recombine", lambda lib, F, x: lib.cat(x.split(2, dim=1)[::-1], dim=1), (3, 5)),
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


def test_repeated_indices_accumulate_by_hand():
    x = minigrad.tensor(np.zeros((3, 2)), requires_grad=True)
    x[minigrad.tensor([0, 2, 0, 0])].sum().backward()
    np.testing.assert_array_equal(x.grad.data, [[3.0, 3.0], [0.0, 0.0], [1.0, 1.0]])

    y = minigrad.tensor(np.zeros((2, 3)), requires_grad=True)
    y.gather(1, minigrad.tensor([[1, 1], [0, 2]])).sum().backward()
    np.testing.assert_array_equal(y.grad.data, [[0.0, 2.0, 0.0], [1.0, 0.0, 1.0]])


def test_an_index_that_picks_each_entry_once_is_assigned_and_one_with_repeats_accumulates():
    """Unique integer-array pairs take the plain assignment; the same entry named twice
    (here through a negative index) takes np.add.at. Both by hand."""
    from minigrad.ops.shape import _may_repeat

    rows, cols = np.array([[0, 2], [1, 1]]), np.array([1, 3])
    assert not _may_repeat((rows, cols), (3, 4)) and not _may_repeat(PICK, (3, 4))
    assert _may_repeat((np.array([0, -3]), np.array([2, 2])), (3, 4)) and _may_repeat((rows, 1), (3, 4))
    x = minigrad.tensor(np.zeros((3, 4)), requires_grad=True)
    (x[minigrad.tensor(rows), minigrad.tensor(cols)] * minigrad.tensor([[1.0, 2.0], [3.0, 4.0]])).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [[0, 1, 0, 0], [0, 3, 0, 4], [0, 0, 0, 2]])
    x.grad = None
    x[minigrad.tensor([0, -3]), minigrad.tensor([2, 2])].sum().backward()
    np.testing.assert_array_equal(x.grad.data, [[0, 0, 2, 0], [0, 0, 0, 0], [0, 0, 0, 0]])


def test_split_sizes_follow_torch():
    x = minigrad.zeros(7, 2)
    assert [p.shape[0] for p in x.split(3)] == [3, 3, 1]
    assert [p.shape[0] for p in x.chunk(3)] == [3, 3, 1]
    assert [p.shape[0] for p in x.chunk(4)] == [2, 2, 2, 1]
    assert [p.shape[0] for p in minigrad.zeros(6, 2).chunk(4)] == [2, 2, 2]


def test_view_of_a_transposed_tensor_copies_instead_of_failing():
    """A documented difference: torch's view() fails on a non-contiguous tensor, minigrad's copies."""
    x = minigrad.tensor(np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(x.T.view(6).data, [0.0, 3.0, 1.0, 4.0, 2.0, 5.0])


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda x: x.reshape(5, 5), RuntimeError, r"shape \(5, 5\) is invalid for a tensor of shape \(2, 3, 4\)"),
        (lambda x: x.permute(0, 1), RuntimeError, r"permute: dims \(0, 1\) are not a permutation of 3"),
        (lambda x: x.expand(3, 3, 4), RuntimeError, r"expand: cannot expand shape \(2, 3, 4\) to \(3, 3, 4\)"),
        (lambda x: x.expand(3, 4), RuntimeError, r"expand: 2 sizes given for a tensor of 3 dimensions"),
        (lambda x: x[5], IndexError, r"out of range for shape \(2, 3, 4\)"),
        (lambda x: x.gather(1, minigrad.tensor([[0]])), RuntimeError, "gather: index has 2 dimensions but input has 3"),
        (lambda x: x.gather(2, minigrad.tensor([[[4]]])), IndexError,
         "gather: index 4 out of range for dimension 2 of size 4"),
        (lambda x: x.gather(2, minigrad.tensor([[[-1]]])), IndexError, "gather: index -1 out of range .* negative"),
        (lambda x: x.gather(0, minigrad.tensor([[[0.5]]])), TypeError, "gather: index must be an integer tensor"),
        (lambda x: minigrad.cat([x, minigrad.zeros(2, 2, 2)], dim=1), RuntimeError, "cat: shapes .* do not fit"),
        (lambda x: minigrad.cat([]), ValueError, "cat: expected a non-empty list"),
        (lambda x: minigrad.stack([x, minigrad.zeros(2, 3)]), RuntimeError, "stack: all inputs need the same shape"),
        (lambda x: x.split([1, 2]), ValueError, r"split: sections \[1, 2\] sum to 3, not to the size 2 of dim 0"),
        (lambda x: x.split(0), ValueError, "split_size must be positive"),
        (lambda x: x.unsqueeze(4), IndexError, r"unsqueeze: dim 4 is out of range for a tensor of 3 .* \[-4, 3\]"),
        (lambda x: x.squeeze(3), IndexError, r"squeeze: dim 3 is out of range .* \[-3, 2\]"),
        (lambda x: x.transpose(0, -4), IndexError, "transpose: dim -4 is out of range"),
        (lambda x: x.split(1, dim=3), IndexError, "split: dim 3 is out of range"),
        (lambda x: x.chunk(0), ValueError, "chunk: chunks must be a positive int, got 0"),
        (lambda x: x.chunk(2, dim=5), IndexError, "chunk: dim 5 is out of range"),
        (lambda x: x.unbind(-5), IndexError, "unbind: dim -5 is out of range"),
        (lambda x: x.flatten(0, 3), IndexError, "flatten: dim 3 is out of range"),
    ],
    ids=["reshape", "permute", "expand_size", "expand_rank", "index", "gather_rank", "gather_range",
         "gather_negative", "gather_float_index", "cat_shapes", "cat_empty", "stack_shapes", "split_sections",
         "split_zero", "unsqueeze_dim", "squeeze_dim", "transpose_dim", "split_dim", "chunk_zero", "chunk_dim",
         "unbind_dim", "flatten_dim"],
)
def test_bad_arguments_raise_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call(minigrad.zeros(2, 3, 4))
