"""Statistics of Monte Carlo results on named dims: the paper's "new metrics".

Every function takes the result Dataset (or one of its DataArrays) and pools the
dims named in ``dims`` -- by default ``("solution", "instance")``, i.e. every
instance of every weight solution at one sweep point. All other dims (sweep dims,
the read-out gain ``gnorm`` when present) are kept, so one call gives the statistic
per sweep point and per gain. The computations are the NumPy cores of
:mod:`mcmtj.analysis._np`, wrapped with ``xr.apply_ufunc`` (dask arrays work;
a pooled dim split into chunks is rechunked).

- :func:`accuracy_stats`: mean, median, std, quantiles.
- :func:`yield_fraction`: P(accuracy >= target) with Wilson score intervals.
- :func:`tune`: best gain chosen on the training split, reported on the evaluation split.
- :func:`metric_correlations`: Spearman rho of each fidelity metric with accuracy,
  bootstrap intervals, and a ranking -- which metric predicts accuracy best.
- :func:`sensitivity_weighted_fidelity`, :func:`device_sensitivity`: a write
  fidelity that weighs each device by what its error costs the network.

Missing values (NaN, e.g. instances not simulated yet) are left out of every statistic.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from mcmtj.analysis import _np as _core
from mcmtj.analysis._np import device_sensitivity, sensitivity_weighted_fidelity, wilson_interval
from mcmtj.run.schema import (
    ACCURACY,
    ACCURACY_TRAIN,
    AGREEMENT,
    CURRENT_RMSE,
    GNORM,
    INSTANCE,
    N_DISTURBS,
    N_OPEN,
    N_PULSES,
    N_SHORT,
    N_STUCK,
    N_WRITE_ERRORS,
    SOLUTION,
    WEIGHT_FIDELITY,
    WRITE_FIDELITY,
)

__all__ = [
    "DEFAULT_METRICS",
    "accuracy_stats",
    "wilson_interval",
    "yield_fraction",
    "tune",
    "metric_correlations",
    "sensitivity_weighted_fidelity",
    "device_sensitivity",
]

#: Per-instance variables ranked by :func:`metric_correlations` unless told otherwise.
DEFAULT_METRICS = (
    WRITE_FIDELITY,
    WEIGHT_FIDELITY,
    AGREEMENT,
    CURRENT_RMSE,
    N_STUCK,
    N_SHORT,
    N_OPEN,
    N_WRITE_ERRORS,
    N_DISTURBS,
    N_PULSES,
)

_POOLED = (SOLUTION, INSTANCE)


def _names(x) -> tuple[str, ...]:
    return (x,) if isinstance(x, str) else tuple(x)


def _variable(data, var: str) -> xr.DataArray:
    """``data`` itself if a DataArray, else ``data[var]`` with a clear error if absent."""
    if isinstance(data, xr.DataArray):
        return data
    if isinstance(data, xr.Dataset):
        if var not in data.variables:
            raise KeyError(
                f"the dataset has no variable {var!r}; it has {sorted(map(str, data.data_vars))}"
            )
        return data[var]
    raise TypeError(f"expected an xarray Dataset or DataArray, got {type(data).__name__}")


def _check_dims(da: xr.DataArray, dims: tuple[str, ...]) -> None:
    if not dims:
        raise ValueError("dims must name at least one dim to pool over")
    missing = [d for d in dims if d not in da.dims]
    if missing:
        raise ValueError(
            f"{da.name or 'the variable'!r} has no dim(s) {missing} to pool over; "
            f"its dims are {tuple(map(str, da.dims))}"
        )


def _expand_to(da: xr.DataArray, like: xr.DataArray, dims: tuple[str, ...]) -> xr.DataArray:
    """Give ``da`` the pooled ``dims`` of ``like`` that it lacks (repeating its values)."""
    lacking = {d: like.sizes[d] for d in dims if d not in da.dims}
    if not lacking:
        return da
    da = da.expand_dims(lacking)
    return da.assign_coords({d: like[d] for d in lacking if d in like.coords})


def _apply(func, *args, core_dims, out_core_dims, dtypes, sizes=None, kwargs=None):
    """``xr.apply_ufunc`` with the conventions shared here (dask allowed, pooled axes last)."""
    gufunc_kwargs = {"allow_rechunk": True}
    if sizes:
        gufunc_kwargs["output_sizes"] = sizes
    return xr.apply_ufunc(
        func,
        *args,
        input_core_dims=core_dims,
        output_core_dims=out_core_dims,
        kwargs=kwargs or {},
        dask="parallelized",
        output_dtypes=dtypes,
        dask_gufunc_kwargs=gufunc_kwargs,
    )


def _axes(k: int) -> tuple[int, ...]:
    return tuple(range(-k, 0))


def accuracy_stats(
    data,
    dims: str | Sequence[str] = _POOLED,
    quantiles: Sequence[float] = (0.05, 0.25, 0.5, 0.75, 0.95),
    *,
    var: str = ACCURACY,
) -> xr.Dataset:
    """Mean, median, spread and quantiles of accuracy over the pooled dims.

    Parameters
    ----------
    data : Dataset or DataArray
        Results; ``data[var]`` has dims (sweep..., solution, instance[, gnorm]).
    dims : str or sequence of str, default ("solution", "instance")
        Dims pooled into one sample. Use ``"instance"`` for statistics per solution.
    quantiles : sequence of float in [0, 1]
        Quantile levels (linear interpolation).
    var : str, default "accuracy"
        Variable summarised when ``data`` is a Dataset (e.g. ``"accuracy_train"``).

    Returns
    -------
    Dataset
        Dims: those of ``data[var]`` without ``dims``; ``quantiles`` adds ``quantile``.
        Variables ``mean``, ``median``, ``std`` (sample, ddof=1), ``count`` (finite
        values pooled) and ``quantiles`` (dims ..., quantile); NaN where no value.

    Examples
    --------
    The 5th-percentile accuracy per sweep point (and gain, if ``gnorm`` is a dim)::

        accuracy_stats(ds)["quantiles"].sel(quantile=0.05)
    """
    values = _variable(data, var)
    dims = _names(dims)
    _check_dims(values, dims)
    q = np.asarray(quantiles, dtype=float).ravel()
    mean, median, std, count, qv = _apply(
        _core.summary_stats,
        values,
        core_dims=[list(dims)],
        out_core_dims=[[], [], [], [], ["quantile"]],
        dtypes=[float, float, float, np.int64, float],
        sizes={"quantile": q.size},
        kwargs={"quantiles": q, "axis": _axes(len(dims))},
    )
    units = values.attrs.get("units", "1")
    out = xr.Dataset(
        {
            "mean": mean.assign_attrs(long_name=f"mean {values.name}", units=units),
            "median": median.assign_attrs(long_name=f"median {values.name}", units=units),
            "std": std.assign_attrs(long_name=f"sample std of {values.name}", units=units),
            "count": count.assign_attrs(long_name="non-NaN values pooled", units="count"),
            "quantiles": qv.assign_coords(quantile=q).assign_attrs(
                long_name=f"quantiles of {values.name}", units=units
            ),
        }
    )
    return out.assign_attrs(variable=str(values.name), pooled_dims=" ".join(dims))


def yield_fraction(
    data,
    target,
    dims: str | Sequence[str] = _POOLED,
    confidence: float = 0.95,
    *,
    var: str = ACCURACY,
    tolerance: float = 1e-9,
) -> xr.Dataset:
    """Yield: the fraction of instances whose accuracy reaches ``target``, with Wilson CIs.

    Parameters
    ----------
    data : Dataset or DataArray
        Results; ``data[var]`` has dims (sweep..., solution, instance[, gnorm]).
    target : float, 1-D sequence of float, or DataArray
        Accuracy an instance must reach (``accuracy >= target``). A sequence gives a
        yield curve along a new ``target`` dim. A DataArray broadcasts against the
        accuracy, e.g. ``ds.software_accuracy - 0.02`` for "within 2 points of the
        ideal network of the same solution".
    dims : str or sequence of str, default ("solution", "instance")
        Dims pooled into the trials.
    confidence : float, default 0.95
        Level of the two-sided Wilson score interval.
    var : str, default "accuracy"
        Variable tested when ``data`` is a Dataset.
    tolerance : float, default 1e-9
        ``accuracy >= target - tolerance`` counts: accuracies are multiples of
        1/n_samples, so this only absorbs rounding (0.8999999999999999 reaches 0.9).

    Returns
    -------
    Dataset
        Dims: those of the broadcast of accuracy and target without ``dims``.
        ``yield`` (successes / trials), ``yield_low``, ``yield_high`` (Wilson bounds),
        ``n_success`` and ``n`` (trials: finite accuracies). NaN where ``n = 0``.
        Instances are treated as independent trials.
    """
    values = _variable(data, var)
    dims = _names(dims)
    _check_dims(values, dims)
    if isinstance(target, xr.DataArray):
        tgt = target.astype(float)
    else:
        t = np.asarray(target, dtype=float)
        if t.ndim == 0:
            tgt = xr.DataArray(t)
        elif t.ndim == 1:
            tgt = xr.DataArray(t, dims=["target"], coords={"target": t})
        else:
            raise ValueError(f"target must be a scalar or 1-D, got shape {t.shape}")
    tgt = _expand_to(tgt, values, dims)
    y, low, high, k, n = _apply(
        _core.yield_with_interval,
        values,
        tgt,
        core_dims=[list(dims), list(dims)],
        out_core_dims=[[], [], [], [], []],
        dtypes=[float, float, float, np.int64, np.int64],
        kwargs={"confidence": confidence, "axis": _axes(len(dims)), "tolerance": tolerance},
    )
    name = values.name
    out = xr.Dataset(
        {
            "yield": y.assign_attrs(
                long_name=f"fraction of trials with {name} >= target", units="1"
            ),
            "yield_low": low.assign_attrs(long_name="Wilson lower bound of yield", units="1"),
            "yield_high": high.assign_attrs(long_name="Wilson upper bound of yield", units="1"),
            "n_success": k.assign_attrs(long_name="trials reaching the target", units="count"),
            "n": n.assign_attrs(long_name="trials (finite values pooled)", units="count"),
        }
    )
    attrs = {"variable": str(name), "pooled_dims": " ".join(dims), "confidence": confidence}
    if tgt.ndim == 0:
        attrs["target"] = float(tgt)
    return out.assign_attrs(attrs)


def tune(
    ds: xr.Dataset,
    over: str = GNORM,
    select_on: str = ACCURACY_TRAIN,
    report: str | Sequence[str] = ACCURACY,
    per: str = "instance",
) -> xr.Dataset:
    """Tune a read-out parameter on one split and report another, without selection bias.

    For each instance (``per="instance"``) or each solution (``per="solution"``),
    the value of ``over`` that maximises ``select_on`` is chosen -- the first maximum,
    i.e. the smallest index, on ties; NaN is never chosen -- and ``report`` is read
    at that value. The reported variables never enter the choice, so the tuned
    evaluation accuracy is an honest estimate (choosing on it would bias it upward).

    Parameters
    ----------
    ds : Dataset
        Results with dim ``over``; ``ds[select_on]`` and ``ds[report]`` have it.
    over : str, default "gnorm"
        Dim of the tuned parameter grid, evaluated on the same physical instances.
    select_on : str, default "accuracy_train"
        Variable maximised (training split).
    report : str or sequence of str, default "accuracy"
        Variable(s) reported at the chosen value (evaluation split).
    per : {"instance", "solution"}
        ``"instance"``: each instance gets its own value (a die-specific trim).
        ``"solution"``: one value per solution (and sweep point) for all its
        instances, the one maximising the median of ``select_on`` over ``instance``
        (a calibration that cannot see the individual die).

    Returns
    -------
    Dataset
        Dims of the inputs without ``over``. The ``report`` variable(s) and
        ``select_on`` at the chosen value; ``{over}_chosen``, the chosen coordinate
        value (the index if ``over`` has no coordinate), and ``{over}_index``, its
        position (-1 where ``select_on`` is all NaN; the tuned values are NaN there).
        With ``per="solution"``, ``{over}_chosen`` has no ``instance`` dim.

    Raises
    ------
    ValueError
        If ``select_on`` is among ``report``, ``over`` is not a dim of ``ds`` or of
        a variable used, or ``per`` is unknown.
    KeyError
        If a variable is missing (e.g. ``accuracy_train`` was not computed).
    """
    reports = _names(report)
    if select_on in reports:
        raise ValueError(
            f"select_on and report are both {select_on!r}: choosing {over!r} on the "
            "reported variable biases it upward; select on the training split "
            f"(e.g. {ACCURACY_TRAIN!r}) and report the evaluation split ({ACCURACY!r})"
        )
    if per not in ("instance", "solution"):
        raise ValueError(f"per must be 'instance' or 'solution', got {per!r}")
    if over not in ds.dims:
        raise ValueError(
            f"the dataset has no dim {over!r} to tune over; its dims are "
            f"{tuple(map(str, ds.dims))}. Simulate a grid of {over!r} first."
        )
    score = _variable(ds, select_on)
    used = {select_on: score, **{name: _variable(ds, name) for name in reports}}
    for name, da in used.items():
        if over not in da.dims:
            raise ValueError(f"{name!r} has no dim {over!r} (its dims: {tuple(da.dims)})")
    if per == "solution" and INSTANCE in score.dims:
        score = _apply(
            _core.nan_median,
            score,
            core_dims=[[INSTANCE]],
            out_core_dims=[[]],
            dtypes=[float],
        )
    index = _apply(
        _core.first_argmax, score, core_dims=[[over]], out_core_dims=[[]], dtypes=[np.int64]
    )
    if over in ds.coords and np.issubdtype(ds[over].dtype, np.number):
        chosen = _apply(
            _core.take_index,
            ds[over],
            index,
            core_dims=[[over], []],
            out_core_dims=[[]],
            dtypes=[float],
        )
        chosen = chosen.assign_attrs(ds[over].attrs)
    else:
        chosen = index.where(index >= 0)
    out = {}
    for name, da in used.items():
        out[name] = _apply(
            _core.take_index,
            da,
            index,
            core_dims=[[over], []],
            out_core_dims=[[]],
            dtypes=[float],
        ).assign_attrs(da.attrs)
    out[f"{over}_chosen"] = chosen.assign_attrs(
        long_name=f"{over} maximising {select_on} per {per}"
    )
    out[f"{over}_index"] = index.assign_attrs(long_name=f"position of {over}_chosen", units="1")
    result = xr.Dataset(out)
    return result.assign_attrs(tuned_over=over, select_on=select_on, per=per)


def metric_correlations(
    ds: xr.Dataset,
    metrics: Sequence[str] = DEFAULT_METRICS,
    target: str = ACCURACY,
    dims: str | Sequence[str] = _POOLED,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed=0,
) -> xr.Dataset:
    """Rank fidelity metrics by how well they predict accuracy (Spearman, bootstrap CIs).

    For each metric, Spearman's rank correlation with ``target`` over the pooled
    instances, a bootstrap percentile interval from resampling the pooled
    (metric, accuracy) pairs, and a rank by ``|rho|`` -- the question the write-fidelity
    study left open: which property of a written array tells its accuracy.

    Parameters
    ----------
    ds : Dataset
        Results; variables with dims (sweep..., solution, instance[, gnorm]).
    metrics : sequence of str, default :data:`DEFAULT_METRICS`
        Variables to rank; those missing from ``ds`` are skipped (listed in the
        ``skipped_metrics`` attr). A metric lacking a pooled dim is repeated along it.
    target : str, default "accuracy"
        Variable the metrics should predict.
    dims : str or sequence of str, default ("solution", "instance")
        Dims pooled into one sample; other dims (sweep, gnorm) are kept.
    n_boot : int, default 1000
        Bootstrap replicates. Time grows as n_boot x pooled size x metrics x points.
    confidence : float, default 0.95
        Level of the two-sided percentile interval.
    seed : int, SeedSequence or Generator, default 0
        Root of the bootstrap streams: the same int seed gives identical intervals
        (also under dask chunking). The same resamples serve every metric.

    Returns
    -------
    Dataset
        Dims (metric, kept dims...). ``rho`` (NaN for a metric constant over the
        sample), ``rho_low``, ``rho_high``, ``rank`` (1 = largest ``|rho|`` at that
        point; ties keep the order of ``metrics``; NaN rho ranks last) and ``n``
        (pairs with both values finite).

    Notes
    -----
    The bootstrap treats pooled instances as independent; instances of one
    solution share its weights, so the interval can be narrower than a
    solution-level (cluster) bootstrap would give.
    """
    y = _variable(ds, target)
    dims = _names(dims)
    _check_dims(y, dims)
    wanted = _names(metrics)
    present = [m for m in wanted if m in ds.data_vars]
    skipped = [m for m in wanted if m not in ds.data_vars]
    if not present:
        raise ValueError(f"none of the metrics {list(wanted)} is in the dataset")
    columns = xr.broadcast(*(ds[m].astype(float).reset_coords(drop=True) for m in present))
    x = xr.concat(columns, dim="metric", coords="minimal").assign_coords(
        metric=np.asarray(present, dtype=str)  # a NumPy str coordinate stores in netCDF/zarr
    )
    x = _expand_to(x, y, dims)
    entropy = _core._entropy(seed)
    rho, low, high = _apply(
        _core.spearman_bootstrap,
        x,
        y.reset_coords(drop=True),
        core_dims=[list(dims), list(dims)],
        out_core_dims=[[], [], []],
        dtypes=[float, float, float],
        kwargs={
            "n_boot": n_boot,
            "confidence": confidence,
            "seed": entropy,
            "axis": _axes(len(dims)),
        },
    )
    n = (x.notnull() & y.reset_coords(drop=True).notnull()).sum(list(dims))
    rank = _apply(
        _core.rank_by_magnitude,
        rho,
        core_dims=[["metric"]],
        out_core_dims=[["metric"]],
        dtypes=[np.int64],
    )
    out = xr.Dataset(
        {
            "rho": rho.assign_attrs(long_name=f"Spearman rank correlation with {target}"),
            "rho_low": low.assign_attrs(long_name="bootstrap percentile lower bound of rho"),
            "rho_high": high.assign_attrs(long_name="bootstrap percentile upper bound of rho"),
            "rank": rank.assign_attrs(long_name="rank by |rho|, 1 = most predictive"),
            "n": n.assign_attrs(long_name="pairs with both values finite", units="count"),
        }
    )
    out = out.transpose("metric", ...)
    return out.assign_attrs(
        target=target,
        pooled_dims=" ".join(dims),
        n_boot=int(n_boot),
        confidence=confidence,
        seed=str(entropy),
        skipped_metrics=" ".join(skipped),
    )
