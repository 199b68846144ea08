"""The result Dataset: the engine's arrays wrapped with the schema of :mod:`mcmtj.run.schema`."""

from __future__ import annotations

import datetime as _dt

import numpy as np
import xarray as xr

from mcmtj._version import __version__
from mcmtj.run import schema

__all__ = ["build_dataset", "instance_coordinate", "versions"]


def versions() -> dict[str, str]:
    """Versions of mcmtj and its main dependencies."""
    import numba
    import sklearn

    return {
        "mcmtj": __version__,
        "numpy": np.__version__,
        "numba": numba.__version__,
        "xarray": xr.__version__,
        "scikit-learn": sklearn.__version__,
    }


def _var(name, dims, data):
    long_name, units = schema.VARIABLES[name]
    return xr.Variable(dims, data, attrs={"long_name": long_name, "units": units})


#: instance counts up to this get a plain ``arange`` coordinate; above it a lazy range
#: index (8 bytes per instance would not fit: a 1e12-instance store is legitimate)
_ARANGE_MAX = 1 << 26


def instance_coordinate(n: int) -> dict | xr.Coordinates:
    """The ``instance`` coordinate ``0 .. n - 1`` without materialising huge ranges.

    Parameters
    ----------
    n : int
        Instances.

    Returns
    -------
    dict or xarray.Coordinates
        ``{"instance": np.arange(n)}`` up to ``2**26`` instances (a plain index, as
        every Dataset had before), above that a lazy ``xarray.indexes.RangeIndex`` of
        int64 values (memory independent of ``n``).
    """
    if n <= _ARANGE_MAX:
        return {schema.INSTANCE: np.arange(n)}
    from xarray.indexes import RangeIndex

    return xr.Coordinates.from_xindex(
        RangeIndex.arange(0, n, 1, dim=schema.INSTANCE, dtype=np.int64))


def build_dataset(plan, arrays: dict[str, np.ndarray]) -> xr.Dataset:
    """Wrap the engine's arrays (leading axes: flat sweep point, solution, instance) into
    the schema Dataset.

    Parameters
    ----------
    plan : mcmtj.run.block.Plan
    arrays : dict
        Result name -> array of shape (n_points, n_solutions, n_instances[, gnorm]).
    """
    study = plan.study
    shape = study.sweep_shape
    sweep_dims = list(study.sweep_dims())
    inst_dims = (*sweep_dims, schema.SOLUTION, schema.INSTANCE)
    sol_dims = (*sweep_dims, schema.SOLUTION)
    has_g = plan.gnorm_list is not None
    g_dims = (schema.GNORM,) if has_g else ()

    def shaped(a, has_gain_axis):
        a = a.reshape(*shape, *a.shape[1:])
        if has_gain_axis and not has_g:
            a = a[..., 0]
        return a

    data = {}
    for name, values in arrays.items():
        if name == schema.READBACK_CONDUCTANCE:  # opt-in per-device output
            data[name] = _var(name, (*inst_dims, schema.DEVICE), shaped(values, False))
            continue
        gain = values.ndim == 4
        data[name] = _var(name, inst_dims + (g_dims if gain else ()), shaped(values, gain))
    for name, attr in ((schema.SOFTWARE_ACCURACY, "software_accuracy"),
                       (schema.SOFTWARE_ACCURACY_TRAIN, "software_accuracy_train")):
        values = np.stack([getattr(pp, attr) for pp in plan.points])
        data[name] = _var(name, sol_dims + g_dims, shaped(values, True))

    n_sol, n_inst = plan.n_solutions, plan.n_instances
    coords = {schema.SOLUTION: np.arange(n_sol)}
    for dim, (_, values) in zip(sweep_dims, study.sweep, strict=True):
        coords[dim] = np.asarray(values)
    if has_g:
        coords[schema.GNORM] = np.asarray(plan.gnorm_list, dtype=np.float64)
    if schema.READBACK_CONDUCTANCE in arrays:
        coords.update(_device_coords(plan.packed.layer_in, plan.packed.layer_out))
    attrs = {
        "title": "mcmtj Monte Carlo results",
        "study": study.to_toml(),
        "seed": str(study.run.seed),
        "solutions": plan.prepared.solutions.name,
        "data": plan.prepared.data.name,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **{f"version_{k}": v for k, v in versions().items()},
    }
    ds = xr.Dataset(data, coords=coords, attrs=attrs).assign_coords(
        instance_coordinate(n_inst))
    return ds.transpose(*sweep_dims, schema.SOLUTION, schema.INSTANCE, *g_dims, ...)


def _device_coords(layer_in, layer_out) -> dict:
    """Layer, row and column of each used cell, in the kernel's device order."""
    cells = [(l, r, c) for l in range(len(layer_in)) for r in range(int(layer_in[l]))
             for c in range(2 * int(layer_out[l]))]
    layer, row, col = (np.array(v, dtype=np.int64) for v in zip(*cells, strict=True))
    return {schema.DEVICE: np.arange(len(cells)), schema.DEVICE_LAYER: (schema.DEVICE, layer),
            schema.DEVICE_ROW: (schema.DEVICE, row), schema.DEVICE_COL: (schema.DEVICE, col)}


#: extra bytes a netCDF file needs beyond its arrays (HDF5 headers, attrs, chunk index)
