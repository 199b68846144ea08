"""Tests of the analysis layer: NumPy cores against references, xarray wrappers on dims."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from mcmtj.analysis import (
    DEFAULT_METRICS,
    accuracy_stats,
    device_sensitivity,
    metric_correlations,
    sensitivity_weighted_fidelity,
    tune,
    wilson_interval,
    yield_fraction,
)
from mcmtj.analysis import _np as core
from mcmtj.run.schema import (
    ACCURACY,
    ACCURACY_TRAIN,
    AGREEMENT,
    CURRENT_RMSE,
    GNORM,
    INSTANCE,
    N_SHORT,
    SOFTWARE_ACCURACY,
    SOLUTION,
    WEIGHT_FIDELITY,
    WRITE_FIDELITY,
)

N_TEST = 36  # evaluation samples: accuracies are multiples of 1/36, as in real results


def make_results(
    seed=0, sweep=(40e-9, 60e-9), n_solution=4, n_instance=30, gnorm=(0.5, 1.0, 2.0)
) -> xr.Dataset:
    """A small synthetic result Dataset; ``gnorm=None`` gives one without the gnorm dim."""
    rng = np.random.default_rng(seed)
    shape = (len(sweep), n_solution, n_instance)
    dims = ("diameter", SOLUTION, INSTANCE)
    coords = {"diameter": list(sweep)}
    weight_fid = rng.uniform(0.7, 1.0, shape)
    write_fid = np.clip(weight_fid + rng.normal(0, 0.15, shape), 0, 1)
    base = weight_fid + rng.normal(0, 0.05, shape)
    acc_dims, acc_shape = dims, shape
    if gnorm is not None:
        acc_dims = dims + (GNORM,)
        acc_shape = shape + (len(gnorm),)
        coords[GNORM] = list(gnorm)
        base = base[..., None] + rng.normal(0, 0.05, acc_shape)
    accuracy = np.clip(np.round(base * N_TEST), 0, N_TEST) / N_TEST
    train = np.clip(np.round((base + rng.normal(0, 0.03, acc_shape)) * 142), 0, 142) / 142
    soft_shape = (n_solution,) + (() if gnorm is None else (len(gnorm),))
    soft_dims = (SOLUTION,) + (() if gnorm is None else (GNORM,))
    return xr.Dataset(
        {
            ACCURACY: (acc_dims, accuracy),
            ACCURACY_TRAIN: (acc_dims, train),
            WRITE_FIDELITY: (dims, write_fid),
            WEIGHT_FIDELITY: (dims, weight_fid),
            AGREEMENT: (dims, rng.uniform(0.8, 1.0, shape)),
            N_SHORT: (dims, np.zeros(shape, dtype=np.int64)),  # constant: rho undefined
            SOFTWARE_ACCURACY: (soft_dims, np.full(soft_shape, 0.97)),
        },
        coords=coords,
    )


# --------------------------------------------------------------------------- Wilson


def test_wilson_matches_published_values():
    # Newcombe (1998), Stat. Med. 17:857, Table II, method 3 (score, no continuity correction).
    k = np.array([81, 15, 0, 1])
    n = np.array([263, 148, 20, 29])
    low, high = wilson_interval(k, n)
    np.testing.assert_allclose(low, [0.2553, 0.0624, 0.0, 0.0061], atol=5e-5)
    np.testing.assert_allclose(high, [0.3662, 0.1605, 0.1611, 0.1718], atol=5e-5)


def test_wilson_hand_formula_edges_and_shapes():
    low, high = wilson_interval(8, 10, confidence=0.95)
    z = scipy.stats.norm.ppf(0.975)
    p, m = 0.8, 10
    centre = (p + z**2 / (2 * m)) / (1 + z**2 / m)
    half = z * np.sqrt(p * (1 - p) / m + z**2 / (4 * m * m)) / (1 + z**2 / m)
    assert low == pytest.approx(centre - half, rel=1e-12)
    assert high == pytest.approx(centre + half, rel=1e-12)
    assert np.isscalar(low) or np.ndim(low) == 0
    # Exactly 0 / 1 at the edges, NaN without trials, broadcasting over shapes.
    low, high = wilson_interval([[0, 5, 5]], [[5], [5]])
    assert low.shape == (2, 3)
    assert np.all(low[:, 0] == 0.0) and np.all(high[:, 1] == 1.0)
    low, high = wilson_interval(0, 0)
    assert np.isnan(low) and np.isnan(high)
    # A higher level gives a wider interval.
    assert wilson_interval(8, 10, 0.99)[0] < wilson_interval(8, 10, 0.9)[0]
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(11, 10)
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 10, confidence=95)


def test_wilson_coverage_on_bernoulli_data():
    rng = np.random.default_rng(20240601)
    p, n, repeats = 0.9, 200, 2000
    successes = (rng.random((repeats, n)) < p).sum(axis=1)
    low, high = wilson_interval(successes, n, confidence=0.95)
    coverage = np.mean((low <= p) & (p <= high))
    assert 0.93 <= coverage <= 0.97


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 10_000),
    frac=st.floats(0, 1),
    confidence=st.floats(0.5, 0.999),
)
def test_wilson_contains_estimate_and_stays_in_unit_interval(n, frac, confidence):
    k = int(round(frac * n))
    low, high = wilson_interval(k, n, confidence)
    assert 0.0 <= low <= k / n <= high <= 1.0


# --------------------------------------------------------------------------- yield


@pytest.mark.parametrize("gnorm", [(0.5, 1.0, 2.0), None])
def test_yield_matches_direct_count(gnorm):
    ds = make_results(gnorm=gnorm)
    ds[ACCURACY][0, 1, :5] = np.nan  # not simulated yet: not a trial
    target = 30 / N_TEST
    out = yield_fraction(ds, target)
    acc = ds[ACCURACY]
    direct_k = (acc >= target - 1e-9).sum([SOLUTION, INSTANCE])
    direct_n = acc.notnull().sum([SOLUTION, INSTANCE])
    xr.testing.assert_equal(out["n_success"], direct_k.rename("n_success").drop_attrs())
    np.testing.assert_array_equal(out["n"], direct_n)
    np.testing.assert_allclose(out["yield"], direct_k / direct_n)
    low, high = wilson_interval(direct_k.values, direct_n.values)
    np.testing.assert_allclose(out["yield_low"], low)
    np.testing.assert_allclose(out["yield_high"], high)
    assert set(out["yield"].dims) == {"diameter"} | ({GNORM} if gnorm else set())
    assert out["n"].sel(diameter=40e-9).min() == 4 * 30 - 5


def test_yield_target_sequence_dataarray_and_rounding():
    ds = make_results(gnorm=None)
    curve = yield_fraction(ds[ACCURACY], [0.5, 0.8, 0.9, 1.01])
    assert curve["yield"].dims == ("diameter", "target")
    assert np.all(np.diff(curve["yield"].values, axis=-1) <= 0)  # non-increasing in target
    assert np.all(curve["yield"].sel(target=1.01) == 0)
    # Per-solution target: within 0.1 of the software accuracy of the same solution.
    rel = yield_fraction(ds, ds[SOFTWARE_ACCURACY] - 0.1)
    direct = (ds[ACCURACY] >= 0.87 - 1e-9).mean([SOLUTION, INSTANCE])
    np.testing.assert_allclose(rel["yield"], direct)
    # An accuracy computed as a mean of booleans may be 0.8999999999999999.
    acc = xr.DataArray([np.nextafter(0.9, 0.0)] * 3, dims=[INSTANCE])
    assert float(yield_fraction(acc, 0.9, dims=INSTANCE)["yield"]) == 1.0
    with pytest.raises(ValueError, match="no dim"):
        yield_fraction(ds, 0.9, dims=("solution", "die"))


# --------------------------------------------------------------------------- stats


@pytest.mark.parametrize("gnorm", [(0.5, 1.0, 2.0), None])
def test_accuracy_stats_against_numpy(gnorm):
    ds = make_results(gnorm=gnorm)
    q = (0.05, 0.5, 0.95)
    out = accuracy_stats(ds, quantiles=q)
    acc = ds[ACCURACY].transpose("diameter", *([GNORM] if gnorm else []), SOLUTION, INSTANCE)
    flat = acc.values.reshape(acc.shape[:-2] + (-1,))
    np.testing.assert_allclose(out["mean"], flat.mean(-1))
    np.testing.assert_allclose(out["median"], np.median(flat, -1))
    np.testing.assert_allclose(out["std"], flat.std(-1, ddof=1))
    np.testing.assert_allclose(
        out["quantiles"].transpose(..., "quantile"), np.moveaxis(np.quantile(flat, q, -1), 0, -1)
    )
    np.testing.assert_array_equal(out["quantile"], q)
    assert np.all(out["count"] == flat.shape[-1])
    # Per solution: pool instances only.
    per_solution = accuracy_stats(ds, dims=INSTANCE)
    assert SOLUTION in per_solution["mean"].dims
    xr.testing.assert_allclose(
        per_solution["mean"], ds[ACCURACY].mean(INSTANCE).transpose(*per_solution["mean"].dims)
    )


def test_accuracy_stats_nan_and_dask():
    ds = make_results()
    ds[ACCURACY][0, 0] = np.nan
    ds[ACCURACY][1] = np.nan  # a sweep point with no result at all: NaN, no warning
    out = accuracy_stats(ds, var=ACCURACY)
    expect = ds[ACCURACY][0].values.transpose(2, 0, 1).reshape(3, -1)
    np.testing.assert_allclose(out["mean"][0], np.nanmean(expect, -1))
    assert np.all(np.isnan(out["mean"][1])) and np.all(out["count"][1] == 0)
    pytest.importorskip("dask")
    chunked = accuracy_stats(ds.chunk({"diameter": 1, INSTANCE: 7}))
    xr.testing.assert_allclose(chunked.compute(), out)


# --------------------------------------------------------------------------- tune


def planted_tuning_dataset(n_instance=6):
    """Solution 0: test accuracy best at gnorm[0], where train accuracy is worst.

    Train accuracy peaks at gnorm[2] for every instance; solution 1 is a tie at
    gnorm[1] and gnorm[3], so the first maximum must win.
    """
    grid = [0.25, 0.5, 1.0, 2.0]
    train = np.empty((2, n_instance, 4))
    test = np.empty((2, n_instance, 4))
    train[0] = [0.60, 0.80, 0.95, 0.85]
    test[0] = [0.99, 0.70, 0.90, 0.75]
    train[1] = [0.70, 0.90, 0.80, 0.90]
    test[1] = [0.95, 0.60, 0.97, 0.65]
    train[0, 0] = [0.60, 0.96, 0.95, 0.85]  # one instance of solution 0 prefers gnorm[1]
    dims = (SOLUTION, INSTANCE, GNORM)
    return xr.Dataset({ACCURACY: (dims, test), ACCURACY_TRAIN: (dims, train)}, coords={GNORM: grid})


def test_tune_follows_train_never_test():
    ds = planted_tuning_dataset()
    out = tune(ds, per="instance")
    assert out["gnorm_chosen"].dims == (SOLUTION, INSTANCE)
    np.testing.assert_array_equal(out["gnorm_chosen"][0, 1:], 1.0)
    assert float(out["gnorm_chosen"][0, 0]) == 0.5
    np.testing.assert_array_equal(out[ACCURACY][0, 1:], 0.90)  # not 0.99
    np.testing.assert_array_equal(out[ACCURACY_TRAIN][0, 1:], 0.95)
    np.testing.assert_array_equal(out["gnorm_index"][1], 1)  # tie: first maximum
    np.testing.assert_array_equal(out[ACCURACY][1], 0.60)


def test_tune_per_solution_uses_median_over_instances():
    ds = planted_tuning_dataset()
    out = tune(ds, per="solution")
    assert out["gnorm_chosen"].dims == (SOLUTION,)
    np.testing.assert_array_equal(out["gnorm_chosen"], [1.0, 0.5])
    np.testing.assert_array_equal(out[ACCURACY][0], 0.90)  # instance 0 too: one value for all
    assert out[ACCURACY].dims == (SOLUTION, INSTANCE)


def test_tune_with_sweep_dims_nan_and_dask():
    ds = make_results()
    ds[ACCURACY_TRAIN][0, 0, 0] = np.nan  # all-NaN select_on: no choice, NaN result
    ds[ACCURACY_TRAIN][0, 0, 1, 0] = np.nan  # a NaN is skipped, never chosen
    out = tune(ds)
    train = ds[ACCURACY_TRAIN].values
    idx = np.argmax(np.where(np.isnan(train), -np.inf, train), axis=-1)
    expect = np.take_along_axis(ds[ACCURACY].values, idx[..., None], -1)[..., 0]
    expect[0, 0, 0] = np.nan
    np.testing.assert_array_equal(out[ACCURACY].values, expect)
    assert int(out["gnorm_index"][0, 0, 0]) == -1 and np.isnan(out["gnorm_chosen"][0, 0, 0])
    assert out[ACCURACY].dims == ("diameter", SOLUTION, INSTANCE)
    pytest.importorskip("dask")
    chunked = tune(ds.chunk({"diameter": 1, GNORM: 2})).compute()
    xr.testing.assert_identical(chunked, out)


def test_tune_errors_are_clear():
    ds = planted_tuning_dataset()
    with pytest.raises(ValueError, match="biases"):
        tune(ds, select_on=ACCURACY, report=ACCURACY)
    with pytest.raises(ValueError, match="no dim 'threshold'"):
        tune(ds, over="threshold")
    with pytest.raises(ValueError, match="per"):
        tune(ds, per="die")
    with pytest.raises(KeyError, match="accuracy_train"):
        tune(ds.drop_vars(ACCURACY_TRAIN))
    no_grid = make_results(gnorm=None)
    with pytest.raises(ValueError, match="no dim 'gnorm'"):
        tune(no_grid)


def test_first_argmax_and_take_index_cores():
    v = np.array([[1.0, 3.0, 3.0], [np.nan, np.nan, np.nan], [np.nan, 2.0, 1.0]])
    idx = core.first_argmax(v)
    np.testing.assert_array_equal(idx, [1, -1, 1])
    np.testing.assert_array_equal(core.take_index(v * 10, idx), [30.0, np.nan, 20.0])


# --------------------------------------------------------------------------- Spearman


def test_spearman_matches_scipy_with_ties_nan_and_constant():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 5, size=(4, 50)).astype(float)  # heavy ties, like counters
    y = x[0] + rng.normal(size=50)
    x[1, :7] = np.nan
    x[3] = 2.0
    rho = core.spearman(x, y)
    for i in range(3):
        expect = scipy.stats.spearmanr(x[i], y, nan_policy="omit").statistic
        assert rho[i] == pytest.approx(expect, abs=1e-12)
    assert np.isnan(rho[3])
    # Several axes pooled equal the flattened sample.
    grid = rng.normal(size=(3, 5, 8))
    target = grid + rng.normal(size=grid.shape)
    pooled = core.spearman(grid, target, axis=(0, 2))
    expect = [
        scipy.stats.spearmanr(grid[:, j].ravel(), target[:, j].ravel()).statistic for j in range(5)
    ]
    np.testing.assert_allclose(pooled, expect, atol=1e-12)


def test_bootstrap_replicates_equal_spearman_of_explicit_resamples():
    rng = np.random.default_rng(4)
    x = rng.integers(0, 6, size=(3, 60)).astype(float)
    y = np.round(x[0] + rng.normal(size=60))
    x[1, :9] = np.nan
    x[2, :] = 0.0
    x[2, :3] = 1.0  # rare counter: some resamples miss it entirely (rho undefined)
    rho, low, high, reps = core.spearman_bootstrap(x, y, n_boot=40, seed=11, return_replicates=True)
    idx = core.bootstrap_indices(11, 60, 0, 40)
    for i in range(3):
        for b in range(40):
            xb, yb = x[i, idx[b]], y[idx[b]]
            valid = ~np.isnan(xb)
            if np.unique(xb[valid]).size < 2:
                assert np.isnan(reps[i, b])
            else:
                expect = scipy.stats.spearmanr(xb, yb, nan_policy="omit").statistic
                assert reps[i, b] == pytest.approx(expect, abs=1e-12)
    assert np.all(low <= rho) and np.all(rho <= high)


def test_bootstrap_reproducible_for_a_seed_and_independent_of_blocking(monkeypatch):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 300))
    y = x[0] + 2 * rng.normal(size=300)
    first = core.spearman_bootstrap(x, y, n_boot=200, seed=7)
    again = core.spearman_bootstrap(x, y, n_boot=200, seed=7)
    other = core.spearman_bootstrap(x, y, n_boot=200, seed=8)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[1], other[1])
    np.testing.assert_array_equal(first[0], other[0])  # the point estimate takes no seed
    monkeypatch.setattr(core, "_BLOCK_ELEMENTS", 7 * 300)
    monkeypatch.setattr(core, "_GROUP_ELEMENTS", 300)
    blocked = core.spearman_bootstrap(x, y, n_boot=200, seed=7)
    for a, b in zip(first, blocked, strict=True):
        np.testing.assert_array_equal(a, b)


def test_bootstrap_interval_covers_population_rho():
    # Bivariate normal with r = 0.6: Spearman rho_s = 6/pi asin(r/2).
    rng = np.random.default_rng(6)
    r = 0.6
    true = 6 / np.pi * np.arcsin(r / 2)
    cov = [[1, r], [r, 1]]
    data = rng.multivariate_normal([0, 0], cov, size=(40, 150))
    _, low, high = core.spearman_bootstrap(data[..., 0], data[..., 1], n_boot=300, seed=1)
    coverage = np.mean((low <= true) & (true <= high))
    assert coverage >= 0.85  # 40 experiments at nominal 0.95


def test_rank_by_magnitude():
    ranks = core.rank_by_magnitude(np.array([0.2, -0.9, np.nan, 0.5, -0.2]))
    np.testing.assert_array_equal(ranks, [3, 1, 5, 2, 4])


# --------------------------------------------------------------------------- metric ranking


@pytest.mark.parametrize("gnorm", [(0.5, 1.0, 2.0), None])
def test_metric_correlations_rank_and_values(gnorm):
    ds = make_results(gnorm=gnorm, n_instance=50)
    out = metric_correlations(ds, n_boot=200, seed=0)
    assert list(out["metric"].values) == [WRITE_FIDELITY, WEIGHT_FIDELITY, AGREEMENT, N_SHORT]
    assert CURRENT_RMSE in out.attrs["skipped_metrics"].split()
    assert out["rho"].dims == ("metric", "diameter") + ((GNORM,) if gnorm else ())
    # Accuracy was built from weight fidelity: it must rank first, everywhere.
    assert np.all(out["rank"].sel(metric=WEIGHT_FIDELITY) == 1)
    assert np.all(np.isnan(out["rho"].sel(metric=N_SHORT)))
    assert np.all(out["rank"].sel(metric=N_SHORT) == 4)
    # rho equals scipy on the pooled sample, and sits inside its interval.
    point = {"diameter": 60e-9, **({GNORM: 2.0} if gnorm else {})}
    acc = ds[ACCURACY].sel(point).values.ravel()
    for metric in (WRITE_FIDELITY, WEIGHT_FIDELITY):
        expect = scipy.stats.spearmanr(ds[metric].sel(diameter=60e-9).values.ravel(), acc)
        got = out.sel(point).sel(metric=metric)
        assert float(got["rho"]) == pytest.approx(expect.statistic, abs=1e-12)
        assert got["rho_low"] <= got["rho"] <= got["rho_high"]
    assert np.all(out["n"].sel(metric=WRITE_FIDELITY) == 4 * 50)


def test_metric_correlations_reproducible_and_dask_identical():
    ds = make_results(n_instance=20)
    first = metric_correlations(ds, n_boot=100, seed=3)
    xr.testing.assert_identical(first, metric_correlations(ds, n_boot=100, seed=3))
    other = metric_correlations(ds, n_boot=100, seed=4)
    assert not np.array_equal(first["rho_low"], other["rho_low"], equal_nan=True)
    pytest.importorskip("dask")
    chunked = metric_correlations(ds.chunk({"diameter": 1, GNORM: 1}), n_boot=100, seed=3)
    xr.testing.assert_identical(chunked.compute(), first)


def test_metric_correlations_needs_a_metric():
    ds = make_results()
    assert set(DEFAULT_METRICS) >= {WRITE_FIDELITY, WEIGHT_FIDELITY, AGREEMENT, CURRENT_RMSE}
    with pytest.raises(ValueError, match="none of the metrics"):
        metric_correlations(ds, metrics=("nonexistent",), n_boot=10)
    with pytest.raises(KeyError, match="accuracy_train"):
        metric_correlations(ds.drop_vars(ACCURACY_TRAIN), target=ACCURACY_TRAIN, n_boot=10)


# --------------------------------------------------------------------------- sensitivity


def test_sensitivity_weighted_fidelity():
    correct = np.array([[True, True, False, True], [False, False, False, False]])
    w = np.array([0.0, 0.1, 0.3, 0.6])
    np.testing.assert_allclose(sensitivity_weighted_fidelity(correct, w), [0.7, 0.0])
    # Equal weights: plain write fidelity; zero weights: nothing matters, fidelity 1.
    assert sensitivity_weighted_fidelity(correct[0], np.ones(4)) == pytest.approx(0.75)
    np.testing.assert_array_equal(sensitivity_weighted_fidelity(correct, np.zeros(4)), [1.0, 1.0])
    np.testing.assert_allclose(sensitivity_weighted_fidelity(correct.astype(int), w), [0.7, 0.0])
    with pytest.raises(ValueError, match="last axis"):
        sensitivity_weighted_fidelity(correct, w[:3])
    with pytest.raises(ValueError, match=">= 0"):
        sensitivity_weighted_fidelity(correct, -w)
    with pytest.raises(ValueError, match="boolean"):
        sensitivity_weighted_fidelity(correct * 0.5, w)


def test_device_sensitivity():
    # Toy network: flipping device k costs loss[k]; device 2's flip happens to help.
    loss = np.array([0.1, 0.0, -0.05, 0.3])
    calls = []

    def accuracy_fn(k):
        calls.append(k)
        return 0.9 if k is None else 0.9 - loss[k]

    w = device_sensitivity(accuracy_fn, 4)
    np.testing.assert_allclose(w, [0.1, 0.0, 0.0, 0.3])
    assert calls == [None, 0, 1, 2, 3]
    flipped_all_but_first = np.array([True, False, False, False])
    assert sensitivity_weighted_fidelity(flipped_all_but_first, w) == pytest.approx(0.25)


# ------------------------------------------------- paired cluster bootstrap, CV tuning


def _clustered(seed=3, n_clusters=12, per=9):
    rng = np.random.default_rng(seed)
    clusters = np.repeat(np.arange(n_clusters), per)
    level = rng.normal(size=n_clusters)[clusters]
    y = np.round(level + rng.normal(0, 0.5, clusters.size), 1)  # rounded: ties
    x = np.stack([
        np.round(level + rng.normal(0, 1.0, clusters.size), 1),
        -np.round(level + rng.normal(0, 0.3, clusters.size), 1),  # an error-like metric
        rng.integers(0, 3, clusters.size).astype(float),
    ])
    return x, y, clusters


def test_cluster_bootstrap_replicates_equal_scipy_on_explicit_resamples():
    x, y, clusters = _clustered()
    out = core.paired_cluster_bootstrap(x, y, clusters, n_boot=7, seed=11,
                                        return_replicates=True)
    counts = core.cluster_multiplicities(np.random.SeedSequence(11).entropy, 12, 0, 7)
    for b in range(7):
        # the resample spelled out: every observation of a drawn cluster, once per draw
        idx = np.concatenate([np.flatnonzero(clusters == c).repeat(int(k))
                              for c, k in enumerate(counts[b]) if k > 0])
        for m in range(3):
            expected = scipy.stats.spearmanr(x[m, idx], y[idx]).statistic
            assert out["replicates"][b, m] == pytest.approx(expected, abs=1e-12)
    for m in range(3):
        assert out["rho"][m] == pytest.approx(scipy.stats.spearmanr(x[m], y).statistic)


def test_paired_differences_are_oriented_and_paired():
    x, y, clusters = _clustered()
    x = np.vstack([x, x[0]])  # an exact copy of the reference
    out = core.paired_cluster_bootstrap(x, y, clusters, n_boot=200, seed=1,
                                        orientation=[1, -1, 1, 1])
    assert out["diff"][0] == 0 and out["diff_low"][0] == 0 and out["diff_high"][0] == 0
    # the copy: every paired replicate difference is exactly 0
    assert out["diff_low"][3] == 0 and out["diff_high"][3] == 0
    # the error-like metric is compared by -rho: strongly better than the noisy reference
    assert out["diff"][1] == pytest.approx(-out["rho"][1] - out["rho"][0])
    assert out["diff_low"][1] > 0
    assert out["rho_low"][0] <= out["rho"][0] <= out["rho_high"][0]
    assert out["n_clusters"] == 12


def test_cluster_bootstrap_is_wider_than_pairs_bootstrap_for_clustered_data():
    x, y, clusters = _clustered(n_clusters=10, per=40)
    cl = core.paired_cluster_bootstrap(x[:1], y, clusters, n_boot=300, seed=2)
    _, low, high = core.spearman_bootstrap(x[0], y, n_boot=300, seed=2)
    assert cl["rho_high"][0] - cl["rho_low"][0] > 1.5 * (high - low)


def test_cluster_bootstrap_rejects_bad_input():
    with pytest.raises(ValueError, match="finite"):
        core.paired_cluster_bootstrap([[1.0, np.nan]], [1.0, 2.0], [0, 1])
    with pytest.raises(ValueError, match="observations"):
        core.paired_cluster_bootstrap([[1.0, 2.0]], [1.0, 2.0, 3.0], [0, 1])


def test_exact_transform():
    a = np.array([0.9, 1.0, 0.95, 0.9, 1.0])
    assert core.exact_transform(a, 1 - a) and core.exact_transform(a, 20 * (1 - a))
    assert core.exact_transform(a, a**2)
    assert not core.exact_transform(a, np.array([1, 2, 3, 1, 1.0]))  # a tie split
    assert not core.exact_transform(a, np.array([1, 1, 1, 1, 2.0]))  # two values merged
    assert not core.exact_transform(np.array([1, 2, 3.0]), np.array([2, 3, 1.0]))


def test_cv_tuned_correct_equals_a_plain_loop():
    rng = np.random.default_rng(5)
    fold_correct = rng.integers(0, 10, size=(4, 3, 5, 4))  # (..., G=5, K=4)
    correct, chosen = core.cv_tuned_correct(fold_correct)
    for idx in np.ndindex(4, 3):
        total = 0
        for k in range(4):
            train = [sum(fold_correct[idx][g, j] for j in range(4) if j != k)
                     for g in range(5)]
            best = train.index(max(train))  # first maximum
            assert chosen[idx][k] == best
            total += fold_correct[idx][best, k]
        assert correct[idx] == total


def test_readback_predictions_equal_a_matrix_forward_pass():
    """Against an independent forward pass written with matrix products."""
    rng = np.random.default_rng(0)
    layer_in, layer_out = (4, 3), (3, 2)
    g = rng.uniform(1e-4, 3e-4, size=(2, 5, 4 * 6 + 3 * 4))
    bias = rng.normal(0, 0.3, size=(2, 1, 2, 3))
    X = rng.uniform(0, 1, size=(4, 7))
    gnorms = [0.5, 1.0]
    inv_dg = 1 / 1.5e-4
    pred = core.readback_predictions(g, layer_in, layer_out, inv_dg, bias, X, gnorms)
    for s, i, gi in np.ndindex(2, 5, 2):
        G0 = g[s, i, :24].reshape(4, 6)
        G1 = g[s, i, 24:].reshape(3, 4)
        W0 = (G0[:, ::2] - G0[:, 1::2]) * inv_dg
        W1 = (G1[:, ::2] - G1[:, 1::2]) * inv_dg
        h = np.tanh(X.T @ W0 / gnorms[gi] + bias[s, 0, 0, :3])
        o = np.tanh(h @ W1 / gnorms[gi] + bias[s, 0, 1, :2])
        np.testing.assert_array_equal(pred[s, i, gi], o.argmax(axis=1))


def test_bootstrap_over_solutions_and_test_samples_equals_explicit_resamples():
    rng = np.random.default_rng(4)
    correct = rng.random((6, 5, 10)) < rng.uniform(0.5, 0.95, (6, 1, 1))
    targets = [0.7, 0.9]
    out = core.bootstrap_solutions_and_samples(correct, targets, n_boot=40, seed=9,
                                               confidence=0.8)
    sols = core.bootstrap_indices([9, 0], 6, 0, 40)
    smps = core.bootstrap_indices([9, 1], 10, 0, 40)
    ys, ms = [], []
    for b in range(40):
        acc = correct[sols[b]][:, :, smps[b]].mean(axis=-1)  # the resample spelled out
        ys.append([(acc >= t - 1e-9).mean() for t in targets])
        ms.append(acc.mean())
    np.testing.assert_allclose(out["yield_low"], np.quantile(ys, 0.1, axis=0), atol=1e-12)
    np.testing.assert_allclose(out["yield_high"], np.quantile(ys, 0.9, axis=0), atol=1e-12)
    assert out["mean_low"] == pytest.approx(np.quantile(ms, 0.1), abs=1e-12)
    assert out["mean"] == pytest.approx(correct.mean())
    np.testing.assert_allclose(out["yield"], [(correct.mean(-1) >= t - 1e-9).mean()
                                              for t in targets])
