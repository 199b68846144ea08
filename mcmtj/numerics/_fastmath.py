"""Vectorisable elementary functions for the hot loops.

numba calls libm for ``math.tanh``; libm calls block SIMD vectorisation, and on
PyPI builds of llvmlite there is no SVML to replace them. In the inference loop
tanh was two thirds of the run time. :func:`tanh` below uses only arithmetic, a
floor and a bit cast, so LLVM vectorises loops that call it. It agrees with
``numpy.tanh`` to a few ulp (tested) and keeps NaN and the signs of zero and inf.
Software and hardware inference call the same function, so an ideal array
reproduces the software network bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from mcmtj.numerics._jit import kernel

__all__ = ["tanh", "exp", "log", "u32_to_float"]


@intrinsic
def _float_to_bits(typingctx, value):
    """Reinterpret the bits of a float64 as an int64 (no conversion)."""
    if value != types.float64:
        return None
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return sig, codegen


@intrinsic
def _bits_to_float(typingctx, bits):
    """Reinterpret the bits of an int64 as a float64 (no conversion)."""
    if bits != types.int64:
        return None
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


_INV_LN2 = 1.4426950408889634
# ln 2 split so that k * _LN2_HI is exact for |k| < 2**11 (Cody-Waite reduction)
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
# 1/n! for the expm1 Taylor series on |r| <= ln2/2 (truncation < 1e-18 relative)
_C = [1.0 / math.factorial(n) for n in range(2, 15)]
(_C2, _C3, _C4, _C5, _C6, _C7, _C8, _C9, _C10, _C11, _C12, _C13, _C14) = _C


# Integer <-> double conversions of int64 are not in AVX2 and scalarise whole loops;
# adding 1.5 * 2^52 puts a small integer into the low mantissa bits instead.
_MAGIC = 6755399441055744.0  # 1.5 * 2^52
_MAGIC_BITS = np.int64(0x4338000000000000)


@kernel
def _small_int_to_float(i):
    """float64 of an int64 with |i| < 2^51, without cvtsi2sd."""
    return _bits_to_float(i + _MAGIC_BITS) - _MAGIC


_TWO52 = 4503599627370496.0
_TWO52_BITS = np.int64(0x4330000000000000)


@kernel
def u32_to_float(word):
    """float64 of a uint32 word, exactly, without the (non-AVX2) int64 -> double path."""
    return _bits_to_float(np.int64(word) | _TWO52_BITS) - _TWO52


@kernel
def _expm1_reduced(y):
    """``(2^k, expm1(r))`` with y = k ln2 + r, |r| <= ln2/2, for -1022 < y/ln2 < 1023."""
    kf = np.floor(y * _INV_LN2 + 0.5)  # np.floor stays float; math.floor returns int
    r = (y - kf * _LN2_HI) - kf * _LN2_LO
    # expm1(r) = r + r^2 (C2 + C3 r + ... + C14 r^12), the bracket by Estrin's scheme:
    # a Horner chain of 26 dependent operations made tanh latency-bound (1.3-1.6x slower)
    r2 = r * r
    r4 = r2 * r2
    b0 = (_C2 + r * _C3) + r2 * (_C4 + r * _C5)
    b1 = (_C6 + r * _C7) + r2 * (_C8 + r * _C9)
    b2 = (_C10 + r * _C11) + r2 * ((_C12 + r * _C13) + r2 * _C14)
    p = r + r2 * ((b0 + r4 * b1) + (r4 * r4) * b2)
    k = _float_to_bits(kf + _MAGIC) - _MAGIC_BITS  # kf is integral: exact
    return _bits_to_float((k + 1023) << 52), p


@kernel
def tanh(x):
    """tanh of a float64, branch-free (see module docstring)."""
    a = abs(x)
    # tanh(20) rounds to 1; the clamp keeps 2^k normal. NaN passes (the test is false).
    a = 20.0 if a > 20.0 else a
    two_k, p = _expm1_reduced(-2.0 * a)
    em1 = two_k * p + (two_k - 1.0)  # expm1(-2a), accurate also for small a
    return math.copysign(-em1 / (2.0 + em1), x)


@kernel
def exp(y):
    """exp of a float64 in [-700, 700], branch-free, within a few ulp of ``numpy.exp``."""
    y = -700.0 if y < -700.0 else y
    y = 700.0 if y > 700.0 else y
    two_k, p = _expm1_reduced(y)
    return two_k + two_k * p


_SQRT2 = math.sqrt(2.0)
_MANTISSA = np.int64((1 << 52) - 1)
_ONE_BITS = np.int64(1023 << 52)


@kernel
def log(x):
    """Natural log of a positive normal float64, branch-free, within a few ulp.

    x = 2^e m with m in [sqrt(1/2), sqrt(2)); log m = 2 atanh((m - 1)/(m + 1)) by its
    odd series, |f| < 0.172 so ten terms reach 1e-17.
    """
    bits = _float_to_bits(x)
    e = _small_int_to_float((bits >> 52) - 1023)
    m = _bits_to_float((bits & _MANTISSA) | _ONE_BITS)
    big = m > _SQRT2
    m = 0.5 * m if big else m
    e = e + 1.0 if big else e
    f = (m - 1.0) / (m + 1.0)
    s = f * f
    series = 1.0 + s * (1.0 / 3 + s * (1.0 / 5 + s * (1.0 / 7 + s * (1.0 / 9 + s * (
        1.0 / 11 + s * (1.0 / 13 + s * (1.0 / 15 + s * (1.0 / 17 + s * (1.0 / 19)))))))))
    return e * _LN2_HI + (2.0 * f * series + e * _LN2_LO)
