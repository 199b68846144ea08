"""Passive-array figures: accuracy vs wire resistance (15 x 15 and 64 x 64 arrays), and
accuracy and write fidelity vs write amplitude (the failed-write / disturb trade-off).

    python figures/passive/make_figures.py [--threads T]

Step 1 simulates the studies in ``studies/passive/`` whose results are missing from
``figures/passive/results/`` (delete a file to recompute it); step 2 draws PNG + PDF
from the stored results only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import mcmtj  # noqa: E402

HERE = Path(__file__).resolve().parent
STUDIES = HERE.parents[1] / "studies" / "passive"
RESULTS = HERE / "results"
RUNS = {"line_resistance": "line_resistance.toml",
        "line_resistance_64": "line_resistance_64.toml",
        "write_amplitude": "write_amplitude.toml"}


def simulate_missing(threads=None):
    RESULTS.mkdir(exist_ok=True)
    for name, toml in RUNS.items():
        out = RESULTS / f"{name}.nc"
        if not out.exists():
            print(f"simulating {toml}")
            ds = mcmtj.simulate(mcmtj.load_study(STUDIES / toml), threads=threads)
            mcmtj.save(ds, out)


def _band(ax, x, da, label, style):
    pooled = ("solution", "instance")
    q = da.quantile([0.25, 0.5, 0.75], dim=pooled)
    ax.plot(x, q.sel(quantile=0.5) * 100, style, color="k", label=label)
    ax.fill_between(x, q.sel(quantile=0.25) * 100, q.sel(quantile=0.75) * 100, color="0.6",
                    alpha=0.35, lw=0)


def draw():
    res = {name: mcmtj.open_results(RESULTS / f"{name}.nc") for name in RUNS}
    fig, ax = plt.subplots(figsize=(5, 3.6), layout="constrained")
    for name, label, style in (("line_resistance", "15 x 15", "o-"),
                               ("line_resistance_64", "64 x 64", "s--")):
        ds = res[name]
        _band(ax, ds.r_wire, ds.accuracy, f"{label} arrays (median, IQR)", style)
    sw = float(res["line_resistance"].software_accuracy.isel(r_wire=0).median()) * 100
    ax.axhline(sw, color="k", lw=0.8, ls=":", label="software (median)")
    ax.set_xlabel("wire resistance per cell segment (ohm)")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(frameon=False, loc="upper right")
    _save(fig, "accuracy_vs_line_resistance")

    ds = res["write_amplitude"]
    fig, ax = plt.subplots(figsize=(5, 3.6), layout="constrained")
    _band(ax, ds.voltage, ds.accuracy, "accuracy (median, IQR)", "o-")
    ax.plot(ds.voltage, ds.write_fidelity.mean(("solution", "instance")) * 100, "^:",
            color="k", label="write fidelity (mean)")
    ax.set_xlabel("write amplitude V_w (V), 10 ns pulse, V/2 scheme")
    ax.set_ylabel("%")
    ax2 = ax.twinx()
    ax2.semilogy(ds.voltage, ds.n_disturbs.mean(("solution", "instance")) + 1e-3, "x--",
                 color="0.4", label="disturbs per instance (+1e-3)")
    ax2.semilogy(ds.voltage, ds.n_write_errors.mean(("solution", "instance")) + 1e-3, "d-.",
                 color="0.4", label="failed writes per instance (+1e-3)")
    ax2.set_ylabel("events per instance")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, frameon=False, loc="center right", fontsize=7)
    _save(fig, "accuracy_vs_write_amplitude")


def _save(fig, name):
    for ext in ("png", "pdf"):
        fig.savefig(HERE / f"{name}.{ext}", dpi=150)
    plt.close(fig)
    print(f"wrote {HERE / name}.png/.pdf")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()
    simulate_missing(args.threads)
    draw()
