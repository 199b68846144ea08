"""Tests of mcmtj.networks.data: Wine loaders, NIST split files, DataSplit validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_wine as sklearn_wine
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from mcmtj.networks.data import DataSplit, load_nist_wine, load_wine


@pytest.fixture(scope="module")
def nist_path(nist_dir) -> Path:
    """The shared NIST Wine folder (conftest: skipped, or failed under MCMTJ_REQUIRE_DATA)."""
    return nist_dir


def write_nist_dataset(folder: Path, n_features=4, n_train=6, n_test=3, n_classes=3, seed=0):
    """Write a small synthetic data set in the NIST layout (features x samples, one-hot)."""
    rng = np.random.default_rng(seed)
    (folder / "dataset").mkdir(parents=True, exist_ok=True)
    truth = {}
    for split, n in (("train", n_train), ("test", n_test)):
        X = rng.random((n, n_features))
        y = np.arange(n) % n_classes
        np.savetxt(folder / "dataset" / f"X_{split}.txt", X.T)
        np.savetxt(folder / "dataset" / f"Y_{split}.txt", np.eye(n_classes)[y].T, fmt="%d")
        truth[split] = (X, y)
    return truth


# --- load_wine -----------------------------------------------------------------------------------


def _sklearn_split(random_state=0, test_size=30):
    bunch = sklearn_wine()
    return train_test_split(
        bunch.data,
        bunch.target,
        test_size=test_size,
        random_state=random_state,
        stratify=bunch.target,
    )


def test_load_wine_shapes_and_stratified_split():
    data = load_wine()
    assert data.X_train.shape == (148, 13) and data.X_test.shape == (30, 13)
    assert data.X_train.dtype == np.float64 and data.y_train.dtype == np.int64
    assert data.n_classes == 3 and data.n_features == 13
    assert data.name == "wine-minmax"
    # Stratified: class proportions of the test part follow the 59/71/48 of the whole set.
    np.testing.assert_array_equal(np.bincount(data.y_test), [10, 12, 8])


def test_load_wine_minmax_fitted_on_train_only():
    X_train, X_test, y_train, y_test = _sklearn_split()
    scaler = MinMaxScaler().fit(X_train)
    data = load_wine(encoding="minmax")
    np.testing.assert_allclose(data.X_train, scaler.transform(X_train), rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        data.X_test, np.clip(scaler.transform(X_test), 0, 1), rtol=0, atol=1e-12
    )
    np.testing.assert_array_equal(data.y_train, y_train)
    np.testing.assert_array_equal(data.y_test, y_test)
    assert data.X_train.min() == 0.0 and data.X_train.max() == 1.0
    assert 0.0 <= data.X_test.min() and data.X_test.max() <= 1.0


def test_load_wine_standard_encoding():
    X_train, X_test, _, _ = _sklearn_split(random_state=3)
    scaler = StandardScaler().fit(X_train)
    data = load_wine(random_state=3, encoding="standard", clip_sigma=1.5)
    assert data.name == "wine-standard"
    np.testing.assert_allclose(
        data.X_train, np.clip(scaler.transform(X_train) / 1.5, -1, 1), rtol=0, atol=1e-12
    )
    np.testing.assert_allclose(
        data.X_test, np.clip(scaler.transform(X_test) / 1.5, -1, 1), rtol=0, atol=1e-12
    )
    assert data.X_train.min() == -1.0 and data.X_train.max() == 1.0  # some values are clipped


def test_load_wine_split_depends_on_seed_only():
    a, b, c = load_wine(random_state=1), load_wine(random_state=1), load_wine(random_state=2)
    np.testing.assert_array_equal(a.X_test, b.X_test)
    assert not np.array_equal(a.X_test, c.X_test)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"encoding": "zscore"}, "encoding"),
        ({"encoding": "standard", "clip_sigma": 0}, "clip_sigma"),
    ],
)
def test_load_wine_rejects_bad_arguments(kwargs, field):
    with pytest.raises(ValueError, match=field):
        load_wine(**kwargs)


# --- DataSplit -----------------------------------------------------------------------------------


def _split(**overrides):
    fields = dict(
        X_train=np.zeros((4, 2)), y_train=[0, 1, 0, 1], X_test=np.ones((2, 2)), y_test=[1, 2]
    )
    return DataSplit(**{**fields, **overrides}, name="toy")


def test_datasplit_converts_and_freezes():
    data = _split()
    assert data.y_train.dtype == np.int64 and data.n_classes == 3
    with pytest.raises(ValueError):
        data.X_train[0, 0] = 1.0
    with pytest.raises(AttributeError):
        data.name = "other"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"y_train": [0, 1, 0]}, "y_train"),
        ({"X_test": np.array([[0.0, np.nan], [0, 0]])}, "X_test: contains NaN"),
        ({"X_test": np.ones((2, 3))}, "X_test: 3 features"),
        ({"y_test": [0.5, 1.0]}, "y_test: class indices must be integers"),
        ({"y_test": [-1, 0]}, "y_test"),
        ({"X_train": np.zeros(4)}, "X_train: expected 2 dims"),
    ],
)
def test_datasplit_validation_names_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        _split(**overrides)


# --- load_nist_wine ------------------------------------------------------------------------------


def test_load_nist_wine_synthetic_round_trip(tmp_path):
    truth = write_nist_dataset(tmp_path)
    data = load_nist_wine(tmp_path)
    np.testing.assert_allclose(data.X_train, truth["train"][0], rtol=1e-15)
    np.testing.assert_array_equal(data.y_train, truth["train"][1])
    np.testing.assert_allclose(data.X_test, truth["test"][0], rtol=1e-15)
    np.testing.assert_array_equal(data.y_test, truth["test"][1])
    assert data.name == "nist-wine"


def test_load_nist_wine_missing_file_names_it(tmp_path):
    write_nist_dataset(tmp_path)
    (tmp_path / "dataset" / "Y_test.txt").unlink()
    with pytest.raises(FileNotFoundError, match="Y_test.txt"):
        load_nist_wine(tmp_path)


def _corrupt(path: Path, lines_to_text):
    path.write_text(lines_to_text(path.read_text().splitlines()))


@pytest.mark.parametrize(
    ("file", "edit", "message"),
    [
        # A sample (column) fewer in the labels than in the features.
        (
            "Y_train.txt",
            lambda lines: "\n".join(" ".join(r.split()[:-1]) for r in lines),
            "Y_train.txt: 5 samples",
        ),
        ("X_test.txt", lambda lines: "\n".join(lines[:-1]), "X_test.txt: 3 features"),
        (
            "X_test.txt",
            lambda lines: "\n".join(["nan " + lines[0].split(" ", 1)[1]] + lines[1:]),
            "X_test.txt: contains NaN",
        ),
        (
            "X_train.txt",
            lambda lines: "\n".join(lines[:-1] + [lines[-1] + " 0.5"]),
            "X_train.txt: ragged",
        ),
        (
            "Y_train.txt",
            lambda lines: "\n".join(["1" + lines[0][1:]] * 3),
            "Y_train.txt: labels are not one-hot",
        ),
        ("Y_test.txt", lambda lines: "\n".join(lines[:-1]), "Y_test.txt.*not one-hot"),
        ("X_train.txt", lambda lines: "", "X_train.txt: no numbers"),
        (
            "X_train.txt",
            lambda lines: "\n".join(lines).replace("e", "x", 1),
            "X_train.txt: cannot parse",
        ),
    ],
)
def test_load_nist_wine_errors_name_file_and_problem(tmp_path, file, edit, message):
    write_nist_dataset(tmp_path)
    _corrupt(tmp_path / "dataset" / file, edit)
    with pytest.raises(ValueError, match=message):
        load_nist_wine(tmp_path)


def test_load_nist_wine_real_files(nist_path):
    data = load_nist_wine(nist_path)
    assert data.X_train.shape == (148, 13) and data.X_test.shape == (30, 13)
    assert data.n_classes == 3
    np.testing.assert_array_equal(np.bincount(data.y_train), [49, 58, 41])
    np.testing.assert_array_equal(np.bincount(data.y_test), [10, 13, 7])
    assert data.X_train.min() >= 0 and data.X_train.max() <= 1
    # Independent reference: np.loadtxt, transposed.
    reference = np.loadtxt(nist_path / "dataset" / "X_test.txt").T
    np.testing.assert_array_equal(data.X_test, reference)
    labels = np.loadtxt(nist_path / "dataset" / "Y_train.txt").argmax(axis=0)
    np.testing.assert_array_equal(data.y_train, labels)
