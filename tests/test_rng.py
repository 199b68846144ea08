"""Counter-based streams: known answers, NumPy/numba agreement, normal sampler."""

import numpy as np
import pytest
from scipy import stats

from mcmtj.numerics import _rng


def test_philox_known_answer():
    # Random123 known-answer vector: philox4x32_10, counter 0, key 0
    words = _rng.philox4x32(*[np.uint64(0)] * 6)
    assert [int(w) for w in words] == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    # counter all ones, key all ones
    ones = np.uint64(0xFFFFFFFF)
    words = _rng.philox4x32(*[ones] * 6)
    assert [int(w) for w in words] == [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]


def test_lane_fill_and_stream_equal_numpy_reference():
    key = _rng.instance_key(123, 4)
    instances = np.array([0, 1, 5, 2**40 + 3])
    ref = _rng.lane_words(key, _rng.LANE_DEFECT, 7, instances, 10)
    out = np.empty(12, np.uint32)
    st = np.zeros(11, np.uint64)
    k0, k1 = (np.uint64(k) for k in key)
    for row, inst in zip(ref, instances, strict=True):
        _rng.fill_lane(k0, k1, _rng.LANE_DEFECT, 7, inst, out, np.empty(12, np.uint32))
        np.testing.assert_array_equal(out[:10], row)
        _rng.stream_init(st, k0, k1, _rng.LANE_DEFECT, 7, inst)
        np.testing.assert_array_equal([_rng.stream_u32(st) for _ in range(10)], row)


def test_streams_differ_by_every_key_part():
    base = _rng.lane_words(_rng.instance_key(1, 0), 0, 0, [0], 8)
    assert not np.array_equal(base, _rng.lane_words(_rng.instance_key(2, 0), 0, 0, [0], 8))
    assert not np.array_equal(base, _rng.lane_words(_rng.instance_key(1, 1), 0, 0, [0], 8))
    assert not np.array_equal(base, _rng.lane_words(_rng.instance_key(1, 0), 1, 0, [0], 8))
    assert not np.array_equal(base, _rng.lane_words(_rng.instance_key(1, 0), 0, 1, [0], 8))
    assert not np.array_equal(base, _rng.lane_words(_rng.instance_key(1, 0), 0, 0, [1], 8))


def test_normal_ppf_kernel_equals_reference_and_scipy():
    u = np.concatenate([np.linspace(1e-9, 1 - 1e-9, 2001), [0.02425, 1 - 0.02425, 0.5]])
    ref = _rng.normal_ppf_np(u)
    jit = np.array([_rng.normal_ppf(x) for x in u])
    np.testing.assert_allclose(jit, ref, rtol=1e-14, atol=1e-15)
    # Acklam's approximation: relative error 1.15e-9
    np.testing.assert_allclose(ref, stats.norm.ppf(u), rtol=2e-9, atol=1e-12)


def test_normals_from_words_are_standard_normal():
    words = _rng.lane_words(_rng.instance_key(5, 0), 0, 0, np.arange(200), 500)
    z = _rng.words_to_normal_np(words).ravel()
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert abs(z.mean()) < 4 / np.sqrt(z.size)
    assert abs(z.std() - 1) < 0.01


def test_normals_from_words_equals_reference_in_both_tails():
    words = _rng.lane_words(_rng.instance_key(6, 0), 0, 0, np.arange(40), 1000).ravel()
    words[:4] = [0, 1, 2**32 - 1, 2**32 - 2]  # extreme words of both tails
    words[4:6] = [_rng._W_TAIL_LOW, _rng._W_TAIL_HIGH]  # the tail bounds themselves
    out = np.empty(words.size)
    _rng.normals_from_words(words, out, np.empty(words.size, np.int64), np.empty(words.size))
    uniform = _rng.u32_to_uniform(words.astype(np.float64))
    assert ((uniform < _rng._P_LOW) | (uniform > 1 - _rng._P_LOW)).sum() > 1000  # both tails
    # bit for bit the scalar kernel (same branch-free log); the NumPy reference uses libm's
    expected = np.array([_rng.normal_ppf(u) for u in uniform])
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_allclose(out, _rng.words_to_normal_np(words), rtol=1e-14, atol=0)


@pytest.mark.parametrize("n", [1, 100])
def test_uniform53_in_open_interval(n):
    st = np.zeros(11, np.uint64)
    _rng.stream_init(st, np.uint64(1), np.uint64(2), 3, 4, 5)
    u = np.array([_rng.stream_uniform53(st) for _ in range(n)])
    assert ((u > 0) & (u < 1)).all()


def test_lanes_are_distinct_and_fit_the_counter():
    """Every lane has its own id below 2**6 (the lane shares a 32-bit counter word with 2**26
    blocks), so two effects never read the same words."""
    lanes = [getattr(_rng, name) for name in _rng.__all__ if name.startswith("LANE_")]
    assert len(lanes) == len(set(lanes)) == 11
    assert all(0 <= lane < 2**6 for lane in lanes)
    key = _rng.instance_key(1, 0)
    first = {lane: tuple(_rng.lane_words(key, lane, 0, [0], 4)[0]) for lane in lanes}
    assert len(set(first.values())) == len(lanes)
