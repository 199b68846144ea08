"""Training modes of BinaryMLP: defect-unaware, hardware-aware, statistics-aware.

Maps here are built by hand in units of the nominal G_P - G_AP (TMR 1.2: a P device
is 2.2/1.2, an AP device 1/1.2); a shorted device has the same, large, conductance
in both states. Nothing in this file uses the physics layer: the trainer must not.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from mcmtj.networks.data import load_wine
from mcmtj.networks.solutions import forward
from mcmtj.networks.trainer import BinaryMLP, check_device_map, map_weights

ON, OFF = 2.2 / 1.2, 1.0 / 1.2  # G_P and G_AP over G_P - G_AP at TMR = 1.2


def shorted_map(rng, shapes, rate, short, lead=()):
    """Nominal devices, each shorted (conductance ``short`` in both states) with ``rate``."""
    out = []
    for n_in, n_cols in shapes:
        m = np.empty((*lead, n_in, n_cols, 2))
        m[..., 0], m[..., 1] = ON, OFF
        m[rng.random((*lead, n_in, n_cols)) < rate] = short
        out.append(m)
    return out


@pytest.fixture(scope="module")
def wine():
    return load_wine()


WINE_SHAPES = [(13, 12), (6, 6)]


def test_map_weights_by_hand():
    # one solution, 2 inputs, 2 outputs: weights +1, -1 / 0, +1 (ternary)
    w = np.array([[[1.0, -1.0], [0.0, 1.0]]])
    m = np.empty((2, 4, 2))
    m[..., 0], m[..., 1] = ON, OFF
    m[0, 0] = 5.0  # plus device of output 0 on input 0 shorted
    m[1, 3] = 0.0  # minus device of output 1 on input 1 open
    (eff,) = map_weights((w,), (m,))
    # +1 -> (P, AP): 5 - OFF; -1 -> (AP, P): OFF - ON; 0 -> (AP, AP): 0; +1 -> ON - 0
    np.testing.assert_allclose(eff[0], [[5.0 - OFF, OFF - ON], [0.0, ON]], rtol=1e-15)


def test_nominal_map_is_the_ideal_network(wine):
    # A map of nominal devices gives effective weights (ON - OFF) = 1 up to rounding, so
    # hardware-aware training on it follows the unaware run and its predictions agree.
    kw = dict(n_solutions=3, epochs=15, random_state=2)
    ideal = BinaryMLP(**kw).fit(wine.X_train, wine.y_train)
    nominal = shorted_map(np.random.default_rng(0), WINE_SHAPES, 0.0, 0.0)
    mapped = BinaryMLP(training="hardware", device_map=nominal, **kw).fit(
        wine.X_train, wine.y_train)
    for a, b in zip(ideal.weights_, mapped.weights_, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ideal.predict(wine.X_test),
                                  ideal.predict(wine.X_test, device_map=nominal))


def test_hardware_aware_beats_unaware_on_its_planted_map(wine):
    # 8 % of the devices shorted at 6x the nominal weight: the unaware networks collapse
    # on this die; networks trained on it learn around its shorts.
    die = shorted_map(np.random.default_rng(1), WINE_SHAPES, 0.08, 6.0)
    kw = dict(n_solutions=6, epochs=40, random_state=0)
    unaware = BinaryMLP(**kw).fit(wine.X_train, wine.y_train)
    aware = BinaryMLP(training="hardware", device_map=die, **kw).fit(wine.X_train, wine.y_train)
    on_die_unaware = unaware.accuracy(wine.X_test, wine.y_test, die)
    on_die_aware = aware.accuracy(wine.X_test, wine.y_test, die)
    assert on_die_aware.mean() > on_die_unaware.mean() + 0.1
    # the training accuracy it kept was measured on that die
    np.testing.assert_array_less(on_die_unaware.mean(),
                                 aware.accuracy(wine.X_train, wine.y_train, die).mean())


def test_per_solution_maps_train_each_solution_on_its_own_die(wine):
    rng = np.random.default_rng(3)
    dies = shorted_map(rng, WINE_SHAPES, 0.08, 6.0, lead=(2,))
    kw = dict(n_solutions=2, epochs=10, random_state=4)
    both = BinaryMLP(training="hardware", device_map=dies, **kw).fit(wine.X_train, wine.y_train)
    for k in range(2):
        alone = BinaryMLP(training="hardware", device_map=[m[k] for m in dies], **kw).fit(
            wine.X_train, wine.y_train)
        # full-batch training: solution k does not depend on the others
        np.testing.assert_array_equal(both.weights_[0][k], alone.weights_[0][k])


def test_statistics_mode_is_reproducible_and_draws_fresh_maps(wine):
    calls = []

    def sampler(rng, n):
        calls.append(n)
        return shorted_map(rng, WINE_SHAPES, 0.05, 3.0, lead=(n,))

    kw = dict(n_solutions=3, epochs=5, batch_size=74, random_state=9, training="statistics",
              map_sampler=sampler, n_eval_maps=2)
    a = BinaryMLP(**kw).fit(wine.X_train, wine.y_train)
    # two evaluation maps, then one map per step: 5 epochs x 2 mini-batches
    assert calls == [3] * (2 + 5 * 2)
    b = BinaryMLP(**kw).fit(wine.X_train, wine.y_train)
    for x, y in zip(a.weights_ + a.biases_, b.weights_ + b.biases_, strict=True):
        np.testing.assert_array_equal(x, y)
    c = BinaryMLP(**{**kw, "random_state": 10}).fit(wine.X_train, wine.y_train)
    assert not np.array_equal(a.weights_[0], c.weights_[0])


@pytest.mark.slow
def test_statistics_aware_beats_unaware_on_fresh_maps():
    # digits 64 -> 16 -> 10 on dies with 2 % shorts at 4x the nominal weight; maps scored
    # here come from seeds the training never saw (its sampler draws from its own stream)
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    X_train, y_train, X_test, y_test = X[:900], y[:900], X[900:1400], y[900:1400]
    shapes = [(64, 32), (16, 20)]
    kw = dict(hidden=16, n_solutions=4, epochs=40, batch_size=64, random_state=0)
    unaware = BinaryMLP(**kw).fit(X_train, y_train)
    aware = BinaryMLP(training="statistics",
                      map_sampler=lambda rng, n: shorted_map(rng, shapes, 0.02, 4.0, lead=(n,)),
                      **kw).fit(X_train, y_train)
    fresh = [shorted_map(np.random.default_rng(100 + i), shapes, 0.02, 4.0) for i in range(10)]
    acc_unaware = np.mean([unaware.accuracy(X_test, y_test, m) for m in fresh], axis=0)
    acc_aware = np.mean([aware.accuracy(X_test, y_test, m) for m in fresh], axis=0)
    assert acc_aware.mean() > acc_unaware.mean() + 0.02


def test_decision_function_on_a_map_is_the_reference_forward(wine):
    model = BinaryMLP(n_solutions=2, epochs=5, random_state=0).fit(wine.X_train, wine.y_train)
    die = shorted_map(np.random.default_rng(5), WINE_SHAPES, 0.1, 4.0)
    expected = forward(map_weights(model.weights_, die), model.biases_, wine.X_test,
                       hidden_activation="tanh", output_activation="identity")
    np.testing.assert_array_equal(model.decision_function(wine.X_test, die), expected)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"training": "aware"}, "training: expected one of"),
        ({"training": "hardware"}, "device_map: required with training='hardware'"),
        ({"training": "statistics"}, "map_sampler: required with training='statistics'"),
        ({"device_map": [np.ones((13, 12, 2)), np.ones((6, 6, 2))]}, "device_map: required"),
        ({"training": "statistics", "map_sampler": 3}, "map_sampler: expected a callable"),
        ({"training": "statistics", "map_sampler": lambda r, n: None, "n_eval_maps": 0},
         "n_eval_maps: expected an integer >= 1"),
        ({"training": "hardware", "device_map": [np.ones((13, 10, 2)), np.ones((6, 6, 2))]},
         r"device_map\[0\]: expected shape \(2, 13, 12, 2\) or \(13, 12, 2\), got \(13, 10, 2\)"),
        ({"training": "hardware", "device_map": [np.ones((13, 12, 2))]},
         "device_map: 1 layers, the network has 2"),
        ({"training": "hardware", "device_map": [np.ones((13, 12, 2)), -np.ones((6, 6, 2))]},
         r"device_map\[1\]: conductances must be finite and >= 0"),
        ({"training": "statistics", "map_sampler": lambda r, n: [np.ones((13, 12, 2)),
                                                                 np.ones((6, 6, 2))]},
         r"map_sampler\[0\]: expected shape \(2, 13, 12, 2\), got \(13, 12, 2\)"),
    ],
)
def test_bad_mode_parameters_name_the_field(wine, params, message):
    with pytest.raises(ValueError, match=message):
        BinaryMLP(n_solutions=2, epochs=2, random_state=0, **params).fit(
            wine.X_train, wine.y_train)


def test_check_device_map_needs_one_array_per_layer():
    with pytest.raises(ValueError, match="device_map: expected a list or tuple"):
        check_device_map(np.ones((13, 12, 2)), WINE_SHAPES, 1)
