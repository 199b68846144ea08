"""The Goodwill 2022 paper set: NIST convention, report numbers, honest tuning, the command."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import mcmtj
from mcmtj.analysis import accuracy_stats, metric_correlations, tune, yield_fraction
from mcmtj.papers import goodwill2022 as paper
from mcmtj.run.schema import (
    ACCURACY,
    ACCURACY_TRAIN,
    GNORM,
    INSTANCE,
    SOFTWARE_ACCURACY,
    SOLUTION,
    WRITE_FIDELITY,
)

# ------------------------------------------------------------ NIST convention, plain NumPy


def nist_reference_accuracy(folder: Path, gnorm: float = 1.0, split: str = "train"):
    """Accuracy of every NIST solution by the README's convention, NumPy only.

    Per layer: row voltages x V_read, column currents, I_even - I_odd, divided by
    Gnorm V_read (Gnorm in units of G_on - G_off, so ideal devices give the state
    difference), plus the bias, tanh; class = argmax of the last layer.
    """
    X = np.loadtxt(folder / "dataset" / f"X_{split}.txt").T  # samples x features
    y = np.argmax(np.loadtxt(folder / "dataset" / f"Y_{split}.txt"), axis=0)
    v_read, g_on, g_off = 0.1, 3.0, 1.0  # any values: the convention divides them out
    sol = folder / "solutions"
    acc = []
    for k in range(300):
        a = X
        for layer in ("fc1", "fc2"):
            states = np.loadtxt(sol / f"{k}_{layer}_weight.txt")
            bias = np.loadtxt(sol / f"{k}_{layer}_bias.txt")
            conductance = g_off + states * (g_on - g_off)
            current = (a * v_read) @ conductance
            diff = current[:, 0::2] - current[:, 1::2]
            a = np.tanh(diff / (gnorm * (g_on - g_off) * v_read) + bias)
        acc.append(np.mean(np.argmax(a, axis=1) == y))
    return np.array(acc)


def test_nist_ideal_accuracy_equals_plain_numpy_convention(nist_dir):
    expected = nist_reference_accuracy(nist_dir)
    study = mcmtj.Study().replace(
        **{
            "network.source": "nist",
            "network.dataset": "nist",
            "network.nist_path": str(nist_dir),
            "network.eval_split": "train",
            "network.gnorm": 1.0,
            "device.variation": False,
            "write.mode": "ideal",
            "defects.enabled": False,
            "run.instances": 2,
        }
    )
    ds = mcmtj.simulate(study, seed=5, progress=False)
    assert ds.sizes[SOLUTION] == 300
    assert 0.5 < np.median(expected) < 1.0  # the reference itself is sane
    for i in range(ds.sizes[INSTANCE]):
        np.testing.assert_array_equal(ds[ACCURACY].isel({INSTANCE: i}).values, expected)
    np.testing.assert_array_equal(ds["software_accuracy"].values, expected)


# ------------------------------------------------------------ the quick pipeline


@pytest.fixture(scope="module")
def quick_run(nist_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("goodwill2022")
    lines = []
    result = paper.main(
        "goodwill2022",
        quick=True,
        out=out,
        overrides={"network.nist_path": str(nist_dir)},
        formats=("png",),
        log=lines.append,
    )
    return out, result, lines


def _table(text: str, header_start: str) -> list[list[str]]:
    """Rows (cells as strings) of the markdown table whose header starts with the text."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("| " + header_start):
            rows = []
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                rows.append([c.strip() for c in row.strip().strip("|").split("|")])
            assert rows, header_start
            return rows
    raise AssertionError(f"no table starting with {header_start!r}")


def _close(cell: str, value: float, digits: int = 1) -> None:
    """A report cell printed at ``digits`` decimals of per cent equals ``value`` (fraction)."""
    assert float(cell) == pytest.approx(100 * value, abs=0.5 * 10**-digits + 1e-9), (cell, value)


def test_quick_run_writes_report_figures_and_small_results(quick_run, nist_dir):
    out, result, lines = quick_run
    assert (out / "REPORT.md").is_file()
    stems = {p.stem for p in out.glob("fig*.png")}
    assert len(stems) == 7
    assert all(p.stat().st_size < 400_000 for p in out.glob("fig*.png"))
    results = out / "results"
    assert {p.stem for p in results.glob("*.nc")} >= {*paper.SETS, "devices", "metric_ranking"}
    assert sum(p.stat().st_size for p in results.glob("*.nc")) < 5_000_000
    assert any("simulating" in line for line in lines)
    # a second run finds everything stored and simulates nothing
    again = []
    mtimes = {p: p.stat().st_mtime_ns for p in results.glob("*.nc")}
    studies = paper.load_studies(quick=True, overrides={"network.nist_path": str(nist_dir)})
    paper.ensure_results(
        studies, results, n_device_samples=paper.QUICK["device_samples"], log=again.append
    )
    assert not any("simulating" in line for line in again)
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())


def test_report_numbers_recomputed_from_stored_results(quick_run):
    out, _, _ = quick_run
    text = (out / "REPORT.md").read_text()
    stored = {name: mcmtj.open_results(out / "results" / f"{name}.nc") for name in paper.SETS}
    label = {v: k for k, v in paper.SETS.items()}

    def at(cells):
        ds = stored[label[cells[0]]]
        return ds.sel(diameter=float(cells[1]) * 1e-9, method="nearest", tolerance=1e-12)

    def tuned(ds, per):
        return ds[ACCURACY].sel({GNORM: 1.0}) if per is None else tune(ds, per=per)[ACCURACY]

    acc_rows = _table(text, "set | diameter (nm) | software median")
    assert len(acc_rows) == 3 * 4
    for cells in acc_rows:
        ds = at(cells)
        _close(cells[2], float(ds[SOFTWARE_ACCURACY].sel({GNORM: 1.0}).median()))
        for cell, per in zip(cells[3:6], (None, "solution", "instance"), strict=True):
            _close(cell, float(accuracy_stats(tuned(ds, per))["median"]))
        for cell, per in zip(cells[6:8], (None, "instance"), strict=True):
            _close(cell, float(accuracy_stats(tuned(ds, per))["mean"]))

    reach_rows = _table(text, "set | diameter (nm) | solutions reaching")
    assert len(reach_rows) == 3 * 4
    for cells in reach_rows:
        ds = at(cells)
        software = ds[SOFTWARE_ACCURACY].sel({GNORM: 1.0})
        _close(cells[2], float((software >= 0.953 - 1e-9).mean()))
        for cell, per in zip(cells[3:6], (None, "solution", "instance"), strict=True):
            med = accuracy_stats(tuned(ds, per), dims=INSTANCE)["median"]
            _close(cell, float((med >= 0.953 - 1e-9).mean()))
        for cell, per in zip(cells[6:8], (None, "instance"), strict=True):
            med = accuracy_stats(tuned(ds, per), dims=INSTANCE)["median"]
            _close(cell, float(med.max()))

    yield_rows = _table(text, "set | diameter (nm) | target")
    assert len(yield_rows) == 3 * 4 * 2 * 2
    for cells in yield_rows:
        ds = at(cells)
        acc = tuned(ds, None if cells[3] == "Gnorm 1" else "instance")
        y = yield_fraction(acc, float(cells[2]) / 100)
        _close(cells[4], float(y["yield"]))
        low, high = (float(v) for v in cells[5].strip("[]").split(","))
        assert low == pytest.approx(100 * float(y["yield_low"]), abs=0.051)
        assert high == pytest.approx(100 * float(y["yield_high"]), abs=0.051)
        assert int(cells[6]) == int(y["n"])

    rank_rows = _table(text, "set | rank | metric")
    n_boot = int(re.search(r"(\d+)-replicate bootstrap", text).group(1))
    seed = int(re.search(r"\(seed (\d+)\)", text).group(1))
    assert n_boot == paper.QUICK["n_boot"]
    for name, ds in stored.items():
        rows = [c for c in rank_rows if c[0] == paper.SETS[name]]
        reported = {c[2] for c in rows}
        metrics = [m for m in paper.RANKED_METRICS if m in reported]  # the paper's order
        assert len(metrics) == len(rows)
        assert WRITE_FIDELITY in metrics
        tuned = tune(ds, per="instance", report=[ACCURACY, "agreement"])
        data = xr.Dataset(
            {ACCURACY: tuned[ACCURACY], "agreement": tuned["agreement"]}
            | {m: ds[m] for m in metrics if m != "agreement"}
        )
        corr = metric_correlations(
            data, metrics, dims=("diameter", SOLUTION, INSTANCE), n_boot=n_boot, seed=seed
        )
        for cells in rows:
            c = corr.sel(metric=cells[2])
            assert int(cells[1]) == int(c["rank"])
            assert float(cells[3]) == pytest.approx(float(c["rho"]), abs=5e-4)
            low, high = (float(v) for v in cells[4].strip("[]").split(","))
            assert low == pytest.approx(float(c["rho_low"]), abs=5e-4)
            assert high == pytest.approx(float(c["rho_high"]), abs=5e-4)
        # every metric that varies in the results is ranked
        for m in paper.RANKED_METRICS:
            if m in ds and m not in metrics:
                v = ds[m].values
                assert np.all(v == v.flat[0]), m


# ------------------------------------------------------------ tuning is honest


def planted_results(seed=0):
    """Results where the test accuracy rewards the gain the training split rejects.

    Every instance's training accuracy peaks at gnorm = 1.25 (index 3); the test
    accuracy there is 0.8, and 1.0 at gnorm = 0.5 (index 1), which tuning on the
    test split would pick.
    """
    rng = np.random.default_rng(seed)
    grid = [1.0, 0.5, 0.75, 1.25, 1.5]
    shape = (2, 5, 7, len(grid))
    dims = ("diameter", SOLUTION, INSTANCE, GNORM)
    train = np.full(shape, 0.7)
    train[..., 3] = 0.9
    test = np.full(shape, 0.6)
    test[..., 1] = 1.0
    test[..., 3] = 0.8
    return xr.Dataset(
        {
            ACCURACY: (dims, test),
            ACCURACY_TRAIN: (dims, train),
            SOFTWARE_ACCURACY: (("diameter", SOLUTION, GNORM), np.full(shape[:2] + shape[3:], 0.9)),
            WRITE_FIDELITY: (dims[:3], rng.uniform(0.9, 1.0, shape[:3])),
        },
        coords={"diameter": [40e-9, 80e-9], GNORM: grid},
    )


def test_paper_tuning_never_looks_at_the_reported_split():
    ds = planted_results()
    table = paper.accuracy_table(ds, target=0.8)
    np.testing.assert_array_equal(table["tuned_instance"], 0.8)  # not 1.0
    np.testing.assert_array_equal(table["tuned_solution"], 0.8)
    np.testing.assert_array_equal(table["before"], 0.6)
    np.testing.assert_array_equal(table["reach_tuned_instance"], 1.0)
    np.testing.assert_array_equal(table["best_tuned_instance"], 0.8)
    yields = paper.yield_table(ds, targets=[0.8, 0.95])
    np.testing.assert_array_equal(yields["yield"].sel(tuning="tuned per instance", target=0.95), 0)

    # scrambling the test accuracy at every gain the training split did not choose
    # changes nothing that is reported as tuned
    scrambled = ds.copy(deep=True)
    noise = np.random.default_rng(1).uniform(0, 1, scrambled[ACCURACY].shape)
    chosen = np.zeros(len(ds[GNORM]), bool)
    chosen[3] = True
    scrambled[ACCURACY].values[..., ~chosen] = noise[..., ~chosen]
    again = paper.accuracy_table(scrambled, target=0.8)
    tuned_vars = [v for v in table.data_vars if "tuned" in v]
    assert len(tuned_vars) == 8
    for var in tuned_vars:
        xr.testing.assert_equal(again[var], table[var])
    y2 = paper.yield_table(scrambled, targets=[0.8, 0.95]).sel(tuning="tuned per instance")
    xr.testing.assert_equal(y2, yields.sel(tuning="tuned per instance"))


# ------------------------------------------------------------ studies and command


def test_study_files_load_and_say_assumed():
    studies = paper.load_studies()
    assert list(studies) == list(paper.SETS)
    for name, study in studies.items():
        text = (Path(study.base_dir) / f"{name}.toml").read_text()
        assert "ASSUMED" in text or "assumed" in text
        assert study.sweep == (("device.diameter", (40e-9, 60e-9, 80e-9, 100e-9)),)
        assert 1.0 in study.network.gnorm and study.network.eval_train
        assert study.network.sensitivity and study.network.dataset == "nist"
        assert study.resolve_path(study.network.nist_path).name == "nist-wine"
    assert studies["nist"].network.source == "nist"
    assert studies["trained_ternary"].network.weights == "ternary"
    assert studies["trained_binary"].network.weights == "binary"
    quick = paper.load_studies(quick=True)
    assert quick["nist"].network.max_solutions == paper.QUICK["solutions"]
    assert quick["trained_binary"].network.n_solutions == paper.QUICK["solutions"]


def test_device_samples_follow_the_size_dependent_spread():
    study = paper.load_studies()["nist"]
    dev = paper.device_samples(study, n_devices=20000, seed=3)
    rp = dev["r_parallel"]
    spread = (rp.std("device") / rp.median("device")).values
    d = study.device
    expected = np.sqrt((2 * d.diameter_sigma / rp["diameter"].values) ** 2 + 0.03**2)
    np.testing.assert_allclose(spread, expected, rtol=0.05)
    ratio = (dev["r_antiparallel"] / rp).median("device")
    np.testing.assert_allclose(ratio, 1 + d.tmr, rtol=0.01)
    xr.testing.assert_equal(dev, paper.device_samples(study, n_devices=20000, seed=3))


def test_cli_paper_calls_paper_main(monkeypatch, tmp_path):
    from mcmtj.cli import main

    calls = []
    monkeypatch.setattr(paper, "main", lambda *a, **k: calls.append((a, k)) or {})
    assert main(["paper", "goodwill2022", "--quick", "--out", str(tmp_path)]) == 0
    ((args, kwargs),) = calls
    assert args == ("goodwill2022",) and kwargs["quick"] and kwargs["out"] == tmp_path
    with pytest.raises(SystemExit):
        main(["paper", "nobody2099"])
