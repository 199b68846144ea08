"""Shared set-up of the benchmark jobs (not a test; prints, never asserts on time).

Besides the core job this module holds what every benchmark with a NumPy baseline needs:
the lean NumPy version of the core job (:func:`numpy_core_accuracy`), a pool of NumPy
processes with BLAS pinned to one thread each (:class:`NumpyPool`: the fair way to give
NumPy the same cores as mcmtj, since NumPy's element-wise functions are single-threaded),
and :func:`machine_line`, the thread counts and load average that every last line quotes.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

import mcmtj

NIST = Path(os.environ.get("MCMTJ_NIST_WINE",
                           Path(__file__).resolve().parents[2] / "shared" / "data" / "nist-wine"))
MIN_DIAMETER = 1e-9  # m, the device model's floor (mcmtj.physics.device.MIN_DIAMETER)


def core_job(**overrides) -> mcmtj.Study:
    """The core benchmark job: NIST solution 0 on 15 x 15 arrays, 148 training samples,
    device variation on, fixed write-error rate 2 %, stuck rate 1 %, ideal read."""
    return mcmtj.Study().replace(**{
        "network.source": "nist", "network.dataset": "nist", "network.nist_path": str(NIST),
        "network.eval_split": "train", "network.max_solutions": 1,
        "device.variation": True, "write.mode": "fixed", "write.error_rate": 0.02,
        "defects.stuck_p": 0.005, "defects.stuck_ap": 0.005, **overrides,
    })


def warm_up(study: mcmtj.Study, prep, threads: int | None) -> None:
    """Run 64 instances once, so that compiling (or loading the cache) is not timed, and
    print how long that took."""
    t0 = time.perf_counter()
    mcmtj.simulate(study, seed=0, instances=64, prepared=prep, threads=threads)
    print(f"first call (compile or cache load): {time.perf_counter() - t0:.1f} s")


def median_time(func, repeats: int = 3) -> float:
    """Median wall time of ``func()`` over ``repeats`` calls, s."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        func()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as ``a/b/c``."""
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


# --- the lean NumPy baseline of the core job ------------------------------------------------


def core_numpy_job(study: mcmtj.Study, prep) -> dict:
    """Everything :func:`numpy_core_accuracy` needs (plain arrays and floats: picklable),
    for the core job or any job like it (the peers' job: fixed write errors, as-fabricated
    states and a reset, stuck defects, ideal read, unit gain).

    Only what this job varies is kept: per device its diameter, RA and TMR (three
    normals) and one uniform for its final state; the job's write ('fixed' rate,
    as-fabricated random states, then a reset) and defects (stuck only) reduce to
    per-target probabilities of ending in the wrong state (derived in the docstring
    of :func:`numpy_core_accuracy`).
    """
    d, w, df = study.device, study.write, study.defects
    sol, data = prep.solutions, prep.data
    if (w.mode != "fixed" or w.initial != "ap" or df.short or df.open or df.dispersion
            or study.network.gnorm != 1.0 or not d.variation
            or sol.output_activation not in ("tanh", "identity")):
        raise ValueError("the lean NumPy baseline is written for the core and peers' jobs")
    if study.device.die_diameter_sigma or study.device.die_resistance_area_sigma:
        raise ValueError("the lean NumPy baseline has no die-to-die variation")
    X, y = ((data.X_train, data.y_train) if study.network.eval_split == "train"
            else (data.X_test, data.y_test))
    g_p0 = math.pi / 4.0 * d.diameter**2 / d.resistance_area
    return {
        "X": np.ascontiguousarray(X, np.float64), "y": np.asarray(y, np.int64),
        "targets": [np.asarray(s[0], bool) for s in sol.states],  # (n_in, 2 n_out), True = P
        "biases": [np.asarray(b[0], np.float64) for b in sol.biases],
        "hidden": sol.hidden_activation,
        "d0": d.diameter, "sd": d.diameter_sigma, "ra0": d.resistance_area,
        "sra": d.resistance_area_sigma, "tmr0": d.tmr, "stmr": d.tmr_sigma,
        "dg": g_p0 - g_p0 / (1.0 + d.tmr), "err": w.error_rate,
        "stuck_p": df.stuck_p, "stuck_ap": df.stuck_ap,
    }


def _activation(name, a):
    if name == "tanh":
        return np.tanh(a, out=a)
    raise ValueError(f"lean NumPy baseline: activation {name!r} not written")


def numpy_core_accuracy(job: dict, n: int, seed: int, batch: int = 1000) -> np.ndarray:
    """Accuracy of ``n`` fresh instances of the core job, the fastest plain NumPy we wrote.

    Per device: d = max(d0 + sd z1, 1 nm), G_P = pi d^2 exp(-sRA z2) / (4 RA0),
    TMR = max(TMR0 + sTMR z3, 0) (a normal drawn only where its sigma is not zero), and one
    uniform u. Stuck-P if u < p_sp, stuck-AP if
    u < p_sp + p_sap; otherwise the device ends in the wrong state with probability
    e (1 - e/2) for a P target (reset leaves it AP unless it was fabricated P and the
    reset failed, e/2; an AP device's pulse fails with e) and e^2/2 for an AP target
    (fabricated P, reset failed, then its pulse towards AP failed). The weights
    (G_even - G_odd) / (G_P0 - G_AP0) of layer 0 (shared inputs) go through one BLAS
    matrix product for the whole batch, W^T (batch * out, F) @ X^T (F, N); later layers are
    NumPy's batched matmul (faster here than einsum or input-by-input sums). The class is
    the argmax of the output pre-activations (the output activation is monotone: it can
    only create ties, by rounding), so the output layer's tanh is skipped. The same
    accuracy as mcmtj's in distribution (other random numbers); none of mcmtj's other
    metrics.
    """
    rng = np.random.default_rng(seed)
    XT, y = np.ascontiguousarray(job["X"].T), job["y"]
    targets, biases = job["targets"], job["biases"]
    e = job["err"]
    c_sp = job["stuck_p"]
    c_st = c_sp + job["stuck_ap"]
    free = 1.0 - c_st
    n_dev = [t.size for t in targets]
    total = sum(n_dev)
    target_p = np.concatenate([t.ravel() for t in targets])
    # thresholds on u: wrong state if c_st <= u < c_st + free * p_wrong(target)
    wrong_below = c_st + free * np.where(target_p, e * (1.0 - e / 2.0), e * e / 2.0)
    accs = []
    for start in range(0, n, batch):
        m = min(batch, n - start)
        # normals only for the spreads the job has (the peers' job: RA only)
        if job["sd"]:
            diam = np.maximum(job["d0"] + job["sd"] * rng.standard_normal((m, total)),
                              MIN_DIAMETER)
            g_p = (math.pi / 4.0) * diam * diam / job["ra0"]
        else:
            g_p = np.full((m, total), math.pi / 4.0 * job["d0"] ** 2 / job["ra0"])
        if job["sra"]:
            g_p *= np.exp(-job["sra"] * rng.standard_normal((m, total)))
        tmr = (np.maximum(job["tmr0"] + job["stmr"] * rng.standard_normal((m, total)), 0.0)
               if job["stmr"] else job["tmr0"])
        u = rng.random((m, total))
        state_p = np.where(u < c_st, u < c_sp, target_p ^ (u < wrong_below))
        g = np.where(state_p, g_p, g_p / (1.0 + tmr))
        a = None
        off = 0
        for layer, t in enumerate(targets):
            n_in, n_out = t.shape[0], t.shape[1] // 2
            gl = g[:, off:off + t.size].reshape(m, n_in, 2 * n_out)
            off += t.size
            # transposed weights (m, n_out, n_in): activations stay (m, out, samples)
            w = (gl[..., 0::2] - gl[..., 1::2]).transpose(0, 2, 1) / job["dg"]
            if layer == 0:  # one BLAS product for the batch: (m out, F) @ (F, N)
                a = (w.reshape(m * n_out, n_in) @ XT).reshape(m, n_out, -1)
            else:  # batched (out, in) @ (in, N) per instance
                a = w @ a
            a += biases[layer][:, None]
            if layer < len(targets) - 1:
                a = _activation(job["hidden"], a)
        # argmax of the output pre-activations: tanh and identity are monotone, so the class
        # is the same (up to ties that only rounding could create)
        accs.append((a.argmax(axis=1) == y).mean(axis=1))
    return np.concatenate(accs)


# --- NumPy on the same cores as mcmtj -------------------------------------------------------


def _pin_blas(threads: int) -> None:
    """Process initialiser: BLAS (OpenBLAS, MKL) limited to ``threads``."""
    from threadpoolctl import threadpool_limits

    global _LIMITS
    _LIMITS = threadpool_limits(threads)


def _timed(func, *args):
    t0 = time.perf_counter()
    out = func(*args)
    return out, time.perf_counter() - t0


class NumpyPool:
    """``processes`` NumPy worker processes (spawned: no numba thread pool in them), BLAS
    ``blas`` threads each. :meth:`run` splits ``n`` instances among them and returns the
    accuracies and the wall time of the whole parallel job (pool start-up excluded)."""

    def __init__(self, processes: int, blas: int = 1):
        self.processes = processes
        self.blas = blas
        self.pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_pin_blas, initargs=(blas,))

    def run(self, func, job, n: int, seed: int):
        parts = [n // self.processes + (i < n % self.processes) for i in range(self.processes)]
        t0 = time.perf_counter()
        futures = [self.pool.submit(_timed, func, job, m, seed * 1000 + i)
                   for i, m in enumerate(parts) if m]
        outs = [f.result()[0] for f in futures]
        return np.concatenate(outs), time.perf_counter() - t0

    def close(self):
        self.pool.shutdown()


def blas_threads() -> int:
    """Threads of this process's BLAS (the first BLAS threadpoolctl finds)."""
    from threadpoolctl import threadpool_info

    info = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return info[0]["num_threads"] if info else 1
