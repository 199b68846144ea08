"""Integrated (1T1MTJ) arrays: array.kind = "integrated" (issue 14 item 2).

The kernels against the oracle instance by instance are in tests/test_oracle.py; here:
with every effect off the full-array path equals the core path, a short never changes a
neighbour's write, the closed forms equal the nodal solve, and bad input is refused.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import mcmtj
from mcmtj.kernels import _engine_kernels as K
from mcmtj.physics.array import integrated_read_current, integrated_write_voltage
from mcmtj.physics.circuit import verify_read_resistance, write_voltages
from mcmtj.run import schema
from mcmtj.run.block import check_inputs, make_plan, run_block

SHARED = [schema.ACCURACY, schema.AGREEMENT, schema.WRITE_FIDELITY, schema.WEIGHT_FIDELITY,
          schema.CURRENT_RMSE, schema.N_STUCK, schema.N_SHORT, schema.N_OPEN,
          schema.N_WRITE_ERRORS, schema.N_PULSES, schema.N_DISTURBS]


def test_series_closed_forms_equal_nodal_solves():
    """One conducting device: the write and verify closed forms equal the general solvers
    of mcmtj.physics.circuit given only that device (every other access device off)."""
    G = np.zeros((7, 5))
    G[2, 3] = 3e-4
    r_row, r_col, r_drv = 2.0, 3.0, 10.0
    v, _, _ = write_voltages(G, 2, 3, 0.7, "none", r_row, r_col, r_drv, solver="full")
    assert integrated_write_voltage(G[2, 3], 0.7, 2, 3, 7, r_row, r_col, r_drv) == \
        pytest.approx(v[2, 3], rel=1e-12)
    r_sensed = verify_read_resistance(G, 2, 3, 0.1, "floating", r_row, r_col)
    assert integrated_read_current(G[2, 3], 0.1, 2, 3, 7, r_row, r_col) == \
        pytest.approx(0.1 / r_sensed, rel=1e-12)


def _integrated(nist_study, **kw):
    return nist_study.replace(**{"network.max_solutions": 2, "device.variation": True,
                                 "array.kind": "integrated", **kw})


def test_integrated_without_effects_equals_core(nist_study):
    """No circuit effect: forcing the full-array path gives the core path's instances."""
    study = _integrated(nist_study, **{"write.mode": "fixed", "write.error_rate": 0.05,
                                       "defects.stuck_p": 0.02, "defects.short": 0.02,
                                       "defects.open": 0.02})
    plan = make_plan(study, mcmtj.prepare(study))
    assert plan.points[0].ip[K.I_CIRCUIT] == 0
    ip = plan.points[0].ip.copy()
    ip[K.I_CIRCUIT] = 1
    forced = dataclasses.replace(plan, points=(dataclasses.replace(plan.points[0], ip=ip),))
    core = run_block(plan, 0, 0, 2, 0, 40)
    circuit = run_block(forced, 0, 0, 2, 0, 40)
    for name in SHARED:
        np.testing.assert_array_equal(core[name], circuit[name], err_msg=name)
    assert int(core[schema.N_SHORT].sum()) > 0


def test_integrated_shorts_never_disturb_neighbours(nist_study):
    """A short's own cell is lost, but every other device ends in exactly the state it has
    without the short: writes through strongly resistive drivers (the selected device's
    voltage depends on what else loads the lines) and the physics switching model. A passive
    V/2 array under the same pulses loses neighbours to the shorts (the test can fail)."""
    base = nist_study.replace(**{
        "network.max_solutions": 1, "device.variation": True, "write.mode": "physics",
        "write.voltage": 0.8, "write.pulse_width": 2e-9, "device.delta_sat": 25.0,
        "write.r_driver": 300.0, "write.ir_solver": "full", "network.readback": True})
    prep = mcmtj.prepare(base)
    g_short = 1.0 / base.defects.r_short
    for kind, scheme in (("integrated", "none"), ("passive", "v2")):
        clean = base.replace(**{"array.kind": kind, "write.scheme": scheme})
        shorted = clean.replace(**{"defects.short": 0.1})
        a = mcmtj.simulate(clean, seed=3, instances=2, prepared=prep)
        b = mcmtj.simulate(shorted, seed=3, instances=2, prepared=prep)
        ga = a[schema.READBACK_CONDUCTANCE].values
        gb = b[schema.READBACK_CONDUCTANCE].values
        neighbours = gb != g_short
        assert int(b.n_short.sum()) > 0 and (~neighbours).sum() == int(b.n_short.sum())
        if kind == "integrated":
            np.testing.assert_array_equal(ga[neighbours], gb[neighbours])
            assert int(b.n_disturbs.sum()) == 0
            assert int(a.n_write_errors.sum()) > 0  # the writes are not trivially perfect
        else:
            assert not np.array_equal(ga[neighbours], gb[neighbours])


def test_integrated_refuses_half_select_scheme():
    study = mcmtj.Study().replace(**{"array.kind": "integrated", "write.scheme": "v2"})
    with pytest.raises(mcmtj.ConfigError, match=r"^write.scheme = 'v2' is not allowed with "
                       r"array.kind = 'integrated'") as err:
        check_inputs(study)
    assert "\n" not in str(err.value)
    with pytest.raises(mcmtj.ConfigError, match=r"array.kind = 'crossbar' is not allowed"):
        mcmtj.Study().replace(**{"array.kind": "crossbar"})
