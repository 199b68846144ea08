"""Device physics: NumPy references vs their njit twins, hand values, distributions."""

import math

import numpy as np
import pytest

from mcmtj import Study, _rng
from mcmtj import device as dv

IC = 1e-4
B_MIN = 5.0  # barrier (kT) where the thermal law hands over (device.THERMAL_MIN_BARRIER)


def wer_oracle(r, delta, t, tau0, tau_d, beta):
    """Write-error rate 1 - P at r = I / I_c0, written out from the model's formulas:
    Neel-Brown thermal WER while Delta (1 - r)^beta >= 5, then the tangent of its log,
    and the Sun/Butler precessional WER wherever that is lower. Plain Python floats."""
    r1 = 1.0 - (B_MIN / delta) ** (1.0 / beta) if delta > B_MIN else 0.0
    if r <= r1:
        log_wer = -(t / tau0) * math.exp(-delta * (1.0 - r) ** beta)
    else:
        log_r1 = -(t / tau0) * math.exp(-delta * (1.0 - r1) ** beta)
        slope = -log_r1 * delta * beta * (1.0 - r1) ** (beta - 1.0)
        log_wer = log_r1 - slope * (r - r1)
    wer_prec = -math.expm1(-(math.pi**2 * delta / 4.0)
                           * math.exp(-2.0 * max(r - 1.0, 0.0) * t / tau_d))
    return min(math.exp(log_wer), wer_prec)


def p_oracle(r, delta, t, tau0, tau_d, beta):
    """Switching probability 1 - WER, with the small-P side kept exact (expm1)."""
    r1 = 1.0 - (B_MIN / delta) ** (1.0 / beta) if delta > B_MIN else 0.0
    if r <= r1:
        log_wer = -(t / tau0) * math.exp(-delta * (1.0 - r) ** beta)
    else:
        log_r1 = -(t / tau0) * math.exp(-delta * (1.0 - r1) ** beta)
        log_wer = log_r1 + log_r1 * delta * beta * (1.0 - r1) ** (beta - 1.0) * (r - r1)
    p_prec = math.exp(-(math.pi**2 * delta / 4.0) * math.exp(-2.0 * max(r - 1.0, 0.0) * t / tau_d))
    return max(-math.expm1(log_wer), p_prec)


CASES = [(r, delta, t, beta) for r in (0.3, 0.7, 0.85, 0.9, 0.95, 1.0, 1.05, 1.2, 1.5, 2.0, 3.0, 5.0)
         for delta in (3.0, 20.0, 45.0, 80.0) for t in (1e-9, 10e-9, 20e-9, 100e-9)
         for beta in (1.0, 1.5, 2.0)]


def test_switching_probability_equals_formulas_numpy_and_jit():
    r, delta, t, beta = (np.array(c) for c in zip(*CASES, strict=True))
    expected = np.array([p_oracle(*c[:3], 1e-9, 1e-9, c[3]) for c in CASES])
    for b in (1.0, 1.5, 2.0):
        sel = beta == b
        p_np = dv.switching_probability(r[sel] * IC, IC, delta[sel], t[sel], 1e-9, 1e-9, b)
        np.testing.assert_allclose(p_np, expected[sel], rtol=1e-12, atol=0)
    p_jit = np.array([dv._switching_probability_jit(c[0] * IC, IC, c[1], c[2], 1e-9, 1e-9, c[3])
                      for c in CASES])
    np.testing.assert_allclose(p_jit, expected, rtol=1e-12, atol=0)
    wer = np.array([wer_oracle(*c[:3], 1e-9, 1e-9, c[3]) for c in CASES])
    np.testing.assert_allclose(1.0 - expected, wer, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("beta", [1.0, 2.0])
@pytest.mark.parametrize("t", [1e-9, 10e-9, 20e-9, 100e-9])
def test_wer_falls_strictly_and_continuously_through_ic0(beta, t):
    """Dense grid through I_c0 (and the thermal hand-over r1): the switching probability
    rises strictly wherever float can tell (0 < P < 1 - 1e-12), never falls, and has no jump
    (the largest step shrinks with the grid spacing)."""
    steps = []
    for n in (40_001, 80_001):
        r = np.linspace(0.5, 4.0, n)
        p = dv.switching_probability(r * IC, IC, 45.0, t, 1e-9, 1e-9, beta)
        d = np.diff(p)
        assert np.all(d >= 0.0)
        resolvable = (p[:-1] > 1e-300) & (p[1:] < 1.0 - 1e-12)
        assert np.all(d[resolvable] > 0.0)
        steps.append(np.abs(d).max())
        # the oracle on every 400th point
        np.testing.assert_allclose(
            p[::400], [p_oracle(x, 45.0, t, 1e-9, 1e-9, beta) for x in r[::400]], rtol=1e-12)
    assert steps[1] < 0.6 * steps[0] and steps[1] < 2e-3
    r1 = 1.0 - (B_MIN / 45.0) ** (1.0 / beta)
    for x in (r1, 1.0):
        lo, hi = dv.switching_probability(np.array([x - 1e-9, x + 1e-9]) * IC, IC, 45.0, t, 1e-9,
                                          1e-9, beta)
        assert abs(hi - lo) < 1e-6 and hi >= lo


@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_no_plateau_above_ic0(beta):
    """The former max() joint held WER = exp(-t/tau0) from I_c0 to ~1.7 I_c0 at 10 ns; now each
    10 % of overdrive lowers the WER by a clear factor."""
    r = np.arange(1.0, 1.75, 0.1)
    wer = np.array([wer_oracle(x, 45.0, 10e-9, 1e-9, 1e-9, beta) for x in r])
    p = dv.switching_probability(r * IC, IC, 45.0, 10e-9, 1e-9, 1e-9, beta)
    np.testing.assert_allclose(1.0 - p, wer, rtol=1e-6)
    assert np.all(wer[1:] / wer[:-1] < 0.95)
    assert wer[-1] / wer[0] < 1e-3


@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_monotone_in_pulse_width(beta):
    widths = np.linspace(1e-10, 100e-9, 2000)
    for r in (0.5, 0.8, 0.9, 1.0, 1.1, 1.5, 3.0):
        p = dv.switching_probability(r * IC, IC, 45.0, widths, 1e-9, 1e-9, beta)
        assert np.all(np.diff(p) >= 0.0)


@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_both_directions_fall_with_voltage(beta):
    """Through the device: AP->P (current through the bias-dependent AP resistance, I_c0) and
    P->AP (through R_P, I_c0 x jc_asymmetry) switch more likely at every higher voltage."""
    d = Study().device
    g_p = math.pi / 4 * d.diameter**2 / d.resistance_area
    ic = d.jc_ap_to_p * math.pi / 4 * d.diameter**2
    delta = d.delta_sat * min(1.0, (d.diameter / d.critical_diameter) ** 2)
    v = np.linspace(0.05, 1.2, 30_001)
    tmr_v = d.tmr / (1 + (v / d.tmr_bias_voltage) ** 2)
    for current, ic_dir in ((v * g_p / (1 + tmr_v), ic), (v * g_p, ic * d.jc_asymmetry)):
        p = dv.switching_probability(current, ic_dir, delta, 20e-9, d.tau0, d.tau_d, beta)
        d_p = np.diff(p)
        assert np.all(d_p >= 0.0)
        assert np.all(d_p[(p[:-1] > 1e-300) & (p[1:] < 1 - 1e-12)] > 0.0)


def test_default_write_window():
    """design.md sanity, from the formulas above: the default write (V_w, t_w, beta = 1) has
    write errors in both directions and V/2 disturbs of both states all <= 1e-3, and
    beta = 2 makes V/2 disturbs of P devices unusable."""
    study = Study()
    d, w = study.device, study.write
    area = math.pi / 4 * d.diameter**2
    g_p = area / d.resistance_area
    delta = d.delta_sat * min(1.0, (d.diameter / d.critical_diameter) ** 2)
    ic_ap_p = d.jc_ap_to_p * area
    ic_p_ap = ic_ap_p * d.jc_asymmetry

    def g_ap(v):
        return g_p / (1 + d.tmr / (1 + (v / d.tmr_bias_voltage) ** 2))

    def p(current, ic, beta):
        return p_oracle(current / ic, delta, w.pulse_width, d.tau0, d.tau_d, beta)

    v, half = w.voltage, w.voltage / 2
    assert d.beta == 1.0
    write_error_ap_p = 1 - p(v * g_ap(v), ic_ap_p, 1.0)
    write_error_p_ap = 1 - p(v * g_p, ic_p_ap, 1.0)  # the reset direction
    disturb_p = p(half * g_p, ic_p_ap, 1.0)
    disturb_ap = p(half * g_ap(half), ic_ap_p, 1.0)
    for rate in (write_error_ap_p, write_error_p_ap, disturb_p, disturb_ap):
        assert rate < 1e-3
    assert p(half * g_p, ic_p_ap, 2.0) > 1e-2
    # the library agrees with the written-out formulas at these points
    lib = dv.switching_probability(np.array([v * g_ap(v), half * g_p]),
                                   np.array([ic_ap_p, ic_p_ap]), delta, w.pulse_width, d.tau0,
                                   d.tau_d, 1.0)
    np.testing.assert_allclose(lib, [1 - write_error_ap_p, disturb_p], rtol=1e-9)


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
