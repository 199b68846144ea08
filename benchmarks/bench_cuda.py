"""CUDA benchmark: run_block_cuda on the core job vs the CPU backend, in one run.

Run: ``python benchmarks/bench_cuda.py [--instances N] [--block B] [--cpu-instances M]``.
Needs an NVIDIA GPU and numba-cuda (``pip install -e '.[cuda]'``); without a GPU it says so
and exits 0 (the CUDA simulator is not a benchmark and is refused too).

Both rates count whole ``run_block`` calls: kernel, host <-> device transfers of the
inputs and of every per-instance result, and the host arrays they land in. The first
call of each backend (compilation) is timed separately and left out of the rates.
Last line: ``cuda_instances_per_s=<x> cpu_instances_per_s=<y> ratio=<z>``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numba
from _common import core_job

import mcmtj
from mcmtj.run.block import make_plan, run_block


def _rate(run, total, block):
    """Instances per second of ``run(start, n)`` over ``total`` instances in blocks."""
    t0 = time.perf_counter()
    done = 0
    while done < total:
        n = min(block, total - done)
        run(done, n)
        done += n
    return total / (time.perf_counter() - t0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=float, default=1e8,
                        help="instances simulated on the GPU (default 1e8)")
    parser.add_argument("--block", type=int, default=1 << 22,
                        help="instances per run_block_cuda call (default 4194304)")
    parser.add_argument("--cpu-instances", type=float, default=2e5,
                        help="instances simulated on the CPU for its rate (default 2e5)")
    parser.add_argument("--cpu-block", type=int, default=50_000)
    parser.add_argument("--smoke", action="store_true",
                        help="also run under NUMBA_ENABLE_CUDASIM (checks the script, tiny "
                             "sizes only; its numbers mean nothing)")
    args = parser.parse_args()

    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0") and not args.smoke:
        print("NUMBA_ENABLE_CUDASIM is set: the CUDA simulator is not a benchmark; skipped")
        return
    from mcmtj.run.cuda import cuda_available, run_block_cuda

    if not cuda_available():
        print("no CUDA GPU here (or numba-cuda missing): CUDA benchmark skipped")
        return
    from numba import cuda

    name = getattr(cuda.get_current_device(), "name", "?")
    print(f"GPU: {name.decode() if isinstance(name, bytes) else name}, "
          f"CPU: {platform.processor() or platform.machine()} x {os.cpu_count()} "
          f"(numba threads {numba.get_num_threads()}), numba {numba.__version__}, "
          f"mcmtj {mcmtj.__version__}, {time.strftime('%Y-%m-%d')}")

    study = core_job()
    plan = make_plan(study)

    t0 = time.perf_counter()
    run_block_cuda(plan, 0, 0, 1, 0, min(1024, args.block))
    cuda.synchronize()
    print(f"CUDA first call (compile): {time.perf_counter() - t0:.1f} s")
    n_gpu = int(args.instances)
    rate_gpu = _rate(lambda start, n: run_block_cuda(plan, 0, 0, 1, start, n), n_gpu, args.block)
    print(f"CUDA: {n_gpu:.3g} instances in blocks of {args.block} -> {rate_gpu:.3e} inst/s")

    t0 = time.perf_counter()
    run_block(plan, 0, 0, 1, 0, 64)
    print(f"CPU first call (compile or cache load): {time.perf_counter() - t0:.1f} s")
    n_cpu = int(args.cpu_instances)
    rate_cpu = _rate(lambda start, n: run_block(plan, 0, 0, 1, start, n), n_cpu, args.cpu_block)
    print(f"CPU: {n_cpu:.3g} instances in blocks of {args.cpu_block} -> {rate_cpu:.3e} inst/s")
    print(f"cuda_instances_per_s={rate_gpu:.4g} cpu_instances_per_s={rate_cpu:.4g} "
          f"ratio={rate_gpu / rate_cpu:.4g}")


if __name__ == "__main__":
    main()
