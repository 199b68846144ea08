"""Fuzzing the data-file loaders (Hypothesis): NIST solution text files, NIST data-set
files and ``.npz`` solution sets with wrong shapes, NaN/inf, values outside {0, 1},
garbage bytes, missing files.

The only outcomes allowed: the set or split loads, or ``ValueError`` /
``FileNotFoundError`` with a one-line message naming the file (or its folder).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mcmtj.networks.data import load_nist_wine
from mcmtj.networks.solutions import (
    SolutionSet,
    load_nist_solutions,
    load_solutions,
    save_solutions,
)

FAST = settings(max_examples=50, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SLOW = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_ROOT = Path(tempfile.mkdtemp(prefix="mcmtj-fuzz-data-"))


def _matrix(rows, cols, rng, binary=True):
    values = rng.integers(0, 2, (rows, cols)) if binary else rng.random((rows, cols))
    return "\n".join(" ".join(repr(float(v)) for v in row) for row in values) + "\n"


def _onehot(n, rng):
    y = rng.integers(0, 3, n)
    return "\n".join(" ".join(str(int(y[j] == c)) for j in range(n)) for c in range(3)) + "\n"


def _valid_nist(folder: Path) -> None:
    """A small but complete NIST-layout folder: one 13-6-3 solution, 12 + 5 samples."""
    rng = np.random.default_rng(0)
    sol, data = folder / "solutions", folder / "dataset"
    sol.mkdir(parents=True)
    data.mkdir()
    (sol / "0_fc1_weight.txt").write_text(_matrix(13, 12, rng))
    (sol / "0_fc1_bias.txt").write_text(_matrix(6, 1, rng, binary=False))
    (sol / "0_fc2_weight.txt").write_text(_matrix(6, 6, rng))
    (sol / "0_fc2_bias.txt").write_text(_matrix(3, 1, rng, binary=False))
    for split, n in (("train", 12), ("test", 5)):
        (data / f"X_{split}.txt").write_text(_matrix(13, n, rng, binary=False))
        (data / f"Y_{split}.txt").write_text(_onehot(n, rng))


SOLUTION_FILES = ["solutions/0_fc1_weight.txt", "solutions/0_fc1_bias.txt",
                  "solutions/0_fc2_weight.txt", "solutions/0_fc2_bias.txt"]
DATA_FILES = ["dataset/X_train.txt", "dataset/Y_train.txt", "dataset/X_test.txt",
              "dataset/Y_test.txt"]

tokens = st.one_of(
    st.sampled_from(["0", "1", "2", "-1", "0.5", "nan", "NaN", "inf", "-inf", "1e309", "1e-320",
                     "abc", "1,0", "0x1", "+1", "1_0", "", "\t"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-3, 3).map(str),
)
matrix_text = st.lists(st.lists(tokens, max_size=16), max_size=16).map(
    lambda rows: "\n".join(" ".join(r) for r in rows))
file_contents = st.one_of(
    matrix_text.map(lambda t: ("text", t)),
    st.binary(max_size=64).map(lambda b: ("bytes", b)),
    st.text(max_size=64).map(lambda t: ("text", t)),
    st.just(("missing", None)),
    st.just(("folder", None)),
)


def _perturbed_copy(base: Path, relative: str, content) -> Path:
    folder = Path(tempfile.mkdtemp(dir=_ROOT))
    shutil.copytree(base, folder, dirs_exist_ok=True)
    target = folder / relative
    kind, payload = content
    target.unlink()
    if kind == "text":
        target.write_text(payload, encoding="utf-8")
    elif kind == "bytes":
        target.write_bytes(payload)
    elif kind == "folder":
        target.mkdir()
    return folder


@pytest.fixture(scope="module")
def nist_base() -> Path:
    folder = _ROOT / "base"
    if not folder.exists():
        _valid_nist(folder)
    load_nist_solutions(folder)
    load_nist_wine(folder)
    return folder


def _check_loader(loader, folder: Path, relative: str):
    try:
        loader(folder)
    except (ValueError, FileNotFoundError) as exc:
        message = str(exc)
        assert message and "\n" not in message, repr(message)
        assert str(folder) in message, (relative, message)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def nist_solution_file(base, relative, content):
    _check_loader(load_nist_solutions, _perturbed_copy(base, relative, content), relative)


def nist_data_file(base, relative, content):
    _check_loader(load_nist_wine, _perturbed_copy(base, relative, content), relative)


# --- .npz solution sets --------------------------------------------------------------------
def _valid_npz_entries() -> dict:
    rng = np.random.default_rng(1)
    sol = SolutionSet(states=(rng.integers(0, 2, (2, 4, 6)), rng.integers(0, 2, (2, 3, 4))),
                      biases=(rng.random((2, 3)), rng.random((2, 2))),
                      hidden_activation="tanh", output_activation="tanh", name="fuzz")
    path = _ROOT / "valid.npz"
    save_solutions(sol, path)
    with np.load(path) as npz:
        return {k: npz[k] for k in npz.files}


arrays = hnp.arrays(
    dtype=st.sampled_from([np.uint8, np.int64, np.float64, np.bool_, np.complex128,
                           np.dtype("<U4")]),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
)
npz_edits = st.lists(
    st.tuples(st.sampled_from(["format", "n_layers", "hidden_activation", "output_activation",
                               "threshold", "name", "states_0", "biases_0", "states_1",
                               "biases_1", "states_2", "extra"]),
              st.one_of(arrays, st.none())),
    min_size=1, max_size=3,
)


def npz_file(edits):
    entries = _valid_npz_entries()
    for key, value in edits:
        if value is None:
            entries.pop(key, None)
        else:
            entries[key] = value
    path = Path(tempfile.mkdtemp(dir=_ROOT)) / "set.npz"
    np.savez(path, **entries)
    try:
        load_solutions(path)
    except (ValueError, FileNotFoundError) as exc:
        message = str(exc)
        assert message and "\n" not in message, repr(message)
        assert str(path) in message, message
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)


def npz_garbage(payload):
    path = Path(tempfile.mkdtemp(dir=_ROOT)) / "set.npz"
    path.write_bytes(payload)
    try:
        load_solutions(path)
    except (ValueError, FileNotFoundError) as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)


CASES = {
    "nist_solution_file": (nist_solution_file, (st.sampled_from(SOLUTION_FILES), file_contents)),
    "nist_data_file": (nist_data_file, (st.sampled_from(DATA_FILES), file_contents)),
}
NPZ_CASES = {
    "npz_file": (npz_file, (npz_edits,)),
    "npz_garbage": (npz_garbage, (st.binary(max_size=300),)),
}


@pytest.mark.parametrize("case", CASES)
def test_fuzz_nist_files(case, nist_base):
    func, strategies = CASES[case]
    FAST(given(*strategies)(lambda relative, content: func(nist_base, relative, content)))()


@pytest.mark.parametrize("case", NPZ_CASES)
def test_fuzz_npz(case):
    func, strategies = NPZ_CASES[case]
    FAST(given(*strategies)(func))()


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_fuzz_nist_files_many(case, nist_base):
    func, strategies = CASES[case]
    SLOW(given(*strategies)(lambda relative, content: func(nist_base, relative, content)))()


@pytest.mark.slow
@pytest.mark.parametrize("case", NPZ_CASES)
def test_fuzz_npz_many(case):
    func, strategies = NPZ_CASES[case]
    SLOW(given(*strategies)(func))()


# --- bugs this fuzzing found in the loaders (fixed; kept as regression tests) -------------
@pytest.mark.parametrize("content", [("bytes", b"\x80\x81"), ("folder", None)])
@pytest.mark.parametrize(("loader", "relative"), [(load_nist_solutions, SOLUTION_FILES[0]),
                                                  (load_nist_wine, DATA_FILES[0])])
def test_unreadable_text_file_is_a_value_error_naming_it(nist_base, loader, relative,
                                                          content):
    folder = _perturbed_copy(nist_base, relative, content)
    try:
        with pytest.raises((ValueError, FileNotFoundError)) as err:
            loader(folder)
        assert str(folder / relative) in str(err.value)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize(("key", "value"), [
    ("n_layers", np.array([1, 2])), ("threshold", np.array([0.0, 1.0])),
    ("n_layers", np.array(1 + 0j)), ("threshold", np.array(1j)), ("n_layers", np.array(np.inf)),
])
def test_npz_with_a_bad_scalar_is_a_value_error(key, value):
    npz_file([(key, value)])
