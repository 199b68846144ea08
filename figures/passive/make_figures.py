"""Passive-array figures: accuracy vs wire resistance (15 x 15 and 64 x 64 arrays), and
write-error and disturb rates and accuracy vs write amplitude for four device sizes (the
failed-write / disturb trade-off, its window and the amplitude studies/passive/
write_window.py picks from it).

    python figures/passive/make_figures.py [--threads T]

Step 1 simulates the studies in ``studies/passive/`` whose results in
``figures/passive/results/`` are missing or were simulated from another study text or by
other physics (``mcmtj.run.provenance.same_simulation``); step 2 draws PNG + PDF
from the stored results only.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import mcmtj  # noqa: E402
from mcmtj.run.provenance import same_simulation  # noqa: E402

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
        study = mcmtj.load_study(STUDIES / toml)
        stored = None
        if out.exists():
            with mcmtj.open_results(out) as ds:
                stored = dict(ds.attrs)
        # a result of another study text or other physics is simulated again, never drawn
        if not same_simulation(stored, study):
            print(f"simulating {toml}")
            mcmtj.save(mcmtj.simulate(study, threads=threads), out)


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
    amplitude, window, wer, dr, _ = _write_window().write_window(ds)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9, 4.4), layout="constrained")
    styles = ("o-", "s--", "^-.", "d:")
    for d, style in zip(ds.diameter.values, styles, strict=False):
        label = f"{d * 1e9:.0f} nm"
        ax.semilogy(ds.voltage, wer.sel(diameter=d) + 1e-7, style, color="k", ms=3,
                    label=f"write errors, {label}")
        ax.semilogy(ds.voltage, dr.sel(diameter=d) + 1e-7, style, color="0.55", ms=3,
                    label=f"disturbs, {label}")
        q = ds.accuracy.sel(diameter=d).median(("solution", "instance"))
        ax2.plot(ds.voltage, q * 100, style, color="k", ms=3, label=label)
    for a in (ax, ax2):
        if window.size:
            a.axvspan(window.min(), window.max(), color="0.85", lw=0)
        a.axvline(amplitude, color="k", lw=0.8)
        a.set_xlabel("write amplitude V_w (V); 10 ns, V/2, 2 ohm lines")
    ax.axhline(1e-3, color="k", lw=0.6, ls=":")
    ax.set_ylabel("rate per pulse / per half-select (+1e-7)")
    ax.legend(frameon=False, fontsize=6, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    ax2.set_ylabel("test accuracy, median (%)")
    rule = ("window (grey), centre" if window.size else "no window at 1e-3; balance point")
    ax2.legend(frameon=False, fontsize=7, title=f"{rule}: {amplitude:.2f} V", title_fontsize=7,
               ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    _save(fig, "accuracy_vs_write_amplitude")


def _write_window():
    """studies/passive/write_window.py, the rule that picks the amplitude."""
    spec = importlib.util.spec_from_file_location("write_window", STUDIES / "write_window.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
