"""CUDA backend: :func:`run_block_cuda`, the GPU twin of :func:`mcmtj.run.block.run_block`.

One GPU thread simulates one (solution, instance) with the fused pipeline of the
CPU kernel -- device sampling, write (ideal, fixed-rate or physics), stuck /
short / open defects with fixed or per-instance (Beta) rates, ideal read,
inference and metrics -- drawing the same Philox words from the same lanes,
counters and keys. The same seed therefore gives the same instances on both
backends: integer results (counts, correct predictions) are identical and
floating results differ by rounding only (the GPU uses libm ``exp``, ``log``, ``tanh``
where the CPU kernel uses branch-free polynomials, and may contract multiply-adds
into FMAs; the tests require 1e-6 relative).

Requires the optional ``numba-cuda`` package (``pip install mcmtj[cuda]``) and an
NVIDIA GPU, or numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, set before numba
is imported), which runs the same kernel on the CPU, slowly, for tests. The
simulator also works with the deprecated ``numba.cuda`` built into numba itself.

The stochastic reset (``write.initial = 'ap'``), die-to-die variation (offsets and
gradients) and measured WER tables (``write.switching = 'table'``, packed in the parameter
vector) run on the GPU as on the CPU. Circuit effects of the passive-array options are not
on the GPU yet, nor are tiled layers and device maps: a study that asks for any of them is
refused with ``NotImplementedError`` (see :func:`unsupported_features`) rather than simulated
without them. An integrated array (``array.kind``) without circuit effects is the core path,
which the GPU runs.
"""

from __future__ import annotations

import math

import numpy as np

from mcmtj.run import schema
from mcmtj.run.block import circuit_on, count_names

__all__ = ["run_block_cuda", "cuda_available", "unsupported_features", "CudaExecutor"]

_INSTALL = "pip install 'mcmtj[cuda]' (numba-cuda)"

# result name -> counter column of the CUDA kernel (mcmtj.kernels._cuda_kernels.C_*)
_COUNT_COLUMNS = {
    schema.N_STUCK: "C_STUCK", schema.N_SHORT: "C_SHORT", schema.N_OPEN: "C_OPEN",
    schema.N_WRITE_ERRORS: "C_WRITE_ERRORS", schema.N_DISTURBS: "C_DISTURBS",
    schema.N_PULSES: "C_PULSES", schema.N_RESET_ERRORS: "C_RESET_ERRORS",
}
# counters of effects the CUDA path refuses (verify, bias-dependent read): always zero here
_ZERO_COUNTS = tuple(getattr(schema, name) for name in ("N_VERIFY_RETRIES", "N_NONCONVERGED")
                     if hasattr(schema, name))


def _numba_cuda():
    """``numba.cuda``, or RuntimeError when it cannot run anything here."""
    try:
        from numba import cuda
    except ImportError as err:  # pragma: no cover - depends on the installation
        raise RuntimeError(f"the CUDA backend needs numba.cuda: {_INSTALL}") from err
    if not cuda.is_available():
        raise RuntimeError(
            "the CUDA backend found no usable NVIDIA GPU (no CUDA driver or device). Install "
            f"the driver and {_INSTALL}, or set NUMBA_ENABLE_CUDASIM=1 before importing numba "
            "to run the kernels in numba's CUDA simulator (slow; for tests)")
    if not hasattr(np, "row_stack"):
        # numpy >= 2.5 removed np.row_stack, which some numba-cuda releases still touch
        # when they compile the first kernel
        np.row_stack = np.vstack
    return cuda


def cuda_available() -> bool:
    """True when :func:`run_block_cuda` can run here (a GPU, or the CUDA simulator)."""
    try:
        _numba_cuda()
    except RuntimeError:
        return False
    return True


def unsupported_features(study) -> list[str]:
    """Study settings the CUDA backend does not simulate, as ``"field = value"`` strings.

    Parameters
    ----------
    study : Study
        Every sweep point is checked.

    Returns
    -------
    list of str
        Empty when the CUDA path supports everything the study asks for.
    """
    found = []
    points = [pt for _, pt in study.points()]
    for pt in points:
        w, r = pt.write, pt.read
        checks = [
            ("write.scheme", getattr(w, "scheme", "none"), lambda v: v != "none"),
            ("write.verify", getattr(w, "verify", False), bool),
            ("read.r_row", getattr(r, "r_row", 0.0), lambda v: v > 0),
            ("read.r_col", getattr(r, "r_col", 0.0), lambda v: v > 0),
            ("read.r_wire", getattr(r, "r_wire", 0.0), lambda v: v > 0),
            ("read.bias_tmr", getattr(r, "bias_tmr", False), bool),
            ("read.noise", getattr(r, "noise", 0.0), lambda v: v > 0),
            ("read.offset_sigma", getattr(r, "offset_sigma", 0.0), lambda v: v > 0),
            # tiles change which devices draw which numbers; maps replace the sampled devices
            ("array.tile_rows", pt.array.tile_rows, lambda v: v > 0),
            ("array.tile_cols", pt.array.tile_cols, lambda v: v > 0),
            ("array.device_map", pt.array.device_map, bool),
        ]
        hits = [f"{name} = {value!r}" for name, value, bad in checks if bad(value)]
        if not hits and circuit_on(pt):
            # a passive-array effect this module does not know by name yet
            hits = ["a passive-array (circuit) effect (mcmtj.run.block.circuit_on is true)"]
        found += [text for text in hits if text not in found]
    return found


def _check_supported(plan, point: int) -> None:
    study = next(pt for p, pt in plan.study.points() if p == point)
    found = unsupported_features(study)
    if found:
        raise NotImplementedError(
            "the CUDA backend does not simulate " + ", ".join(found) + " yet; use the CPU "
            "backend for this study")
    unknown = [name for name in plan.instance_vars() if name not in _KNOWN_VARS
               and name not in count_names()]
    unknown += [name for name in count_names()
                if name not in _COUNT_COLUMNS and name not in _ZERO_COUNTS]
    if unknown:
        raise NotImplementedError(
            f"the CUDA backend does not compute the result(s) {unknown} that this plan asks for")


_KNOWN_VARS = (schema.ACCURACY, schema.AGREEMENT, schema.ACCURACY_TRAIN, schema.WRITE_FIDELITY,
               schema.WEIGHT_FIDELITY, schema.CURRENT_RMSE, schema.SENSITIVITY_FIDELITY)


def run_block_cuda(plan, point: int, sol_start: int, sol_stop: int, start: int,
                   n: int) -> dict[str, np.ndarray]:
    """Simulate instances ``start .. start + n - 1`` of solutions ``sol_start .. sol_stop - 1``
    at one sweep point, on the GPU.

    Same contract as :func:`mcmtj.run.block.run_block`: same keys, shapes and dtypes, and the
    same instances for the same seed. Device memory is bounded by the block:
    ``(sol_stop - sol_start) * n`` instances' results plus the (small) plan arrays.

    Parameters
    ----------
    plan : mcmtj.run.block.Plan
        From :func:`mcmtj.run.block.make_plan`.
    point : int
        Sweep point index.
    sol_start, sol_stop : int
        Solutions simulated (global indices; they key the random streams).
    start : int
        Global index of the first instance.
    n : int
        Instances per solution.

    Returns
    -------
    dict
        Result name -> ndarray of shape (n_solutions_in_block, n[, gnorm]); float64, and
        int32 for the counters.

    Raises
    ------
    ValueError
        ``point``, the solutions or the instances are out of range.
    RuntimeError
        numba-cuda is not installed, or there is neither a GPU nor the CUDA simulator.
    NotImplementedError
        The study asks for an effect the CUDA path does not simulate
        (see :func:`unsupported_features`).

    Examples
    --------
    >>> from mcmtj.run.block import make_plan
    >>> plan = make_plan(study)                            # doctest: +SKIP
    >>> block = run_block_cuda(plan, 0, 0, 1, 0, 10**6)    # doctest: +SKIP
    >>> block["accuracy"].shape                            # doctest: +SKIP
    (1, 1000000, 1)
    """
    if not 0 <= point < len(plan.points):
        raise ValueError(f"point = {point} is out of range: the plan has {len(plan.points)}")
    if not 0 <= sol_start < sol_stop <= plan.n_solutions:
        raise ValueError(f"solutions {sol_start}..{sol_stop} are out of range: the plan has "
                         f"{plan.n_solutions}")
    if n < 1 or start < 0:
        raise ValueError(f"start = {start}, n = {n}: need start >= 0 and n >= 1")
    if (sol_stop - sol_start) * n >= 2**31:
        raise ValueError(f"{(sol_stop - sol_start) * n} instances in one block: split it into "
                         "blocks of fewer than 2**31 (one GPU thread each)")
    _check_supported(plan, point)
    cuda = _numba_cuda()
    from mcmtj.kernels import _cuda_kernels as CK
    pk, pp = plan.packed, plan.points[point]
    sl = slice(sol_start, sol_stop)
    S, G = sol_stop - sol_start, plan.gnorms.size
    eval_train = bool(plan.study.network.eval_train)
    sensitivity = bool(plan.study.network.sensitivity)
    n_train_out = n if eval_train else 1
    n_sens_out = n if sensitivity else 1

    def dev(a, dtype=None):
        return cuda.to_device(np.ascontiguousarray(a, dtype=dtype))

    sens = pp.sensitivity[sl] if sensitivity else np.zeros((S, 1))
    inputs = (
        dev(pk.states[sl]), dev(pk.layer_in), dev(pk.layer_out), dev(pk.bias[sl], np.float64),
        dev(pp.fp, np.float64), dev(pp.ip, np.int64), dev(plan.gnorms, np.float64),
        dev(pk.X_eval, np.float64), dev(pk.y_eval, np.int64), dev(pp.sw_eval[sl], np.int64),
        dev(pk.X_train, np.float64), dev(pk.y_train, np.int64), dev(pp.sw_train[sl], np.int64),
        dev(pk.gram, np.float64), dev(pp.g0[sl], np.float64), dev(pp.rmse_den[sl], np.float64),
        dev(sens, np.float64),
    )
    outputs = (
        cuda.device_array((S, n, G)), cuda.device_array((S, n_train_out, G)),
        cuda.device_array((S, n, G)), cuda.device_array((S, n)), cuda.device_array((S, n)),
        cuda.device_array((S, n)), cuda.device_array((S, n_sens_out)),
        cuda.device_array((S, n, CK.N_COUNTS), np.int32),
    )
    kernel = CK.kernel_for(*CK.local_sizes(pk.layer_in, pk.layer_out))
    k0, k1 = (np.uint64(k) for k in pp.key)
    threads = CK.THREADS_PER_BLOCK
    blocks = math.ceil(S * n / threads)
    kernel[blocks, threads](k0, k1, np.int64(sol_start), np.int64(start), np.int64(n), *inputs,
                            *outputs)
    acc, acc_train, agree, wfid, weight_fid, rmse, sens_fid, counts = (
        o.copy_to_host() for o in outputs)

    out = {schema.ACCURACY: acc, schema.AGREEMENT: agree}
    if eval_train:
        out[schema.ACCURACY_TRAIN] = acc_train
    out.update({schema.WRITE_FIDELITY: wfid, schema.WEIGHT_FIDELITY: weight_fid,
                schema.CURRENT_RMSE: rmse})
    if sensitivity:
        out[schema.SENSITIVITY_FIDELITY] = sens_fid
    for name in count_names():
        if name in _COUNT_COLUMNS:
            out[name] = counts[..., getattr(CK, _COUNT_COLUMNS[name])]
        else:
            out[name] = np.zeros((S, n), np.int32)
    return out


class CudaExecutor:
    """Run :func:`mcmtj.simulate`'s blocks on the GPU (``executor="cuda"``,
    ``mcmtj run --backend cuda``).

    Blocks are the same as on the CPU and so are the instances; unsupported study
    features are refused by :func:`run_block_cuda` before anything runs.
    """

    def run(self, plan, tasks):
        """Yield ``(task, block)`` for every task, in order."""
        for task in tasks:
            yield task, run_block_cuda(plan, task.point, task.sol_start, task.sol_stop,
                                       task.start, task.n)

    def close(self) -> None:
        """Nothing to release (numba.cuda keeps its context)."""
