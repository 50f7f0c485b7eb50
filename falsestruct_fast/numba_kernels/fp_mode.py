"""The numba engine's floating-point mode: subnormals flushed to zero or kept, as the native
engine's (src/falsestruct/fp_env.h; falsestruct_fast.fp_mode says why).

Numba's worker threads are created once and keep whatever mode they had, so every parallel
driver sets the mode at the start of each unit of work and restores the thread's own at its
end: ``saved = enter_subnormal_mode(flush)`` ... ``leave_subnormal_mode(saved)``. On x86 these
read and write MXCSR (LLVM's stmxcsr / ldmxcsr); elsewhere they do nothing.
"""
from __future__ import annotations

import platform

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._jit import kernel

# MXCSR bit 15 (flush to zero) and bit 6 (denormals are zero)
FTZ_DAZ = 0x8040

HAVE_MXCSR = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")


def _mxcsr_call(builder, name, slot):
    # the intrinsics take an i8* (typed-pointer LLVM of older Numba) or ptr (opaque pointers)
    byte_ptr = ir.IntType(8).as_pointer()
    fnty = ir.FunctionType(ir.VoidType(), [byte_ptr])
    fn = cgutils.get_or_insert_function(builder.module, fnty, name)
    builder.call(fn, [builder.bitcast(slot, byte_ptr)])


@intrinsic
def _read_mxcsr(typingctx):
    def codegen(context, builder, signature, args):
        slot = cgutils.alloca_once(builder, ir.IntType(32))
        _mxcsr_call(builder, "llvm.x86.sse.stmxcsr", slot)
        return builder.zext(builder.load(slot), ir.IntType(64))

    return types.int64(), codegen


@intrinsic
def _write_mxcsr(typingctx, value):
    def codegen(context, builder, signature, args):
        slot = cgutils.alloca_once(builder, ir.IntType(32))
        builder.store(builder.trunc(args[0], ir.IntType(32)), slot)
        _mxcsr_call(builder, "llvm.x86.sse.ldmxcsr", slot)
        return context.get_dummy_value()

    return types.void(types.int64), codegen


if HAVE_MXCSR:

    @kernel(inline="always")
    def enter_subnormal_mode(flush):
        """Sets this thread's mode (flush: bool) and returns the previous MXCSR."""
        saved = _read_mxcsr()
        _write_mxcsr((saved | FTZ_DAZ) if flush else (saved & ~FTZ_DAZ))
        return saved

    @kernel(inline="always")
    def leave_subnormal_mode(saved):
        """Restores the MXCSR returned by enter_subnormal_mode."""
        _write_mxcsr(saved)

else:  # pragma: no cover - non-x86 hosts keep IEEE subnormals, as the native engine there

    @kernel(inline="always")
    def enter_subnormal_mode(flush):
        return 0

    @kernel(inline="always")
    def leave_subnormal_mode(saved):
        pass
