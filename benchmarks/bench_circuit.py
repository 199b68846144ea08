"""Circuit benchmark: transfer-matrix speed-up over scipy, the core benchmark job with line
resistance, V/2 disturb and write-verify on, and the write-IR-drop job.

Write-IR-drop job: the full passive path with physics writes through 2 ohm lines (fast
solver), V/2 disturbs, write-verify, 15 x 15 arrays; timed beside the same job with the
writes at the ideal V_w, V_w/2 (``write.ir_solver = "off"``) in the same run, so that their
ratio is what the write IR drop costs on this machine now.

Run: ``python benchmarks/bench_circuit.py [--instances N] [--threads T]``.
Last line: ``transfer_speedup=<x> instances_per_s=<y> ir_instances_per_s=<z>
ir_ratio=<z / ideal-write rate> threads=<numba threads> transfer_threads=1
load_avg=<1-min load average at the end>`` (medians, measured in this run; the transfer
speed-up is one thread against scipy on one thread).
"""

from __future__ import annotations

import argparse
import os

import numba
from _common import core_job, median_time, warm_up
from bench_transfer import measure_speedup

import mcmtj


def rate(study, n, threads, repeats):
    """Median instances per second of ``study`` (compile excluded)."""
    prep = mcmtj.prepare(study)
    warm_up(study, prep, threads)
    t = median_time(lambda: mcmtj.simulate(study, seed=0, instances=n, prepared=prep,
                                           threads=threads), repeats)
    return n / t


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    speedup = measure_speedup()
    n = args.instances
    study = core_job(**{"read.r_row": 2.0, "read.r_col": 2.0, "write.scheme": "v2",
                        "write.disturb_rate": 1e-3, "write.verify": True})
    base = rate(study, n, args.threads, args.repeats)
    print(f"circuit job: {n} instances, {base:.4g} instances/s")
    ir_job = core_job(**{"read.r_wire": 2.0, "write.scheme": "v2", "write.verify": True,
                         "write.mode": "physics", "write.ir_solver": "fast"})
    ir = rate(ir_job, n, args.threads, args.repeats)
    ideal = rate(ir_job.replace(**{"write.ir_solver": "off"}), n, args.threads, args.repeats)
    print(f"write-IR job (fast solver): {ir:.4g} instances/s; same job with ideal writes: "
          f"{ideal:.4g} instances/s")
    threads = args.threads or numba.config.NUMBA_NUM_THREADS
    print(f"transfer_speedup={speedup:.3g} instances_per_s={base:.4g} "
          f"ir_instances_per_s={ir:.4g} ir_ratio={ir / ideal:.3g} threads={threads} "
          f"transfer_threads=1 load_avg={os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
