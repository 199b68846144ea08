"""Figure functions: draw stored results only, bins on the discrete values, Axes back."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

from mcmtj import plotting  # noqa: E402
from mcmtj.analysis import metric_correlations, tune  # noqa: E402
from mcmtj.schema import (  # noqa: E402
    ACCURACY,
    ACCURACY_TRAIN,
    AGREEMENT,
    GNORM,
    INSTANCE,
    SOFTWARE_ACCURACY,
    SOFTWARE_ACCURACY_TRAIN,
    SOLUTION,
    WEIGHT_FIDELITY,
    WRITE_FIDELITY,
)

N_TEST, N_TRAIN, N_DEV = 30, 148, 192


def results(seed=0, n_sol=6, n_inst=20, grid=(1.0, 0.5, 1.5)):
    """Synthetic results on the real lattices (accuracy k/30, write fidelity k/192)."""
    rng = np.random.default_rng(seed)
    sizes = [40e-9, 60e-9, 80e-9]
    shape = (len(sizes), n_sol, n_inst)
    wrong = rng.poisson(4, shape)
    wf = 1 - wrong / N_DEV
    quality = wf[..., None] - 0.1 * np.abs(np.log(np.asarray(grid)))
    acc = np.clip(
        np.round((quality + rng.normal(0, 0.05, shape + (len(grid),))) * N_TEST), 0, N_TEST
    )
    acc_train = np.clip(np.round((quality + rng.normal(0, 0.03, acc.shape)) * N_TRAIN), 0, N_TRAIN)
    dims = ("diameter", SOLUTION, INSTANCE)
    gdims = dims + (GNORM,)
    sw = np.round(rng.uniform(0.8, 1.0, (len(sizes), n_sol, len(grid))) * N_TEST) / N_TEST
    return xr.Dataset(
        {
            ACCURACY: (gdims, acc / N_TEST),
            ACCURACY_TRAIN: (gdims, acc_train / N_TRAIN),
            AGREEMENT: (gdims, acc / N_TEST),
            WRITE_FIDELITY: (dims, wf),
            WEIGHT_FIDELITY: (dims, 1 - wrong / 78),
            "n_write_errors": (dims, wrong),
            SOFTWARE_ACCURACY: (("diameter", SOLUTION, GNORM), sw),
            SOFTWARE_ACCURACY_TRAIN: (("diameter", SOLUTION, GNORM), sw),
        },
        coords={"diameter": sizes, GNORM: list(grid)},
        attrs={"solutions": "synthetic"},
    )


def devices():
    rng = np.random.default_rng(1)
    sizes = np.array([40e-9, 100e-9])
    rp = 1e-11 / (np.pi / 4 * sizes[:, None] ** 2) * np.exp(0.05 * rng.standard_normal((2, 500)))
    return xr.Dataset(
        {
            "r_parallel": (("diameter", "device"), rp),
            "r_antiparallel": (("diameter", "device"), 2.2 * rp),
        },
        coords={"diameter": sizes},
    )


@pytest.fixture(autouse=True)
def no_simulation(monkeypatch):
    """Plotting must never simulate: the engine raises if anything calls it."""
    import mcmtj
    import mcmtj.engine

    def forbidden(*args, **kwargs):
        raise AssertionError("a plotting function called the simulator")

    for module in (mcmtj, mcmtj.engine):
        monkeypatch.setattr(module, "simulate", forbidden)
        monkeypatch.setattr(module, "prepare", forbidden)
    monkeypatch.setattr(mcmtj.engine, "run_block", forbidden)
    yield
    plt.close("all")


def test_lattice_edges_put_one_bin_on_each_discrete_value():
    values = np.array([27, 28, 30, 29, 25]) / 30  # 26/30 missing: still one bin each
    edges = plotting._lattice_edges(values)
    np.testing.assert_allclose(np.diff(edges), 1 / 30)
    counts, _ = np.histogram(values, edges)
    np.testing.assert_array_equal(counts, [1, 0, 1, 1, 1, 1])
    centres = 0.5 * (edges[:-1] + edges[1:])
    np.testing.assert_allclose(centres, np.arange(25, 31) / 30)
    # off-lattice data fall back to uniform bins covering the range
    rough = np.random.default_rng(0).uniform(0, 1, 100)
    edges = plotting._lattice_edges(rough)
    assert edges.size == 31 and edges[0] <= rough.min() and edges[-1] >= rough.max()
    assert plotting._lattice_edges(np.array([0.5, 0.5])).size == 2


@pytest.mark.parametrize("tuned", [False, True])
def test_accuracy_vs_write_fidelity_counts_every_instance(tuned):
    ds = results()
    ax = plotting.accuracy_vs_write_fidelity(ds, tuned=tuned)
    assert isinstance(ax, plt.Axes)
    mesh = ax.collections[0]
    assert (
        np.nansum(mesh.get_array())
        == ds.sizes["diameter"] * ds.sizes[SOLUTION] * ds.sizes[INSTANCE]
    )
    assert "write fidelity (%)" in ax.get_xlabel() and "(%)" in ax.get_ylabel()


def test_accuracy_vs_write_fidelity_keeps_its_cli_call_for_small_data():
    ds = results(n_sol=1, n_inst=3).isel(diameter=[0])
    ax = plotting.accuracy_vs_write_fidelity(ds, gnorm=0.5)
    assert isinstance(ax, plt.Axes) and ax.get_lines()


def test_write_fidelity_distribution_sums_to_100_per_size():
    ds = results()
    ax = plotting.write_fidelity_distribution(ds)
    patches = ax.patches
    assert len(patches) == ds.sizes["diameter"]
    for patch in patches:
        heights = patch.get_xy()[:, 1]
        # step outline visits each bin height twice
        assert heights[1:-1:2].sum() == pytest.approx(100)
    assert [t.get_text().split(" (")[0] for t in ax.get_legend().get_texts()] == [
        "40 nm",
        "60 nm",
        "80 nm",
    ]


def test_accuracy_vs_gnorm_median_and_tuned_band():
    ds = results()
    ax = plotting.accuracy_vs_gnorm(ds)
    line = ax.get_lines()[0]
    order = np.argsort(ds[GNORM].values)
    np.testing.assert_allclose(line.get_xdata(), ds[GNORM].values[order])
    expected = ds[ACCURACY].median(("diameter", SOLUTION, INSTANCE)).values[order] * 100
    np.testing.assert_allclose(line.get_ydata(), expected)
    tuned = np.median(tune(ds)[ACCURACY].values) * 100
    hline = ax.collections[-1]  # the tuned median
    assert np.allclose(hline.get_segments()[0][:, 1], tuned)


def test_size_figures_take_one_dataset_or_a_mapping():
    ds = results()
    sets = {"A": ds, "B": results(seed=2)}
    for func in (plotting.accuracy_vs_size, plotting.yield_vs_size):
        ax = func(ds)
        assert ax.get_xlabel() == "device diameter (nm)"
        ax = func(sets)
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        tuned = "tuned per instance on the training split"  # the legend says which tuning
        assert labels == ["A, Gnorm 1", f"A, {tuned}", "B, Gnorm 1", f"B, {tuned}"]
    ax = plotting.yield_vs_size(ds, target=0.95)
    assert "95" in ax.get_ylabel()


def test_metric_ranking_orders_by_magnitude_and_rejects_extra_dims():
    ds = results()
    data = tune(ds, report=[ACCURACY, AGREEMENT])
    data = data.assign({m: ds[m] for m in (WRITE_FIDELITY, WEIGHT_FIDELITY, "n_write_errors")})
    metrics = [WRITE_FIDELITY, WEIGHT_FIDELITY, "n_write_errors", AGREEMENT]
    pooled = ("diameter", SOLUTION, INSTANCE)
    corr = metric_correlations(data, metrics, dims=pooled, n_boot=50)
    ax = plotting.metric_ranking(corr)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    order = np.argsort(-np.abs(corr["rho"].values), kind="stable")
    assert labels == [plotting._METRIC_LABELS[metrics[k]] for k in order]
    stacked = xr.concat([corr, corr], dim="set").assign_coords(set=["x", "y"])
    ax = plotting.metric_ranking(stacked)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["x", "y"]
    per_size = metric_correlations(data, metrics, n_boot=20)
    with pytest.raises(ValueError, match="diameter"):
        plotting.metric_ranking(per_size)


def test_resistance_and_software_figures():
    ax = plotting.resistance_histograms(devices())
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["100 nm", "40 nm"]
    ds = results()
    for split in ("test", "train"):
        ax = plotting.software_accuracy_distribution({"A": ds, "B": results(seed=3)}, split=split)
        heights = [p.get_height() for p in ax.patches]
        assert sum(heights) == pytest.approx(200)  # two sets, each 100 %
