"""Small shared pieces of the kernel tests."""

import numpy as np

import minigrad

# worst absolute difference allowed against torch, per dtype (values and gradients are O(1))
TORCH_ATOL = {np.float64: 1e-10, np.float32: 3e-5}
# numba kernel against its NumPy reference in float64 (the bound)
REFERENCE_ATOL = 1e-12


def assert_close(actual, expected, atol, what):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, expected {expected.shape}"
    with np.errstate(invalid="ignore"):
        diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    same = (actual == expected) | (np.isnan(actual) & np.isnan(expected))  # equal infinities and NaN agree
    worst = float(np.max(np.where(same, 0.0, np.nan_to_num(diff, nan=np.inf)), initial=0.0))
    assert worst <= atol, f"{what}: worst |difference| {worst:.3g} > {atol:g}"


def leaf(array):
    """A float leaf tensor that requires grad, sharing `array`'s values (layout kept)."""
    return minigrad.Tensor(array, requires_grad=True)


def torch_leaf(torch, array):
    return torch.tensor(np.array(array, copy=True)).requires_grad_(True)


def float32_gradient_atol(grad_sums):
    """Softmax-type gradients g - p·Σg carry float32 rounding of Σg (and of exp(y)) times
    |Σg|: allow 32 float32 epsilons of the largest row sum, and never less than the
    fixed float32 bound."""
    return max(TORCH_ATOL[np.float32], 32 * float(np.finfo(np.float32).eps) * float(np.max(np.abs(grad_sums))))


def non_contiguous(array):
    """Same values, non-contiguous: every other entry of a twice-as-long last axis."""
    wide = np.zeros(array.shape[:-1] + (2 * array.shape[-1],), dtype=array.dtype)
    wide[..., ::2] = array
    view = wide[..., ::2]
    assert not view.flags.c_contiguous or array.shape[-1] <= 1
    return view


def op_both_paths(op, arrays, grad, **options):
    """{mode: (out, gradient of each float array)}: the core op `op` applied to `arrays`
    (float ones become leaves that require grad; others pass as they are) under each
    kernel mode, then backward with `grad`. Under "numba" the dispatch table runs the
    accelerated op, under "numpy" the core op itself."""
    from minigrad import accel

    results = {}
    for mode in accel.MODES:
        with accel.kernel_mode(mode):
            inputs = [leaf(a) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in arrays]
            out = op.apply(*inputs, **options)
            assert (type(out.grad_fn) is op) == (mode == "numpy"), f"{op.__name__}: {mode} ran {type(out.grad_fn)}"
            out.backward(gradient=grad)
            grads = tuple(t.grad.data for t in inputs if isinstance(t, minigrad.Tensor) and t.grad is not None)
            results[mode] = (out.data,) + grads
    return results
