"""Figure functions: draw stored results only, bins on the discrete values, Axes back."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

from mcmtj.analysis import (  # noqa: E402
    metric_correlations,
    plotting,  # noqa: E402
    tune,
)
from mcmtj.run.schema import (  # noqa: E402
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
    import mcmtj.run.block
    import mcmtj.run.engine

    def forbidden(*args, **kwargs):
        raise AssertionError("a plotting function called the simulator")

    for module in (mcmtj, mcmtj.run.engine):
        monkeypatch.setattr(module, "simulate", forbidden)
    for module in (mcmtj, mcmtj.run.block, mcmtj.run.engine):
        monkeypatch.setattr(module, "prepare", forbidden)
    monkeypatch.setattr(mcmtj.run.block, "run_block", forbidden)
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


# --- ``mcmtj run --plot``: one colour per sweep point ------------------------------------


def _two_sizes_same_fidelity():
    """Two sweep points with identical write fidelities k/192 (every k in 170..192 present),
    where every instance of the small size misses the accuracy target and every instance of
    the large one meets it: yields 0 % and 100 % at every fidelity, by construction."""
    k = np.tile(np.arange(170, 193), 40)  # 23 fidelity values x 40 instances each
    wf = np.stack([k, k]) / N_DEV
    acc = np.stack([np.full(k.size, 20 / N_TEST), np.full(k.size, 29 / N_TEST)])
    dims = ("diameter", SOLUTION, INSTANCE)
    return xr.Dataset(
        {
            ACCURACY: (dims, acc[:, None, :]),
            WRITE_FIDELITY: (dims, wf[:, None, :]),
            SOFTWARE_ACCURACY: (("diameter", SOLUTION), np.full((2, 1), 1.0)),
        },
        coords={"diameter": [40e-9, 100e-9]},
        attrs={"study": '[sweep]\n"device.diameter" = [4e-8, 1e-7]\n', "seed": "7"},
    )


def test_yield_vs_write_fidelity_one_line_per_point_with_its_own_yield():
    ds = _two_sizes_same_fidelity()
    ax = plotting.yield_vs_write_fidelity(ds, target=0.9)
    lines = ax.get_lines()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["40 nm", "100 nm"]
    assert len(lines) == 2
    for line, expected in zip(lines, (0.0, 100.0), strict=True):
        # x on the lattice k/192, every value present (40 instances each >= 30)
        np.testing.assert_allclose(line.get_xdata(), np.arange(170, 193) / N_DEV * 100)
        np.testing.assert_allclose(line.get_ydata(), expected)
    # too few instances per fidelity value: whole neighbouring values merged (2 per bin,
    # the last alone), never a bin that splits a value
    ax = plotting.yield_vs_write_fidelity(ds, min_instances=41)
    x = ax.get_lines()[0].get_xdata()
    np.testing.assert_allclose(x, (np.arange(170, 192, 2) + 0.5) / N_DEV * 100)
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), 100.0)
    # fewer instances than the threshold at all: nothing drawn rather than noise
    ax = plotting.yield_vs_write_fidelity(ds, min_instances=10**4)
    assert not ax.get_lines()


def test_per_point_histograms_have_no_aliasing_gaps():
    ds = _two_sizes_same_fidelity()
    ax = plotting.write_fidelity_by_point(ds)
    assert len(ax.patches) == 2
    for patch in ax.patches:
        heights = patch.get_xy()[:, 1][1:-1:2]  # the step outline visits each bin twice
        assert heights.size == 23  # one bin per value k/192, k = 170..192
        np.testing.assert_allclose(heights, 100 / 23)  # every bin filled: no white stripe
    ax = plotting.accuracy_by_point(ds)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:2] == ["40 nm (median 66.7 %)", "100 nm (median 96.7 %)"]
    assert "software" in labels[2]


def test_run_overview_titles_and_grid_of_sweep_points():
    ds = results(n_sol=2, n_inst=40)
    ds = xr.concat([ds, ds], dim=xr.DataArray([0.0, 0.01], dims="stuck_p", name="stuck_p"))
    ds = ds.transpose("diameter", "stuck_p", ...)  # sweep dims in the study's order
    ds.attrs["study"] = ('[sweep]\n"device.diameter" = [4e-8, 6e-8, 8e-8]\n'
                         '"defects.stuck_p" = [0.0, 0.01]\n')
    ds.attrs["seed"] = "5"
    fig = plotting.run_overview(ds, name="grid")
    title = fig._suptitle.get_text()
    assert "grid: 2 solutions x 40 array instances at each of 6 sweep points" in title
    assert "seed 5" in title and "gain 1" in title
    wf_ax, acc_ax, yield_ax = fig.axes
    labels = [t.get_text() for t in yield_ax.get_legend().get_texts()]
    assert labels == [f"{d} nm, stuck_p {s:g}" for d in (40, 60, 80) for s in (0, 0.01)]
    assert "write fidelity" in wf_ax.get_xlabel() and "(%)" in wf_ax.get_xlabel()
    assert "accuracy" in acc_ax.get_xlabel() and "yield" in yield_ax.get_ylabel()
