"""Peer benchmark: one Monte Carlo job in mcmtj, in batched NumPy and (optionally) IBM aihwkit.

Peers: ``numpy`` is :func:`mcmtj.kernels._reference.reference_instances`, the batched NumPy
pipeline that computes every per-instance result mcmtj does (the test oracle of the
fused kernel); ``numpy_lean`` is the short accuracy-only version a NumPy user would write;
``aihwkit`` programs IBM aihwkit inference tiles once per instance through a custom
binary-MTJ noise model.

Job (issue 6): Wine (scikit-learn, 142 train / 36 test samples, min-max inputs), a trained
13 -> 15 -> 3 binary network (480 MTJs: 13 x 30 + 15 x 6), R_P = 5 kOhm, TMR = 100 %,
log-normal device-to-device spread of 5 %, write errors 2 % (a pulse fails to switch),
stuck devices 1 % (half stuck in P, half in AP), ideal read; per instance: the test
accuracy. Each peer simulates fresh instances (devices, defects, write) of the same
solution; see README.md beside this file for what each peer's model matches.

Run (all three side by side in one process):
``python benchmarks/peers/bench_peers.py [--instances N] [--numpy-instances M]
[--aihwkit-instances K] [--threads T]``.
aihwkit is optional: without it the script says so and how to install it.

Prints instances/s of each, mcmtj's ratio to each, and every peer's mean accuracy with its
standard error, as a check that they simulate the same job.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

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
AIHWKIT_INSTALL = ("pip install aihwkit==1.1.0 torch==2.10.0  (Python 3.11: only aihwkit 1.1.0 "
                   "has a wheel, and its compiled core needs exactly torch 2.10.0; about 4 GB "
                   "with torch's CUDA libraries)")


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


# Each peer_* returns ``go()``, warmed up (compiled, imported), simulating n instances and
# returning their accuracies; main() times the peers' calls interleaved.


def peer_mcmtj(study, prep, n, threads):
    mcmtj.simulate(study, seed=0, instances=256, prepared=prep, threads=threads, progress=False)

    def go():
        ds = mcmtj.simulate(study, seed=1, instances=n, prepared=prep, threads=threads,
                            progress=False)
        return ds["accuracy"].values.ravel()

    return go


def peer_numpy(study, prep, n, batch=2000):
    sol, data = prep.solutions, prep.data
    states = [s[0] for s in sol.states]
    biases = [b[0] for b in sol.biases]
    gnorms = np.array([1.0])
    sw = predict([w[:1] for w in sol.weights], [b[:1] for b in sol.biases], data.X_test,
                 hidden_activation=sol.hidden_activation,
                 output_activation=sol.output_activation)
    activations = (sol.hidden_activation, sol.output_activation, sol.threshold)
    rng = np.random.default_rng(0)

    def go():
        accs = []
        for start in range(0, n, batch):
            out = reference_instances(study, states, biases, activations, data.X_test,
                                      data.y_test, sw, gnorms, 0,
                                      np.arange(start, min(start + batch, n)), rng=rng)
            accs.append(out["accuracy"][:, 0])
        return np.concatenate(accs)

    return go


def peer_numpy_lean(prep, n, batch=2000):
    """Accuracy only, written the short way a NumPy user would (same device model; none of
    mcmtj's other per-instance metrics)."""
    sol, data = prep.solutions, prep.data
    targets = [s[0].astype(bool) for s in sol.states]  # (n_in, 2 n_out), True = P
    biases = [b[0] for b in sol.biases]
    X, y = data.X_test, data.y_test
    g_p = 1.0 / R_P
    d_g = g_p - g_p / (1.0 + TMR)
    rng = np.random.default_rng(0)

    def layer_weights(target, m):
        shape = (m, *target.shape)
        g_dev_p = g_p * np.exp(SPREAD * rng.standard_normal(shape))
        u = rng.random(shape)
        state_p = (target & (rng.random(shape) >= WRITE_ERROR)) | (u < STUCK / 2)
        state_p &= ~((u >= STUCK / 2) & (u < STUCK))
        g = np.where(state_p, g_dev_p, g_dev_p / (1.0 + TMR))
        return (g[..., 0::2] - g[..., 1::2]) / d_g  # (m, n_in, n_out)

    def go():
        accs = []
        for start in range(0, n, batch):
            m = min(batch, n - start)
            a = X[None]
            for layer, target in enumerate(targets):
                a = a @ layer_weights(target, m) + biases[layer]
                if layer < len(targets) - 1:
                    a = np.tanh(a)
            accs.append((a.argmax(axis=-1) == y).mean(axis=1))
        return np.concatenate(accs)

    return go


def peer_aihwkit(prep, n):
    """Per-instance loop as an aihwkit user writes it: program the tiles, run the test set."""
    import torch
    from aihwkit.inference.converter.conductance import SinglePairConductanceConverter
    from aihwkit.inference.noise.base import BaseNoiseModel
    from aihwkit.nn import AnalogLinear, AnalogSequential
    from aihwkit.simulator.configs import InferenceRPUConfig

    g_p = 1e6 / R_P  # uS
    g_ap = g_p / (1.0 + TMR)

    class MTJBinaryNoise(BaseNoiseModel):
        """Binary MTJ programming: reset to AP, one pulse to P that fails with WRITE_ERROR,
        stuck-P / stuck-AP devices, log-normal device conductance (both states scale)."""

        def __init__(self):
            super().__init__(SinglePairConductanceConverter(g_max=g_p, g_min=g_ap))

        @torch.no_grad()
        def apply_programming_noise_to_conductance(self, g_target):
            target_p = g_target > 0.5 * (g_p + g_ap)
            u = torch.rand_like(g_target)
            stuck_p = u < STUCK / 2
            stuck_ap = (u >= STUCK / 2) & (u < STUCK)
            written = torch.rand_like(g_target) >= WRITE_ERROR
            state_p = ((target_p & written) | stuck_p) & ~stuck_ap
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
    torch.manual_seed(0)

    def go(count):
        acc = np.empty(count)
        with torch.no_grad():
            for i in range(count):
                model.program_analog_weights()
                acc[i] = (model(X).argmax(dim=1) == y).float().mean().item()
        return acc

    go(8)  # warm-up
    return lambda: go(n)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=200_000, help="mcmtj instances")
    parser.add_argument("--numpy-instances", type=int, default=20_000)
    parser.add_argument("--aihwkit-instances", type=int, default=1_000)
    parser.add_argument("--threads", type=int, default=None, help="numba threads for mcmtj")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import numba

    study, prep = job()
    sol, data = prep.solutions, prep.data
    software = predict([w[:1] for w in sol.weights], [b[:1] for b in sol.biases], data.X_test,
                       hidden_activation=sol.hidden_activation,
                       output_activation=sol.output_activation)[0]
    print(f"job: Wine {data.X_train.shape[0]}/{data.X_test.shape[0]} samples, network "
          f"{sol.layer_shapes}, {sum(i * 2 * o for i, o in sol.layer_shapes)} MTJs, software "
          f"test accuracy {np.mean(software == data.y_test):.4f}")
    print(f"numba {numba.__version__}, threads {args.threads or numba.get_num_threads()}, "
          f"numpy {np.__version__}, {time.strftime('%Y-%m-%d')}")

    peers = {
        "mcmtj": (peer_mcmtj(study, prep, args.instances, args.threads), args.instances),
        "numpy": (peer_numpy(study, prep, args.numpy_instances), args.numpy_instances),
        "numpy_lean": (peer_numpy_lean(prep, args.numpy_instances), args.numpy_instances),
    }
    try:
        import aihwkit  # noqa: F401
    except ImportError as err:
        print(f"aihwkit: skipped ({err}); to include it: {AIHWKIT_INSTALL}")
    else:
        import torch

        print(f"aihwkit {aihwkit.__version__}, torch {torch.__version__}, "
              f"torch threads {torch.get_num_threads()}")
        peers["aihwkit"] = (peer_aihwkit(prep, args.aihwkit_instances), args.aihwkit_instances)

    # repeats interleaved across peers, so a change of machine load hits all of them alike
    times = {name: [] for name in peers}
    accs = {}
    for _ in range(args.repeats):
        for name, (go, _) in peers.items():
            t0 = time.perf_counter()
            accs[name] = go()
            times[name].append(time.perf_counter() - t0)
    rates = {name: n / statistics.median(times[name]) for name, (_, n) in peers.items()}

    for name, rate in rates.items():
        m, se = mean_se(accs[name])
        print(f"{name:10s} {accs[name].size:>8d} instances  {rate:.3e} inst/s  "
              f"mean accuracy {m:.4f} +- {se:.4f}")
    line = " ".join(f"{name}_instances_per_s={rate:.4g}" for name, rate in rates.items())
    ratios = " ".join(f"mcmtj_vs_{name}={rates['mcmtj'] / rate:.3g}"
                      for name, rate in rates.items() if name != "mcmtj")
    print(f"{line} {ratios}")


if __name__ == "__main__":
    main()
