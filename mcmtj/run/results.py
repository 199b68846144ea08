"""Reading and writing result Datasets (netCDF files and zarr stores).

netCDF files are written through h5netcdf to a temporary name in the target
folder and renamed into place, so a crash never leaves a partial file under the
requested name.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import xarray as xr

from mcmtj.run.store import open_store

__all__ = ["save", "open_results"]


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
        return open_store(path, incomplete_ok=incomplete_ok)
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()
