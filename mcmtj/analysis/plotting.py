"""Figure functions ``f(ds, ax=None) -> Axes``. They read results, never simulate.

Every function draws on the given Axes (a new figure when ``ax`` is None) and
returns it, so a paper figure is a grid of calls (see :mod:`mcmtj.papers.goodwill2022`). All
figures are readable in greyscale: series differ by marker, line style and hatch,
not by hue alone. Accuracy and write fidelity are discrete (multiples of
1/n_samples and 1/n_devices), so histograms put one bin on each possible value.

Functions that compare solution sets take either one Dataset or a mapping
``{label: Dataset}``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mcmtj.analysis._np import wilson_interval
from mcmtj.analysis.metrics import tune, yield_fraction
from mcmtj.config import Study
from mcmtj.run import schema

__all__ = [
    "accuracy_vs_write_fidelity",
    "accuracy_vs_gnorm",
    "accuracy_vs_size",
    "metric_ranking",
    "metric_differences",
    "size_effect",
    "resistance_histograms",
    "software_accuracy_distribution",
    "write_fidelity_distribution",
    "yield_vs_size",
    # the ``mcmtj run --plot`` overview
    "accuracy_by_point",
    "run_overview",
    "write_fidelity_by_point",
    "yield_vs_write_fidelity",
]

_POOLED = (schema.SOLUTION, schema.INSTANCE)
#: (marker, line style, grey) per series, in order: distinct without colour.
_STYLES = (
    ("o", "-", "0.0"),
    ("s", "--", "0.35"),
    ("^", ":", "0.55"),
    ("D", "-.", "0.2"),
    ("v", (0, (5, 1, 1, 1)), "0.45"),
)
_HATCHES = ("", "///", "...", "xx", "\\\\")
_METRIC_LABELS = {
    schema.WRITE_FIDELITY: "write fidelity",
    schema.WEIGHT_FIDELITY: "weight fidelity",
    schema.SENSITIVITY_FIDELITY: "sensitivity-weighted fidelity",
    schema.CURRENT_RMSE: "column-current RMSE",
    schema.AGREEMENT: "agreement with software",
    schema.N_WRITE_ERRORS: "write errors",
    schema.N_DISTURBS: "disturbs",
    schema.N_STUCK: "stuck devices",
    schema.N_SHORT: "shorted devices",
    schema.N_OPEN: "open devices",
    schema.N_PULSES: "write pulses",
    "calibration_predictor": "pre-deployment predictor",
}


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(5.0, 3.8), layout="constrained")
    return ax


def _style(i):
    return _STYLES[i % len(_STYLES)]


def _as_mapping(data) -> dict:
    """``{label: Dataset}`` from one Dataset (label: its ``solutions`` attr) or a mapping."""
    if isinstance(data, Mapping) and not hasattr(data, "data_vars"):  # a Dataset is a Mapping
        return dict(data)
    return {str(data.attrs.get("solutions", "results")): data}


def _size_dim(ds) -> str | None:
    """The one sweep dim of a result (``diameter`` when swept), or None."""
    dims = [d for d in ds[schema.ACCURACY].dims if d not in (*_POOLED, schema.GNORM)]
    if "diameter" in dims:
        return "diameter"
    return dims[0] if len(dims) == 1 else None


def _size_label(dim, value) -> str:
    return f"{value * 1e9:g} nm" if dim == "diameter" else f"{dim} = {value:g}"


def _at_gnorm(da, gnorm=None):
    """``da`` at one gain: ``gnorm`` if given, else 1.0 when on the grid, else the first."""
    if schema.GNORM not in da.dims:
        return da
    grid = np.asarray(da[schema.GNORM].values, dtype=float)
    if gnorm is None:
        gnorm = 1.0 if np.any(np.isclose(grid, 1.0)) else grid[0]
    # the grid need not be sorted (the first gain is the one sensitivities use)
    return da.isel({schema.GNORM: int(np.argmin(np.abs(grid - gnorm)))})


def _tuned_accuracy(ds, per="instance"):
    return tune(ds, per=per)[schema.ACCURACY]


def _lattice_edges(values, max_bins=400):
    """Bin edges with one bin centred on each multiple of the data's smallest step.

    Accuracy is k / n_samples and write fidelity k / n_devices; bins of any other
    width alias (empty or doubled bins). The step is the smallest gap between
    distinct values; data that are not on such a lattice get 30 uniform bins.
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return np.array([0.0, 1.0])
    u = np.unique(np.round(v, 9))
    if u.size == 1:
        return np.array([u[0] - 0.5e-2, u[0] + 0.5e-2])
    step = np.min(np.diff(u))
    k = (u - u[0]) / step
    span = (u[-1] - u[0]) / step
    if np.max(np.abs(k - np.round(k))) > 1e-3 or span > max_bins:
        return np.linspace(u[0], u[-1], 31)
    return u[0] + step * (np.arange(int(round(span)) + 2) - 0.5)


def accuracy_vs_write_fidelity(ds, ax=None, gnorm=None, tuned=False):
    """2-D histogram of per-instance accuracy against write fidelity (all points pooled).

    One bin per possible value of each (accuracy in steps of 1/n_samples, write
    fidelity in steps of 1/n_devices), grey levels on a log scale; the median
    software accuracy is drawn as a dashed line.

    Parameters
    ----------
    ds : xarray.Dataset
        Results with ``accuracy`` and ``write_fidelity`` (any sweep dims, pooled).
    ax : matplotlib Axes, optional
    gnorm : float, optional
        Gain shown when the results have a ``gnorm`` dim (default: 1.0 if on the grid,
        else the first). Ignored with ``tuned=True``.
    tuned : bool, default False
        Show the accuracy after tuning the gain per instance on the training split
        (:func:`mcmtj.analysis.tune`; needs ``accuracy_train`` and a ``gnorm`` dim).

    Returns
    -------
    matplotlib Axes
    """
    ax = _axes(ax)
    if tuned:
        acc = _tuned_accuracy(ds)
    else:
        acc = _at_gnorm(ds[schema.ACCURACY], gnorm)
    wf, acc = (a.values.ravel() for a in (ds[schema.WRITE_FIDELITY].broadcast_like(acc), acc))
    ok = np.isfinite(wf) & np.isfinite(acc)
    wf, acc = wf[ok] * 100, acc[ok] * 100
    if wf.size > 50:
        from matplotlib.colors import LogNorm

        counts, xe, ye = np.histogram2d(wf, acc, bins=[_lattice_edges(wf), _lattice_edges(acc)])
        counts = np.where(counts > 0, counts, np.nan)
        mesh = ax.pcolormesh(xe, ye, counts.T, cmap="Greys", norm=LogNorm(vmin=1), rasterized=True)
        ax.figure.colorbar(mesh, ax=ax, label="instances")
    else:
        ax.plot(wf, acc, "k.", alpha=0.5)
    sw = _at_gnorm(ds[schema.SOFTWARE_ACCURACY], None if tuned else gnorm)
    ax.axhline(
        float(sw.median()) * 100,
        color="k",
        ls="--",
        lw=1,
        label="software, median (Gnorm 1)" if tuned else "software (median)",
    )
    ax.set_xlabel("write fidelity (%)")
    ax.set_ylabel("tuned accuracy (%)" if tuned else "accuracy (%)")
    ax.legend(loc="lower left", frameon=False, fontsize="small")
    return ax


def resistance_histograms(devices, ax=None, bins=80):
    """Histograms of sampled R_P and R_AP, one row per device size (log resistance axis).

    Parameters
    ----------
    devices : xarray.Dataset
        ``r_parallel`` and ``r_antiparallel`` (ohm) with dims (size dim, ``device``),
        e.g. from :func:`mcmtj.papers.goodwill2022.device_samples`; the size dim is ``diameter``
        (m) when present, else the first dim.
    ax : matplotlib Axes, optional
    bins : int, default 80
        Log-spaced bins over the range of all samples.

    Returns
    -------
    matplotlib Axes
        One row per size (largest devices at the bottom): R_P filled grey, R_AP hatched,
        each row scaled to its own tallest bin; the median of each is marked and labelled.
    """
    ax = _axes(ax)
    rp, rap = devices["r_parallel"], devices["r_antiparallel"]
    dim = "diameter" if "diameter" in rp.dims else rp.dims[0]
    lo = float(min(rp.min(), rap.min()))
    hi = float(max(rp.max(), rap.max()))
    edges = np.geomspace(lo, hi, bins + 1)
    values = rp[dim].values
    order = np.argsort(values)[::-1]
    labels = []
    for row, k in enumerate(order):
        value = values[k]
        counts = {}
        for da, name in ((rp, "P"), (rap, "AP")):
            r = da.isel({dim: k}).values
            counts[name] = (
                np.histogram(r[np.isfinite(r)], bins=edges)[0],
                np.median(r[np.isfinite(r)]),
            )
        top = max(c.max() for c, _ in counts.values()) or 1
        for name, (c, med) in counts.items():
            h = row + 0.85 * c / top
            if name == "P":
                ax.stairs(h, edges, baseline=row, fill=True, color="0.55", lw=0)
            else:
                ax.stairs(h, edges, baseline=row, fill=False, hatch="////", color="0.1", lw=0.8)
            ax.annotate(
                f"{name}: {med / 1e3:.2g} kohm",
                xy=(med, row + 0.87),
                ha="center",
                va="bottom",
                fontsize="x-small",
            )
        labels.append(_size_label(dim, value))
    ax.set_xscale("log")
    ax.set_yticks(np.arange(len(order)) + 0.4, labels)
    ax.set_ylim(-0.05, len(order) + 0.05)
    ax.set_xlabel(f"device resistance at {float(devices.attrs.get('voltage', 0.0)):g} V bias (ohm)")
    ax.set_ylabel("device diameter" if dim == "diameter" else dim)
    from matplotlib.patches import Patch

    ax.legend(
        handles=[
            Patch(facecolor="0.55", label="parallel (R_P)"),
            Patch(facecolor="none", edgecolor="0.1", hatch="////", label="antiparallel (R_AP)"),
        ],
        loc="upper left",
        frameon=False,
        fontsize="small",
        title_fontsize="x-small",
        title="row height: devices per bin,\nscaled to the row's peak",
    )
    return ax


def write_fidelity_distribution(ds, ax=None):
    """Distribution of per-instance write fidelity, one step histogram per device size.

    Parameters
    ----------
    ds : xarray.Dataset
        Results with ``write_fidelity``; its one sweep dim (``diameter``) gives the
        series, solutions and instances are pooled.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
        Fraction of instances (%) per possible fidelity value (one bin per device).
    """
    ax = _axes(ax)
    wf = ds[schema.WRITE_FIDELITY]
    dim = _size_dim(ds)
    edges = _lattice_edges(wf.values.ravel()) * 100
    groups = [(None, wf)] if dim is None else [(v, wf.sel({dim: v})) for v in wf[dim].values]
    for i, (value, da) in enumerate(groups):
        marker, ls, grey = _style(i)
        v = da.values.ravel()
        v = v[np.isfinite(v)] * 100
        weights = np.full(v.size, 100.0 / max(v.size, 1))
        label = "all" if value is None else _size_label(dim, value)
        ax.hist(
            v,
            bins=edges,
            weights=weights,
            histtype="step",
            color=grey,
            ls=ls,
            lw=1.4,
            label=f"{label} (mean {np.mean(v):.1f} %)",
        )
    ax.set_xlabel("write fidelity (%)")
    ax.set_ylabel("instances (%)")
    ax.legend(frameon=False, fontsize="small", loc="upper left")
    return ax


def _median_iqr(da, dims):
    q = da.quantile([0.25, 0.5, 0.75], dim=dims)
    return (q.sel(quantile=0.5).values, q.sel(quantile=0.25).values, q.sel(quantile=0.75).values)


def accuracy_vs_gnorm(ds, ax=None):
    """Accuracy against the read-out gain Gnorm, before and after tuning.

    Before: the test accuracy at each fixed Gnorm (median and interquartile band over
    every instance of every solution and size). After: the test accuracy at the gain
    each instance chose on its training split (:func:`mcmtj.analysis.tune`), whose
    median and interquartile range do not depend on Gnorm and are drawn across the
    grid. The median software accuracy at each Gnorm is dashed.

    Parameters
    ----------
    ds : xarray.Dataset
        Results with dim ``gnorm``, ``accuracy``, ``accuracy_train``,
        ``software_accuracy``.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    ax = _axes(ax)
    ds = ds.sortby(schema.GNORM)
    acc = ds[schema.ACCURACY]
    g = acc[schema.GNORM].values
    pooled = [d for d in acc.dims if d != schema.GNORM]
    med, q1, q3 = (x * 100 for x in _median_iqr(acc, pooled))
    ax.fill_between(g, q1, q3, color="0.8", lw=0, label="fixed Gnorm: interquartile")
    ax.plot(g, med, "ko-", label="fixed Gnorm: median")
    tuned = _tuned_accuracy(ds).values.ravel()
    tuned = tuned[np.isfinite(tuned)] * 100
    t1, tm, t3 = np.percentile(tuned, [25, 50, 75])
    ax.fill_between(
        [g[0], g[-1]],
        t1,
        t3,
        facecolor="none",
        edgecolor="0.3",
        hatch="///",
        lw=0.5,
        label="tuned per instance: interquartile",
    )
    ax.hlines(
        tm, g[0], g[-1], colors="k", linestyles="-.", lw=1.5, label="tuned per instance: median"
    )
    sw = ds[schema.SOFTWARE_ACCURACY]
    sw_med = sw.median([d for d in sw.dims if d != schema.GNORM]).values * 100
    ax.plot(g, sw_med, "k--", marker="s", mfc="white", lw=1, label="software: median")
    ax.set_xlabel("Gnorm (units of nominal G_P - G_AP)")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(frameon=False, fontsize="x-small", loc="lower center")
    return ax


def _per_size(ds, per="instance", target=None):
    """Before (Gnorm 1) and tuned accuracy of one result set, with its size dim."""
    dim = _size_dim(ds)
    before = _at_gnorm(ds[schema.ACCURACY])
    after = _tuned_accuracy(ds, per=per) if schema.GNORM in ds[schema.ACCURACY].dims else before
    return dim, before, after


def accuracy_vs_size(data, ax=None, per="instance"):
    """Median test accuracy (interquartile bars) against device size, before and after tuning.

    Parameters
    ----------
    data : Dataset or mapping of label to Dataset
        Results with a ``diameter`` sweep dim (m), ``accuracy``, ``accuracy_train`` and
        a ``gnorm`` dim. Before tuning: Gnorm = 1 (or the first gain); after:
        :func:`mcmtj.analysis.tune` with ``per``.
    ax : matplotlib Axes, optional
    per : {"instance", "solution"}
        Tuning granularity.

    Returns
    -------
    matplotlib Axes
        Open markers before tuning, filled after; one marker shape per solution set.
    """
    ax = _axes(ax)
    dim = _size_series(ax, data, per, _median_iqr)
    ax.set_xlabel("device diameter (nm)" if dim == "diameter" else dim)
    ax.set_ylabel("test accuracy (%)")
    ax.legend(frameon=False, fontsize="x-small", loc="lower right")
    return ax


def _size_series(ax, data, per, stat):
    """Draw, per data set, a Gnorm-1 and a tuned series against device size; return the
    size dimension. ``stat(da, pooled_dims) -> (value, low, high)`` (fractions) gives each
    point and its error bar; the series are shifted sideways so that sets do not overlap."""
    sets = _as_mapping(data)
    n = len(sets)
    dim = None
    for i, (label, ds) in enumerate(sets.items()):
        marker, ls, grey = _style(i)
        dim, before, after = _per_size(ds, per)
        x = ds[dim].values * (1e9 if dim == "diameter" else 1.0)
        width = np.min(np.diff(x)) if x.size > 1 else 1.0
        for da, filled, shift, lstyle in ((before, False, -0.12, ":"), (after, True, 0.12, ls)):
            pooled = [d for d in da.dims if d != dim]
            v, lo, hi = (np.asarray(a) * 100 for a in stat(da, pooled))
            xs = x + width * (shift + 0.06 * (i - (n - 1) / 2))
            ax.errorbar(xs, v, yerr=[v - lo, hi - v], marker=marker, ls=lstyle, color=grey,
                        mfc=grey if filled else "white", mec=grey, capsize=2,
                        label=f"{label}, " + (f"tuned per {per} on the training split"
                                              if filled else "Gnorm 1"))
    return dim


def yield_vs_size(data, ax=None, target=0.9, per="instance", confidence=0.95):
    """Yield P(accuracy >= target) against device size with Wilson intervals.

    Parameters
    ----------
    data : Dataset or mapping of label to Dataset
        As for :func:`accuracy_vs_size`.
    ax : matplotlib Axes, optional
    target : float, default 0.9
        Accuracy an instance must reach.
    per : {"instance", "solution"}
        Tuning granularity of the "tuned" series.
    confidence : float, default 0.95
        Level of the Wilson interval (error bars).

    Returns
    -------
    matplotlib Axes
        Open markers: Gnorm = 1; filled: tuned on the training split.
    """
    ax = _axes(ax)

    def wilson(da, pooled):
        y = yield_fraction(da, target, dims=pooled, confidence=confidence)
        return tuple(y[k].values for k in ("yield", "yield_low", "yield_high"))

    dim = _size_series(ax, data, per, wilson)
    ax.set_xlabel("device diameter (nm)" if dim == "diameter" else dim)
    ax.set_ylabel(f"yield: instances with accuracy >= {target * 100:g} % (%)")
    ax.set_ylim(-2, 102)
    ax.legend(frameon=False, fontsize="x-small", loc="best")
    return ax


def metric_ranking(corr, ax=None, set_dim="set"):
    """Spearman rho of each metric with accuracy, with bootstrap intervals, best on top.

    Parameters
    ----------
    corr : xarray.Dataset
        Output of :func:`mcmtj.analysis.metric_correlations` (``rho``, ``rho_low``,
        ``rho_high`` on dim ``metric``), optionally stacked along ``set_dim`` (one
        marker per entry). Metrics are ordered by the largest ``|rho|`` over the sets.
    ax : matplotlib Axes, optional
    set_dim : str, default "set"
        Dim holding the solution sets, if present.

    Returns
    -------
    matplotlib Axes
        Horizontal axis: rho (sign kept: a fidelity that predicts accuracy has
        rho > 0, an error count rho < 0).
    """
    ax = _axes(ax)
    has_sets = set_dim in corr["rho"].dims
    rho = corr["rho"] if has_sets else corr["rho"].expand_dims({set_dim: ["results"]})
    low = corr["rho_low"] if has_sets else corr["rho_low"].expand_dims({set_dim: ["results"]})
    high = corr["rho_high"] if has_sets else corr["rho_high"].expand_dims({set_dim: ["results"]})
    extra = [d for d in rho.dims if d not in (set_dim, "metric")]
    if extra:
        raise ValueError(
            f"metric_ranking draws one value per metric and set; "
            f"select or pool the dims {extra} first"
        )
    metrics = [str(m) for m in rho["metric"].values]
    strength = np.nan_to_num(np.abs(rho.transpose("metric", set_dim).values), nan=-1).max(axis=1)
    order = np.argsort(-strength, kind="stable")
    sets = [str(s) for s in rho[set_dim].values]
    n = len(sets)
    for i, name in enumerate(sets):
        marker, _, grey = _style(i)
        r = rho.sel({set_dim: name}).values[order]
        lo = low.sel({set_dim: name}).values[order]
        hi = high.sel({set_dim: name}).values[order]
        y = np.arange(len(metrics)) + 0.22 * (i - (n - 1) / 2)
        ax.errorbar(
            r,
            y,
            xerr=[r - lo, hi - r],
            fmt=marker,
            color=grey,
            mec="k",
            ecolor=grey,
            capsize=2,
            label=name if has_sets else None,
        )
    ax.axvline(0, color="0.5", lw=0.8)
    ax.set_yticks(
        np.arange(len(metrics)), [_METRIC_LABELS.get(metrics[k], metrics[k]) for k in order]
    )
    ax.invert_yaxis()
    ax.set_xlabel(
        f"Spearman rho with {corr.attrs.get('target', 'accuracy')} "
        f"({float(corr.attrs.get('confidence', 0.95)) * 100:g} % bootstrap interval)"
    )
    if has_sets:
        ax.legend(frameon=False, fontsize="x-small", loc="lower right")
    return ax


def metric_differences(cmp, ax=None, set_dim="set", reference="write_fidelity"):
    """Each metric's paired difference in (oriented) rho from a reference metric.

    Parameters
    ----------
    cmp : xarray.Dataset
        ``diff``, ``diff_low``, ``diff_high`` and ``diagnostic`` on dim ``metric``
        (from :func:`mcmtj.papers.goodwill2022.metric_comparison`), stacked along
        ``set_dim``; NaN where
        a set lacks a metric. Diagnostics are not drawn.
    ax : matplotlib Axes, optional
    set_dim : str, default "set"
    reference : str
        The metric the differences are taken from (drawn as the zero line).

    Returns
    -------
    matplotlib Axes
        A marker right of the zero line whose bar does not cross it: better than the
        reference.
    """
    ax = _axes(ax)
    keep = [str(m) for m in cmp["metric"].values
            if m != reference and not bool(cmp["diagnostic"].sel(metric=m).fillna(0).any())]
    sets = [str(v) for v in cmp[set_dim].values]
    n = len(sets)
    for i, name in enumerate(sets):
        marker, _, grey = _style(i)
        row = cmp.sel({set_dim: name}).sel(metric=keep)
        d, lo, hi = (row[k].values for k in ("diff", "diff_low", "diff_high"))
        y = np.arange(len(keep)) + 0.22 * (i - (n - 1) / 2)
        ax.errorbar(d, y, xerr=[d - lo, hi - d], fmt=marker, color=grey, mec="k",
                    ecolor=grey, capsize=2, label=name)
    ax.axvline(0, color="0.3", lw=1.0, ls="--")
    ax.set_yticks(np.arange(len(keep)), [_METRIC_LABELS.get(m, m) for m in keep])
    ax.invert_yaxis()
    ax.set_xlabel(f"rho(metric) - rho({_METRIC_LABELS.get(reference, reference)}), oriented "
                  "(95 % paired cluster bootstrap)")
    ax.legend(frameon=False, fontsize="x-small", loc="best")
    return ax


def size_effect(per_set, axes):
    """Three panels against device size: the read-back weights' gain with the gain chosen
    per instance, the read-back weights' relative scatter, and the yield at Gnorm 1 and
    tuned.

    Parameters
    ----------
    per_set : mapping of label to xarray.Dataset
        Per size: ``effective_gain``, ``gain_q1``, ``gain_q3``, ``chosen_gnorm``,
        optionally ``nominal_wire_gain``,
        ``weight_spread``, ``yield_before``/``yield_tuned`` with ``_low``/``_high``
        (from :func:`mcmtj.papers.goodwill2022.size_effect`), one size dim.
    axes : sequence of three matplotlib Axes

    Returns
    -------
    sequence of Axes
    """
    for i, (label, s) in enumerate(per_set.items()):
        marker, ls, grey = _style(i)
        dim = next(iter(s["effective_gain"].dims))
        x = s[dim].values * (1e9 if dim == "diameter" else 1.0)
        g = s["effective_gain"].values
        axes[0].errorbar(x, g, yerr=[g - s["gain_q1"].values, s["gain_q3"].values - g],
                         marker=marker, ls=ls, color=grey, mfc=grey, capsize=2,
                         label=f"{label}: read-back gain (median, IQR)")
        axes[0].plot(x, s["chosen_gnorm"].values, marker=marker, ls=":", color=grey,
                     mfc="white", label=f"{label}: Gnorm chosen per instance (median)")
        if "nominal_wire_gain" in s and i == 0:
            axes[0].plot(x, s["nominal_wire_gain"].values, marker="x", ls="--", color="0.6",
                         label="nominal arrays, wires only")
        axes[1].plot(x, 100 * s["weight_spread"].values, marker=marker, ls=ls, color=grey,
                     label=label)
        for key, filled, lstyle in (("yield_before", False, ":"), ("yield_tuned", True, ls)):
            v = 100 * s[key].values
            lo, hi = 100 * s[f"{key}_low"].values, 100 * s[f"{key}_high"].values
            axes[2].errorbar(x, v, yerr=[v - lo, hi - v], marker=marker, ls=lstyle,
                             color=grey, mfc=grey if filled else "white", mec=grey, capsize=2,
                             label=f"{label}, "
                                   + ("tuned per instance on the training split" if filled
                                      else "Gnorm 1"))
    axes[0].set_ylabel("gain (1 = nominal G_P - G_AP)")
    axes[1].set_ylabel("scatter of read-back weights (% of gain)")
    axes[2].set_ylabel("yield at 90 %, test split (%)")
    for ax in axes:
        ax.set_xlabel("device diameter (nm)")
        ax.legend(frameon=False, fontsize="xx-small", loc="best")
    return axes


def software_accuracy_distribution(data, ax=None, split="test", gnorm=None):
    """Distribution of the ideal (software) accuracy of each solution set.

    Parameters
    ----------
    data : Dataset or mapping of label to Dataset
        Results with ``software_accuracy`` (and ``software_accuracy_train`` for
        ``split="train"``), per solution; sweep dims are ignored (the software
        network does not depend on the devices), the first point is used.
    ax : matplotlib Axes, optional
    split : {"test", "train"}
        Evaluation split (``software_accuracy``) or training split.
    gnorm : float, optional
        Gain (default 1.0 if on the grid, else the first).

    Returns
    -------
    matplotlib Axes
        Grouped bars, one per possible accuracy value, one hatch per set.
    """
    ax = _axes(ax)
    var = schema.SOFTWARE_ACCURACY if split == "test" else schema.SOFTWARE_ACCURACY_TRAIN
    sets = _as_mapping(data)
    values = {}
    for label, ds in sets.items():
        sw = _at_gnorm(ds[var], gnorm)
        sw = sw.isel({d: 0 for d in sw.dims if d != schema.SOLUTION})
        values[label] = sw.values.ravel() * 100
    edges = _lattice_edges(np.concatenate(list(values.values())))
    centres = 0.5 * (edges[:-1] + edges[1:])
    step = edges[1] - edges[0]
    n = len(values)
    width = 0.9 * step / n
    for i, (label, v) in enumerate(values.items()):
        counts, _ = np.histogram(v, bins=edges)
        frac = 100 * counts / max(v.size, 1)
        ax.bar(
            centres + width * (i - (n - 1) / 2),
            frac,
            width=width,
            color=_style(i)[2],
            edgecolor="k",
            hatch=_HATCHES[i % len(_HATCHES)],
            lw=0.5,
            label=f"{label} (n = {v.size}, median {np.median(v):.1f} %)",
        )
    ax.set_xlabel(f"software accuracy, {'test' if split == 'test' else 'training'} split (%)")
    ax.set_ylabel("solutions (%)")
    ax.legend(frameon=False, fontsize="x-small", loc="upper left")
    return ax


# --- the overview that ``mcmtj run --plot`` draws: one colour per sweep point --------------


def _sweep_points(ds, var):
    """``[(label, DataArray over solution x instance), ...]`` per sweep point of ``var``
    (all sweep dims crossed, C order), at gain 1.0 when there is a ``gnorm`` dim."""
    import itertools

    da = _at_gnorm(ds[var])
    dims = [d for d in da.dims if d not in _POOLED]
    units = _sweep_units(ds)
    points = []
    for combo in itertools.product(*(range(da.sizes[d]) for d in dims)):
        sel = dict(zip(dims, combo, strict=True))
        label = ", ".join(_value_label(d, da[d].values[i], units.get(d, ""))
                          for d, i in sel.items())
        points.append((label or "all instances", da.isel(sel)))
    return points


def _sweep_units(ds) -> dict[str, str]:
    """Sweep dim -> unit of its study field (from the study recorded in the attrs)."""
    import dataclasses
    import tomllib

    try:
        sweep = tomllib.loads(ds.attrs.get("study", "")).get("sweep", {})
    except tomllib.TOMLDecodeError:
        return {}
    keys = list(_flat_keys(sweep))
    base = Study()
    units = {}
    for key in keys:
        section, _, name = key.partition(".")
        fields = {}
        if dataclasses.is_dataclass(getattr(base, section, None)):
            fields = {f.name: f for f in dataclasses.fields(getattr(base, section))}
        unit = fields[name].metadata.get("unit", "") if name in fields else ""
        # dim names as Study.sweep_dims: the field name, the dotted key when not unique
        dim = name if sum(k.split(".")[-1] == name for k in keys) == 1 else key
        units[dim] = unit
    return units


def _flat_keys(table, prefix=""):
    for k, v in table.items():
        if isinstance(v, dict):
            yield from _flat_keys(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}"


def _value_label(dim, value, unit) -> str:
    """``40 nm``, ``pulse_width 10 ns``, ``stuck_p 0.01``: a sweep value in readable units."""
    scaled = {"m": (1e9, "nm"), "s": (1e9, "ns")}
    if unit in scaled:
        factor, unit = scaled[unit]
        value = value * factor
    text = f"{value:g} {unit}".strip() if unit not in ("", "1") else f"{value:g}"
    return text if dim == "diameter" else f"{dim} {text}"


def _point_styles(n):
    """(colour, line style, marker) per sweep point: an ordered colour map for order,
    line styles and markers so that greyscale prints still tell them apart."""
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    colours = [cmap(x) for x in np.linspace(0.0, 0.85, n)] if n > 1 else ["0.1"]
    return [(colours[i], _style(i)[1], _style(i)[0]) for i in range(n)]


def _room_for_legend(ax, entries):
    """Raise the y limit so that an upper-left legend of ``entries`` lines clears the data."""
    ax.set_ylim(0, ax.get_ylim()[1] * (1.05 + 0.09 * entries))


def write_fidelity_by_point(ds, ax=None):
    """Write fidelity distribution, one step histogram per sweep point.

    Parameters
    ----------
    ds : xarray.Dataset
        Results with ``write_fidelity``; every sweep point (all sweep dims crossed) is
        one series, its solutions and instances pooled.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
        Instances (% of the point's) per possible write fidelity k / n_devices (bins
        centred on those values, edges at half-steps, so none is empty by aliasing).
    """
    ax = _axes(ax)
    points = _sweep_points(ds, schema.WRITE_FIDELITY)
    edges = _lattice_edges(ds[schema.WRITE_FIDELITY].values.ravel()) * 100
    for (label, da), (colour, ls, _) in zip(points, _point_styles(len(points)), strict=True):
        v = da.values.ravel()
        v = v[np.isfinite(v)] * 100
        ax.hist(v, bins=edges, weights=np.full(v.size, 100.0 / max(v.size, 1)),
                histtype="step", color=colour, ls=ls, lw=1.4,
                label=f"{label} (mean {np.mean(v):.2f} %)")
    _room_for_legend(ax, len(points))
    ax.set_xlabel("write fidelity: devices in their target state (%)")
    ax.set_ylabel("instances (% of the sweep point's)")
    ax.set_title("write fidelity", fontsize="medium")
    ax.legend(frameon=False, fontsize="small", loc="upper left")
    return ax


def accuracy_by_point(ds, ax=None):
    """Accuracy distribution, one step histogram per sweep point (bins on k / n_samples).

    Parameters
    ----------
    ds : xarray.Dataset
        Results with ``accuracy`` (at gain 1.0, or the first, when there is a ``gnorm``
        dim) and ``software_accuracy``.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
        Instances (% of the point's) per accuracy value; the median software accuracy
        (no device effects) as a dashed line.
    """
    ax = _axes(ax)
    points = _sweep_points(ds, schema.ACCURACY)
    edges = _lattice_edges(_at_gnorm(ds[schema.ACCURACY]).values.ravel()) * 100
    for (label, da), (colour, ls, _) in zip(points, _point_styles(len(points)), strict=True):
        v = da.values.ravel()
        v = v[np.isfinite(v)] * 100
        ax.hist(v, bins=edges, weights=np.full(v.size, 100.0 / max(v.size, 1)),
                histtype="step", color=colour, ls=ls, lw=1.4,
                label=f"{label} (median {np.median(v):.1f} %)")
    if schema.SOFTWARE_ACCURACY in ds:
        sw = float(_at_gnorm(ds[schema.SOFTWARE_ACCURACY]).median()) * 100
        ax.axvline(sw, color="k", ls="--", lw=1, label=f"software, median ({sw:.1f} %)")
    _room_for_legend(ax, len(points) + 1)
    ax.set_xlabel(f"accuracy on the {_eval_split(ds)} split (%)")
    ax.set_ylabel("instances (% of the sweep point's)")
    ax.set_title("accuracy", fontsize="medium")
    ax.legend(frameon=False, fontsize="small", loc="upper left")
    return ax


def _merged_lattice(edges, values, min_instances, keep=0.8):
    """Lattice bin edges merged m at a time (m = 1, 2, ...) until, in every series of
    ``values``, at least ``keep`` of the instances fall in bins holding ``min_instances``:
    whole lattice steps per bin, so no bin is emptied or doubled by aliasing."""
    for m in range(1, len(edges)):
        merged = edges[::m] if (len(edges) - 1) % m == 0 else np.append(edges[::m], edges[-1])
        ok = True
        for v in values:
            n = np.histogram(v, merged)[0]
            if v.size and n[n >= min_instances].sum() < keep * v.size:
                ok = False
                break
        if ok:
            return merged
    return edges[[0, -1]]


def yield_vs_write_fidelity(ds, ax=None, target=0.9, min_instances=30, confidence=0.95):
    """Yield against write fidelity, one line per sweep point: do points with the same
    write fidelity have the same yield?

    Parameters
    ----------
    ds : xarray.Dataset
        Results with ``accuracy`` and ``write_fidelity``.
    ax : matplotlib Axes, optional
    target : float, default 0.9
        Yield = fraction of instances with accuracy >= ``target``.
    min_instances : int, default 30
        Bins with fewer instances at a point are left out. Bins are the possible
        fidelity values k / n_devices, merged a whole number of values at a time when
        the run is too small for one bin per value (so none is emptied by aliasing).
    confidence : float, default 0.95
        Level of the Wilson interval drawn as a band (Monte Carlo over instances).

    Returns
    -------
    matplotlib Axes
        Per sweep point and fidelity bin: the yield (%) of the instances in the bin
        against their mean write fidelity (%), with its interval.
    """
    ax = _axes(ax)
    series = []
    for (label, acc), (_, wf) in zip(_sweep_points(ds, schema.ACCURACY),
                                     _sweep_points(ds, schema.WRITE_FIDELITY), strict=True):
        a, w = acc.values.ravel(), wf.broadcast_like(acc).values.ravel()
        ok = np.isfinite(a) & np.isfinite(w)
        series.append((label, a[ok], w[ok]))
    edges = _merged_lattice(_lattice_edges(ds[schema.WRITE_FIDELITY].values.ravel()),
                            [w for _, _, w in series], min_instances)
    for (label, a, w), (colour, ls, marker) in zip(series, _point_styles(len(series)),
                                                   strict=True):
        b = np.clip(np.searchsorted(edges, w) - 1, 0, edges.size - 2)
        n = np.bincount(b, minlength=edges.size - 1)
        hits = np.bincount(b, weights=(a >= target - 1e-9), minlength=edges.size - 1)
        mean_w = np.bincount(b, weights=w, minlength=edges.size - 1) / np.maximum(n, 1)
        keep = n >= min_instances
        if not keep.any():
            continue
        low, high = wilson_interval(hits[keep].astype(int), n[keep], confidence)
        x = mean_w[keep] * 100
        ax.fill_between(x, low * 100, high * 100, color=colour, alpha=0.15, lw=0)
        ax.plot(x, hits[keep] / n[keep] * 100, color=colour, ls=ls, marker=marker, ms=3.5,
                lw=1.3, label=label)
    ax.set_xlabel("write fidelity: devices in their target state (%)")
    ax.set_ylabel(f"yield: instances with accuracy >= {target * 100:g} % (%)")
    ax.set_title("yield at the same write fidelity", fontsize="medium")
    if not ax.get_lines():
        ax.text(0.5, 0.5, f"fewer than {min_instances} instances per sweep point",
                transform=ax.transAxes, ha="center", va="center", fontsize="small")
        return ax
    ax.legend(frameon=False, fontsize="small", loc="lower right", title_fontsize="small",
              title=f"bands: {confidence * 100:g} % Wilson intervals;\n"
              f"bins with >= {min_instances} instances")
    return ax


def _eval_split(ds) -> str:
    import tomllib

    try:
        study = tomllib.loads(ds.attrs.get("study", ""))
    except tomllib.TOMLDecodeError:
        return "evaluation"
    return str(study.get("network", {}).get("eval_split", "test"))


def run_overview(ds, name=None, target=0.9):
    """The figure of ``mcmtj run --plot``: write fidelity, accuracy and yield against
    write fidelity, one colour (and line style) per sweep point.

    Parameters
    ----------
    ds : xarray.Dataset
        Results of one run (any sweep dims; at gain 1.0 when there is a ``gnorm`` dim).
    name : str, optional
        Study name for the title (default: the ``solutions`` attr).
    target : float, default 0.9
        Accuracy target of the yield panel.

    Returns
    -------
    matplotlib Figure
        Three panels side by side (:func:`write_fidelity_by_point`,
        :func:`accuracy_by_point`, :func:`yield_vs_write_fidelity`) under a title naming
        the study, the solutions, instances and sweep points.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4.6), layout="constrained",
                             gridspec_kw={"width_ratios": [1, 1, 1.3]})
    write_fidelity_by_point(ds, axes[0])
    accuracy_by_point(ds, axes[1])
    yield_vs_write_fidelity(ds, axes[2], target=target)
    n_sol = ds.sizes.get(schema.SOLUTION, 0)
    n_inst = ds.sizes.get(schema.INSTANCE, 0)
    sweep = [d for d in ds[schema.ACCURACY].dims if d not in (*_POOLED, schema.GNORM)]
    n_points = int(np.prod([ds.sizes[d] for d in sweep])) if sweep else 1
    swept = f" ({' x '.join(sweep)})" if sweep else ""
    gain = (f", gain {float(_at_gnorm(ds[schema.ACCURACY])[schema.GNORM]):g}"
            if schema.GNORM in ds[schema.ACCURACY].dims else "")
    title = (f"{name or ds.attrs.get('solutions', 'results')}: {n_sol} solutions x "
             f"{n_inst:,} array instances at each of {n_points} sweep points{swept}{gain}, "
             f"seed {ds.attrs.get('seed', '?')}")
    fig.suptitle(title, fontsize="medium")
    return fig
