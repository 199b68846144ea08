"""Writing result files: output checks before a run, atomic netCDF writes, stale temporaries.

netCDF files are written through h5netcdf to a temporary name in the target
folder and renamed into place, so a crash never leaves a partial file under the
requested name.
"""

from __future__ import annotations

import errno
import glob
import os
import shutil
import uuid
from pathlib import Path

import xarray as xr

__all__ = ["save", "check_output", "netcdf_size", "remove_stale_temporaries", "human_bytes"]


_NC_OVERHEAD = 1 << 20


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def human_bytes(n: float) -> str:
    """``n`` bytes as a short human-readable size (``1.5 GB``; powers of 1000)."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError  # pragma: no cover


def os_error(code: int | None, message: str) -> OSError:
    """An ``OSError`` with ``errno`` set whose text is ``message`` alone (``OSError(code,
    message)`` would print as ``[Errno 28] message``)."""
    exc = OSError(message)
    exc.errno = code
    return exc


def _overwrite_hint(cli: bool, resumable: bool) -> str:
    if cli:
        return ("pass --resume to finish its run, or --overwrite to replace it" if resumable
                else "pass --overwrite to replace it")
    return ("pass resume=True to finish its run, or overwrite=True to replace it" if resumable
            else "pass overwrite=True to replace it")


def check_output(path: str | os.PathLike, *, formats: tuple[str, ...] = (".nc", ".zarr"),
                 overwrite: bool = False, resume: bool = False, cli: bool = False,
                 label: str = "output") -> Path:
    """Check, before any work, that a result (or figure) can be written to ``path``.

    The same rules for every output kind: a known format (by suffix), an existing
    folder that this process can create files in, a path that is not a folder (a
    ``.zarr`` store is one: there, not a plain file), and no existing output unless
    ``overwrite`` (or ``resume``, for a ``.zarr`` store). Nothing is created or removed.

    Parameters
    ----------
    path : str or path-like
    formats : tuple of str
        Allowed suffixes, lower case with the dot (``(".nc", ".zarr")``; a figure passes
        matplotlib's formats).
    overwrite : bool, default False
        An existing output may be replaced.
    resume : bool, default False
        An existing ``.zarr`` store may be finished.
    cli : bool, default False
        Word the refusal for the command line (``--overwrite``) instead of Python
        (``overwrite=True``).
    label : str, default "output"
        What the path is, for messages (``"plot"``).

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        Unknown format, or a plain file where a ``.zarr`` store is expected.
    FileNotFoundError
        The folder does not exist.
    NotADirectoryError, IsADirectoryError, PermissionError
        The folder is not a folder or not writable; the path is a folder.
    FileExistsError
        The output exists and neither ``overwrite`` nor (for a store) ``resume`` is set.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in formats:
        shown = f"{path.suffix!r}" if path.suffix else "no suffix"
        raise ValueError(f"{label} {path}: unknown format ({shown}): must end in "
                         f"{', '.join(formats)}")
    folder = path.parent
    if not folder.exists():
        raise FileNotFoundError(f"{label} folder does not exist: {folder}")
    if not folder.is_dir():
        raise NotADirectoryError(f"{label} folder is not a folder: {folder}")
    _probe_writable(folder, label)
    is_store = suffix == ".zarr"
    if path.is_dir() and not is_store:
        raise IsADirectoryError(f"{label} {path} is a folder, not a file")
    if is_store and path.exists() and not path.is_dir():
        raise ValueError(f"{label} {path} is a file, not a zarr store (a .zarr output is a "
                         "folder); choose another name")
    if path.exists() or path.is_symlink():
        if resume and is_store:
            _probe_writable(path, label)
        elif overwrite:
            if is_store:
                _probe_writable(path, label)
        else:
            raise FileExistsError(f"{label} {path} exists: "
                                  f"{_overwrite_hint(cli, is_store and label == 'output')}")
    return path


def _probe_writable(folder: Path, label: str) -> None:
    """Create and remove a file in ``folder`` (``os.access`` is wrong for root, ACLs,
    read-only mounts)."""
    probe = folder / f".mcmtj-probe-{uuid.uuid4().hex[:8]}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise PermissionError(f"{label} folder {folder} is not writable: "
                              f"{exc.strerror or exc}") from None
    os.close(fd)
    probe.unlink(missing_ok=True)


def netcdf_size(ds: xr.Dataset) -> int:
    """Upper estimate of the netCDF file of ``ds`` in bytes (arrays plus headers), for
    free-space checks before writing."""
    return int(sum(v.nbytes for v in ds.variables.values())) + _NC_OVERHEAD


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove temporary files that killed writers of ``path`` left behind.

    A netCDF writer holds an exclusive ``flock`` on its temporary file
    (``NAME.XXXXXXXX.tmp``) while it lives, and the kernel drops it when the process
    dies; a temporary that can be locked therefore belongs to a dead writer. Where
    ``flock`` is not available nothing is removed.

    Returns
    -------
    list of Path
        The files removed.
    """
    path = Path(path)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return []
    removed = []
    for tmp in path.parent.glob(f"{glob.escape(path.name)}.*.tmp"):
        try:
            fd = os.open(tmp, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # a live writer's
        try:
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def _netcdf_image(ds: xr.Dataset) -> memoryview:
    """The netCDF-4 file of ``ds`` built in memory, with a Fletcher-32 checksum on every
    data variable (HDF5 then refuses to read a damaged chunk).

    Why in memory: h5py segfaults when a real file cannot be flushed (full disk).
    ``h5py.File.close()`` first force-closes every object of the file, then the failing
    ``H5Fclose`` raises and h5netcdf's ``close()`` stops before marking itself closed;
    its ``__del__`` (= ``close``) later runs ``flush()`` again, which opens the root group
    of the half-closed HDF5 file, and HDF5 dereferences freed structures. An in-memory
    image (HDF5 "core" driver without a backing store) has no write that can fail, and
    the bytes are then written with plain ``os.write``, whose errors are ordinary
    Python exceptions.
    """
    out = ds.copy(deep=False)
    for var in out.data_vars.values():
        if var.ndim and var.size and var.dtype.kind in "biuf":
            var.encoding = {**var.encoding, "fletcher32": True}
    return out.to_netcdf(engine="h5netcdf")


def save(ds: xr.Dataset, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
    """Write a result Dataset to netCDF (h5netcdf), or to zarr for a ``.zarr`` path,
    atomically.

    A netCDF file is built in memory (with a Fletcher-32 checksum per data variable),
    its size checked against the free space of the folder, then written under a
    temporary name (``NAME.XXXXXXXX.tmp``, locked while written) in the same folder,
    flushed to disk and renamed into place: ``path`` is either the complete new file or
    the old one untouched. A write error (full disk, quota) removes the temporary file
    and raises one ``OSError`` line naming the file and the space needed; temporaries
    of killed writers of the same path are removed first. Files get the permissions the
    umask allows (like any new file).

    To stream a run into a zarr store while it runs, pass ``store=`` to
    :func:`mcmtj.simulate` instead.

    Parameters
    ----------
    ds : xarray.Dataset
    path : str or path-like
        ``.nc`` or ``.zarr``.
    overwrite : bool, default True
        Replace an existing netCDF file (atomically). A zarr store is never replaced.

    Raises
    ------
    FileNotFoundError
        The folder does not exist.
    FileExistsError
        ``path`` exists and ``overwrite`` is False, or it is a zarr store.
    OSError
        Not enough free space (checked before writing) or a write error.
    """
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise FileNotFoundError(f"output folder does not exist: {path.parent}")
    if path.suffix == ".zarr":
        return _save_zarr(ds, path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists: {_overwrite_hint(False, False)}")
    if path.is_dir():
        raise IsADirectoryError(f"output {path} is a folder, not a file")
    folder = path.parent if str(path.parent) else Path(".")
    remove_stale_temporaries(path)
    free = _free_bytes(folder)
    estimate = netcdf_size(ds)
    if free is not None and estimate > free:
        raise os_error(errno.ENOSPC, f"not enough space to write {path}: needs about "
                      f"{human_bytes(estimate)}, {human_bytes(free)} free in {folder}")
    image = _netcdf_image(ds)
    _write_file(path, image, folder)
    return path


def _write_file(path: Path, data, folder: Path) -> None:
    """Write ``data`` to ``path`` atomically: a locked temporary file, fsync, rename."""
    import fcntl

    tmp = folder / f"{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    # 0o666 & ~umask, like any file the user creates (mkstemp would force 0600)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # tells cleaners this writer lives
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            done += os.write(fd, view[done:done + (64 << 20)])
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            free = _free_bytes(folder)
            free_text = f", {human_bytes(free)} free" if free is not None else ""
            raise os_error(exc.errno, f"cannot write {path}: {exc.strerror} (needs "
                          f"{human_bytes(len(view))}{free_text}); the previous file, if any, "
                          "is unchanged") from None
        raise os_error(exc.errno, f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)


def _save_zarr(ds: xr.Dataset, path: Path) -> Path:
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
