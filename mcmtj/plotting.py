"""Figure functions ``f(ds, ax=None) -> Axes``. They read results, never simulate."""

from __future__ import annotations

import numpy as np

from . import schema

__all__ = ["accuracy_vs_write_fidelity"]


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(5.0, 3.8), layout="constrained")
    return ax


def accuracy_vs_write_fidelity(ds, ax=None, gnorm=None):
    """Hexbin density of per-instance accuracy against write fidelity (all points pooled).

    Parameters
    ----------
    ds : xarray.Dataset
        Results with ``accuracy`` and ``write_fidelity``.
    ax : matplotlib Axes, optional
    gnorm : float, optional
        Gain to show when the results have a ``gnorm`` dim (default: the first).

    Returns
    -------
    matplotlib Axes
    """
    ax = _axes(ax)
    acc = ds[schema.ACCURACY]
    if schema.GNORM in acc.dims:
        acc = acc.sel({schema.GNORM: gnorm}) if gnorm is not None else acc.isel({schema.GNORM: 0})
    wf, acc = (a.values.ravel() for a in (ds[schema.WRITE_FIDELITY].broadcast_like(acc), acc))
    spread = np.ptp(wf) > 0 and np.ptp(acc) > 0
    if spread and wf.size > 50:
        hb = ax.hexbin(wf * 100, acc * 100, gridsize=30, mincnt=1, bins="log", cmap="Greys")
        ax.figure.colorbar(hb, ax=ax, label="instances")
    else:
        ax.plot(wf * 100, acc * 100, "k.", alpha=0.5)
    sw = ds[schema.SOFTWARE_ACCURACY]
    if schema.GNORM in sw.dims:
        sw = sw.isel({schema.GNORM: 0}) if gnorm is None else sw.sel({schema.GNORM: gnorm})
    ax.axhline(float(sw.median()) * 100, color="k", ls="--", lw=1, label="software (median)")
    ax.set_xlabel("write fidelity (%)")
    ax.set_ylabel("accuracy (%)")
    ax.legend(loc="lower right", frameon=False)
    return ax
