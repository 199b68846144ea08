"""Core benchmark: mcmtj's fused kernel against the fastest plain NumPy of the same job.

Run: ``python benchmarks/bench_engine.py [--instances N] [--numpy-instances M] [--threads T]
[--repeats R] [--pipeline-instances P]``.

Side by side, repeats interleaved (a change of machine load hits every side alike),
medians of ``--repeats``:

- ``mcmtj``: :func:`mcmtj.simulate` on T numba threads (default 2), every per-instance
  result (accuracy, agreement, fidelities, current error, counters);
- ``numpy``: :func:`_common.numpy_core_accuracy`, the fastest NumPy version we wrote
  (BLAS matrix product for layer 0, lean sampling of only what the job varies; accuracy
  only), in T spawned processes with BLAS on one thread each, and in one process with
  BLAS on T threads; ``numpy_best`` is the faster of the two;
- ``pipeline`` (shown, not a baseline): ``mcmtj.kernels._reference``, the bit-exact NumPy
  oracle of the kernel, which loops over inputs on purpose; one process.

The mean accuracies (with standard errors) must agree: the check that both simulate the
same job. Last line: ``instances_per_s=<mcmtj> numpy_best_instances_per_s=<x>
numpy_best_ratio=<mcmtj / numpy_best> mcmtj_threads=T numpy_processes=.. numpy_blas_threads=..
load_avg=<1/5/15 min>``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numba
import numpy as np
from _common import (
    NumpyPool,
    core_job,
    core_numpy_job,
    load_average,
    numpy_core_accuracy,
    warm_up,
)

import mcmtj
from mcmtj.kernels._reference import reference_instances
from mcmtj.networks.solutions import predict


def mean_se(acc) -> str:
    acc = np.asarray(acc, float).ravel()
    return f"{acc.mean():.4f} +- {acc.std(ddof=1) / math.sqrt(acc.size):.4f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=200_000, help="mcmtj instances")
    parser.add_argument("--numpy-instances", type=int, default=40_000)
    parser.add_argument("--pipeline-instances", type=int, default=2_000,
                        help="instances of the project's NumPy oracle (0: skip it)")
    parser.add_argument("--threads", type=int, default=2,
                        help="numba threads of mcmtj, and NumPy processes / BLAS threads")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    T = args.threads

    study = core_job()
    prep = mcmtj.prepare(study)
    warm_up(study, prep, T)
    job = core_numpy_job(study, prep)
    pools = {f"numpy_{T}proc_blas1": NumpyPool(T, 1), f"numpy_1proc_blas{T}": NumpyPool(1, T)}
    for pool in pools.values():
        pool.run(numpy_core_accuracy, job, 64 * pool.processes, 99)  # start + import

    sol, data = prep.solutions, prep.data
    sw = predict([w[:1] for w in sol.weights], [b[:1] for b in sol.biases], data.X_train,
                 hidden_activation="tanh", output_activation="tanh")
    rng = np.random.default_rng(0)

    def pipeline(m, batch=2000):
        accs = []
        for start in range(0, m, batch):
            out = reference_instances(
                study, [s[0] for s in sol.states], [b[0] for b in sol.biases],
                ("tanh", "tanh", 0.0), data.X_train, data.y_train, sw, np.array([1.0]), 0,
                np.arange(start, min(start + batch, m)), rng=rng)
            accs.append(out["accuracy"][:, 0])
        return np.concatenate(accs)

    print(f"{time.strftime('%Y-%m-%d %H:%M %Z')}, numba {numba.__version__}, numpy "
          f"{np.__version__}, mcmtj threads {T}, load average {load_average()}")
    times = {name: [] for name in ["mcmtj", *pools, "pipeline"]}
    accs = {}
    counts = {"mcmtj": args.instances, "pipeline": args.pipeline_instances,
              **{name: args.numpy_instances for name in pools}}
    for r in range(args.repeats):
        t0 = time.perf_counter()
        ds = mcmtj.simulate(study, seed=r, instances=args.instances, prepared=prep, threads=T,
                            progress=False)
        times["mcmtj"].append(time.perf_counter() - t0)
        accs["mcmtj"] = ds["accuracy"].values.ravel()
        for name, pool in pools.items():
            accs[name], t = pool.run(numpy_core_accuracy, job, args.numpy_instances, r)
            times[name].append(t)
        if args.pipeline_instances:
            t0 = time.perf_counter()
            accs["pipeline"] = pipeline(args.pipeline_instances)
            times["pipeline"].append(time.perf_counter() - t0)
    for pool in pools.values():
        pool.close()

    rates = {name: counts[name] / statistics.median(t) for name, t in times.items() if t}
    labels = {"mcmtj": f"mcmtj, {T} numba threads, every metric",
              "pipeline": "project NumPy oracle (not a baseline), 1 process"}
    for name, pool in pools.items():
        labels[name] = (f"lean NumPy, {pool.processes} process(es), BLAS {pool.blas} thread(s), "
                        "accuracy only")
    for name, rate in rates.items():
        print(f"{name:18s} {counts[name]:>8d} instances  {rate:.3e} inst/s  mean accuracy "
              f"{mean_se(accs[name])}  ({labels[name]}; mcmtj / this = "
              f"{rates['mcmtj'] / rate:.3g})")
    best = max(pools, key=lambda name: rates[name])
    print(f"instances_per_s={rates['mcmtj']:.4g} numpy_best_instances_per_s={rates[best]:.4g} "
          f"numpy_best_ratio={rates['mcmtj'] / rates[best]:.3g} mcmtj_threads={T} "
          f"numpy_processes={pools[best].processes} numpy_blas_threads={pools[best].blas} "
          f"load_avg={load_average()}")


if __name__ == "__main__":
    main()
