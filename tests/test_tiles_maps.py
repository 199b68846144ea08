"""Tiled layers (array.tile_rows / tile_cols) and device maps (array.device_map): issue 14
items 3 and 4. The kernels against the oracle with tiles are in tests/test_oracle.py."""

from __future__ import annotations

import numpy as np
import pytest

import mcmtj
from mcmtj.cli import main
from mcmtj.physics.array import tile_layout
from mcmtj.physics.maps import (
    DeviceMap,
    load_device_map,
    map_conductances,
    save_device_map,
    written_conductances,
)
from mcmtj.run import schema
from mcmtj.run.block import check_inputs
from mcmtj.run.cuda import unsupported_features
from mcmtj.run.maps import instance_device_map

RESULTS = [schema.ACCURACY, schema.AGREEMENT, schema.WRITE_FIDELITY, schema.WEIGHT_FIDELITY,
           schema.CURRENT_RMSE, schema.N_STUCK, schema.N_SHORT, schema.N_OPEN,
           schema.N_WRITE_ERRORS, schema.N_PULSES, schema.N_DISTURBS, schema.N_VERIFY_RETRIES,
           schema.N_RESET_ERRORS]


def test_tile_layout_covers_each_layer_once():
    tiles = tile_layout([(13, 6), (6, 3)], tile_rows=5, tile_cols=5)  # 5 columns: 2 pairs
    seen = [np.zeros((13, 12), int), np.zeros((6, 6), int)]
    for l, r0, c0, n_r, n_c in tiles:
        assert n_r <= 5 and n_c <= 4 and n_c % 2 == 0
        seen[l][r0:r0 + n_r, c0:c0 + n_c] += 1
    assert all((s == 1).all() for s in seen)
    assert len(tiles) == 3 * 3 + 2 * 2
    np.testing.assert_array_equal(tile_layout([(13, 6)]), [[0, 0, 0, 13, 12]])


@pytest.mark.parametrize("extra", [{}, {"array.kind": "integrated", "write.verify": True}],
                         ids=["core", "circuit"])
def test_tiling_equals_untiled_with_ideal_devices(nist_study, extra):
    """Ideal devices: a layer split over 5 x 4 tiles of 5 x 6 arrays (13 inputs: three row
    tiles whose currents are summed) gives exactly the untiled layer's results."""
    base = nist_study.replace(**{"network.max_solutions": 2, **extra})
    prep = mcmtj.prepare(base)
    flat = mcmtj.simulate(base, seed=1, instances=2, prepared=prep)
    tiled = base.replace(**{"array.rows": 5, "array.cols": 6, "array.tile_rows": 5,
                            "array.tile_cols": 4})
    ds = mcmtj.simulate(tiled, seed=1, instances=2, prepared=prep)
    for name in RESULTS:
        np.testing.assert_array_equal(flat[name].values, ds[name].values, err_msg=name)
    np.testing.assert_array_equal(
        ds.accuracy.values, np.broadcast_to(ds.software_accuracy.values[:, None],
                                            ds.accuracy.shape))


def test_tile_and_kind_errors(nist_study, tmp_path):
    with pytest.raises(mcmtj.ConfigError, match=r"^array.tile_rows = 20 is out of range: must "
                       r"be 0 \(untiled\) or at most array.rows = 15$"):
        check_inputs(mcmtj.Study().replace(**{"array.tile_rows": 20}))
    with pytest.raises(mcmtj.ConfigError, match=r"^array.tile_cols = 1 is out of range"):
        mcmtj.Study().replace(**{"array.tile_cols": 1})
    with pytest.raises(mcmtj.ConfigError, match=r"^array.tile_rows = -1 is out of range"):
        mcmtj.Study().replace(**{"array.tile_rows": -1})
    # a layer larger than its array without tiling: the error points at the tile keys
    with pytest.raises(ValueError, match="array.tile_rows / array.tile_cols"):
        mcmtj.prepare(nist_study.replace(**{"array.rows": 5}))
    # the CLI: one line, exit status 1, no output file
    study = tmp_path / "s.toml"
    study.write_text("[array]\nkind = 'integrated'\n")
    out = tmp_path / "out.nc"
    assert main(["run", str(study), "-o", str(out), "--set", "array.tile_cols=30"]) != 0
    assert not out.exists()


def test_cli_refuses_bad_kind_and_map(tmp_path, capsys):
    study = tmp_path / "s.toml"
    study.write_text("[array]\nkind = 'integrated'\n[write]\nscheme = 'v2'\n")
    out = tmp_path / "out.nc"
    assert main(["run", str(study), "-o", str(out)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "write.scheme = 'v2' is not allowed" in err[0]
    bad = tmp_path / "bad.csv"
    bad.write_text("layer,row,col,defect,r_p,r_ap\n0,0,0,cracked,1000,2000\n")
    study.write_text(f"[array]\ndevice_map = '{bad.name}'\n")
    assert main(["run", str(study), "-o", str(out)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.csv" in err[0] and "'cracked'" in err[0]
    assert not out.exists()


def test_cuda_refuses_tiles_and_maps():
    study = mcmtj.Study().replace(**{"array.tile_rows": 5, "array.tile_cols": 4,
                                     "array.device_map": "die.csv"})
    found = unsupported_features(study)
    for field in ("array.tile_rows", "array.tile_cols", "array.device_map"):
        assert any(text.startswith(field) for text in found), field
    assert unsupported_features(mcmtj.Study().replace(**{"array.kind": "integrated"})) == []


# --------------------------------------------------------------------------- device maps
def _toy_map():
    d = np.array([[0, 1, 2, 3], [4, 0, 0, 0]], np.int8)
    r_p = np.array([[1e3, 2e3, 3e3, 1.0], [np.inf, 1e3, 1e3, 1e3]])
    return DeviceMap((d,), (r_p,), (2 * r_p,))


def test_map_conductances_follow_defects_and_states():
    states = np.array([[1, 0, 1, 0], [1, 1, 0, 1]], np.uint8)
    (g,) = map_conductances(_toy_map(), [states], r_short=100.0)
    expected = [[1 / 1e3, 1 / 2e3, 1 / 6e3, 1 / 100.0], [0.0, 1 / 1e3, 1 / 2e3, 1 / 1e3]]
    np.testing.assert_array_equal(g, expected)
    (pair,) = written_conductances(_toy_map(), r_short=100.0)
    np.testing.assert_array_equal(pair[..., 0], [[1e-3, 1 / 2e3, 1 / 6e3, 0.01],
                                                 [0.0, 1e-3, 1e-3, 1e-3]])
    np.testing.assert_array_equal(pair[..., 1], [[1 / 2e3, 1 / 2e3, 1 / 6e3, 0.01],
                                                 [0.0, 1 / 2e3, 1 / 2e3, 1 / 2e3]])


@pytest.mark.parametrize("suffix", [".csv", ".nc"])
def test_map_file_round_trip(tmp_path, suffix):
    m = _toy_map()
    path = save_device_map(m, tmp_path / f"die{suffix}")
    back = load_device_map(path)
    for a, b in zip((m.defect, m.r_p, m.r_ap), (back.defect, back.r_p, back.r_ap),
                    strict=True):
        np.testing.assert_array_equal(a[0], b[0])


@pytest.mark.parametrize("text, match", [
    ("layer,row,col,defect,r_p\n0,0,0,none,1\n", "missing column"),
    ("layer,row,col,defect,r_p,r_ap\n0,0,0,none,nan,2\n0,0,1,none,1,2\n", "r_p = nan"),
    ("layer,row,col,defect,r_p,r_ap\n0,0,0,burnt,1,2\n0,0,1,none,1,2\n", "'burnt' is not one"),
    ("layer,row,col,defect,r_p,r_ap\n0,0,0,none,1,2\n", "1 columns: must be even"),
    ("layer,row,col,defect,r_p,r_ap\n0,0,0,none,1,2\n0,1,1,none,1,2\n", "is missing"),
    ("layer,row,col,defect,r_p,r_ap\n0,0,0,none,2,1\n0,0,1,none,1,2\n", "r_ap = 1.0"),
])
def test_bad_map_files_are_refused(tmp_path, text, match):
    path = tmp_path / "die.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as err:
        load_device_map(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_map_shape_must_match_network(nist_study, tmp_path):
    path = save_device_map(_toy_map(), tmp_path / "die.csv")
    with pytest.raises(ValueError, match=r"die.csv: the map has layers of 2 x 4 devices but "
                       r"the network needs 13 x 12, 6 x 6"):
        mcmtj.simulate(nist_study.replace(**{"array.device_map": str(path)}), instances=1)


@pytest.mark.parametrize("extra", [
    {},
    {"array.kind": "integrated", "read.r_wire": 2.0, "write.ir_solver": "full",
     "write.verify": True, "array.tile_rows": 7},
], ids=["core", "integrated-tiled-circuit"])
def test_saved_instance_map_reproduces_the_instance(nist_study, tmp_path, extra):
    """The die that instance 1 sampled, saved and loaded, gives instance 1 again (the write
    draws the same numbers: they are keyed by the instance), and every instance of the run
    with the map has that die's defects."""
    study = nist_study.replace(**{
        "network.max_solutions": 1, "device.variation": True, "write.mode": "physics",
        "write.voltage": 0.8, "write.pulse_width": 2e-9, "device.delta_sat": 25.0,
        "defects.stuck_p": 0.03, "defects.stuck_ap": 0.03, "defects.short": 0.03,
        "defects.open": 0.03, **extra})
    prep = mcmtj.prepare(study)
    sampled = mcmtj.simulate(study, seed=5, instances=2, prepared=prep)
    die = instance_device_map(study, 0, 1, prepared=prep, seed=5)
    for suffix in (".csv", ".nc"):
        path = save_device_map(die, tmp_path / f"die{suffix}")
        again = mcmtj.simulate(study.replace(**{"array.device_map": str(path)}), seed=5,
                               instances=2, prepared=prep)
        at = {"instance": 1}
        for name in RESULTS:
            np.testing.assert_allclose(again[name].isel(at).values,
                                       sampled[name].isel(at).values, rtol=1e-12,
                                       err_msg=f"{suffix} {name}")
        first, second = {"solution": 0, "instance": 0}, {"solution": 0, "instance": 1}
        assert int(again.n_short.isel(first)) == int(sampled.n_short.isel(second))
    assert int(sampled.n_short.isel(second)) + int(sampled.n_open.isel(second)) > 0
    assert int(sampled.n_stuck.isel(second)) > 0
