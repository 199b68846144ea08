"""Statistics-aware training of 32 digits solutions (64 -> 32 -> 10): time, and cost per epoch.

Issue 14's target: statistics-aware training (a fresh die drawn from the borders2024 die
model, ``studies/borders2024/dies.toml``, at every mini-batch step) of 32 solutions on
scikit-learn's digits in under 5 minutes on 2 cores, with the borders2024 paper's full
settings (:data:`mcmtj.papers.borders2024.FULL`: epochs, mini-batch, evaluation maps).

1. the full training is timed once (it takes minutes; ``--repeats`` for more);
2. the per-epoch cost relative to defect-unaware training: short runs of both
   (``--short-epochs`` epochs, same solutions and settings) interleaved in ``--rounds``
   rounds, so a busy machine slows both alike; the ratio of the medians.

Last line, key=value pairs::

    statistics_seconds=<median> solutions=32 epochs=<E> per_epoch_ratio=<stat/unaware>

    python benchmarks/bench_training.py [--rounds 3] [--short-epochs 5] [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from mcmtj.networks.trainer import BinaryMLP
from mcmtj.papers.borders2024 import (
    FULL,
    die_model,
    die_sampler,
    load_die_study,
    load_digits_split,
)

SOLUTIONS = 32


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--short-epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=FULL["epochs"])
    args = parser.parse_args(argv)

    data = load_digits_split()
    model = die_model(load_die_study())
    shapes = [(data.n_features, 2 * FULL["hidden"]), (FULL["hidden"], 2 * data.n_classes)]
    common = dict(hidden=FULL["hidden"], n_solutions=SOLUTIONS, batch_size=FULL["batch_size"],
                  random_state=0)
    stat = dict(training="statistics", map_sampler=die_sampler(model, shapes),
                n_eval_maps=FULL["eval_maps"])

    def fit(epochs, **extra):
        t0 = time.perf_counter()
        BinaryMLP(epochs=epochs, **common, **extra).fit(data.X_train, data.y_train)
        return time.perf_counter() - t0

    print(f"load average {os.getloadavg()[0]:.2f} (machine shared: timings are upper bounds)")
    unaware, aware = [], []
    for r in range(args.rounds):
        unaware.append(fit(args.short_epochs) / args.short_epochs)
        aware.append(fit(args.short_epochs, **stat) / args.short_epochs)
        print(f"round {r}: per epoch unaware {unaware[-1]:.3f} s, statistics {aware[-1]:.3f} s")
    ratio = statistics.median(aware) / statistics.median(unaware)
    full = []
    for r in range(args.repeats):
        full.append(fit(args.epochs, **stat))
        print(f"full statistics-aware training {r}: {full[-1]:.1f} s "
              f"({SOLUTIONS} solutions, {args.epochs} epochs)")
    print(f"load average {os.getloadavg()[0]:.2f}")
    print(f"statistics_seconds={statistics.median(full):.1f} solutions={SOLUTIONS} "
          f"epochs={args.epochs} per_epoch_ratio={ratio:.2f}")


if __name__ == "__main__":
    main()
