"""Atomic counters for the split executor (executor.run_plan_split): LLVM atomics through numba.extending.intrinsic.

Numba has no atomics of its own. These work on one int64 element of an array:
`atomic_add` (seq_cst fetch-and-add, returns the old value), `atomic_cas` (seq_cst
compare-and-swap, returns whether it swapped), `atomic_store` (seq_cst) and `atomic_read`
(an acquire load), plus, for wait loops, `spin_pause` (the x86 `pause` hint, nothing
elsewhere), `cpu_yield` (libc's sched_yield on Linux and macOS: a waiting thread hands its
core to whatever is runnable, e.g. the thread it waits for, instead of spinning through a
whole time slice on a shared machine; nothing elsewhere) and `nap` (libc's usleep on Linux
and macOS, for an idle worker; sched_yield's nothing elsewhere). Portable LLVM IR apart
from those three.
"""

from __future__ import annotations

import platform
import sys

from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")
_SCHED_YIELD = sys.platform.startswith("linux") or sys.platform == "darwin"


def _element_ptr(context, builder, array_type, array, index, index_type):
    data = context.make_array(array_type)(context, builder, array).data
    return builder.gep(data, [context.cast(builder, index, index_type, types.intp)])


@intrinsic
def atomic_add(typingctx, array, index, value):
    """array[index] += value atomically (sequentially consistent); returns the value before."""
    if not (isinstance(array, types.Array) and array.dtype == types.int64):
        return None
    sig = types.int64(array, index, value)

    def codegen(context, builder, signature, args):
        ptr = _element_ptr(context, builder, signature.args[0], args[0], args[1], signature.args[1])
        v = context.cast(builder, args[2], signature.args[2], types.int64)
        return builder.atomic_rmw("add", ptr, v, "seq_cst")

    return sig, codegen


@intrinsic
def atomic_cas(typingctx, array, index, expected, new):
    """If array[index] == expected, set it to new (atomically, sequentially consistent); True if it did."""
    if not (isinstance(array, types.Array) and array.dtype == types.int64):
        return None
    sig = types.boolean(array, index, expected, new)

    def codegen(context, builder, signature, args):
        ptr = _element_ptr(context, builder, signature.args[0], args[0], args[1], signature.args[1])
        old = context.cast(builder, args[2], signature.args[2], types.int64)
        value = context.cast(builder, args[3], signature.args[3], types.int64)
        return builder.extract_value(builder.cmpxchg(ptr, old, value, "seq_cst", "seq_cst"), 1)

    return sig, codegen


@intrinsic
def atomic_store(typingctx, array, index, value):
    """array[index] = value, atomically (sequentially consistent: every earlier write is seen before it)."""
    if not (isinstance(array, types.Array) and array.dtype == types.int64):
        return None
    sig = types.void(array, index, value)

    def codegen(context, builder, signature, args):
        ptr = _element_ptr(context, builder, signature.args[0], args[0], args[1], signature.args[1])
        builder.store_atomic(context.cast(builder, args[2], signature.args[2], types.int64), ptr, "seq_cst", 8)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def atomic_read(typingctx, array, index):
    """array[index], read with acquire ordering (sees every write made before the matching atomic_add)."""
    if not (isinstance(array, types.Array) and array.dtype == types.int64):
        return None
    sig = types.int64(array, index)

    def codegen(context, builder, signature, args):
        ptr = _element_ptr(context, builder, signature.args[0], args[0], args[1], signature.args[1])
        value = builder.load_atomic(ptr, "acquire", 8)
        return value

    return sig, codegen


@intrinsic
def spin_pause(typingctx):
    """The CPU's spin-wait hint (x86 `pause`), between polls of a counter."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        if _X86:
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                "llvm.x86.sse2.pause")  # fmt: skip
            builder.call(fn, [])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def cpu_yield(typingctx):
    """sched_yield(): let another runnable thread have this core (a call into libc, resolved when the code loads)."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        if _SCHED_YIELD:
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), []), "sched_yield")
            builder.call(fn, [])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def nap(typingctx, microseconds):
    """usleep(microseconds): an idle worker's poll interval (libc, Linux and macOS; elsewhere sched_yield's nothing)."""
    sig = types.void(microseconds)

    def codegen(context, builder, signature, args):
        if _SCHED_YIELD:
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), [ir.IntType(32)]),
                                                "usleep")  # fmt: skip
            value = context.cast(builder, args[0], signature.args[0], types.int64)
            builder.call(fn, [builder.trunc(value, ir.IntType(32))])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def array_address(typingctx, array):
    """The address of array's first element, as an int64 (handed to a helper thread through a control word)."""
    if not isinstance(array, types.Array):
        return None
    sig = types.int64(array)

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        return builder.ptrtoint(data, ir.IntType(64))

    return sig, codegen


@intrinsic
def int8_pointer(typingctx, address):
    """array_address's int64 back as an int8 pointer, for numba.carray (the caller keeps the array alive)."""
    sig = types.CPointer(types.int8)(address)

    def codegen(context, builder, signature, args):
        value = context.cast(builder, args[0], signature.args[0], types.int64)
        return builder.inttoptr(value, ir.IntType(8).as_pointer())

    return sig, codegen
