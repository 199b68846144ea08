"""The result Dataset: building it with the schema of :mod:`mcmtj.schema`, and I/O.

netCDF files are written through h5netcdf to a temporary name in the target
folder and renamed into place, so a crash never leaves a partial file under the
requested name.
"""

from __future__ import annotations

import datetime as _dt
import os
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

from . import schema

__all__ = ["build_dataset", "save", "open_results", "versions"]


def versions() -> dict[str, str]:
    """Versions of mcmtj and its main dependencies."""
    import numba
    import sklearn

    from . import __version__

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


def build_dataset(plan, arrays: dict[str, np.ndarray]) -> xr.Dataset:
    """Wrap the engine's arrays (leading axes: flat sweep point, solution, instance) into
    the schema Dataset.

    Parameters
    ----------
    plan : mcmtj.engine.Plan
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
    coords = {schema.SOLUTION: np.arange(n_sol), schema.INSTANCE: np.arange(n_inst)}
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
    ds = xr.Dataset(data, coords=coords, attrs=attrs)
    return ds.transpose(*sweep_dims, schema.SOLUTION, schema.INSTANCE, *g_dims, ...)


def _device_coords(layer_in, layer_out) -> dict:
    """Layer, row and column of each used cell, in the kernel's device order."""
    cells = [(l, r, c) for l in range(len(layer_in)) for r in range(int(layer_in[l]))
             for c in range(2 * int(layer_out[l]))]
    layer, row, col = (np.array(v, dtype=np.int64) for v in zip(*cells, strict=True))
    return {schema.DEVICE: np.arange(len(cells)), schema.DEVICE_LAYER: (schema.DEVICE, layer),
            schema.DEVICE_ROW: (schema.DEVICE, row), schema.DEVICE_COL: (schema.DEVICE, col)}


def save(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write a result Dataset to netCDF (h5netcdf), or to zarr for a ``.zarr`` path,
    atomically.

    The file (or store folder) is written under a temporary name in the same folder and
    renamed into place, so ``path`` is either complete or untouched. To stream a run
    into a zarr store while it runs, pass ``store=`` to :func:`mcmtj.simulate` instead.
    """
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise FileNotFoundError(f"output folder does not exist: {path.parent}")
    if path.suffix == ".zarr":
        return _save_zarr(ds, path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent or ".")
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine="h5netcdf")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _save_zarr(ds: xr.Dataset, path: Path) -> Path:
    import shutil
    import uuid

    if path.exists():
        raise FileExistsError(f"{path} exists; zarr stores are never overwritten")
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        ds.to_zarr(tmp, mode="w-", zarr_format=3, consolidated=False)
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def open_results(path: str | os.PathLike, *, incomplete_ok: bool = False) -> xr.Dataset:
    """Open results written by :func:`save` or :func:`mcmtj.simulate`.

    Parameters
    ----------
    path : str or path-like
        A netCDF file (loaded into memory, file closed) or a ``.zarr`` store (opened
        lazily: values are read from disk when used; ``.load()`` reads them all).
    incomplete_ok : bool, default False
        Open a zarr store whose run is unfinished (blocks not written yet read as NaN
        and 0); by default that is a ValueError saying how far the run got.

    Raises
    ------
    FileNotFoundError
        Nothing at ``path``.
    ValueError
        An incomplete store (see ``incomplete_ok``) or an unreadable file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"results file not found: {path}")
    if path.is_dir():
        from .store import open_store

        return open_store(path, incomplete_ok=incomplete_ok)
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()
