"""Passive-array write and read: disturb sampler, write-verify, circuit path vs core path."""

import math

import numpy as np
import pytest
from scipy import stats

import mcmtj
from mcmtj.numerics import _rng
from mcmtj.physics.array import sample_thinned
from mcmtj.run import schema

SHARED = [schema.ACCURACY, schema.AGREEMENT, schema.WRITE_FIDELITY, schema.WEIGHT_FIDELITY,
          schema.CURRENT_RMSE, schema.N_STUCK, schema.N_SHORT, schema.N_OPEN,
          schema.N_WRITE_ERRORS, schema.N_PULSES]


def test_thinned_disturbs_match_bernoulli_counts():
    """Thinning sampler vs one Bernoulli draw per device: same distribution of counts."""
    rng = np.random.default_rng(0)
    probs = rng.uniform(0.0, 0.02, 28)  # a V/2 pulse's 28 half-selected devices
    p_max = probs.max()
    pulses = 100_000
    st = np.zeros(11, np.uint64)
    hits = np.empty(28, np.int64)
    thinned = np.empty(pulses, np.int64)
    per_device = np.zeros(28)
    for i in range(pulses):
        _rng.stream_init(st, np.uint64(3), np.uint64(4), _rng.LANE_DISTURB, 0, i)
        k = sample_thinned(probs, 28, p_max, st, hits)
        thinned[i] = k
        per_device[hits[:k]] += 1
    brute = (rng.random((pulses, 28)) < probs).sum(axis=1)
    top = 4
    table = np.array([[np.sum(np.minimum(x, top) == k) for k in range(top + 1)]
                      for x in (thinned, brute)])
    table = table[:, table.sum(axis=0) > 0]
    assert stats.chi2_contingency(table).pvalue > 1e-3
    # each device is hit at its own rate
    z = (per_device - pulses * probs) / np.sqrt(pulses * probs * (1 - probs))
    assert np.abs(z).max() < 4.5


def _passive(nist_study, **kw):
    return nist_study.replace(**{"network.max_solutions": 2, "device.variation": True, **kw})


def test_circuit_path_without_effects_equals_core(nist_study):
    core = _passive(nist_study, **{"write.mode": "fixed", "write.error_rate": 0.05,
                                   "defects.stuck_p": 0.01, "defects.open": 0.01})
    # V/2 scheme with a zero disturb rate takes the full-array path but disturbs nothing
    circ = core.replace(**{"write.scheme": "v2", "write.disturb_rate": 0.0})
    prep = mcmtj.prepare(core)
    a = mcmtj.simulate(core, seed=9, instances=60, prepared=prep)
    b = mcmtj.simulate(circ, seed=9, instances=60, prepared=prep)
    for name in SHARED:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    assert int(b.n_disturbs.sum()) == 0


def test_write_verify_residual_error(nist_study):
    """Perfect read (no variation, no defects) and k_max retries: each pulsed device stays
    wrong with probability p^(k_max + 1)."""
    p, k_max, n = 0.3, 2, 3000
    study = _passive(nist_study, **{
        "device.variation": False, "network.max_solutions": 1, "write.mode": "fixed",
        "write.error_rate": p, "write.verify": True, "write.max_retries": k_max,
        "write.initial": "ap_ideal"})
    ds = mcmtj.simulate(study, seed=4, instances=n, prepared=mcmtj.prepare(study))
    n_dev = 192
    wrong = ((1 - ds.write_fidelity) * n_dev).round().sum()
    first_pulses = int(ds.n_pulses.values[0, 0] - ds.n_verify_retries.values[0, 0])
    trials = n * first_pulses
    expected = p ** (k_max + 1)
    sigma = math.sqrt(trials * expected * (1 - expected))
    assert abs(float(wrong) - trials * expected) < 4 * sigma
    # without variation the read is exact when every device is right; a wrong device shifts
    # its column's sneak current, so its neighbours may then be misread
    all_right = ds.write_fidelity.values == 1
    assert all_right.any()
    np.testing.assert_array_equal(ds.readback_fidelity.values[all_right], 1.0)
    # at least the retries that true failures need (misreads add more)
    assert float(ds.n_verify_retries.mean()) / first_pulses > 0.95 * (p + p**2)


def test_disturbs_and_line_resistance_effects(nist_study):
    base = _passive(nist_study, **{"write.mode": "fixed", "write.error_rate": 0.0,
                                   "network.max_solutions": 1})
    prep = mcmtj.prepare(base)
    dist = mcmtj.simulate(base.replace(**{"write.scheme": "v2", "write.disturb_rate": 0.01}),
                          seed=1, instances=300, prepared=prep)
    # each pulse half-selects 28 cells; about half are in the state the pulse can disturb
    per_pulse = float(dist.n_disturbs.sum() / dist.n_pulses.sum())
    assert 0.05 < per_pulse < 0.28
    assert float(dist.write_fidelity.mean()) < 1.0
    flat = mcmtj.simulate(base, seed=1, instances=100, prepared=prep)
    wires = mcmtj.simulate(base.replace(**{"read.r_row": 10.0, "read.r_col": 10.0}), seed=1,
                           instances=100, prepared=prep)
    assert float(wires.current_rmse.mean()) > float(flat.current_rmse.mean())


def test_bias_tmr_and_noise_paths(nist_study):
    base = _passive(nist_study, **{"write.mode": "ideal", "device.variation": False,
                                   "network.max_solutions": 1})
    prep = mcmtj.prepare(base)
    ideal = mcmtj.simulate(base, seed=1, instances=3, prepared=prep)
    assert (ideal.accuracy == ideal.software_accuracy).all()
    # bias-dependent TMR at V_read = 0.1 V changes G_AP by ~4 %: still converges
    btmr = mcmtj.simulate(base.replace(**{"read.bias_tmr": True, "read.r_row": 2.0,
                                          "read.r_col": 2.0}),
                          seed=1, instances=2, prepared=prep)
    assert int(btmr.n_nonconverged.sum()) == 0
    assert float(btmr.accuracy.mean()) > 0.5
    capped = mcmtj.simulate(base.replace(**{"read.bias_tmr": True, "read.r_row": 2.0,
                                            "read.r_col": 2.0, "read.max_iter": 1,
                                            "read.tolerance": 1e-15}),
                            seed=1, instances=1, prepared=prep)
    assert int(capped.n_nonconverged.sum()) > 0
    noisy = mcmtj.simulate(base.replace(**{"read.noise": 0.2}), seed=1, instances=20,
                           prepared=prep)
    assert float(noisy.agreement.mean()) < 1.0


def test_verify_ideal_devices_never_misread(nist_study):
    """Ideal devices and ideal writes: the verify reference follows the states the
    experimenter knows (written cells in their targets, the rest as reset or initially
    read), so no read is wrong and no pulse is retried, whatever the scheme, order and wires.
    """
    base = _passive(nist_study, **{
        "device.variation": False, "network.max_solutions": 1, "write.mode": "ideal",
        "write.verify": True, "write.scheme": "v2", "read.r_wire": 2.0})
    prep = mcmtj.prepare(base)
    for scheme in ("half", "floating"):
        for order, initial in (("row", "ap"), ("column", "ap"), ("random", "random")):
            study = base.replace(**{"write.verify_scheme": scheme, "write.order": order,
                                    "write.initial": initial})
            ds = mcmtj.simulate(study, seed=2, instances=2, prepared=prep)
            label = f"{scheme} {order} {initial}"
            assert int(ds.n_verify_retries.sum()) == 0, label
            assert int(ds.n_write_errors.sum()) == 0, label
            np.testing.assert_array_equal(ds.readback_fidelity.values, 1.0, err_msg=label)
            np.testing.assert_array_equal(ds.write_fidelity.values, 1.0, err_msg=label)


def test_bias_tmr_read_sees_open_devices(nist_study, nist_dir):
    """Every device open: no current flows, every output is its bias alone, so the network
    predicts argmax(output bias) for every sample -- read linearly or with bias-dependent
    TMR (which once rebuilt the devices from their states and read them as healthy)."""
    from mcmtj.networks.data import load_nist_wine
    from mcmtj.networks.solutions import load_nist_solutions

    sol = load_nist_solutions(nist_dir)
    y = load_nist_wine(nist_dir).y_train
    expected = float(np.mean(y == np.argmax(sol.biases[-1][0])))
    base = _passive(nist_study, **{"write.mode": "ideal", "network.max_solutions": 1,
                                   "defects.open": 1.0, "read.r_wire": 2.0})
    prep = mcmtj.prepare(base)
    for bias_tmr in (False, True):
        ds = mcmtj.simulate(base.replace(**{"read.bias_tmr": bias_tmr}), seed=0, instances=2,
                            prepared=prep)
        np.testing.assert_array_equal(ds.accuracy.values, expected, err_msg=str(bias_tmr))


def test_write_ir_config_errors():
    for key, value, text in (("write.r_driver", -1.0, "write.r_driver = -1.0 is out of range"),
                             ("write.ir_solver", "exact", "write.ir_solver = 'exact'")):
        with pytest.raises(mcmtj.ConfigError, match=text) as err:
            mcmtj.Study().replace(**{key: value})
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("overrides, solves", [
    ({}, False),  # no line or driver resistance: the ideal bias, no solve per pulse
    ({"read.r_wire": 2.0}, True),
    ({"read.r_col": 1.0}, True),
    ({"write.r_driver": 50.0}, True),
    ({"read.r_wire": 2.0, "write.ir_solver": "off"}, False),
])
def test_write_solve_only_with_resistance_on_the_write_path(overrides, solves):
    from mcmtj.kernels import _engine_kernels as K
    from mcmtj.physics._circuit_kernels import IR_FAST, IR_OFF
    from mcmtj.run.block import _param_vectors

    study = mcmtj.Study().replace(**{"write.mode": "physics", "write.scheme": "v2",
                                     **overrides})
    _, ip = _param_vectors(study)
    assert ip[K.I_IR_SOLVER] == (IR_FAST if solves else IR_OFF)
