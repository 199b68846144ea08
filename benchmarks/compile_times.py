"""Cold compile time of each kernel a run calls (the source of mcmtj.run.progress.COMPILE_SECONDS).

Run it with an empty numba cache, so that every kernel is compiled, not loaded::

    NUMBA_CACHE_DIR=$(mktemp -d) python benchmarks/compile_times.py

It times the first call of each kernel through the engine, one after the other in one
process (the helpers a later kernel shares with an earlier one are then already compiled,
as in a real run, which compiles them in this order). Prints wall and CPU seconds (LLVM
compiles on one thread, so on an idle machine wall ~ CPU; on a loaded one the wall time
grows with the load, the CPU time does not); never asserts on time.
"""

from __future__ import annotations

import os
import time

import mcmtj
from mcmtj.kernels import _engine_kernels as K
from mcmtj.run.block import make_plan, run_block


def main() -> None:
    print(f"NUMBA_CACHE_DIR={os.environ.get('NUMBA_CACHE_DIR', '(default: __pycache__)')}, "
          f"load average {os.getloadavg()[0]:.1f}")
    tiny = mcmtj.Study().replace(**{"network.n_solutions": 1, "network.epochs": 2})
    circuit = tiny.replace(**{"write.scheme": "v2", "read.r_wire": 1.0})
    steps = (
        ("software_predictions (with a 2-epoch training)", lambda: make_plan(tiny)),
        ("simulate_chunk_core", lambda: run_block(make_plan(tiny), 0, 0, 1, 0, 2)),
        ("simulate_chunk_circuit", lambda: run_block(make_plan(circuit), 0, 0, 1, 0, 2)),
    )
    for name, step in steps:
        wall, cpu = time.perf_counter(), time.process_time()
        step()
        print(f"{name}: {time.perf_counter() - wall:.1f} s wall, "
              f"{time.process_time() - cpu:.1f} s CPU, load average {os.getloadavg()[0]:.1f}")
    print(f"overloads: {len(K.software_predictions.overloads)}, "
          f"{len(K.simulate_chunk_core.overloads)}, {len(K.simulate_chunk_circuit.overloads)}")


if __name__ == "__main__":
    main()
