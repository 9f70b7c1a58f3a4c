"""A register tile of a matrix product, written as LLVM IR (numba kernels only).

    register_tile(a, b, c, i, n, k_lo, k_hi, alpha):
        c[i + r, n + t] = alpha · Σ_{k_lo <= k < k_hi} a[i + r, k] · b[k, n + t]
        for r < TILE_ROWS (8) and t < TILE_COLS (16)

The tile of c lives in TILE_ROWS vector registers of TILE_COLS lanes for the
whole sum over k: each step loads one row segment of b as a vector, broadcasts
one value of a per row, and adds their products into the registers (a fused
multiply-add per row); c is written once, at the end.

Why IR: numba compiles Python loops through LLVM, which vectorises a loop but
will not keep a tile of c in registers across k, because it cannot prove that c
does not overlap a or b (numba has no `restrict`). Its best loop form
(c[i, :] += a[i, k] · b[k, :], 4 rows and 4 values of k at a time) therefore
loaded and stored rows of c every few k. Written here with explicit vector values
there is no c in memory to alias (docs/kernels.md, "Measured choices", gives the
speed-up and why 8 rows).

Requirements (the caller's, see `tiles.matmul_tiled`): a may have any strides;
b and c must have contiguous rows (last stride = item size); the tile must lie
inside c and the rows of b it reads inside b. float32 and float64.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

TILE_ROWS = 8
TILE_COLS = 16


@intrinsic
def register_tile(typingctx, a, b, c, i, n, k_lo, k_hi, alpha):
    if not all(isinstance(x, types.Array) and x.ndim == 2 for x in (a, b, c)):
        return None
    if not (a.dtype == b.dtype == c.dtype and a.dtype in (types.float32, types.float64)):
        return None
    sig = types.void(a, b, c, types.intp, types.intp, types.intp, types.intp, a.dtype)

    def codegen(context, builder, signature, args):
        a_type, b_type, c_type = signature.args[:3]
        arrays = [context.make_array(t)(context, builder, v) for t, v in zip((a_type, b_type, c_type), args[:3])]
        i, n, k_lo, k_hi, alpha = args[3:]
        scalar = context.get_value_type(a_type.dtype)
        vector = ir.VectorType(scalar, TILE_COLS)
        int64 = ir.IntType(64)
        byte_ptr = ir.IntType(8).as_pointer()
        (a_data, b_data, c_data) = (builder.bitcast(x.data, byte_ptr) for x in arrays)
        a_row_stride, a_col_stride = cgutils.unpack_tuple(builder, arrays[0].strides, 2)
        b_row_stride = cgutils.unpack_tuple(builder, arrays[1].strides, 2)[0]
        c_row_stride = cgutils.unpack_tuple(builder, arrays[2].strides, 2)[0]
        n_bytes = builder.mul(n, ir.Constant(int64, context.get_abi_sizeof(scalar)))

        def at(data, offset, pointee):  # a typed pointer to data + offset bytes
            return builder.bitcast(builder.gep(data, [offset]), pointee.as_pointer())

        lane_zero = ir.Constant(ir.IntType(32), 0)
        all_lane_zero = ir.Constant(ir.VectorType(ir.IntType(32), TILE_COLS), [0] * TILE_COLS)

        def splat(value):  # a vector with `value` in every lane
            undef = ir.Constant(vector, ir.Undefined)
            return builder.shuffle_vector(builder.insert_element(undef, value, lane_zero), undef, all_lane_zero)

        lanes = f"v{TILE_COLS}{'f32' if a_type.dtype == types.float32 else 'f64'}"
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vector, [vector] * 3), "llvm.fma." + lanes)
        rows = [builder.add(i, ir.Constant(int64, r)) for r in range(TILE_ROWS)]
        # the accumulators: allocas that LLVM promotes to registers (loop-carried values)
        sums = [cgutils.alloca_once_value(builder, ir.Constant(vector, [0.0] * TILE_COLS)) for _ in rows]
        with cgutils.for_range(builder, builder.sub(k_hi, k_lo)) as loop:
            k = builder.add(k_lo, loop.index)
            b_row = builder.load(at(b_data, builder.add(builder.mul(k, b_row_stride), n_bytes), vector), align=1)
            a_col = builder.mul(k, a_col_stride)
            for row, acc in zip(rows, sums):
                a_value = builder.load(at(a_data, builder.add(builder.mul(row, a_row_stride), a_col), scalar))
                builder.store(builder.call(fma, [splat(a_value), b_row, builder.load(acc)]), acc)
        scale = splat(alpha)
        for row, acc in zip(rows, sums):
            target = at(c_data, builder.add(builder.mul(row, c_row_stride), n_bytes), vector)
            builder.store(builder.fmul(builder.load(acc), scale), target, align=1)
        return context.get_dummy_value()

    return sig, codegen
