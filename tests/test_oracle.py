"""The passive-array kernels against the independent oracle (tests/oracle/passive.py),
instance by instance: integer results exactly, floating results to 1e-9 relative.

A tiny network (13 inputs, 2 hidden, 3 outputs: 64 devices) on 13 x 6 or 13 x 13 arrays, a
slice of the NIST Wine data (8 test samples), one or two instances per configuration; every
effect alone and all together, both write schemes, both verify schemes, square and non-square
arrays, writes through the lines with the full nodal solve; the stochastic reset of
``write.initial = "ap"`` (the default: most configurations reset, some with failures), the
exact ``"ap_ideal"`` start, die-to-die offsets and gradients, integrated (1T1MTJ) arrays
and tiled layers.
"""

from __future__ import annotations

import numpy as np
import pytest
from oracle.passive import simulate_instance

import mcmtj
from mcmtj.networks.solutions import SolutionSet

INTEGERS = ["n_stuck", "n_short", "n_open", "n_write_errors", "n_disturbs", "n_pulses",
            "n_verify_retries", "n_nonconverged", "n_reset_errors"]
FLOATS = ["write_fidelity", "weight_fidelity", "current_rmse"]

# A pulse long and strong enough that writes mostly succeed but fail now and then, and
# half-selects disturb now and then, so every branch of the write is exercised.
PHYSICS = {"write.mode": "physics", "write.voltage": 0.8, "write.pulse_width": 2e-9,
           "device.delta_sat": 25.0}
FIXED = {"write.mode": "fixed", "write.error_rate": 0.15, "write.disturb_rate": 0.02}
WIRES = {"read.r_wire": 2.0, "write.ir_solver": "full"}
VERIFY_HALF = {"write.verify": True, "write.verify_scheme": "half", "write.max_retries": 2}
VERIFY_FLOAT = {"write.verify": True, "write.verify_scheme": "floating",
                "write.max_retries": 2}
DEFECTS = {"defects.stuck_p": 0.03, "defects.stuck_ap": 0.03, "defects.short": 0.03,
           "defects.open": 0.03}
# die-to-die sigmas large enough to move the switching thresholds visibly
DIE = {"device.die_diameter_sigma": 3e-9, "device.die_resistance_area_sigma": 0.1,
       "device.die_tmr_sigma": 0.2, "device.die_jc_sigma": 0.1}
GRADIENTS = {"device.ra_gradient": 0.3, "device.diameter_gradient": -0.2}
ALL = {**PHYSICS, **WIRES, **VERIFY_FLOAT, **DEFECTS, "write.scheme": "v2",
       "write.order": "random", "write.initial": "random", "write.retry_step": 0.05,
       "write.r_driver": 5.0, "read.bias_tmr": True, "read.noise": 0.02,
       "read.offset_sigma": 0.2, "device.delta_sigma": 0.05, "device.jc_sigma": 0.05}

CONFIGS = {
    "ideal-v2": {"write.scheme": "v2"},
    "fixed-v2": {**FIXED, "write.scheme": "v2"},
    "fixed-v3": {**FIXED, "write.scheme": "v3"},
    "physics-v2": {**PHYSICS, "write.scheme": "v2"},
    "physics-v3": {**PHYSICS, "write.scheme": "v3"},
    "physics-driver-only": {**PHYSICS, "write.r_driver": 300.0, "write.ir_solver": "full"},
    "physics-v2-wires": {**PHYSICS, **WIRES, "write.scheme": "v2"},
    "physics-v3-wires": {**PHYSICS, **WIRES, "write.scheme": "v3", "write.r_driver": 5.0},
    "physics-v2-long-wires": {**PHYSICS, "write.scheme": "v2", "read.r_wire": 10.0,
                              "write.ir_solver": "full"},
    "physics-v2-rows-only": {**PHYSICS, "write.scheme": "v2", "read.r_row": 4.0,
                             "write.ir_solver": "full"},
    "physics-ir-off": {**PHYSICS, "write.scheme": "v2", "read.r_wire": 2.0,
                       "write.ir_solver": "off"},
    "verify-half-fixed": {**FIXED, **VERIFY_HALF},
    "verify-floating-fixed": {**FIXED, **VERIFY_FLOAT},
    "verify-half-physics-step": {**PHYSICS, **VERIFY_HALF, "write.scheme": "v2",
                                 "write.retry_step": 0.05},
    "verify-floating-wires": {**PHYSICS, **WIRES, **VERIFY_FLOAT, "write.scheme": "v3"},
    "order-column": {**PHYSICS, "write.scheme": "v2", "write.order": "column"},
    "order-random-verify": {**FIXED, **VERIFY_HALF, "write.scheme": "v2",
                            "write.order": "random"},
    "initial-random": {**PHYSICS, "write.scheme": "v2", "write.initial": "random"},
    "initial-random-floating": {**FIXED, **VERIFY_FLOAT, "write.initial": "random"},
    "stuck": {**PHYSICS, "write.scheme": "v2", "defects.stuck_p": 0.05,
              "defects.stuck_ap": 0.05},
    "short-open-wires": {**PHYSICS, **WIRES, "write.scheme": "v2", "defects.short": 0.05,
                         "defects.open": 0.05},
    "bias-tmr": {"write.scheme": "v2", "read.bias_tmr": True, "read.r_wire": 2.0},
    "bias-tmr-defects": {"read.bias_tmr": True, "read.r_wire": 2.0, "defects.short": 0.05,
                         "defects.open": 0.05},
    "bias-tmr-no-wires": {"read.bias_tmr": True, "defects.short": 0.05},
    "noise": {"read.noise": 0.05},
    "offset": {"read.offset_sigma": 0.5},
    "eval-train-noise": {"read.noise": 0.05, "network.eval_train": True},
    "gains": {"read.r_wire": 3.0, "network.gnorm": [0.5, 1.0, 2.0]},
    "no-variation-v3-floating": {**PHYSICS, **VERIFY_FLOAT, "device.variation": False,
                                 "write.scheme": "v3"},
    "spread-v2": {**PHYSICS, "write.scheme": "v2", "device.delta_sigma": 0.1,
                  "device.jc_sigma": 0.1},
    "all-v2": ALL,
    "all-v3-half": {**ALL, "write.scheme": "v3", "write.verify_scheme": "half"},
    "all-v2-square": {**ALL, "array.cols": 13},
    "square-v3-wires": {**PHYSICS, **WIRES, "write.scheme": "v3", "array.cols": 13},
    "all-v3-square": {**ALL, "write.scheme": "v3", "array.cols": 13,
                      "write.order": "column", "write.initial": "ap"},
    # the stochastic reset (write.initial = "ap", the default): at 1.15 V the P -> AP reset
    # pulse fails now and then (at PHYSICS' 0.8 V it fails mostly), so n_reset_errors and the
    # rewrites of failed resets are exercised, with verify retries on top
    "reset-some-fail": {**PHYSICS, **VERIFY_HALF, "write.scheme": "v2", "write.voltage": 1.15},
    "reset-fixed-v3-defects": {**FIXED, **DEFECTS, "write.scheme": "v3",
                               "write.error_rate": 0.3},
    # floating verify with a reset and a random order: the kernel's own references (not the
    # engine's precomputed ones) must also assume AP after the reset
    "reset-floating-random-order": {**PHYSICS, **VERIFY_FLOAT, "write.scheme": "v2",
                                    "write.voltage": 1.15, "write.order": "random"},
    "ap-ideal-physics": {**PHYSICS, "write.scheme": "v2", "write.initial": "ap_ideal"},
    "ap-ideal-fixed-floating": {**FIXED, **VERIFY_FLOAT, "write.initial": "ap_ideal"},
    # die-to-die variation: per-instance offsets, alone and with gradients through the lines
    "die-sigmas": {**PHYSICS, "write.scheme": "v2", "write.voltage": 1.15, **DIE},
    "die-no-variation": {**PHYSICS, **DIE, "write.scheme": "v3", "device.variation": False},
    "die-gradients-wires": {**PHYSICS, **WIRES, **DIE, **GRADIENTS, "write.scheme": "v2",
                            "write.voltage": 1.15, "device.delta_sigma": 0.05,
                            "device.jc_sigma": 0.05},
    "gradients-only": {**PHYSICS, **GRADIENTS, "write.scheme": "v3", "array.cols": 13,
                       "read.offset_sigma": 0.2},
    # integrated (1T1MTJ) arrays: writes and verify reads of the selected device alone
    # through resistive lines and drivers, every defect, inference through the full network
    "integrated-wires-verify-defects": {**PHYSICS, **WIRES, **VERIFY_HALF, **DEFECTS,
                                        "array.kind": "integrated", "write.r_driver": 5.0,
                                        "write.retry_step": 0.05},
    "integrated-fixed-noise-shorts": {**FIXED, **VERIFY_FLOAT, "array.kind": "integrated",
                                      "defects.short": 0.1, "read.r_wire": 2.0,
                                      "read.noise": 0.02},
    # tiled layers: layer 0 (13 x 4) on three arrays of 5, 5 and 3 rows, layer 1 (2 x 6) on
    # two of 4 and 2 columns; partial currents summed after sensing, read linearly or per
    # sample (noise, offsets)
    "tiled-v2-wires-verify": {**PHYSICS, **WIRES, **VERIFY_HALF, "write.scheme": "v2",
                              "array.tile_rows": 5, "array.tile_cols": 4},
    "tiled-integrated-noisy-defects": {**FIXED, **DEFECTS, "array.kind": "integrated",
                                       "array.tile_rows": 5, "array.tile_cols": 4,
                                       "read.r_wire": 2.0, "read.noise": 0.02,
                                       "read.offset_sigma": 0.2},
}


# Configurations whose oracle takes more than a few seconds (sparse solves per sample and
# per verify read): one instance each, and the heaviest only in the slow run.
HEAVY = {"all-v2", "all-v3-half", "all-v3-square", "bias-tmr", "bias-tmr-defects",
         "verify-floating-fixed", "verify-floating-wires", "initial-random-floating",
         "no-variation-v3-floating", "ap-ideal-fixed-floating",
         "reset-floating-random-order"}
SLOW = {"all-v2-square"}


@pytest.fixture(scope="module")
def tiny(nist_dir):
    """A random ternary 13-2-3 network on 13 x 6 arrays; NIST Wine inputs, 12 training and
    8 test samples (the oracle reads each sample through sparse solves)."""
    from mcmtj.networks.data import DataSplit, load_nist_wine

    rng = np.random.default_rng(5)
    weights = (rng.integers(-1, 2, (1, 13, 2)), rng.integers(-1, 2, (1, 2, 3)))
    biases = (rng.normal(0, 0.3, (1, 2)), rng.normal(0, 0.3, (1, 3)))
    sol = SolutionSet.from_weights(weights, biases, hidden_activation="tanh",
                                   output_activation="identity", name="oracle tiny")
    full = load_nist_wine(nist_dir)
    data = DataSplit(X_train=full.X_train[::12], y_train=full.y_train[::12],
                     X_test=full.X_test[::4][:8], y_test=full.y_test[::4][:8],
                     name="nist-wine slice")
    study = mcmtj.Study().replace(**{
        "network.source": "nist", "network.dataset": "nist", "network.nist_path": str(nist_dir),
        "network.eval_split": "test", "array.rows": 13, "array.cols": 6,
        "device.variation": True, "write.mode": "ideal", "write.pulse_width": 20e-9})
    return study, mcmtj.prepare(study, solutions=sol, data=data)


def test_oracle_matrix_is_large_enough():
    assert len(CONFIGS) >= 30 and HEAVY | SLOW <= set(CONFIGS)


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name
    for name in sorted(CONFIGS)])
def test_kernels_equal_oracle(tiny, name):
    base, prep = tiny
    study = base.replace(**CONFIGS[name])
    instances = 1 if name in HEAVY | SLOW else 2
    ds = mcmtj.simulate(study, seed=7, instances=instances, prepared=prep)
    for s in range(prep.solutions.n_solutions):
        for i in range(instances):
            ref = simulate_instance(study, prep.solutions, prep.data, s, i, seed=7)
            at = {"solution": s, "instance": i}
            for field in INTEGERS:
                assert int(ds[field].isel(at)) == ref[field], (name, s, i, field)
            for field in FLOATS:
                np.testing.assert_allclose(float(ds[field].isel(at)), ref[field], rtol=1e-9,
                                           atol=1e-15, err_msg=f"{name} {s} {i} {field}")
            # accuracies are counts over the samples: exact
            np.testing.assert_array_equal(np.atleast_1d(ds.accuracy.isel(at).values),
                                          ref["accuracy"], err_msg=f"{name} {s} {i}")
            np.testing.assert_array_equal(np.atleast_1d(ds.agreement.isel(at).values),
                                          ref["agreement"], err_msg=f"{name} {s} {i}")
            if study.network.eval_train:
                np.testing.assert_array_equal(
                    np.atleast_1d(ds.accuracy_train.isel(at).values), ref["accuracy_train"])
            if study.write.verify and study.write.final_verify:
                assert float(ds.readback_fidelity.isel(at)) == ref["readback_fidelity"]
