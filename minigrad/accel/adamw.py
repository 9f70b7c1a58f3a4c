"""numba kernel of `minigrad.optim.adam.adam_update` (Adam and AdamW): the core's NumPy
update makes about ten passes over each parameter and as many temporaries of its size;
this kernel makes one pass, in parallel over entries (one thread below
PARALLEL_MIN_ELEMENTS), with no temporary.

Same arithmetic in the same order as the core update, in the parameter's dtype: the
step's scalars are rounded to that dtype first, as NumPy does when a Python float meets a
float32 array, and the kernel is compiled without fastmath (no fused multiply-add, no
reordering), so float32 results match NumPy's to the last bit.
"""

import math

import numba

L2, DECOUPLED = 1, 2  # how weight decay enters (0: none)
# below this many entries one thread does it all: waking numba's threads costs more than they save
PARALLEL_MIN_ELEMENTS = 1 << 16


@numba.njit(inline="always", cache=True)
def _entry(i, p, g, m, v, decay_mode, decay, wd, c1, b2, c2, step_size, bias2_root, eps):
    gi = g[i]
    if decay_mode == DECOUPLED:
        p[i] = p[i] * decay
    elif decay_mode == L2:
        gi = gi + wd * p[i]
    mi = m[i] + c1 * (gi - m[i])
    vi = v[i] * b2
    vi = vi + c2 * gi * gi
    m[i], v[i] = mi, vi
    root = v.dtype.type(math.sqrt(vi))
    p[i] = p[i] - step_size * (mi / (root / bias2_root + eps))


@numba.njit(parallel=True, cache=True)
def _update_parallel(p, g, m, v, decay_mode, decay, wd, c1, b2, c2, step_size, bias2_root, eps):
    for i in numba.prange(p.shape[0]):
        _entry(i, p, g, m, v, decay_mode, decay, wd, c1, b2, c2, step_size, bias2_root, eps)


@numba.njit(cache=True)
def _update_serial(p, g, m, v, decay_mode, decay, wd, c1, b2, c2, step_size, bias2_root, eps):
    for i in range(p.shape[0]):
        _entry(i, p, g, m, v, decay_mode, decay, wd, c1, b2, c2, step_size, bias2_root, eps)


def usable(p, g, m, v) -> bool:
    """The kernel's layout: one float dtype, each array C-contiguous, p, m and v writable."""
    same = all(a.dtype == p.dtype and a.shape == p.shape and a.flags.c_contiguous for a in (p, g, m, v))
    return same and p.dtype.kind == "f" and p.dtype.itemsize in (4, 8) and all(
        a.flags.writeable for a in (p, m, v))


def update(p, g, m, v, t, lr, b1, b2, eps, wd, decoupled):
    """In place on p, m, v, as `adam_update`; the caller checked `usable`."""
    mode = (DECOUPLED if decoupled else L2) if wd else 0
    scalar = p.dtype.type
    kernel = _update_parallel if p.size >= PARALLEL_MIN_ELEMENTS else _update_serial
    kernel(p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1), mode, scalar(1 - lr * wd), scalar(wd),
           scalar(1 - b1), scalar(b2), scalar(1 - b2), scalar(lr / (1 - b1**t)), scalar(math.sqrt(1 - b2**t)),
           scalar(eps))
