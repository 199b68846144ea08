"""Device maps from runs: the die one instance of a study sampled, as a
:class:`mcmtj.physics.maps.DeviceMap` (save it with
:func:`mcmtj.physics.maps.save_device_map`; a study with ``array.device_map`` set to that
file then simulates that die again).
"""

from __future__ import annotations

import numpy as np

from mcmtj.config import Study
from mcmtj.kernels import _engine_kernels as K
from mcmtj.physics.maps import DeviceMap
from mcmtj.run.block import Prepared, make_plan, prepare

__all__ = ["instance_device_map"]


def instance_device_map(study: Study, solution: int, instance: int, point: int = 0,
                        prepared: Prepared | None = None, seed: int | None = None) -> DeviceMap:
    """The devices one instance of a study samples before writing, as a device map.

    Parameters
    ----------
    study : Study
    solution, instance : int
        Global solution and instance indices (they key the random streams).
    point : int
        Sweep point (C order of the sweep).
    prepared : Prepared, optional
        The study's solutions and data (loaded or trained when not given).
    seed : int, optional
        Overrides ``run.seed``, as :func:`mcmtj.simulate`'s ``seed``.

    Returns
    -------
    DeviceMap
        Per layer: defect codes and the devices' P and AP resistances (ohm), what
        :func:`mcmtj.simulate` draws for that instance (device-to-device and die-to-die
        variation, gradients, defects). With ``array.device_map`` set, the map's devices.
    """
    if seed is not None:
        study = study.replace(**{"run.seed": seed})
    plan = make_plan(study, prepared or prepare(study))
    if not 0 <= point < len(plan.points):
        raise ValueError(f"point = {point} is out of range: must be 0 to {len(plan.points) - 1}")
    if not 0 <= solution < plan.n_solutions:
        raise ValueError(f"solution = {solution} is out of range: must be 0 to "
                         f"{plan.n_solutions - 1}")
    if instance < 0:
        raise ValueError(f"instance = {instance} is out of range: must be >= 0")
    pp = plan.points[point]
    tiles = pp.tiles
    out = np.zeros((plan.n_devices, 3))
    if pp.dev_map.shape[0]:
        out[:] = pp.dev_map
    else:
        K.sample_die(np.uint64(pp.key[0]), np.uint64(pp.key[1]), solution, instance,
                     pp.arr_states[solution], np.ascontiguousarray(tiles[:, 3]),
                     tiles[:, 4] // 2, pp.fp, pp.ip, out)
    shapes = plan.prepared.solutions.layer_shapes
    defect = [np.zeros((n, 2 * m), np.int8) for n, m in shapes]
    r_p = [np.zeros((n, 2 * m)) for n, m in shapes]
    r_ap = [np.zeros((n, 2 * m)) for n, m in shapes]
    k = 0
    for l, r0, c0, n_r, n_c in tiles:
        size = n_r * n_c
        g_p = out[k:k + size, 0].reshape(n_r, n_c)
        tmr = out[k:k + size, 1].reshape(n_r, n_c)
        defect[l][r0:r0 + n_r, c0:c0 + n_c] = out[k:k + size, 2].reshape(n_r, n_c)
        with np.errstate(divide="ignore"):  # a loaded map's shorts and opens carry G_P = 0
            r_p[l][r0:r0 + n_r, c0:c0 + n_c] = 1.0 / g_p
            r_ap[l][r0:r0 + n_r, c0:c0 + n_c] = (1.0 + tmr) / g_p
        k += size
    return DeviceMap(tuple(defect), tuple(r_p), tuple(r_ap))
