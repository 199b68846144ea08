"""The fused Monte Carlo kernel: against the batched NumPy oracle, ideal equals software,
reproducibility under threads and chunking, distributions of writes and defects."""

import math

import numpy as np
import pytest
import xarray as xr

import mcmtj
from mcmtj.kernels._reference import reference_instances
from mcmtj.networks.solutions import forward, predict
from mcmtj.numerics._rng import instance_key
from mcmtj.run import schema

COUNTS = [schema.N_STUCK, schema.N_SHORT, schema.N_OPEN, schema.N_WRITE_ERRORS,
          schema.N_DISTURBS, schema.N_PULSES, schema.N_RESET_ERRORS]


def _drop_time(ds):
    ds = ds.copy()
    ds.attrs.pop("created")
    return ds


def test_ideal_nist_equals_software_and_independent_numpy(nist_study, nist_prepared):
    ds = mcmtj.simulate(nist_study, seed=1, prepared=nist_prepared)
    assert ds.sizes == {"solution": 300, "instance": 3}
    xr.testing.assert_equal(ds.accuracy, ds.software_accuracy.broadcast_like(ds.accuracy))
    assert (ds.write_fidelity == 1).all() and (ds.agreement == 1).all()
    assert (ds.current_rmse == 0).all()
    # the software accuracy itself, against the plain-NumPy reference of the convention
    sol, data = nist_prepared.solutions, nist_prepared.data
    scores = forward(sol.weights, sol.biases, data.X_train, hidden_activation="tanh",
                     output_activation="tanh")
    ref = (scores.argmax(-1) == data.y_train).mean(-1)
    np.testing.assert_array_equal(ds.software_accuracy.values, ref)


def test_ideal_trained_equals_software():
    study = mcmtj.Study().replace(**{
        "network.n_solutions": 4, "network.epochs": 20, "device.variation": False,
        "write.mode": "ideal", "run.instances": 5, "network.gnorm": [0.5, 1.0, 2.0],
        "network.eval_train": True,
    })
    ds = mcmtj.simulate(study, seed=3)
    assert ds.accuracy.dims == ("solution", "instance", "gnorm")
    xr.testing.assert_equal(ds.accuracy, ds.software_accuracy.broadcast_like(ds.accuracy))
    xr.testing.assert_equal(ds.accuracy_train,
                            ds.software_accuracy_train.broadcast_like(ds.accuracy_train))


ORACLE_CASES = {
    "fixed+stuck": {"write.mode": "fixed", "write.error_rate": 0.1, "defects.stuck_p": 0.02,
                    "defects.stuck_ap": 0.02},
    "physics+random-init": {"write.mode": "physics", "write.voltage": 0.5,
                            "device.jc_sigma": 0.05, "device.delta_sigma": 0.05,
                            "write.initial": "random"},
    "variation-off+open": {"device.variation": False, "write.mode": "fixed",
                           "write.error_rate": 0.3, "defects.open": 0.05},
    # stochastic reset (write.initial = 'ap') at a voltage where it fails often, die-to-die
    # offsets of every kind and both gradients, stuck devices that must not be reset (no
    # shorts: a shorted pair saturates tanh, and ulp-level differences of the two pipelines
    # then break argmax ties differently)
    "physics+reset+die": {"write.mode": "physics", "write.voltage": 0.55,
                          "write.pulse_width": 10e-9, "device.jc_sigma": 0.05,
                          "device.die_diameter_sigma": 3e-9,
                          "device.die_resistance_area_sigma": 0.1, "device.die_tmr_sigma": 0.1,
                          "device.die_jc_sigma": 0.1, "device.ra_gradient": 0.3,
                          "device.diameter_gradient": -0.2, "defects.stuck_p": 0.02,
                          "defects.open": 0.02},
    "fixed+reset+die-off": {"write.mode": "fixed", "write.error_rate": 0.2,
                            "device.variation": False, "device.ra_gradient": 0.5},
}


@pytest.mark.parametrize("case", ORACLE_CASES)
def test_kernel_equals_numpy_oracle(case, nist_study, nist_prepared):
    study = nist_study.replace(**{"device.variation": True, "network.max_solutions": 2,
                                  "network.gnorm": [0.7, 1.3], **ORACLE_CASES[case]})
    prep = mcmtj.prepare(study)
    n = 200
    ds = mcmtj.simulate(study, seed=11, instances=n, prepared=prep)
    sol, data = prep.solutions, prep.data
    gnorms = np.array([0.7, 1.3])
    for s in range(2):
        sw = np.stack([
            predict([w[s:s + 1] for w in sol.weights], [b[s:s + 1] for b in sol.biases],
                    data.X_train, hidden_activation="tanh", output_activation="tanh", gnorm=g)[0]
            for g in gnorms])
        ref = reference_instances(
            study, [st[s] for st in sol.states], [b[s] for b in sol.biases],
            ("tanh", "tanh", 0.0), data.X_train, data.y_train, sw, gnorms, s, np.arange(n),
            key=instance_key(11, 0))
        got = ds.isel(solution=s)
        for c, name in enumerate(COUNTS):
            np.testing.assert_array_equal(got[name].values, ref["counts"][:, c], err_msg=name)
        np.testing.assert_array_equal(got.write_fidelity.values, ref["write_fidelity"])
        np.testing.assert_array_equal(got.weight_fidelity.values, ref["weight_fidelity"])
        np.testing.assert_allclose(got.current_rmse.values, ref["current_rmse"], rtol=1e-12)
        np.testing.assert_array_equal(got.accuracy.values, ref["accuracy"])
        np.testing.assert_array_equal(got.agreement.values, ref["agreement"])


def test_same_seed_identical_across_threads_and_chunks(nist_study, nist_prepared):
    study = nist_study.replace(**{
        "network.max_solutions": 3, "device.variation": True, "write.mode": "physics",
        "write.voltage": 0.5, "device.jc_sigma": 0.05, "defects.stuck_p": 0.01,
        "defects.dispersion": 0.3, "sweep.device.diameter": [40e-9, 80e-9],
        "device.die_resistance_area_sigma": 0.05, "device.die_jc_sigma": 0.05,
        "device.ra_gradient": 0.2,
    })
    prep = mcmtj.prepare(study)
    a = mcmtj.simulate(study, seed=5, instances=150, chunk_size=7, threads=1, prepared=prep)
    b = mcmtj.simulate(study, seed=5, instances=150, chunk_size=1000, threads=2, prepared=prep)
    xr.testing.assert_identical(_drop_time(a), _drop_time(b))
    c = mcmtj.simulate(study, seed=6, instances=150, prepared=prep)
    assert not np.array_equal(a.write_fidelity.values, c.write_fidelity.values)
    # a prefix of a longer run is the shorter run
    d = mcmtj.simulate(study, seed=5, instances=40, prepared=prep)
    xr.testing.assert_equal(d.accuracy, a.accuracy.isel(instance=slice(0, 40)))


def test_fixed_write_error_rate_fidelity(nist_study, nist_prepared):
    p = 0.02
    n = 100_000
    study = nist_study.replace(**{"network.max_solutions": 1, "write.mode": "fixed",
                                  "write.error_rate": p, "write.initial": "ap_ideal"})
    ds = mcmtj.simulate(study, seed=2, instances=n, prepared=mcmtj.prepare(study))
    n_dev = 13 * 12 + 6 * 6
    pulsed = int(ds.n_pulses[0, 0])
    assert (ds.n_pulses == pulsed).all()
    expected = 1 - p * pulsed / n_dev
    sigma = math.sqrt(p * (1 - p) * pulsed / n) / n_dev
    assert abs(float(ds.write_fidelity.mean()) - expected) < 4 * sigma
    np.testing.assert_allclose(ds.write_fidelity, 1 - ds.n_write_errors / n_dev)


def test_defect_counts_match_rates(nist_study):
    rates = {"defects.stuck_p": 0.01, "defects.stuck_ap": 0.02, "defects.short": 0.005,
             "defects.open": 0.003}
    study = nist_study.replace(**{"network.max_solutions": 1, **rates})
    n = 20_000
    ds = mcmtj.simulate(study, seed=4, instances=n, prepared=mcmtj.prepare(study))
    n_dev = 192
    for name, rate in ((schema.N_STUCK, 0.03), (schema.N_SHORT, 0.005), (schema.N_OPEN, 0.003)):
        total = float(ds[name].sum())
        expected = n * n_dev * rate
        assert abs(total - expected) < 4 * math.sqrt(expected * (1 - rate)), name


def test_defect_rate_dispersion_widens_counts(nist_study):
    m, phi = 0.02, 0.1
    study = nist_study.replace(**{"network.max_solutions": 1, "defects.stuck_p": m,
                                  "defects.dispersion": phi})
    ds = mcmtj.simulate(study, seed=4, instances=20_000, prepared=mcmtj.prepare(study))
    counts = ds.n_stuck.values.ravel().astype(float)
    n_dev = 192
    assert counts.mean() == pytest.approx(n_dev * m, rel=0.03)
    var = n_dev * m * (1 - m) + n_dev * (n_dev - 1) * m * (1 - m) * phi
    assert counts.var() == pytest.approx(var, rel=0.1)


def test_sweep_dims_and_roundtrip(tmp_path, nist_study, nist_prepared):
    study = nist_study.replace(**{"sweep.write.error_rate": [0.0, 0.5], "write.mode": "fixed",
                                  "network.max_solutions": 2})
    ds = mcmtj.simulate(study, seed=1, instances=20, prepared=mcmtj.prepare(study))
    assert ds.accuracy.dims == ("error_rate", "solution", "instance")
    assert (ds.write_fidelity.sel(error_rate=0.0) == 1).all()
    assert (ds.write_fidelity.sel(error_rate=0.5) < 1).any()
    assert ds.attrs["seed"] == "1" and "[write]" in ds.attrs["study"]
    assert ds.accuracy.attrs["units"] == "1"
    path = mcmtj.save(ds, tmp_path / "r.nc")
    xr.testing.assert_identical(mcmtj.open_results(path), ds)
    assert [p.name for p in tmp_path.iterdir()] == ["r.nc"]


def test_layer_too_large_is_an_error(nist_study):
    with pytest.raises(ValueError, match="does not fit"):
        mcmtj.prepare(nist_study.replace(**{"array.cols": 10}))


def test_sensitivity_fidelity(nist_study, nist_prepared):
    study = nist_study.replace(**{"network.max_solutions": 2, "network.sensitivity": True,
                                  "write.mode": "fixed", "write.error_rate": 0.2})
    prep = mcmtj.prepare(study)
    ds = mcmtj.simulate(study, seed=1, instances=30, prepared=prep)
    sf = ds[schema.SENSITIVITY_FIDELITY]
    assert ((sf >= 0) & (sf <= 1)).all() and (sf < 1).any()
    # instances with every device right have sensitivity fidelity 1
    np.testing.assert_array_equal(sf.values[ds.write_fidelity.values == 1], 1.0)
    ideal = mcmtj.simulate(study.replace(**{"write.mode": "ideal"}), seed=1, instances=3,
                           prepared=prep)
    assert (ideal[schema.SENSITIVITY_FIDELITY] == 1).all()


def test_table_switching_kernel_equals_numpy_oracle(nist_study, tmp_path):
    """A measured WER table (two widths, both directions) instead of the model: the kernel
    and the NumPy pipeline give the same instances, including reset errors."""
    rows = ["direction,voltage,pulse_width,wer"]
    for direction, shift in (("ap_to_p", 0.0), ("p_to_ap", 0.05)):
        for t, wers in ((5e-9, (0.9, 0.3, 0.02, 1e-4)), (50e-9, (0.5, 0.05, 1e-3, 1e-7))):
            for v, w in zip((0.40, 0.50, 0.60, 0.70), wers, strict=True):
                rows.append(f"{direction},{v + shift},{t},{w}")
    table = tmp_path / "wer.csv"
    table.write_text("\n".join(rows) + "\n")
    study = nist_study.replace(**{
        "network.max_solutions": 1, "write.mode": "physics", "write.switching": "table",
        "write.wer_table": str(table), "write.voltage": 0.55, "write.pulse_width": 20e-9,
        "network.gnorm": [1.0]})
    prep = mcmtj.prepare(study)
    n = 200
    ds = mcmtj.simulate(study, seed=3, instances=n, prepared=prep)
    sol, data = prep.solutions, prep.data
    sw = predict([w[:1] for w in sol.weights], [b[:1] for b in sol.biases], data.X_train,
                 hidden_activation="tanh", output_activation="tanh", gnorm=1.0)
    ref = reference_instances(study, [st[0] for st in sol.states], [b[0] for b in sol.biases],
                              ("tanh", "tanh", 0.0), data.X_train, data.y_train, sw,
                              np.array([1.0]), 0, np.arange(n), key=instance_key(3, 0))
    got = ds.isel(solution=0)
    for c, name in enumerate(COUNTS):
        np.testing.assert_array_equal(got[name].values, ref["counts"][:, c], err_msg=name)
    np.testing.assert_array_equal(got.accuracy.values, ref["accuracy"])
    assert got.n_write_errors.sum() > 0 and got.n_reset_errors.sum() > 0


def test_reset_errors_follow_the_reset_probability(nist_study):
    """Fixed mode: each device is fabricated P with probability 1/2 and its reset fails with
    write.error_rate, so reset errors per instance are Binomial(n_dev, p / 2)."""
    p = 0.1
    study = nist_study.replace(**{"network.max_solutions": 1, "write.mode": "fixed",
                                  "write.error_rate": p, "device.variation": False})
    n = 4000
    ds = mcmtj.simulate(study, seed=8, instances=n, prepared=mcmtj.prepare(study))
    counts = ds.n_reset_errors.values.ravel().astype(float)
    n_dev = 192
    q = p / 2
    assert abs(counts.mean() - n_dev * q) < 4 * math.sqrt(n_dev * q * (1 - q) / n)
    assert counts.var() == pytest.approx(n_dev * q * (1 - q), rel=0.1)
    assert ds.n_reset_errors.attrs["units"] == "count"
    ideal = mcmtj.simulate(study.replace(**{"write.initial": "ap_ideal"}), seed=8, instances=50,
                           prepared=mcmtj.prepare(study))
    assert (ideal.n_reset_errors == 0).all()


def test_packed_data_are_writeable_so_one_kernel_type_serves_every_data_set(nist_study,
                                                                             nist_prepared):
    # the loaded NIST arrays are read-only; numba would compile the chunk kernel again
    # (minutes) for read-only inputs, so the packed copies handed to it must be writeable
    from mcmtj.run.block import pack

    data = nist_prepared.data
    assert not data.X_train.flags.writeable
    pk = pack(nist_prepared, nist_study)
    for x in (pk.X_eval, pk.y_eval, pk.X_train, pk.y_train):
        assert x.flags.writeable and x.flags.c_contiguous


def test_class_choice_is_the_first_maximum_of_tanh():
    """The output layer's tanh is taken only where it can decide the class (close calls,
    saturation, NaN); the class must be the first maximum of tanh(z) everywhere. A one-layer
    network with identity weights puts z = X on the outputs."""
    from mcmtj.kernels import _engine_kernels as K

    rng = np.random.default_rng(2)
    z = rng.uniform(-6.0, 6.0, (3, 400))  # well-separated: the class is argmax z
    special = np.array([
        [25.0, 30.0, 3.0],  # tanh(25) == tanh(30) == 1.0: the first one
        [-1.0, 40.0, 40.0],  # an exact tie in z: the first one
        [np.nan, 1.0, 2.0],  # NaN never wins, but it is the start of the scan
        [1.0, np.nan, 0.5],
        [0.3, 0.3 + 1e-15, 0.2],  # closer than the skip's gap: decided by tanh itself
        [7.9, 8.1, -1.0],  # beyond the skip's range
        [-30.0, -25.0, -40.0],  # tanh(-25) == tanh(-30) == -1.0: the first one
    ]).T
    X = np.ascontiguousarray(np.concatenate([z, special], axis=1))
    weights = np.eye(3)[None]
    ip = np.zeros(K.N_IP, np.int64)
    ip[K.I_OUT_TANH] = 1
    out = np.empty((1, X.shape[1]), np.int64)
    K.software_predictions(weights, np.array([3]), np.array([3]), np.zeros((1, 3)), X,
                           np.array([1.0]), ip, np.zeros(K.N_FP), out)
    np.testing.assert_array_equal(out[0, :400], np.argmax(np.tanh(z), axis=0))
    t = np.tanh(np.fmin(np.abs(special), 20.0)) * np.sign(special)  # saturation as the kernel's
    assert t[0, 0] == t[1, 0] and t[1, 6] == t[0, 6]  # the premise of the saturated cases
    np.testing.assert_array_equal(out[0, 400:], [0, 1, 0, 0, 1, 1, 0])
