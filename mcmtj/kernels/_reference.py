"""Batched pure-NumPy version of the whole Monte Carlo pipeline.

Vectorised over instances, with no Python loop per instance: what a user would
write without mcmtj. It serves twice:

- as the test oracle of the fused kernel: fed the same Philox words
  (``key=...``), it must give the same instances (integer results equal, floating
  results equal up to the last bits, where NumPy's SIMD ``exp``/``tanh`` and the
  kernel's differ);
- as the baseline of ``benchmarks/bench_engine.py``: fed ``rng=np.random.Generator``
  it is the fastest plain-NumPy formulation we know of.

Supports the core engine's effects: variation, die-to-die offsets and gradients,
fixed-rate defects, ``ideal`` / ``fixed`` / ``physics`` (model or WER table) writes, the
``ap`` (stochastic reset) / ``ap_ideal`` / ``random`` initial states, ideal read.
"""

from __future__ import annotations

import math

import numpy as np

from mcmtj.networks.solutions import forward
from mcmtj.numerics import _rng
from mcmtj.physics.device import (
    DEFECT_NONE,
    DEFECT_OPEN,
    DEFECT_SHORT,
    DEFECT_STUCK_AP,
    DEFECT_STUCK_P,
    classify_defects,
    load_wer_table,
    nominal_conductances,
    sample_parallel_conductance,
    switching_probability,
    table_switching_probability,
    thermal_stability,
    tmr_at_bias,
    wer_table_curves,
)

__all__ = ["reference_instances"]


def _uniform(words):
    return _rng.u32_to_uniform(words.astype(np.float64))


def reference_instances(study, states, biases, activations, X, y, sw_pred, gnorms, solution,
                        instances, *, key=None, rng=None):
    """Simulate instances of one solution at one sweep point, batched over instances.

    Parameters
    ----------
    study : Study
        A single sweep point (no ``[sweep]``).
    states : sequence of ndarray (n_in, 2 n_out) uint8
        Target device states per layer of this solution.
    biases : sequence of ndarray (n_out,)
    activations : (hidden_activation, output_activation, threshold)
    X : ndarray (n_samples, n_features); y, sw_pred (n_samples,) / (G, n_samples)
    gnorms : ndarray (G,)
    solution : int
        Solution index (part of the random-stream key).
    instances : ndarray of int (n,)
        Global instance indices.
    key : (k0, k1), optional
        Philox key: draw exactly the kernel's random numbers.
    rng : numpy.random.Generator, optional
        Draw fresh random numbers instead (benchmark baseline).

    Returns
    -------
    dict of ndarray
        ``accuracy``, ``agreement`` (n, G); ``write_fidelity``, ``weight_fidelity``,
        ``current_rmse`` (n,); ``counts`` (n, 7): stuck, short, open, write errors,
        disturbs, pulses, reset errors.
    """
    dev, dfc, wr = study.device, study.defects, study.write
    if dfc.dispersion > 0:
        raise NotImplementedError("the reference pipeline has fixed defect rates only")
    instances = np.asarray(instances)
    n = instances.size
    sizes = [s.size for s in states]
    n_dev = sum(sizes)

    def draw_normals(lane, per_device):
        if key is not None:
            words = _rng.lane_words(key, lane, solution, instances, per_device * n_dev)
            return _rng.words_to_normal_np(words).reshape(n, n_dev, per_device)
        return rng.standard_normal((n, n_dev, per_device))

    def draw_uniforms(lane, per_device):
        if key is not None:
            words = _rng.lane_words(key, lane, solution, instances, per_device * n_dev)
            return words.reshape(n, n_dev, per_device)
        return rng.integers(0, 2**32, size=(n, n_dev, per_device), dtype=np.uint64)

    # die-to-die offsets: five words of the die lane per instance
    die_on = any(x != 0 for x in (dev.die_diameter_sigma, dev.die_resistance_area_sigma,
                                  dev.die_tmr_sigma, dev.die_jc_sigma, dev.ra_gradient,
                                  dev.diameter_gradient))
    if die_on:
        if key is not None:
            dw = _rng.lane_words(key, _rng.LANE_DIE, solution, instances, 5).astype(np.float64)
            # per instance, with the scalar quantile and libm: the same bits as the kernel
            zd = np.array([[_rng.normal_ppf(x) for x in row]
                           for row in _rng.u32_to_uniform(dw[:, :4])])
            phi = 2.0 * np.pi * _rng.u32_to_uniform(dw[:, 4])
        else:
            zd = rng.standard_normal((n, 4))
            phi = rng.uniform(0.0, 2.0 * np.pi, n)
        die_d = dev.die_diameter_sigma * zd[:, 0:1]
        die_ra = np.array([[math.exp(dev.die_resistance_area_sigma * x)] for x in zd[:, 1]])
        die_tmr = dev.die_tmr_sigma * zd[:, 2:3]
        die_jc = np.maximum(1.0 + dev.die_jc_sigma * zd[:, 3:4], 1e-6)
    else:
        die_d = die_tmr = np.zeros((n, 1))
        die_ra = die_jc = np.ones((n, 1))
        phi = np.zeros(n)
    # cell positions (flat order layer, row, column) along the gradient direction
    rows_cols = study.array.rows, study.array.cols
    pos_r = np.concatenate([np.indices(st.shape)[0].ravel() for st in states])
    pos_c = np.concatenate([np.indices(st.shape)[1].ravel() for st in states])
    cos_phi = np.array([math.cos(x) for x in phi])[:, None]
    sin_phi = np.array([math.sin(x) for x in phi])[:, None]
    u_pos = (((pos_c + 0.5) / rows_cols[1] - 0.5)[None, :] * cos_phi
             + ((pos_r + 0.5) / rows_cols[0] - 0.5)[None, :] * sin_phi)
    d_nom = dev.diameter * (1.0 + dev.diameter_gradient * u_pos) + die_d
    ra_nom = dev.resistance_area * (1.0 + dev.ra_gradient * u_pos) * die_ra
    z = draw_normals(_rng.LANE_DEVICE, 3) if dev.variation else np.zeros((n, n_dev, 3))
    g_p, diam = sample_parallel_conductance(z[..., 0], z[..., 1], d_nom, dev.diameter_sigma,
                                            ra_nom, dev.resistance_area_sigma)
    tmr = np.maximum(dev.tmr + die_tmr + dev.tmr_sigma * z[..., 2], 0.0)

    rates = (dfc.stuck_p, dfc.stuck_ap, dfc.short, dfc.open)
    if dfc.enabled and sum(rates) > 0:
        u = _uniform(draw_uniforms(_rng.LANE_DEFECT, 1)[..., 0])
        defect = classify_defects(u, *rates)
    else:
        defect = np.zeros((n, n_dev), np.uint8)

    target = np.concatenate([s.ravel() for s in states])[None, :].repeat(n, axis=0)
    mode = wr.mode
    fabricated = wr.initial in ("random", "ap")
    reset = wr.initial == "ap"
    write_words = (draw_uniforms(_rng.LANE_WRITE, 2)
                   if mode != "ideal" or fabricated else None)
    state = np.zeros((n, n_dev), np.uint8)
    if fabricated:
        state = (write_words[..., 0] & 1).astype(np.uint8)
    stuck = (defect == DEFECT_STUCK_P) | (defect == DEFECT_STUCK_AP)

    area = np.pi / 4.0 * diam * diam
    delta = thermal_stability(diam, dev.delta_sat, dev.critical_diameter)
    jc = dev.jc_ap_to_p * die_jc * np.ones((n, n_dev))
    if mode == "physics" and dev.variation and (dev.delta_sigma > 0 or dev.jc_sigma > 0):
        zs = draw_normals(_rng.LANE_SWITCHING, 2)
        delta = delta * np.maximum(1.0 + dev.delta_sigma * zs[..., 0], 0.0)
        jc = jc * np.maximum(1.0 + dev.jc_sigma * zs[..., 1], 1e-6)
    ic = jc * area
    tmr_w = tmr_at_bias(tmr, wr.voltage, dev.tmr_bias_voltage)
    curves = None
    if mode == "physics" and wr.switching == "table":
        path = study.resolve_path(wr.wer_table)
        curves = wer_table_curves(load_wer_table(path), wr.pulse_width, path)

    def p_pulse(from_state):
        """Switching probability of a pulse at V_w taking each device out of ``from_state``."""
        if mode == "ideal":
            return np.ones((n, n_dev))
        if mode == "fixed":
            return np.full((n, n_dev), 1.0 - wr.error_rate)
        ap = from_state == 0
        if curves is not None:
            return np.where(ap, table_switching_probability(wr.voltage, *curves[0]),
                            table_switching_probability(wr.voltage, *curves[1]))
        current = np.where(ap, wr.voltage * g_p / (1.0 + tmr_w), wr.voltage * g_p)
        ic_dir = np.where(ap, ic, ic * dev.jc_asymmetry)
        return switching_probability(current, ic_dir, delta, wr.pulse_width, dev.tau0,
                                     dev.tau_d, dev.beta)

    n_reset_err = np.zeros(n, int)
    if reset:
        # a reset pulse towards AP on every free device fabricated P; failures stay P
        needs = (state == 1) & ~stuck
        if mode == "ideal":
            ok = needs
        else:
            if key is not None:
                u_reset = _uniform(draw_uniforms(_rng.LANE_RESET, 1)[..., 0])
            else:
                u_reset = rng.random((n, n_dev))
            ok = needs & (u_reset < p_pulse(np.ones((n, n_dev), np.uint8)))
        n_reset_err = (needs & ~ok & (defect == DEFECT_NONE)).sum(axis=1)
        state = np.where(ok, 0, state).astype(np.uint8)
    state = np.where(defect == DEFECT_STUCK_P, 1, np.where(defect == DEFECT_STUCK_AP, 0, state))
    pulsed = state != target
    p_switch = p_pulse(state)
    if write_words is not None:
        u_pulse = _uniform(write_words[..., 1])
    else:
        u_pulse = np.zeros((n, n_dev))
    switched = pulsed & (u_pulse < p_switch)
    state = np.where(switched & ~stuck, target, state)
    healthy = (defect == DEFECT_NONE) | stuck
    correct = (state == target) & healthy
    n_err = (pulsed & ~correct).sum(axis=1)

    g_short = 1.0 / dfc.r_short
    g = np.where(state == 1, g_p, g_p / (1.0 + tmr))
    g = np.where(defect == DEFECT_SHORT, g_short, np.where(defect == DEFECT_OPEN, 0.0, g))

    g_nom_p, g_nom_ap = nominal_conductances(dev)
    d_g = g_nom_p - g_nom_ap
    weights, layer_g, layer_correct = [], [], []
    offset = 0
    for s in states:
        gl = g[:, offset:offset + s.size].reshape(n, *s.shape)
        layer_g.append(gl)
        layer_correct.append(correct[:, offset:offset + s.size].reshape(n, *s.shape))
        weights.append((gl[..., 0::2] - gl[..., 1::2]) / d_g)
        offset += s.size
    weight_ok = np.concatenate(
        [(c[..., 0::2] & c[..., 1::2]).reshape(n, -1) for c in layer_correct], axis=1)

    hidden, output, threshold = activations
    acc = np.empty((n, len(gnorms)))
    agree = np.empty((n, len(gnorms)))
    b = [np.broadcast_to(np.asarray(bb, float), (n, len(bb))) for bb in biases]
    for gi, gn in enumerate(gnorms):
        scores = forward(weights, b, X, hidden_activation=hidden, output_activation=output,
                         threshold=threshold, gnorm=gn)
        pred = scores.argmax(axis=-1)
        acc[:, gi] = (pred == y).mean(axis=1)
        agree[:, gi] = (pred == sw_pred[gi]).mean(axis=1)

    g0 = np.where(states[0] == 1, g_nom_p, g_nom_ap)
    ideal = X @ g0
    err = np.einsum("sf,nfc->nsc", X, layer_g[0] - g0)
    rmse = np.sqrt((err**2).sum(axis=(1, 2)) / (ideal**2).sum())
    counts = np.stack([
        stuck.sum(axis=1), (defect == DEFECT_SHORT).sum(axis=1),
        (defect == DEFECT_OPEN).sum(axis=1), n_err, np.zeros(n, int), pulsed.sum(axis=1),
        n_reset_err,
    ], axis=1)
    return {
        "accuracy": acc,
        "agreement": agree,
        "write_fidelity": correct.mean(axis=1),
        "weight_fidelity": weight_ok.mean(axis=1),
        "current_rmse": rmse,
        "counts": counts,
    }
