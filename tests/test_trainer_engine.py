"""The trainer's hardware forward is the engine's inference on the same devices.

Hardware-aware and statistics-aware training only help if the network they train on is the
one the engine judges: same weight-to-device mapping (+1 -> (P, AP), -1 -> (AP, P)), same
unit (nominal G_P - G_AP at gnorm 1), same place for the biases. Here the engine writes
trained solutions into sampled dies (variation and shorts, ideal writes, ideal read) and
records each cell's conductance; the trainer, given those conductances as a device map,
must predict what the engine's inference predicted, instance by instance. And a die saved
as a measured map file (mcmtj.physics.maps) and studied by the engine on integrated arrays,
tiled or not, must score as the trainer predicts on that map.
"""

from __future__ import annotations

import numpy as np
import pytest

from mcmtj.config import Study
from mcmtj.networks.data import load_wine
from mcmtj.networks.solutions import save_solutions
from mcmtj.networks.trainer import BinaryMLP
from mcmtj.physics.device import nominal_conductances
from mcmtj.physics.maps import DeviceMap, save_device_map, written_conductances
from mcmtj.run import schema
from mcmtj.run.engine import simulate


@pytest.mark.parametrize("kind", ["passive", "integrated"])
def test_hardware_forward_equals_engine_inference(tmp_path, kind):
    data = load_wine()
    model = BinaryMLP(n_solutions=2, epochs=20, random_state=0).fit(data.X_train, data.y_train)
    path = tmp_path / "solutions.npz"
    save_solutions(model.to_solutions(), path)
    study = Study().replace(**{
        "network.source": "file", "network.solutions_path": str(path),
        "network.dataset": "wine", "network.readback": True,
        "write.mode": "ideal", "write.initial": "ap_ideal", "write.scheme": "none",
        "defects.short": 0.05, "defects.r_short": 1000.0, "device.variation": True,
        "run.instances": 4, "run.seed": 3, "array.kind": kind,
    })
    ds = simulate(study)
    g_unit = np.subtract(*nominal_conductances(study.device))
    shapes = [(w.shape[1], 2 * w.shape[2]) for w in model.weights_]
    assert int(ds[schema.N_SHORT].sum()) > 0  # the dies do have shorts
    for s in range(2):
        for i in range(ds.sizes[schema.INSTANCE]):
            g = ds[schema.READBACK_CONDUCTANCE].isel(solution=s, instance=i).values / g_unit
            # only the written state's conductance is known: use it for both states
            layers, start = [], 0
            for n_in, n_cols in shapes:
                cells = g[start:start + n_in * n_cols].reshape(n_in, n_cols)
                layers.append(np.repeat(cells[..., None], 2, axis=-1))
                start += n_in * n_cols
            accuracy = model.accuracy(data.X_test, data.y_test, device_map=layers)[s]
            assert accuracy == ds[schema.ACCURACY].isel(solution=s, instance=i).item()


@pytest.mark.parametrize("tiles", [(0, 0), (8, 8)])
def test_hardware_forward_on_a_measured_map_equals_engine(tmp_path, tiles):
    # A die given as a map file (every defect class, spread resistances) is the fixed
    # device set of every engine instance; with ideal writes and reads on integrated arrays
    # (tiled or not) the engine's accuracy is what the trainer predicts on that map.
    data = load_wine()
    model = BinaryMLP(n_solutions=2, epochs=20, random_state=1).fit(data.X_train, data.y_train)
    sol_path = tmp_path / "solutions.npz"
    save_solutions(model.to_solutions(), sol_path)
    rng = np.random.default_rng(7)
    shapes = [(13, 12), (6, 6)]
    defect = tuple(rng.choice(5, size=s, p=[0.8, 0.05, 0.05, 0.05, 0.05]).astype(np.int8)
                   for s in shapes)
    r_p = tuple(3500.0 * np.exp(0.1 * rng.standard_normal(s)) for s in shapes)
    r_ap = tuple(r * (2.2 + 0.1 * rng.standard_normal(r.shape)) for r in r_p)
    die = DeviceMap(defect=defect, r_p=r_p, r_ap=r_ap)
    map_path = save_device_map(die, tmp_path / "die.csv")
    study = Study().replace(**{
        "network.source": "file", "network.solutions_path": str(sol_path),
        "network.dataset": "wine", "array.kind": "integrated",
        "array.rows": 15 if tiles == (0, 0) else 8, "array.cols": 15 if tiles == (0, 0) else 8,
        "array.tile_rows": tiles[0], "array.tile_cols": tiles[1],
        "array.device_map": str(map_path),
        "write.mode": "ideal", "write.initial": "ap_ideal", "write.scheme": "none",
        "defects.r_short": 1000.0, "run.instances": 2, "run.seed": 5,
    })
    ds = simulate(study)
    g_unit = np.subtract(*nominal_conductances(study.device))
    layers = [g / g_unit for g in written_conductances(die, study.defects.r_short)]
    expected = model.accuracy(data.X_test, data.y_test, device_map=layers)
    for i in range(ds.sizes[schema.INSTANCE]):
        np.testing.assert_array_equal(ds[schema.ACCURACY].isel(instance=i).values, expected)
    # the map matters: the same networks on ideal hardware do differently
    assert not np.array_equal(expected, model.accuracy(data.X_test, data.y_test))
