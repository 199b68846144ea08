"""The opt-in per-device output ``readback_conductance`` (dim ``device``).

Oracles: the nominal conductance from its formula (G_P = pi d^2 / (4 RA), G_AP = G_P /
(1 + TMR)) for ideal devices on the core path, and the engine's own accuracies, which a
plain NumPy forward pass of the read-back weights must reproduce on the wired path.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import mcmtj
from mcmtj.analysis import _np as core
from mcmtj.run import schema


def _ideal(nist_study, **extra):
    return nist_study.replace(**{"network.readback": True, "network.max_solutions": 2,
                                 "run.instances": 2, **extra})


def test_ideal_core_path_reads_back_the_nominal_conductances(nist_study, nist_prepared):
    study = _ideal(nist_study)
    ds = mcmtj.simulate(study, progress=False, prepared=nist_prepared)
    g = ds[schema.READBACK_CONDUCTANCE]
    assert g.dims == (schema.SOLUTION, schema.INSTANCE, schema.DEVICE)
    assert g.sizes[schema.DEVICE] == 13 * 12 + 6 * 6
    assert g.attrs["units"] == "S"
    d = study.device
    g_p = math.pi * d.diameter**2 / (4 * d.resistance_area)
    g_ap = g_p / (1 + d.tmr)
    sol = nist_prepared.solutions
    for s in range(2):
        states = np.concatenate([sol.states[0][s].ravel(), sol.states[1][s].ravel()])
        expected = np.where(states == 1, g_p, g_ap)
        for i in range(2):
            np.testing.assert_allclose(g.isel(solution=s, instance=i), expected, rtol=1e-12)
    # the device coordinates name each cell
    assert int(g[schema.DEVICE_LAYER][-1]) == 1 and int(g[schema.DEVICE_ROW][-1]) == 5
    assert int(g[schema.DEVICE_COL][13 * 12]) == 0


def test_readback_is_opt_in(nist_study, nist_prepared):
    ds = mcmtj.simulate(_ideal(nist_study, **{"network.readback": False}), progress=False,
                        prepared=nist_prepared)
    assert schema.READBACK_CONDUCTANCE not in ds and schema.DEVICE not in ds.dims


@pytest.mark.slow
def test_wired_readback_rebuilds_the_engine_accuracy(nist_study, nist_prepared, tmp_path):
    """With line resistance the read-back is the transfer matrix; a NumPy forward pass of
    it gives the engine's accuracy at every gain; the .zarr store keeps the device dim."""
    study = nist_study.replace(**{
        "network.readback": True, "network.max_solutions": 2, "run.instances": 3,
        "network.gnorm": [1.0, 0.75], "read.r_row": 2.0, "read.r_col": 2.0,
        "device.variation": True, "network.eval_split": "test"})
    ds = mcmtj.simulate(study, progress=False, store=tmp_path / "r.zarr").load()
    prep = mcmtj.prepare(study)
    data, sol = prep.data, prep.solutions
    from mcmtj.physics.device import nominal_conductances

    g_p, g_ap = nominal_conductances(study.device)
    bias = np.zeros((2, 2, 6))
    for l, b in enumerate(sol.biases):
        bias[:, l, : b.shape[1]] = b[:2]
    pred = core.readback_predictions(
        ds[schema.READBACK_CONDUCTANCE].values, (13, 6), (6, 3), 1.0 / (g_p - g_ap),
        bias[:, None], data.X_test.T, [1.0, 0.75])
    acc = (pred == data.y_test).mean(-1)
    np.testing.assert_array_equal(acc, ds[schema.ACCURACY].values)
    nc = mcmtj.simulate(study, progress=False)
    # the zarr store keeps the values and the device dim (its device_layer/row/col
    # coordinates are in the netCDF result only)
    assert ds[schema.READBACK_CONDUCTANCE].dims == nc[schema.READBACK_CONDUCTANCE].dims
    np.testing.assert_array_equal(nc[schema.READBACK_CONDUCTANCE].values,
                                  ds[schema.READBACK_CONDUCTANCE].values)
