"""The Goodwill 2022 paper set: NIST convention, report numbers, honest tuning, the command."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import mcmtj
from mcmtj.analysis import tune, yield_fraction
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
    assert len(stems) == 8 and "fig8_size_effect" in stems
    assert all(p.stat().st_size < 400_000 for p in out.glob("fig*.png"))
    results = out / "results"
    assert {p.stem for p in results.glob("*.nc")} >= {
        *paper.SETS, "devices", *(f"{n}_analysis" for n in paper.SETS)}
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
    text = (out / "REPORT.md").read_text()
    # the quick title says how many solutions it used
    assert text.splitlines()[0].startswith(f"# Goodwill et al. 2022 with mcmtj: "
                                           f"{paper.QUICK['solutions']} Wine solutions")
    assert "(quick run)" in text.splitlines()[0]


def _cv_oracle(study, folds=4, seed=2022):
    """CV-tuned training-split accuracy by the engine alone, no read-back: one simulation
    per fold with the held-out fold as the evaluation split (same seed: same arrays)."""
    import dataclasses

    from sklearn.model_selection import StratifiedKFold

    prep = mcmtj.prepare(study)
    data = prep.data
    correct = 0
    sw_correct = 0
    for train, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(
            data.X_train, data.y_train):
        split = dataclasses.replace(data, X_train=data.X_train[train], y_train=data.y_train[train],
                                    X_test=data.X_train[held], y_test=data.y_train[held])
        ds = mcmtj.simulate(study, prepared=mcmtj.run.block.Prepared(prep.solutions, split),
                            progress=False)
        correct = correct + tune(ds, per="instance")[ACCURACY] * len(held)
        sw = tune(ds[[SOFTWARE_ACCURACY, "software_accuracy_train"]].isel(diameter=0),
                  select_on="software_accuracy_train", report=SOFTWARE_ACCURACY)
        sw_correct = sw_correct + sw[SOFTWARE_ACCURACY] * len(held)
    n = len(data.y_train)
    return correct / n, sw_correct / n


def test_report_numbers_recomputed_from_stored_results(quick_run, nist_dir):
    out, _, _ = quick_run
    text = (out / "REPORT.md").read_text()
    stored = {name: mcmtj.open_results(out / "results" / f"{name}.nc") for name in paper.SETS}
    label = {v: k for k, v in paper.SETS.items()}

    def at(cells):
        ds = stored[label[cells[0]]]
        return ds.sel(diameter=float(cells[1]) * 1e-9, method="nearest", tolerance=1e-12)

    # the paper's target on the training split, against an engine-only CV oracle (NIST)
    study = paper.load_studies(quick=True, overrides={"network.nist_path": str(nist_dir)})["nist"]
    cv, sw_cv = _cv_oracle(study)
    rows = _table(text, "set | diameter (nm) | software CV-tuned")
    assert len(rows) == 3 * 4
    target = 141 / 148
    for cells in rows:
        if cells[0] != paper.SETS["nist"]:
            continue
        d = float(cells[1]) * 1e-9
        acc = cv.sel(diameter=d, method="nearest")
        _close(cells[2], float(sw_cv.median()))
        _close(cells[3], float((sw_cv >= target - 1e-9).mean()))
        _close(cells[5], float(acc.median()))
        _close(cells[6], float(acc.mean()))
        _close(cells[7], float((acc.median(INSTANCE) >= target - 1e-9).mean()))
        _close(cells[8], float((acc >= target - 1e-9).mean()))
        test_tuned = tune(at(cells), per="instance")[ACCURACY]
        best = int(test_tuned.median(INSTANCE).argmax(SOLUTION))
        _close(cells[10], float(acc.isel({SOLUTION: best}).median()))

    rows = _table(text, "set | diameter (nm) | software tuned")
    assert len(rows) == 3 * 4
    for cells in rows:
        ds = at(cells)
        tuned = tune(ds, per="instance")[ACCURACY]
        _close(cells[3], float(ds[ACCURACY].sel({GNORM: 1.0}).median()))
        _close(cells[4], float(tuned.median()))
        _close(cells[5], float(tuned.mean()))

    yield_rows = _table(text, "set | diameter (nm) | target")
    assert len(yield_rows) == 3 * 4 * 2 * 2
    for cells in yield_rows:
        ds = at(cells)
        acc = (ds[ACCURACY].sel({GNORM: 1.0}) if cells[3] == "Gnorm 1"
               else tune(ds, per="instance")[ACCURACY])
        y = yield_fraction(acc, float(cells[2]) / 100)
        _close(cells[4], float(y["yield"]))
        low, high = (float(v) for v in cells[5].strip("[]").split(","))
        assert low == pytest.approx(100 * float(y["yield_low"]), abs=0.051)
        assert high == pytest.approx(100 * float(y["yield_high"]), abs=0.051)
        blow, bhigh = (float(v) for v in cells[6].strip("[]").split(","))
        assert blow <= float(cells[4]) + 0.05 and bhigh >= float(cells[4]) - 0.05
        assert int(cells[7]) == int(y["n"])

    # metric comparison: rho from SciPy on the pooled instances; verdicts follow intervals
    import scipy.stats

    cmp_rows = _table(text, "set | metric | rho")
    verdicts = {}
    for name, ds in stored.items():
        rows = [c for c in cmp_rows if c[0] == paper.SETS[name]]
        metrics = [c[1] for c in rows]
        assert WRITE_FIDELITY in metrics and paper.PREDICTOR in metrics
        tuned = tune(ds, per="instance", report=[ACCURACY, "agreement"])
        y = tuned[ACCURACY].values.ravel()
        for cells in rows:
            m = cells[1]
            if m in ds and m != "agreement":
                x = ds[m].broadcast_like(ds[WRITE_FIDELITY]).values.ravel()
                assert float(cells[2]) == pytest.approx(scipy.stats.spearmanr(x, y)[0], abs=6e-4)
            if m == WRITE_FIDELITY:
                assert cells[6] == "reference"
                continue
            low, high = (float(v) for v in cells[5].strip("[]").split(","))
            expect = ("diagnostic (not ranked)" if m == "agreement" else "better" if low > 0
                      else "worse" if high < 0 else "not distinguishable")
            assert cells[6] == expect, cells
            verdicts[(name, m)] = expect
        # exact transforms are merged, never listed twice: a listed n_write_errors must
        # rank some pair of instances differently from write fidelity (checked by brute force)
        if "n_write_errors" in metrics:
            a = ds[WRITE_FIDELITY].values.ravel()
            b = ds["n_write_errors"].values.ravel()
            pairs = {(x, z) for x, z in zip(a, b, strict=True)}
            assert len(pairs) > len(set(a)) or len(pairs) > len(set(b)) or any(
                (x1 - x2) * (z1 - z2) > 0 for x1, z1 in pairs for x2, z2 in pairs)
    # the generated reading says "better" for exactly the metrics whose interval is above 0
    reading = text.split("## Reading", 1)[1]
    for (name, m), verdict in verdicts.items():
        line = next(ln for ln in reading.splitlines() if ln.startswith(f"- {paper.SETS[name]}:"))
        better = line.split("Better than write fidelity (paired interval above 0):")[1]
        better = better.split("Not distinguishable")[0]
        assert (f"{m} (" in better) == (verdict == "better"), (name, m)


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
            "software_accuracy_train": (("diameter", SOLUTION, GNORM),
                                        np.full(shape[:2] + shape[3:], 0.9)),
            WRITE_FIDELITY: (dims[:3], rng.uniform(0.9, 1.0, shape[:3])),
        },
        coords={"diameter": [40e-9, 80e-9], GNORM: grid},
    )


def test_paper_tuning_never_looks_at_the_reported_split():
    ds = planted_results()
    acc = paper.test_split_accuracy(ds)
    np.testing.assert_array_equal(acc["tuned"], 0.8)  # not 1.0
    np.testing.assert_array_equal(acc["before"], 0.6)
    # scrambling the test accuracy at every gain the training split did not choose
    # changes nothing that is reported as tuned
    scrambled = ds.copy(deep=True)
    noise = np.random.default_rng(1).uniform(0, 1, scrambled[ACCURACY].shape)
    chosen = np.zeros(len(ds[GNORM]), bool)
    chosen[3] = True
    scrambled[ACCURACY].values[..., ~chosen] = noise[..., ~chosen]
    xr.testing.assert_equal(paper.test_split_accuracy(scrambled)["tuned"], acc["tuned"])


def test_changing_the_scored_labels_moves_no_metric_input(nist_dir):
    """Permute the test split's labels: everything that chooses, weighs or predicts stays
    bit-identical (read-back, write and sensitivity fidelity, training reads, the CV
    folds and the predictor's features); only the scored accuracy moves."""
    import dataclasses

    study = paper.load_studies(overrides={"network.nist_path": str(nist_dir),
                                          "network.max_solutions": 3, "run.instances": 3})["nist"]
    prep = mcmtj.prepare(study)
    rng = np.random.default_rng(0)
    relabelled = dataclasses.replace(prep.data, y_test=rng.permutation(prep.data.y_test))
    assert np.any(relabelled.y_test != prep.data.y_test)
    runs = [mcmtj.simulate(study, prepared=p, progress=False)
            for p in (prep, mcmtj.run.block.Prepared(prep.solutions, relabelled))]
    for var in ("write_fidelity", "sensitivity_fidelity", "readback_conductance",
                "accuracy_train", "n_pulses", "current_rmse"):
        xr.testing.assert_identical(runs[0][var], runs[1][var])
    assert not runs[0][ACCURACY].equals(runs[1][ACCURACY])
    dvs = [paper.readback_analysis(ds, study, prepared=p) for ds, p in
           zip(runs, (prep, mcmtj.run.block.Prepared(prep.solutions, relabelled)), strict=True)]
    for var in ("fold_correct", "train_margin", "effective_gain", "weight_spread",
                "sw_fold_correct"):
        xr.testing.assert_identical(dvs[0][var], dvs[1][var])
    assert dvs[0].attrs["mismatch_test"] == 0 and dvs[1].attrs["mismatch_test"] == 0
    f0, names = paper._features(runs[0], dvs[0])
    f1, _ = paper._features(runs[1], dvs[1])
    np.testing.assert_array_equal(f0, f1)
    assert not any("test" in n for n in names)


def test_paper_without_data_fails_before_creating_anything(tmp_path, monkeypatch):
    from mcmtj.cli import main as cli_main
    from mcmtj.networks import datasets

    monkeypatch.delenv(datasets.NIST_WINE_ENV, raising=False)
    monkeypatch.setattr(datasets, "_cache_root", lambda: tmp_path / "cache")
    out = tmp_path / "out"
    with pytest.raises(datasets.DatasetError, match="--data.*MCMTJ_NIST_WINE"):
        paper.main("goodwill2022", quick=True, out=out,
                   overrides={"network.nist_path": str(tmp_path / "nowhere")})
    assert not out.exists() and not (tmp_path / "cache").exists()
    monkeypatch.setenv(datasets.NIST_WINE_ENV, str(tmp_path / "nowhere"))
    assert cli_main(["paper", "goodwill2022", "--quick", "--out", str(out)]) == 2
    assert not out.exists()


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
        assert study.network.readback and not study.read.bias_tmr
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


def test_stored_results_are_reused_only_from_the_same_code(monkeypatch):
    # a physics change alters the package hash: a stored result of the same study text must
    # then be simulated again, never put into a report
    from mcmtj.config import load_study
    from mcmtj.numerics import _jit
    from mcmtj.run.provenance import same_simulation

    study = load_study(Path(__file__).parents[1] / "studies" / "quickstart.toml")
    attrs = {"study": study.to_toml(), "simulation_sha256": _jit.SIMULATION_STAMP}
    assert same_simulation(attrs, study)
    assert not same_simulation({**attrs, "study": attrs["study"] + "\n"}, study)
    assert not same_simulation(None, study)
    monkeypatch.setattr(_jit, "SIMULATION_STAMP", "another-source-tree")
    assert not same_simulation(attrs, study)
    # the stamp covers the engine and physics, not the reports
    assert _jit._package_stamp(exclude=_jit.NOT_SIMULATION) == attrs["simulation_sha256"]
    assert "papers" in _jit.NOT_SIMULATION and "physics" not in _jit.NOT_SIMULATION
