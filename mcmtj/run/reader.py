"""Opening stored results (netCDF files and zarr stores), refusing damaged ones."""

from __future__ import annotations

import os
from pathlib import Path

import xarray as xr

from mcmtj.run.store import open_store

__all__ = ["open_results"]


def open_results(path: str | os.PathLike, *, incomplete_ok: bool = False,
                 verify: bool | str = True) -> xr.Dataset:
    """Open results written by :func:`save` or :func:`mcmtj.simulate`, refusing damaged ones.

    Parameters
    ----------
    path : str or path-like
        A netCDF file (loaded into memory, file closed) or a ``.zarr`` store (opened
        lazily: values are read from disk when used; ``.load()`` reads them all).
    incomplete_ok : bool, default False
        Open a zarr store whose run is unfinished (blocks not written yet read as NaN
        and 0); by default that is a ValueError saying how far the run got.
    verify : bool or "full", default True
        netCDF: every chunk's Fletcher-32 checksum is checked as it is read (always).
        Zarr store of :func:`mcmtj.simulate`: ``True`` checks every block's marker and
        chunk files (present, sizes as committed) before opening, and the chunks'
        CRC-32C checksums are checked whenever values are read; ``"full"`` also
        recomputes every block's SHA-256 digest (reads the whole store); ``False`` opens
        without any check of the blocks (to salvage a damaged store).

    Raises
    ------
    FileNotFoundError
        Nothing at ``path``.
    ValueError
        An incomplete store (see ``incomplete_ok``), damaged blocks (the message names
        them and says how to repair them) or an unreadable file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"results file not found: {path}")
    if path.is_dir():
        return open_store(path, incomplete_ok=incomplete_ok, verify=verify)
    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            return ds.load()
    except OSError as exc:
        if "filter returned failure" in str(exc) or "checksum" in str(exc).lower():
            raise ValueError(f"{path} is damaged: a chunk fails its Fletcher-32 checksum; "
                             "rerun the study to rewrite it") from None
        raise
