"""Measured WER tables (write.switching = 'table'): reading, checks with one-line errors,
log-space interpolation against a hand computation, the kernel's lookup against NumPy."""

import math
import subprocess
import sys

import numpy as np
import pytest

import mcmtj
from mcmtj import ConfigError
from mcmtj.physics import device as dv

GOOD = """voltage,pulse_width,wer
0.4,1e-8,0.9
0.5,1e-8,0.2
0.6,1e-8,1e-3
0.4,1e-7,0.5
0.55,1e-7,1e-2
0.7,1e-7,1e-6
"""


def _write(tmp_path, text, name="wer.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _log_linear(points, v):
    """ln WER of a measured curve at v: linear between points, flat beyond the ends."""
    vs = [p[0] for p in points]
    logs = [math.log(p[1]) for p in points]
    if v <= vs[0]:
        return logs[0]
    if v >= vs[-1]:
        return logs[-1]
    for a in range(len(vs) - 1):
        if vs[a] <= v <= vs[a + 1]:
            return logs[a] + (logs[a + 1] - logs[a]) * (v - vs[a]) / (vs[a + 1] - vs[a])
    raise AssertionError


def test_interpolation_in_log_wer_and_log_t(tmp_path):
    path = _write(tmp_path, GOOD)
    table = dv.load_wer_table(path)
    t = 3e-8
    lam = (math.log(t) - math.log(1e-8)) / (math.log(1e-7) - math.log(1e-8))
    curves = dv.wer_table_curves(table, t, path)
    assert len(curves) == 2  # no direction column: the same curve both ways
    for v in (0.3, 0.42, 0.5, 0.53, 0.58, 0.65, 0.8):
        w10 = [(0.4, 0.9), (0.5, 0.2), (0.6, 1e-3)]
        w100 = [(0.4, 0.5), (0.55, 1e-2), (0.7, 1e-6)]
        expected = -math.expm1((1 - lam) * _log_linear(w10, v) + lam * _log_linear(w100, v))
        for knots, log_wer in curves:
            got = dv.table_switching_probability(v, knots, log_wer)
            assert got == pytest.approx(expected, rel=1e-12)
            fp = np.concatenate([knots, log_wer])
            jit = dv._table_switching_probability_jit(fp, 0, knots.size, v)
            assert jit == pytest.approx(expected, rel=1e-12)


def test_directions_and_exact_width(tmp_path):
    text = ("direction,voltage,pulse_width,wer\n"
            "ap_to_p,0.4,2e-8,0.5\nap_to_p,0.6,2e-8,0.001\n"
            "P_TO_AP,0.5,2e-8,0.4\nP_TO_AP,0.7,2e-8,0.0001\n")
    path = _write(tmp_path, text)
    (k_ap, l_ap), (k_p, l_p) = dv.wer_table_curves(dv.load_wer_table(path), 2e-8, path)
    np.testing.assert_allclose(k_ap, [0.4, 0.6])
    np.testing.assert_allclose(np.exp(l_p), [0.4, 1e-4])


BAD = [
    ("voltage,pulse_width\n0.4,1e-8\n", "missing column"),
    ("voltage,pulse_width,wer\n0.4,1e-8,0.5\n0.5,1e-8,nan\n", "not finite"),
    ("voltage,pulse_width,wer\n0.4,1e-8,0.5\n0.5,1e-8,-0.1\n", "out of range"),
    ("voltage,pulse_width,wer\n0.4,1e-8,0.5\n0.5,1e-8,1.5\n", "out of range"),
    ("voltage,pulse_width,wer\n0.4,1e-8,0.5\n0.5,1e-8,0\n", "out of range"),
    ("voltage,pulse_width,wer\n0.4,1e-8,0.5\n", "too few points"),
    ("voltage,pulse_width,wer\n0.4,1e-8,0.1\n0.5,1e-8,0.3\n", "not monotone"),
    ("voltage,pulse_width,wer\n0.4,1e-8,0.1\n0.4,1e-8,0.05\n", "repeated"),
    ("voltage,pulse_width,wer\n0.4,1e-8,abc\n0.5,1e-8,0.1\n", "not a number"),
    ("direction,voltage,pulse_width,wer\nap_to_p,0.4,1e-8,0.5\nap_to_p,0.5,1e-8,0.1\n",
     "p_to_ap"),
    ("direction,voltage,pulse_width,wer\nup,0.4,1e-8,0.5\n", "direction"),
]


@pytest.mark.parametrize(("text", "words"), BAD, ids=[b[1] for b in BAD])
def test_bad_tables_are_one_line_errors_naming_field_and_file(tmp_path, text, words):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        dv.load_wer_table(path)
    message = str(err.value)
    assert "write.wer_table" in message and str(path) in message and words in message
    assert "\n" not in message


def test_missing_file_and_width_outside_table(tmp_path):
    with pytest.raises(ConfigError, match="write.wer_table.*file not found"):
        dv.load_wer_table(tmp_path / "none.csv")
    path = _write(tmp_path, GOOD)
    with pytest.raises(ConfigError, match="write.pulse_width.*outside"):
        dv.wer_table_curves(dv.load_wer_table(path), 5e-9, path)


def test_plan_requires_a_table_and_physics_mode(tmp_path):
    from mcmtj.run.block import _param_vectors

    with pytest.raises(ConfigError, match="write.wer_table is empty"):
        _param_vectors(mcmtj.Study().replace(**{"write.switching": "table"}))
    path = _write(tmp_path, GOOD)
    with pytest.raises(ConfigError, match="write.mode = 'physics'"):
        _param_vectors(mcmtj.Study().replace(**{"write.switching": "table", "write.mode": "fixed",
                                                "write.wer_table": str(path)}))


def test_cli_bad_table_is_one_line_error_without_output(tmp_path):
    bad = _write(tmp_path, "voltage,pulse_width,wer\n0.4,2e-8,0.1\n0.5,2e-8,0.3\n")
    study = _write(tmp_path, "[write]\nswitching = \"table\"\nwer_table = \"wer.csv\"\n"
                   "[network]\nn_solutions = 1\nepochs = 2\n[run]\ninstances = 2\n", "s.toml")
    out = tmp_path / "o.nc"
    proc = subprocess.run([sys.executable, "-m", "mcmtj.cli", "run", str(study), "-o", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "write.wer_table" in lines[0] and str(bad) in lines[0]
    assert not out.exists()
