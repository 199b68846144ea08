"""The trainer's hardware forward is the engine's inference on the same devices.

Hardware-aware and statistics-aware training only help if the network they train on is the
one the engine judges: same weight-to-device mapping (+1 -> (P, AP), -1 -> (AP, P)), same
unit (nominal G_P - G_AP at gnorm 1), same place for the biases. Here the engine writes
trained solutions into sampled dies (variation and shorts, ideal writes, ideal read) and
records each cell's conductance; the trainer, given those conductances as a device map,
must predict what the engine's inference predicted, instance by instance.
"""

from __future__ import annotations

import numpy as np
import pytest

from mcmtj.config import Study
from mcmtj.networks.data import load_wine
from mcmtj.networks.solutions import save_solutions
from mcmtj.networks.trainer import BinaryMLP
from mcmtj.physics.device import nominal_conductances
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
