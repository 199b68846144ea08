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


def build_dataset(study, prepared, *, shape, gnorms, acc, acc_train, agree, write_fidelity,
                  weight_fidelity, current_rmse, counts, software_accuracy,
                  software_accuracy_train) -> xr.Dataset:
    """Wrap the engine's flat arrays (leading axis: sweep point) into the schema Dataset."""
    from .engine import count_names

    sweep_dims = study.sweep_dims()
    S, n_inst = acc.shape[1], acc.shape[2]
    inst_dims = (*sweep_dims, schema.SOLUTION, schema.INSTANCE)
    sol_dims = (*sweep_dims, schema.SOLUTION)
    has_g = gnorms is not None
    g_dims = (schema.GNORM,) if has_g else ()

    def point_shape(a, dims_tail):
        a = a.reshape(*shape, *a.shape[1:])
        if not has_g and a.shape[-1] == 1 and dims_tail:
            a = a[..., 0]
        return a

    data = {
        schema.ACCURACY: _var(schema.ACCURACY, inst_dims + g_dims, point_shape(acc, g_dims or (1,))),
        schema.AGREEMENT: _var(schema.AGREEMENT, inst_dims + g_dims,
                               point_shape(agree, g_dims or (1,))),
        schema.WRITE_FIDELITY: _var(schema.WRITE_FIDELITY, inst_dims,
                                    write_fidelity.reshape(*shape, S, n_inst)),
        schema.WEIGHT_FIDELITY: _var(schema.WEIGHT_FIDELITY, inst_dims,
                                     weight_fidelity.reshape(*shape, S, n_inst)),
        schema.CURRENT_RMSE: _var(schema.CURRENT_RMSE, inst_dims,
                                  current_rmse.reshape(*shape, S, n_inst)),
        schema.SOFTWARE_ACCURACY: _var(schema.SOFTWARE_ACCURACY, sol_dims + g_dims,
                                       point_shape(software_accuracy, g_dims or (1,))),
        schema.SOFTWARE_ACCURACY_TRAIN: _var(schema.SOFTWARE_ACCURACY_TRAIN, sol_dims + g_dims,
                                             point_shape(software_accuracy_train, g_dims or (1,))),
    }
    if acc_train is not None:
        data[schema.ACCURACY_TRAIN] = _var(schema.ACCURACY_TRAIN, inst_dims + g_dims,
                                           point_shape(acc_train, g_dims or (1,)))
    counts = counts.reshape(*shape, S, n_inst, counts.shape[-1])
    for c, name in enumerate(count_names()):
        data[name] = _var(name, inst_dims, counts[..., c])

    coords = {
        schema.SOLUTION: np.arange(S),
        schema.INSTANCE: np.arange(n_inst),
    }
    for dim, (_, values) in zip(sweep_dims, study.sweep, strict=True):
        coords[dim] = np.asarray(values)
    if has_g:
        coords[schema.GNORM] = np.asarray(gnorms, dtype=np.float64)
    attrs = {
        "title": "mcmtj Monte Carlo results",
        "study": study.to_toml(),
        "seed": str(study.run.seed),
        "solutions": prepared.solutions.name,
        "data": prepared.data.name,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **{f"version_{k}": v for k, v in versions().items()},
    }
    ds = xr.Dataset(data, coords=coords, attrs=attrs)
    # sweep dims first, in study order, then solution, instance, gnorm
    return ds.transpose(*sweep_dims, schema.SOLUTION, schema.INSTANCE, *g_dims)


def save(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write a result Dataset to netCDF (h5netcdf) atomically.

    The file is written under a temporary name in the same folder and renamed into
    place, so ``path`` is either the complete file or untouched.
    """
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise FileNotFoundError(f"output folder does not exist: {path.parent}")
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent or ".")
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine="h5netcdf")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def open_results(path: str | os.PathLike) -> xr.Dataset:
    """Open a result file written by :func:`save` (loaded into memory, file closed)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"results file not found: {path}")
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()
