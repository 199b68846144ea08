"""The pure block layer: a study's ``Plan`` and ``run_block(plan, ...)``, the work unit that
every executor, the store and the CUDA backend share (the orchestrator,
:func:`mcmtj.run.engine.simulate`, sits above them all).

Each instance is a fresh physical array set (devices, defects, write, read, inference)
simulated by the fused numba kernel in :mod:`mcmtj.kernels._engine_kernels`; Python only
loops over sweep points and chunks of instances. Instance ``i`` of solution ``s`` at point
``p`` draws its random numbers from streams keyed by ``(seed, p, s, i)`` alone
(:mod:`mcmtj.numerics._rng`), so a Dataset is bit-identical for any thread count, chunk size
or executor.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numba
import numpy as np

from mcmtj.config import ConfigError, Study
from mcmtj.kernels import _engine_kernels as K
from mcmtj.networks.data import DataSplit, load_nist_wine, load_wine
from mcmtj.networks.solutions import (
    SolutionSet,
    device_sensitivity,
    load_nist_solutions,
    load_solutions,
)
from mcmtj.networks.trainer import BinaryMLP
from mcmtj.numerics._rng import instance_key
from mcmtj.physics._circuit_kernels import IR_FAST, IR_FULL, IR_OFF
from mcmtj.physics.array import (
    KIND_INTEGRATED,
    KIND_PASSIVE,
    WRITE_FIXED,
    WRITE_IDEAL,
    WRITE_PHYSICS,
    WRITE_TABLE,
    check_fit,
    tile_layout,
)
from mcmtj.physics.circuit import verify_read_resistance
from mcmtj.physics.device import (
    DEFECT_OPEN,
    DEFECT_SHORT,
    load_wer_table,
    nominal_conductances,
    wer_table_curves,
)
from mcmtj.physics.maps import DeviceMap, load_device_map
from mcmtj.run import schema

__all__ = ["prepare", "Prepared", "pack", "Packed", "make_plan", "run_block", "Plan",
           "count_names", "check_inputs"]

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
    check_fit(solutions.layer_shapes, study.array.rows, study.array.cols,
              study.array.tile_rows, study.array.tile_cols)
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
    fp[K.F_DIE_D] = d.die_diameter_sigma
    fp[K.F_DIE_RA] = d.die_resistance_area_sigma
    fp[K.F_DIE_TMR] = d.die_tmr_sigma
    fp[K.F_DIE_JC] = d.die_jc_sigma
    fp[K.F_GRAD_RA] = d.ra_gradient
    fp[K.F_GRAD_D] = d.diameter_gradient
    fp[K.F_R_DRV] = w.r_driver
    ip = np.zeros(K.N_IP, np.int64)
    ip[K.I_VARIATION] = d.variation
    ip[K.I_MODE] = _MODES[w.mode]
    ip[K.I_INIT_RANDOM] = w.initial in ("random", "ap")  # "ap": as fabricated, then reset
    ip[K.I_RESET] = w.initial == "ap"
    if w.switching == "table":
        # checked here, not field by field, so that overrides may come in any order
        if not w.wer_table:
            raise ConfigError("write.wer_table is empty but write.switching = 'table': give the "
                              "CSV file of measured write-error rates")
        if w.mode != "physics":
            raise ConfigError(f"write.switching = 'table' needs write.mode = 'physics', got "
                              f"{w.mode!r}")
        # the measured table at this point's pulse width follows the scalars in fp
        path = study.resolve_path(w.wer_table)
        curves = wer_table_curves(load_wer_table(path), w.pulse_width, path)
        fp[K.F_TABLE_N_AP] = curves[0][0].size
        fp[K.F_TABLE_N_P] = curves[1][0].size
        fp = np.concatenate([fp, *(np.concatenate(curve) for curve in curves)])
        ip[K.I_MODE] = WRITE_TABLE
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
    ip[K.I_IR_SOLVER] = {"off": IR_OFF, "fast": IR_FAST, "full": IR_FULL}[w.ir_solver]
    if fp[K.F_R_ROW] == 0.0 and fp[K.F_R_COL] == 0.0 and fp[K.F_R_DRV] == 0.0:
        # No resistance on the write path: every device sees its ideal bias, which is all a
        # per-pulse solve would return (V/2 and 'none' bit for bit: A/2 - (-A/2) and
        # A - A/2 are exact; V/3's 2A/3 + A/3 is A only up to rounding). Skipping the solve
        # and its conductance updates made physics jobs without lines 1.2x (V/2) to 1.8x
        # (V/3) faster.
        ip[K.I_IR_SOLVER] = IR_OFF
    ip[K.I_KIND] = {"passive": KIND_PASSIVE, "integrated": KIND_INTEGRATED}[study.array.kind]
    ar = study.array
    for name, tile, size, size_name in (("tile_rows", ar.tile_rows, ar.rows, "rows"),
                                        ("tile_cols", ar.tile_cols, ar.cols, "cols")):
        if tile > size:
            raise ConfigError(f"array.{name} = {tile} is out of range: must be 0 (untiled) or "
                              f"at most array.{size_name} = {size}")
    if study.array.kind == "integrated" and w.scheme != "none":
        raise ConfigError(f"write.scheme = {w.scheme!r} is not allowed with array.kind = "
                          "'integrated': must be 'none' (an access device isolates every "
                          "unselected device, so nothing is half-selected)")
    return fp, ip


def circuit_on(study: Study) -> bool:
    """Whether a study uses any passive-array effect (then the full arrays are simulated;
    otherwise the core path, whose results the circuit path reproduces when all are off)."""
    w, rd = study.write, study.read
    # a driver resistance alone lowers the selected device's voltage (when that matters)
    driver = w.r_driver > 0 and w.ir_solver != "off" and w.mode not in ("ideal", "fixed")
    return (w.scheme != "none" or w.verify or rd.r_row > 0 or rd.r_col > 0 or rd.r_wire > 0
            or rd.bias_tmr or rd.noise > 0 or rd.offset_sigma > 0 or driver)


@dataclass(frozen=True)
class Packed:
    """Solution set and data laid out for the kernel (made by :func:`pack`).

    ``S`` solutions, ``L`` layers padded to the widest layer: ``R`` inputs, ``O`` outputs,
    ``C = 2 O`` device columns (a differential pair per output); ``F`` features, ``N``
    samples. The data are transposed (features first) and C-contiguous.
    """

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


def pack(prep: Prepared, study: Study) -> Packed:
    """Lay a prepared study's solutions and data out as the kernels (and the per-sample
    rebuilds of the paper analyses) read them.

    Parameters
    ----------
    prep : Prepared
        From :func:`prepare`.
    study : Study
        Its ``network.eval_split`` picks the evaluated split.

    Returns
    -------
    Packed
        Device states, weights and biases per solution and layer, the layer sizes, the
        evaluated and the training split, and the Gram matrix of the evaluated inputs.
    """
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
    # C-contiguous and writeable, always: numba types a read-only array (the loaded data
    # sets are read-only, and a transposed view of them may need no copy) as another type,
    # and compiles the whole chunk kernel again for it (minutes)
    X_eval = np.require(X_eval.T, np.float64, ["C", "W"])
    X_train = np.require(data.X_train.T, np.float64, ["C", "W"])
    return Packed(
        states, weights, bias,
        np.array([n for n, _ in shapes], np.int64), np.array([m for _, m in shapes], np.int64),
        X_eval, np.require(y_eval, np.int64, ["C", "W"]), X_train,
        np.require(data.y_train, np.int64, ["C", "W"]), X_eval @ X_eval.T,
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


def _software(pk: Packed, gnorms, fp, ip, X) -> np.ndarray:
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
    g0: np.ndarray  # (S, n_in0, 2 n_out0) nominal layer-0 conductances (layer 0's columns)
    rmse_den: np.ndarray  # (S,)
    sensitivity: np.ndarray  # (S, n_devices) device weights, or (S, 0) when not asked for
    verify_ref: np.ndarray  # (S, 2, A, rows, cols) floating-verify references, or (S, 0, 0, 0, 0)
    tiles: np.ndarray  # (A, 5) the physical arrays (mcmtj.physics.array.tile_layout)
    arr_states: np.ndarray  # (S, A, tile rows, tile cols) uint8 target states per array
    dev_map: np.ndarray  # (n_dev, 3) a measured die's (G_P, TMR0, defect) in array order


@dataclass(frozen=True)
class Plan:
    """A study prepared for execution: packed solutions and data, one PointPlan per point.

    Built by :func:`make_plan`; executed block by block with :func:`run_block`, which is
    what every executor (serial loop, Dask worker) calls.
    """

    study: Study
    prepared: Prepared
    packed: Packed
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
        if self.study.network.readback:
            out[schema.READBACK_CONDUCTANCE] = (self.n_devices,)
        return out

    @property
    def n_devices(self) -> int:
        """Devices (cells) the network uses, the length of the ``device`` dim."""
        return int(np.sum(2 * self.packed.layer_in * self.packed.layer_out))


def check_inputs(study: Study) -> None:
    """Raise the input errors of every sweep point's parameters (e.g. a bad WER table)
    before any data loading, training or kernel compilation."""
    for _, point in study.points():
        _param_vectors(point)
    if study.array.device_map:  # the file's format; its shape is checked against the network
        load_device_map(study.resolve_path(study.array.device_map))


def make_plan(study: Study, prepared: Prepared | None = None) -> Plan:
    """Load what the study needs and compute everything shared by its instances."""
    # parameter vectors first: a bad WER table fails before any data loading or training
    point_params = [_param_vectors(point) for _, point in study.points()]
    prep = prepared or prepare(study)
    check_fit(prep.solutions.layer_shapes, study.array.rows, study.array.cols,
              study.array.tile_rows, study.array.tile_cols)
    pk = pack(prep, study)
    die = None
    if study.array.device_map:
        path = study.resolve_path(study.array.device_map)
        die = load_device_map(path)
        die.check_shapes(prep.solutions.layer_shapes, path)
    gnorm_list = study.network.gnorm if isinstance(study.network.gnorm, list) else None
    gnorms = np.atleast_1d(np.asarray(study.network.gnorm, dtype=np.float64))
    S = pk.states.shape[0]
    sensitivity = np.zeros((S, 0))
    if study.network.sensitivity:
        # depends on the solutions and data only, not on the sweep point; computed on the
        # split that is NOT scored, so the weights never see the labels they are tested on
        data = prep.data
        X_w, y_w = ((data.X_train, data.y_train) if study.network.eval_split == "test"
                    else (data.X_test, data.y_test))
        sensitivity = device_sensitivity(prep.solutions, X_w, y_w, gnorms[0])
    points = []
    for p, point in study.points():
        fp, ip = point_params[p]
        ip[K.I_HIDDEN_SIGN] = prep.solutions.hidden_activation == "sign"
        ip[K.I_OUT_TANH] = prep.solutions.output_activation == "tanh"
        ip[K.I_EVAL_TRAIN] = study.network.eval_train
        ip[K.I_SENSITIVITY] = study.network.sensitivity
        if point.network.threshold == 0.0:
            fp[K.F_THRESHOLD] = prep.solutions.threshold
        sw_eval = _software(pk, gnorms, fp, ip, pk.X_eval)
        sw_train = _software(pk, gnorms, fp, ip, pk.X_train)
        g_p, g_ap = nominal_conductances(point.device)
        n0, c0 = pk.layer_in[0], 2 * pk.layer_out[0]
        # layer 0's own columns only: a wider later layer pads states with zeros, which
        # would count phantom AP columns in the RMSE denominator (found by tests/oracle)
        g0 = np.ascontiguousarray(np.where(pk.states[:, 0], g_p, g_ap)[:, :n0, :c0])
        tiles = tile_layout(prep.solutions.layer_shapes, point.array.tile_rows,
                            point.array.tile_cols)
        arr_states = _tile_states(pk, tiles)
        points.append(PointPlan(
            index=p, key=instance_key(study.run.seed, p), fp=fp, ip=ip,
            sw_eval=sw_eval, sw_train=sw_train,
            software_accuracy=(sw_eval == pk.y_eval).mean(axis=-1),
            software_accuracy_train=(sw_train == pk.y_train).mean(axis=-1),
            g0=g0, rmse_den=np.einsum("src,rq,sqc->s", g0, pk.gram, g0),
            sensitivity=sensitivity, verify_ref=_verify_reference(point, tiles, arr_states),
            tiles=tiles, arr_states=arr_states,
            dev_map=(np.zeros((0, 3)) if die is None else _map_vector(die, tiles)),
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
    dev_g = np.empty((S, n, plan.n_devices) if plan.study.network.readback else (S, 0, 0))
    k0, k1 = (np.uint64(k) for k in pp.key)
    K.simulate_chunk(
        k0, k1, sol_start, start, n, _BLOCK, pp.arr_states[sl], pk.layer_in, pk.layer_out,
        pk.bias[sl], pp.fp, pp.ip, plan.gnorms, pk.X_eval, pk.y_eval, pp.sw_eval[sl],
        pk.X_train, pk.y_train, pp.sw_train[sl], pk.gram, pp.g0[sl], pp.rmse_den[sl],
        pp.sensitivity[sl], pp.verify_ref[sl], acc, acc_train, agree, wfid, weight_fid, rmse,
        sens_fid, readback, counts, dev_g, pp.tiles, pp.dev_map)
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
    if plan.study.network.readback:
        out[schema.READBACK_CONDUCTANCE] = dev_g
    return out


def _verify_reference(point: Study, tiles: np.ndarray, arr_states: np.ndarray) -> np.ndarray:
    """Reference currents of floating-line verify reads, per solution, array and cell: a
    device half-way between G_P and G_AP among nominal neighbours in the states the
    experimenter knows at that moment. ``[:, 0]``: while writing in the study's order (cells
    written so far in their targets, the rest in the reset state AP); ``[:, 1]``: the final
    read-back (every cell in its target). Shape (S, 2, A, rows, cols), A the physical arrays
    (``tiles``, with target states ``arr_states``).

    Empty, shape (S, 0, 0, 0, 0), when not needed or when what is known depends on the
    instance (random order, random initial states): the kernel then computes each
    reference itself from the same rule (as it does for an integrated array, whose verify
    read sees no neighbours).
    """
    S = arr_states.shape[0]
    w = point.write
    if not (w.verify and w.verify_scheme == "floating") or w.order == "random" or (
            w.initial not in ("ap", "ap_ideal")) or point.array.kind == "integrated":
        return np.zeros((S, 0, 0, 0, 0))
    rows, cols = point.array.rows, point.array.cols
    g_p, g_ap = nominal_conductances(point.device)
    v = point.read.v_read
    r_row = point.read.r_row + point.read.r_wire
    r_col = point.read.r_col + point.read.r_wire
    A = tiles.shape[0]
    ref = np.zeros((S, 2, A, rows, cols))
    for s in range(S):
        for a in range(A):
            n_in, n_c = tiles[a, 3], tiles[a, 4]
            target = np.full((rows, cols), g_ap)
            target[:n_in, :n_c] = np.where(arr_states[s, a, :n_in, :n_c] == 1, g_p, g_ap)
            cells = [(r, c) for r in range(n_in) for c in range(n_c)]
            if w.order == "column":
                cells.sort(key=lambda rc: (rc[1], rc[0]))
            known = np.full((rows, cols), g_ap)
            for phase, G in ((0, known), (1, target)):
                for r, c in cells:
                    if phase == 0:
                        known[r, c] = target[r, c]  # the cell being written: its target
                    g_cell = G[r, c]
                    G[r, c] = 0.5 * (g_p + g_ap)
                    ref[s, phase, a, r, c] = v / verify_read_resistance(
                        G, r, c, v, "floating", r_row, r_col)
                    G[r, c] = g_cell
    return ref


def _tile_states(pk: Packed, tiles: np.ndarray) -> np.ndarray:
    """Target states per physical array, shape (S, A, max rows used, max columns used)."""
    S = pk.states.shape[0]
    out = np.zeros((S, tiles.shape[0], tiles[:, 3].max(), tiles[:, 4].max()), np.uint8)
    for a, (l, r0, c0, n_r, n_c) in enumerate(tiles):
        out[:, a, :n_r, :n_c] = pk.states[:, l, r0:r0 + n_r, c0:c0 + n_c]
    return out


def _map_vector(die: DeviceMap, tiles: np.ndarray) -> np.ndarray:
    """A device map as the kernel reads it: (G_P S, TMR0, defect code) per used device in
    the physical arrays' order."""
    rows = []
    for l, r0, c0, n_r, n_c in tiles:
        r_p = die.r_p[l][r0:r0 + n_r, c0:c0 + n_c]
        r_ap = die.r_ap[l][r0:r0 + n_r, c0:c0 + n_c]
        defect = die.defect[l][r0:r0 + n_r, c0:c0 + n_c]
        # shorts and opens: the conductance comes from defects.r_short or is 0, so any
        # finite placeholder will do for their unused resistances
        healthy = (defect != DEFECT_SHORT) & (defect != DEFECT_OPEN)
        g_p = np.where(healthy, 1.0 / np.where(healthy, r_p, 1.0), 0.0)
        tmr = np.where(healthy, np.where(healthy, r_ap, 1.0) / np.where(healthy, r_p, 1.0)
                       - 1.0, 0.0)
        rows.append(np.stack([g_p.ravel(), tmr.ravel(), defect.ravel().astype(float)], axis=1))
    return np.ascontiguousarray(np.concatenate(rows))


def _kernels(study: Study, executor) -> list:
    """The numba kernels a run calls in this process (or on this machine's workers)."""
    cuda = executor == "cuda" or type(executor).__name__ == "CudaExecutor"
    chunk = K.simulate_chunk_circuit if circuit_on(study) else K.simulate_chunk_core
    return [K.software_predictions] if cuda else [K.software_predictions, chunk]


def count_names() -> list[str]:
    """Result names of the counter columns, in kernel order."""
    return [schema.N_STUCK, schema.N_SHORT, schema.N_OPEN, schema.N_WRITE_ERRORS,
            schema.N_DISTURBS, schema.N_PULSES, schema.N_VERIFY_RETRIES, schema.N_NONCONVERGED,
            schema.N_RESET_ERRORS]
