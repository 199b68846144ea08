"""Device physics: NumPy references vs their njit twins, hand values, distributions."""

import math

import numpy as np
import pytest

from mcmtj import Study
from mcmtj.numerics import _rng
from mcmtj.physics import device as dv

IC = 1e-4


# (I / I_c0, Delta, t_w, beta) -> P, evaluated by hand (see the values' comments)
HAND = [
    # thermal: 1 - exp(-(t/tau0) exp(-Delta (1 - r)^beta))
    ((0.5, 45, 10e-9, 1), 1.6918979211838712e-09),  # 1 - exp(-10 e^-22.5)
    ((0.9, 45, 10e-9, 1), 0.1051417609561561),  # 1 - exp(-10 e^-4.5)
    ((0.7, 45, 10e-9, 2), 0.15989109471100296),  # 1 - exp(-10 e^-4.05)
    # precessional: exp(-(pi^2 Delta/4) exp(-2 (r - 1) t/tau_d)), above the 1 - e^(-t/tau0) floor
    ((3.0, 45, 2e-9, 1), 0.9634377141994036),  # exp(-111.03 e^-8)
    ((2.5, 45, 3e-9, 1), 0.9863908859473285),  # exp(-111.03 e^-9)
    ((4.0, 45, 1e-9, 1), 0.7594024437713796),  # exp(-111.03 e^-6)
]


@pytest.mark.parametrize(("args", "expected"), HAND)
def test_switching_probability_hand_values(args, expected):
    ratio, delta, t, beta = args
    p_np = dv.switching_probability(ratio * IC, IC, delta, t, 1e-9, 1e-9, beta)
    p_jit = dv._switching_probability_jit(ratio * IC, IC, float(delta), t, 1e-9, 1e-9, float(beta))
    assert p_np == pytest.approx(expected, rel=1e-12)
    assert p_jit == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_switching_probability_continuous_and_monotone(beta):
    ratio = np.linspace(0.2, 3.0, 20001)
    for t in (1e-9, 5e-9, 20e-9):
        p = dv.switching_probability(ratio * IC, IC, 45.0, t, 1e-9, 1e-9, beta)
        assert np.all(np.diff(p) >= -1e-15)
        below = dv.switching_probability(IC * (1 - 1e-12), IC, 45.0, t, 1e-9, 1e-9, beta)
        at = dv.switching_probability(IC, IC, 45.0, t, 1e-9, 1e-9, beta)
        assert below == pytest.approx(at, abs=1e-9)
    # monotone in pulse width too
    widths = np.linspace(1e-10, 50e-9, 500)
    for r in (0.8, 1.0, 1.5):
        p = dv.switching_probability(r * IC, IC, 45.0, widths, 1e-9, 1e-9, beta)
        assert np.all(np.diff(p) >= -1e-15)


def test_default_write_window():
    """design.md sanity: defaults give write errors and V/2 disturbs both <= 1e-3 (beta = 1),
    and beta = 2 makes V/2 disturbs of P devices unusable."""
    study = Study()
    d, w = study.device, study.write
    g_p, _ = dv.nominal_conductances(d)
    area = dv.area(d.diameter)
    delta = dv.thermal_stability(d.diameter, d.delta_sat, d.critical_diameter)
    ic_ap_p = d.jc_ap_to_p * area
    ic_p_ap = ic_ap_p * d.jc_asymmetry

    def p(current, ic, beta):
        return dv.switching_probability(current, ic, delta, w.pulse_width, d.tau0, d.tau_d, beta)

    def g_ap(v):
        return g_p / (1 + dv.tmr_at_bias(d.tmr, v, d.tmr_bias_voltage))

    write_error = 1 - p(w.voltage * g_ap(w.voltage), ic_ap_p, 1.0)
    half = w.voltage / 2
    disturb_p = p(half * g_p, ic_p_ap, 1.0)
    disturb_ap = p(half * g_ap(half), ic_ap_p, 1.0)
    assert d.beta == 1.0
    assert write_error < 1e-3 and disturb_p < 1e-3 and disturb_ap < 1e-3
    assert write_error == pytest.approx(math.exp(-10), rel=1e-6)  # the max() floor
    assert 1e-6 < disturb_p < 1e-5 and 1e-9 < disturb_ap < 1e-7  # design: 3e-6, 7e-9
    assert p(half * g_p, ic_p_ap, 2.0) > 1e-2  # design: ~6e-2 with beta = 2


def test_parallel_conductance_twin_and_spread():
    words = _rng.lane_words(_rng.instance_key(3, 0), 0, 0, np.arange(400), 2 * 250)
    z = _rng.words_to_normal_np(words).reshape(-1, 2)
    d0, sd, ra0, sra = 40e-9, 2e-9, 1e-11, 0.03
    g_np, diam_np = dv.sample_parallel_conductance(z[:, 0], z[:, 1], d0, sd, ra0, sra)
    twin = np.array([dv._sample_parallel_conductance_jit(a, b, d0, sd, ra0, sra) for a, b in z])
    np.testing.assert_allclose(twin[:, 0], g_np, rtol=1e-14)
    np.testing.assert_array_equal(twin[:, 1], diam_np)
    r_p = 1 / g_np
    expected = math.sqrt((2 * sd / d0) ** 2 + sra**2)
    assert np.std(r_p) / np.mean(r_p) == pytest.approx(expected, rel=0.05)


def test_classify_defects_twin_and_rates():
    u = _rng.u32_to_uniform(
        _rng.lane_words(_rng.instance_key(9, 0), 2, 0, np.arange(100), 1000).ravel().astype(float))
    rates = (0.01, 0.02, 0.03, 0.04)
    codes = dv.classify_defects(u, *rates)
    twin = np.array([dv._classify_defect_jit(x, *rates) for x in u[:5000]])
    np.testing.assert_array_equal(twin, codes[:5000])
    n = u.size
    for code, rate in zip((1, 2, 3, 4), rates, strict=True):
        count = (codes == code).sum()
        assert abs(count - n * rate) < 4 * math.sqrt(n * rate * (1 - rate))


def test_beta_rates_have_mean_and_dispersion():
    st = np.zeros(11, np.uint64)
    mean, phi = 0.05, 0.2
    rates = []
    for i in range(4000):
        _rng.stream_init(st, np.uint64(1), np.uint64(2), _rng.LANE_INSTANCE, 0, i)
        rates.append(dv._sample_rate_jit(mean, phi, st))
    rates = np.array(rates)
    assert rates.mean() == pytest.approx(mean, rel=0.05)
    assert rates.var() == pytest.approx(mean * (1 - mean) * phi, rel=0.1)
    _rng.stream_init(st, np.uint64(1), np.uint64(2), _rng.LANE_INSTANCE, 0, 0)
    assert dv._sample_rate_jit(mean, 0.0, st) == mean
