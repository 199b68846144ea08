"""NumPy cores of the analysis layer: plain functions over the last axis (or given axes).

The xarray-level functions in :mod:`mcmtj.analysis` move the pooled named dims to the
end with ``xr.apply_ufunc`` and call these; they are also usable, and tested, alone.

Conventions shared by every core:

- ``axis`` is an int or a tuple of ints; several axes are pooled into one trailing axis.
- NaN marks a missing value (an instance not simulated yet, an accuracy not evaluated)
  and is left out of every statistic rather than propagated; a statistic over no finite
  value is NaN.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.special import ndtri
from scipy.stats import rankdata

__all__ = [
    "pool_axes",
    "summary_stats",
    "wilson_interval",
    "yield_counts",
    "yield_with_interval",
    "first_argmax",
    "take_index",
    "spearman",
    "bootstrap_indices",
    "spearman_bootstrap",
    "rank_by_magnitude",
    "sensitivity_weighted_fidelity",
    "device_sensitivity",
    "nan_median",
    "cluster_multiplicities",
    "paired_cluster_bootstrap",
    "exact_transform",
    "cv_tuned_correct",
    "readback_predictions",
    "bootstrap_solutions_and_samples",
]

# Bootstrap replicates are processed in blocks of at most this many (replicate x sample)
# elements: arrays of 2 MiB, small enough to stay in cache, which measured faster than
# 32 MiB blocks. Memory is bounded whatever n_boot and n are.
_BLOCK_ELEMENTS = 1 << 18
# Sort bookkeeping (3 ints per sample) is kept for this many samples' worth of leading
# indices at once; beyond that the replicate weights are regenerated per chunk instead.
_GROUP_ELEMENTS = 1 << 22


def pool_axes(a, axis=-1) -> np.ndarray:
    """Move ``axis`` (int or tuple) to the end of ``a`` and flatten it into one axis."""
    a = np.asarray(a)
    axes = (axis,) if np.isscalar(axis) else tuple(axis)
    if not axes:
        raise ValueError("axis must name at least one axis to pool over")
    axes = _norm_axes(axes, a.ndim)
    moved = np.moveaxis(a, axes, range(a.ndim - len(axes), a.ndim))
    return moved.reshape(moved.shape[: a.ndim - len(axes)] + (-1,))


def _norm_axes(axes, ndim):
    out = []
    for ax in axes:
        ax = int(ax)
        if not -ndim <= ax < ndim:
            raise np.exceptions.AxisError(ax, ndim)
        ax %= ndim
        if ax in out:
            raise ValueError(f"repeated axis {ax} in axis={axes}")
        out.append(ax)
    return tuple(out)


def _quiet():
    """0/0 and x/0 give NaN/inf silently; the result is masked or documented as NaN."""
    return np.errstate(invalid="ignore", divide="ignore")


def _nan_reduce(func, v, min_count=1, extra=()):
    """``func(rows, axis=-1)`` over the rows of ``v`` (..., n) with >= ``min_count`` non-NaN.

    Other rows give NaN. Reducing only those rows avoids NumPy's empty-slice
    RuntimeWarnings without touching the (process-global, not thread-safe) warning
    filters, which dask's threaded scheduler would race on.
    """
    flat = v.reshape(int(np.prod(v.shape[:-1])), v.shape[-1])
    ok = np.sum(~np.isnan(flat), axis=-1) >= min_count
    out = np.full((flat.shape[0],) + tuple(extra), np.nan)
    if ok.any():
        out[ok] = func(flat[ok], axis=-1)
    return out.reshape(v.shape[:-1] + tuple(extra))


# --------------------------------------------------------------------------- statistics


def summary_stats(values, quantiles=(0.05, 0.25, 0.5, 0.75, 0.95), axis=-1):
    """Mean, median, sample std (ddof=1), count and quantiles over ``axis``, NaN skipped.

    Returns
    -------
    mean, median, std, count : ndarray, shape of ``values`` without ``axis``
    quantile_values : ndarray, same shape plus a trailing axis of ``len(quantiles)``
        (linear interpolation, ``numpy.nanquantile``'s default).
    """
    q = np.asarray(quantiles, dtype=float)
    if q.ndim != 1 or np.any((q < 0) | (q > 1)) or np.any(np.isnan(q)):
        raise ValueError(f"quantiles must be a 1-D sequence in [0, 1], got {quantiles!r}")
    v = pool_axes(np.asarray(values, dtype=float), axis)
    count = np.sum(~np.isnan(v), axis=-1)
    mean = _nan_reduce(np.nanmean, v)
    median = _nan_reduce(np.nanmedian, v)
    std = _nan_reduce(lambda a, axis: np.nanstd(a, axis=axis, ddof=1), v, min_count=2)
    qv = _nan_reduce(
        lambda a, axis: np.moveaxis(np.nanquantile(a, q, axis=axis), 0, -1), v, extra=(q.size,)
    )
    return mean, median, std, count, qv


def wilson_interval(successes, n, confidence=0.95):
    """Wilson score interval for a binomial proportion, vectorised over any shape.

    Parameters
    ----------
    successes : array_like of int
        Number of successes ``k`` (0 <= k <= n).
    n : array_like of int
        Number of trials; broadcasts against ``successes``. ``n = 0`` gives NaN bounds.
    confidence : float, default 0.95
        Two-sided confidence level in (0, 1).

    Returns
    -------
    low, high : ndarray (or float for scalar input)
        ``(p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)`` with ``p = k/n`` and
        ``z`` the ``(1 + confidence)/2`` normal quantile; exactly 0 at ``k = 0`` and
        exactly 1 at ``k = n``. Unlike the Wald interval it stays inside [0, 1] and
        keeps close to nominal coverage near p = 0 or 1, where yields live.

    Examples
    --------
    >>> low, high = wilson_interval(8, 10)
    >>> round(float(low), 4), round(float(high), 4)
    (0.4902, 0.9433)
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    k = np.asarray(successes, dtype=float)
    n = np.asarray(n, dtype=float)
    k, n = np.broadcast_arrays(k, n)
    bad = (k < 0) | (n < 0) | (k > n)
    if np.any(bad):
        raise ValueError("wilson_interval needs 0 <= successes <= n")
    z = ndtri(0.5 + confidence / 2.0)
    z2 = z * z
    with _quiet():
        p = k / n
        denom = 1.0 + z2 / n
        center = (p + z2 / (2.0 * n)) / denom
        half = z * np.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denom
        low = np.clip(center - half, 0.0, 1.0)
        high = np.clip(center + half, 0.0, 1.0)
    # The formula gives 0 and 1 there only up to rounding.
    low = np.where(k == 0, 0.0, low)
    high = np.where(k == n, 1.0, high)
    empty = ~(n > 0)
    low = np.where(empty, np.nan, low)
    high = np.where(empty, np.nan, high)
    return low[()], high[()]


def yield_counts(values, target, axis=-1, tolerance=1e-9):
    """Successes ``values >= target - tolerance`` and trials over ``axis``.

    ``target`` broadcasts against ``values``. Pairs where either is NaN are not trials.
    ``tolerance`` absorbs rounding in accuracies, which are multiples of 1/n_samples
    (far coarser than 1e-9), so that 0.8999999999999999 counts as reaching 0.9.

    Returns
    -------
    successes, n : ndarray of int64, shape of the broadcast without ``axis``
    """
    v = np.asarray(values, dtype=float)
    t = np.asarray(target, dtype=float)
    v, t = np.broadcast_arrays(v, t)
    v = pool_axes(v, axis)
    t = pool_axes(t, axis)
    valid = np.isfinite(v) & np.isfinite(t)
    with np.errstate(invalid="ignore"):
        ok = valid & (v >= t - tolerance)
    return ok.sum(axis=-1, dtype=np.int64), valid.sum(axis=-1, dtype=np.int64)


def yield_with_interval(values, target, confidence=0.95, axis=-1, tolerance=1e-9):
    """Yield ``P(values >= target)`` over ``axis`` with its Wilson interval.

    Returns
    -------
    yield_, low, high : ndarray of float (NaN where there is no finite value)
    successes, n : ndarray of int64
    """
    k, n = yield_counts(values, target, axis=axis, tolerance=tolerance)
    with _quiet():
        y = np.where(n > 0, k / np.maximum(n, 1), np.nan)
    low, high = wilson_interval(k, n, confidence)
    return y, np.asarray(low), np.asarray(high), k, n


# --------------------------------------------------------------------------- tuning


def nan_median(values, axis=-1) -> np.ndarray:
    """Median over ``axis`` skipping NaN; NaN (without a warning) where all are NaN."""
    return _nan_reduce(np.nanmedian, pool_axes(np.asarray(values, dtype=float), axis))


def first_argmax(values, axis=-1) -> np.ndarray:
    """Index of the first maximum along ``axis``, NaN ignored; -1 where all are NaN.

    On ties the smallest index wins, so a tuning choice is deterministic.
    """
    v = np.moveaxis(np.asarray(values, dtype=float), axis, -1)
    if v.shape[-1] == 0:
        raise ValueError("cannot take the argmax over an empty axis")
    finite = ~np.isnan(v)
    idx = np.argmax(np.where(finite, v, -np.inf), axis=-1)  # argmax returns the first max
    return np.where(finite.any(axis=-1), idx, -1)


def take_index(values, index, axis=-1) -> np.ndarray:
    """``values`` at ``index`` along ``axis`` (``index`` broadcasts without it); -1 gives NaN."""
    v = np.moveaxis(np.asarray(values, dtype=float), axis, -1)
    index = np.asarray(index)
    shape = np.broadcast_shapes(v.shape[:-1], index.shape)
    v = np.broadcast_to(v, shape + v.shape[-1:])
    index = np.broadcast_to(index, shape)
    if np.any(index >= v.shape[-1]) or np.any(index < -1):
        raise IndexError("index out of range of the tuned axis")
    picked = np.take_along_axis(v, np.maximum(index, 0)[..., None], axis=-1)[..., 0]
    return np.where(index >= 0, picked, np.nan)


# --------------------------------------------------------------------------- rank correlation


def _pearson_last(a, b):
    """Pearson correlation over the last axis of NaN-masked arrays (same NaN pattern)."""
    n = np.sum(~np.isnan(a), axis=-1)
    with _quiet():
        da = a - (np.nansum(a, axis=-1) / n)[..., None]
        db = b - (np.nansum(b, axis=-1) / n)[..., None]
        saa = np.nansum(da * da, axis=-1)
        sbb = np.nansum(db * db, axis=-1)
        sab = np.nansum(da * db, axis=-1)
        r = np.clip(sab / np.sqrt(saa * sbb), -1.0, 1.0)
    return r, n


def spearman(x, y, axis=-1):
    """Spearman rank correlation over ``axis``: Pearson correlation of average ranks.

    Pairs where either value is NaN are dropped (``scipy.stats.spearmanr`` with
    ``nan_policy='omit'``). A variable that is constant over the kept pairs, or fewer
    than two pairs, gives NaN.

    Returns
    -------
    rho : ndarray of float, shape of the broadcast of ``x`` and ``y`` without ``axis``
    """
    x, y = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    x = pool_axes(x, axis)
    y = pool_axes(y, axis)
    valid = ~(np.isnan(x) | np.isnan(y))
    if not valid.all():
        x = np.where(valid, x, np.nan)
        y = np.where(valid, y, np.nan)
    if x.shape[-1] == 0:
        return np.full(x.shape[:-1], np.nan)[()]
    rx = rankdata(x, axis=-1, nan_policy="omit")
    ry = rankdata(y, axis=-1, nan_policy="omit")
    rho, n = _pearson_last(rx, ry)
    # Decide constancy on the ranks, exactly, rather than on a rounded variance.
    # fmax/fmin skip NaN without the all-NaN warning of nanmax.
    const = (np.fmax.reduce(rx, axis=-1) == np.fmin.reduce(rx, axis=-1)) | (
        np.fmax.reduce(ry, axis=-1) == np.fmin.reduce(ry, axis=-1)
    )
    rho = np.where(const | (n < 2), np.nan, rho)
    return rho[()]


def _entropy(seed) -> int | tuple:
    """Fix the root entropy once, so that ``seed=None`` still gives one consistent stream."""
    if isinstance(seed, np.random.SeedSequence):
        return seed.entropy
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**63))
    return np.random.SeedSequence(seed).entropy


def bootstrap_indices(seed, n, start, stop) -> np.ndarray:
    """Resampling indices of bootstrap replicates ``start..stop-1`` for ``n`` samples.

    Replicate ``b`` draws ``n`` indices from its own stream, child ``b`` of
    ``SeedSequence(seed)`` (``spawn_key=(b,)``), so a replicate does not depend on how
    replicates are blocked, chunked or ordered.

    Returns
    -------
    ndarray of int64, shape (stop - start, n)
    """
    entropy = _entropy(seed)
    out = np.empty((stop - start, n), dtype=np.int64)
    for row, b in enumerate(range(start, stop)):
        child = np.random.SeedSequence(entropy, spawn_key=(b,))
        out[row] = np.random.default_rng(child).integers(0, n, size=n)
    return out


def _multiplicities(idx) -> np.ndarray:
    """How often each sample occurs in each resample: (b, n) indices -> (b, n) counts."""
    b, n = idx.shape
    flat = idx + n * np.arange(b)[:, None]
    return np.bincount(flat.ravel(), minlength=b * n).reshape(b, n).astype(float)


def _tie_groups(v):
    """Sort bookkeeping of finite values (n,): group of each sample, sort order, group starts."""
    uniq, inv = np.unique(v, return_inverse=True)
    order = np.argsort(inv, kind="stable")
    starts = np.searchsorted(inv[order], np.arange(uniq.size))
    return inv, order, starts


def _centred_resample_ranks(groups, w):
    """Average rank of each sample within each resample, minus the resample's mean rank.

    ``w`` (b, n) holds the multiplicities of the samples in ``b`` resamples. Summing
    the weight of each group of tied values (values sorted once, in ``groups``) gives
    in O(b n) what ranking every resample would in O(b n log n). A group's average
    rank is (weight below it) + (its weight + 1)/2 and a resample of size W has mean
    rank (W + 1)/2; both are half-integers, so the centred ranks are exact.

    Returns
    -------
    centred : (b, n) float
        Centred rank of every sample (samples absent from a resample get one too,
        but their weight there is 0).
    sum_sq : (b,) float
        Weighted sum of squared centred ranks, computed over groups.
    n_present : (b,) int
        Distinct values present in each resample.
    """
    inv, order, starts = groups
    wg = np.add.reduceat(w[:, order], starts, axis=1)
    total = wg.sum(axis=1, keepdims=True)
    centred_g = np.cumsum(wg, axis=1) - wg / 2.0 - total / 2.0
    sum_sq = np.einsum("ij,ij,ij->i", wg, centred_g, centred_g)
    return centred_g[:, inv], sum_sq, np.count_nonzero(wg, axis=1)


def spearman_bootstrap(
    x, y, n_boot=1000, confidence=0.95, seed=0, axis=-1, return_replicates=False
):
    """Spearman rho over ``axis`` with a bootstrap percentile interval.

    Each replicate resamples the pooled pairs ``(x_i, y_i)`` with replacement
    (indices from :func:`bootstrap_indices`); the same resamples serve every
    leading index of ``x`` and ``y``, so intervals of different metrics are paired
    and the result does not depend on how the leading axes are chunked. NaN pairs
    drawn into a resample are dropped from it, as in :func:`spearman`. Each
    replicate equals :func:`spearman` of the explicit resample (tested), computed
    from resample multiplicities without re-sorting.

    Parameters
    ----------
    x, y : array_like
        Broadcastable; ``axis`` (int or tuple) is pooled into the sample axis.
    n_boot : int
        Number of bootstrap replicates (>= 1). Time is O(n_boot * n) per leading
        index; memory is bounded by processing replicates in blocks.
    confidence : float
        Two-sided level of the percentile interval, in (0, 1).
    seed : int, sequence of int, SeedSequence or Generator
        Root of the replicate streams; the same int seed gives the same result.
        A Generator is advanced once to draw the root.
    return_replicates : bool
        Also return the replicate rhos, shape (..., n_boot).

    Returns
    -------
    rho, low, high : ndarray of float, shape of the broadcast without ``axis``
        ``rho`` is :func:`spearman` of the data; ``low``/``high`` are the
        ``(1 -/+ confidence)/2`` quantiles of the replicate rhos, ignoring replicates
        where rho is undefined (a resample with a single distinct value); NaN if all are.
    """
    if int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    n_boot = int(n_boot)
    entropy = _entropy(seed)
    x = pool_axes(np.asarray(x, dtype=float), axis)
    y = pool_axes(np.asarray(y, dtype=float), axis)
    outer = np.broadcast_shapes(x.shape[:-1], y.shape[:-1])
    n = np.broadcast_shapes(x.shape[-1:], y.shape[-1:])[0]
    y_outer = (1,) * (len(outer) - (y.ndim - 1)) + y.shape[:-1]  # y's own leading shape
    x = np.broadcast_to(x, outer + (n,))
    y = np.broadcast_to(y, outer + (n,))
    rho = np.asarray(spearman(x, y))
    reps = np.full(outer + (n_boot,), np.nan)

    def y_key(pos):  # positions that share y's data; visited together so y is ranked once
        return tuple(p if s != 1 else 0 for p, s in zip(pos, y_outer, strict=True))

    def prepare(pos):
        valid = ~(np.isnan(x[pos]) | np.isnan(y[pos]))
        if valid.sum() < 2:
            return None
        if valid.all():
            return None, _tie_groups(x[pos]), None
        return valid, _tie_groups(x[pos][valid]), _tie_groups(y[pos][valid])

    positions = sorted(np.ndindex(outer), key=y_key)
    block = max(1, _BLOCK_ELEMENTS // max(n, 1))
    per_chunk = max(1, _GROUP_ELEMENTS // max(n, 1))
    for first in range(0, len(positions) if n > 0 else 0, per_chunk):
        chunk = positions[first : first + per_chunk]
        prepared = [prepare(pos) for pos in chunk]
        y_groups = {
            y_key(pos): _tie_groups(y[pos])
            for pos, prep in zip(chunk, prepared, strict=True)
            if prep is not None and prep[0] is None
        }
        for start in range(0, n_boot, block):
            stop = min(n_boot, start + block)
            w = _multiplicities(bootstrap_indices(entropy, n, start, stop))
            y_key_ranked, y_ranked = None, None
            for pos, prep in zip(chunk, prepared, strict=True):
                if prep is None:
                    continue
                valid, x_groups, y_groups_valid = prep
                if valid is None:
                    if y_key(pos) != y_key_ranked:
                        y_key_ranked = y_key(pos)
                        y_ranked = _centred_resample_ranks(y_groups[y_key_ranked], w)
                    wv, (dy, ssy, py) = w, y_ranked
                else:  # drop the NaN pairs; y's ranks then depend on x's NaN pattern
                    wv = w[:, valid]
                    dy, ssy, py = _centred_resample_ranks(y_groups_valid, wv)
                dx, ssx, px = _centred_resample_ranks(x_groups, wv)
                with _quiet():
                    r = np.clip(np.einsum("ij,ij,ij->i", wv, dx, dy) / np.sqrt(ssx * ssy), -1, 1)
                # A resample holding one distinct value of x or y has no rank correlation.
                reps[pos + (slice(start, stop),)] = np.where((px < 2) | (py < 2), np.nan, r)
    alpha = 1.0 - confidence
    levels = [alpha / 2.0, 1.0 - alpha / 2.0]
    bounds = _nan_reduce(
        lambda a, axis: np.moveaxis(np.nanquantile(a, levels, axis=axis), 0, -1), reps, extra=(2,)
    )
    low, high = bounds[..., 0], bounds[..., 1]
    out = (rho[()], low[()], high[()])
    return out + (reps,) if return_replicates else out


def rank_by_magnitude(values, axis=-1) -> np.ndarray:
    """Rank 1, 2, ... by ``|values|`` descending along ``axis``; NaN last; ties keep order."""
    v = np.moveaxis(np.asarray(values, dtype=float), axis, -1)
    key = np.where(np.isnan(v), np.inf, -np.abs(v))
    order = np.argsort(key, axis=-1, kind="stable")
    ranks = np.empty(v.shape, dtype=np.int64)
    np.put_along_axis(ranks, order, np.arange(1, v.shape[-1] + 1), axis=-1)
    return np.moveaxis(ranks, -1, axis)


# --------------------------------------------------------------------------- sensitivity


def sensitivity_weighted_fidelity(device_correct, sensitivity):
    """Write fidelity with each device weighted by how much the network needs it.

    Parameters
    ----------
    device_correct : array_like of bool, shape (..., n_devices)
        Whether each device ended in its target state (0/1 integers accepted).
    sensitivity : array_like of float, shape (n_devices,)
        Non-negative weights, typically :func:`device_sensitivity`: the accuracy the
        ideal network loses when that device alone is wrong.

    Returns
    -------
    fidelity : ndarray (or float), shape (...)
        ``1 - sum(w * wrong) / sum(w)``: 1 when every device that matters is right,
        0 when all of them are wrong; 1 when all weights are 0 (no device matters).
        With equal weights it is the plain write fidelity.
    """
    correct = np.asarray(device_correct)
    if correct.dtype != bool:
        if not np.all((correct == 0) | (correct == 1)):
            raise ValueError("device_correct must be boolean (or 0/1)")
        correct = correct.astype(bool)
    w = np.asarray(sensitivity, dtype=float)
    if w.ndim != 1:
        raise ValueError(f"sensitivity must be 1-D (n_devices,), got shape {w.shape}")
    if correct.ndim == 0 or correct.shape[-1] != w.size:
        raise ValueError(
            f"device_correct's last axis ({correct.shape[-1:] or 'none'}) must match "
            f"sensitivity's length ({w.size})"
        )
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("sensitivity weights must be finite and >= 0")
    total = w.sum()
    if total == 0:
        return np.ones(correct.shape[:-1])[()]
    lost = (~correct).astype(float) @ w
    return (1.0 - lost / total)[()]


def device_sensitivity(accuracy_fn: Callable[[int | None], float], n_devices: int) -> np.ndarray:
    """Accuracy lost by the ideal network when one device alone is wrong.

    Parameters
    ----------
    accuracy_fn : callable
        ``accuracy_fn(None)`` is the ideal accuracy; ``accuracy_fn(k)`` the accuracy
        with device ``k`` (0 <= k < n_devices) flipped and all others right.
    n_devices : int
        Number of devices.

    Returns
    -------
    ndarray of float, shape (n_devices,)
        ``max(0, base - accuracy_fn(k))``: a flip that happens to help weighs 0.
        Usable as ``sensitivity`` in :func:`sensitivity_weighted_fidelity`.
    """
    if int(n_devices) != n_devices or n_devices < 0:
        raise ValueError(f"n_devices must be a non-negative integer, got {n_devices!r}")
    base = float(accuracy_fn(None))
    flipped = np.array([float(accuracy_fn(k)) for k in range(int(n_devices))], dtype=float)
    return np.maximum(0.0, base - flipped)


# ----------------------------------------------------------------- paired cluster bootstrap


def cluster_multiplicities(seed, n_clusters: int, start: int, stop: int) -> np.ndarray:
    """How often each cluster is drawn in bootstrap replicates ``start..stop-1``.

    Replicate ``b`` draws ``n_clusters`` clusters with replacement from the stream of
    :func:`bootstrap_indices` (child ``b`` of ``SeedSequence(seed)``).

    Returns
    -------
    ndarray of float, shape (stop - start, n_clusters)
    """
    return _multiplicities(bootstrap_indices(seed, n_clusters, start, stop))


def _weighted_midranks(groups: np.ndarray, n_groups: int, w: np.ndarray) -> np.ndarray:
    """Mid-ranks of every observation in the resamples that repeat observation ``i``
    ``w[b, i]`` times: (b, n). ``groups`` numbers the distinct values in increasing order."""
    b = w.shape[0]
    flat = groups[None, :] + n_groups * np.arange(b)[:, None]
    per_group = np.bincount(flat.ravel(), weights=w.ravel(), minlength=b * n_groups)
    per_group = per_group.reshape(b, n_groups)
    below = np.cumsum(per_group, axis=1) - per_group
    return (below + 0.5 * (per_group + 1.0))[:, groups]


def _weighted_pearson(a: np.ndarray, c: np.ndarray, w: np.ndarray) -> np.ndarray:
    sw = w.sum(axis=-1)
    am = (w * a).sum(axis=-1) / sw
    cm = (w * c).sum(axis=-1) / sw
    da = a - am[..., None]
    dc = c - cm[..., None]
    cov = (w * da * dc).sum(axis=-1)
    var = (w * da * da).sum(axis=-1) * (w * dc * dc).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(var > 0, cov / np.sqrt(var), np.nan)


def paired_cluster_bootstrap(x, y, clusters, reference: int = 0, n_boot: int = 1000,
                             confidence: float = 0.95, seed=0, orientation=None,
                             return_replicates: bool = False) -> dict:
    """Spearman rho of each metric with ``y`` and its difference to a reference metric,
    with a cluster bootstrap that resamples whole clusters (e.g. solutions).

    Observations of one cluster (instances of one weight solution) are not independent;
    each replicate draws clusters with replacement and keeps all their observations, and
    every metric is evaluated on the same replicates, so the interval of a difference is
    paired. Each replicate rho equals :func:`spearman` of the explicitly repeated
    resample (mid-ranks of the repeated values, tested against SciPy).

    Parameters
    ----------
    x : array_like, shape (m, n)
        Metrics (rows) per observation; must be finite.
    y : array_like, shape (n,)
        What the metrics should predict (e.g. tuned accuracy); finite.
    clusters : array_like of int, shape (n,)
        Cluster label of each observation.
    reference : int, default 0
        Row of ``x`` every metric is compared with (e.g. write fidelity).
    n_boot : int, default 1000
    confidence : float, default 0.95
        Level of the two-sided percentile intervals.
    seed : int or SeedSequence
        Root of the replicate streams (:func:`cluster_multiplicities`).
    orientation : array_like of {+1, -1}, shape (m,), optional
        Fixed sign of each metric (-1 for an error count, where lower predicts better),
        set before looking at the data; differences compare ``orientation * rho``.
    return_replicates : bool
        Also return ``"replicates"``: (n_boot, m) replicate rhos (not oriented).

    Returns
    -------
    dict
        ``rho``, ``rho_low``, ``rho_high`` (m,): rho and its interval;
        ``diff``, ``diff_low``, ``diff_high`` (m,): oriented rho minus the reference's
        oriented rho and its paired interval (0 for the reference itself);
        ``n_clusters``, ``n``.
    """
    x = np.atleast_2d(np.asarray(x, dtype=float))
    y = np.asarray(y, dtype=float).ravel()
    m, n = x.shape
    if y.size != n:
        raise ValueError(f"x has {n} observations per metric but y has {y.size}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("x and y must be finite (drop missing observations first)")
    if int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    sign = np.ones(m) if orientation is None else np.asarray(orientation, dtype=float)
    _, cl = np.unique(np.asarray(clusters).ravel(), return_inverse=True)
    n_cl = int(cl.max()) + 1 if n else 0
    entropy = _entropy(seed)
    groups = [np.unique(v, return_inverse=True) for v in (*x, y)]
    groups = [(inv, u.size) for u, inv in groups]
    rho = np.array([spearman(row, y) for row in x], dtype=float)
    reps = np.empty((int(n_boot), m))
    block = max(1, _BLOCK_ELEMENTS * 4 // max(n, 1))
    for start in range(0, int(n_boot), block):
        stop = min(int(n_boot), start + block)
        w = cluster_multiplicities(entropy, n_cl, start, stop)[:, cl]
        ry = _weighted_midranks(*groups[-1], w)
        for k in range(m):
            reps[start:stop, k] = _weighted_pearson(_weighted_midranks(*groups[k], w), ry, w)
    alpha = (1.0 - confidence) / 2.0
    oriented = reps * sign
    diff_reps = oriented - oriented[:, [reference]]
    with _quiet():
        low, high = np.nanquantile(reps, [alpha, 1 - alpha], axis=0)
        d_low, d_high = np.nanquantile(diff_reps, [alpha, 1 - alpha], axis=0)
    diff = sign * rho - sign[reference] * rho[reference]
    out = {"rho": rho, "rho_low": low, "rho_high": high, "diff": diff, "diff_low": d_low,
           "diff_high": d_high, "n_clusters": n_cl, "n": n}
    if return_replicates:
        out["replicates"] = reps
    return out


def exact_transform(a, b) -> bool:
    """Whether ``b`` is a strictly monotone function of ``a`` on the observed pairs
    (so the two rank every observation identically, up to direction: one metric)."""
    a = np.asarray(a, dtype=float).ravel()
    b = np.asarray(b, dtype=float).ravel()
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if a.size == 0:
        return False
    ua, ia = np.unique(a, return_inverse=True)
    ub, ib = np.unique(b, return_inverse=True)
    if ua.size != ub.size:
        return False
    # a bijection between the distinct values that preserves or reverses their order
    pairs = np.unique(np.stack([ia, ib]), axis=1)
    if pairs.shape[1] != ua.size:
        return False
    return bool(np.all(pairs[1] == np.arange(ua.size))
                or np.all(pairs[1] == np.arange(ua.size)[::-1]))


# ----------------------------------------------------------------- cross-validated tuning


def cv_tuned_correct(fold_correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cross-validated tuning from per-fold correct counts.

    For each held-out fold ``k`` the gain is chosen on the other folds (the first
    maximum of their summed correct counts: the smallest gain index on ties) and the
    held-out fold is scored at it.

    Parameters
    ----------
    fold_correct : array_like, shape (..., G, K)
        Correct predictions in fold ``k`` at gain ``g``.

    Returns
    -------
    correct : ndarray of int, shape (...)
        Held-out correct predictions summed over the folds (divide by the split size).
    chosen : ndarray of int, shape (..., K)
        Gain index chosen for each held-out fold.
    """
    fc = np.asarray(fold_correct)
    others = fc.sum(axis=-1, keepdims=True) - fc  # (..., G, K): the K-1 training folds
    chosen = np.argmax(others, axis=-2)  # first maximum
    held = np.take_along_axis(fc, chosen[..., None, :], axis=-2)[..., 0, :]
    return held.sum(axis=-1), chosen


# ----------------------------------------------------------------- network from a readback


def _activate(z: np.ndarray, kind: int, threshold: float) -> np.ndarray:
    if kind == 0:
        return np.tanh(z)
    if kind == 1:
        return np.where(z >= threshold, 1.0, -1.0)
    return z


def readback_predictions(g, layer_in, layer_out, inv_dg: float, bias, X, gnorms,
                         hidden_sign: bool = False, out_tanh: bool = True,
                         threshold: float = 0.0, y=None):
    """Class predictions of the network whose weights are read back from the array.

    Each layer computes ``act((sum_f x_f w_fj) / gnorm + b_j)`` with the effective
    weight ``w_fj = (g[f, 2j] - g[f, 2j+1]) * inv_dg`` (the differential conductance
    of column pair ``j`` in units of the nominal ``G_P - G_AP``), summing in increasing
    ``f`` as the engine's linear read does; class = first argmax of the last layer. For
    a linear read (no bias-dependent TMR, read noise or comparator offsets) and ``g`` the
    engine's ``readback_conductance``, these are the engine's own predictions.

    Parameters
    ----------
    g : array_like, shape (..., n_devices)
        Effective conductances of the used cells (S), device order of ``mcmtj.run.schema.DEVICE``
        (layer-major, then row, then column).
    layer_in, layer_out : sequence of int
        Inputs and outputs (column pairs) per layer.
    inv_dg : float
        ``1 / (G_P - G_AP)`` of the nominal device (1/S).
    bias : array_like, shape (..., n_layers, max_out)
        Per-layer biases, broadcast against ``g``'s leading dims.
    X : array_like, shape (n_features, n_samples)
        Row inputs (in units of V_read).
    gnorms : sequence of float
        Read-out gains.
    hidden_sign, out_tanh : bool
        Hidden activation sign (else tanh); output tanh (else identity).
    threshold : float
        Threshold of the sign activation.

    y : array_like of int, shape (n_samples,), optional
        Labels: also return the mean classification margin.

    Returns
    -------
    preds : ndarray of int8, shape (..., len(gnorms), n_samples)
    margin : ndarray, shape (..., len(gnorms)), only with ``y``
        Mean over samples of (last-layer output of the true class) - (largest other
        output): positive when right, larger when right by more.
    """
    g = np.asarray(g, dtype=float)
    X = np.asarray(X, dtype=float)
    bias = np.asarray(bias, dtype=float)
    lead = g.shape[:-1]
    weffs, k = [], 0
    for n_in, n_out in zip(layer_in, layer_out, strict=True):
        n_in, n_out = int(n_in), int(n_out)
        gl = g[..., k:k + n_in * 2 * n_out].reshape(*lead, n_in, 2 * n_out)
        k += n_in * 2 * n_out
        weffs.append((gl[..., 0::2] - gl[..., 1::2]) * inv_dg)
    if k != g.shape[-1]:
        raise ValueError(f"g has {g.shape[-1]} devices but the layers use {k}")

    def sums(src, w):  # (..., n_in, N) x (..., n_in, n_out) -> (..., n_out, N)
        out = 0.0 + src[..., 0:1, :] * w[..., 0, :, None]
        for f in range(1, w.shape[-2]):
            out += src[..., f:f + 1, :] * w[..., f, :, None]
        return out

    n_layers = len(weffs)
    raw0 = sums(np.broadcast_to(X, (*lead, *X.shape)), weffs[0])
    preds = np.empty((*lead, len(gnorms), X.shape[1]), np.int8)
    margin = np.empty((*lead, len(gnorms)))
    if y is not None:
        y = np.asarray(y, dtype=np.int64)
        onehot = np.arange(int(layer_out[-1]))[:, None] == y[None, :]
    for gi, gn in enumerate(gnorms):
        act = raw0
        for l in range(n_layers):
            if l > 0:
                act = sums(act, weffs[l])
            n_out = weffs[l].shape[-1]
            kind = (0 if out_tanh else 2) if l == n_layers - 1 else (1 if hidden_sign else 0)
            act = _activate((act + 0.0) / gn + bias[..., l, :n_out, None], kind, threshold)
        preds[..., gi, :] = np.argmax(act, axis=-2)
        if y is not None:
            true = np.where(onehot, act, 0.0).sum(axis=-2)
            other = np.where(onehot, -np.inf, act).max(axis=-2)
            margin[..., gi] = (true - other).mean(axis=-1)
    return preds if y is None else (preds, margin)


def bootstrap_solutions_and_samples(correct, targets, n_boot: int = 1000, confidence: float = 0.95,
                       seed=0, tolerance: float = 1e-9) -> dict:
    """Yield and mean accuracy with intervals that also cover the finite test set.

    Each replicate resamples the solutions (clusters of instances) and, independently,
    the test samples, both with replacement, and recomputes every instance's accuracy on
    the resampled test set; the Monte Carlo spread over dies is carried by the instances
    of the drawn solutions. So the interval covers: another draw of solutions from the
    same training procedure, another test set of the same size from the same population,
    and the dies -- not the Monte Carlo noise alone (that is the Wilson interval).

    Parameters
    ----------
    correct : array_like of bool, shape (n_solutions, n_instances, n_samples)
        Whether instance ``i`` of solution ``s`` classifies test sample ``k`` right.
    targets : sequence of float
        Accuracies an instance must reach (``>= target - tolerance``).
    n_boot, confidence, seed
        Replicates, two-sided level, int seed (solutions are drawn from the streams of
        :func:`bootstrap_indices` with root ``[seed, 0]``, samples with ``[seed, 1]``).

    Returns
    -------
    dict
        ``yield``, ``yield_low``, ``yield_high`` (len(targets),); ``mean``,
        ``mean_low``, ``mean_high`` (scalars).
    """
    c = np.asarray(correct, dtype=float)
    S, I, N = c.shape
    t = np.asarray(targets, dtype=float).ravel()
    entropy = int(_entropy(seed))
    acc = c.mean(axis=-1)
    point_y = np.array([(acc >= x - tolerance).mean() for x in t])
    flat = c.reshape(S * I, N)
    ys = np.empty((int(n_boot), t.size))
    ms = np.empty(int(n_boot))
    block = max(1, _BLOCK_ELEMENTS * 4 // max(S * I, 1))
    for start in range(0, int(n_boot), block):
        stop = min(int(n_boot), start + block)
        sol = _multiplicities(bootstrap_indices([entropy, 0], S, start, stop))
        smp = _multiplicities(bootstrap_indices([entropy, 1], N, start, stop))
        a = (flat @ smp.T).reshape(S, I, stop - start) / N  # accuracy per instance, replicate
        wsol = sol.T[:, None, :] / (S * I)  # (S, 1, b)
        ms[start:stop] = (a * wsol).sum(axis=(0, 1))
        for j, x in enumerate(t):
            ys[start:stop, j] = ((a >= x - tolerance) * wsol).sum(axis=(0, 1))
    alpha = (1.0 - confidence) / 2.0
    y_lo, y_hi = np.quantile(ys, [alpha, 1 - alpha], axis=0)
    m_lo, m_hi = np.quantile(ms, [alpha, 1 - alpha])
    return {"yield": point_y, "yield_low": y_lo, "yield_high": y_hi, "mean": float(acc.mean()),
            "mean_low": float(m_lo), "mean_high": float(m_hi)}
