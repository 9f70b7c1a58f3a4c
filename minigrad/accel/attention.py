"""numba kernels of `minigrad.ops.attention.ScaledDotProductAttention`: the math (and its
derivation) is the core op's; these compute the same numbers.

One (batch, head) at a time, in parallel over B·H: each iteration writes only its own
slices of out, P, dq, dk and dv, so no two threads write the same memory. Forward keeps
P for the backward, as the core op does: reading P back costs less than recomputing it
from the row log-sum-exp (a product q kᵀ and an exp per entry; see docs/kernels.md,
"Measured choices"). q, k, v may have any strides; out, dq, dk, dv are returned as
C-ordered (B, H, n, d) arrays.
"""

import numba
import numpy as np

from .fast_exp import exp_nonpositive
from .tiles import FASTMATH, INNER, LOWER_A, LOWER_B, LOWER_OUT, dot, matmul_tiled
from .vector_copy import copy_rows


@numba.njit(fastmath=FASTMATH, cache=True, **INNER)
def _mask_rows(p, bias_rows, diagonal):
    """Scores, in place, row by row, up to the diagonal (key j <= i + diagonal): add the
    bias (`mask_as_bias`: -inf at the keys that are masked out), whose rows are p's or
    one row for all."""
    L, S = p.shape
    for i in range(L):
        row, bias_row = p[i], bias_rows[i % bias_rows.shape[0]]
        end = min(i + 1 + diagonal, S)
        for j in range(end):
            row[j] += bias_row[j]


@numba.njit(fastmath=FASTMATH, cache=True, **INNER)
def _softmax_rows(p, diagonal):
    """Scores -> probabilities in place, row by row. A row with no key left (all
    -inf) becomes all 0. Only the entries up to the diagonal (key j <= i + diagonal)
    are scores; the rest of each row (where the product may have written past the
    diagonal, or nothing at all) is set to 0. Masking is `_mask_rows`'s, in a pass of
    its own, so that no mask flag is tested inside these loops."""
    L, S = p.shape
    ninf = p.dtype.type(-np.inf)
    for i in range(L):
        row = p[i]
        end = min(i + 1 + diagonal, S)
        top = ninf
        for j in range(end):
            top = max(top, row[j])
        for t in range(S - end):
            row[np.uint64(end + t)] = 0
        if top == ninf:
            for j in range(end):
                row[j] = 0
            continue
        total = p.dtype.type(0)
        for j in range(end):
            e = exp_nonpositive(row[j] - top)
            row[j] = e
            total += e
        inv = p.dtype.type(1) / total
        for j in range(end):
            row[j] *= inv


def _heads(a, writeable=False):
    """(flat, (sb, sh, si)) for a (B, H, n, d) array: a[b, h, i, e] = flat[b·sb + h·sh + i·si + e].

    flat is a 1-D view of the memory `a` spans, the strides are counted in elements.
    The kernels read q, k, v (and write out, dq, dk, dv) through it, so numba
    compiles them once whatever the layout, and they copy each head where they need
    it, in parallel, instead of a copy of the whole array first (q, k, v are often
    strided slices of one array, which NumPy copies a few floats at a time). Index
    arithmetic on the flat view is also cheaper than numba's per-row views of a 4-D
    array. A last axis that is not contiguous is copied first (reading only)."""
    item = a.itemsize
    if a.size == 0:  # nothing to read or write; the loops run no iteration that would
        return np.empty(0, dtype=a.dtype), np.zeros(3, dtype=np.int64)
    if a.strides[-1] != item or any(s < 0 or s % item for s in a.strides):
        if writeable:
            raise ValueError("attention: internal: an output must have a contiguous last axis")
        a = np.ascontiguousarray(a)
    strides = tuple(s // item for s in a.strides[:3])
    span = 1 + sum((n - 1) * s for n, s in zip(a.shape, strides + (1,)))
    flat = np.lib.stride_tricks.as_strided(a, shape=(span,), strides=(item,), writeable=writeable)
    return flat, np.array(strides, dtype=np.int64)


# Masks: key j is visible to query i when j <= i + diagonal, with diagonal 0 for causal
# attention and S (every key) otherwise. The bound enters only the loops' ends, per row
# of scores or per block of tiles, never a test inside an inner loop, so one compiled
# loop serves both (the causal training step and, for example, generation with a
# cache, which is not causal).

# Products: each call of `matmul_tiled` names its triangle (`mode`) as a constant: numba
# compiles a copy of the product for each, in which LLVM folds the tests of `mode`.

# Offsets into the flat views, and past the diagonal of a row (`end + t`), are unsigned:
# with a signed index numba checks each access for a negative (wrap-around) index, and
# the loops do not vectorise (LLVM cannot prove `end + t` >= 0 for a diagonal known
# only at run time). Heads are copied with `copy_rows` (vector_copy.py): row i of an
# (n, d) scratch array starts at element i·d, its column j at element j, with a step of d.


@numba.njit(cache=True, **INNER)
def _head_start(strides, b, h):
    return np.uint64(b * strides[0] + h * strides[1])


@numba.njit(cache=True, **INNER)
def _load_head(flat, strides, b, h, dst):
    """dst = a[b, h], for `a` given as `_heads` gives it (flat, strides)."""
    n, d = dst.shape
    copy_rows(flat, _head_start(strides, b, h), strides[2], 1, dst, 0, d, n, d)


@numba.njit(cache=True, **INNER)
def _load_head_transposed(flat, strides, b, h, dst):
    """dst = a[b, h]ᵀ, for `a` given as `_heads` gives it (flat, strides): row e of dst
    gathered from column e of a[b, h]."""
    d, n = dst.shape
    copy_rows(flat, _head_start(strides, b, h), 1, strides[2], dst, 0, n, d, n)


@numba.njit(cache=True, **INNER)
def _store_head_transposed(src_t, flat, strides, b, h):
    """a[b, h] = src_tᵀ, for `a` given as `_heads(a, writeable=True)` gives it: each row
    of a[b, h] gathered from a column of src_t, with no scratch array."""
    d, n = src_t.shape
    copy_rows(src_t, 0, 1, n, flat, _head_start(strides, b, h), strides[2], n, d)


@numba.njit(cache=True, **INNER)
def _store_head(src, flat, strides, b, h):
    """a[b, h] = src, for `a` given as `_heads(a, writeable=True)` gives it."""
    n, d = src.shape
    copy_rows(src, 0, d, 1, flat, _head_start(strides, b, h), strides[2], n, d)


@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def _forward_loop(qf, qs, kf, ks, vf, vs, D, Dv, bias, has_bias, diagonal, scale, of, os_, probs):
    B, H, L, S = probs.shape
    one = probs.dtype.type(1)
    for bh in numba.prange(B * H):
        b, h = bh // H, bh % H
        q_h = np.empty((L, D), dtype=probs.dtype)
        k_t = np.empty((D, S), dtype=probs.dtype)
        v_h = np.empty((S, Dv), dtype=probs.dtype)
        o_h = np.empty((L, Dv), dtype=probs.dtype)
        _load_head(qf, qs, b, h, q_h)
        _load_head_transposed(kf, ks, b, h, k_t)
        _load_head(vf, vs, b, h, v_h)
        p = probs[b, h]
        matmul_tiled(q_h, k_t, p, scale, LOWER_OUT, diagonal)  # p = q kᵀ · scale, up to the diagonal
        if has_bias:
            _mask_rows(p, bias[b % bias.shape[0], h % bias.shape[1]], diagonal)
        _softmax_rows(p, diagonal)  # P = softmax(scores), 0 past the diagonal
        matmul_tiled(p, v_h, o_h, one, LOWER_A, diagonal)  # out = P v
        _store_head(o_h, of, os_, b, h)


@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def _backward_loop(qf, qs, kf, ks, vf, vs, of, os_, gf, gs, D, Dv, probs, diagonal, scale, dqf, dqs, dkf, dks,
                   dvf, dvs):
    B, H, L, S = probs.shape
    one = probs.dtype.type(1)
    for bh in numba.prange(B * H):
        b, h = bh // H, bh % H
        q_h = np.empty((L, D), dtype=probs.dtype)
        k_h = np.empty((S, D), dtype=probs.dtype)
        v_t = np.empty((Dv, S), dtype=probs.dtype)
        o_h = np.empty((L, Dv), dtype=probs.dtype)
        g = np.empty((L, Dv), dtype=probs.dtype)
        ds = np.empty((L, S), dtype=probs.dtype)
        dv_t = np.empty((Dv, S), dtype=probs.dtype)
        dk_t = np.empty((D, S), dtype=probs.dtype)
        dq_h = np.empty((L, D), dtype=probs.dtype)
        _load_head(qf, qs, b, h, q_h)
        _load_head(kf, ks, b, h, k_h)
        _load_head_transposed(vf, vs, b, h, v_t)
        _load_head(of, os_, b, h, o_h)
        _load_head(gf, gs, b, h, g)
        p = probs[b, h]
        matmul_tiled(g, v_t, ds, one, LOWER_OUT, diagonal)  # ds = dP = g vᵀ, up to the diagonal
        for i in range(L):  # dS = P ∘ (dP - Δ) · scale, Δ_i = g_i · out_i; 0 past the diagonal
            delta = dot(g[i], o_h[i], 0, Dv)
            end = min(i + 1 + diagonal, S)
            p_row, ds_row = p[i], ds[i]
            for j in range(end):
                ds_row[j] = p_row[j] * (ds_row[j] - delta) * scale
            for t in range(S - end):  # stored zeros: the products below read whole rows
                ds_row[np.uint64(end + t)] = 0
        matmul_tiled(g.T, p, dv_t, one, LOWER_B, diagonal)  # dvᵀ = gᵀ P
        matmul_tiled(q_h.T, ds, dk_t, one, LOWER_B, diagonal)  # dkᵀ = qᵀ dS
        matmul_tiled(ds, k_h, dq_h, one, LOWER_A, diagonal)  # dq = dS k
        _store_head_transposed(dv_t, dvf, dvs, b, h)
        _store_head_transposed(dk_t, dkf, dks, b, h)
        _store_head(dq_h, dqf, dqs, b, h)


def _diagonal(is_causal, S):
    """The mask's diagonal (see 'Masks' above): 0 for causal attention, S for none."""
    return 0 if is_causal else S


def _c_writable(a, dtype):
    """`a` as a C-contiguous, writable array (a copy only where needed): numba
    compiles one version per layout and read-only flag, so the kernels see one."""
    return np.require(a, dtype, ("C", "W"))


def mask_as_bias(key_padding_mask, attn_bias, S, dtype):
    """The padding mask and the bias as one additive bias of shape (B or 1, H or 1, L or 1,
    S): attn_bias, and -inf at every padding key whatever the bias holds there (None
    without either). A padding key's score is then -inf, as the core op sets it, unless
    q kᵀ overflowed to +inf there (then NaN, where the core op still gives -inf)."""
    if key_padding_mask is None and attn_bias is None:
        return None
    bias = np.zeros((1, 1, 1, S), dtype=dtype) if attn_bias is None else attn_bias
    if key_padding_mask is not None:
        bias = np.where(key_padding_mask[:, None, None, :], bias, -np.inf)
    return _c_writable(np.broadcast_to(bias, np.broadcast_shapes(bias.shape, (1, 1, 1, S))), dtype)


def forward(q, k, v, key_padding_mask, attn_bias, is_causal, scale):
    dtype = q.dtype
    (B, H, L, D), (S, Dv) = q.shape, v.shape[2:]
    bias = mask_as_bias(key_padding_mask, attn_bias, S, dtype)
    has_bias = bias is not None
    if not has_bias:  # never read: numba compiles one version, so the argument is an array all the same
        bias = np.zeros((1, 1, 1, 1), dtype=dtype)
    out = np.empty((B, H, L, Dv), dtype=dtype)
    probs = np.empty((B, H, L, S), dtype=dtype)  # every entry written (causal: 0 above the diagonal)
    _forward_loop(*_heads(q), *_heads(k), *_heads(v), D, Dv, bias, has_bias, _diagonal(is_causal, S),
                  dtype.type(scale), *_heads(out, writeable=True), probs)
    return out, probs


def backward(q, k, v, out, probs, grad_out, is_causal, scale):
    dtype = q.dtype
    probs = _c_writable(probs, dtype)
    dq, dk, dv = (np.empty(a.shape, dtype=dtype) for a in (q, k, v))
    _backward_loop(*_heads(q), *_heads(k), *_heads(v), *_heads(out.astype(dtype, copy=False)),
                   *_heads(grad_out.astype(dtype, copy=False)), q.shape[3], v.shape[3], probs,
                   _diagonal(is_causal, k.shape[2]), dtype.type(scale), *_heads(dq, True), *_heads(dk, True),
                   *_heads(dv, True))
    return dq, dk, dv
