"""Streamed, resumable result stores: a run written block by block into a zarr store.

A store is the result Dataset of :func:`mcmtj.run.dataset.build_dataset` laid out in zarr
(format 3), plus a ``_mcmtj`` group that xarray does not read:

- its attrs hold the *manifest*: the store format, the block layout (:class:`Layout`),
  when the store was created and one entry per session that wrote to it;
- ``_mcmtj/done/`` holds one *marker* file per block whose arrays are fully written; it
  records, per variable, the SHA-256 digest of exactly the values the block wrote and
  the size of its chunk file.

Every chunk also carries a CRC-32C checksum (zarr's ``crc32c`` codec), so damaged bytes
are refused whenever they are read. :func:`verify_store` checks a store: the fast way
(markers, chunk files present with their committed sizes) or in full (every digest);
:func:`open_store` refuses damaged blocks by name, and a resumed run recomputes them
(and blocks without a marker), ending identical to an uninterrupted run.

The ``instance`` coordinate is not stored: it is ``0 .. n - 1`` by definition, recorded
by the layout in the manifest and rebuilt on opening (lazily for huge runs), so creating
a store costs the same for any number of instances.

The store is created complete in structure -- sweep coordinates, per-solution variables,
attrs, empty per-instance arrays -- under a temporary name and renamed into place.
Each block is then committed in two steps: its arrays are written (every zarr chunk
file is itself written under a temporary name and renamed), then its marker is
renamed into place. A process killed at any moment therefore leaves complete blocks
with markers and, at worst, one block with data but no marker; a resumed run computes
exactly the blocks without a marker. Zarr chunks are aligned with blocks, so no two
blocks share a chunk file.

A lock file (``fcntl.flock``, released by the kernel when the process dies) keeps two
processes from writing the same store.

Memory: while a run is being written, only the blocks in flight are held (the writer
thread's queue holds at most two); the Dataset returned at the end is opened lazily
from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import glob
import hashlib
import json
import math
import os
import queue
import shlex
import shutil
import threading
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from mcmtj.run import schema
from mcmtj.run.block import count_names
from mcmtj.run.dataset import build_dataset, instance_coordinate
from mcmtj.run.executors import Task
from mcmtj.run.results import human_bytes, os_error

__all__ = ["Layout", "ResultStore", "StoreStatus", "store_status", "open_store", "is_zarr_path",
           "verify_store", "Verification"]

FORMAT = "mcmtj-zarr/1"
META = "_mcmtj"
DONE = "done"
LOCK = "lock"
#: version of the marker contents (digests per variable)
_MARKER_VERSION = 1
#: study fields that are execution settings: results do not depend on them
_EXECUTION_KEYS = {"run.chunk_size"}


def is_zarr_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a zarr store (suffix ``.zarr``)."""
    return Path(path).suffix == ".zarr"


@dataclass(frozen=True)
class Layout:
    """How a run is cut into blocks (= zarr chunks of the per-instance variables).

    Parameters
    ----------
    sweep_shape : tuple of int
        Sizes of the sweep dims (``()`` without a sweep).
    n_solutions, n_instances : int
    chunk_size : int
        Instances per block along ``instance``.
    solution_block : int
        Solutions per block along ``solution``.
    """

    sweep_shape: tuple[int, ...]
    n_solutions: int
    n_instances: int
    chunk_size: int
    solution_block: int

    def __post_init__(self):
        object.__setattr__(self, "sweep_shape", tuple(int(n) for n in self.sweep_shape))
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size = {self.chunk_size} is out of range: must be >= 1")
        if self.solution_block < 1:
            raise ValueError(
                f"solution_block = {self.solution_block} is out of range: must be >= 1")

    @property
    def n_points(self) -> int:
        """Sweep points."""
        return math.prod(self.sweep_shape)

    @property
    def n_tasks(self) -> int:
        """Blocks in the whole run."""
        return (self.n_points * -(-self.n_solutions // self.solution_block)
                * -(-self.n_instances // self.chunk_size))

    def tasks(self) -> Iterator[Task]:
        """Every block of the run, point by point, solution block by block, then chunks."""
        S, N, b, c = self.n_solutions, self.n_instances, self.solution_block, self.chunk_size
        for p in range(self.n_points):
            for s0 in range(0, S, b):
                for start in range(0, N, c):
                    yield Task(p, s0, min(S, s0 + b), start, min(c, N - start))

    def key(self, task: Task) -> str:
        """Marker name of a block: ``point.solution_block.chunk``."""
        block, chunk = task.sol_start // self.solution_block, task.start // self.chunk_size
        return f"{task.point}.{block}.{chunk}"

    def task_of(self, key: str) -> Task:
        """The block a marker name stands for (inverse of :meth:`key`).

        Raises
        ------
        ValueError
            ``key`` names no block of this layout.
        """
        try:
            point, block, chunk = (int(k) for k in key.split("."))
        except ValueError:
            raise ValueError(f"not a block name: {key!r}") from None
        s0, start = block * self.solution_block, chunk * self.chunk_size
        if not (0 <= point < self.n_points and 0 <= s0 < self.n_solutions
                and 0 <= start < self.n_instances):
            raise ValueError(f"not a block of this run: {key!r}")
        return Task(point, s0, min(self.n_solutions, s0 + self.solution_block), start,
                    min(self.chunk_size, self.n_instances - start))

    def describe(self, task: Task | str) -> str:
        """A block (or marker name) in words: ``block 1.0.2 (point 1, solutions 0-1,
        instances 20-29)``; a name that is no block of the run is quoted as it is."""
        if isinstance(task, str):
            try:
                task = self.task_of(task)
            except ValueError:
                return f"marker {task!r}"
        return (f"block {self.key(task)} (point {task.point}, solutions {task.sol_start}-"
                f"{task.sol_stop - 1}, instances {task.start}-{task.start + task.n - 1})")

    def region(self, task: Task) -> tuple:
        """Index of a block in a per-instance array (sweep indices, solutions, instances)."""
        sweep_idx = (np.unravel_index(task.point, self.sweep_shape)
                     if self.sweep_shape else ())
        return (*(int(i) for i in sweep_idx), slice(task.sol_start, task.sol_stop),
                slice(task.start, task.start + task.n))

    def chunk_coords(self, task: Task, ndim: int) -> tuple[int, ...]:
        """Zarr chunk grid coordinates of a block in an array of ``ndim`` dims (blocks and
        chunks are aligned: one chunk per block and variable)."""
        sweep_idx = (np.unravel_index(task.point, self.sweep_shape)
                     if self.sweep_shape else ())
        coords = (*(int(i) for i in sweep_idx), task.sol_start // self.solution_block,
                  task.start // self.chunk_size)
        return coords + (0,) * (ndim - len(coords))

    def chunks(self, dims: tuple[str, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
        """Zarr chunk shape of a per-instance variable with these dims."""
        n_sweep = len(self.sweep_shape)
        out = []
        for i, (dim, size) in enumerate(zip(dims, shape, strict=True)):
            if i < n_sweep:
                out.append(1)
            elif dim == schema.SOLUTION:
                out.append(min(self.solution_block, size))
            elif dim == schema.INSTANCE:
                out.append(min(self.chunk_size, size))
            else:
                out.append(size)
        return tuple(out)

    def to_dict(self) -> dict:
        """JSON-friendly form (for the manifest)."""
        d = asdict(self)
        d["sweep_shape"] = list(self.sweep_shape)
        return d


@dataclass(frozen=True)
class StoreStatus:
    """What :func:`store_status` reports about a store.

    Attributes
    ----------
    path : Path
    done, total : int
        Blocks committed and blocks in the run.
    layout : Layout or None
        ``None`` for a zarr store not written by :func:`mcmtj.simulate` (e.g. by
        :func:`mcmtj.save`), which is complete by construction.
    created : str
        ISO time the store was created ("" when unknown).
    sessions : list of dict
        One entry per run that wrote to the store (start time, git revision, mcmtj
        version, whether it resumed).
    """

    path: Path
    done: int
    total: int
    layout: Layout | None
    created: str
    sessions: list

    @property
    def complete(self) -> bool:
        """Every block committed."""
        return self.done == self.total


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _read_manifest(path: Path) -> dict | None:
    meta = path / META / "zarr.json"
    if not meta.is_file():
        return None
    try:
        attrs = json.loads(meta.read_text(encoding="utf-8")).get("attributes", {})
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read the store's manifest: {exc}") from None
    if attrs.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown store format {attrs.get('format')!r} "
                         f"(this mcmtj writes {FORMAT!r})")
    return attrs


def _write_manifest(path: Path, manifest: dict) -> None:
    import zarr

    zarr.open_group(path / META, mode="r+", zarr_format=3).attrs.update(manifest)


def store_status(path: str | os.PathLike) -> StoreStatus:
    """Completion and history of a zarr result store.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    StoreStatus

    Raises
    ------
    FileNotFoundError
        There is no store at ``path``.
    ValueError
        ``path`` is not a zarr store or its manifest is unreadable.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"results store not found: {path}")
    if not (path / "zarr.json").is_file():
        raise ValueError(f"{path}: not a zarr store (no zarr.json)")
    manifest = _read_manifest(path)
    if manifest is None:
        return StoreStatus(path, 1, 1, None, "", [])
    lay = manifest["layout"]
    layout = Layout(tuple(lay["sweep_shape"]), lay["n_solutions"], lay["n_instances"],
                    lay["chunk_size"], lay["solution_block"])
    done_dir = path / META / DONE
    done = sum(1 for name in os.listdir(done_dir) if not name.startswith(".")) \
        if done_dir.is_dir() else 0
    return StoreStatus(path, done, layout.n_tasks, layout, manifest.get("created", ""),
                       list(manifest.get("sessions", [])))


def resume_hint(path: str | os.PathLike) -> str:
    """The command that finishes (or repairs) the run in a store, with the path quoted
    for a POSIX shell."""
    return f"mcmtj run STUDY -o {shlex.quote(str(path))} --resume"


def open_store(path: str | os.PathLike, *, incomplete_ok: bool = False,
               verify: bool | str = True) -> xr.Dataset:
    """Open a zarr result store lazily (values are read from disk when used).

    Parameters
    ----------
    path : str or path-like
    incomplete_ok : bool, default False
        Open a store whose run is not finished; blocks not yet written read as NaN
        (floats) and 0 (counts).
    verify : bool or "full", default True
        ``True``: check every committed block before opening -- in full (every SHA-256
        digest) for stores of up to 256 MB of results, else the fast way (chunk files
        present with the sizes they were committed with; values are still checked
        against each chunk's CRC-32C when read). ``"full"``: every digest whatever the
        size. ``False``: no check of the blocks (to salvage a damaged store).

    Raises
    ------
    FileNotFoundError
        No store at ``path``.
    ValueError
        The store is incomplete (the message says how far it got and how to resume),
        holds damaged blocks (named, with the command that recomputes them), or is not
        a zarr store.
    """
    status = store_status(path)
    if verify and status.layout is not None:
        report = verify_store(path, full=True if verify == "full" else "auto")
        if not report.ok:
            raise ValueError(report.message())
    if not status.complete and not incomplete_ok:
        raise ValueError(
            f"{status.path}: the run is incomplete ({status.done}/{status.total} blocks); "
            f"finish it with `{resume_hint(status.path)}`"
        )
    ds = xr.open_zarr(status.path, consolidated=False, chunks=None)
    if status.layout is not None and schema.INSTANCE not in ds.variables:
        ds = ds.assign_coords(instance_coordinate(status.layout.n_instances))
    return ds


@dataclass(frozen=True)
class Verification:
    """What :func:`verify_store` found.

    Attributes
    ----------
    path : Path
    status : StoreStatus
    full : bool
        Whether every digest was recomputed (else sizes and markers only).
    damaged : list of (str, str)
        ``(block key, reason)`` for every committed block that is damaged.
    damaged_static : list of (str, str)
        ``(variable, reason)`` for damaged coordinates and per-solution variables.
    checked : int
        Committed blocks checked.
    """

    path: Path
    status: StoreStatus
    full: bool
    damaged: list
    damaged_static: list
    checked: int

    @property
    def ok(self) -> bool:
        """Nothing damaged."""
        return not self.damaged and not self.damaged_static

    def message(self, limit: int = 3) -> str:
        """One line naming the damage (at most ``limit`` blocks) and the repair."""
        layout = self.status.layout
        parts = []
        for key, reason in self.damaged[:limit]:
            parts.append(f"{layout.describe(key)}: {reason}")
        parts += [f"variable {name}: {reason}" for name, reason in self.damaged_static[:limit]]
        n = len(self.damaged) + len(self.damaged_static)
        more = f" (and {n - len(parts)} more)" if n > len(parts) else ""
        return (f"{self.path}: {len(self.damaged)} damaged block(s)"
                f"{' and damaged per-solution data' if self.damaged_static else ''}: "
                f"{'; '.join(parts)}{more}; recompute them with `{resume_hint(self.path)}`")


def _instance_arrays(group) -> dict:
    out = {}
    for name, arr in group.arrays():
        dims = tuple(arr.metadata.dimension_names or ())
        if schema.INSTANCE in dims and name != schema.INSTANCE:
            out[name] = arr
    return out


def _chunk_file(path: Path, arr, coords: tuple[int, ...]) -> Path:
    return path / arr.path / arr.metadata.encode_chunk_key(coords)


def _digest(values: np.ndarray) -> str:
    return hashlib.sha256(memoryview(np.ascontiguousarray(values)).cast("B")).hexdigest()


def _read_marker(marker: Path) -> dict | None:
    """A marker's record ``{variable: [sha256, chunk bytes]}``; ``None`` for the empty
    markers of stores written before digests existed (not checkable)."""
    data = marker.read_bytes()
    if not data:
        return None
    rec = json.loads(data)
    if not isinstance(rec, dict) or rec.get("v") != _MARKER_VERSION:
        raise ValueError("unknown marker format")
    return rec["vars"]


def _check_block(path: Path, layout: Layout, arrays: dict, key: str, full: bool) -> str | None:
    """Why a committed block is damaged, or ``None``."""
    try:
        task = layout.task_of(key)
        record = _read_marker(path / META / DONE / key)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"unreadable marker ({exc})"
    if record is None:
        return None
    if set(record) != set(arrays):
        return "marker does not list the store's variables"
    for name, arr in arrays.items():
        digest, size = record[name]
        chunk = _chunk_file(path, arr, layout.chunk_coords(task, arr.ndim))
        try:
            actual = chunk.stat().st_size
        except FileNotFoundError:
            return f"chunk {chunk.relative_to(path)} is missing"
        if actual != size:
            return (f"chunk {chunk.relative_to(path)} has {actual} bytes, "
                    f"{size} were written")
    if full:
        region = layout.region(task)
        for name, arr in arrays.items():
            try:
                values = arr[region]
            except Exception as exc:  # noqa: BLE001 - any codec error means damage
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                return f"{name} is unreadable ({first})"
            if _digest(values) != record[name][0]:
                return f"{name} differs from what was written (SHA-256)"
    return None


#: stores with at most this many bytes of per-instance results are verified in full when
#: opened (reading them costs little more than opening them)
_AUTO_FULL_BYTES = 256 << 20


def verify_store(path: str | os.PathLike, *, full: bool | str = False) -> Verification:
    """Check a zarr result store for damage.

    Parameters
    ----------
    path : str or path-like
    full : bool or "auto", default False
        ``False``: every committed block's marker is readable and its chunk files exist
        with the sizes they were committed with (fast: file sizes only). ``True``: also
        read every block and compare its SHA-256 digests with the marker's (reads the
        whole store), and check the coordinates and per-solution variables. ``"auto"``:
        ``True`` for stores of up to 256 MB of per-instance results.

    Returns
    -------
    Verification

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`store_status`.
    """
    import zarr

    path = Path(path)
    status = store_status(path)
    if status.layout is None:
        return Verification(path, status, full, [], [], 0)
    group = zarr.open_group(path, mode="r", zarr_format=3)
    arrays = _instance_arrays(group)
    if full == "auto":
        full = sum(arr.nbytes for arr in arrays.values()) <= _AUTO_FULL_BYTES
    full = bool(full)
    layout = status.layout
    damaged = []
    done_dir = path / META / DONE
    keys = sorted(n for n in os.listdir(done_dir) if not n.startswith(".")) \
        if done_dir.is_dir() else []
    for key in keys:
        reason = _check_block(path, layout, arrays, key, full)
        if reason is not None:
            damaged.append((key, reason))
    static = []
    recorded = (_read_manifest(path) or {}).get("static", {})
    for name, (digest, size) in recorded.items():
        try:
            arr = group[name]
            chunk = _chunk_file(path, arr, (0,) * arr.ndim)
            if size is not None and chunk.stat().st_size != size:
                static.append((name, "chunk size differs from what was written"))
            elif full and _digest(arr[...]) != digest:
                static.append((name, "differs from what was written (SHA-256)"))
        except Exception as exc:  # noqa: BLE001 - a missing or undecodable chunk
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            static.append((name, f"unreadable ({first})"))
    return Verification(path, status, full, damaged, static, len(keys))


def _template(plan, attrs: dict) -> xr.Dataset:
    """The result Dataset's structure with zero-strided (memory-free) per-instance data."""
    n_points, S, N = len(plan.points), plan.n_solutions, plan.n_instances
    counts = set(count_names())
    arrays = {
        name: np.broadcast_to(np.zeros((), np.int32 if name in counts else np.float64),
                              (n_points, S, N, *tail))
        for name, tail in plan.instance_vars().items()
    }
    ds = build_dataset(plan, arrays)
    ds.attrs.update(attrs)
    return ds


def _flat_study(text: str) -> dict:
    out = {}

    def walk(table, prefix):
        for key, value in table.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                out[f"{prefix}{key}"] = value

    walk(tomllib.loads(text), "")
    return out


def _differences(stored: dict, now: dict) -> list[str]:
    """Why a run cannot resume a store: one short phrase per difference."""
    out = []
    try:
        a, b = _flat_study(stored.get("study", "")), _flat_study(now.get("study", ""))
    except tomllib.TOMLDecodeError:
        # a study whose TOML text does not parse back (e.g. control characters in a
        # path): compare the texts themselves
        a = {"study": stored.get("study", "")}
        b = {"study": now.get("study", "")}
    missing = object()
    for key in sorted((a.keys() | b.keys()) - _EXECUTION_KEYS):
        va, vb = a.get(key, missing), b.get(key, missing)
        if va != vb:
            fa = "absent" if va is missing else repr(va)
            fb = "absent" if vb is missing else repr(vb)
            out.append(f"{key} = {fa} in the store, {fb} now")
    for attr, what in (("input_sha256", "inputs (solutions or data; sha256)"),
                       ("version_mcmtj", "mcmtj version"),
                       ("code_sha256", "mcmtj code (sha256 of its sources)")):
        if stored.get(attr) != now.get(attr):
            out.append(f"{what} {str(stored.get(attr))[:12]} in the store, "
                       f"{str(now.get(attr))[:12]} now")
    return out


class ResultStore:
    """A zarr result store open for writing (create with :meth:`create` or :meth:`resume`).

    Holds the store's lock until :meth:`close`.
    """

    def __init__(self, path: Path, layout: Layout, manifest: dict):
        import zarr

        self.path = path
        self.layout = layout
        self.manifest = manifest
        self._lock_fd = _lock(path)
        try:
            group = zarr.open_group(path, mode="r+", zarr_format=3)
            self._arrays = {}
            for name, arr in _instance_arrays(group).items():
                # every block writes every chunk file, even one of fill values only, so
                # that a deleted chunk is always noticed
                arr = arr.with_config({"write_empty_chunks": True})
                dims = tuple(arr.metadata.dimension_names or ())
                # a trailing dim (gain grid or the opt-in per-device outputs) is kept
                self._arrays[name] = (arr, schema.GNORM in dims or schema.DEVICE in dims)
            self._done_dir = path / META / DONE
            self._done = {n for n in os.listdir(self._done_dir) if not n.startswith(".")}
        except BaseException:
            self.close()
            raise

    # --- opening -----------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike, plan, attrs: dict, layout: Layout) -> ResultStore:
        """Create the store for a run: structure, coordinates, per-solution values, attrs.

        Built under a temporary name next to ``path`` and renamed into place, holding a
        lock on the parent folder; temporary folders that killed creators of the same
        store left behind are removed first.

        Parameters
        ----------
        path : str or path-like
            The ``.zarr`` folder to create; must not exist.
        plan : mcmtj.run.block.Plan
        attrs : dict
            Extra Dataset attrs (provenance). A ``created`` attr goes to the manifest,
            not the Dataset, so that a resumed store equals an uninterrupted one.
        layout : Layout

        Raises
        ------
        FileNotFoundError
            The parent folder does not exist.
        FileExistsError
            ``path`` exists.
        """
        path = Path(path)
        if not path.parent.is_dir():
            raise FileNotFoundError(f"output folder does not exist: {path.parent}")
        if path.exists():
            raise FileExistsError(f"{path} exists")
        ds = _template(plan, attrs)
        created = ds.attrs.pop("created", None) or _now()
        with _creation_lock(path.parent) as locked:
            if path.exists():
                raise FileExistsError(f"{path} exists")
            if locked:  # every creator takes the lock: a temporary folder is a dead one's
                for stale in path.parent.glob(f".{glob.escape(path.name)}.tmp-*"):
                    shutil.rmtree(stale, ignore_errors=True)
            cls._build(path, ds, created, layout)
        store = cls(path, layout, _read_manifest(path))
        store._add_session(resumed=False, attrs=attrs)
        return store

    @staticmethod
    def _build(path: Path, ds, created: str, layout: Layout) -> None:
        """Write the store's structure under a temporary name and rename it to ``path``."""
        import zarr

        tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            root = zarr.open_group(tmp, mode="w-", zarr_format=3)
            static = {}
            for name, var in ds.variables.items():
                if name == schema.INSTANCE:
                    continue  # 0 .. n - 1: rebuilt from the layout on opening
                per_instance = schema.INSTANCE in var.dims
                if per_instance:
                    chunks = layout.chunks(var.dims, var.shape)
                else:
                    chunks = tuple(max(1, n) for n in var.shape)
                fill = np.nan if var.dtype.kind == "f" else 0
                arr = root.create_array(name, shape=var.shape, chunks=chunks, dtype=var.dtype,
                                        fill_value=fill, dimension_names=var.dims,
                                        attributes=dict(var.attrs), compressors=_codecs())
                if not per_instance:
                    values = np.ascontiguousarray(var.values)
                    arr[...] = values
                    chunk = _chunk_file(tmp, arr, (0,) * arr.ndim)
                    static[name] = [_digest(values),
                                    chunk.stat().st_size if chunk.is_file() else None]
            root.attrs.update(dict(ds.attrs))
            manifest = {"format": FORMAT, "layout": layout.to_dict(), "created": created,
                        "sessions": [], "static": static}
            root.create_group(META, attributes=manifest)
            (tmp / META / DONE).mkdir()
            os.rename(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    @classmethod
    def resume(cls, path: str | os.PathLike, plan, attrs: dict) -> ResultStore:
        """Open an existing store to finish its run, after checking it is the same run.

        Parameters
        ----------
        path : str or path-like
        plan : mcmtj.run.block.Plan
            The run about to be resumed.
        attrs : dict
            Its provenance attrs (:func:`mcmtj.run.provenance.provenance_attrs`).

        Raises
        ------
        ValueError
            The store holds a different run: another study (any field but
            ``run.chunk_size``, an execution setting), seed, inputs or mcmtj version. The
            one-line message names what differs; the store is not touched.

        Notes
        -----
        Before resuming, :meth:`repair` reads every committed block once to check its
        digests (a damaged block is recomputed): resuming costs one read of the store.
        """
        path = Path(path)
        status = store_status(path)
        if status.layout is None:
            raise ValueError(f"cannot resume {path}: not a store written by mcmtj.simulate")
        stored = json.loads((path / "zarr.json").read_text(encoding="utf-8")).get(
            "attributes", {})
        now = {"study": plan.study.to_toml(), **attrs}
        diffs = _differences(stored, now)
        if diffs:
            more = f" (and {len(diffs) - 3} more)" if len(diffs) > 3 else ""
            raise ValueError(f"cannot resume {path}: it holds a different run: "
                             f"{'; '.join(diffs[:3])}{more}; the store was left as it is")
        manifest = _read_manifest(path)
        store = cls(path, status.layout, manifest)
        try:
            store.repaired = store.repair(plan, attrs)
            store._add_session(resumed=True, attrs=attrs)
        except BaseException:
            store.close()
            raise
        return store

    def _add_session(self, resumed: bool, attrs: dict) -> None:
        session = {"started": _now(), "resumed": resumed,
                   "done_at_start": len(self._done),
                   "git_revision": attrs.get("git_revision", "unknown"),
                   "mcmtj": attrs.get("version_mcmtj", "unknown")}
        self.manifest = {**self.manifest,
                         "sessions": [*self.manifest.get("sessions", []), session]}
        _write_manifest(self.path, {"sessions": self.manifest["sessions"]})

    # --- writing -----------------------------------------------------------------------
    def missing(self) -> Iterator[Task]:
        """Blocks without a marker, in run order (generated lazily: a plan of 1e8 blocks
        costs no memory)."""
        done = set(self._done)
        return (t for t in self.layout.tasks() if self.layout.key(t) not in done)

    def instances_missing(self) -> int:
        """Instances (solutions x instances) of the blocks without a marker."""
        lay = self.layout
        total = lay.n_points * lay.n_solutions * lay.n_instances
        for key in self._done:
            try:
                total -= lay.task_of(key).n_instances
            except ValueError:
                pass
        return total

    @property
    def n_done(self) -> int:
        """Blocks committed."""
        return len(self._done)

    def write(self, task: Task, block: dict[str, np.ndarray]) -> None:
        """Commit one block: write its arrays, then its marker.

        Parameters
        ----------
        task : Task
        block : dict
            :func:`mcmtj.run.block.run_block` of the task.
        """
        region = self.layout.region(task)
        items = []
        for name, (arr, has_gnorm) in self._arrays.items():
            values = block[name]
            if values.ndim == 3 and not has_gnorm:
                values = values[..., 0]
            items.append((name, arr, np.ascontiguousarray(values)))
        for _, arr, _ in items:
            # a chunk a killed or damaged writer left is replaced, never merged: zarr
            # reads the old chunk of a partly covered (edge) chunk before writing it
            _chunk_file(self.path, arr, self.layout.chunk_coords(task, arr.ndim)).unlink(
                missing_ok=True)
        try:
            _write_arrays([(arr, region, values) for _, arr, values in items])
        except OSError as exc:
            raise _write_error(self.path, exc, sum(v.nbytes for _, _, v in items)) from None
        record = {}
        for name, arr, values in items:
            chunk = _chunk_file(self.path, arr, self.layout.chunk_coords(task, arr.ndim))
            record[name] = [_digest(values), chunk.stat().st_size]
        key = self.layout.key(task)
        tmp = self._done_dir / f".{key}.{uuid.uuid4().hex[:8]}"
        try:
            tmp.write_text(json.dumps({"v": _MARKER_VERSION, "vars": record}), encoding="utf-8")
            os.replace(tmp, self._done_dir / key)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise _write_error(self.path, exc, 4096) from None
        self._done.add(key)

    def repair(self, plan=None, attrs: dict | None = None) -> list[str]:
        """Make the store's committed blocks trustworthy before resuming.

        Removes zarr's ``*.partial`` files of killed writers, checks every committed
        block in full (:func:`verify_store`) and un-commits damaged ones (their marker
        and chunk files are removed, so the run recomputes them). Damaged coordinates
        or per-solution variables are rewritten from ``plan`` when given.

        Returns
        -------
        list of str
            One description per block or variable repaired or scheduled for recomputing.
        """
        for partial in self.path.rglob("*.partial"):
            partial.unlink(missing_ok=True)
        for stale in self._done_dir.glob(".*"):  # markers of killed committers
            stale.unlink(missing_ok=True)
        report = verify_store(self.path, full=True)
        out = []
        for key, reason in report.damaged:
            (self._done_dir / key).unlink(missing_ok=True)
            self._done.discard(key)
            try:
                task = self.layout.task_of(key)
            except ValueError:  # a file that names no block: removed, nothing to redo
                continue
            for arr, _ in self._arrays.values():
                _chunk_file(self.path, arr, self.layout.chunk_coords(task, arr.ndim)).unlink(
                    missing_ok=True)
            out.append(f"{self.layout.describe(task)}: {reason}")
        if report.damaged_static and plan is not None:
            import zarr

            ds = _template(plan, attrs or {})
            group = zarr.open_group(self.path, mode="r+", zarr_format=3)
            for name, reason in report.damaged_static:
                chunk = _chunk_file(self.path, group[name], (0,) * group[name].ndim)
                chunk.unlink(missing_ok=True)
                group[name][...] = np.ascontiguousarray(ds[name].values)
                out.append(f"variable {name}: {reason} (rewritten)")
        return out

    @contextlib.contextmanager
    def writer(self, depth: int = 2):
        """A background thread that commits blocks while the next ones are computed.

        Yields a function ``put(task, block)``; at most ``depth`` blocks wait in its
        queue (``put`` blocks when it is full). On leaving, queued blocks are committed;
        an error of the writer is raised in the caller.
        """
        q: queue.Queue = queue.Queue(maxsize=depth)
        errors: list[BaseException] = []

        def loop():
            while True:
                item = q.get()
                if item is None:
                    return
                if errors:
                    continue
                try:
                    self.write(*item)
                except BaseException as exc:  # noqa: B036 - re-raised in the caller
                    errors.append(exc)

        thread = threading.Thread(target=loop, name="mcmtj-store-writer", daemon=True)
        thread.start()

        def put(task, block):
            if errors:
                raise errors[0]
            q.put((task, block))

        try:
            yield put
        finally:
            q.put(None)
            thread.join()
        if errors:
            raise errors[0]

    def close(self) -> None:
        """Release the store's lock."""
        fd, self._lock_fd = getattr(self, "_lock_fd", None), None
        if fd is not None:
            os.close(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _write_arrays(items) -> None:
    """Write ``(zarr_array, region, values)`` items concurrently (one zarr event-loop
    round trip instead of one per variable: about 2x faster for small blocks)."""
    try:
        from zarr.core.sync import sync
    except ImportError:  # pragma: no cover - other zarr versions
        sync = None
    if sync is None or not all(hasattr(arr, "_async_array") for arr, _, _ in items):
        for arr, region, values in items:  # pragma: no cover
            arr[region] = values
        return

    async def write_all():
        await asyncio.gather(*(arr._async_array.setitem(region, values)
                               for arr, region, values in items))

    sync(write_all())


@contextlib.contextmanager
def _creation_lock(folder: Path, timeout: float = 60.0):
    """Hold an exclusive ``flock`` on ``folder`` while a store is created in it; yields
    whether the lock is held.

    Stores are created under a temporary name; a process killed meanwhile leaves that
    folder behind. Creations in one folder are serialised by this lock (released by the
    kernel when a process dies), so a creator holding it may delete the leftovers. Where
    a folder cannot be locked (NFS emulates ``flock`` with byte-range locks, which a
    directory does not take; no read permission; not POSIX) or another creator holds it
    past ``timeout`` seconds, creation goes ahead unlocked and leaves leftovers alone.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield False
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        yield False
        return
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    locked = False
                    break
                time.sleep(0.05)
            except OSError:  # e.g. ENOLCK, EBADF on NFS
                locked = False
                break
        yield locked
    finally:
        os.close(fd)  # releases the lock


def _lock(path: Path):
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no locking
        return None
    fd = os.open(path / META / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise ValueError(f"{path} is being written by another process") from None
    return fd


def _codecs():
    """Chunk compression with a CRC-32C checksum: zarr refuses a damaged chunk on reading."""
    from zarr.codecs import Crc32cCodec, ZstdCodec

    return (ZstdCodec(), Crc32cCodec())


def _write_error(path: Path, exc: OSError, needed: int) -> OSError:
    """A write error of a store as one line: the store, the error, the space, the fix."""
    import errno

    what = exc.strerror or str(exc).splitlines()[0]
    space = ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        try:
            free = shutil.disk_usage(path).free
            space = f" (a block needs about {human_bytes(needed)}, {human_bytes(free)} free)"
        except OSError:
            pass
    return os_error(exc.errno, f"cannot write {path}: {what}{space}; the blocks written so "
                   f"far are kept: free space, then `{resume_hint(path)}`")
