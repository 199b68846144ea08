"""The borders2024 paper plug-in: die model, die sampler, the quick end-to-end run."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from mcmtj.papers import PAPERS, paper_module
from mcmtj.papers import borders2024 as b24


@pytest.fixture(scope="module")
def study():
    return b24.load_die_study()


def test_registered_as_a_sibling_of_goodwill2022():
    assert PAPERS["borders2024"] == "mcmtj.papers.borders2024"
    assert paper_module("borders2024") is b24


def test_die_model_beta_from_mean_and_dispersion(study):
    model = b24.die_model(study)
    m, phi = study.defects.short, study.defects.dispersion
    # Beta(a, b): mean a / (a + b) = m, variance m (1 - m) / (a + b + 1) = m (1 - m) phi
    assert model.mean_rate == pytest.approx(m, rel=1e-12)
    assert model.rate_sd**2 == pytest.approx(m * (1 - m) * phi, rel=1e-12)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"defects.dispersion": 0.0}, r"defects.dispersion = 0.0 is out of range: must be in"),
        ({"defects.stuck_p": 0.01}, r"defects.stuck_p = 0.01 is out of range"),
        ({"defects.short": 0.0}, r"defects.short = 0.0 is out of range"),
    ],
)
def test_bad_die_model_is_one_line_naming_the_field(study, overrides, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        b24.main(quick=True, out=tmp_path / "out", overrides=overrides, log=lambda m: None)
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_sampled_dies_follow_the_model(study):
    model = b24.die_model(study)
    shapes = [(20, 30)]
    maps, rate, short = b24.sample_dies(model, np.random.default_rng(0), 1000, shapes)
    # die rates: Beta(a, b) (KS at a fixed seed)
    assert stats.kstest(rate, stats.beta(model.beta_a, model.beta_b).cdf).pvalue > 0.01
    # shorted fraction given the rates: binomial, so its mean is the mean rate
    n_dev = 600
    se = np.sqrt(np.sum(rate * (1 - rate)) / n_dev) / rate.size
    assert abs(short.mean() - rate.mean()) < 4 * se
    # a shorted device has 1/r_short in both states, in units of nominal G_P - G_AP
    layer = maps[0]
    short_value = 1.0 / model.r_short / model.unit
    shorted = (layer[..., 0] == short_value) & (layer[..., 1] == short_value)
    np.testing.assert_allclose(shorted.mean(axis=(1, 2)), short)
    # healthy devices: G_P / G_AP = 1 + TMR with TMR ~ Normal(1.2, 0.05)
    ratio = layer[..., 0][~shorted] / layer[..., 1][~shorted] - 1.0
    assert abs(ratio.mean() - study.device.tmr) < 4 * study.device.tmr_sigma / np.sqrt(ratio.size)


def test_no_variation_gives_nominal_devices(study):
    model = b24.die_model(study.replace(**{"device.variation": False}))
    maps, _, _ = b24.sample_dies(model, np.random.default_rng(1), 4, [(5, 6)])
    healthy = maps[0][..., 0] != 1.0 / model.r_short / model.unit
    tmr = study.device.tmr
    # G_P / (G_P - G_AP) = (1 + TMR) / TMR and G_AP / (G_P - G_AP) = 1 / TMR
    np.testing.assert_allclose(maps[0][..., 0][healthy], (1 + tmr) / tmr, rtol=1e-12)
    np.testing.assert_allclose(maps[0][..., 1][healthy], 1 / tmr, rtol=1e-12)


def test_tiles_of_the_digits_network(study):
    # 64 x 64 devices on 25 x 25 tiles (24 usable columns: pairs are never split): 3 x 3;
    # 32 x 20: 2 x 1; untiled: one array per layer
    assert (study.array.tile_rows, study.array.tile_cols) == (25, 25)
    assert b24._tiles([(64, 64), (32, 20)], 25, 25) == [(3, 3), (2, 1)]
    assert b24._tiles([(64, 64), (32, 20)], 0, 0) == [(1, 1), (1, 1)]


@pytest.mark.slow
def test_quick_run_end_to_end(tmp_path):
    lines = []
    result = b24.main(quick=True, out=tmp_path, formats=("png",), log=lines.append)
    text = result["report"].read_text()
    assert text.startswith("# QUICK RUN")
    assert "mean error gap of statistics-aware training to the software baseline" in text
    assert sorted(p.name for p in result["figures"]) == [
        "fig1_error_per_die.png", "fig2_error_vs_defect_rate.png", "fig3_sensitivity.png"]
    # a second run reuses the stored evaluation
    lines.clear()
    b24.main(quick=True, out=tmp_path, formats=("png",), log=lines.append)
    assert any("up to date, reused" in line for line in lines)
