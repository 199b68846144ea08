"""Batched pure-NumPy version of the whole Monte Carlo pipeline.

Vectorised over instances, with no Python loop per instance: what a user would
write without mcmtj. It serves twice:

- as the test oracle of the fused kernel: fed the same Philox words
  (``key=...``), it must give the same instances (integer results equal, floating
  results equal up to the last bits, where NumPy's SIMD ``exp``/``tanh`` and the
  kernel's differ);
- as the baseline of ``benchmarks/bench_engine.py``: fed ``rng=np.random.Generator``
  it is the fastest plain-NumPy formulation we know of.

Supports the core engine's effects: variation, fixed-rate defects, ``ideal`` /
``fixed`` / ``physics`` writes, ``ap`` / ``random`` initial states, ideal read.
"""

from __future__ import annotations

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
    nominal_conductances,
    sample_parallel_conductance,
    switching_probability,
    thermal_stability,
    tmr_at_bias,
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
        ``current_rmse`` (n,); ``counts`` (n, 6) in kernel order.
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

    if dev.variation:
        z = draw_normals(_rng.LANE_DEVICE, 3)
        g_p, diam = sample_parallel_conductance(
            z[..., 0], z[..., 1], dev.diameter, dev.diameter_sigma, dev.resistance_area,
            dev.resistance_area_sigma)
        tmr = np.maximum(dev.tmr + dev.tmr_sigma * z[..., 2], 0.0)
    else:
        g_p, diam = sample_parallel_conductance(0.0, 0.0, dev.diameter, 0.0,
                                                dev.resistance_area, 0.0)
        g_p = np.full((n, n_dev), g_p)
        diam = np.full((n, n_dev), diam)
        tmr = np.full((n, n_dev), dev.tmr)

    rates = (dfc.stuck_p, dfc.stuck_ap, dfc.short, dfc.open)
    if dfc.enabled and sum(rates) > 0:
        u = _uniform(draw_uniforms(_rng.LANE_DEFECT, 1)[..., 0])
        defect = classify_defects(u, *rates)
    else:
        defect = np.zeros((n, n_dev), np.uint8)

    target = np.concatenate([s.ravel() for s in states])[None, :].repeat(n, axis=0)
    mode = wr.mode
    write_words = (draw_uniforms(_rng.LANE_WRITE, 2)
                   if mode != "ideal" or wr.initial == "random" else None)
    state = np.zeros((n, n_dev), np.uint8)
    if wr.initial == "random":
        state = (write_words[..., 0] & 1).astype(np.uint8)
    state = np.where(defect == DEFECT_STUCK_P, 1, np.where(defect == DEFECT_STUCK_AP, 0, state))
    pulsed = state != target
    if mode == "ideal":
        p_switch = np.ones((n, n_dev))
    elif mode == "fixed":
        p_switch = np.full((n, n_dev), 1.0 - wr.error_rate)
    else:
        area = np.pi / 4.0 * diam * diam
        delta = thermal_stability(diam, dev.delta_sat, dev.critical_diameter)
        jc = np.full((n, n_dev), dev.jc_ap_to_p)
        if dev.variation and (dev.delta_sigma > 0 or dev.jc_sigma > 0):
            zs = draw_normals(_rng.LANE_SWITCHING, 2)
            delta = delta * np.maximum(1.0 + dev.delta_sigma * zs[..., 0], 0.0)
            jc = jc * np.maximum(1.0 + dev.jc_sigma * zs[..., 1], 1e-6)
        ic = jc * area
        tmr_w = tmr_at_bias(tmr, wr.voltage, dev.tmr_bias_voltage)
        ap = state == 0
        current = np.where(ap, wr.voltage * g_p / (1.0 + tmr_w), wr.voltage * g_p)
        ic_dir = np.where(ap, ic, ic * dev.jc_asymmetry)
        p_switch = switching_probability(current, ic_dir, delta, wr.pulse_width, dev.tau0,
                                         dev.tau_d, dev.beta)
    if write_words is not None:
        u_pulse = _uniform(write_words[..., 1])
    else:
        u_pulse = np.zeros((n, n_dev))
    switched = pulsed & (u_pulse < p_switch)
    stuck = (defect == DEFECT_STUCK_P) | (defect == DEFECT_STUCK_AP)
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
    ], axis=1)
    return {
        "accuracy": acc,
        "agreement": agree,
        "write_fidelity": correct.mean(axis=1),
        "weight_fidelity": weight_ok.mean(axis=1),
        "current_rmse": rmse,
        "counts": counts,
    }
