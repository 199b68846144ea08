"""Where a job's kernel time goes, function by function: ``perf`` with numba's symbols.

``perf`` cannot name numba's machine code: it is JIT-compiled, and kernels loaded from the
on-disk cache carry no symbol table at all. This script compiles the kernels afresh (into
a temporary ``NUMBA_CACHE_DIR``, so a cold compile of a minute or more), writes the
addresses of every compiled function to ``/tmp/perf-<pid>.map`` (the JIT map format perf
reads), samples the timed run with ``perf record`` and prints each function's share of the
samples that fall in mcmtj's kernels, NRT reference counting and libm. Shares are of
self time (no call graphs: numba's frames have no frame pointers). Single thread.

    python benchmarks/profile_kernels.py [core|circuit|write_ir] [--instances N]

Jobs: ``core`` (the core benchmark job), ``circuit`` (2 ohm rows and columns, V/2 disturb,
verify: ``bench_circuit.py``'s first job), ``write_ir`` (physics writes through 2 ohm lines,
fast solver, V/2, verify: ``bench_circuit.py``'s write-IR job), ``physics_v2`` (the same
writes without line resistance). Needs ``perf`` on PATH.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

JOBS = {
    "core": {},
    "circuit": {"read.r_row": 2.0, "read.r_col": 2.0, "write.scheme": "v2",
                "write.disturb_rate": 1e-3, "write.verify": True},
    "write_ir": {"read.r_wire": 2.0, "write.scheme": "v2", "write.verify": True,
                 "write.mode": "physics", "write.ir_solver": "fast"},
    # the write-IR job without any line resistance: what the writes cost before any solve
    "physics_v2": {"write.scheme": "v2", "write.verify": True, "write.mode": "physics"},
}


def _write_perf_map(dispatchers) -> int:
    """Write /tmp/perf-<pid>.map for every function defined in the compiled libraries of
    ``dispatchers`` (each function runs to the next one's address); returns their number."""
    start = {}
    for disp in dispatchers:
        for cres in disp.overloads.values():
            lib = cres.library
            for fn in lib._final_module.functions:  # empty when loaded from the cache
                if not fn.is_declaration:
                    addr = lib.get_pointer_to_function(fn.name)
                    if addr:
                        start[addr] = fn.name
    addrs = sorted(start)
    with open(f"/tmp/perf-{os.getpid()}.map", "w") as f:
        for a, b in zip(addrs, addrs[1:] + addrs[-1:], strict=True):
            f.write(f"{a:x} {max(b - a, 64):x} {start[a]}\n")
    return len(addrs)


def _short(symbol: str) -> str:
    """The function's own name out of numba's mangled one (_ZN5mcmtj7kernels...)."""
    parts, i = [], 3
    while i < len(symbol) and symbol[i].isdigit():
        j = i
        while symbol[j].isdigit():
            j += 1
        parts.append(symbol[j:j + int(symbol[i:j])])
        i = j + int(symbol[i:j])
    return parts[-1] if parts else symbol


def profile(job: str, n: int) -> None:
    """Child process: compile, map, signal readiness on stdout, run the timed job."""
    sys.path.insert(0, os.path.dirname(__file__))
    import numba
    from _common import core_job

    import mcmtj
    from mcmtj.kernels import _engine_kernels as K

    numba.set_num_threads(1)
    study = core_job(**JOBS[job])
    prep = mcmtj.prepare(study)
    t0 = time.perf_counter()
    mcmtj.simulate(study, seed=0, instances=16, prepared=prep, threads=1, progress=False)
    mapped = _write_perf_map([K.simulate_chunk_core, K.simulate_chunk_circuit])
    print(f"READY {os.getpid()} compiled in {time.perf_counter() - t0:.0f} s, "
          f"{mapped} functions mapped", flush=True)
    sys.stdin.readline()  # the parent has attached perf
    t0 = time.perf_counter()
    mcmtj.simulate(study, seed=1, instances=n, prepared=prep, threads=1, progress=False)
    print(f"DONE {(time.perf_counter() - t0) / n * 1e6:.1f} us per instance", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job", choices=sorted(JOBS), nargs="?", default="write_ir")
    parser.add_argument("--instances", type=int, default=3000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        profile(args.job, args.instances)
        return
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, NUMBA_CACHE_DIR=tmp)
        child = subprocess.Popen([sys.executable, __file__, args.job, "--instances",
                                  str(args.instances), "--child"], env=env, text=True,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        ready = child.stdout.readline()
        if not ready.startswith("READY"):
            child.kill()
            sys.exit(f"profile_kernels: the job did not start: {ready!r}")
        print(ready.strip().split(" ", 2)[2])
        data = os.path.join(tmp, "perf.data")
        perf = subprocess.Popen(["perf", "record", "-F", "1999", "-o", data, "-p",
                                 ready.split()[1]], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        child.stdin.write("\n")
        child.stdin.flush()
        done = child.stdout.readline().strip()
        perf.send_signal(2)
        perf.wait()
        child.wait()
        report = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort",
                                 "symbol", "-g", "none", "--stdio"], capture_output=True,
                                text=True).stdout
    shares: dict[str, float] = {}
    for line in report.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+\[\.\]\s+(\S+)", line)
        if not m:
            continue
        name = m.group(2)
        if name.startswith("_ZN5mcmtj"):
            name = _short(name)
        elif not (name.startswith("NRT_") or re.match(r"__\w*(exp|log|pow|tanh)", name)):
            continue
        shares[name] = shares.get(name, 0.0) + float(m.group(1))
    total = sum(shares.values())
    print(f"{args.job}: {done.removeprefix('DONE ')}, load average {os.getloadavg()[0]:.2f}; "
          "share of the samples in mcmtj's kernels, NRT and libm (self time):")
    for name, share in sorted(shares.items(), key=lambda kv: -kv[1])[:30]:
        print(f"  {100 * share / total:5.1f} %  {name}")


if __name__ == "__main__":
    main()
