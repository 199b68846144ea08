"""Shared set-up of the benchmark jobs (not a test; prints, never asserts on time)."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import mcmtj

NIST = Path(os.environ.get("MCMTJ_NIST_WINE",
                           Path(__file__).resolve().parents[2] / "shared" / "data" / "nist-wine"))


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
