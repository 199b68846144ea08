"""Tests of mcmtj.networks.trainer.BinaryMLP."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.base import clone

from mcmtj.networks.data import load_wine
from mcmtj.networks.solutions import software_accuracy
from mcmtj.networks.trainer import BinaryMLP


@pytest.fixture(scope="module")
def wine():
    return load_wine()


def fitted(wine, **params):
    params = {"n_solutions": 6, "epochs": 40, "random_state": 0, **params}
    return BinaryMLP(**params).fit(wine.X_train, wine.y_train)


def test_small_set_trains_above_chance(wine):
    model = fitted(wine, n_solutions=8, epochs=60)
    # Chance on three classes is about 0.4 (largest class); trained nets are far above.
    assert np.median(model.train_accuracy_) > 0.85
    assert np.median(model.accuracy(wine.X_test, wine.y_test)) > 0.8
    assert model.score(wine.X_test, wine.y_test) == pytest.approx(
        np.mean(model.accuracy(wine.X_test, wine.y_test))
    )


def test_learned_attributes(wine):
    model = fitted(wine, n_solutions=5, epochs=10)
    assert [w.shape for w in model.weights_] == [(5, 13, 6), (5, 6, 3)]
    assert [b.shape for b in model.biases_] == [(5, 6), (5, 3)]
    for w in model.weights_:
        assert set(np.unique(w)) <= {-1.0, 1.0}
    np.testing.assert_array_equal(model.classes_, [0, 1, 2])
    assert model.train_accuracy_.shape == (5,)
    assert model.loss_curve_.shape == (11, 5)
    assert np.all((0 <= model.best_epoch_) & (model.best_epoch_ <= 10))
    assert model.n_features_in_ == 13
    assert model.predict(wine.X_test).shape == (5, 30)


def test_ternary_weights_have_zeros(wine):
    model = fitted(wine, weights="ternary", epochs=10)
    values = np.concatenate([w.ravel() for w in model.weights_])
    assert set(np.unique(values)) == {-1.0, 0.0, 1.0}
    # ternary_threshold = 0.5 of mean |u| with u ~ U(-1, 1) zeroes about a quarter.
    assert 0.1 < np.mean(values == 0) < 0.4


def test_fixed_random_state_is_deterministic(wine):
    a, b = fitted(wine, random_state=7), fitted(wine, random_state=7)
    c = fitted(wine, random_state=8)
    for x, y in zip(a.weights_ + a.biases_, b.weights_ + b.biases_, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not all(
        np.array_equal(x, y)
        for x, y in zip(a.weights_ + a.biases_, c.weights_ + c.biases_, strict=True)
    )


def test_solutions_are_independent_of_how_many_are_trained(wine):
    # Each solution starts from its own spawned stream and, in full-batch mode,
    # nothing couples the solutions: solution k is the same whatever K is.
    few, many = fitted(wine, n_solutions=2), fitted(wine, n_solutions=5)
    for x, y in zip(few.weights_ + few.biases_, many.weights_ + many.biases_, strict=True):
        np.testing.assert_allclose(x, y[:2], rtol=1e-12, atol=1e-12)
    # ... and different solutions are different networks.
    assert not np.array_equal(many.weights_[0][0], many.weights_[0][1])


def test_keeps_the_best_epoch(wine):
    # A longer run with the same seed passes through the shorter run's epochs, so the
    # best training accuracy can only go up.
    short, long = fitted(wine, n_solutions=16, epochs=15), fitted(wine, n_solutions=16, epochs=40)
    assert np.all(long.train_accuracy_ >= short.train_accuracy_)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"weights": "ternary", "output_activation": "tanh"},
        {"hidden_activation": "sign"},
        {"hidden": (5, 4), "weights": "ternary"},
        {"batch_size": 32},
    ],
)
def test_to_solutions_reproduces_the_model(wine, params):
    model = fitted(wine, **params)
    solutions = model.to_solutions(name="wine-test")
    assert solutions.name == "wine-test" and solutions.n_solutions == model.n_solutions
    assert solutions.hidden_activation == model.hidden_activation
    assert solutions.output_activation == model.output_activation
    for w, expected in zip(solutions.weights, model.weights_, strict=True):
        np.testing.assert_array_equal(w, expected)
    np.testing.assert_array_equal(
        software_accuracy(solutions, wine.X_train, wine.y_train), model.train_accuracy_
    )
    np.testing.assert_array_equal(
        software_accuracy(solutions, wine.X_test, wine.y_test),
        model.accuracy(wine.X_test, wine.y_test),
    )
    assert np.median(model.train_accuracy_) > 0.6  # every variant learns something


def test_sign_hidden_network_trains(wine):
    model = fitted(wine, hidden_activation="sign", epochs=60)
    assert np.median(model.train_accuracy_) > 0.75


def test_minibatches_are_deterministic(wine):
    a, b = fitted(wine, batch_size=50), fitted(wine, batch_size=50)
    np.testing.assert_array_equal(a.weights_[0], b.weights_[0])
    np.testing.assert_array_equal(a.biases_[1], b.biases_[1])


def test_string_labels_come_back_from_predict(wine):
    names = np.array(["barolo", "grignolino", "barbera"])
    model = BinaryMLP(n_solutions=3, epochs=30, random_state=1).fit(
        wine.X_train, names[wine.y_train]
    )
    np.testing.assert_array_equal(model.classes_, np.sort(names))
    assert set(np.unique(model.predict(wine.X_test))) <= set(names)
    assert model.score(wine.X_test, names[wine.y_test]) > 0.6


def test_sklearn_conventions():
    model = BinaryMLP(weights="nonsense", hidden=3, epochs=-1)  # __init__ does not validate
    assert model.get_params()["weights"] == "nonsense"
    model.set_params(weights="ternary", epochs=5)
    assert clone(model).get_params() == model.get_params()
    assert not hasattr(model, "weights_")
    X, y = np.random.default_rng(0).random((20, 4)), np.arange(20) % 2
    assert model.fit(X, y) is model
    assert hasattr(model, "weights_")


def test_unfitted_model_raises():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        BinaryMLP().predict(np.zeros((2, 3)))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"weights": "quaternary"}, "weights"),
        ({"hidden": 0}, "hidden"),
        ({"hidden": (4, "a")}, "hidden"),
        ({"n_solutions": 0}, "n_solutions"),
        ({"epochs": 2.5}, "epochs"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"batch_size": 0}, "batch_size"),
        ({"ternary_threshold": -0.1}, "ternary_threshold"),
        ({"hidden_activation": "relu"}, "hidden_activation"),
        ({"output_activation": "softmax"}, "output_activation"),
    ],
)
def test_fit_rejects_bad_parameters(params, message):
    X, y = np.zeros((4, 2)), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match=message):
        BinaryMLP(**params).fit(X, y)


def test_fit_rejects_bad_data():
    with pytest.raises(ValueError, match="NaN"):
        BinaryMLP().fit([[0.0, np.nan], [1.0, 1.0]], [0, 1])
    with pytest.raises(ValueError, match="y: expected shape"):
        BinaryMLP().fit(np.zeros((3, 2)), [0, 1])
    with pytest.raises(ValueError, match="two classes"):
        BinaryMLP().fit(np.zeros((3, 2)), [1, 1, 1])
    model = BinaryMLP(epochs=2).fit(np.zeros((4, 2)), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="5 features, but the model was fitted with 2"):
        model.predict(np.zeros((3, 5)))


@pytest.mark.slow
def test_300_wine_solutions_fast_and_accurate(wine):
    start = time.perf_counter()
    model = BinaryMLP(n_solutions=300, random_state=0).fit(wine.X_train, wine.y_train)
    elapsed = time.perf_counter() - start
    accuracy = model.accuracy(wine.X_test, wine.y_test)
    assert elapsed < 60
    assert np.median(accuracy) > 0.9
    assert np.mean(accuracy > 0.9) > 0.5
