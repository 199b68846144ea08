"""Core benchmark: the fused kernel vs a batched NumPy implementation of the same job.

Run: ``python benchmarks/bench_engine.py [--instances N] [--threads T]``.
Last line: ``instances_per_s=<x> numpy_ratio=<y>`` (medians, measured side by side).
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import core_job, median_time, warm_up

import mcmtj
from mcmtj.kernels._reference import reference_instances
from mcmtj.networks.solutions import predict


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=200_000)
    parser.add_argument("--numpy-instances", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    study = core_job()
    prep = mcmtj.prepare(study)
    warm_up(study, prep, args.threads)

    n = args.instances
    t_kernel = median_time(lambda: mcmtj.simulate(study, seed=0, instances=n, prepared=prep,
                                                  threads=args.threads), args.repeats)
    rate_kernel = n / t_kernel
    print(f"mcmtj fused kernel: {n} instances, median {t_kernel:.3f} s -> {rate_kernel:.3e} inst/s")

    sol, data = prep.solutions, prep.data
    states = [s[0] for s in sol.states]
    biases = [b[0] for b in sol.biases]
    gn = np.array([1.0])
    sw = predict([w[:1] for w in sol.weights], [b[:1] for b in sol.biases], data.X_train,
                 hidden_activation="tanh", output_activation="tanh")
    rng = np.random.default_rng(0)
    batch = 2000
    m = args.numpy_instances

    def numpy_job():
        for start in range(0, m, batch):
            reference_instances(study, states, biases, ("tanh", "tanh", 0.0), data.X_train,
                                data.y_train, sw, gn, 0, np.arange(start, min(start + batch, m)),
                                rng=rng)

    t_numpy = median_time(numpy_job, args.repeats)
    rate_numpy = m / t_numpy
    print(f"batched NumPy ({batch} instances per batch): {m} instances, median {t_numpy:.3f} s "
          f"-> {rate_numpy:.3e} inst/s")
    print(f"instances_per_s={rate_kernel:.4g} numpy_ratio={rate_kernel / rate_numpy:.3g}")


if __name__ == "__main__":
    main()
