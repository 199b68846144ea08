"""The fused Monte Carlo kernel: sample devices -> write -> read -> infer -> metrics.

One call simulates instances ``[start, start + n)`` of every solution at one sweep
point. Work is split into blocks of consecutive instances of one solution; each
block allocates its scratch once and every instance draws its random numbers
from its own counter-based streams (``mcmtj.numerics._rng``), so results do not depend on
the number of threads, the block size or the chunking.

Parameters arrive packed in ``fp`` (float64) and ``ip`` (int64) vectors indexed by
the constants below: numba kernels take arrays and scalars only, and ~30 scalars
in a signature help nobody. ``mcmtj.run.block`` builds the vectors from a Study.
"""

from __future__ import annotations

import math

import numpy as np

from mcmtj.numerics._fastmath import tanh
from mcmtj.numerics._jit import kernel, parallel_kernel, prange
from mcmtj.numerics._rng import (
    LANE_DEFECT,
    LANE_DEVICE,
    LANE_DIE,
    LANE_DISTURB,
    LANE_INSTANCE,
    LANE_READ,
    LANE_RESET,
    LANE_SWITCHING,
    LANE_UNUSED,
    LANE_VERIFY,
    LANE_WRITE,
    fill_lane,
    normal_ppf,
    normals_from_words,
    stream_init,
    stream_u32,
    stream_uniform53,
    u32_to_uniform_jit,
    u32_word_to_uniform,
)
from mcmtj.physics._circuit_kernels import (
    BIAS_NONE,
    BIAS_V2,
    BIAS_V3,
    IR_OFF,
    SCHEME_FLOATING,
    _nonlinear_read_kernel,
    _nonlinear_work_size,
    _transfer_matrix_kernel,
    _transfer_work_size,
    _verify_read_kernel,
    _verify_work_size,
    _write_bias_kernel,
    _write_sources,
    _write_work_size,
)
from mcmtj.physics.array import (
    KIND_INTEGRATED,
    WRITE_FIXED,
    WRITE_IDEAL,
    WRITE_PHYSICS,
    WRITE_TABLE,
    _disturb_probability,
    _final_conductance,
    _geometric_skip,
    _integrated_read_current,
    _integrated_write_voltage,
    _is_healthy,
    _pulse_switch_probability,
    _sense_half,
    _stuck_state,
)
from mcmtj.physics.device import (
    DEFECT_OPEN,
    DEFECT_SHORT,
    DEFECT_STUCK_AP,
    DEFECT_STUCK_P,
    STATE_AP,
    STATE_P,
    _classify_defect_jit,
    _sample_parallel_conductance_jit,
    _sample_rate_jit,
    _table_switching_probability_jit,
    _tmr_at_bias_jit,
)

# fp indices
(F_D0, F_SD, F_RA0, F_SRA, F_TMR0, F_STMR, F_VH, F_DSAT, F_DC, F_SDELTA, F_JC, F_JCASYM,
 F_SJC, F_TAU0, F_TAUD, F_BETA, F_STUCK_P, F_STUCK_AP, F_SHORT, F_OPEN, F_DISPERSION,
 F_RSHORT, F_ERROR_RATE, F_VW, F_TW, F_DG_NOM, F_THRESHOLD, F_DISTURB_RATE, F_RETRY_STEP,
 F_R_ROW, F_R_COL, F_TOL, F_NOISE, F_OFFSET, F_VREAD, F_G_NOM_P, F_G_NOM_AP, F_R_DRV,
 # die-to-die offsets and gradients (device.die_*, *_gradient); WER-table knot counts
 F_DIE_D, F_DIE_RA, F_DIE_TMR, F_DIE_JC, F_GRAD_RA, F_GRAD_D, F_TABLE_N_AP, F_TABLE_N_P,
 N_FP) = range(47)
# A WER table (write.switching = 'table') follows the scalars: fp[N_FP:] holds, per direction
# (AP->P, then P->AP), its knot voltages and then their ln WER (F_TABLE_N_* knots each).
# ip indices
(I_VARIATION, I_MODE, I_INIT_RANDOM, I_DEFECTS, I_HIDDEN_SIGN, I_OUT_TANH, I_EVAL_TRAIN,
 I_SENSITIVITY, I_CIRCUIT, I_SCHEME, I_ORDER, I_VERIFY, I_MAX_RETRIES, I_VERIFY_FLOATING,
 I_FINAL_VERIFY, I_BIAS_TMR, I_MAX_ITER, I_ROWS, I_COLS, I_RESET, I_IR_SOLVER,
 I_KIND,  # array.kind: KIND_PASSIVE or KIND_INTEGRATED (a runtime switch, not a specialisation)
 N_IP) = range(23)
# count columns
(C_STUCK, C_SHORT, C_OPEN, C_WRITE_ERRORS, C_DISTURBS, C_PULSES, C_RETRIES, C_NONCONVERGED,
 C_RESET_ERRORS, N_COUNTS) = range(10)
SCHEME_NONE, SCHEME_V2, SCHEME_V3 = BIAS_NONE, BIAS_V2, BIAS_V3
# Fast write-bias solver settings (mcmtj.physics.circuit.write_voltages documents them; the circuit
# module sits above this one, so the numbers are repeated here and a test checks they agree).
FAST_ACCEPT = 1e-3
FAST_TOL = 1e-7
FAST_MAX_SWEEPS = 2000
ORDER_ROW, ORDER_COLUMN, ORDER_RANDOM = 0, 1, 2

_WORDS_DEVICE = 3  # diameter, RA, TMR
_WORDS_SWITCHING = 2  # barrier, critical current
_WORDS_WRITE = 2  # initial state, pulse outcome
_WORDS_UNUSED = 8  # cells outside the used region: 5 normals (device, switching), then
# defect and initial-state words, then reset words (all normals of the lane first, so one
# vectorised pass; reset words last, so the others kept their slots)
_WORDS_DIE = 5  # per instance: diameter, RA, TMR, J_c normals, gradient angle


@kernel
def _round4(n):
    return (n + 3) // 4 * 4


@kernel
def _activate_row(row, n, off, gnorm, b, kind, threshold):
    """In place: row[s] = act((row[s] + off) / gnorm + b) for s < n, ``off`` being the
    column pair's comparator offset; one branch-free loop per kind so that LLVM vectorises
    it (kind 0: tanh, 1: sign, 2: identity). A unit gain skips its division (exact)."""
    if kind == 0:
        if gnorm == 1.0:
            # x / 1.0 == x bit for bit (NaN and signed zeros too); the division was a third of
            # the activation's time, and a unit gain is the default
            for s in range(n):
                row[s] = tanh((row[s] + off) + b)
        else:
            for s in range(n):
                row[s] = tanh((row[s] + off) / gnorm + b)
    elif kind == 1:
        for s in range(n):
            row[s] = 1.0 if (row[s] + off) / gnorm + b >= threshold else -1.0
    elif gnorm == 1.0:
        for s in range(n):
            row[s] = (row[s] + off) + b
    else:
        for s in range(n):
            row[s] = (row[s] + off) / gnorm + b


@kernel
def _add_rows(dst, n, src, f0, f1, coef):
    """dst[s] += coef[f] src[f, s] for f0 <= f < f1 and s < n, one product at a time in
    increasing f: the same bits as one axpy per f.

    Four source rows per pass over ``dst``: one load and store of ``dst[s]`` per four
    products instead of per product, which halved the 13-input layer's sums (the loop was
    bound by those loads and stores). The inner loop over s vectorises.
    """
    f = f0
    while f + 3 < f1:
        x0 = src[f]
        x1 = src[f + 1]
        x2 = src[f + 2]
        x3 = src[f + 3]
        c0 = coef[f]
        c1 = coef[f + 1]
        c2 = coef[f + 2]
        c3 = coef[f + 3]
        for s in range(n):
            dst[s] = (((dst[s] + x0[s] * c0) + x1[s] * c1) + x2[s] * c2) + x3[s] * c3
        f += 4
    while f < f1:
        x0 = src[f]
        c0 = coef[f]
        for s in range(n):
            dst[s] += x0[s] * c0
        f += 1


@kernel
def _weighted_sums(w, layer, j, n_in, src, dst, n):
    """dst[s] = sum_f src[f, s] w[layer, f, j] for s < n, summed in increasing f.

    Row by row (axpys over the samples, :func:`_add_rows`): LLVM vectorises the inner loop.
    Per-sample register sums (four at a time) looked cheaper but stayed scalar, since
    numba gives LLVM no fast-math licence to pack them; the axpy form measured 2x faster.
    """
    if n_in == 0:
        dst[:n] = 0.0
        return
    w0 = w[layer, 0, j]
    x = src[0]
    for s in range(n):
        dst[s] = 0.0 + x[s] * w0  # "0.0 +": the same signed zero as a sum started at 0.0
    _add_rows(dst, n, src, 1, n_in, w[layer, :, j])


# When the class is the first maximum of tanh(z) over the outputs, the first maximum of z
# itself is that class wherever the runner-up z2 is far enough below the top z1 for the
# computed tanh to keep them apart: true tanh rises by at least (z1 - z2) exp(-2 M) between
# them (sech^2 x >= exp(-2|x|), M = max(|z1|, |z2|)), and the computed one is within
# TANH_ERR of it (tests/test_fastmath.py: within 4 ulp of NumPy's, itself within a few ulp;
# 1e-14 leaves a margin of about ten). With M <= TANH_SKIP_M, a gap above TANH_SKIP_GAP
# exceeds 2 TANH_ERR exp(2 M) = 1.8e-7 five times over; every other sample (ties, large or
# NaN pre-activations) takes the tanh of its outputs, so the class is the same bit for bit.
TANH_ERR = 1e-14
TANH_SKIP_M = 8.0
TANH_SKIP_GAP = 1e-6


@kernel
def _first_max_tanh(z, s, n_out):
    """First maximum of tanh(z[k, s]) over k < n_out (NaN never wins, unless at k = 0)."""
    best = 0
    top = tanh(z[0, s])
    for k in range(1, n_out):
        v = tanh(z[k, s])
        if v > top:
            best = k
            top = v
    return best


@kernel
def _forward_counts(weff, layer_in, layer_out, bias, offs, X, y, sw_pred, gnorm, hidden_sign,
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
    # The output rows keep their pre-activations z: tanh is taken in the class choice below,
    # and only where it can decide (it is monotone), which saves the output layer's tanh.
    out_kind = 2
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
            _activate_row(row, n_samples, offs[l, j], gnorm, bias[l, j], kind, threshold)
        src, dst = dst, src
    n_out = layer_out[n_layers - 1]
    correct = 0
    agree = 0
    for s in range(n_samples):
        # first maximum, as selects: the data-dependent branch mispredicted on every
        # close sample (NaN never wins, as before: a comparison with NaN is false)
        best = 0
        top = src[0, s]
        for k in range(1, n_out):
            v = src[k, s]
            wins = v > top
            best = k if wins else best
            top = v if wins else top
        if out_tanh:  # see TANH_SKIP_GAP; inline, the call only for the rare close calls
            second = -math.inf
            for k in range(n_out):
                v = src[k, s]
                second = v if (k != best and v > second) else second
            if not (top - second > TANH_SKIP_GAP and abs(top) <= TANH_SKIP_M
                    and abs(second) <= TANH_SKIP_M):
                best = _first_max_tanh(src, s, n_out)
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
    offs = np.zeros(bias.shape)
    _layer0_sums(weights, layer_in[0], layer_out[0], X, raw0)
    for g in range(gnorms.shape[0]):
        _forward_counts(weights, layer_in, layer_out, bias, offs, X, y, y, gnorms[g],
                        ip[I_HIDDEN_SIGN] != 0, fp[F_THRESHOLD], ip[I_OUT_TANH] != 0,
                        raw0, act_a, act_b, out[g])


@kernel
def _switching_params(diam, z_delta, z_jc, fp, spread, jc_die):
    """Thermal barrier and critical currents (AP->P, P->AP) of one device; ``jc_die`` is the
    instance's J_c0 factor (:func:`_die_offsets`)."""
    area = (math.pi / 4.0) * diam * diam
    ratio = diam / fp[F_DC]
    delta = fp[F_DSAT] * min(1.0, ratio * ratio)
    jc = fp[F_JC] * jc_die
    if spread:
        delta *= max(1.0 + fp[F_SDELTA] * z_delta, 0.0)
        jc *= max(1.0 + fp[F_SJC] * z_jc, 1e-6)
    ic = jc * area
    return delta, ic, ic * fp[F_JCASYM]


@kernel
def _instance_rates(k0, k1, solution, instance, fp, ip, stream):
    """Defect rates (stuck-P, stuck-AP, short, open) of one instance and whether any
    defect can occur: the study's rates, or with ``defects.dispersion`` > 0 a die-to-die
    Beta draw from the instance's own lane."""
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
    return rate_sp, rate_sap, rate_short, rate_open, any_defect


@kernel
def _die_offsets(k0, k1, solution, instance, fp, st):
    """Die-to-die offsets of one instance, from its own lane (five words, always the same
    ones): (diameter offset m, ln RA offset, TMR offset, J_c0 factor, cos phi, sin phi) with
    phi the direction of the linear gradients; the RA offset is returned as its factor
    exp(sigma z) (libm, once per instance). All neutral, and nothing drawn, when off."""
    if (fp[F_DIE_D] == 0.0 and fp[F_DIE_RA] == 0.0 and fp[F_DIE_TMR] == 0.0
            and fp[F_DIE_JC] == 0.0 and fp[F_GRAD_RA] == 0.0 and fp[F_GRAD_D] == 0.0):
        return 0.0, 1.0, 0.0, 1.0, 1.0, 0.0
    stream_init(st, k0, k1, LANE_DIE, solution, instance)
    z_d = normal_ppf(u32_to_uniform_jit(float(stream_u32(st))))
    z_ra = normal_ppf(u32_to_uniform_jit(float(stream_u32(st))))
    z_tmr = normal_ppf(u32_to_uniform_jit(float(stream_u32(st))))
    z_jc = normal_ppf(u32_to_uniform_jit(float(stream_u32(st))))
    phi = 2.0 * math.pi * u32_to_uniform_jit(float(stream_u32(st)))
    return (fp[F_DIE_D] * z_d, math.exp(fp[F_DIE_RA] * z_ra), fp[F_DIE_TMR] * z_tmr,
            max(1.0 + fp[F_DIE_JC] * z_jc, 1e-6), math.cos(phi), math.sin(phi))


@kernel
def _device_params(z_d, z_ra, z_tmr, r, c, rows, cols, fp, die):
    """(G_P, diameter, TMR0) of the device at (r, c) of a rows x cols array, from its
    standard normals and the instance's die offsets ``die``: d = d0 (1 + g_d u) + delta_d
    + sigma_d z_d, RA = RA0 (1 + g_RA u) exp(delta_lnRA) exp(sigma_RA z_RA), TMR = TMR0 +
    delta_TMR + sigma_TMR z_TMR (>= 0), where u = ((c + 1/2)/cols - 1/2) cos phi + ((r +
    1/2)/rows - 1/2) sin phi is the cell's position along the gradient (|u| <= 0.71)."""
    dd, ra_die, dtmr, jcf, cphi, sphi = die
    u = ((c + 0.5) / cols - 0.5) * cphi + ((r + 0.5) / rows - 0.5) * sphi
    d_nom = fp[F_D0] * (1.0 + fp[F_GRAD_D] * u) + dd
    ra_nom = fp[F_RA0] * (1.0 + fp[F_GRAD_RA] * u) * ra_die
    g_p, diam = _sample_parallel_conductance_jit(z_d, z_ra, d_nom, fp[F_SD], ra_nom, fp[F_SRA])
    tmr = fp[F_TMR0] + dtmr + fp[F_STMR] * z_tmr
    return g_p, diam, 0.0 if tmr < 0.0 else tmr


@kernel
def _table_p(fp, state, voltage):
    """Switching probability from the WER table stored after ``fp[N_FP]`` for a device in
    ``state`` (AP: the AP->P curve) under ``voltage``."""
    n_ap = np.int64(fp[F_TABLE_N_AP])
    if state == STATE_AP:
        return _table_switching_probability_jit(fp, N_FP, n_ap, voltage)
    return _table_switching_probability_jit(fp, N_FP + 2 * n_ap, np.int64(fp[F_TABLE_N_P]),
                                            voltage)


@kernel
def _fill_device_lanes(k0, k1, solution, instance, n_dev, words, scratch, variation, spread,
                       any_defect, write, reset):
    """Fill the fixed-layout lanes of the used devices (one vectorised pass each) and
    return their words (rows 0-3 and 6 of ``words``): device (3 per device), switching (2),
    defect (1), write (2), reset (1). A lane not needed is left unfilled. ``scratch``:
    uint32 of ``words.shape[1]`` for :func:`fill_lane`."""
    w_dev = words[0, : _round4(_WORDS_DEVICE * n_dev)]
    w_sw = words[1, : _round4(_WORDS_SWITCHING * n_dev)]
    w_def = words[2, : _round4(n_dev)]
    w_wr = words[3, : _round4(_WORDS_WRITE * n_dev)]
    w_rs = words[6, : _round4(n_dev)]
    if variation:
        fill_lane(k0, k1, LANE_DEVICE, solution, instance, w_dev, scratch)
        if spread:
            fill_lane(k0, k1, LANE_SWITCHING, solution, instance, w_sw, scratch)
    if any_defect:
        fill_lane(k0, k1, LANE_DEFECT, solution, instance, w_def, scratch)
    if write:
        fill_lane(k0, k1, LANE_WRITE, solution, instance, w_wr, scratch)
    if reset:
        fill_lane(k0, k1, LANE_RESET, solution, instance, w_rs, scratch)
    return w_dev, w_sw, w_def, w_wr, w_rs


@kernel
def _reset_state(fp, mode, reset, fabricated, defect, u_reset, g_p, tmr, ic, ic_rev, delta,
                 voltage):
    """State of one device after the reset, and whether its reset failed.

    With ``reset`` a device fabricated P gets a pulse towards AP at ``voltage`` (the write
    amplitude and width, the write's switching model: always switches in 'ideal' mode, fails
    with ``write.error_rate`` in 'fixed' mode); it switches when ``u_reset`` (its reset
    uniform) is below the probability, else stays P, a failure counted for healthy
    devices only. Stuck devices keep their stuck state and draw nothing. Both paths call
    this with the nominal write amplitude: the reset is modelled as a pulse at the driver's
    amplitude, with no line drop and no half-select disturbs (README "Writing a study",
    ``write.initial``), even when the writes that follow go through the resistive lines.
    """
    if defect == DEFECT_STUCK_P or defect == DEFECT_STUCK_AP:
        return _stuck_state(defect, fabricated), False
    if not reset or fabricated == STATE_AP:
        return fabricated, False
    p = _pulse_probability(fp, mode, STATE_P, g_p, tmr, ic, ic_rev, delta, voltage)
    if u_reset < p:
        return STATE_AP, False
    return STATE_P, defect == 0


@kernel
def _sample_devices(states, layer_in, layer_out, fp, rows, cols, die, w_dev, variation, zbuf,
                    tails, tbuf, devp, tflat):
    """The core path's device sampler: per used device (flat order layer, row, column)
    ``devp[0]`` = G_P (S), ``devp[1]`` = diameter (m), ``devp[2]`` = TMR0, and ``tflat`` its
    target state, from the device lane's words ``w_dev`` (3 per device) and the instance's
    die offsets ``die`` (:func:`_die_offsets`). Returns the number of devices."""
    n_dev = 0
    for l in range(layer_in.shape[0]):
        n_dev += layer_in[l] * 2 * layer_out[l]
    z = zbuf[: _WORDS_DEVICE * n_dev]
    if variation:
        normals_from_words(w_dev[: _WORDS_DEVICE * n_dev], z, tails, tbuf)
    else:
        z[:] = 0.0
    # Two passes: the nested loop only places targets and gradient positions; the flat loop
    # (exp, division) then vectorises over the devices (the nested form with the per-cell
    # position kept it scalar). With both gradients zero, u does not enter the result:
    # d0 (1 + 0 u) + dd == d0 + dd exactly, so u = 0 gives the same bits.
    gradients = fp[F_GRAD_D] != 0.0 or fp[F_GRAD_RA] != 0.0
    dd, ra_die, dtmr, jcf, cphi, sphi = die
    k = 0
    for l in range(layer_in.shape[0]):
        for r in range(layer_in[l]):
            for c in range(2 * layer_out[l]):
                tflat[k] = states[l, r, c]
                devp[1, k] = (((c + 0.5) / cols - 0.5) * cphi + ((r + 0.5) / rows - 0.5) * sphi
                              if gradients else 0.0)
                k += 1
    d0 = fp[F_D0]
    g_d = fp[F_GRAD_D]
    ra0 = fp[F_RA0]
    g_ra = fp[F_GRAD_RA]
    s_d = fp[F_SD]
    s_ra = fp[F_SRA]
    tmr0 = fp[F_TMR0] + dtmr
    s_tmr = fp[F_STMR]
    for k in range(n_dev):
        # :func:`_device_params`, term for term
        u = devp[1, k]
        g_p, diam = _sample_parallel_conductance_jit(
            z[3 * k], z[3 * k + 1], d0 * (1.0 + g_d * u) + dd, s_d,
            ra0 * (1.0 + g_ra * u) * ra_die, s_ra)
        tmr = tmr0 + s_tmr * z[3 * k + 2]
        devp[0, k] = g_p
        devp[1, k] = diam
        devp[2, k] = 0.0 if tmr < 0.0 else tmr
    return n_dev


@kernel
def _simulate_instance(k0, k1, solution, instance, states, layer_in, layer_out, fp, ip,
                       words, zbuf, tails, tbuf, devp, flat, g, correct_dev, stream, dev_map):
    """Sample, reset, write and read one instance; fill ``g`` (conductances), return counts.

    ``states``, ``layer_in``, ``layer_out``: the physical arrays (tiles, or the layers when
    untiled). ``dev_map`` (n_dev, 3): a measured die's (G_P, TMR0, defect) per used device,
    replacing the sampled ones, or shape (0, 3).

    Returns (n_correct_devices, n_correct_weights, n_devices, n_weights, counts tuple).
    ``correct_dev`` receives 1 where a device ended healthy in its target state.
    """
    n_layers = layer_in.shape[0]
    variation = ip[I_VARIATION] != 0
    mode = ip[I_MODE]
    physics = mode == WRITE_PHYSICS
    rows = ip[I_ROWS]
    cols = ip[I_COLS]
    n_dev = 0
    for l in range(n_layers):
        n_dev += layer_in[l] * 2 * layer_out[l]

    rate_sp, rate_sap, rate_short, rate_open, any_defect = _instance_rates(
        k0, k1, solution, instance, fp, ip, stream)
    die = _die_offsets(k0, k1, solution, instance, fp, stream)
    spread = variation and physics and (fp[F_SDELTA] > 0.0 or fp[F_SJC] > 0.0)
    init_random = ip[I_INIT_RANDOM] != 0
    reset = ip[I_RESET] != 0
    w_dev, w_sw, w_def, w_wr, w_rs = _fill_device_lanes(
        k0, k1, solution, instance, n_dev, words, words[5], variation, spread, any_defect,
        mode != 0 or init_random, reset and mode != 0)

    tflat, dflat, pflat, gflat, okflat, idx, sflat = flat
    _sample_devices(states, layer_in, layer_out, fp, rows, cols, die, w_dev, variation, zbuf,
                    tails, tbuf, devp, tflat)
    if any_defect:
        c1 = rate_sp
        c2 = c1 + rate_sap
        c3 = c2 + rate_short
        c4 = c3 + rate_open
        for k in range(n_dev):
            u = u32_word_to_uniform(w_def[k])
            dflat[k] = (DEFECT_STUCK_P if u < c1 else DEFECT_STUCK_AP if u < c2 else
                        DEFECT_SHORT if u < c3 else DEFECT_OPEN if u < c4 else 0)
    else:
        dflat[:n_dev] = 0
    if dev_map.shape[0] > 0:  # a measured die: its resistances and defects, not sampled ones
        for k in range(n_dev):
            devp[0, k] = dev_map[k, 0]
            devp[2, k] = dev_map[k, 1]
            dflat[k] = np.uint8(dev_map[k, 2])

    # Initial states (as fabricated, then the reset) and the pulses' switching
    # probabilities. In 'fixed' and 'ideal' mode without reset the pass is branch-free and
    # vectorises; the switching model needs a scalar loop over the devices it touches.
    vw = fp[F_VW]
    n_reset_err = 0
    if mode >= WRITE_PHYSICS:
        for k in range(n_dev):
            d = dflat[k]
            fab = (w_wr[2 * k] & np.uint32(1)) if init_random else STATE_AP
            stuck = d == DEFECT_STUCK_P or d == DEFECT_STUCK_AP
            needs_reset = reset and fab == STATE_P and not stuck
            target = tflat[k]
            delta = 0.0
            ic = 0.0
            ic_rev = 0.0
            if physics:
                after = STATE_AP if needs_reset else _stuck_state(d, fab)
                if needs_reset or after != target:
                    z_delta = 0.0
                    z_jc = 0.0
                    if spread:
                        z_delta = normal_ppf(u32_to_uniform_jit(float(w_sw[2 * k])))
                        z_jc = normal_ppf(u32_to_uniform_jit(float(w_sw[2 * k + 1])))
                    delta, ic, ic_rev = _switching_params(devp[1, k], z_delta, z_jc, fp, spread,
                                                          die[3])
            u_rs = u32_word_to_uniform(w_rs[k]) if needs_reset else 0.0
            s0, failed = _reset_state(fp, mode, reset, fab, d, u_rs, devp[0, k], devp[2, k], ic,
                                      ic_rev, delta, vw)
            n_reset_err += failed
            sflat[k] = s0
            if s0 != target:
                pflat[k] = _pulse_probability(fp, mode, s0, devp[0, k], devp[2, k], ic, ic_rev,
                                              delta, vw)
    else:
        # 'ideal' and 'fixed': every pulse switches with the same probability p, so the
        # pass (the general loop's :func:`_reset_state` case by case) is branch-free and
        # vectorises; it was a third of the core job's time as a scalar loop. Reset: a
        # free device fabricated P gets a pulse towards AP and stays P when its uniform is
        # >= p (never in 'ideal' mode, where p = 1 and the reset lane is not filled: any
        # word gives u < 1); a failure is counted for devices without defect only.
        p = 1.0 - fp[F_ERROR_RATE] if mode != 0 else 1.0
        for k in range(n_dev):
            d = dflat[k]
            fab = (w_wr[2 * k] & np.uint32(1)) if init_random else np.uint32(STATE_AP)
            stays_p = (fab == STATE_P) & (u32_word_to_uniform(w_rs[k]) >= p)
            s0 = (STATE_P if stays_p else STATE_AP) if reset else fab
            n_reset_err += reset & stays_p & (d == 0)
            sflat[k] = STATE_P if d == DEFECT_STUCK_P else STATE_AP if d == DEFECT_STUCK_AP else s0
        pflat[:n_dev] = p
    g_short = 1.0 / fp[F_RSHORT]
    n_stuck = 0
    n_short = 0
    n_open = 0
    n_err = 0
    n_pulses = 0
    good_dev = 0
    for k in range(n_dev):
        d = dflat[k]
        stuck = (d == DEFECT_STUCK_P) | (d == DEFECT_STUCK_AP)
        healthy = d <= DEFECT_STUCK_AP
        s0 = sflat[k]
        target = tflat[k]
        pulsed = s0 != target
        switched = pulsed & (u32_word_to_uniform(w_wr[2 * k + 1]) < pflat[k]) & (not stuck)
        state = target if switched else s0
        ok = (state == target) & healthy
        g_p = devp[0, k]
        g_dev = g_p if state == STATE_P else g_p / (1.0 + devp[2, k])
        gflat[k] = g_short if d == DEFECT_SHORT else 0.0 if d == DEFECT_OPEN else g_dev
        okflat[k] = ok
        n_pulses += pulsed
        n_err += pulsed & (not ok)
        good_dev += ok
        n_stuck += stuck
        n_short += d == DEFECT_SHORT
        n_open += d == DEFECT_OPEN
    good_w = 0
    n_w = 0
    k = 0
    for l in range(n_layers):
        for r in range(layer_in[l]):
            for c in range(2 * layer_out[l]):
                g[l, r, c] = gflat[k]
                correct_dev[l, r, c] = okflat[k]
                k += 1
            for j in range(layer_out[l]):
                good_w += correct_dev[l, r, 2 * j] and correct_dev[l, r, 2 * j + 1]
                n_w += 1
    return good_dev, good_w, n_dev, n_w, (n_stuck, n_short, n_open, n_err, 0, n_pulses, 0, 0,
                                          n_reset_err)


@kernel
def sample_die(k0, k1, solution, instance, states, layer_in, layer_out, fp, ip, out):
    """The used devices of one instance as a device map, before writing: ``out[k]`` =
    (G_P S, TMR0, defect code) of used device k in array order (``states``, ``layer_in``,
    ``layer_out`` of the physical arrays), from the same lanes and slots as
    :func:`_simulate_instance` (and the circuit path) draws them."""
    n_dev = 0
    for l in range(layer_in.shape[0]):
        n_dev += layer_in[l] * 2 * layer_out[l]
    variation = ip[I_VARIATION] != 0
    words = np.empty((7, _round4(_WORDS_DEVICE * n_dev)), np.uint32)
    stream = np.zeros(11, np.uint64)
    rate_sp, rate_sap, rate_short, rate_open, any_defect = _instance_rates(
        k0, k1, solution, instance, fp, ip, stream)
    die = _die_offsets(k0, k1, solution, instance, fp, stream)
    w_dev, w_sw, w_def, w_wr, w_rs = _fill_device_lanes(
        k0, k1, solution, instance, n_dev, words, words[5], variation, False, any_defect,
        False, False)
    devp = np.empty((3, n_dev))
    tflat = np.empty(n_dev, np.uint8)
    zbuf = np.empty(_WORDS_DEVICE * n_dev)
    tails = np.empty(_WORDS_DEVICE * n_dev, np.int64)
    tbuf = np.empty(_WORDS_DEVICE * n_dev)
    _sample_devices(states, layer_in, layer_out, fp, ip[I_ROWS], ip[I_COLS], die, w_dev,
                    variation, zbuf, tails, tbuf, devp, tflat)
    for k in range(n_dev):
        out[k, 0] = devp[0, k]
        out[k, 1] = devp[2, k]
        out[k, 2] = 0.0
        if any_defect:
            out[k, 2] = _classify_defect_jit(u32_to_uniform_jit(float(w_def[k])), rate_sp,
                                             rate_sap, rate_short, rate_open)


@kernel
def _cell_conductance(state, defect, g_parallel, tmr, g_short):
    return _final_conductance(state, defect, g_parallel, tmr, g_short)


@kernel
def _pulse_probability(fp, mode, state, g_p, tmr, ic, ic_rev, delta, voltage):
    """Full-select switching probability at ``voltage`` (TMR at that bias), by the write mode:
    ideal, fixed rate, device model or measured table."""
    if mode == WRITE_TABLE:
        return _table_p(fp, state, voltage)
    return _pulse_switch_probability(mode, fp[F_ERROR_RATE], state, g_p,
                                     _tmr_at_bias_jit(tmr, voltage, fp[F_VH]),
                                     ic, ic_rev, delta, voltage, fp[F_TW], fp[F_TAU0],
                                     fp[F_TAUD], fp[F_BETA])


@kernel
def _dist_p(fp, mode, state, defect, g_p, tmr, ic, ic_rev, delta, v_dist):
    """Disturb probability of a cell under ``v_dist`` pushing it out of ``state``."""
    if not (defect == 0):
        return 0.0  # stuck cells keep their state; shorts and opens have none that matters
    if mode == WRITE_TABLE:
        return _table_p(fp, state, v_dist)
    return _disturb_probability(mode, fp[F_DISTURB_RATE], state, g_p, tmr, v_dist, fp[F_VH], ic,
                                ic_rev, delta, fp[F_TW], fp[F_TAU0], fp[F_TAUD], fp[F_BETA])


@kernel
def _half_cell(pos, r, c, cols):
    """Cell of position ``pos`` in the list of cells sharing row r or column c (not (r, c))."""
    if pos < cols - 1:
        return r, (pos if pos < c else pos + 1)
    q = pos - (cols - 1)
    return (q if q < r else q + 1), c


@kernel
def _other_cell(pos, r, c, cols):
    """Cell of position ``pos`` among the cells in neither row r nor column c."""
    i = pos // (cols - 1)
    j = pos % (cols - 1)
    return (i if i < r else i + 1), (j if j < c else j + 1)


@kernel
def _disturb_walk(l, r, c, to_p, others, v_ideal, nominal, fp, mode, cells, st, ir_on, wa, wb,
                  pbuf, vbuf):
    """Half-select disturbs of one pulse on (r, c) among one candidate group; returns count.

    ``to_p``: direction the group is pushed (towards P or AP). ``others``: the group of
    cells in neither row r nor column c (V/3 scheme) instead of the half-selected ones.
    Each candidate switches with the probability at its own voltage: from the pulse's
    solved node voltages ``wa - wb`` when the write sees the lines (``ir_on``; a candidate
    biased against the push is not disturbed), else the ideal ``v_ideal`` (V/2 or V/3).
    One Bernoulli draw per candidate, sampled by thinning (``mcmtj.physics.array.sample_thinned``):
    proposals at p_max, the group's largest bound, each accepted with p / p_max. The bound
    of a candidate is its precomputed probability at the ideal voltage (``pd_p``/``pd_ap``,
    at the ``nominal`` amplitude) when its own voltage is not above that -- the switching
    probability rises with the voltage -- so the exact probability is evaluated only for
    the few proposed candidates; otherwise (a retry at a raised amplitude, or a voltage
    above the ideal one) the bound is the exact probability itself.
    """
    state_f, defect_f, gp_f, tmr_f, ic_f, icr_f, delta_f, pd_p, pd_ap, G_f = cells
    rows = state_f.shape[1]
    cols = state_f.shape[2]
    n = (rows - 1) * (cols - 1) if others else rows + cols - 2
    from_state = STATE_AP if to_p else STATE_P
    g_short = 1.0 / fp[F_RSHORT]
    pmax = 0.0
    for pos in range(n):
        if others:
            i, j = _other_cell(pos, r, c, cols)
        else:
            i, j = _half_cell(pos, r, c, cols)
        bound = 0.0
        v = v_ideal
        if state_f[l, i, j] == from_state and defect_f[l, i, j] == 0:
            if ir_on:
                v = wa[i, j] - wb[i, j]
                if others:
                    v = -v
            if v <= 0.0:
                bound = 0.0
            elif nominal and v <= v_ideal:
                bound = pd_p[l, i, j] if to_p else pd_ap[l, i, j]
                if bound < 0.0:
                    # first time this instance needs it (see the sampling pass): the
                    # probability at the ideal voltage, kept for the cell's later pulses
                    bound = _dist_p(fp, mode, from_state, 0, gp_f[l, i, j], tmr_f[l, i, j],
                                    ic_f[l, i, j], icr_f[l, i, j], delta_f[l, i, j], v_ideal)
                    if to_p:
                        pd_p[l, i, j] = bound
                    else:
                        pd_ap[l, i, j] = bound
                if not ir_on:
                    v = -1.0  # the bound is exact
            else:
                bound = _dist_p(fp, mode, from_state, 0, gp_f[l, i, j], tmr_f[l, i, j],
                                ic_f[l, i, j], icr_f[l, i, j], delta_f[l, i, j], v)
                v = -1.0
        pbuf[pos] = bound
        vbuf[pos] = v  # > 0: the exact probability is still to be taken at this voltage
        pmax = max(pmax, bound)
    count = 0
    if pmax <= 0.0:
        return 0
    pos = -1
    while True:
        pos += 1 + _geometric_skip(pmax, st)
        if pos >= n:
            break
        if others:
            i, j = _other_cell(pos, r, c, cols)
        else:
            i, j = _half_cell(pos, r, c, cols)
        p = pbuf[pos]
        if vbuf[pos] > 0.0 and p > 0.0:
            p = _dist_p(fp, mode, from_state, 0, gp_f[l, i, j], tmr_f[l, i, j],
                        ic_f[l, i, j], icr_f[l, i, j], delta_f[l, i, j], vbuf[pos])
        if stream_uniform53(st) * pmax < p:
            new = STATE_P if to_p else STATE_AP
            state_f[l, i, j] = new
            G_f[l, i, j] = _cell_conductance(new, 0, gp_f[l, i, j], tmr_f[l, i, j], g_short)
            count += 1
    return count


@kernel
def _write_conductance(l, i, j, bias, cells, g_short, vh):
    """Conductance (S) of device (i, j) of layer l at ``bias`` volts."""
    state_f, defect_f, gp_f, tmr_f, ic_f, icr_f, delta_f, pd_p, pd_ap, G_f = cells
    d = defect_f[l, i, j]
    if d == DEFECT_SHORT:
        return g_short
    if d == DEFECT_OPEN:
        return 0.0
    if state_f[l, i, j] == STATE_P:
        return gp_f[l, i, j]
    return gp_f[l, i, j] / (1.0 + _tmr_at_bias_jit(tmr_f[l, i, j], bias, vh))


@kernel
def _write_conductances(l, r, c, scheme, amplitude, cells, fp, Gw, loaded):
    """Conductances (S) of layer l's devices during a write pulse of ``amplitude`` on
    (r, c), each at the ideal bias of its class (selected: A; half-selected: A/2 or A/3;
    others: 0 or A/3) -- a one-step linearisation of the bias-dependent TMR. Shorts and
    opens load the lines as they are; with scheme 'none' only the selected device conducts
    (each device behind its own access device)."""
    G_f = cells[9]
    rows = Gw.shape[0]
    cols = Gw.shape[1]
    g_short = 1.0 / fp[F_RSHORT]
    vh = fp[F_VH]
    if scheme == SCHEME_V3:
        third = amplitude / 3.0
        for i in range(rows):
            for j in range(cols):
                Gw[i, j] = _write_conductance(l, i, j, third, cells, g_short, vh)
    elif scheme == SCHEME_V2:
        # unselected devices at 0 V: their read conductance. Gw keeps them between pulses
        # (``loaded`` = (layer, row, column) of the last pulse, or layer -1): a V/2 pulse
        # changes states only in its own row and column, so restoring those is enough.
        if loaded[0] != l:
            for i in range(rows):
                for j in range(cols):
                    Gw[i, j] = G_f[l, i, j]
        else:
            pr = loaded[1]
            pc = loaded[2]
            for j in range(cols):
                Gw[pr, j] = G_f[l, pr, j]
            for i in range(rows):
                Gw[i, pc] = G_f[l, i, pc]
        loaded[0] = l
        loaded[1] = r
        loaded[2] = c
        for j in range(cols):
            Gw[r, j] = _write_conductance(l, r, j, amplitude / 2.0, cells, g_short, vh)
        for i in range(rows):
            Gw[i, c] = _write_conductance(l, i, c, amplitude / 2.0, cells, g_short, vh)
    else:
        for i in range(rows):
            for j in range(cols):
                Gw[i, j] = 0.0
    Gw[r, c] = _write_conductance(l, r, c, amplitude, cells, g_short, vh)


@kernel
def _verify_reference(l, r, c, gref, gscr, fp, ip, work, verify_ref, phase):
    """Reference current (A) of a verify read of cell (r, c): the current the read would
    give for a device half-way between G_P and G_AP among neighbours at the nominal
    conductances of the states the experimenter knows now (``gref[l, :rows]``; row ``rows``
    holds the column sums). ``phase`` 0: while writing, 1: the final read-back; a
    precomputed ``verify_ref[:, phase]`` is used when the engine could compute it (the known
    states do not depend on the instance)."""
    v = fp[F_VREAD]
    rows = gscr.shape[0]
    g_mid = 0.5 * (fp[F_G_NOM_P] + fp[F_G_NOM_AP])
    if ip[I_KIND] == KIND_INTEGRATED:  # only the selected device conducts: no neighbours
        return _integrated_read_current(g_mid, v, r, c, rows, fp[F_R_ROW], fp[F_R_COL])
    if ip[I_VERIFY_FLOATING] == 0:
        return v * (g_mid + 0.5 * (gref[l, rows, c] - gref[l, r, c]))
    if verify_ref.shape[0] > 0:
        return verify_ref[phase, l, r, c]
    for i in range(rows):
        for j in range(gscr.shape[1]):
            gscr[i, j] = gref[l, i, j]
    gscr[r, c] = g_mid
    return _verify_read_kernel(gscr, r, c, v, SCHEME_FLOATING, fp[F_R_ROW], fp[F_R_COL], work)


@kernel
def _verify_read(l, r, c, G_f, ref, fp, ip, noise_st, work):
    """State (P or AP) a verify read of cell (r, c) reports against reference ``ref`` (A)."""
    v = fp[F_VREAD]
    if ip[I_KIND] == KIND_INTEGRATED:
        current = _integrated_read_current(G_f[l, r, c], v, r, c, G_f.shape[1], fp[F_R_ROW],
                                           fp[F_R_COL])
    elif ip[I_VERIFY_FLOATING] != 0:
        current = _verify_read_kernel(G_f[l], r, c, v, SCHEME_FLOATING, fp[F_R_ROW], fp[F_R_COL],
                                      work)
    else:
        current = _sense_half(G_f[l], r, c, v, G_f.shape[1])
    if fp[F_NOISE] > 0.0:
        current *= 1.0 + fp[F_NOISE] * normal_ppf(u32_to_uniform_jit(float(stream_u32(noise_st))))
    return STATE_P if current > ref else STATE_AP


@kernel
def _simulate_instance_circuit(k0, k1, solution, instance, states, layer_in, layer_out, fp, ip,
                               words, zscr, cells, gref, gscr, verify_ref, order, st_dist, st_ver,
                               work, wscr, dev_map):
    """Sample, write (order, disturb, verify) and leave the conductances of one instance's
    full physical arrays in ``cells``; return (good_dev, good_w, n_dev, n_w, readback, counts).

    Devices of the used region draw from the same lanes and slots as the core path, the
    unused cells from their own lane, so the used devices are the core path's devices.
    ``wscr``: scratch of the write-bias solve and the disturb walk (Gw, wa, wb, row_src,
    col_src, wwork, pbuf, vbuf).
    """
    state_f, defect_f, gp_f, tmr_f, ic_f, icr_f, delta_f, pd_p, pd_ap, G_f = cells
    Gw, wa, wb, row_src, col_src, wwork, pbuf, vbuf = wscr
    n_layers = layer_in.shape[0]
    rows = ip[I_ROWS]
    cols = ip[I_COLS]
    variation = ip[I_VARIATION] != 0
    mode = ip[I_MODE]
    physics = mode == WRITE_PHYSICS
    spread = variation and physics and (fp[F_SDELTA] > 0.0 or fp[F_SJC] > 0.0)
    scheme = ip[I_SCHEME]
    g_short = 1.0 / fp[F_RSHORT]
    n_dev = 0
    for l in range(n_layers):
        n_dev += layer_in[l] * 2 * layer_out[l]
    n_unused = n_layers * rows * cols - n_dev

    rate_sp, rate_sap, rate_short, rate_open, any_defect = _instance_rates(
        k0, k1, solution, instance, fp, ip, st_dist)
    die = _die_offsets(k0, k1, solution, instance, fp, st_dist)
    reset = ip[I_RESET] != 0
    scratch = words[5]
    w_dev, w_sw, w_def, w_wr, w_rs = _fill_device_lanes(
        k0, k1, solution, instance, n_dev, words, scratch, variation, spread, any_defect,
        True, reset and mode != 0)
    w_un = words[4, : _round4(_WORDS_UNUSED * n_unused)]
    fill_lane(k0, k1, LANE_UNUSED, solution, instance, w_un, scratch)
    # normals in vectorised passes; the unused lane holds 5 normals per cell, then 2 words
    z_used, z_sw, z_un, tails, tbuf = zscr
    if variation:
        normals_from_words(w_dev[: _WORDS_DEVICE * n_dev], z_used[: _WORDS_DEVICE * n_dev],
                           tails, tbuf)
        if spread:
            normals_from_words(w_sw[: _WORDS_SWITCHING * n_dev],
                               z_sw[: _WORDS_SWITCHING * n_dev], tails, tbuf)
    normals_from_words(w_un[: 5 * n_unused], z_un[: 5 * n_unused], tails, tbuf)

    # 1. sample every cell of every array
    n_stuck = 0
    n_short = 0
    n_open = 0
    n_reset_err = 0
    draw_reset = reset and mode != 0
    k = 0
    u = 0
    for l in range(n_layers):
        for r in range(rows):
            for c in range(cols):
                used = r < layer_in[l] and c < 2 * layer_out[l]
                if used:
                    z0 = z_used[3 * k]
                    z1 = z_used[3 * k + 1]
                    z2 = z_used[3 * k + 2]
                    zd = 0.0
                    zj = 0.0
                    if spread:
                        zd = z_sw[2 * k]
                        zj = z_sw[2 * k + 1]
                    ud = u32_to_uniform_jit(float(w_def[k]))
                    init_word = w_wr[2 * k]
                    u_rs = u32_to_uniform_jit(float(w_rs[k])) if draw_reset else 0.0
                else:
                    z0 = z_un[5 * u]
                    z1 = z_un[5 * u + 1]
                    z2 = z_un[5 * u + 2]
                    zd = z_un[5 * u + 3]
                    zj = z_un[5 * u + 4]
                    ud = u32_to_uniform_jit(float(w_un[5 * n_unused + 2 * u]))
                    init_word = w_un[5 * n_unused + 2 * u + 1]
                    u_rs = (u32_to_uniform_jit(float(w_un[7 * n_unused + u])) if draw_reset
                            else 0.0)
                if not variation:
                    z0 = 0.0
                    z1 = 0.0
                    z2 = 0.0
                g_p, diam, tmr = _device_params(z0, z1, z2, r, c, rows, cols, fp, die)
                delta, ic, ic_rev = _switching_params(diam, zd, zj, fp, spread, die[3])
                defect = 0
                if any_defect:
                    defect = _classify_defect_jit(ud, rate_sp, rate_sap, rate_short, rate_open)
                if used and dev_map.shape[0] > 0:  # a measured die (see _simulate_instance)
                    g_p = dev_map[k, 0]
                    tmr = dev_map[k, 1]
                    defect = np.int64(dev_map[k, 2])
                if used:
                    if defect == DEFECT_STUCK_P or defect == DEFECT_STUCK_AP:
                        n_stuck += 1
                    elif defect == DEFECT_SHORT:
                        n_short += 1
                    elif defect == DEFECT_OPEN:
                        n_open += 1
                fab = STATE_AP
                if ip[I_INIT_RANDOM] != 0:
                    fab = STATE_P if init_word & np.uint32(1) else STATE_AP
                # the reset pulse at the nominal write amplitude (no line drop yet)
                state, failed = _reset_state(fp, mode, reset, fab, defect, u_rs, g_p, tmr, ic,
                                             ic_rev, delta, fp[F_VW])
                if used:
                    n_reset_err += failed
                state_f[l, r, c] = state
                defect_f[l, r, c] = defect
                gp_f[l, r, c] = g_p
                tmr_f[l, r, c] = tmr
                ic_f[l, r, c] = ic
                icr_f[l, r, c] = ic_rev
                delta_f[l, r, c] = delta
                G_f[l, r, c] = _cell_conductance(state, defect, g_p, tmr, g_short)
                if scheme != SCHEME_NONE:
                    # disturb probabilities at the nominal half-select voltage, taken by
                    # _disturb_walk when a pulse first needs them (-1: not yet): about half
                    # of the cells are never candidates in the state that needs one, and
                    # each is a few exp/pow calls (a tenth of a physics-mode instance)
                    pd_p[l, r, c] = -1.0
                    pd_ap[l, r, c] = -1.0
                if used:
                    k += 1
                else:
                    u += 1

    # 2. write every used cell in order, with disturbs and verify. The verify reference
    # assumes what the experimenter knows: nominal conductances of the states the cells
    # should be in now (targets once written, AP before); row `rows` holds column sums.
    g_nom_p = fp[F_G_NOM_P]
    g_nom_ap = fp[F_G_NOM_AP]
    init_random = ip[I_INIT_RANDOM] != 0
    for l in range(n_layers):
        for c in range(cols):
            total = 0.0
            for r in range(rows):
                # random initial states are known: the procedure pulses only the cells
                # whose state differs from their target; after a reset ('ap') the
                # experimenter assumes AP (as the engine's precomputed references do)
                g0 = g_nom_p if init_random and not reset and state_f[l, r, c] == STATE_P \
                    else g_nom_ap
                gref[l, r, c] = g0
                total += g0
            gref[l, rows, c] = total
    stream_init(st_dist, k0, k1, LANE_DISTURB, solution, instance)
    stream_init(st_ver, k0, k1, LANE_VERIFY, solution, instance)
    verify = ip[I_VERIFY] != 0
    k_max = ip[I_MAX_RETRIES]
    # The lines matter to a write only when the switching probability depends on the
    # voltage (not in 'ideal' or 'fixed' mode).
    ir_on = ip[I_IR_SOLVER] != IR_OFF and mode != WRITE_IDEAL and mode != WRITE_FIXED
    integrated = ip[I_KIND] == KIND_INTEGRATED
    loaded = np.full(3, -1, np.int64)  # what Gw holds (see _write_conductances)
    n_nonconv = 0
    n_err = 0
    n_pulses = 0
    n_dist = 0
    n_retry = 0
    k_first = 0
    for l in range(n_layers):
        n_in = layer_in[l]
        n_c = 2 * layer_out[l]
        n_cells = n_in * n_c
        for t in range(n_cells):
            if ip[I_ORDER] == ORDER_COLUMN:
                order[t] = (t % n_in) * n_c + t // n_in
            else:
                order[t] = t
        if ip[I_ORDER] == ORDER_RANDOM:
            for t in range(n_cells - 1, 0, -1):  # Fisher-Yates from the verify lane
                j = np.int64(stream_u32(st_ver) % np.uint64(t + 1))
                order[t], order[j] = order[j], order[t]
        for t in range(n_cells):
            cell = order[t]
            r = cell // n_c
            c = cell % n_c
            k = k_first + cell
            target = states[l, r, c]
            g_known = g_nom_p if target == STATE_P else g_nom_ap
            gref[l, rows, c] += g_known - gref[l, r, c]
            gref[l, r, c] = g_known
            if state_f[l, r, c] == target:
                continue
            attempt = 0
            have_ref = False
            ref = 0.0
            while True:
                n_pulses += 1
                voltage = fp[F_VW] + attempt * fp[F_RETRY_STEP]
                state = state_f[l, r, c]
                defect = defect_f[l, r, c]
                if attempt == 0:
                    uw = u32_to_uniform_jit(float(w_wr[2 * k + 1]))
                else:
                    uw = u32_to_uniform_jit(float(stream_u32(st_ver)))
                v_sel = voltage
                if ir_on and integrated:
                    # only this device's access device is on: a series circuit
                    v_sel = _integrated_write_voltage(
                        _write_conductance(l, r, c, voltage, cells, g_short, fp[F_VH]),
                        voltage, r, c, rows, fp[F_R_ROW], fp[F_R_COL], fp[F_R_DRV])
                elif ir_on:
                    # the pulse through the lines, with the states before it
                    _write_conductances(l, r, c, scheme, voltage, cells, fp, Gw, loaded)
                    _write_sources(scheme, voltage, r, c, row_src, col_src)
                    _, ok = _write_bias_kernel(Gw, fp[F_R_ROW], fp[F_R_COL], fp[F_R_DRV],
                                               row_src, col_src, r, c, ip[I_IR_SOLVER],
                                               FAST_ACCEPT, FAST_TOL, FAST_MAX_SWEEPS, wwork,
                                               wa, wb)
                    n_nonconv += not ok
                    v_sel = max(wa[r, c] - wb[r, c], 0.0)
                if state != target:
                    p_switch = _pulse_probability(fp, mode, state, gp_f[l, r, c], tmr_f[l, r, c],
                                                  ic_f[l, r, c], icr_f[l, r, c],
                                                  delta_f[l, r, c], v_sel)
                    if uw < p_switch:
                        state = _stuck_state(defect, target)
                        state_f[l, r, c] = state
                        G_f[l, r, c] = _cell_conductance(state, defect, gp_f[l, r, c],
                                                         tmr_f[l, r, c], g_short)
                if state != target or not _is_healthy(defect):
                    n_err += 1
                if scheme != SCHEME_NONE:
                    to_p = target == STATE_P
                    nominal = voltage == fp[F_VW]
                    vd = voltage / 2.0 if scheme == SCHEME_V2 else voltage / 3.0
                    n_dist += _disturb_walk(l, r, c, to_p, False, vd, nominal, fp, mode, cells,
                                            st_dist, ir_on, wa, wb, pbuf, vbuf)
                    if scheme == SCHEME_V3:
                        n_dist += _disturb_walk(l, r, c, not to_p, True, vd, nominal, fp, mode,
                                                cells, st_dist, ir_on, wa, wb, pbuf, vbuf)
                if not verify:
                    break
                if not have_ref:  # the known states do not change during the retries
                    ref = _verify_reference(l, r, c, gref, gscr, fp, ip, work, verify_ref, 0)
                    have_ref = True
                if _verify_read(l, r, c, G_f, ref, fp, ip, st_ver, work) == target:
                    break
                if attempt >= k_max:
                    break
                attempt += 1
                n_retry += 1
        k_first += n_cells

    # 3. correctness, and the experimenter's read-back
    good_dev = 0
    good_w = 0
    n_w = 0
    readback = 0
    for l in range(n_layers):
        for r in range(layer_in[l]):
            for c in range(2 * layer_out[l]):
                ok = state_f[l, r, c] == states[l, r, c] and _is_healthy(defect_f[l, r, c])
                good_dev += ok
                if verify and ip[I_FINAL_VERIFY] != 0:
                    ref = _verify_reference(l, r, c, gref, gscr, fp, ip, work, verify_ref, 1)
                    readback += _verify_read(l, r, c, G_f, ref, fp, ip, st_ver,
                                             work) == states[l, r, c]
            for j in range(layer_out[l]):
                good_w += (state_f[l, r, 2 * j] == states[l, r, 2 * j]
                           and _is_healthy(defect_f[l, r, 2 * j])
                           and state_f[l, r, 2 * j + 1] == states[l, r, 2 * j + 1]
                           and _is_healthy(defect_f[l, r, 2 * j + 1]))
                n_w += 1
    return (good_dev, good_w, n_dev, n_w, readback,
            (n_stuck, n_short, n_open, n_err, n_dist, n_pulses, n_retry, n_nonconv,
             n_reset_err))


@kernel
def _circuit_weights(l, r0, j0, n_in, n_out, G_f, fp, T, work, weff):
    """Effective weights of array l (a tile of its layer, holding inputs r0.. and outputs
    j0..) through the circuit: I = T V with T the transfer matrix (or G^T without wire
    resistance); weff[layer, r0 + f, j0 + j] = (T[2j, f] - T[2j+1, f]) / dG_nom. (``weff``
    is given as its layer's (inputs, outputs) matrix.)"""
    rows = G_f.shape[1]
    cols = G_f.shape[2]
    if fp[F_R_ROW] > 0.0 or fp[F_R_COL] > 0.0:
        _transfer_matrix_kernel(G_f[l], fp[F_R_ROW], fp[F_R_COL], work, T)
    else:
        for c in range(cols):
            for r in range(rows):
                T[c, r] = G_f[l, r, c]
    inv = 1.0 / fp[F_DG_NOM]
    for f in range(n_in):
        for j in range(n_out):
            weff[r0 + f, j0 + j] = (T[2 * j, f] - T[2 * j + 1, f]) * inv


@kernel
def _read_devices(cells, fp, gp_read, st_read_p):
    """Devices as the bias-dependent read sees them: a short is a fixed conductance
    1 / r_short and an open none, neither with TMR (so both are passed as 'P' with that
    conductance); a healthy or stuck device keeps its own G_P and state."""
    state_f, defect_f, gp_f, tmr_f, ic_f, icr_f, delta_f, pd_p, pd_ap, G_f = cells
    g_short = 1.0 / fp[F_RSHORT]
    for l in range(state_f.shape[0]):
        for r in range(state_f.shape[1]):
            for c in range(state_f.shape[2]):
                d = defect_f[l, r, c]
                if d == DEFECT_SHORT or d == DEFECT_OPEN:
                    gp_read[l, r, c] = g_short if d == DEFECT_SHORT else 0.0
                    st_read_p[l, r, c] = STATE_P
                else:
                    gp_read[l, r, c] = gp_f[l, r, c]
                    st_read_p[l, r, c] = state_f[l, r, c]


@kernel
def _forward_slow(l_in, l_out, bias, offs, X, y, sw_pred, gnorm, hidden_sign, threshold,
                  out_tanh, cells, gp_read, st_read_p, fp, ip, T_all, st_read, work, vrow, cur,
                  act, nxt, tiles):
    """Per-sample inference when the read is not one linear map (bias-dependent TMR) or is
    noisy: every sample's column currents are read through the circuit. ``gp_read`` and
    ``st_read_p`` are the devices' parallel conductance and state as the bias-dependent read
    sees them (:func:`_read_devices`: defects included).
    Returns (n_correct, n_agree, n_nonconverged)."""
    state_f, defect_f, gp_f, tmr_f, ic_f, icr_f, delta_f, pd_p, pd_ap, G_f = cells
    n_layers = l_in.shape[0]
    rows = G_f.shape[1]
    cols = G_f.shape[2]
    v_read = fp[F_VREAD]
    dg = fp[F_DG_NOM]
    bias_tmr = ip[I_BIAS_TMR] != 0
    correct = 0
    agree = 0
    nonconv = 0
    for s in range(X.shape[1]):
        for f in range(l_in[0]):
            act[f] = X[f, s]
        for l in range(n_layers):
            # each array (tile) of the layer is read on its own; the differential currents
            # of its row tiles are summed after sensing
            for a in range(tiles.shape[0]):
                if tiles[a, 0] != l:
                    continue
                r0 = tiles[a, 1]
                j0 = tiles[a, 2] // 2
                for r in range(rows):
                    vrow[r] = act[r0 + r] * v_read if r < tiles[a, 3] else 0.0
                if bias_tmr:
                    ok, _ = _nonlinear_read_kernel(gp_read[a], tmr_f[a], st_read_p[a], fp[F_VH],
                                                   vrow, fp[F_R_ROW], fp[F_R_COL], fp[F_TOL],
                                                   ip[I_MAX_ITER], work, cur)
                    nonconv += not ok
                else:
                    for c in range(cols):
                        acc = 0.0
                        for r in range(rows):
                            acc += T_all[a, c, r] * vrow[r]
                        cur[c] = acc
                if fp[F_NOISE] > 0.0:
                    for c in range(tiles[a, 4]):
                        z = normal_ppf(u32_to_uniform_jit(float(stream_u32(st_read))))
                        cur[c] *= 1.0 + fp[F_NOISE] * z
                for j in range(tiles[a, 4] // 2):
                    d = (cur[2 * j] - cur[2 * j + 1]) / (dg * v_read)
                    if r0 == 0:
                        nxt[j0 + j] = d
                    else:
                        nxt[j0 + j] += d
            last = l == n_layers - 1
            for j in range(l_out[l]):
                pre = (nxt[j] + offs[l, j]) / gnorm + bias[l, j]
                if last:
                    nxt[j] = tanh(pre) if out_tanh else pre
                elif hidden_sign:
                    nxt[j] = 1.0 if pre >= threshold else -1.0
                else:
                    nxt[j] = tanh(pre)
            for j in range(l_out[l]):
                act[j] = nxt[j]
        best = 0
        for j in range(1, l_out[n_layers - 1]):
            if act[j] > act[best]:
                best = j
        correct += best == y[s]
        agree += best == sw_pred[s]
    return correct, agree, nonconv


@kernel
def _tile_scratch(tiles):
    """(rows used, pairs used, conductances, correctness) of the physical arrays ``tiles``."""
    arr_in = tiles[:, 3].copy()
    arr_out = tiles[:, 4] // 2
    n_arr = arr_in.shape[0]
    return (arr_in, arr_out, np.zeros((n_arr, arr_in.max(), 2 * arr_out.max())),
            np.zeros((n_arr, arr_in.max(), 2 * arr_out.max()), np.bool_))


@kernel
def _untile(tiles, g_arr, ok_arr, g, ok):
    """Per-array conductances and correctness into their layers' matrices."""
    for a in range(tiles.shape[0]):
        l = tiles[a, 0]
        r0 = tiles[a, 1]
        c0 = tiles[a, 2]
        for r in range(tiles[a, 3]):
            for c in range(tiles[a, 4]):
                g[l, r0 + r, c0 + c] = g_arr[a, r, c]
                ok[l, r0 + r, c0 + c] = ok_arr[a, r, c]


@kernel
def _block_geometry(job, n, block, layer_in, layer_out):
    """(solution, first, last, n_layers, max_in, max_out, width, n_dev) of one block."""
    n_layers = layer_in.shape[0]
    max_in = layer_in.max()
    max_out = layer_out.max()
    n_dev = 0
    for l in range(n_layers):
        n_dev += layer_in[l] * 2 * layer_out[l]
    n_blocks_per_sol = (n + block - 1) // block
    first = (job % n_blocks_per_sol) * block
    return (job // n_blocks_per_sol, first, min(first + block, n), n_layers, max_in, max_out,
            max(max_in, max_out), n_dev)


@kernel
def _block_scratch(n_layers, max_in, max_out, width, n_samp, n_words):
    """Scratch shared by both block kernels: (words, g, correct_dev, weff, raw0, act_a, act_b,
    pred, stream, offs, diff, md)."""
    return (np.empty((7, n_words), np.uint32),  # five lanes, a scratch row, the reset lane
            np.zeros((n_layers, max_in, 2 * max_out)),
            np.zeros((n_layers, max_in, 2 * max_out), np.bool_),
            np.zeros((n_layers, max_in, max_out)),
            np.empty((max_out, n_samp)), np.empty((width, n_samp)),
            np.empty((width, n_samp)), np.empty(n_samp, np.int64), np.zeros(11, np.uint64),
            np.zeros((n_layers, max_out)), np.empty((max_in, 2 * max_out)),
            np.empty(2 * max_out))


@kernel
def _record_metrics(s, local, good_dev, good_w, nd, nw, cnt, nonconv, correct_dev, g, layer_in,
                    layer_out, ip, sens, gram, g0, rmse_den, diff, md, write_fid, weight_fid,
                    rmse, sens_fid, counts, dev_g):
    """Store one instance's fidelity metrics, current RMSE and counters, and (when
    ``dev_g`` has instances, the opt-in per-device output) its effective conductances."""
    write_fid[s, local] = good_dev / nd
    weight_fid[s, local] = good_w / nw
    if ip[I_SENSITIVITY] != 0:
        lost = 0.0
        total = 0.0
        k = 0
        for l in range(layer_in.shape[0]):
            for r in range(layer_in[l]):
                for c in range(2 * layer_out[l]):
                    total += sens[s, k]
                    if not correct_dev[l, r, c]:
                        lost += sens[s, k]
                    k += 1
        sens_fid[s, local] = 1.0 - lost / total if total > 0.0 else 1.0
    # layer-0 column-current error vs the nominal target array, via the Gram matrix:
    # sum_s (I_sc - I0_sc)^2 = D_c^T (X X^T) D_c with D = G - G0 (G: effective, i.e.
    # the transfer matrix's transpose when the wires have resistance).
    n0 = layer_in[0]
    c0 = 2 * layer_out[0]
    for f in range(n0):
        for c in range(c0):
            diff[f, c] = g[0, f, c] - g0[s, f, c]
    num = 0.0
    for f in range(n0):
        md[:c0] = 0.0
        _add_rows(md, c0, diff, 0, n0, gram[f])  # md[c] = sum_h gram[f, h] diff[h, c]
        for c in range(c0):
            num += diff[f, c] * md[c]
    rmse[s, local] = math.sqrt(max(num, 0.0) / rmse_den[s])
    for c in range(N_COUNTS):
        counts[s, local, c] = cnt[c]
    counts[s, local, C_NONCONVERGED] = nonconv
    if dev_g.shape[1] > 0:
        # what a one-hot calibration read of each used cell measures (device order of
        # ``sens``): the device conductance, or with wires the transfer-matrix entry
        k = 0
        for l in range(layer_in.shape[0]):
            for r in range(layer_in[l]):
                for c in range(2 * layer_out[l]):
                    dev_g[s, local, k] = g[l, r, c]
                    k += 1


@kernel
def _split_accuracy(s, local, weff, offs, layer_in, layer_out, bias, fp, ip, gnorms, X, y, sw,
                    raw0, act_a, act_b, pred, acc, agree, with_agree):
    """Accuracy (and agreement) of one instance on one data split for every gain, the read
    being one linear map (effective weights ``weff``); the layer-0 sums serve all gains."""
    hidden_sign = ip[I_HIDDEN_SIGN] != 0
    out_tanh = ip[I_OUT_TANH] != 0
    n = X.shape[1]
    _layer0_sums(weff, layer_in[0], layer_out[0], X, raw0)
    for gi in range(gnorms.shape[0]):
        c_ok, c_ag = _forward_counts(
            weff, layer_in, layer_out, bias[s], offs, X, y, sw[s, gi], gnorms[gi],
            hidden_sign, fp[F_THRESHOLD], out_tanh, raw0, act_a, act_b, pred)
        acc[s, local, gi] = c_ok / n
        if with_agree:
            agree[s, local, gi] = c_ag / n


@kernel
def _linear_inference(s, local, weff, offs, layer_in, layer_out, bias, fp, ip, gnorms, X_eval,
                      y_eval, sw_eval, X_train, y_train, sw_train, raw0, act_a, act_b, pred, acc,
                      acc_train, agree):
    """:func:`_split_accuracy` on the evaluation split, and on the training split too when
    ``network.eval_train`` is set."""
    _split_accuracy(s, local, weff, offs, layer_in, layer_out, bias, fp, ip, gnorms, X_eval,
                    y_eval, sw_eval, raw0, act_a, act_b, pred, acc, agree, True)
    if ip[I_EVAL_TRAIN] != 0:
        _split_accuracy(s, local, weff, offs, layer_in, layer_out, bias, fp, ip, gnorms,
                        X_train, y_train, sw_train, raw0, act_a, act_b, pred, acc_train, agree,
                        False)


@kernel
def _simulate_block_core(job, k0, k1, sol_offset, start, n, block, states, layer_in, layer_out,
                         bias, fp, ip, gnorms, X_eval, y_eval, sw_eval, X_train, y_train,
                         sw_train, gram, g0, rmse_den, sens, verify_ref, acc, acc_train, agree,
                         write_fid, weight_fid, rmse, sens_fid, readback_fid, counts, dev_g,
                         tiles, dev_map):
    """One parallel task of :func:`simulate_chunk_core`: a block of consecutive instances of
    one solution on the core path (no circuit). A separate serial function so that numba's
    parfor pass sees a tiny loop body (compiling the whole pipeline inside ``prange`` took
    minutes)."""
    s, first, last, n_layers, max_in, max_out, width, n_dev = _block_geometry(
        job, n, block, layer_in, layer_out)
    n_samp = max(X_eval.shape[1], X_train.shape[1])
    inv_dg = 1.0 / fp[F_DG_NOM]
    n_words = _round4(_WORDS_DEVICE * n_dev)
    words, g, correct_dev, weff, raw0, act_a, act_b, pred, stream, offs, diff, md = (
        _block_scratch(n_layers, max_in, max_out, width, n_samp, n_words))
    devp = np.empty((3, n_dev))
    flat = (np.empty(n_dev, np.uint8), np.empty(n_dev, np.uint8), np.empty(n_dev),
            np.empty(n_dev), np.empty(n_dev, np.bool_), np.empty(n_dev, np.int64),
            np.empty(n_dev, np.uint8))
    zbuf = np.empty(_WORDS_DEVICE * n_dev)
    tails = np.empty(_WORDS_DEVICE * n_dev, np.int64)
    tbuf = np.empty(_WORDS_DEVICE * n_dev)
    arr_in, arr_out, g_arr, ok_arr = _tile_scratch(tiles)
    for local in range(first, last):
        instance = start + local
        good_dev, good_w, nd, nw, cnt = _simulate_instance(
            k0, k1, sol_offset + s, instance, states[s], arr_in, arr_out, fp, ip,
            words, zbuf, tails, tbuf, devp, flat, g_arr, ok_arr, stream, dev_map)
        _untile(tiles, g_arr, ok_arr, g, correct_dev)
        # effective weights: differential conductance in units of nominal G_P - G_AP
        for l in range(n_layers):
            for f in range(layer_in[l]):
                for j in range(layer_out[l]):
                    weff[l, f, j] = (g[l, f, 2 * j] - g[l, f, 2 * j + 1]) * inv_dg
        _record_metrics(s, local, good_dev, good_w, nd, nw, cnt, 0, correct_dev, g, layer_in,
                        layer_out, ip, sens, gram, g0, rmse_den, diff, md, write_fid,
                        weight_fid, rmse, sens_fid, counts, dev_g)
        _linear_inference(s, local, weff, offs, layer_in, layer_out, bias, fp, ip, gnorms,
                          X_eval, y_eval, sw_eval, X_train, y_train, sw_train, raw0, act_a,
                          act_b, pred, acc, acc_train, agree)


@kernel
def _simulate_block_circuit(job, k0, k1, sol_offset, start, n, block, states, layer_in,
                            layer_out, bias, fp, ip, gnorms, X_eval, y_eval, sw_eval, X_train,
                            y_train, sw_train, gram, g0, rmse_den, sens, verify_ref, acc,
                            acc_train, agree, write_fid, weight_fid, rmse, sens_fid,
                            readback_fid, counts, dev_g, tiles, dev_map):
    """One parallel task of :func:`simulate_chunk_circuit`: as :func:`_simulate_block_core`
    with the full physical arrays (write order, disturb, verify, line resistance, read
    non-idealities)."""
    s, first, last, n_layers, max_in, max_out, width, n_dev = _block_geometry(
        job, n, block, layer_in, layer_out)
    rows = ip[I_ROWS]
    cols = ip[I_COLS]
    arr_in, arr_out, g_arr, ok_arr = _tile_scratch(tiles)
    n_arr = arr_in.shape[0]  # physical arrays: the layers, or their tiles
    n_un = n_arr * rows * cols - n_dev
    n_words = _round4(max(_WORDS_DEVICE * n_dev, _WORDS_UNUSED * n_un))
    n_gain = gnorms.shape[0]
    n_eval = X_eval.shape[1]
    n_train = X_train.shape[1]
    n_samp = max(n_eval, n_train)
    eval_train = ip[I_EVAL_TRAIN] != 0
    hidden_sign = ip[I_HIDDEN_SIGN] != 0
    out_tanh = ip[I_OUT_TANH] != 0
    slow_read = ip[I_BIAS_TMR] != 0 or fp[F_NOISE] > 0.0
    work_size = max(_transfer_work_size(rows, cols), _nonlinear_work_size(rows, cols),
                    _verify_work_size(rows, cols))
    words, g, correct_dev, weff, raw0, act_a, act_b, pred, stream, offs, diff, md = (
        _block_scratch(n_layers, max_in, max_out, width, n_samp, n_words))
    cells = (np.zeros((n_arr, rows, cols), np.uint8),
             np.zeros((n_arr, rows, cols), np.uint8),
             np.zeros((n_arr, rows, cols)), np.zeros((n_arr, rows, cols)),
             np.zeros((n_arr, rows, cols)), np.zeros((n_arr, rows, cols)),
             np.zeros((n_arr, rows, cols)), np.zeros((n_arr, rows, cols)),
             np.zeros((n_arr, rows, cols)), np.zeros((n_arr, rows, cols)))
    gref = np.zeros((n_arr, rows + 1, cols))
    gscr = np.empty((rows, cols))
    gp_read = np.zeros((n_arr, rows, cols))
    wscr = (np.zeros((rows, cols)), np.zeros((rows, cols)), np.zeros((rows, cols)),
            np.zeros(rows), np.zeros(cols), np.empty(_write_work_size(rows, cols)),
            np.zeros(max(rows + cols, (rows - 1) * (cols - 1))),
            np.zeros(max(rows + cols, (rows - 1) * (cols - 1))))
    st_read_p = np.zeros((n_arr, rows, cols), np.uint8)
    order = np.empty(rows * cols, np.int64)
    n_z = max(_WORDS_DEVICE * n_dev, 5 * n_un)
    zscr = (np.empty(_WORDS_DEVICE * n_dev), np.empty(_WORDS_SWITCHING * n_dev),
            np.empty(5 * n_un), np.empty(n_z, np.int64), np.empty(n_z))
    st_ver = np.zeros(11, np.uint64)
    st_read = np.zeros(11, np.uint64)
    work = np.empty(work_size)
    T_all = np.zeros((n_arr, cols, rows))
    vrow = np.empty(rows)
    cur = np.empty(cols)
    act = np.zeros(max(rows, width))
    nxt = np.empty(max_out)
    for local in range(first, last):
        instance = start + local
        good_dev, good_w, nd, nw, readback, cnt = _simulate_instance_circuit(
            k0, k1, sol_offset + s, instance, states[s], arr_in, arr_out, fp, ip,
            words, zscr, cells, gref, gscr, verify_ref[s], order, stream, st_ver, work, wscr,
            dev_map)
        readback_fid[s, local] = readback / nd
        for a in range(n_arr):
            l = tiles[a, 0]
            r0 = tiles[a, 1]
            c0 = tiles[a, 2]
            _circuit_weights(a, r0, c0 // 2, arr_in[a], arr_out[a], cells[9], fp, T_all[a],
                             work, weff[l])
            for r in range(arr_in[a]):
                for c in range(2 * arr_out[a]):
                    correct_dev[l, r0 + r, c0 + c] = (cells[0][a, r, c] == states[s, a, r, c]
                                                      and _is_healthy(cells[1][a, r, c]))
                    g[l, r0 + r, c0 + c] = T_all[a, c, r]
        stream_init(st_read, k0, k1, LANE_READ, sol_offset + s, instance)
        if fp[F_OFFSET] > 0.0:
            for l in range(n_layers):
                for j in range(layer_out[l]):
                    offs[l, j] = fp[F_OFFSET] * normal_ppf(
                        u32_to_uniform_jit(float(stream_u32(st_read))))
        nonconv = cnt[C_NONCONVERGED]  # write-bias solves, then reads
        if slow_read:
            _read_devices(cells, fp, gp_read, st_read_p)
            for gi in range(n_gain):
                c_ok, c_ag, nc = _forward_slow(
                    layer_in, layer_out, bias[s], offs, X_eval, y_eval, sw_eval[s, gi],
                    gnorms[gi], hidden_sign, fp[F_THRESHOLD], out_tanh, cells, gp_read,
                    st_read_p, fp, ip, T_all, st_read, work, vrow, cur, act, nxt,
                    tiles)
                acc[s, local, gi] = c_ok / n_eval
                agree[s, local, gi] = c_ag / n_eval
                nonconv += nc
                if eval_train:
                    c_ok, c_ag, nc = _forward_slow(
                        layer_in, layer_out, bias[s], offs, X_train, y_train,
                        sw_train[s, gi], gnorms[gi], hidden_sign, fp[F_THRESHOLD], out_tanh,
                        cells, gp_read, st_read_p, fp, ip, T_all, st_read, work, vrow, cur,
                        act, nxt, tiles)
                    acc_train[s, local, gi] = c_ok / n_train
                    nonconv += nc
        else:
            _linear_inference(s, local, weff, offs, layer_in, layer_out, bias, fp, ip, gnorms,
                              X_eval, y_eval, sw_eval, X_train, y_train, sw_train, raw0, act_a,
                              act_b, pred, acc, acc_train, agree)
        _record_metrics(s, local, good_dev, good_w, nd, nw, cnt, nonconv, correct_dev, g,
                        layer_in, layer_out, ip, sens, gram, g0, rmse_den, diff, md, write_fid,
                        weight_fid, rmse, sens_fid, counts, dev_g)


# The two parallel shells. One per path, so that a study without circuit effects never
# compiles the circuit solver (about two thirds of a cold compile).
_CHUNK_DOC = """Simulate instances ``start .. start + n - 1`` of every solution given{}.

    ``sol_offset`` is the global index of ``states[0]`` (it keys the random streams).
    Shapes: states (S, A, R, C) uint8, the target states of the A physical arrays (the
    layers' tiles, :func:`mcmtj.physics.array.tile_layout`; the layers when untiled);
    tiles (A, 5) int64, per array its layer, first input row, first column, rows and
    columns used; dev_map (n_dev, 3): a measured die's (G_P S, TMR0, defect code) per used
    device in array order, or (0, 3); bias (S, L, O); X_* (F, N) row voltages / V_read;
    sw_* (S, G, N) software predictions; gram (F, F) = X_eval X_eval^T; g0 (S, R, C)
    nominal layer-0 conductances; rmse_den (S,); sens (S, n_dev) or (S, 0); verify_ref
    (S, 2, L, rows, cols) floating-verify reference currents or (S, 0, 0, 0, 0). Outputs: acc,
    acc_train, agree (S, n, G); write_fid, weight_fid, rmse, sens_fid, readback_fid (S, n);
    counts (S, n, N_COUNTS); dev_g (S, n, n_dev) effective conductances of the used cells
    (opt-in: (S, 0, 0) records none).
    """


@parallel_kernel
def simulate_chunk_core(k0, k1, sol_offset, start, n, block, states, layer_in, layer_out, bias,
                        fp, ip, gnorms, X_eval, y_eval, sw_eval, X_train, y_train, sw_train,
                        gram, g0, rmse_den, sens, verify_ref, acc, acc_train, agree, write_fid,
                        weight_fid, rmse, sens_fid, readback_fid, counts, dev_g, tiles, dev_map):
    n_sol = states.shape[0]
    for job in prange(n_sol * ((n + block - 1) // block)):
        _simulate_block_core(job, k0, k1, sol_offset, start, n, block, states, layer_in,
                             layer_out, bias, fp, ip, gnorms, X_eval, y_eval, sw_eval, X_train,
                             y_train, sw_train, gram, g0, rmse_den, sens, verify_ref, acc,
                             acc_train, agree, write_fid, weight_fid, rmse, sens_fid,
                             readback_fid, counts, dev_g, tiles, dev_map)


@parallel_kernel
def simulate_chunk_circuit(k0, k1, sol_offset, start, n, block, states, layer_in, layer_out,
                           bias, fp, ip, gnorms, X_eval, y_eval, sw_eval, X_train, y_train,
                           sw_train, gram, g0, rmse_den, sens, verify_ref, acc, acc_train, agree,
                           write_fid, weight_fid, rmse, sens_fid, readback_fid, counts, dev_g,
                           tiles, dev_map):
    n_sol = states.shape[0]
    for job in prange(n_sol * ((n + block - 1) // block)):
        _simulate_block_circuit(job, k0, k1, sol_offset, start, n, block, states, layer_in,
                                layer_out, bias, fp, ip, gnorms, X_eval, y_eval, sw_eval,
                                X_train, y_train, sw_train, gram, g0, rmse_den, sens,
                                verify_ref, acc, acc_train, agree, write_fid, weight_fid, rmse,
                                sens_fid, readback_fid, counts, dev_g, tiles, dev_map)


simulate_chunk_core.__doc__ = _CHUNK_DOC.format(" on the core path (``ip[I_CIRCUIT] == 0``)")
simulate_chunk_circuit.__doc__ = _CHUNK_DOC.format(
    " on the full-array circuit path (``ip[I_CIRCUIT] != 0``)")


def simulate_chunk(*args):
    """Dispatch to :func:`simulate_chunk_core` or :func:`simulate_chunk_circuit` by
    ``ip[I_CIRCUIT]`` (arguments as theirs; ``ip`` is the 12th)."""
    ip = args[11]
    return (simulate_chunk_circuit if ip[I_CIRCUIT] != 0 else simulate_chunk_core)(*args)
