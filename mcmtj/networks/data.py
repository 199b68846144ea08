"""Data sets for the networks written into MTJ crossbars.

Inputs are dimensionless numbers; the crossbar applies sample ``x`` as row
voltages ``x * V_read``. Two encodings are offered: min-max to ``[0, 1]`` (the
NIST convention) and standardised then clipped to ``[-1, 1]``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["DataSplit", "load_nist_wine", "load_wine"]

_ENCODINGS = ("minmax", "standard")


@dataclass(frozen=True, kw_only=True, eq=False)
class DataSplit:
    """A fixed train/test split of a classification data set.

    Arrays are stored as read-only copies with the dtypes below.

    Parameters
    ----------
    X_train : ndarray, shape (n_train, n_features), float64
        Training inputs, dimensionless. The crossbar drives row ``f`` of a
        sample with the voltage ``X[i, f] * V_read``.
    y_train : ndarray, shape (n_train,), int64
        Training class indices in ``0 .. n_classes - 1``.
    X_test : ndarray, shape (n_test, n_features), float64
        Test inputs, same encoding as `X_train`.
    y_test : ndarray, shape (n_test,), int64
        Test class indices.
    name : str
        Short name of the data set and its encoding, e.g. ``"wine-minmax"``.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    name: str = ""

    def __post_init__(self):
        n_features = None
        for split in ("train", "test"):
            X = _frozen(getattr(self, f"X_{split}"), np.float64, f"X_{split}")
            y_raw = np.asarray(getattr(self, f"y_{split}"))
            if y_raw.dtype.kind not in "iub":
                raise ValueError(f"y_{split}: class indices must be integers, got {y_raw.dtype}")
            y = _frozen(y_raw, np.int64, f"y_{split}")
            if X.ndim != 2:
                raise ValueError(
                    f"X_{split}: expected 2 dims (n_samples, n_features), got {X.shape}"
                )
            if y.ndim != 1 or y.shape[0] != X.shape[0]:
                raise ValueError(
                    f"y_{split}: expected shape ({X.shape[0]},) to match X_{split}, got {y.shape}"
                )
            if X.shape[0] == 0:
                raise ValueError(f"X_{split}: no samples")
            if not np.all(np.isfinite(X)):
                raise ValueError(f"X_{split}: contains NaN or inf")
            if np.any(y < 0):
                raise ValueError(f"y_{split}: class indices must be >= 0")
            if n_features is not None and X.shape[1] != n_features:
                raise ValueError(f"X_test: {X.shape[1]} features, but X_train has {n_features}")
            n_features = X.shape[1]
            object.__setattr__(self, f"X_{split}", X)
            object.__setattr__(self, f"y_{split}", y)
        if not isinstance(self.name, str):
            raise TypeError(f"name: expected str, got {type(self.name).__name__}")

    @property
    def n_classes(self) -> int:
        """Number of classes, ``max(class index) + 1`` over both splits."""
        return int(max(self.y_train.max(), self.y_test.max())) + 1

    @property
    def n_features(self) -> int:
        """Number of input features (crossbar rows driven per sample)."""
        return self.X_train.shape[1]

    def __repr__(self) -> str:
        return (
            f"DataSplit(name={self.name!r}, n_train={len(self.y_train)}, "
            f"n_test={len(self.y_test)}, n_features={self.n_features}, "
            f"n_classes={self.n_classes})"
        )


def _frozen(values, dtype, field: str) -> np.ndarray:
    """A read-only copy of ``values`` as ``dtype``; errors name ``field``."""
    try:
        array = np.array(values, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{field}: cannot convert to {np.dtype(dtype)}: {err}") from err
    array.setflags(write=False)
    return array


def load_wine(
    test_size: int | float = 30,
    random_state: int | None = 0,
    encoding: str = "minmax",
    clip_sigma: float = 2.0,
) -> DataSplit:
    """Load scikit-learn's Wine data set (178 samples, 13 features, 3 classes).

    The data ship with scikit-learn, so nothing is downloaded. The split is
    stratified by class and fixed by `random_state`; the scaling is fitted on
    the training part only and then applied to both parts.

    Parameters
    ----------
    test_size : int or float, default 30
        Number of test samples (int) or fraction (float), as in
        :func:`sklearn.model_selection.train_test_split`. The default gives
        148 / 30 samples, the sizes of the NIST split.
    random_state : int or None, default 0
        Seed of the split.
    encoding : {"minmax", "standard"}, default "minmax"
        ``"minmax"``: ``(x - min) / (max - min)`` with the training min/max, so
        training inputs lie in ``[0, 1]``; test inputs are clipped to ``[0, 1]``.
        ``"standard"``: ``(x - mean) / (std * clip_sigma)`` with the training
        mean and (population) standard deviation, clipped to ``[-1, 1]``.
    clip_sigma : float, default 2.0
        For ``"standard"``: number of standard deviations mapped to +-1.

    Returns
    -------
    DataSplit
        Named ``"wine-minmax"`` or ``"wine-standard"``.

    Examples
    --------
    >>> data = load_wine()
    >>> data.X_train.shape, data.X_test.shape, data.n_classes
    ((148, 13), (30, 13), 3)
    """
    from sklearn.datasets import load_wine as _sklearn_wine
    from sklearn.model_selection import train_test_split

    if encoding not in _ENCODINGS:
        raise ValueError(f"encoding: expected one of {_ENCODINGS}, got {encoding!r}")
    if not (np.isfinite(clip_sigma) and clip_sigma > 0):
        raise ValueError(f"clip_sigma: must be a positive number, got {clip_sigma!r}")
    bunch = _sklearn_wine()
    X = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, random_state=random_state, stratify=y
    )
    if encoding == "minmax":
        low = X_train.min(axis=0)
        span = X_train.max(axis=0) - low
        # A constant feature carries no information; map it to 0, not to NaN.
        span = np.where(span > 0, span, 1.0)
        X_train = (X_train - low) / span
        X_test = np.clip((X_test - low) / span, 0.0, 1.0)
    else:
        mean = X_train.mean(axis=0)
        std = X_train.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        X_train = np.clip((X_train - mean) / (std * clip_sigma), -1.0, 1.0)
        X_test = np.clip((X_test - mean) / (std * clip_sigma), -1.0, 1.0)
    return DataSplit(
        X_train=X_train,
        y_train=y_train,
        X_test=X_test,
        y_test=y_test,
        name=f"wine-{encoding}",
    )


def load_nist_wine(path: str | os.PathLike) -> DataSplit:
    """Load the NIST Wine split (daffodil-lib ``examples/wine/dataset``).

    Files are stored features x samples and one-hot classes x samples; they are
    transposed here to samples x features and class indices. The features are
    already min-max scaled to ``[0, 1]`` by NIST and are used unchanged.

    Parameters
    ----------
    path : str or path-like
        The data folder (e.g. ``shared/data/nist-wine``) holding
        ``dataset/X_train.txt`` (13 x 148), ``dataset/Y_train.txt`` (3 x 148),
        ``dataset/X_test.txt`` (13 x 30) and ``dataset/Y_test.txt`` (3 x 30).

    Returns
    -------
    DataSplit
        Named ``"nist-wine"``; 148 training and 30 test samples.

    Raises
    ------
    FileNotFoundError
        A file is missing; the message names it.
    ValueError
        A file cannot be parsed, has the wrong shape, holds NaN/inf, or a label
        column is not one-hot; the message names the file and the problem.
    """
    folder = Path(path) / "dataset"
    X, y, n_classes = {}, {}, {}
    for split in ("train", "test"):
        x_file = folder / f"X_{split}.txt"
        y_file = folder / f"Y_{split}.txt"
        features = _read_text_matrix(x_file)
        onehot = _read_text_matrix(y_file)
        if onehot.shape[1] != features.shape[1]:
            raise ValueError(
                f"{y_file}: {onehot.shape[1]} samples (columns), "
                f"but {x_file.name} has {features.shape[1]}"
            )
        valid = ((onehot == 0) | (onehot == 1)).all(axis=0) & (onehot.sum(axis=0) == 1)
        if not valid.all():
            raise ValueError(
                f"{y_file}: labels are not one-hot (each column needs exactly one 1 and "
                f"zeros elsewhere); first bad sample column {np.flatnonzero(~valid)[0]}"
            )
        X[split] = features.T
        y[split] = np.argmax(onehot, axis=0)
        n_classes[split] = onehot.shape[0]
    if X["test"].shape[1] != X["train"].shape[1]:
        raise ValueError(
            f"{folder / 'X_test.txt'}: {X['test'].shape[1]} features (rows), "
            f"but X_train.txt has {X['train'].shape[1]}"
        )
    if n_classes["test"] != n_classes["train"]:
        raise ValueError(
            f"{folder / 'Y_test.txt'}: {n_classes['test']} classes (rows), "
            f"but Y_train.txt has {n_classes['train']}"
        )
    return DataSplit(
        X_train=X["train"],
        y_train=y["train"],
        X_test=X["test"],
        y_test=y["test"],
        name="nist-wine",
    )


def _read_text_matrix(file: Path, *, ndim: int = 2) -> np.ndarray:
    """Parse a whitespace-separated numeric text file into a float64 array.

    ``ndim=2``: one matrix row per non-empty line, all lines the same length.
    ``ndim=1``: all numbers in file order, whatever the line layout.
    Errors name the file. ``np.loadtxt`` is avoided because it costs about
    half a millisecond per small file, which dominates loading 1200 files.
    """
    try:
        text = Path(file).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{file}: file not found") from None
    except (UnicodeDecodeError, IsADirectoryError, PermissionError) as err:
        raise ValueError(f"{file}: cannot read as text: {err}") from None
    try:
        if ndim == 1:
            values = np.array([float(token) for token in text.split()], dtype=np.float64)
        else:
            rows = [line.split() for line in text.splitlines() if line.strip()]
            lengths = {len(row) for row in rows}
            if len(lengths) > 1:
                raise ValueError(f"{file}: ragged rows, lengths {sorted(lengths)}")
            values = np.array([[float(t) for t in row] for row in rows], dtype=np.float64)
            if not rows:
                values = values.reshape(0, 0)
    except ValueError as err:
        if str(err).startswith(str(file)):
            raise
        raise ValueError(f"{file}: cannot parse numbers: {err}") from None
    if values.size == 0:
        raise ValueError(f"{file}: no numbers in file")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{file}: contains NaN or inf")
    return values
