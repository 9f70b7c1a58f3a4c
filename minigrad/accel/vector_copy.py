"""Copying a run of contiguous elements between arrays in vector steps, written as LLVM
IR (numba kernels only).

    copy_elements(src, src_offset, dst, dst_offset, count):
        dst.flat[dst_offset + t] = src.flat[src_offset + t]   for t < count

where `.flat` is the array's memory in elements (src and dst C-contiguous, any number
of dimensions; offsets in elements). It moves VECTOR_LANES elements per step as one
vector load and store, and the last, partial step masked to the elements that exist.

Why IR: the attention kernels copy each head into scratch arrays and back, row by
row. Written as Python loops, LLVM vectorises each copy with run-time overlap checks
and remainder loops, and the parallel loop holds several such copies, which numba
then optimises and compiles again at each level of its parallel wrappers; this form
is one short loop per copy, and runs no slower (docs/kernels.md, "Measured choices").
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

VECTOR_LANES = 16


@intrinsic
def copy_elements(typingctx, src, src_offset, dst, dst_offset, count):
    if not all(isinstance(x, types.Array) for x in (src, dst)):
        return None
    if not (src.dtype == dst.dtype and src.dtype in (types.float32, types.float64)):
        return None
    if src.layout != "C" or dst.layout != "C":
        raise TypingError(f"copy_elements: arrays must be C-contiguous, got layouts {src.layout} and {dst.layout}")
    if not all(isinstance(x, types.Integer) for x in (src_offset, dst_offset, count)):
        return None
    sig = types.void(src, src_offset, dst, dst_offset, count)

    def codegen(context, builder, signature, args):
        src_type, dst_type = signature.args[0], signature.args[2]
        int64, int32 = ir.IntType(64), ir.IntType(32)
        src_offset, dst_offset, count = (
            context.cast(builder, args[i], signature.args[i], types.intp) for i in (1, 3, 4))
        scalar = context.get_value_type(src_type.dtype)
        vector = ir.VectorType(scalar, VECTOR_LANES)
        mask_type = ir.VectorType(ir.IntType(1), VECTOR_LANES)
        align = ir.Constant(int32, context.get_abi_sizeof(scalar))
        lanes = f"v{VECTOR_LANES}{'f32' if src_type.dtype == types.float32 else 'f64'}"
        load = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vector, [vector.as_pointer(), int32, mask_type, vector]),
            f"llvm.masked.load.{lanes}.p0")
        store = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [vector, vector.as_pointer(), int32, mask_type]),
            f"llvm.masked.store.{lanes}.p0")
        src_data = context.make_array(src_type)(context, builder, args[0]).data
        dst_data = context.make_array(dst_type)(context, builder, args[2]).data
        index_vector = ir.VectorType(int64, VECTOR_LANES)
        lane = ir.Constant(index_vector, list(range(VECTOR_LANES)))
        undef = ir.Constant(index_vector, ir.Undefined)
        zeros32 = ir.Constant(ir.VectorType(int32, VECTOR_LANES), [0] * VECTOR_LANES)

        def at(data, offset, first):  # a vector pointer to element offset + first
            return builder.bitcast(builder.gep(data, [builder.add(offset, first)]), vector.as_pointer())

        steps = builder.udiv(builder.add(count, ir.Constant(int64, VECTOR_LANES - 1)), ir.Constant(int64, VECTOR_LANES))
        with cgutils.for_range(builder, steps) as loop:
            first = builder.mul(loop.index, ir.Constant(int64, VECTOR_LANES))
            left = builder.sub(count, first)
            source, target = at(src_data, src_offset, first), at(dst_data, dst_offset, first)
            whole = builder.icmp_signed(">=", left, ir.Constant(int64, VECTOR_LANES))
            with builder.if_else(whole) as (then, otherwise):
                with then:
                    builder.store(builder.load(source, align=1), target, align=1)
                with otherwise:  # the last, partial step
                    left_lanes = builder.shuffle_vector(
                        builder.insert_element(undef, left, ir.Constant(int32, 0)), undef, zeros32)
                    mask = builder.icmp_signed("<", lane, left_lanes)
                    values = builder.call(load, [source, align, mask, ir.Constant(vector, None)])
                    builder.call(store, [values, target, align, mask])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def gather_elements(typingctx, src, src_offset, src_step, dst, dst_offset, count):
    if not all(isinstance(x, types.Array) for x in (src, dst)):
        return None
    if not (src.dtype == dst.dtype and src.dtype in (types.float32, types.float64)):
        return None
    if src.layout != "C" or dst.layout != "C":
        raise TypingError(f"gather_elements: arrays must be C-contiguous, got layouts {src.layout} and {dst.layout}")
    if not all(isinstance(x, types.Integer) for x in (src_offset, src_step, dst_offset, count)):
        return None
    sig = types.void(src, src_offset, src_step, dst, dst_offset, count)

    def codegen(context, builder, signature, args):
        src_type, dst_type = signature.args[0], signature.args[3]
        int64, int32 = ir.IntType(64), ir.IntType(32)
        src_offset, src_step, dst_offset, count = (
            context.cast(builder, args[i], signature.args[i], types.intp) for i in (1, 2, 4, 5))
        scalar = context.get_value_type(src_type.dtype)
        vector = ir.VectorType(scalar, VECTOR_LANES)
        mask_type = ir.VectorType(ir.IntType(1), VECTOR_LANES)
        pointers = ir.VectorType(scalar.as_pointer(), VECTOR_LANES)
        align = ir.Constant(int32, context.get_abi_sizeof(scalar))
        lanes = f"v{VECTOR_LANES}{'f32' if src_type.dtype == types.float32 else 'f64'}"
        gather = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vector, [pointers, int32, mask_type, vector]),
            f"llvm.masked.gather.{lanes}.v{VECTOR_LANES}p0")
        store = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [vector, vector.as_pointer(), int32, mask_type]),
            f"llvm.masked.store.{lanes}.p0")
        src_data = context.make_array(src_type)(context, builder, args[0]).data
        dst_data = context.make_array(dst_type)(context, builder, args[3]).data
        index_vector = ir.VectorType(int64, VECTOR_LANES)
        lane = ir.Constant(index_vector, list(range(VECTOR_LANES)))
        undef = ir.Constant(index_vector, ir.Undefined)
        zeros32 = ir.Constant(ir.VectorType(int32, VECTOR_LANES), [0] * VECTOR_LANES)

        def splat(value):
            return builder.shuffle_vector(builder.insert_element(undef, value, ir.Constant(int32, 0)), undef, zeros32)

        item = ir.Constant(int64, context.get_abi_sizeof(scalar))
        lane_bytes = builder.mul(lane, splat(builder.mul(src_step, item)))
        src_address = builder.ptrtoint(src_data, int64)
        steps = builder.udiv(builder.add(count, ir.Constant(int64, VECTOR_LANES - 1)), ir.Constant(int64, VECTOR_LANES))
        all_lanes = ir.Constant(mask_type, [1] * VECTOR_LANES)
        with cgutils.for_range(builder, steps) as loop:
            first = builder.mul(loop.index, ir.Constant(int64, VECTOR_LANES))
            left = builder.sub(count, first)
            base = builder.add(src_address, builder.mul(builder.add(src_offset, builder.mul(first, src_step)), item))
            sources = builder.inttoptr(builder.add(splat(base), lane_bytes), pointers)
            target = builder.bitcast(builder.gep(dst_data, [builder.add(dst_offset, first)]), vector.as_pointer())
            whole = builder.icmp_signed(">=", left, ir.Constant(int64, VECTOR_LANES))
            mask = builder.select(whole, all_lanes, builder.icmp_signed("<", lane, splat(left)))
            values = builder.call(gather, [sources, align, mask, ir.Constant(vector, None)])
            builder.call(store, [values, target, align, mask])
        return context.get_dummy_value()

    return sig, codegen
