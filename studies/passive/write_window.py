"""The write amplitude of the passive studies, chosen by a stated rule from stored results.

Rule (design.md "Sanity of the defaults": a usable window has write-error and V/2 disturb
rates both at most ~1e-3, and study operating points sit at the centre of the window):

1. From the results of ``studies/passive/write_amplitude.toml`` (no verify, so every pulse
   is a first pulse), per write amplitude V and device diameter d:

   - write-error rate WER(V, d) = sum(n_write_errors) / sum(n_pulses);
   - disturb rate per half-select DR(V, d) = sum(n_disturbs) /
     (sum(n_pulses) * (rows + cols - 2)) (each V/2 pulse half-selects rows + cols - 2 cells);

   pooled over solutions and instances.
2. The window is the set of swept amplitudes with WER <= 1e-3 and DR <= 1e-3 for every
   swept diameter (one amplitude must serve the whole size study).
3. The amplitude is the midpoint of the window's lowest and highest amplitude, rounded to
   10 mV. An empty window is an error (no amplitude is usable for all sizes).

    python studies/passive/write_window.py [results.nc]

prints the window and the amplitude; the last line is ``amplitude=<V>``. Default results:
``figures/passive/results/write_amplitude.nc`` (written by figures/passive/make_figures.py).
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

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
        Amplitudes in the window, V.
    wer, dr : xarray.DataArray
        Write-error and disturb rates per amplitude (and diameter).
    """
    study = mcmtj.Study.from_dict(_config(ds))
    half_selected = study.array.rows + study.array.cols - 2
    pooled = ("solution", "instance")
    pulses = ds.n_pulses.sum(pooled)
    wer = ds.n_write_errors.sum(pooled) / pulses
    dr = ds.n_disturbs.sum(pooled) / (pulses * half_selected)
    ok = (wer <= limit) & (dr <= limit)
    others = [d for d in ok.dims if d != "voltage"]
    if others:
        ok = ok.all(others)
    window = ds.voltage.values[ok.values]
    if window.size == 0:
        raise ValueError(f"no swept amplitude has write-error and disturb rates <= {limit:g} "
                         "for every device size: no usable write window")
    amplitude = round(0.5 * (window.min() + window.max()), 2)
    return amplitude, window, wer, dr


def _config(ds):
    data = tomllib.loads(ds.attrs["study"])
    data.pop("sweep", None)
    return data


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", default=str(DEFAULT))
    args = parser.parse_args(argv)
    ds = mcmtj.open_results(args.results)
    try:
        amplitude, window, wer, dr = write_window(ds)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    dims = [d for d in wer.dims if d != "voltage"]
    for v in ds.voltage.values:
        w = wer.sel(voltage=v)
        d = dr.sel(voltage=v)
        print(f"V = {v:.3f} V: write-error rate max {float(w.max()):.2e}, disturb rate max "
              f"{float(d.max()):.2e}" + (f" (over {', '.join(dims)})" if dims else ""))
    print(f"window: {window.min():.3f} .. {window.max():.3f} V ({window.size} amplitudes)")
    print(f"amplitude={amplitude:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
