"""Monte Carlo engine: ``simulate(study) -> xarray.Dataset``, the orchestrator.

Sweep points x solutions x instances, cut into blocks that an executor
(:mod:`mcmtj.run.executors`) runs with the pure block function of :mod:`mcmtj.run.block`;
results stream into a store (:mod:`mcmtj.run.store`) or an in-memory Dataset
(:mod:`mcmtj.run.dataset`). Instance ``i`` of solution ``s`` at point ``p`` draws its random
numbers from streams keyed by ``(seed, p, s, i)`` alone (:mod:`mcmtj.numerics._rng`), so a
Dataset is bit-identical for any thread count, chunk size or executor.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import xarray as xr

from mcmtj.config import Study
from mcmtj.physics.array import check_fit
from mcmtj.run.block import (
    Plan,
    Prepared,
    _kernels,
    _threads,
    check_inputs,
    count_names,
    make_plan,
    prepare,
)
from mcmtj.run.dataset import build_dataset
from mcmtj.run.executors import ClusterLost, as_executor
from mcmtj.run.progress import compile_notice, progress_bar
from mcmtj.run.provenance import provenance_attrs
from mcmtj.run.results import (
    _NC_OVERHEAD,
    check_output,
    human_bytes,
    os_error,
    remove_stale_temporaries,
    save,
)
from mcmtj.run.store import Layout, ResultStore, open_store, resume_hint

__all__ = ["simulate", "check_resources", "result_bytes"]

#: bytes of a store's structure (metadata, coordinates) for the free-space check
_STORE_OVERHEAD = 64 << 10


def simulate(
    study: Study,
    seed: int | None = None,
    *,
    instances: int | None = None,
    chunk_size: int | None = None,
    threads: int | None = None,
    prepared: Prepared | None = None,
    progress: bool | None = None,
    on_chunk: Callable | None = None,
    store=None,
    resume: bool = False,
    executor=None,
    solution_block: int | None = None,
    overwrite: bool = False,
) -> xr.Dataset:
    """Monte Carlo simulation of a study.

    The run is cut into blocks -- (sweep point, solution block, instance chunk) -- that
    an executor runs with :func:`run_block`; results are the same for any cut and any
    executor.

    Parameters
    ----------
    study : Study
        The configuration (see :mod:`mcmtj.config`).
    seed : int, optional
        Overrides ``study.run.seed``. Instance ``i`` of solution ``s`` at sweep point
        ``p`` depends on ``(seed, p, s, i)`` only.
    instances : int, optional
        Overrides ``study.run.instances`` (recorded in the result's study).
    chunk_size : int, optional
        Instances per solution simulated per block, instead of ``study.run.chunk_size``.
        An execution setting like ``threads``: it changes neither results nor attrs.
        When resuming a store, the store's own block layout is used instead.
    threads : int, optional
        Numba threads per block (default: numba's current setting; on Dask workers,
        see :class:`mcmtj.run.executors.DaskExecutor`). Results do not depend on it.
    prepared : Prepared, optional
        Pre-loaded solutions and data (from :func:`prepare`), to skip loading/training.
    progress : bool, optional
        True: a tqdm bar; False: nothing; None (default): a tqdm bar when stderr is a
        terminal, else one-line records of the ``"mcmtj"`` logger (level INFO: instances
        done, instances/s, ETA; see :mod:`mcmtj.run.progress`), which also says, before the
        first kernel call, whether numba compiles (and about how long) or loads them.
        With a parallel executor it advances as blocks complete on any worker.
    on_chunk : callable, optional
        Called with ``(point, start, n)`` after each block is computed.
    store : str or path-like, optional
        Where to write the results. A ``.zarr`` path: a zarr store written block by block
        while the run goes on (:mod:`mcmtj.run.store`), so memory is bounded by the blocks in
        flight, not by the run, and a killed run can be finished with ``resume=True``;
        the path must not exist unless ``resume`` or ``overwrite`` is set. A ``.nc``
        path: one netCDF file written atomically at the end (:func:`mcmtj.run.results.save`);
        it must not exist unless ``overwrite`` is set. Default: the Dataset is returned
        only. The path is checked before any work (:func:`mcmtj.run.results.check_output`:
        format, writable folder, not a folder, existing output), and so are the memory
        a ``.nc`` (or in-memory) run needs and the disk space of a ``.nc`` file.
    resume : bool, default False
        With a ``.zarr`` store: compute only the blocks it does not hold yet (all of them
        when it does not exist). Refused with a ValueError naming the difference, and
        the store left as it is, when the store holds another study, seed or inputs.
    executor : None, "cpu", "dask", executor, distributed.Client or pool, optional
        Who runs the blocks (see :func:`mcmtj.run.executors.as_executor`): default this
        process; ``"dask"`` a new ``LocalCluster``; a ``distributed.Client`` or
        :class:`~mcmtj.run.executors.DaskExecutor` a Dask cluster; a pool with ``submit``
        or ``map``. Results are bit-identical for every choice.
    solution_block : int, optional
        Solutions per block (default: all). An execution setting like ``chunk_size``.
    overwrite : bool, default False
        Replace an existing output: a ``.nc`` file is replaced atomically at the end; an
        existing ``.zarr`` store is removed before the run starts.

    Returns
    -------
    xarray.Dataset
        Dims: sweep dims (one per swept field, named by :meth:`Study.sweep_dims`),
        ``solution``, ``instance`` and ``gnorm`` when ``network.gnorm`` is a list.
        Variables per :mod:`mcmtj.run.schema`; attrs hold the study TOML, seed, versions,
        git revision and input hash (:mod:`mcmtj.run.provenance`). With a ``.zarr`` store
        the Dataset is opened lazily from the store: values are read from disk when
        used (``.load()`` reads them all), so a run larger than memory can be returned;
        its attrs have no ``created`` (that is in the store's manifest, see
        :func:`mcmtj.run.store.store_status`), so a resumed store equals an uninterrupted one.

    Raises
    ------
    ValueError
        Bad execution settings, a store path that is neither ``.nc`` nor ``.zarr``, a
        store that holds another run, or a ``.nc`` (or in-memory) run that cannot fit in
        memory (the message suggests a ``.zarr`` store).
    FileExistsError
        The output exists and neither ``overwrite`` nor (``.zarr``) ``resume`` is set.
    OSError
        The output folder is missing or not writable, too little disk space for a
        ``.nc`` file, a write error of the store (one line; the blocks written so far
        are kept), or a Dask cluster lost (:class:`mcmtj.run.executors.ClusterLost`).

    Examples
    --------
    >>> import mcmtj
    >>> study = mcmtj.Study().replace(**{"network.n_solutions": 2, "network.epochs": 5})
    >>> ds = mcmtj.simulate(study, seed=1, instances=10)
    >>> ds.accuracy.dims
    ('solution', 'instance')
    """
    target = None if store is None else Path(store)
    if resume and (target is None or target.suffix != ".zarr"):
        raise ValueError("resume needs a .zarr store")
    if target is not None:
        check_output(target, overwrite=overwrite, resume=resume)
    if executor in (None, "cpu") and threads is not None:
        with _threads(threads):  # validates the range before any work
            pass
    overrides = {}
    if seed is not None:
        overrides["run.seed"] = seed
    if instances is not None:
        overrides["run.instances"] = instances
    if overrides:
        study = study.replace(**overrides)
    # input errors (WER tables, files, a layer that does not fit) first; then the notice,
    # before make_plan's software predictions, the first kernel call
    check_inputs(study)
    if target is None or target.suffix == ".nc":
        _check_memory_early(study, target)
    prepared = prepared or prepare(study)
    check_fit(prepared.solutions.layer_shapes, study.array.rows, study.array.cols,
              study.array.tile_rows, study.array.tile_cols)
    compile_notice(_kernels(study, executor), progress)
    plan = make_plan(study, prepared)
    n_inst = plan.n_instances
    S = plan.n_solutions
    # chunking is an execution detail: results and the recorded study do not depend on it
    chunk = min(chunk_size or study.run.chunk_size, n_inst)
    if chunk < 1:
        raise ValueError(f"chunk_size = {chunk_size} is out of range: must be >= 1")
    if solution_block is not None and solution_block < 1:
        raise ValueError(f"solution_block = {solution_block} is out of range: must be >= 1")
    layout = Layout(study.sweep_shape, S, n_inst, chunk, min(solution_block or S, S))
    check_resources(plan, layout, target)
    attrs = provenance_attrs(plan.prepared)

    writer = None
    if target is not None and target.suffix == ".zarr":
        if target.exists() and not resume:  # overwrite (check_output refused otherwise)
            _remove_store(target)
        if target.exists():
            writer = ResultStore.resume(target, plan, attrs)
            layout = writer.layout
        else:
            writer = ResultStore.create(target, plan, attrs, layout)
        tasks = writer.missing()
        todo = writer.instances_missing()
    else:
        if target is not None:
            remove_stale_temporaries(target)
        tasks = layout.tasks()  # a generator: a huge plan holds no task list
        todo = layout.n_points * S * n_inst
        arrays = {name: np.empty((layout.n_points, S, n_inst, *tail),
                                 np.int32 if name in count_names() else np.float64)
                  for name, tail in plan.instance_vars().items()}

        def put(task, block):
            for name, values in block.items():
                arrays[name][task.point, task.sol_start:task.sol_stop,
                             task.start:task.start + task.n] = values

    runner, owned = as_executor(executor, threads)
    try:
        with contextlib.ExitStack() as stack:
            bar = stack.enter_context(progress_bar(todo, progress))
            if writer is not None:
                put = stack.enter_context(writer.writer())
            for task, block in runner.run(plan, tasks):
                put(task, block)
                bar.update(task.n_instances)
                if on_chunk is not None:
                    on_chunk(task.point, task.start, task.n)
    except ClusterLost as exc:
        kept = (f"the blocks finished so far are kept in {target}; resume with "
                f"`{resume_hint(target)}`" if writer is not None
                else "nothing was written (a .zarr store keeps finished blocks)")
        raise ClusterLost(f"{exc}; {kept}") from None
    finally:
        if owned:
            runner.close()
        if writer is not None:
            writer.close()

    if writer is not None:
        return open_store(target, verify=False)  # just written (and repaired): trusted

    ds = build_dataset(plan, arrays)
    ds.attrs.update(attrs)
    if target is not None:
        save(ds, target)
    return ds


def _remove_store(path) -> None:
    """Remove a zarr store being replaced: renamed aside first, so that a store is never
    seen half-deleted under its name."""
    trash = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    path.rename(trash)
    shutil.rmtree(trash, ignore_errors=True)


def _available_memory() -> int | None:
    """Bytes of memory available to a new allocation (``MemAvailable`` on Linux)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return None


def result_bytes(plan: Plan) -> int:
    """Bytes of the per-instance results of a whole run (what a ``.nc`` run holds in
    memory, and about what its file takes on disk)."""
    per_instance = 0
    counts = set(count_names())
    for name, tail in plan.instance_vars().items():
        per_instance += (4 if name in counts else 8) * int(np.prod(tail, dtype=np.int64))
    return len(plan.points) * plan.n_solutions * plan.n_instances * per_instance


def _refuse_memory(need: int, target, at_least: bool = False) -> None:
    avail = _available_memory()
    if avail is not None and need > avail:
        where = f"-o {target}" if target is not None else "memory"
        raise ValueError(
            f"the run is too large for {where}: its results need "
            f"{'at least' if at_least else 'about'} {human_bytes(need)} of memory, "
            f"{human_bytes(avail)} are available; write it to a .zarr store instead "
            "(streamed block by block, resumable)")


def _check_memory_early(study: Study, target) -> None:
    """Refuse a hopeless in-memory or ``.nc`` run before loading or training anything:
    a lower bound of its memory (one float64 per instance and solution, the solution
    count known from the study or 1) already exceeds what is available."""
    net = study.network
    n_solutions = net.n_solutions if net.source == "train" else 1
    if net.max_solutions:
        n_solutions = min(n_solutions, net.max_solutions)
    lower = 8 * study.run.instances * n_solutions * int(np.prod(study.sweep_shape,
                                                                dtype=np.int64))
    _refuse_memory(lower, target, at_least=True)


def check_resources(plan: Plan, layout, target) -> None:
    """Refuse, before any work, a run that cannot fit: memory of a ``.nc`` or in-memory
    run (its results plus the netCDF image: 2x), disk space of a ``.nc`` file, and a
    ``.zarr`` store on a disk that cannot hold even one block.

    Raises
    ------
    ValueError
        Not enough memory (the message suggests a ``.zarr`` store).
    OSError
        Not enough disk space.
    """
    size = result_bytes(plan)
    folder = None if target is None else (Path(target).parent or Path("."))
    try:
        free = None if folder is None else shutil.disk_usage(folder).free
    except OSError:
        free = None
    if target is None or Path(target).suffix == ".nc":
        _refuse_memory(2 * size if target is not None else size, target)
        if free is not None and size + _NC_OVERHEAD > free:
            raise os_error(errno.ENOSPC, f"not enough space for {target}: needs about "
                           f"{human_bytes(size + _NC_OVERHEAD)}, {human_bytes(free)} free in "
                           f"{folder}")
        return
    # a store's size cannot be known before it is written (chunks are compressed): refuse
    # only a disk that cannot hold its structure and one uncompressed block; a disk that
    # fills later stops the run with one line and the store resumes
    need = size // max(1, layout.n_tasks) + _STORE_OVERHEAD
    if free is not None and need > free:
        raise os_error(errno.ENOSPC, f"not enough space for {target}: its structure and one "
                       f"block need about {human_bytes(need)}, {human_bytes(free)} free in "
                       f"{folder}")
