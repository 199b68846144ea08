"""Counter-based random numbers shared by every backend (design.md "Seeding").

Philox4x32-10 (Salmon et al., SC'11) maps a 128-bit counter and a 64-bit key to
four independent 32-bit words. Instance ``i`` of solution ``s`` at sweep point
``p`` reads its numbers from counters that only it uses:

    key     = split(splitmix64(splitmix64(seed) ^ splitmix64(p + 1)))
    counter = (lane << 26 | block, i & 0xffffffff, i >> 32, s)

so a stream depends on ``(seed, p, s, i)`` only, never on threads, chunks or
workers. Each physical effect reads its own *lane*, so switching one effect on
does not shift the random numbers of another (lanes below).

The same arithmetic serves NumPy arrays (vectorised reference) and numba scalar
code: :func:`philox4x32` is written once with operators that both understand.
"""

from __future__ import annotations

import math

import numpy as np

from mcmtj.numerics._fastmath import log as _log
from mcmtj.numerics._fastmath import u32_to_float
from mcmtj.numerics._jit import kernel

__all__ = [
    "LANE_DEVICE",
    "LANE_SWITCHING",
    "LANE_DEFECT",
    "LANE_WRITE",
    "LANE_INSTANCE",
    "LANE_DISTURB",
    "LANE_VERIFY",
    "LANE_READ",
    "LANE_UNUSED",
    "LANE_RESET",
    "LANE_DIE",
    "instance_key",
    "philox4x32",
    "lane_words",
]

# Lanes: one per effect. 2**26 blocks (2**28 words) per lane and instance.
LANE_DEVICE = 0  # diameter, RA, TMR per device
LANE_SWITCHING = 1  # thermal barrier and critical current per device
LANE_DEFECT = 2  # one word per device
LANE_WRITE = 3  # one word per device write pulse (fixed slot per device)
LANE_INSTANCE = 4  # per-instance quantities (defect rates)
LANE_DISTURB = 5  # half-select disturb events (variable count)
LANE_VERIFY = 6  # verify retries and misreads (variable count)
LANE_READ = 7  # read noise, comparator offsets
LANE_UNUSED = 8  # cells of an array outside the layer's used region (fixed slots)
LANE_RESET = 9  # one word per used device: outcome of its reset pulse
LANE_DIE = 10  # per-instance (die) offsets: 5 words (diameter, RA, TMR, J_c, gradient angle)
_LANE_SHIFT = np.uint64(26)

_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = np.uint64(0x9E3779B9)
_W1 = np.uint64(0xBB67AE85)
_MASK32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_SM_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_SM_M1 = np.uint64(0xBF58476D1CE4E5B9)
_SM_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)


def _splitmix64(x):
    """SplitMix64 finaliser of ``x + gamma`` (uint64 in, uint64 out)."""
    z = x + _SM_GAMMA
    z = (z ^ (z >> _S30)) * _SM_M1
    z = (z ^ (z >> _S27)) * _SM_M2
    return z ^ (z >> _S31)


def _philox4x32(c0, c1, c2, c3, k0, k1):
    """Ten Philox4x32 rounds; all arguments are uint64 holding 32-bit values."""
    for _ in range(10):
        # the masks are no-ops on 32-bit values but let LLVM use 32x32->64 vector multiplies
        p0 = _M0 * (c0 & _MASK32)
        p1 = _M1 * (c2 & _MASK32)
        c0, c1, c2, c3 = (
            (p1 >> _S32) ^ c1 ^ k0,
            p1 & _MASK32,
            (p0 >> _S32) ^ c3 ^ k1,
            p0 & _MASK32,
        )
        k0 = (k0 + _W0) & _MASK32
        k1 = (k1 + _W1) & _MASK32
    return c0, c1, c2, c3


philox4x32 = _philox4x32
_philox4x32_jit = kernel(_philox4x32)
# Inlined by numba itself: the ten unrolled rounds exceed LLVM's inlining threshold, and a
# call in the loop of fill_lane kept it scalar (7.6x slower than the vectorised loop).
_philox4x32_inline = kernel(_philox4x32, inline="always")
_splitmix64_jit = kernel(_splitmix64)


def instance_key(seed: int, point: int) -> tuple[int, int]:
    """Philox key ``(k0, k1)`` for a user seed and a sweep point index."""
    with np.errstate(over="ignore"):
        s = _splitmix64(np.uint64(seed % 2**64))
        p = _splitmix64(np.uint64(point + 1))
        k = _splitmix64(s ^ p)
    return int(k & _MASK32), int(k >> _S32)


def lane_words(key, lane, solution, instance, n_words):
    """NumPy reference: the first ``n_words`` uint32 words of a lane.

    Parameters
    ----------
    key : tuple of int
        From :func:`instance_key`.
    lane : int
        One of the ``LANE_*`` constants.
    solution : int
    instance : array_like of int, shape (n,)
        Global instance indices.
    n_words : int

    Returns
    -------
    ndarray of uint32, shape (n, n_words)
    """
    instance = np.asarray(instance, dtype=np.uint64)[:, None]
    n_blocks = (n_words + 3) // 4
    block = (np.uint64(lane) << _LANE_SHIFT) | np.arange(n_blocks, dtype=np.uint64)[None, :]
    k0, k1 = (np.uint64(k) for k in key)
    with np.errstate(over="ignore"):
        words = _philox4x32(
            block,
            instance & _MASK32,
            instance >> _S32,
            np.uint64(solution),
            k0,
            k1,
        )
    out = np.stack(words, axis=-1).reshape(instance.shape[0], 4 * n_blocks)
    return out[:, :n_words].astype(np.uint32)


@kernel
def fill_lane(k0, k1, lane, solution, instance, out, scratch):
    """Fill ``out`` (uint32, size a multiple of 4) with the first words of a lane.

    Whole blocks only, so the loop has no branches. The blocks' four words go first
    to four contiguous rows of ``scratch`` (uint32, size >= ``out.size``) and are then
    interleaved into ``out``: with contiguous stores LLVM vectorises the Philox rounds
    (four blocks per AVX2 multiply); storing interleaved kept them scalar (1.6x slower).
    """
    nb = out.size // 4
    if scratch.size < 4 * nb:
        raise ValueError("fill_lane: scratch is shorter than out")
    c1 = np.uint64(instance) & _MASK32
    c2 = np.uint64(instance) >> _S32
    c3 = np.uint64(solution)
    base = np.uint64(lane) << _LANE_SHIFT
    for b in range(nb):
        w0, w1, w2, w3 = _philox4x32_inline(base | np.uint64(b), c1, c2, c3, k0, k1)
        scratch[b] = w0
        scratch[nb + b] = w1
        scratch[2 * nb + b] = w2
        scratch[3 * nb + b] = w3
    for b in range(nb):
        out[4 * b] = scratch[b]
        out[4 * b + 1] = scratch[nb + b]
        out[4 * b + 2] = scratch[2 * nb + b]
        out[4 * b + 3] = scratch[3 * nb + b]


# --- variable-length consumption -------------------------------------------------
# A stream is a uint64 array of 11 slots: key (2), next block with lane bits (1),
# counter words c1..c3 (3), four buffered words (4), read position in the buffer (1).


@kernel
def stream_init(st, k0, k1, lane, solution, instance):
    """Point stream state ``st`` (uint64[11]) at the start of a lane."""
    st[0] = k0
    st[1] = k1
    st[2] = np.uint64(lane) << _LANE_SHIFT
    st[3] = np.uint64(instance) & _MASK32
    st[4] = np.uint64(instance) >> _S32
    st[5] = np.uint64(solution)
    st[10] = 4


@kernel
def stream_u32(st):
    """Next 32-bit word of a stream, as uint64."""
    pos = np.int64(st[10])
    if pos >= 4:
        w0, w1, w2, w3 = _philox4x32_jit(st[2], st[3], st[4], st[5], st[0], st[1])
        st[2] += np.uint64(1)
        st[6] = w0
        st[7] = w1
        st[8] = w2
        st[9] = w3
        pos = 0
    st[10] = np.uint64(pos + 1)
    return st[6 + pos]


_TWO_M32 = 2.0**-32
_TWO_M53 = 2.0**-53


def u32_to_uniform(word):
    """Map a 32-bit word to a uniform in the open interval (0, 1)."""
    return (word + 0.5) * _TWO_M32


@kernel
def u32_word_to_uniform(word):
    """:func:`u32_to_uniform` of a raw uint32 word, vectorisable (see ``u32_to_float``)."""
    return (u32_to_float(word) + 0.5) * _TWO_M32


u32_to_uniform_jit = kernel(u32_to_uniform)


@kernel
def stream_uniform53(st):
    """Uniform in (0, 1) with 53 random bits (for rare-event probabilities)."""
    a = stream_u32(st) >> np.uint64(5)
    b = stream_u32(st) >> np.uint64(6)
    return ((a * 67108864.0 + b) + 0.5) * _TWO_M53


# --- normal variates by inverse CDF ---------------------------------------------
# One word per normal (fixed consumption, vectorisable, same on CPU and GPU).
# Acklam's rational approximation, relative error 1.15e-9: ample for sampling.
_A = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
      1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)
_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
      6.680131188771972e01, -1.328068155288572e01)
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
      -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00,
      3.754408661907416e00)
_P_LOW = 0.02425
(_A0, _A1, _A2, _A3, _A4, _A5) = _A
(_B0, _B1, _B2, _B3, _B4) = _B
(_C0, _C1, _C2, _C3, _C4, _C5) = _C
(_D0, _D1, _D2, _D3) = _D


def _tail_words():
    """Word bounds equivalent to ``u < P_LOW`` and ``u > 1 - P_LOW`` for u of a word."""
    lo = int(_P_LOW * 2**32)
    while u32_to_uniform(lo + 1) < _P_LOW:
        lo += 1
    while u32_to_uniform(lo) >= _P_LOW:
        lo -= 1
    hi = int((1.0 - _P_LOW) * 2**32)
    while u32_to_uniform(hi - 1) > 1.0 - _P_LOW:
        hi -= 1
    while u32_to_uniform(hi) <= 1.0 - _P_LOW:
        hi += 1
    return np.uint32(lo), np.uint32(hi)


_W_TAIL_LOW, _W_TAIL_HIGH = _tail_words()


@kernel
def _ppf_central(u):
    q = u - 0.5
    r = q * q
    return (((((_A0 * r + _A1) * r + _A2) * r + _A3) * r + _A4) * r + _A5) * q / (
        ((((_B0 * r + _B1) * r + _B2) * r + _B3) * r + _B4) * r + 1.0
    )


def _tail_rational(q):
    """Acklam's lower-tail rational function of q = sqrt(-2 log u) (plain arithmetic: one
    source for the kernels, the NumPy reference and the CUDA twin)."""
    return (((((_C0 * q + _C1) * q + _C2) * q + _C3) * q + _C4) * q + _C5) / (
        (((_D0 * q + _D1) * q + _D2) * q + _D3) * q + 1.0
    )


_tail_rational_jit = kernel(_tail_rational)


@kernel
def _ppf_tail_lower(v):
    """The lower tail's quantile of ``v`` < P_LOW (negative); the upper is -it(1 - u)."""
    return _tail_rational_jit(math.sqrt(-2.0 * _log(v)))


@kernel
def _ppf_tail(u):
    lower = u < 0.5
    tail = _ppf_tail_lower(u if lower else 1.0 - u)
    return tail if lower else -tail


@kernel
def normal_ppf(u):
    """Standard normal quantile of ``u`` in (0, 1) (scalar; Acklam's algorithm)."""
    if u < _P_LOW or u > 1.0 - _P_LOW:
        return _ppf_tail(u)
    return _ppf_central(u)


@kernel
def normals_from_words(words, out, tails, buf):
    """``out[i] = normal_ppf(uniform(words[i]))``, vectorised.

    The central rational function is evaluated for all draws in a branch-free loop;
    the indices of the 4.85 % of draws in the tails are compacted into ``tails`` (an
    int64 scratch of the same size), their folded uniforms gathered into ``buf`` (a
    float64 scratch of the same size) so that the tail formula (a log and a square
    root) also runs as a vector loop, and the results scattered back. A plain ``if``
    would be if-converted by LLVM into computing the tail for every draw.
    """
    n = out.size
    for i in range(n):
        out[i] = _ppf_central(u32_word_to_uniform(words[i]))
    # compaction in its own loop: its carried index would keep the loop above scalar
    m = 0
    for i in range(n):
        w = words[i]
        tails[m] = i
        m += (w <= _W_TAIL_LOW) | (w >= _W_TAIL_HIGH)
    for t in range(m):
        u = u32_word_to_uniform(words[tails[t]])
        buf[t] = u if u < 0.5 else 1.0 - u
    for t in range(m):
        buf[t] = _ppf_tail_lower(buf[t])
    for t in range(m):
        i = tails[t]
        out[i] = buf[t] if words[i] <= _W_TAIL_LOW else -buf[t]


def normal_ppf_np(u):
    """NumPy reference of :func:`normal_ppf` (same formula, vectorised)."""
    u = np.asarray(u, dtype=np.float64)
    out = np.empty_like(u)
    lo = u < _P_LOW
    hi = u > 1.0 - _P_LOW
    mid = ~(lo | hi)
    for mask, tail in ((lo, u), (hi, 1.0 - u)):
        val = _tail_rational(np.sqrt(-2.0 * np.log(tail[mask])))
        out[mask] = val if mask is lo else -val
    out[mid] = _ppf_central.py_func(u[mid])
    return out


def words_to_normal_np(words):
    """NumPy reference: normals from uint32 words, one word each."""
    return normal_ppf_np(u32_to_uniform(words.astype(np.float64)))
