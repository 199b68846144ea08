"""Figure functions ``f(ds, ax=None) -> Axes``. They read results, never simulate.

Every function draws on the given Axes (a new figure when ``ax`` is None) and
returns it, so a paper figure is a grid of calls (see :mod:`mcmtj.paper`). All
figures are readable in greyscale: series differ by marker, line style and hatch,
not by hue alone. Accuracy and write fidelity are discrete (multiples of
1/n_samples and 1/n_devices), so histograms put one bin on each possible value.

Functions that compare solution sets take either one Dataset or a mapping
``{label: Dataset}``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from . import schema

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
    from .analysis import tune

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
        e.g. from :func:`mcmtj.paper.device_samples`; the size dim is ``diameter``
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
    from .analysis import yield_fraction

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
        (from :func:`mcmtj.paper.metric_comparison`), stacked along ``set_dim``; NaN where
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
        (from :func:`mcmtj.paper.size_effect`), one size dim.
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
