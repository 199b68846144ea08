"""Peer benchmark: one Monte Carlo job in mcmtj, in the fastest NumPy we wrote, and in IBM aihwkit.

Peers, side by side (repeats interleaved, medians):

- ``mcmtj``: :func:`mcmtj.simulate` on T numba threads (default 2), every per-instance
  result;
- ``numpy_*``: ``benchmarks/_common.py``'s :func:`numpy_core_accuracy`, the fastest plain
  NumPy we wrote for this job (lean sampling: one normal (RA) and one uniform per device;
  one BLAS product for layer 0; accuracy only), in T spawned processes with BLAS on one
  thread each and in one process with BLAS on T threads; ``numpy_best`` is the faster;
- ``pipeline`` (shown, not a baseline): ``mcmtj.kernels._reference.reference_instances``,
  the bit-exact NumPy oracle of the kernel (every metric; loops over inputs on purpose);
- ``aihwkit`` (optional): IBM aihwkit inference tiles through a custom binary-MTJ noise
  model, programmed in place once per instance (``program_analog_weights()``) and run on
  the test set, as its inference tutorials do; in processes of its own (no numba thread
  pool beside it): T processes with ``torch.set_num_threads(1)`` and one with
  ``torch.set_num_threads(T)``; ``aihwkit_best`` is the faster.

Job (issue 6): Wine (scikit-learn, 142 train / 36 test samples, min-max inputs), a trained
13 -> 15 -> 3 binary network (480 MTJs: 13 x 30 + 15 x 6), R_P = 5 kOhm, TMR = 100 %,
log-normal device-to-device spread of 5 %, write errors 2 % (a pulse fails to switch),
stuck devices 1 % (half stuck in P, half in AP), ideal read; per instance: the test
accuracy. Each peer simulates fresh instances (devices, defects, write) of the same
solution; see README.md beside this file for what each peer's model matches.

Run: ``python benchmarks/peers/bench_peers.py [--instances N] [--numpy-instances M]
[--pipeline-instances P] [--aihwkit-instances K] [--aihwkit-python PY] [--threads T]``.
aihwkit runs under ``--aihwkit-python`` (default: this interpreter); where it cannot be
imported the script says so and how to install it.

Prints instances/s of each, mcmtj's ratio to each, and every peer's mean accuracy with its
standard error, as a check that they simulate the same job. Last line: ``key=value`` pairs:
``instances_per_s`` (mcmtj), ``numpy_best_ratio``, the pipeline's and aihwkit's best rate
and ratio, the thread / process counts of each side and the load average.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/_common.py

import mcmtj  # noqa: E402
from mcmtj.kernels._reference import reference_instances  # noqa: E402
from mcmtj.networks.data import load_wine  # noqa: E402
from mcmtj.networks.solutions import predict  # noqa: E402
from mcmtj.networks.trainer import BinaryMLP  # noqa: E402
from mcmtj.run.block import Prepared  # noqa: E402

R_P = 5e3  # ohm
TMR = 1.0
SPREAD = 0.05  # log-normal sigma of the resistance
WRITE_ERROR = 0.02
STUCK = 0.01
DIAMETER = 60e-9
AIHWKIT_INSTALL = ("python3.11 -m venv /work/wt/peers-venv && /work/wt/peers-venv/bin/pip install "
                   "aihwkit==1.1.0 torch==2.10.0 xarray h5netcdf h5py numba tqdm threadpoolctl "
                   "scikit-learn, then --aihwkit-python /work/wt/peers-venv/bin/python (Python "
                   "3.11: aihwkit 1.2.0 is a source distribution only, and its build needs "
                   "OpenBLAS and a compiler; 1.1.0 has a wheel and needs exactly torch 2.10.0)")


def job(n_solutions: int = 1, train_seed: int = 0):
    """The study, the prepared solution set and data of the peer job."""
    data = load_wine(test_size=36)
    model = BinaryMLP(hidden=15, weights="binary", n_solutions=n_solutions, epochs=200,
                      random_state=train_seed).fit(data.X_train, data.y_train)
    solutions = model.to_solutions(name="peer job 13-15-3 binary")
    study = mcmtj.Study().replace(**{
        "device.diameter": DIAMETER, "device.diameter_sigma": 0.0,
        "device.resistance_area": R_P * math.pi / 4.0 * DIAMETER**2,
        "device.resistance_area_sigma": SPREAD, "device.tmr": TMR, "device.tmr_sigma": 0.0,
        "device.variation": True,
        "write.mode": "fixed", "write.error_rate": WRITE_ERROR, "write.initial": "ap",
        "defects.stuck_p": STUCK / 2, "defects.stuck_ap": STUCK / 2,
        "network.eval_split": "test", "network.gnorm": 1.0,
        # layer 0 needs 13 rows x 30 columns; the ideal read does not depend on the array size
        "array.rows": 15, "array.cols": 30,
    })
    return study, Prepared(solutions, data)


def mean_se(acc):
    acc = np.asarray(acc, float).ravel()
    return acc.mean(), acc.std(ddof=1) / math.sqrt(acc.size)


def peer_mcmtj(study, prep, n, threads):
    """Warmed up (compiled or cache loaded); ``go(seed)`` simulates n instances."""
    mcmtj.simulate(study, seed=0, instances=256, prepared=prep, threads=threads, progress=False)

    def go(seed):
        ds = mcmtj.simulate(study, seed=seed, instances=n, prepared=prep, threads=threads,
                            progress=False)
        return ds["accuracy"].values.ravel()

    return go


def peer_pipeline(study, prep, n, batch=2000):
    """The project's NumPy oracle of the kernel (not a speed baseline: see the docstring)."""
    sol, data = prep.solutions, prep.data
    states = [s[0] for s in sol.states]
    biases = [b[0] for b in sol.biases]
    gnorms = np.array([1.0])
    sw = predict([w[:1] for w in sol.weights], [b[:1] for b in sol.biases], data.X_test,
                 hidden_activation=sol.hidden_activation,
                 output_activation=sol.output_activation)
    activations = (sol.hidden_activation, sol.output_activation, sol.threshold)
    rng = np.random.default_rng(0)

    def go(seed):
        accs = []
        for start in range(0, n, batch):
            out = reference_instances(study, states, biases, activations, data.X_test,
                                      data.y_test, sw, gnorms, 0,
                                      np.arange(start, min(start + batch, n)), rng=rng)
            accs.append(out["accuracy"][:, 0])
        return np.concatenate(accs)

    return go


def aihwkit_child(n: int, threads: int, seed: int) -> dict:
    """Run in its own process: aihwkit's per-instance loop, timed after a warm-up."""
    import torch
    from aihwkit.inference.converter.conductance import SinglePairConductanceConverter
    from aihwkit.inference.noise.base import BaseNoiseModel
    from aihwkit.nn import AnalogLinear, AnalogSequential
    from aihwkit.simulator.configs import InferenceRPUConfig

    torch.set_num_threads(threads)
    _, prep = job()
    g_p = 1e6 / R_P  # uS
    g_ap = g_p / (1.0 + TMR)

    class MTJBinaryNoise(BaseNoiseModel):
        """Binary MTJ programming: as-fabricated random states, a reset towards AP and one
        pulse towards the target, each pulse failing with WRITE_ERROR (mcmtj's 'fixed'
        mode with write.initial = 'ap'), stuck-P / stuck-AP devices, log-normal device
        conductance (both states scale)."""

        def __init__(self):
            super().__init__(SinglePairConductanceConverter(g_max=g_p, g_min=g_ap))

        @torch.no_grad()
        def apply_programming_noise_to_conductance(self, g_target):
            target_p = g_target > 0.5 * (g_p + g_ap)
            u = torch.rand_like(g_target)
            stuck_p = u < STUCK / 2
            stuck_ap = (u >= STUCK / 2) & (u < STUCK)
            fab_p = torch.rand_like(g_target) < 0.5
            after_reset_p = fab_p & (torch.rand_like(g_target) < WRITE_ERROR)
            pulse_fails = torch.rand_like(g_target) < WRITE_ERROR
            state_p = torch.where(after_reset_p != target_p, target_p ^ pulse_fails, target_p)
            state_p = (state_p | stuck_p) & ~stuck_ap
            g_dev_p = g_p * torch.exp(SPREAD * torch.randn_like(g_target))
            return torch.where(state_p, g_dev_p, g_dev_p / (1.0 + TMR))

    sol, data = prep.solutions, prep.data
    if sol.hidden_activation != "tanh" or sol.output_activation != "identity":
        raise NotImplementedError("the aihwkit peer is written for tanh hidden / identity output")
    rpu = InferenceRPUConfig()
    rpu.forward.is_perfect = True  # ideal read: no DAC/ADC, no read noise
    rpu.noise_model = MTJBinaryNoise()
    rpu.drift_compensation = None
    layers = []
    for layer, (n_in, n_out) in enumerate(sol.layer_shapes):
        lin = AnalogLinear(n_in, n_out, bias=True, rpu_config=rpu)
        lin.set_weights(torch.tensor(sol.weights[layer][0].T, dtype=torch.float32),
                        torch.tensor(sol.biases[layer][0], dtype=torch.float32))
        layers.append(lin)
        if layer < len(sol.layer_shapes) - 1:
            layers.append(torch.nn.Tanh())
    model = AnalogSequential(*layers).eval()
    X = torch.tensor(data.X_test, dtype=torch.float32)
    y = torch.tensor(data.y_test)
    torch.manual_seed(seed)

    def go(count):
        acc = np.empty(count)
        with torch.no_grad():
            for i in range(count):
                model.program_analog_weights()  # programs the tiles in place
                acc[i] = (model(X).argmax(dim=1) == y).float().mean().item()
        return acc

    go(16)  # warm-up
    print("READY", flush=True)
    sys.stdin.readline()  # the parent's start signal: all processes start together
    start = time.time()  # wall clock: comparable across the parallel processes
    acc = go(n)
    end = time.time()
    import aihwkit

    return {"start": start, "end": end, "acc": acc.tolist(),
            "versions": f"aihwkit {aihwkit.__version__}, torch {torch.__version__}",
            "threads": torch.get_num_threads()}


def run_aihwkit(python: str, n: int, processes: int, threads: int, seed: int):
    """aihwkit in ``processes`` child processes of ``threads`` torch threads each, n
    instances split among them, started together after their warm-ups; returns (result
    dict with the wall time of the parallel run, accuracies), or the reason it did not run."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    procs = []
    for i in range(processes):
        m = n // processes + (i < n % processes)
        cmd = [python, __file__, "--aihwkit-child", "--aihwkit-instances", str(m),
               "--threads", str(threads), "--seed", str(1000 * seed + i)]
        procs.append(subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, env=env))
    for proc in procs:  # wait for every warm-up
        line = proc.stdout.readline()
        if not line.startswith("READY"):
            for other in procs:
                other.kill()
            err = proc.communicate()[1]
            return (err.strip().splitlines() or ["no output"])[-1]
    for proc in procs:
        proc.stdin.write("GO\n")
        proc.stdin.flush()
    outs = [proc.communicate() for proc in procs]
    results = []
    for proc, (out, err) in zip(procs, outs, strict=True):
        lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not lines:
            return (err.strip().splitlines() or ["no output"])[-1]
        results.append(json.loads(lines[-1][len("RESULT "):]))
    # from the first start to the last end of the timed loops (not the processes' exits,
    # which take seconds for torch)
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    return {"seconds": wall, "acc": sum((r["acc"] for r in results), []),
            "versions": results[0]["versions"], "threads": results[0]["threads"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=200_000, help="mcmtj instances")
    parser.add_argument("--numpy-instances", type=int, default=40_000)
    parser.add_argument("--pipeline-instances", type=int, default=4_000,
                        help="instances of the project's NumPy oracle (0: skip it)")
    parser.add_argument("--aihwkit-instances", type=int, default=1_000)
    parser.add_argument("--aihwkit-python", default=sys.executable,
                        help="interpreter with aihwkit and torch (its own process)")
    parser.add_argument("--threads", type=int, default=2,
                        help="numba threads of mcmtj, NumPy processes / BLAS threads, torch "
                             "threads")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--aihwkit-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    T = args.threads
    if args.aihwkit_child:
        print("RESULT " + json.dumps(aihwkit_child(args.aihwkit_instances, T, args.seed)))
        return

    import numba
    from _common import NumpyPool, core_numpy_job, load_average, numpy_core_accuracy

    study, prep = job()
    sol, data = prep.solutions, prep.data
    software = predict([w[:1] for w in sol.weights], [b[:1] for b in sol.biases], data.X_test,
                       hidden_activation=sol.hidden_activation,
                       output_activation=sol.output_activation)[0]
    print(f"job: Wine {data.X_train.shape[0]}/{data.X_test.shape[0]} samples, network "
          f"{sol.layer_shapes}, {sum(i * 2 * o for i, o in sol.layer_shapes)} MTJs, software "
          f"test accuracy {np.mean(software == data.y_test):.4f}")
    print(f"{time.strftime('%Y-%m-%d %H:%M %Z')}, numba {numba.__version__} ({T} threads), "
          f"numpy {np.__version__}, load average {load_average()}")

    lean = core_numpy_job(study, prep)
    pools = {f"numpy_{T}proc_blas1": NumpyPool(T, 1), f"numpy_1proc_blas{T}": NumpyPool(1, T)}
    for pool in pools.values():
        pool.run(numpy_core_accuracy, lean, 64 * pool.processes, 99)  # start + import
    aihwkit_modes = {f"aihwkit_{T}proc_torch1": (T, 1), f"aihwkit_1proc_torch{T}": (1, T)}
    counts = {"mcmtj": args.instances, **{name: args.numpy_instances for name in pools},
              "pipeline": args.pipeline_instances,
              **{name: args.aihwkit_instances for name in aihwkit_modes}}
    local = {"mcmtj": peer_mcmtj(study, prep, args.instances, T)}
    if args.pipeline_instances:
        local["pipeline"] = peer_pipeline(study, prep, args.pipeline_instances)

    # repeats interleaved across peers, so a change of machine load hits all of them alike
    times = {name: [] for name in counts}
    accs = {}
    aihwkit_info = ""
    aihwkit_failed = False
    for r in range(args.repeats):
        for name, go in local.items():
            t0 = time.perf_counter()
            accs[name] = go(r + 1)
            times[name].append(time.perf_counter() - t0)
        for name, pool in pools.items():
            accs[name], t = pool.run(numpy_core_accuracy, lean, args.numpy_instances, r)
            times[name].append(t)
        for name, (procs, threads) in aihwkit_modes.items():
            if not args.aihwkit_instances or aihwkit_failed:
                break
            out = run_aihwkit(args.aihwkit_python, args.aihwkit_instances, procs, threads, r)
            if isinstance(out, str):
                aihwkit_failed = True
                print(f"aihwkit: skipped ({out}); to include it: {AIHWKIT_INSTALL}")
            else:
                aihwkit_info = out["versions"]
                accs[name] = np.array(out["acc"])
                times[name].append(out["seconds"])
    for pool in pools.values():
        pool.close()

    rates = {name: counts[name] / statistics.median(t) for name, t in times.items() if t}
    labels = {"mcmtj": f"{T} numba threads, every metric",
              "pipeline": "project NumPy oracle, not a baseline; 1 process"}
    for name, pool in pools.items():
        labels[name] = f"lean NumPy, {pool.processes} process(es) x BLAS {pool.blas} thread(s)"
    for name, (procs, threads) in aihwkit_modes.items():
        labels[name] = f"{aihwkit_info}, {procs} process(es) x {threads} torch thread(s)"
    for name, rate in rates.items():
        m, se = mean_se(accs[name])
        print(f"{name:20s} {accs[name].size:>8d} instances  {rate:.3e} inst/s  "
              f"mean accuracy {m:.4f} +- {se:.4f}  mcmtj / this {rates['mcmtj'] / rate:.3g}  "
              f"({labels[name]})")
    best = max(pools, key=lambda name: rates[name])
    line = (f"instances_per_s={rates['mcmtj']:.4g} numpy_best_instances_per_s={rates[best]:.4g} "
            f"numpy_best_ratio={rates['mcmtj'] / rates[best]:.3g}")
    if "pipeline" in rates:
        line += (f" pipeline_instances_per_s={rates['pipeline']:.4g} "
                 f"mcmtj_vs_pipeline={rates['mcmtj'] / rates['pipeline']:.3g}")
    ran = [name for name in aihwkit_modes if name in rates]
    if ran:
        best_ai = max(ran, key=lambda name: rates[name])
        line += (f" aihwkit_best_instances_per_s={rates[best_ai]:.4g} "
                 f"aihwkit_best_ratio={rates['mcmtj'] / rates[best_ai]:.3g}")
    line += (f" mcmtj_threads={T} numpy_processes={pools[best].processes} "
             f"numpy_blas_threads={pools[best].blas}")
    if ran:
        procs, threads = aihwkit_modes[best_ai]
        line += f" aihwkit_processes={procs} torch_threads={threads}"
    print(f"{line} load_avg={load_average()}")


if __name__ == "__main__":
    main()
