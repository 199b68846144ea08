"""The vectorisable tanh/exp/log against NumPy."""

import numba
import numpy as np

from mcmtj.numerics import _fastmath as fm


@numba.njit(error_model="numpy")
def _apply(which, x, out):
    for i in range(x.size):
        if which == 0:
            out[i] = fm.tanh(x[i])
        elif which == 1:
            out[i] = fm.exp(x[i])
        else:
            out[i] = fm.log(x[i])


def _ulps(a, b):
    return np.abs(a - b) / np.spacing(np.abs(b))


def test_tanh_within_few_ulp_and_special_values():
    x = np.concatenate([np.linspace(-25, 25, 20001), np.logspace(-300, 1.4, 2000),
                        -np.logspace(-300, 1.4, 2000)])
    out = np.empty_like(x)
    _apply(0, x, out)
    assert _ulps(out, np.tanh(x)).max() <= 4
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 30.0, -30.0])
    out = np.empty_like(special)
    _apply(0, special, out)
    np.testing.assert_array_equal(out[[2, 3, 5, 6]], [1.0, -1.0, 1.0, -1.0])
    assert out[0] == 0 and not np.signbit(out[0]) and np.signbit(out[1])
    assert np.isnan(out[4])


def test_exp_and_log_within_few_ulp():
    x = np.linspace(-700, 700, 50001)
    out = np.empty_like(x)
    _apply(1, x, out)
    assert _ulps(out, np.exp(x)).max() <= 2
    x = np.concatenate([np.logspace(-300, 300, 50001), np.linspace(1e-9, 1, 10001)])
    out = np.empty_like(x)
    _apply(2, x, out)
    ref = np.log(x)
    nonzero = ref != 0
    assert _ulps(out[nonzero], ref[nonzero]).max() <= 4
