"""Copying rows of elements between arrays in vector steps, written as LLVM IR (numba
kernels only).

    copy_rows(src, src_offset, src_row_step, src_step, dst, dst_offset, dst_row_step, rows, count):
        dst.flat[dst_offset + r · dst_row_step + t] = src.flat[src_offset + r · src_row_step + t · src_step]
        for r < rows, t < count

where `.flat` is the array's memory in elements (src and dst C-contiguous, any number
of dimensions; offsets and steps in elements). Each row moves VECTOR_LANES elements
per step: one vector load where `src_step` is the constant 1 (else a gather), one
vector store, and the last, partial step masked to the elements that exist.

Why IR: the attention kernels copy each head into scratch arrays and back. Written as
Python loops, LLVM vectorises each copy with run-time overlap checks and remainder
loops and unrolls it, and the parallel loop holds several such copies, which numba
then optimises and compiles again at each level of its parallel wrappers. Here each
copy is two short loops that LLVM is told not to unroll, and runs no slower
(docs/kernels.md, "Measured choices").
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

VECTOR_LANES = 16


def _unit(step_type):
    return isinstance(step_type, types.IntegerLiteral) and step_type.literal_value == 1


def _loop(builder, count, body, no_unroll):
    """for index in range(count): body(index), its back edge marked `no_unroll`."""
    int64 = ir.IntType(64)
    before = builder.block
    head = builder.append_basic_block("copy.head")
    inner = builder.append_basic_block("copy.body")
    after = builder.append_basic_block("copy.end")
    builder.branch(head)
    builder.position_at_end(head)
    index = builder.phi(int64)
    index.add_incoming(ir.Constant(int64, 0), before)
    builder.cbranch(builder.icmp_signed("<", index, count), inner, after)
    builder.position_at_end(inner)
    body(index)
    index.add_incoming(builder.add(index, ir.Constant(int64, 1)), builder.block)
    builder.branch(head).set_metadata("llvm.loop", no_unroll)
    builder.position_at_end(after)


@intrinsic(prefer_literal=True)  # a src_step of 1 arrives as the literal 1
def copy_rows(typingctx, src, src_offset, src_row_step, src_step, dst, dst_offset, dst_row_step, rows, count):
    if not all(isinstance(x, types.Array) for x in (src, dst)):
        return None
    if not (src.dtype == dst.dtype and src.dtype in (types.float32, types.float64)):
        return None
    if src.layout != "C" or dst.layout != "C":
        raise TypingError(f"copy_rows: arrays must be C-contiguous, got layouts {src.layout} and {dst.layout}")
    integers = (src_offset, src_row_step, src_step, dst_offset, dst_row_step, rows, count)
    if not all(isinstance(x, types.Integer) for x in integers):
        return None
    sig = types.void(src, src_offset, src_row_step, src_step, dst, dst_offset, dst_row_step, rows, count)

    def codegen(context, builder, signature, args):
        src_type, dst_type = signature.args[0], signature.args[4]
        unit = _unit(signature.args[3])
        int64, int32 = ir.IntType(64), ir.IntType(32)
        src_offset, src_row_step, src_step, dst_offset, dst_row_step, rows, count = (
            context.cast(builder, args[i], signature.args[i], types.intp) for i in (1, 2, 3, 5, 6, 7, 8))
        scalar = context.get_value_type(src_type.dtype)
        vector = ir.VectorType(scalar, VECTOR_LANES)
        index_vector = ir.VectorType(int64, VECTOR_LANES)
        mask_type = ir.VectorType(ir.IntType(1), VECTOR_LANES)
        pointers = ir.VectorType(scalar.as_pointer(), VECTOR_LANES)
        item = ir.Constant(int64, context.get_abi_sizeof(scalar))
        align = ir.Constant(int32, context.get_abi_sizeof(scalar))
        lanes = f"v{VECTOR_LANES}{'f32' if src_type.dtype == types.float32 else 'f64'}"
        module = builder.module
        load = cgutils.get_or_insert_function(
            module, ir.FunctionType(vector, [vector.as_pointer(), int32, mask_type, vector]),
            f"llvm.masked.load.{lanes}.p0")
        gather = cgutils.get_or_insert_function(
            module, ir.FunctionType(vector, [pointers, int32, mask_type, vector]),
            f"llvm.masked.gather.{lanes}.v{VECTOR_LANES}p0")
        store = cgutils.get_or_insert_function(
            module, ir.FunctionType(ir.VoidType(), [vector, vector.as_pointer(), int32, mask_type]),
            f"llvm.masked.store.{lanes}.p0")
        no_unroll = module.add_metadata([module.add_metadata([ir.MetaDataString(module, "llvm.loop.unroll.disable")])])
        no_unroll.operands = (no_unroll,) + no_unroll.operands  # a loop id: a node that names itself first
        src_data = context.make_array(src_type)(context, builder, args[0]).data
        dst_data = context.make_array(dst_type)(context, builder, args[4]).data
        src_address = builder.ptrtoint(src_data, int64)
        lane = ir.Constant(index_vector, list(range(VECTOR_LANES)))
        undef = ir.Constant(index_vector, ir.Undefined)
        zeros32 = ir.Constant(ir.VectorType(int32, VECTOR_LANES), [0] * VECTOR_LANES)
        nothing = ir.Constant(vector, None)
        all_lanes = ir.Constant(mask_type, [1] * VECTOR_LANES)

        def splat(value):
            return builder.shuffle_vector(builder.insert_element(undef, value, ir.Constant(int32, 0)), undef, zeros32)

        lane_bytes = None if unit else builder.mul(lane, splat(builder.mul(src_step, item)))
        steps = builder.udiv(builder.add(count, ir.Constant(int64, VECTOR_LANES - 1)), ir.Constant(int64, VECTOR_LANES))

        def row(r):
            src_start = builder.add(src_offset, builder.mul(r, src_row_step))
            dst_start = builder.add(dst_offset, builder.mul(r, dst_row_step))

            def step(s):
                first = builder.mul(s, ir.Constant(int64, VECTOR_LANES))
                left = builder.sub(count, first)
                whole = builder.icmp_signed(">=", left, ir.Constant(int64, VECTOR_LANES))
                mask = builder.select(whole, all_lanes, builder.icmp_signed("<", lane, splat(left)))
                if unit:
                    source = builder.gep(src_data, [builder.add(src_start, first)])
                    values = builder.call(load, [builder.bitcast(source, vector.as_pointer()), align, mask, nothing])
                else:  # the lanes' addresses: the step's first element, then src_step elements apart
                    at = builder.mul(builder.add(src_start, builder.mul(first, src_step)), item)
                    sources = builder.inttoptr(builder.add(splat(builder.add(src_address, at)), lane_bytes), pointers)
                    values = builder.call(gather, [sources, align, mask, nothing])
                target = builder.bitcast(builder.gep(dst_data, [builder.add(dst_start, first)]), vector.as_pointer())
                builder.call(store, [values, target, align, mask])

            _loop(builder, steps, step, no_unroll)

        _loop(builder, rows, row, no_unroll)
        return context.get_dummy_value()

    return sig, codegen
