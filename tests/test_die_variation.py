"""Die-to-die variation: the kernel's device sampler over many instances recovers the configured
die-level and device-level variances (one-way random-effects ANOVA with chi-square intervals,
computed here), and the linear gradients follow their formula."""

import math

import numpy as np
import pytest
from scipy import stats

import mcmtj
from mcmtj.kernels import _engine_kernels as K
from mcmtj.numerics import _rng
from mcmtj.run.block import _param_vectors

N_IN, N_OUT = 13, 6  # one 13 x 12 layer on a 15 x 15 array: 156 devices
KEY = _rng.instance_key(21, 0)


def _sample(study, n_instances):
    """Per-instance device parameters from the kernel's own sampler:
    (die offsets (n, 6), g_P, diameter, TMR (n, devices))."""
    fp, ip = _param_vectors(study)
    states = np.zeros((1, N_IN, 2 * N_OUT), np.uint8)
    layer_in = np.array([N_IN], np.int64)
    layer_out = np.array([N_OUT], np.int64)
    n_dev = N_IN * 2 * N_OUT
    n_words = (3 * n_dev + 3) // 4 * 4
    words = np.empty(n_words, np.uint32)
    scratch = np.empty(n_words, np.uint32)
    zbuf, tbuf = np.empty(3 * n_dev), np.empty(3 * n_dev)
    tails = np.empty(3 * n_dev, np.int64)
    devp = np.empty((3, n_dev))
    tflat = np.empty(n_dev, np.uint8)
    st = np.zeros(11, np.uint64)
    k0, k1 = (np.uint64(k) for k in KEY)
    dies = np.empty((n_instances, 6))
    out = np.empty((3, n_instances, n_dev))
    for i in range(n_instances):
        die = K._die_offsets(k0, k1, 0, i, fp, st)
        _rng.fill_lane(k0, k1, _rng.LANE_DEVICE, 0, i, words, scratch)
        K._sample_devices(states, layer_in, layer_out, fp, ip[K.I_ROWS], ip[K.I_COLS], die,
                          words, bool(ip[K.I_VARIATION]), zbuf, tails, tbuf, devp, tflat)
        dies[i] = die
        out[:, i] = devp
    return dies, out[0], out[1], out[2]


def _anova_intervals(x, sigma_die, sigma_dev, level=0.999):
    """One-way random effects: x[i, j] = mu + b_i + e_ij, var b = sigma_die^2, var e =
    sigma_dev^2. Checks that the configured E[MSW] = sigma_dev^2 and E[MSB] = sigma_dev^2 +
    m sigma_die^2 lie inside the chi-square intervals of the observed mean squares."""
    n, m = x.shape
    means = x.mean(axis=1)
    msw = ((x - means[:, None]) ** 2).sum() / (n * (m - 1))
    msb = m * ((means - means.mean()) ** 2).sum() / (n - 1)
    a = (1 - level) / 2
    for ms, df, expected in ((msw, n * (m - 1), sigma_dev**2),
                             (msb, n - 1, sigma_dev**2 + m * sigma_die**2)):
        lo = df * ms / stats.chi2.ppf(1 - a, df)
        hi = df * ms / stats.chi2.ppf(a, df)
        assert lo <= expected <= hi, (ms, df, expected, lo, hi)
    return msw, (msb - msw) / m


def test_die_and_device_variances_are_recovered():
    d0, sd, sd_die = 60e-9, 2e-9, 3e-9
    sra, sra_die = 0.03, 0.08
    stmr, stmr_die = 0.05, 0.1
    study = mcmtj.Study().replace(**{
        "device.diameter": d0, "device.diameter_sigma": sd, "device.die_diameter_sigma": sd_die,
        "device.resistance_area_sigma": sra, "device.die_resistance_area_sigma": sra_die,
        "device.tmr_sigma": stmr, "device.die_tmr_sigma": stmr_die, "device.die_jc_sigma": 0.07})
    n = 1500
    dies, g_p, diam, tmr = _sample(study, n)
    ln_ra = np.log(math.pi / 4 * diam**2 / g_p)  # RA = A / G_P
    w_d, b_d = _anova_intervals(diam, sd_die, sd)
    w_ra, b_ra = _anova_intervals(ln_ra, sra_die, sra)
    w_t, b_t = _anova_intervals(tmr, stmr_die, stmr)
    # point estimates close to the truth as well (loose: 1500 dies)
    assert math.sqrt(b_d) == pytest.approx(sd_die, rel=0.1)
    assert math.sqrt(b_ra) == pytest.approx(sra_die, rel=0.1)
    assert math.sqrt(b_t) == pytest.approx(stmr_die, rel=0.1)
    assert math.sqrt(w_ra) == pytest.approx(sra, rel=0.02)
    # the die-level J_c0 factor: Normal(1, 0.07) (variance inside its chi-square interval)
    jcf = dies[:, 3]
    lo, hi = ((n - 1) * jcf.var(ddof=1) / stats.chi2.ppf(q, n - 1) for q in (0.9995, 0.0005))
    assert lo <= 0.07**2 <= hi
    assert abs(jcf.mean() - 1.0) < 4 * 0.07 / math.sqrt(n)
    # the gradient direction is uniform on the circle
    phi = np.arctan2(dies[:, 5], dies[:, 4]) % (2 * math.pi)
    assert stats.kstest(phi / (2 * math.pi), "uniform").pvalue > 1e-3


def test_no_die_variation_by_default_and_no_die_draws():
    dies, g_p, diam, tmr = _sample(mcmtj.Study(), 50)
    np.testing.assert_array_equal(dies, [[0.0, 1.0, 0.0, 1.0, 1.0, 0.0]] * 50)
    _anova_intervals(np.log(math.pi / 4 * diam**2 / g_p), 0.0, 0.03)


def test_linear_gradient_follows_its_formula():
    """Gradient only (no variation): RA and d of the cell (r, c) are RA0 (1 + g u) and
    d0 (1 + g_d u), u = ((c + 1/2)/cols - 1/2) cos phi + ((r + 1/2)/rows - 1/2) sin phi, with
    phi = 2 pi x the die lane's fifth uniform (computed here from the lane words)."""
    g_ra, g_d = 0.4, -0.1
    study = mcmtj.Study().replace(**{"device.variation": False, "device.ra_gradient": g_ra,
                                     "device.diameter_gradient": g_d})
    n = 20
    _, g_p, diam, _ = _sample(study, n)
    words = _rng.lane_words(KEY, _rng.LANE_DIE, 0, np.arange(n), 5)
    phi = 2 * np.pi * _rng.u32_to_uniform(words[:, 4].astype(float))
    r, c = np.indices((N_IN, 2 * N_OUT))
    rows, cols = study.array.rows, study.array.cols
    u = (((c.ravel() + 0.5) / cols - 0.5)[None] * np.cos(phi)[:, None]
         + ((r.ravel() + 0.5) / rows - 0.5)[None] * np.sin(phi)[:, None])
    d = study.device
    np.testing.assert_allclose(diam, d.diameter * (1 + g_d * u), rtol=1e-12)
    np.testing.assert_allclose(math.pi / 4 * diam**2 / g_p, d.resistance_area * (1 + g_ra * u),
                               rtol=1e-12)
