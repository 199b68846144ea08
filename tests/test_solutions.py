"""Tests of mcmtj.networks.solutions: SolutionSet, reference inference, loaders and storage."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from mcmtj.networks.data import load_nist_wine
from mcmtj.networks.solutions import (
    SolutionSet,
    forward,
    load_nist_solutions,
    load_solutions,
    predict,
    save_solutions,
    software_accuracy,
)


@pytest.fixture(scope="module")
def nist_path(nist_dir) -> Path:
    """The shared NIST Wine folder (conftest: skipped, or failed under MCMTJ_REQUIRE_DATA)."""
    return nist_dir


def random_ternary(rng, sizes, n_solutions):
    weights = tuple(
        rng.integers(-1, 2, size=(n_solutions, n_in, n_out)).astype(np.float64)
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
    )
    biases = tuple(rng.normal(size=(n_solutions, n_out)) for n_out in sizes[1:])
    return weights, biases


def make_set(rng=None, sizes=(5, 4, 3), n_solutions=3, **kwargs):
    rng = np.random.default_rng(0) if rng is None else rng
    weights, biases = random_ternary(rng, sizes, n_solutions)
    kwargs = {"hidden_activation": "tanh", "output_activation": "tanh", **kwargs}
    return SolutionSet.from_weights(weights, biases, **kwargs)


# --- SolutionSet ---------------------------------------------------------------------------------


def test_from_weights_maps_each_weight_to_a_device_pair():
    w = np.array([[[1, -1, 0]]])  # 1 solution, 1 input, 3 outputs
    s = SolutionSet.from_weights(
        (w,), (np.zeros((1, 3)),), hidden_activation="sign", output_activation="identity"
    )
    np.testing.assert_array_equal(s.states[0], [[[1, 0, 0, 1, 0, 0]]])
    assert s.states[0].dtype == np.uint8
    np.testing.assert_array_equal(s.weights[0], w)
    assert s.weights[0].dtype == np.float64


def test_solution_set_properties_and_weights_round_trip():
    rng = np.random.default_rng(1)
    weights, biases = random_ternary(rng, (13, 6, 3), 4)
    s = SolutionSet.from_weights(
        weights, biases, hidden_activation="tanh", output_activation="tanh", name="x"
    )
    assert s.n_solutions == 4 and s.n_layers == 2
    assert s.layer_shapes == ((13, 6), (6, 3))
    assert s.states[0].shape == (4, 13, 12) and s.states[1].shape == (4, 6, 6)
    for got, expected in zip(s.weights, weights, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_solution_set_is_frozen_and_read_only():
    s = make_set()
    with pytest.raises(AttributeError):
        s.name = "other"
    with pytest.raises(ValueError):
        s.states[0][0, 0, 0] = 1
    with pytest.raises(ValueError):
        s.biases[0][0, 0] = 1.0
    with pytest.raises(ValueError):
        s.weights[0][0, 0, 0] = 1.0


def test_solution_set_copies_its_input():
    states = np.zeros((1, 2, 2), dtype=np.uint8)
    s = SolutionSet(
        states=(states,),
        biases=(np.zeros((1, 1)),),
        hidden_activation="tanh",
        output_activation="tanh",
    )
    states[0, 0, 0] = 1
    assert s.states[0][0, 0, 0] == 0


def _valid_fields():
    return dict(
        states=(np.zeros((2, 3, 4), np.uint8), np.ones((2, 2, 6), np.uint8)),
        biases=(np.zeros((2, 2)), np.zeros((2, 3))),
        hidden_activation="tanh",
        output_activation="identity",
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f["states"][0].__setitem__((0, 0, 0), 2), r"states\[0\]: device states"),
        (
            lambda f: f.update(states=(np.zeros((2, 3, 5)), f["states"][1])),
            r"states\[0\]: expected shape",
        ),
        (lambda f: f.update(states=(f["states"][0], np.ones((2, 3, 6)))), r"states\[1\]: 3 inputs"),
        (
            lambda f: f.update(states=(f["states"][0], np.ones((3, 2, 6)))),
            r"states\[1\]: 3 solutions",
        ),
        (
            lambda f: f.update(biases=(f["biases"][0], np.zeros((2, 2)))),
            r"biases\[1\]: expected shape",
        ),
        (lambda f: f["biases"][0].__setitem__((1, 1), np.nan), r"biases\[0\]: must be finite"),
        (lambda f: f.update(biases=f["biases"][:1]), "biases: 1 layers"),
        (lambda f: f.update(hidden_activation="relu"), "hidden_activation"),
        (lambda f: f.update(output_activation="softmax"), "output_activation"),
        (lambda f: f.update(threshold=np.inf), "threshold"),
        (lambda f: f.update(states=(), biases=()), "states: need at least one layer"),
    ],
)
def test_solution_set_validation_names_the_field(change, message):
    fields = _valid_fields()
    SolutionSet(**fields)  # the unchanged fields are valid
    change(fields)
    with pytest.raises(ValueError, match=message):
        SolutionSet(**fields)


def test_from_weights_rejects_non_ternary_values():
    with pytest.raises(ValueError, match=r"weights\[0\]: values must be -1, 0 or \+1"):
        SolutionSet.from_weights(
            (np.full((1, 2, 2), 0.5),),
            (np.zeros((1, 2)),),
            hidden_activation="tanh",
            output_activation="tanh",
        )


def test_subset_keeps_order_and_metadata():
    s = make_set(n_solutions=5, hidden_activation="sign", threshold=0.25, name="n")
    sub = s.subset([4, 1])
    assert sub.n_solutions == 2 and sub.threshold == 0.25 and sub.name == "n"
    assert sub.hidden_activation == "sign"
    for full, part in zip(s.states + s.biases, sub.states + sub.biases, strict=True):
        np.testing.assert_array_equal(part, full[[4, 1]])
    mask = np.array([True, False, False, True, False])
    assert s.subset(mask) == s.subset([0, 3])
    assert s.subset([0, 3]) != s.subset([0, 2])
    with pytest.raises(ValueError, match="indices"):
        s.subset(np.array([True, False]))


# --- forward / predict / software_accuracy -------------------------------------------------------


def loop_forward(weights, biases, X, hidden, output, threshold, gnorm, tanh=math.tanh):
    """Plain per-solution, per-sample Python loop: the convention spelled out."""
    n_solutions, n_out = len(weights[0]), weights[-1].shape[2]
    scores = np.empty((n_solutions, len(X), n_out))
    for k in range(n_solutions):
        for i in range(len(X)):
            x = [float(v) for v in X[i]]
            for layer, (w, b) in enumerate(zip(weights, biases, strict=True)):
                last = layer == len(weights) - 1
                a = []
                for j in range(w.shape[2]):
                    total = 0.0
                    for f in range(w.shape[1]):
                        total += x[f] * float(w[k, f, j])
                    a.append(total / gnorm + float(b[k, j]))
                if not last:
                    x = [
                        tanh(v) if hidden == "tanh" else (1.0 if v >= threshold else -1.0)
                        for v in a
                    ]
                else:
                    x = [tanh(v) if output == "tanh" else v for v in a]
            scores[k, i] = x
    return scores


def test_forward_matches_loop_exactly_without_tanh():
    # Sign hidden and identity output involve no transcendental function, so the
    # result must equal the increasing-f loop bit for bit (summation order fixed).
    rng = np.random.default_rng(2)
    weights, biases = random_ternary(rng, (13, 6, 3), 4)
    X = rng.random((25, 13))
    kwargs = dict(hidden_activation="sign", output_activation="identity", threshold=0.1, gnorm=0.7)
    got = forward(weights, biases, X, **kwargs)
    expected = loop_forward(weights, biases, X, "sign", "identity", 0.1, 0.7)
    assert got.shape == (4, 25, 3)
    np.testing.assert_array_equal(got, expected)


def test_forward_single_layer_sum_order_is_increasing_f():
    # Terms 1e17, -1e17, 5 (ulp of 1e17 is 16): in increasing f the sum is
    # (1e17 - 1e17) + 5 = 5; any order that adds 5 to +-1e17 first loses it.
    X = np.array([[1e17, 1e17, 5.0], [5.0, 1e17, 1e17]])
    w = np.array([[[1.0, 0.0], [-1.0, 1.0], [1.0, -1.0]]])
    got = forward(
        (w,), (np.zeros((1, 2)),), X, hidden_activation="tanh", output_activation="identity"
    )
    # Sample 1 reverses the inputs: now 5 meets -1e17 first and is lost.
    np.testing.assert_array_equal(got[0], [[5.0, 1e17], [0.0, 0.0]])


@pytest.mark.parametrize("hidden", ["tanh", "sign"])
@pytest.mark.parametrize("output", ["tanh", "identity"])
def test_forward_matches_loop(hidden, output):
    rng = np.random.default_rng(3)
    weights, biases = random_ternary(rng, (7, 5, 4, 3), 3)
    X = rng.random((11, 7)) * 2 - 1
    got = forward(
        weights,
        biases,
        X,
        hidden_activation=hidden,
        output_activation=output,
        threshold=-0.2,
        gnorm=1.3,
    )
    expected = loop_forward(weights, biases, X, hidden, output, -0.2, 1.3)
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-15)


def test_sign_activation_at_threshold_is_plus_one():
    # a = x * w = 0.5 equals the threshold -> +1, so the output is the second-layer weight.
    w1 = np.array([[[1.0]]])
    w2 = np.array([[[-1.0]]])
    zeros = np.zeros((1, 1))
    out = forward(
        (w1, w2),
        (zeros, zeros),
        [[0.5]],
        hidden_activation="sign",
        output_activation="identity",
        threshold=0.5,
    )
    assert out[0, 0, 0] == -1.0
    out = forward(
        (w1, w2),
        (zeros, zeros),
        [[0.4]],
        hidden_activation="sign",
        output_activation="identity",
        threshold=0.5,
    )
    assert out[0, 0, 0] == 1.0


def test_predict_takes_first_maximum_on_ties():
    w = np.zeros((2, 1, 3))
    b = np.array([[0.0, 1.0, 1.0], [2.0, 2.0, 2.0]])
    got = predict((w,), (b,), np.ones((4, 1)), hidden_activation="tanh", output_activation="tanh")
    np.testing.assert_array_equal(got, [[1, 1, 1, 1], [0, 0, 0, 0]])
    assert got.dtype == np.int64


def test_software_accuracy_counts_correct_samples():
    # One layer; solution 0 routes input j to output j, solution 1 reverses the routing.
    eye = np.eye(3)
    s = SolutionSet.from_weights(
        (np.stack([eye, eye[::-1]]),),
        (np.zeros((2, 3)),),
        hidden_activation="tanh",
        output_activation="identity",
    )
    X = np.eye(3)[[0, 1, 2, 2]]
    y = np.array([0, 1, 2, 1])
    np.testing.assert_array_equal(software_accuracy(s, X, y), [0.75, 0.25])
    # gnorm scales the currents, not the biases: it cannot change these predictions.
    np.testing.assert_array_equal(software_accuracy(s, X, y, gnorm=2.0), [0.75, 0.25])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gnorm": 0.0}, "gnorm"),
        ({"hidden_activation": "relu"}, "hidden_activation"),
        ({"X": np.ones((2, 4))}, r"weights\[0\]: expected shape"),
    ],
)
def test_forward_rejects_bad_arguments(kwargs, message):
    weights, biases = random_ternary(np.random.default_rng(0), (3, 2), 1)
    args = {
        "X": np.ones((2, 3)),
        "hidden_activation": "tanh",
        "output_activation": "tanh",
        **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        forward(weights, biases, **args)


# --- NIST loader ---------------------------------------------------------------------------------


def write_nist_solutions(folder: Path, ks=(0, 1, 2, 10), n_in=4, n_hidden=3, n_out=2, seed=0):
    """Write small solutions in the NIST text layout; return {k: (states1, b1, states2, b2)}."""
    rng = np.random.default_rng(seed)
    (folder / "solutions").mkdir(parents=True, exist_ok=True)
    truth = {}
    for k in ks:
        s1 = rng.integers(0, 2, size=(n_in, 2 * n_hidden))
        s2 = rng.integers(0, 2, size=(n_hidden, 2 * n_out))
        b1, b2 = rng.normal(size=n_hidden), rng.normal(size=n_out)
        np.savetxt(folder / "solutions" / f"{k}_fc1_weight.txt", s1, fmt="%d")
        np.savetxt(folder / "solutions" / f"{k}_fc1_bias.txt", b1)
        np.savetxt(folder / "solutions" / f"{k}_fc2_weight.txt", s2, fmt="%d")
        np.savetxt(folder / "solutions" / f"{k}_fc2_bias.txt", b2)
        truth[k] = (s1, b1, s2, b2)
    return truth


def test_load_nist_solutions_sorted_numerically(tmp_path):
    truth = write_nist_solutions(tmp_path)
    s = load_nist_solutions(tmp_path)
    assert s.n_solutions == 4 and s.layer_shapes == ((4, 3), (3, 2))
    assert (s.hidden_activation, s.output_activation, s.name) == ("tanh", "tanh", "nist-wine")
    for row, k in enumerate([0, 1, 2, 10]):  # numeric order, not "10" before "2"
        s1, b1, s2, b2 = truth[k]
        np.testing.assert_array_equal(s.states[0][row], s1)
        np.testing.assert_array_equal(s.states[1][row], s2)
        np.testing.assert_allclose(s.biases[0][row], b1, rtol=1e-15)
        np.testing.assert_allclose(s.biases[1][row], b2, rtol=1e-15)
    picked = load_nist_solutions(tmp_path, indices=[10, 0])
    assert picked == s.subset([3, 0])


def test_load_nist_solutions_missing_file_names_it(tmp_path):
    write_nist_solutions(tmp_path)
    (tmp_path / "solutions" / "2_fc2_bias.txt").unlink()
    with pytest.raises(FileNotFoundError, match="2_fc2_bias.txt"):
        load_nist_solutions(tmp_path)
    with pytest.raises(FileNotFoundError, match="7_fc1_weight.txt"):
        load_nist_solutions(tmp_path, indices=[0, 7])
    with pytest.raises(FileNotFoundError, match="solutions"):
        load_nist_solutions(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        (
            "1_fc1_weight.txt",
            "1 0 1 0 1 0\n0 1 2 0 1 0\n1 1 1 1 1 1\n0 0 0 0 0 0\n",
            "1_fc1_weight.txt: device states",
        ),
        (
            "1_fc1_weight.txt",
            "1 0 1 0 1 0\n0 1 1 0 1 0\n1 1 1 1 1 1\n",
            r"1_fc1_weight.txt: shape \(3, 6\)",
        ),
        (
            "0_fc1_weight.txt",
            "1 0 1 0 1\n0 1 1 0 1\n1 1 1 1 1\n0 0 0 0 0\n",
            "0_fc1_weight.txt: 5 columns",
        ),
        ("0_fc2_weight.txt", "1 0 1 0\n0 1 1 0\n", "0_fc2_weight.txt: 2 rows"),
        ("2_fc2_bias.txt", "0.5\nnan\n", "2_fc2_bias.txt: contains NaN"),
        ("2_fc1_bias.txt", "0.5\n0.1\n", "2_fc1_bias.txt: 2 values, expected 3"),
        ("10_fc2_bias.txt", "0.5\n1.0.0\n", "10_fc2_bias.txt: cannot parse"),
    ],
)
def test_load_nist_solutions_errors_name_the_file(tmp_path, file, content, message):
    write_nist_solutions(tmp_path)
    (tmp_path / "solutions" / file).write_text(content)
    with pytest.raises(ValueError, match=message):
        load_nist_solutions(tmp_path)


def test_load_nist_solutions_real_files(nist_path):
    s = load_nist_solutions(nist_path)
    assert s.n_solutions == 300 and s.layer_shapes == ((13, 6), (6, 3))
    assert s.states[0].shape == (300, 13, 12) and s.biases[1].shape == (300, 3)
    k = 123
    np.testing.assert_array_equal(
        s.states[0][k], np.loadtxt(nist_path / "solutions" / f"{k}_fc1_weight.txt")
    )
    np.testing.assert_array_equal(
        s.biases[1][k], np.loadtxt(nist_path / "solutions" / f"{k}_fc2_bias.txt")
    )
    # The NIST convention (tanh, column pairs, gnorm = G_on - G_off) reproduces the
    # solutions' accuracy: median 28/30 on the NIST test split. A wrong pairing or
    # activation gives far less.
    data = load_nist_wine(nist_path)
    accuracy = software_accuracy(s, data.X_test, data.y_test)
    assert np.median(accuracy) == pytest.approx(28 / 30)
    assert np.median(software_accuracy(s, data.X_test, data.y_test, gnorm=0.5)) < 0.8


# --- npz storage ---------------------------------------------------------------------------------


def test_save_load_round_trip_is_exact(tmp_path):
    s = make_set(
        sizes=(6, 5, 4, 3), n_solutions=7, hidden_activation="sign", threshold=0.3, name="rt"
    )
    path = tmp_path / "set.npz"
    save_solutions(s, path)
    loaded = load_solutions(path)
    assert loaded == s
    for a, b in zip(loaded.biases, s.biases, strict=True):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    assert loaded.threshold == 0.3 and loaded.name == "rt"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set.npz"]  # no temp file left


def test_save_replaces_atomically(tmp_path, monkeypatch):
    path = tmp_path / "set.npz"
    first = make_set(name="first")
    save_solutions(first, path)
    save_solutions(make_set(name="second"), path)
    assert load_solutions(path).name == "second"

    def broken_savez(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save_solutions(first, path)
    assert load_solutions(path).name == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set.npz"]


def test_load_solutions_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_solutions(tmp_path / "missing.npz")
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(ValueError, match="other.npz: not an mcmtj solution file"):
        load_solutions(other)
    text = tmp_path / "text.npz"
    text.write_text("hello")
    with pytest.raises(ValueError, match="text.npz"):
        load_solutions(text)
