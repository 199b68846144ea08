"""Circuit benchmark: transfer-matrix speed-up over scipy, and the core benchmark job with
line resistance, V/2 disturb and write-verify on.

Run: ``python benchmarks/bench_circuit.py [--instances N]``.
Last line: ``transfer_speedup=<x> instances_per_s=<y>`` (medians, measured in this run).
"""

from __future__ import annotations

import argparse

from _common import core_job, median_time, warm_up
from bench_transfer import measure_speedup

import mcmtj


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    speedup = measure_speedup()
    study = core_job(**{"read.r_row": 2.0, "read.r_col": 2.0, "write.scheme": "v2",
                        "write.disturb_rate": 1e-3, "write.verify": True})
    prep = mcmtj.prepare(study)
    warm_up(study, prep, args.threads)
    n = args.instances
    t = median_time(lambda: mcmtj.simulate(study, seed=0, instances=n, prepared=prep,
                                           threads=args.threads), args.repeats)
    print(f"circuit job: {n} instances, median {t:.3f} s")
    print(f"transfer_speedup={speedup:.3g} instances_per_s={n / t:.4g}")


if __name__ == "__main__":
    main()
