"""Monte Carlo engine: ``simulate(study) -> xarray.Dataset``.

Sweep points x solutions x instances. Each instance is a fresh physical array set
(devices, defects, write, read, inference) simulated by the fused numba kernel in
:mod:`mcmtj._engine_kernels`; Python only loops over sweep points and chunks of
instances. Instance ``i`` of solution ``s`` at point ``p`` draws its random
numbers from streams keyed by ``(seed, p, s, i)`` alone (:mod:`mcmtj._rng`), so a
Dataset is bit-identical for any thread count, chunk size or executor.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
import xarray as xr

from . import _engine_kernels as K
from . import schema
from ._rng import instance_key
from .array import WRITE_FIXED, WRITE_IDEAL, WRITE_PHYSICS, check_fit
from .config import Study
from .data import DataSplit, load_nist_wine, load_wine
from .device import nominal_conductances
from .solutions import SolutionSet, load_nist_solutions, load_solutions

__all__ = ["simulate", "prepare", "Prepared", "make_plan", "run_block", "Plan", "check_resources",
           "result_bytes"]

#: bytes of a store's structure (metadata, coordinates) for the free-space check
_STORE_OVERHEAD = 64 << 10
_MODES = {"ideal": WRITE_IDEAL, "fixed": WRITE_FIXED, "physics": WRITE_PHYSICS}
#: instances of one solution handled by one parallel task inside the kernel
_BLOCK = 32


@dataclass(frozen=True)
class Prepared:
    """What a study needs besides its config: the solution set and the data split."""

    solutions: SolutionSet
    data: DataSplit


def prepare(study: Study, solutions: SolutionSet | None = None,
            data: DataSplit | None = None) -> Prepared:
    """Load (or train) the solution set and load the data split a study names.

    Parameters
    ----------
    study : Study
    solutions, data : optional
        Given objects are used as they are instead of what the study names.

    Raises
    ------
    FileNotFoundError
        A data or solution path of the study does not exist (the message names it).
    ValueError
        A layer does not fit on the study's arrays, or the data and the network disagree.
    """
    net = study.network
    if data is None:
        if net.dataset == "nist":
            data = load_nist_wine(study.resolve_path(net.nist_path))
        else:
            data = load_wine(encoding=net.encoding)
    if solutions is None:
        if net.source == "nist":
            solutions = load_nist_solutions(study.resolve_path(net.nist_path))
        elif net.source == "file":
            if not net.solutions_path:
                raise FileNotFoundError(
                    "network.solutions_path is empty but network.source = 'file'")
            solutions = load_solutions(study.resolve_path(net.solutions_path))
        else:
            from .trainer import BinaryMLP

            model = BinaryMLP(
                hidden=net.hidden, weights=net.weights, n_solutions=net.n_solutions,
                epochs=net.epochs, hidden_activation=net.hidden_activation,
                random_state=net.train_seed,
            ).fit(data.X_train, data.y_train)
            solutions = model.to_solutions(name=f"BinaryMLP {net.weights} seed {net.train_seed}")
    if net.max_solutions and net.max_solutions < solutions.n_solutions:
        solutions = solutions.subset(np.arange(net.max_solutions))
    n_features = solutions.layer_shapes[0][0]
    if data.X_train.shape[1] != n_features:
        raise ValueError(
            f"data has {data.X_train.shape[1]} features but the network's first layer has "
            f"{n_features} inputs"
        )
    check_fit(solutions.layer_shapes, study.array.rows, study.array.cols)
    return Prepared(solutions, data)


def _param_vectors(study: Study) -> tuple[np.ndarray, np.ndarray]:
    d, df, w = study.device, study.defects, study.write
    g_p, g_ap = nominal_conductances(d)
    fp = np.zeros(K.N_FP)
    fp[K.F_D0] = d.diameter
    fp[K.F_SD] = d.diameter_sigma
    fp[K.F_RA0] = d.resistance_area
    fp[K.F_SRA] = d.resistance_area_sigma
    fp[K.F_TMR0] = d.tmr
    fp[K.F_STMR] = d.tmr_sigma
    fp[K.F_VH] = d.tmr_bias_voltage
    fp[K.F_DSAT] = d.delta_sat
    fp[K.F_DC] = d.critical_diameter
    fp[K.F_SDELTA] = d.delta_sigma
    fp[K.F_JC] = d.jc_ap_to_p
    fp[K.F_JCASYM] = d.jc_asymmetry
    fp[K.F_SJC] = d.jc_sigma
    fp[K.F_TAU0] = d.tau0
    fp[K.F_TAUD] = d.tau_d
    fp[K.F_BETA] = d.beta
    fp[K.F_STUCK_P] = df.stuck_p
    fp[K.F_STUCK_AP] = df.stuck_ap
    fp[K.F_SHORT] = df.short
    fp[K.F_OPEN] = df.open
    fp[K.F_DISPERSION] = df.dispersion
    fp[K.F_RSHORT] = df.r_short
    fp[K.F_ERROR_RATE] = w.error_rate
    fp[K.F_VW] = w.voltage
    fp[K.F_TW] = w.pulse_width
    fp[K.F_DG_NOM] = g_p - g_ap
    fp[K.F_THRESHOLD] = study.network.threshold
    rd = study.read
    fp[K.F_DISTURB_RATE] = w.disturb_rate
    fp[K.F_RETRY_STEP] = w.retry_step
    fp[K.F_R_ROW] = rd.r_row + rd.r_wire
    fp[K.F_R_COL] = rd.r_col + rd.r_wire
    fp[K.F_TOL] = rd.tolerance
    fp[K.F_NOISE] = rd.noise
    fp[K.F_OFFSET] = rd.offset_sigma
    fp[K.F_VREAD] = rd.v_read
    fp[K.F_G_NOM_P] = g_p
    fp[K.F_G_NOM_AP] = g_ap
    ip = np.zeros(K.N_IP, np.int64)
    ip[K.I_VARIATION] = d.variation
    ip[K.I_MODE] = _MODES[w.mode]
    ip[K.I_INIT_RANDOM] = w.initial == "random"
    ip[K.I_DEFECTS] = df.enabled
    ip[K.I_CIRCUIT] = circuit_on(study)
    ip[K.I_SCHEME] = {"none": K.SCHEME_NONE, "v2": K.SCHEME_V2, "v3": K.SCHEME_V3}[w.scheme]
    ip[K.I_ORDER] = {"row": K.ORDER_ROW, "column": K.ORDER_COLUMN,
                     "random": K.ORDER_RANDOM}[w.order]
    ip[K.I_VERIFY] = w.verify
    ip[K.I_MAX_RETRIES] = w.max_retries
    ip[K.I_VERIFY_FLOATING] = w.verify_scheme == "floating"
    ip[K.I_FINAL_VERIFY] = w.final_verify
    ip[K.I_BIAS_TMR] = rd.bias_tmr
    ip[K.I_MAX_ITER] = rd.max_iter
    ip[K.I_ROWS] = study.array.rows
    ip[K.I_COLS] = study.array.cols
    return fp, ip


def circuit_on(study: Study) -> bool:
    """Whether a study uses any passive-array effect (then the full arrays are simulated;
    otherwise the core path, whose results the circuit path reproduces when all are off)."""
    w, rd = study.write, study.read
    return (w.scheme != "none" or w.verify or rd.r_row > 0 or rd.r_col > 0 or rd.r_wire > 0
            or rd.bias_tmr or rd.noise > 0 or rd.offset_sigma > 0)


@dataclass(frozen=True)
class _Packed:
    """Solution set and data laid out for the kernel."""

    states: np.ndarray  # (S, L, R, C) uint8
    weights: np.ndarray  # (S, L, R, O) float64
    bias: np.ndarray  # (S, L, O)
    layer_in: np.ndarray
    layer_out: np.ndarray
    X_eval: np.ndarray  # (F, N)
    y_eval: np.ndarray
    X_train: np.ndarray
    y_train: np.ndarray
    gram: np.ndarray


def _pack(prep: Prepared, study: Study) -> _Packed:
    sol, data = prep.solutions, prep.data
    shapes = sol.layer_shapes
    n_layers = len(shapes)
    max_in = max(n for n, _ in shapes)
    max_out = max(m for _, m in shapes)
    S = sol.n_solutions
    states = np.zeros((S, n_layers, max_in, 2 * max_out), np.uint8)
    weights = np.zeros((S, n_layers, max_in, max_out))
    bias = np.zeros((S, n_layers, max_out))
    for l, (n_in, n_out) in enumerate(shapes):
        states[:, l, :n_in, : 2 * n_out] = sol.states[l]
        weights[:, l, :n_in, :n_out] = sol.weights[l]
        bias[:, l, :n_out] = sol.biases[l]
    if study.network.eval_split == "test":
        X_eval, y_eval = data.X_test, data.y_test
    else:
        X_eval, y_eval = data.X_train, data.y_train
    X_eval = np.ascontiguousarray(X_eval.T, dtype=np.float64)
    X_train = np.ascontiguousarray(data.X_train.T, dtype=np.float64)
    return _Packed(
        states, weights, bias,
        np.array([n for n, _ in shapes], np.int64), np.array([m for _, m in shapes], np.int64),
        X_eval, np.ascontiguousarray(y_eval, np.int64), X_train,
        np.ascontiguousarray(data.y_train, np.int64), X_eval @ X_eval.T,
    )


@contextlib.contextmanager
def _threads(n: int | None):
    if n is None:
        yield
        return
    if not 1 <= n <= numba.config.NUMBA_NUM_THREADS:
        raise ValueError(f"threads = {n} is out of range: must be 1 to "
                         f"{numba.config.NUMBA_NUM_THREADS}")
    old = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(old)


def _software(pk: _Packed, gnorms, fp, ip, X) -> np.ndarray:
    S = pk.states.shape[0]
    out = np.empty((S, gnorms.size, X.shape[1]), np.int64)
    for s in range(S):
        K.software_predictions(pk.weights[s], pk.layer_in, pk.layer_out, pk.bias[s], X, gnorms,
                               ip, fp, out[s])
    return out


@dataclass(frozen=True)
class PointPlan:
    """Everything the kernel needs for one sweep point (plain arrays: picklable)."""

    index: int
    key: tuple[int, int]
    fp: np.ndarray
    ip: np.ndarray
    sw_eval: np.ndarray  # (S, G, N_eval) software predictions
    sw_train: np.ndarray
    software_accuracy: np.ndarray  # (S, G)
    software_accuracy_train: np.ndarray
    g0: np.ndarray  # (S, n_in0, 2 n_out0) nominal layer-0 conductances
    rmse_den: np.ndarray  # (S,)
    sensitivity: np.ndarray  # (S, n_devices) device weights, or (S, 0) when not asked for
    verify_ref: np.ndarray  # (S, L, rows, cols) floating-verify reference currents, or empty


@dataclass(frozen=True)
class Plan:
    """A study prepared for execution: packed solutions and data, one PointPlan per point.

    Built by :func:`make_plan`; executed block by block with :func:`run_block`, which is
    what every executor (serial loop, Dask worker) calls.
    """

    study: Study
    prepared: Prepared
    packed: _Packed
    points: tuple[PointPlan, ...]
    gnorms: np.ndarray
    gnorm_list: list | None

    @property
    def n_solutions(self) -> int:
        return self.packed.states.shape[0]

    @property
    def n_instances(self) -> int:
        return self.study.run.instances

    def instance_vars(self) -> dict[str, tuple]:
        """Per-instance result names and their trailing shapes after (solution, instance)."""
        G = self.gnorms.size
        out = {schema.ACCURACY: (G,), schema.AGREEMENT: (G,)}
        if self.study.network.eval_train:
            out[schema.ACCURACY_TRAIN] = (G,)
        out.update({schema.WRITE_FIDELITY: (), schema.WEIGHT_FIDELITY: (),
                    schema.CURRENT_RMSE: ()})
        if self.study.network.sensitivity:
            out[schema.SENSITIVITY_FIDELITY] = ()
        if self.study.write.verify and self.study.write.final_verify:
            out[schema.READBACK_FIDELITY] = ()
        out.update({name: () for name in count_names()})
        return out


def make_plan(study: Study, prepared: Prepared | None = None) -> Plan:
    """Load what the study needs and compute everything shared by its instances."""
    prep = prepared or prepare(study)
    check_fit(prep.solutions.layer_shapes, study.array.rows, study.array.cols)
    pk = _pack(prep, study)
    gnorm_list = study.network.gnorm if isinstance(study.network.gnorm, list) else None
    gnorms = np.atleast_1d(np.asarray(study.network.gnorm, dtype=np.float64))
    S = pk.states.shape[0]
    sensitivity = np.zeros((S, 0))
    if study.network.sensitivity:
        from .solutions import device_sensitivity

        # depends on the solutions and data only, not on the sweep point
        sensitivity = device_sensitivity(prep.solutions, pk.X_eval.T, pk.y_eval, gnorms[0])
    points = []
    for p, point in study.points():
        fp, ip = _param_vectors(point)
        ip[K.I_HIDDEN_SIGN] = prep.solutions.hidden_activation == "sign"
        ip[K.I_OUT_TANH] = prep.solutions.output_activation == "tanh"
        ip[K.I_EVAL_TRAIN] = study.network.eval_train
        ip[K.I_SENSITIVITY] = study.network.sensitivity
        if point.network.threshold == 0.0:
            fp[K.F_THRESHOLD] = prep.solutions.threshold
        sw_eval = _software(pk, gnorms, fp, ip, pk.X_eval)
        sw_train = _software(pk, gnorms, fp, ip, pk.X_train)
        g_p, g_ap = nominal_conductances(point.device)
        n0 = pk.layer_in[0]
        g0 = np.ascontiguousarray(np.where(pk.states[:, 0], g_p, g_ap)[:, :n0, :])
        points.append(PointPlan(
            index=p, key=instance_key(study.run.seed, p), fp=fp, ip=ip,
            sw_eval=sw_eval, sw_train=sw_train,
            software_accuracy=(sw_eval == pk.y_eval).mean(axis=-1),
            software_accuracy_train=(sw_train == pk.y_train).mean(axis=-1),
            g0=g0, rmse_den=np.einsum("src,rq,sqc->s", g0, pk.gram, g0),
            sensitivity=sensitivity, verify_ref=_verify_reference(point, pk),
        ))
    return Plan(study, prep, pk, tuple(points), gnorms, gnorm_list)


def run_block(plan: Plan, point: int, sol_start: int, sol_stop: int, start: int,
              n: int) -> dict[str, np.ndarray]:
    """Simulate instances ``start .. start + n - 1`` of solutions ``sol_start .. sol_stop - 1``
    at one sweep point.

    Returns
    -------
    dict
        Result name -> array of shape (n_solutions_in_block, n[, gnorm]). Identical for any
        way the work is cut into blocks.
    """
    pk, pp = plan.packed, plan.points[point]
    sl = slice(sol_start, sol_stop)
    S, G = sol_stop - sol_start, plan.gnorms.size
    acc = np.empty((S, n, G))
    acc_train = np.empty((S, n, G))
    agree = np.empty((S, n, G))
    wfid = np.empty((S, n))
    weight_fid = np.empty((S, n))
    rmse = np.empty((S, n))
    sens_fid = np.empty((S, n))
    readback = np.empty((S, n))
    counts = np.empty((S, n, K.N_COUNTS), np.int32)
    k0, k1 = (np.uint64(k) for k in pp.key)
    K.simulate_chunk(
        k0, k1, sol_start, start, n, _BLOCK, pk.states[sl], pk.layer_in, pk.layer_out,
        pk.bias[sl], pp.fp, pp.ip, plan.gnorms, pk.X_eval, pk.y_eval, pp.sw_eval[sl],
        pk.X_train, pk.y_train, pp.sw_train[sl], pk.gram, pp.g0[sl], pp.rmse_den[sl],
        pp.sensitivity[sl], pp.verify_ref[sl], acc, acc_train, agree, wfid, weight_fid, rmse,
        sens_fid, readback, counts)
    out = {schema.ACCURACY: acc, schema.AGREEMENT: agree}
    if plan.study.network.eval_train:
        out[schema.ACCURACY_TRAIN] = acc_train
    out.update({schema.WRITE_FIDELITY: wfid, schema.WEIGHT_FIDELITY: weight_fid,
                schema.CURRENT_RMSE: rmse})
    if plan.study.network.sensitivity:
        out[schema.SENSITIVITY_FIDELITY] = sens_fid
    if schema.READBACK_FIDELITY in plan.instance_vars():
        out[schema.READBACK_FIDELITY] = readback
    for c, name in enumerate(count_names()):
        out[name] = counts[..., c]
    return out


def _verify_reference(point: Study, pk: _Packed) -> np.ndarray:
    """Reference currents of floating-line verify reads: a device half-way between G_P and
    G_AP among nominal neighbours in their target states, per solution, layer and cell."""
    S = pk.states.shape[0]
    if not (point.write.verify and point.write.verify_scheme == "floating"):
        return np.zeros((S, 0, 0, 0))
    from .circuit import verify_read_resistance

    rows, cols = point.array.rows, point.array.cols
    g_p, g_ap = nominal_conductances(point.device)
    L = pk.layer_in.size
    ref = np.empty((S, L, rows, cols))
    for s in range(S):
        for l in range(L):
            G = np.full((rows, cols), g_ap)
            n_in, n_c = pk.layer_in[l], 2 * pk.layer_out[l]
            G[:n_in, :n_c] = np.where(pk.states[s, l, :n_in, :n_c] == 1, g_p, g_ap)
            for r in range(n_in):
                for c in range(n_c):
                    g_cell = G[r, c]
                    G[r, c] = 0.5 * (g_p + g_ap)
                    v = point.read.v_read
                    ref[s, l, r, c] = v / verify_read_resistance(
                        G, r, c, v, "floating", point.read.r_row + point.read.r_wire,
                        point.read.r_col + point.read.r_wire)
                    G[r, c] = g_cell
    return ref


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
        see :class:`mcmtj.executors.DaskExecutor`). Results do not depend on it.
    prepared : Prepared, optional
        Pre-loaded solutions and data (from :func:`prepare`), to skip loading/training.
    progress : bool, optional
        Show a tqdm bar; default: only when stderr is a terminal. With a parallel
        executor it advances as blocks complete on any worker.
    on_chunk : callable, optional
        Called with ``(point, start, n)`` after each block is computed.
    store : str or path-like, optional
        Where to write the results. A ``.zarr`` path: a zarr store written block by block
        while the run goes on (:mod:`mcmtj.store`), so memory is bounded by the blocks in
        flight, not by the run, and a killed run can be finished with ``resume=True``;
        the path must not exist unless ``resume`` or ``overwrite`` is set. A ``.nc``
        path: one netCDF file written atomically at the end (:func:`mcmtj.results.save`);
        it must not exist unless ``overwrite`` is set. Default: the Dataset is returned
        only. The path is checked before any work (:func:`mcmtj.results.check_output`:
        format, writable folder, not a folder, existing output), and so are the memory
        a ``.nc`` (or in-memory) run needs and the disk space of a ``.nc`` file.
    resume : bool, default False
        With a ``.zarr`` store: compute only the blocks it does not hold yet (all of them
        when it does not exist). Refused with a ValueError naming the difference, and
        the store left as it is, when the store holds another study, seed or inputs.
    executor : None, "cpu", "dask", executor, distributed.Client or pool, optional
        Who runs the blocks (see :func:`mcmtj.executors.as_executor`): default this
        process; ``"dask"`` a new ``LocalCluster``; a ``distributed.Client`` or
        :class:`~mcmtj.executors.DaskExecutor` a Dask cluster; a pool with ``submit``
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
        Variables per :mod:`mcmtj.schema`; attrs hold the study TOML, seed, versions,
        git revision and input hash (:mod:`mcmtj.provenance`). With a ``.zarr`` store
        the Dataset is opened lazily from the store: values are read from disk when
        used (``.load()`` reads them all), so a run larger than memory can be returned;
        its attrs have no ``created`` (that is in the store's manifest, see
        :func:`mcmtj.store.store_status`), so a resumed store equals an uninterrupted one.

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
        are kept), or a Dask cluster lost (:class:`mcmtj.executors.ClusterLost`).

    Examples
    --------
    >>> import mcmtj
    >>> study = mcmtj.Study().replace(**{"network.n_solutions": 2, "network.epochs": 5})
    >>> ds = mcmtj.simulate(study, seed=1, instances=10)
    >>> ds.accuracy.dims
    ('solution', 'instance')
    """
    from .executors import ClusterLost, as_executor
    from .progress import progress_bar
    from .provenance import provenance_attrs
    from .results import check_output, remove_stale_temporaries
    from .store import Layout, ResultStore, open_store, resume_hint

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
    if target is None or target.suffix == ".nc":
        _check_memory_early(study, target)
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

    from .results import build_dataset, save

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
    from .results import human_bytes

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
    from .results import _NC_OVERHEAD, human_bytes, os_error

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


def count_names() -> list[str]:
    """Result names of the counter columns, in kernel order."""
    return [schema.N_STUCK, schema.N_SHORT, schema.N_OPEN, schema.N_WRITE_ERRORS,
            schema.N_DISTURBS, schema.N_PULSES, schema.N_VERIFY_RETRIES, schema.N_NONCONVERGED]
