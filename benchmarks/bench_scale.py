"""Scale benchmark: the core job streamed to a zarr store, in memory, and on Dask.

Run: ``python benchmarks/bench_scale.py [--instances N] [--chunk-size C] [--workers W]
[--repeats R]``.

Each measurement runs in its own process, so its peak resident memory
(``ru_maxrss``) is its own:

- ``memory``: :func:`mcmtj.simulate` in memory, the CPU backend (the reference rate);
- ``store``: the same run streamed block by block to a ``.zarr`` store;
- ``dask``: the same run on a ``LocalCluster`` of W worker processes (numba threads:
  the cores shared among the workers), streamed to a store. Its memory figure is the
  driver's; each worker holds the plan and at most one block.

Times exclude start-up (numba compile or cache load, cluster start): a first process
fills numba's cache, and each measuring process first runs a small warm-up. Last line::

    peak_rss_mb=<store run> store_ratio=<store/memory rate> dask_ratio=<dask/memory rate>
    workers=<W> load_avg=<1/5/15 min>

``peak_rss_mb`` is the resident memory sampled during the streamed run (the process's
lifetime peak, which also counts numba compiling when the cache is cold, is printed
above it).

Ratios are taken within each round of interleaved runs (``--repeats``), then the median
over rounds. Targets (issue 5): peak_rss_mb < 1536 at 1e7 instances, store_ratio >= 0.85,
dask_ratio >= 0.75.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def _peak_rss_mb() -> float:
    """Peak resident memory of this process so far (includes numba compiling, if any)."""
    # ru_maxrss is KiB on Linux, bytes on macOS
    scale = 1 / 2**20 if sys.platform == "darwin" else 1 / 2**10
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _rss_mb() -> float:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class _RssSampler(threading.Thread):
    """Resident memory sampled every 20 ms while a run goes on; its maximum."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak = _rss_mb()
        self._stop_event = threading.Event()

    def run(self):
        while not self._stop_event.wait(0.02):
            self.peak = max(self.peak, _rss_mb())

    def stop(self) -> float:
        self._stop_event.set()
        self.join()
        return max(self.peak, _rss_mb())


def child(mode: str, n: int, chunk: int, workers: int, folder: Path) -> dict:
    """One measurement in this process; returns rate and peak memory."""
    from _common import core_job

    import mcmtj
    from mcmtj.run.executors import DaskExecutor

    study = core_job()
    prep = mcmtj.prepare(study)
    if mode == "warm":  # compile (or load) the kernels once, outside the measurements
        mcmtj.simulate(study, seed=1, instances=64, prepared=prep)
        return {"mode": mode, "seconds": 0.0, "rate": 0.0, "run_rss_mb": 0.0,
                "peak_rss_mb": _peak_rss_mb(), "cpu_s": 0.0}
    executor = DaskExecutor(n_workers=workers) if mode == "dask" else None
    try:
        warm = folder / f"warm-{mode}.zarr"
        mcmtj.simulate(study, seed=1, instances=max(2 * chunk, 4096), chunk_size=chunk,
                       prepared=prep, executor=executor,
                       store=warm if mode != "memory" else None)
        store = folder / f"{mode}.zarr" if mode != "memory" else None
        sampler = _RssSampler()
        sampler.start()
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        ds = mcmtj.simulate(study, seed=0, instances=n, chunk_size=chunk, prepared=prep,
                            executor=executor, store=store)
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        run_peak = sampler.stop()
        assert ds.sizes["instance"] == n
    finally:
        if executor is not None:
            executor.close()
    return {"mode": mode, "seconds": elapsed, "rate": n / elapsed, "run_rss_mb": run_peak,
            "peak_rss_mb": _peak_rss_mb(), "cpu_s": cpu}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=float, default=1e7)
    parser.add_argument("--chunk-size", type=int, default=65536,
                        help="instances per block (and zarr chunk)")
    parser.add_argument("--workers", type=int, default=2, help="Dask LocalCluster workers")
    parser.add_argument("--modes", default="memory,store,dask")
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs per mode, interleaved; rates are medians")
    parser.add_argument("--folder", type=Path, default=None,
                        help="where the stores go (default: a temporary folder, removed)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    n = int(args.instances)

    if args.child:
        result = child(args.child, n, args.chunk_size, args.workers, args.folder)
        print("RESULT " + json.dumps(result))
        return

    folder = args.folder or Path(tempfile.mkdtemp(prefix="mcmtj-bench-scale-"))
    modes = args.modes.split(",")
    results = {mode: [] for mode in modes}
    try:
        # repeats interleave the modes, so a slow spell of a shared machine hits them all
        for mode in ["warm", *modes * args.repeats]:
            for old in folder.glob(f"*{mode}.zarr"):
                shutil.rmtree(old)
            cmd = [sys.executable, __file__, "--child", mode, "--instances", str(n),
                   "--chunk-size", str(args.chunk_size), "--workers", str(args.workers),
                   "--folder", str(folder)]
            proc = subprocess.run(cmd, capture_output=True, text=True,
                                  cwd=Path(__file__).parent, env={**os.environ})
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode or not lines:
                print(proc.stdout + proc.stderr, file=sys.stderr)
                raise SystemExit(f"{mode} run failed")
            r = json.loads(lines[-1][len("RESULT "):])
            if mode == "warm":
                continue
            results[mode].append(r)
            print(f"{mode:>6}: {n} instances in {r['seconds']:.1f} s -> {r['rate']:.4g} inst/s, "
                  f"CPU {r['cpu_s']:.1f} s (this process), peak RSS during the run "
                  f"{r['run_rss_mb']:.0f} MB (process lifetime {r['peak_rss_mb']:.0f} MB)",
                  flush=True)
    finally:
        if args.folder is None:
            shutil.rmtree(folder, ignore_errors=True)
    rate = {m: statistics.median(r["rate"] for r in rs) for m, rs in results.items() if rs}
    print("median rates (inst/s): " + ", ".join(f"{m} {v:.4g}" for m, v in rate.items()))
    # ratios within each round of interleaved runs, then their median: robust to a shared
    # machine that is busier in one round than in another
    ratio = {}
    for m in ("store", "dask"):
        pairs = [r["rate"] / ref["rate"]
                 for r, ref in zip(results.get(m, []), results.get("memory", []), strict=False)]
        ratio[m] = statistics.median(pairs) if pairs else float("nan")
    peak = max((r["run_rss_mb"] for r in results.get("store", [])), default=float("nan"))
    cpu = [r["cpu_s"] / ref["cpu_s"]
           for r, ref in zip(results.get("store", []), results.get("memory", []), strict=False)]
    if cpu:
        # CPU time does not depend on how busy a shared machine is: the store's own cost
        print(f"store/memory CPU time (median over rounds): {statistics.median(cpu):.3f}")
    load = "/".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"peak_rss_mb={peak:.0f} store_ratio={ratio['store']:.3f} "
          f"dask_ratio={ratio['dask']:.3f} workers={args.workers} load_avg={load}")


if __name__ == "__main__":
    main()
