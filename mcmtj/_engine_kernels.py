"""The fused Monte Carlo kernel: sample devices -> write -> read -> infer -> metrics.

One call simulates instances ``[start, start + n)`` of every solution at one sweep
point. Work is split into blocks of consecutive instances of one solution; each
block allocates its scratch once and every instance draws its random numbers
from its own counter-based streams (``mcmtj._rng``), so results do not depend on
the number of threads, the block size or the chunking.

Parameters arrive packed in ``fp`` (float64) and ``ip`` (int64) vectors indexed by
the constants below: numba kernels take arrays and scalars only, and ~30 scalars
in a signature help nobody. ``mcmtj.engine`` builds the vectors from a Study.
"""

from __future__ import annotations

import math

import numpy as np

from ._fastmath import tanh
from ._jit import kernel, parallel_kernel, prange
from ._rng import (
    LANE_DEFECT,
    LANE_DEVICE,
    LANE_INSTANCE,
    LANE_SWITCHING,
    LANE_WRITE,
    fill_lane,
    normal_ppf,
    normals_from_words,
    stream_init,
    u32_to_uniform_jit,
)
from .array import (
    WRITE_PHYSICS,
    _final_conductance,
    _is_healthy,
    _pulse_switch_probability,
    _stuck_state,
)
from .device import (
    DEFECT_OPEN,
    DEFECT_SHORT,
    DEFECT_STUCK_AP,
    DEFECT_STUCK_P,
    STATE_AP,
    STATE_P,
    _classify_defect_jit,
    _sample_parallel_conductance_jit,
    _sample_rate_jit,
)

# fp indices
(F_D0, F_SD, F_RA0, F_SRA, F_TMR0, F_STMR, F_VH, F_DSAT, F_DC, F_SDELTA, F_JC, F_JCASYM,
 F_SJC, F_TAU0, F_TAUD, F_BETA, F_STUCK_P, F_STUCK_AP, F_SHORT, F_OPEN, F_DISPERSION,
 F_RSHORT, F_ERROR_RATE, F_VW, F_TW, F_DG_NOM, F_THRESHOLD, N_FP) = range(28)
# ip indices
(I_VARIATION, I_MODE, I_INIT_RANDOM, I_DEFECTS, I_HIDDEN_SIGN, I_OUT_TANH, I_EVAL_TRAIN,
 I_SENSITIVITY, N_IP) = range(9)
# count columns
C_STUCK, C_SHORT, C_OPEN, C_WRITE_ERRORS, C_DISTURBS, C_PULSES, N_COUNTS = range(7)

_WORDS_DEVICE = 3  # diameter, RA, TMR
_WORDS_SWITCHING = 2  # barrier, critical current
_WORDS_WRITE = 2  # initial state, pulse outcome


@kernel
def _round4(n):
    return (n + 3) // 4 * 4


@kernel
def _activate_row(row, n, gnorm, b, kind, threshold):
    """In place: row[s] = act(row[s] / gnorm + b) for s < n; one branch-free loop per kind
    so that LLVM vectorises it (kind 0: tanh, 1: sign, 2: identity)."""
    if kind == 0:
        for s in range(n):
            row[s] = tanh(row[s] / gnorm + b)
    elif kind == 1:
        for s in range(n):
            row[s] = 1.0 if row[s] / gnorm + b >= threshold else -1.0
    else:
        for s in range(n):
            row[s] = row[s] / gnorm + b


@kernel
def _weighted_sums(w, layer, j, n_in, src, dst, n):
    """dst[s] = sum_f src[f, s] w[layer, f, j] for s < n, summed in increasing f.

    Four samples per step with their sums held in registers: the inputs are read
    once per step and the partial sums are never stored and reloaded (3x faster
    than accumulating whole rows). LLVM packs the four lanes into one vector.
    """
    n4 = n - n % 4
    for s in range(0, n4, 4):
        a0 = 0.0
        a1 = 0.0
        a2 = 0.0
        a3 = 0.0
        for f in range(n_in):
            wf = w[layer, f, j]
            x = src[f, s : s + 4]
            a0 += x[0] * wf
            a1 += x[1] * wf
            a2 += x[2] * wf
            a3 += x[3] * wf
        dst[s] = a0
        dst[s + 1] = a1
        dst[s + 2] = a2
        dst[s + 3] = a3
    for s in range(n4, n):
        a = 0.0
        for f in range(n_in):
            a += src[f, s] * w[layer, f, j]
        dst[s] = a


@kernel
def _forward_counts(weff, layer_in, layer_out, bias, X, y, sw_pred, gnorm, hidden_sign,
                    threshold, out_tanh, raw0, act_a, act_b, pred):
    """Run the network on every sample; return (n_correct, n_agree).

    ``raw0`` (layer-0 sums, shape (n_out0, n_samples)) must already hold
    ``sum_f X[f, s] weff[0, f, j]``: it does not depend on the gain, so the caller
    computes it once per instance for the whole gain grid.
    Each layer computes a = (sum_f x_f w_fj) / gnorm + b_j in increasing f, the order
    of the software reference.
    """
    n_layers = layer_in.shape[0]
    n_samples = X.shape[1]
    hidden_kind = 1 if hidden_sign else 0
    out_kind = 0 if out_tanh else 2
    src = act_a
    dst = act_b
    for l in range(n_layers):
        kind = out_kind if l == n_layers - 1 else hidden_kind
        for j in range(layer_out[l]):
            row = dst[j]
            if l == 0:
                row[:n_samples] = raw0[j, :n_samples]
            else:
                _weighted_sums(weff, l, j, layer_in[l], src, row, n_samples)
            _activate_row(row, n_samples, gnorm, bias[l, j], kind, threshold)
        src, dst = dst, src
    n_out = layer_out[n_layers - 1]
    correct = 0
    agree = 0
    for s in range(n_samples):
        best = 0
        for k in range(1, n_out):
            if src[k, s] > src[best, s]:
                best = k
        pred[s] = best
        correct += best == y[s]
        agree += best == sw_pred[s]
    return correct, agree


@kernel
def _layer0_sums(weff, n_in, n_out, X, raw0):
    for j in range(n_out):
        _weighted_sums(weff, 0, j, n_in, X, raw0[j], X.shape[1])


@kernel
def software_predictions(weights, layer_in, layer_out, bias, X, gnorms, ip, fp, out):
    """Software (ideal) predictions of one solution for every gain: ``out[g, s]``."""
    n_samples = X.shape[1]
    width = max(layer_out.max(), layer_in.max())
    raw0 = np.empty((layer_out[0], n_samples))
    act_a = np.empty((width, n_samples))
    act_b = np.empty((width, n_samples))
    y = np.zeros(n_samples, np.int64)
    _layer0_sums(weights, layer_in[0], layer_out[0], X, raw0)
    for g in range(gnorms.shape[0]):
        _forward_counts(weights, layer_in, layer_out, bias, X, y, y, gnorms[g],
                        ip[I_HIDDEN_SIGN] != 0, fp[F_THRESHOLD], ip[I_OUT_TANH] != 0,
                        raw0, act_a, act_b, out[g])


@kernel
def _simulate_instance(k0, k1, solution, instance, states, layer_in, layer_out, fp, ip,
                       words, zbuf, tails, devp, g, correct_dev, stream):
    """Sample, write and read one instance; fill ``g`` (conductances) and return counts.

    Returns (n_correct_devices, n_correct_weights, n_devices, n_weights, counts tuple).
    ``correct_dev`` receives 1 where a device ended healthy in its target state.
    """
    n_layers = layer_in.shape[0]
    variation = ip[I_VARIATION] != 0
    mode = ip[I_MODE]
    physics = mode == WRITE_PHYSICS
    n_dev = 0
    for l in range(n_layers):
        n_dev += layer_in[l] * 2 * layer_out[l]

    # Per-instance defect rates (die-to-die), from their own lane.
    rate_sp = fp[F_STUCK_P]
    rate_sap = fp[F_STUCK_AP]
    rate_short = fp[F_SHORT]
    rate_open = fp[F_OPEN]
    defects_on = ip[I_DEFECTS] != 0
    if defects_on and fp[F_DISPERSION] > 0.0:
        stream_init(stream, k0, k1, LANE_INSTANCE, solution, instance)
        rate_sp = _sample_rate_jit(rate_sp, fp[F_DISPERSION], stream)
        rate_sap = _sample_rate_jit(rate_sap, fp[F_DISPERSION], stream)
        rate_short = _sample_rate_jit(rate_short, fp[F_DISPERSION], stream)
        rate_open = _sample_rate_jit(rate_open, fp[F_DISPERSION], stream)
    any_defect = defects_on and (rate_sp + rate_sap + rate_short + rate_open) > 0.0

    # Random words of the fixed-layout lanes, filled in one pass each.
    w_dev = words[0, : _round4(_WORDS_DEVICE * n_dev)]
    w_sw = words[1, : _round4(_WORDS_SWITCHING * n_dev)]
    w_def = words[2, : _round4(n_dev)]
    w_wr = words[3, : _round4(_WORDS_WRITE * n_dev)]
    if variation:
        fill_lane(k0, k1, LANE_DEVICE, solution, instance, w_dev)
        if physics and (fp[F_SDELTA] > 0.0 or fp[F_SJC] > 0.0):
            fill_lane(k0, k1, LANE_SWITCHING, solution, instance, w_sw)
    if any_defect:
        fill_lane(k0, k1, LANE_DEFECT, solution, instance, w_def)
    if mode != 0 or ip[I_INIT_RANDOM] != 0:
        fill_lane(k0, k1, LANE_WRITE, solution, instance, w_wr)

    # Device parameters in one vectorisable pass: g_P, diameter, TMR per device.
    d0 = fp[F_D0]
    if variation:
        sd = fp[F_SD]
        sra = fp[F_SRA]
        ra0 = fp[F_RA0]
        tmr0 = fp[F_TMR0]
        stmr = fp[F_STMR]
        z = zbuf[: _WORDS_DEVICE * n_dev]
        normals_from_words(w_dev[: _WORDS_DEVICE * n_dev], z, tails)
        for k in range(n_dev):
            g_p, diam = _sample_parallel_conductance_jit(z[3 * k], z[3 * k + 1], d0, sd, ra0, sra)
            tmr = tmr0 + stmr * z[3 * k + 2]
            devp[0, k] = g_p
            devp[1, k] = diam
            devp[2, k] = 0.0 if tmr < 0.0 else tmr
    else:
        g_p, diam = _sample_parallel_conductance_jit(0.0, 0.0, d0, 0.0, fp[F_RA0], 0.0)
        devp[0, :n_dev] = g_p
        devp[1, :n_dev] = diam
        devp[2, :n_dev] = fp[F_TMR0]

    g_short = 1.0 / fp[F_RSHORT]
    vh = fp[F_VH]
    vw = fp[F_VW]
    tmr_scale_write = 1.0 / (1.0 + (vw / vh) * (vw / vh))
    n_stuck = 0
    n_short = 0
    n_open = 0
    n_err = 0
    n_pulses = 0
    good_dev = 0
    good_w = 0
    n_w = 0
    k = 0
    for l in range(n_layers):
        for r in range(layer_in[l]):
            for c in range(2 * layer_out[l]):
                g_p = devp[0, k]
                diam = devp[1, k]
                tmr = devp[2, k]
                defect = 0
                if any_defect:
                    defect = _classify_defect_jit(u32_to_uniform_jit(float(w_def[k])), rate_sp,
                                                  rate_sap, rate_short, rate_open)
                    if defect == DEFECT_STUCK_P or defect == DEFECT_STUCK_AP:
                        n_stuck += 1
                    elif defect == DEFECT_SHORT:
                        n_short += 1
                    elif defect == DEFECT_OPEN:
                        n_open += 1
                state = STATE_AP
                if ip[I_INIT_RANDOM] != 0:
                    state = STATE_P if w_wr[2 * k] & np.uint32(1) else STATE_AP
                state = _stuck_state(defect, state)
                target = states[l, r, c]
                if state != target:
                    n_pulses += 1
                    p_switch = 1.0
                    if physics:
                        area = (math.pi / 4.0) * diam * diam
                        ratio = diam / fp[F_DC]
                        delta = fp[F_DSAT] * min(1.0, ratio * ratio)
                        jc = fp[F_JC]
                        if variation and (fp[F_SDELTA] > 0.0 or fp[F_SJC] > 0.0):
                            delta *= max(1.0 + fp[F_SDELTA] * normal_ppf(
                                u32_to_uniform_jit(float(w_sw[2 * k]))), 0.0)
                            jc *= max(1.0 + fp[F_SJC] * normal_ppf(
                                u32_to_uniform_jit(float(w_sw[2 * k + 1]))), 1e-6)
                        ic = jc * area
                        p_switch = _pulse_switch_probability(
                            mode, 0.0, state, g_p, tmr * tmr_scale_write, ic,
                            ic * fp[F_JCASYM], delta, vw, fp[F_TW], fp[F_TAU0], fp[F_TAUD],
                            fp[F_BETA])
                    elif mode != 0:
                        p_switch = 1.0 - fp[F_ERROR_RATE]
                    if u32_to_uniform_jit(float(w_wr[2 * k + 1])) < p_switch:
                        state = _stuck_state(defect, target)
                    if state != target or not _is_healthy(defect):
                        n_err += 1
                ok = state == target and _is_healthy(defect)
                correct_dev[l, r, c] = ok
                good_dev += ok
                g[l, r, c] = _final_conductance(state, defect, g_p, tmr, g_short)
                k += 1
        for r in range(layer_in[l]):
            for j in range(layer_out[l]):
                good_w += correct_dev[l, r, 2 * j] and correct_dev[l, r, 2 * j + 1]
                n_w += 1
    return good_dev, good_w, n_dev, n_w, (n_stuck, n_short, n_open, n_err, 0, n_pulses)


@parallel_kernel
def simulate_chunk(k0, k1, sol_offset, start, n, block, states, layer_in, layer_out, bias, fp, ip, gnorms,
                   X_eval, y_eval, sw_eval, X_train, y_train, sw_train, gram, g0, rmse_den,
                   sens, acc, acc_train, agree, write_fid, weight_fid, rmse, sens_fid, counts):
    """Simulate instances ``start .. start + n - 1`` of every solution given.

    ``sol_offset`` is the global index of ``states[0]`` (it keys the random streams).

    Shapes: states (S, L, R, C) uint8; bias (S, L, O); X_* (F, N) row voltages / V_read;
    sw_* (S, G, N) software predictions; gram (F, F) = X_eval X_eval^T; g0 (S, R, C)
    nominal layer-0 conductances; rmse_den (S,). Outputs: acc, acc_train, agree (S, n, G);
    write_fid, weight_fid, rmse (S, n); counts (S, n, N_COUNTS).
    """
    n_sol = states.shape[0]
    n_layers = layer_in.shape[0]
    max_in = layer_in.max()
    max_out = layer_out.max()
    width = max(max_in, max_out)
    n_dev = 0
    for l in range(n_layers):
        n_dev += layer_in[l] * 2 * layer_out[l]
    n_words = _round4(max(_WORDS_DEVICE, _WORDS_WRITE) * n_dev)
    n_blocks_per_sol = (n + block - 1) // block
    n_gain = gnorms.shape[0]
    n_eval = X_eval.shape[1]
    n_train = X_train.shape[1]
    eval_train = ip[I_EVAL_TRAIN] != 0
    hidden_sign = ip[I_HIDDEN_SIGN] != 0
    out_tanh = ip[I_OUT_TANH] != 0
    inv_dg = 1.0 / fp[F_DG_NOM]
    for job in prange(n_sol * n_blocks_per_sol):
        s = job // n_blocks_per_sol
        first = (job % n_blocks_per_sol) * block
        last = min(first + block, n)
        words = np.empty((4, n_words), np.uint32)
        g = np.zeros((n_layers, max_in, 2 * max_out))
        correct_dev = np.zeros((n_layers, max_in, 2 * max_out), np.bool_)
        weff = np.zeros((n_layers, max_in, max_out))
        raw0 = np.empty((layer_out[0], max(n_eval, n_train)))
        act_a = np.empty((width, max(n_eval, n_train)))
        act_b = np.empty((width, max(n_eval, n_train)))
        pred = np.empty(max(n_eval, n_train), np.int64)
        stream = np.zeros(11, np.uint64)
        devp = np.empty((3, n_dev))
        zbuf = np.empty(_WORDS_DEVICE * n_dev)
        tails = np.empty(_WORDS_DEVICE * n_dev, np.int64)
        diff = np.empty((max_in, 2 * max_out))
        md = np.empty(2 * max_out)
        for local in range(first, last):
            instance = start + local
            good_dev, good_w, nd, nw, cnt = _simulate_instance(
                k0, k1, sol_offset + s, instance, states[s], layer_in, layer_out, fp, ip, words, zbuf, tails,
                devp, g, correct_dev, stream)
            write_fid[s, local] = good_dev / nd
            if ip[I_SENSITIVITY] != 0:
                lost = 0.0
                total = 0.0
                k = 0
                for l in range(n_layers):
                    for r in range(layer_in[l]):
                        for c in range(2 * layer_out[l]):
                            total += sens[s, k]
                            if not correct_dev[l, r, c]:
                                lost += sens[s, k]
                            k += 1
                sens_fid[s, local] = 1.0 - lost / total if total > 0.0 else 1.0
            weight_fid[s, local] = good_w / nw
            for c in range(N_COUNTS):
                counts[s, local, c] = cnt[c]
            # effective weights: differential conductance in units of the nominal G_P - G_AP
            for l in range(n_layers):
                for f in range(layer_in[l]):
                    for j in range(layer_out[l]):
                        weff[l, f, j] = (g[l, f, 2 * j] - g[l, f, 2 * j + 1]) * inv_dg
            # layer-0 column-current error vs the nominal target array, via the Gram matrix:
            # sum_s (I_sc - I0_sc)^2 = D_c^T (X X^T) D_c with D = G - G0.
            n0 = layer_in[0]
            c0 = 2 * layer_out[0]
            for f in range(n0):
                for c in range(c0):
                    diff[f, c] = g[0, f, c] - g0[s, f, c]
            num = 0.0
            for f in range(n0):
                md[:c0] = 0.0
                for h in range(n0):
                    gfh = gram[f, h]
                    for c in range(c0):
                        md[c] += gfh * diff[h, c]
                for c in range(c0):
                    num += diff[f, c] * md[c]
            rmse[s, local] = math.sqrt(max(num, 0.0) / rmse_den[s])
            _layer0_sums(weff, layer_in[0], layer_out[0], X_eval, raw0)
            for gi in range(n_gain):
                c_ok, c_ag = _forward_counts(
                    weff, layer_in, layer_out, bias[s], X_eval, y_eval, sw_eval[s, gi],
                    gnorms[gi], hidden_sign, fp[F_THRESHOLD], out_tanh, raw0, act_a, act_b,
                    pred)
                acc[s, local, gi] = c_ok / n_eval
                agree[s, local, gi] = c_ag / n_eval
            if eval_train:
                _layer0_sums(weff, layer_in[0], layer_out[0], X_train, raw0)
                for gi in range(n_gain):
                    c_ok, c_ag = _forward_counts(
                        weff, layer_in, layer_out, bias[s], X_train, y_train, sw_train[s, gi],
                        gnorms[gi], hidden_sign, fp[F_THRESHOLD], out_tanh, raw0, act_a, act_b,
                        pred)
                    acc_train[s, local, gi] = c_ok / n_train
