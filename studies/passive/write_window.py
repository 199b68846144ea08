"""The write amplitude of the passive studies, chosen by a stated rule from stored results.

Rule (design.md "Sanity of the defaults": a usable window has write-error and V/2 disturb
rates both at most ~1e-3, and study operating points sit at the centre of the window):

1. From the results of ``studies/passive/write_amplitude.toml`` (no verify, so every pulse
   is a first pulse), per write amplitude V and device diameter d:

   - write-error rate WER(V, d) = sum(n_write_errors) / sum(n_pulses);
   - disturb rate per half-select DR(V, d) = sum(n_disturbs) /
     (sum(n_pulses) * (rows + cols - 2)) (each V/2 pulse half-selects rows + cols - 2 cells);

   pooled over solutions and instances.
2. The worst rate of an amplitude is the larger of WER and DR over every swept diameter
   (one amplitude must serve the whole size study). The window is the set of swept
   amplitudes whose worst rate is <= 1e-3.
3. The amplitude is the midpoint of the window's lowest and highest amplitude, rounded to
   10 mV. When the window is empty (no amplitude keeps both rates <= 1e-3 for every size)
   it is the swept amplitude with the smallest worst rate: the balance point of failed
   writes and disturbs, which is where the window would open first.

    python studies/passive/write_window.py [results.nc]

prints the rates, the window and the amplitude; the last line is ``amplitude=<V>``. Default results:
``figures/passive/results/write_amplitude.nc`` (written by figures/passive/make_figures.py).
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

import numpy as np

import mcmtj

HERE = Path(__file__).resolve().parent
DEFAULT = HERE.parents[1] / "figures" / "passive" / "results" / "write_amplitude.nc"
LIMIT = 1e-3


def write_window(ds, limit=LIMIT):
    """Window and amplitude of a write-amplitude study.

    Parameters
    ----------
    ds : xarray.Dataset
        Results with a ``voltage`` sweep dim (and optionally ``diameter``), the counters
        ``n_write_errors``, ``n_disturbs``, ``n_pulses`` and the study config in attrs.
    limit : float
        Largest acceptable write-error and disturb rate.

    Returns
    -------
    amplitude : float
        Midpoint of the window, V, rounded to 10 mV.
    window : ndarray
        Amplitudes in the window, V (empty: no amplitude meets ``limit``).
    wer, dr : xarray.DataArray
        Write-error and disturb rates per amplitude (and diameter).
    worst : xarray.DataArray
        The larger of the two rates over every diameter, per amplitude.
    """
    study = mcmtj.Study.from_dict(_config(ds))
    half_selected = study.array.rows + study.array.cols - 2
    pooled = ("solution", "instance")
    pulses = ds.n_pulses.sum(pooled)
    wer = ds.n_write_errors.sum(pooled) / pulses
    dr = ds.n_disturbs.sum(pooled) / (pulses * half_selected)
    worst = np.maximum(wer, dr)
    others = [d for d in worst.dims if d != "voltage"]
    if others:
        worst = worst.max(others)
    window = ds.voltage.values[(worst <= limit).values]
    if window.size:
        amplitude = round(0.5 * (window.min() + window.max()), 2)
    else:
        amplitude = round(float(ds.voltage.values[int(np.argmin(worst.values))]), 2)
    return amplitude, window, wer, dr, worst


def _config(ds):
    data = tomllib.loads(ds.attrs["study"])
    data.pop("sweep", None)
    return data


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", default=str(DEFAULT))
    args = parser.parse_args(argv)
    ds = mcmtj.open_results(args.results)
    amplitude, window, wer, dr, worst = write_window(ds)
    dims = [d for d in wer.dims if d != "voltage"]
    over = f" (max over {', '.join(dims)})" if dims else ""
    for v in ds.voltage.values:
        print(f"V = {v:.3f} V: write-error rate {float(wer.sel(voltage=v).max()):.2e}, "
              f"disturb rate per half-select {float(dr.sel(voltage=v).max()):.2e}{over}")
    if window.size:
        print(f"window (both rates <= {LIMIT:g}): {window.min():.3f} .. {window.max():.3f} V; "
              "amplitude = its centre")
    else:
        print(f"no amplitude keeps both rates <= {LIMIT:g} for every size; amplitude = the "
              f"smallest worst rate, {float(worst.min()):.2e}")
    print(f"amplitude={amplitude:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
