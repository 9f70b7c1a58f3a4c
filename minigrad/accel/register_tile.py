"""A register tile of a matrix product, written as LLVM IR (numba kernels only).

    register_tile(a, b, c, i, n, k_lo, k_hi, alpha, rows, cols):
        c[i + r, n + t] = alpha · Σ_{k_lo <= k < k_hi} a[i + r, k] · b[k, n + t]
        for r < rows <= TILE_ROWS (8) and t < cols <= TILE_COLS (16)

The tile of c lives in TILE_ROWS vector registers of TILE_COLS lanes for the
whole sum over k: each step loads one row segment of b as a vector, broadcasts
one value of a per row, and adds their products into the registers (a fused
multiply-add per row); c is written once, at the end.

A partial tile (rows < TILE_ROWS or cols < TILE_COLS, for a product smaller than
one tile) computes the same registers: the missing rows repeat the last row of a
(never stored), and the missing columns of b are read as 0 by a masked load (a
loop of its own, so that a whole tile's loads stay plain); the stores are masked
to the rows and columns that exist. One tile form then serves every shape, and
the products need no second, scalar loop for small shapes.

Why IR: numba compiles Python loops through LLVM, which vectorises a loop but
will not keep a tile of c in registers across k, because it cannot prove that c
does not overlap a or b (numba has no `restrict`). Its best loop form
(c[i, :] += a[i, k] · b[k, :], 4 rows and 4 values of k at a time) therefore
loaded and stored rows of c every few k. Written here with explicit vector values
there is no c in memory to alias (docs/kernels.md, "Measured choices", gives the
speed-up and why 8 rows).

Requirements (the caller's, see `tiles.matmul_tiled`): a may have any strides;
b and c must be C-contiguous (checked when the call is compiled); the tile's
rows and columns that exist must lie inside c, and the rows of b it reads
inside b. float32 and float64.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

TILE_ROWS = 8
TILE_COLS = 16


@intrinsic
def register_tile(typingctx, a, b, c, i, n, k_lo, k_hi, alpha, rows, cols):
    if not all(isinstance(x, types.Array) and x.ndim == 2 for x in (a, b, c)):
        return None
    if not (a.dtype == b.dtype == c.dtype and a.dtype in (types.float32, types.float64)):
        return None
    if b.layout != "C" or c.layout != "C":
        raise TypingError(f"register_tile: b and c must be C-contiguous arrays, got layouts {b.layout} and {c.layout}")
    sig = types.void(a, b, c, *[types.intp] * 4, a.dtype, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        a_type, b_type, c_type = signature.args[:3]
        arrays = [context.make_array(t)(context, builder, v) for t, v in zip((a_type, b_type, c_type), args[:3])]
        i, n, k_lo, k_hi, alpha, rows, cols = args[3:]
        scalar = context.get_value_type(a_type.dtype)
        vector = ir.VectorType(scalar, TILE_COLS)
        int64, int32 = ir.IntType(64), ir.IntType(32)
        byte_ptr = ir.IntType(8).as_pointer()
        (a_data, b_data, c_data) = (builder.bitcast(x.data, byte_ptr) for x in arrays)
        a_row_stride, a_col_stride = cgutils.unpack_tuple(builder, arrays[0].strides, 2)
        b_row_stride = cgutils.unpack_tuple(builder, arrays[1].strides, 2)[0]
        c_row_stride = cgutils.unpack_tuple(builder, arrays[2].strides, 2)[0]
        n_bytes = builder.mul(n, ir.Constant(int64, context.get_abi_sizeof(scalar)))

        def at(data, offset, pointee):  # a typed pointer to data + offset bytes
            return builder.bitcast(builder.gep(data, [offset]), pointee.as_pointer())

        lane_zero = ir.Constant(int32, 0)
        all_lane_zero = ir.Constant(ir.VectorType(int32, TILE_COLS), [0] * TILE_COLS)

        def splat(value, kind=vector):  # a vector with `value` in every lane
            undef = ir.Constant(kind, ir.Undefined)
            return builder.shuffle_vector(builder.insert_element(undef, value, lane_zero), undef, all_lane_zero)

        lanes = f"v{TILE_COLS}{'f32' if a_type.dtype == types.float32 else 'f64'}"
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vector, [vector] * 3), "llvm.fma." + lanes)
        mask_type = ir.VectorType(ir.IntType(1), TILE_COLS)
        align = ir.Constant(int32, context.get_abi_sizeof(scalar))
        masked_load = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vector, [vector.as_pointer(), int32, mask_type, vector]),
            f"llvm.masked.load.{lanes}.p0")
        masked_store = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [vector, vector.as_pointer(), int32, mask_type]),
            f"llvm.masked.store.{lanes}.p0")
        # lane t is a column of c when t < cols
        lane_index = ir.Constant(ir.VectorType(int64, TILE_COLS), list(range(TILE_COLS)))
        columns = builder.icmp_signed("<", lane_index, splat(cols, ir.VectorType(int64, TILE_COLS)))
        last_row = builder.add(i, builder.sub(rows, ir.Constant(int64, 1)))
        exists = [builder.icmp_signed("<", ir.Constant(int64, r), rows) for r in range(TILE_ROWS)]
        tile_rows = [builder.select(e, builder.add(i, ir.Constant(int64, r)), last_row) for r, e in enumerate(exists)]
        # the accumulators: allocas that LLVM promotes to registers (loop-carried values)
        sums = [cgutils.alloca_once_value(builder, ir.Constant(vector, [0.0] * TILE_COLS)) for _ in tile_rows]

        def accumulate(load_b_row):  # the sum over k, with b's row segments read by load_b_row
            with cgutils.for_range(builder, builder.sub(k_hi, k_lo)) as loop:
                k = builder.add(k_lo, loop.index)
                b_row = load_b_row(at(b_data, builder.add(builder.mul(k, b_row_stride), n_bytes), vector))
                a_col = builder.mul(k, a_col_stride)
                for row, acc in zip(tile_rows, sums):
                    a_value = builder.load(at(a_data, builder.add(builder.mul(row, a_row_stride), a_col), scalar))
                    builder.store(builder.call(fma, [splat(a_value), b_row, builder.load(acc)]), acc)

        whole_width = builder.icmp_signed("==", cols, ir.Constant(int64, TILE_COLS))
        with builder.if_else(whole_width) as (whole, part):
            with whole:
                accumulate(lambda ptr: builder.load(ptr, align=1))
            with part:
                accumulate(lambda ptr: builder.call(masked_load, [ptr, align, columns, ir.Constant(vector, None)]))
        scale = splat(alpha)
        for row, acc, exist in zip(tile_rows, sums, exists):
            target = at(c_data, builder.add(builder.mul(row, c_row_stride), n_bytes), vector)
            mask = builder.and_(columns, splat(exist, mask_type))  # nothing for a row that does not exist
            builder.call(masked_store, [builder.fmul(builder.load(acc), scale), target, align, mask])
        return context.get_dummy_value()

    return sig, codegen
