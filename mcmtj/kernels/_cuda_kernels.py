"""numba.cuda twin of the fused Monte Carlo kernel (``mcmtj.kernels._engine_kernels``).

One GPU thread simulates one (solution, instance): sample devices -> write ->
ideal read -> inference -> metrics, drawing exactly the words of the CPU kernel
from the same Philox lanes, counters and keys (``mcmtj.numerics._rng``), so both backends
give the same instances for the same seed.

Reuse: functions that are plain arithmetic are compiled from the very source the
CPU kernels use (``_rng._philox4x32``, ``_rng.u32_to_uniform``, the central part of
the normal quantile, the switching probability, the WER-table lookup, defect
classification, stuck states, final conductance). Functions whose CPU versions call the branch-free
``mcmtj.numerics._fastmath`` bit tricks or other njit dispatchers have twins here that use
``math.log``/``math.exp``/``math.tanh``, which the GPU evaluates natively; they agree
with the CPU ones to a few ulp, hence the 1e-6 relative tolerance on floating
results (integer results and decisions on random words are identical).

Importing this module needs ``numba.cuda`` (numba-cuda, or the simulator with
``NUMBA_ENABLE_CUDASIM=1``) but no GPU: kernels compile on first launch.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float64, uint64

from mcmtj.kernels import _engine_kernels as K
from mcmtj.numerics import _rng
from mcmtj.physics.array import (
    WRITE_PHYSICS,
    WRITE_TABLE,
    _drive_current,
    _final_conductance,
    _is_healthy,
    _stuck_state,
)
from mcmtj.physics.device import (
    DEFECT_OPEN,
    DEFECT_SHORT,
    DEFECT_STUCK_AP,
    DEFECT_STUCK_P,
    MIN_DIAMETER,
    STATE_AP,
    STATE_P,
    _classify_defect_jit,
    _switching_probability_jit,
    _table_switching_probability,
    _tmr_at_bias,
)

__all__ = ["THREADS_PER_BLOCK", "N_COUNTS", "kernel_for", "kernel_signature", "local_sizes"]

#: threads per CUDA block of the simulation kernel
THREADS_PER_BLOCK = 128

# --- constants the kernel reads as compile-time globals ---------------------------
_LANE_SHIFT = np.uint64(26)
_MASK32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_BASE_DEVICE = np.uint64(_rng.LANE_DEVICE) << _LANE_SHIFT
_BASE_SWITCHING = np.uint64(_rng.LANE_SWITCHING) << _LANE_SHIFT
_BASE_DEFECT = np.uint64(_rng.LANE_DEFECT) << _LANE_SHIFT
_BASE_WRITE = np.uint64(_rng.LANE_WRITE) << _LANE_SHIFT
_BASE_INSTANCE = np.uint64(_rng.LANE_INSTANCE) << _LANE_SHIFT
_BASE_RESET = np.uint64(_rng.LANE_RESET) << _LANE_SHIFT
_BASE_DIE = np.uint64(_rng.LANE_DIE) << _LANE_SHIFT
_W_TAIL_LOW = np.uint64(_rng._W_TAIL_LOW)
_W_TAIL_HIGH = np.uint64(_rng._W_TAIL_HIGH)
_P_LOW = _rng._P_LOW
_ONE = np.uint64(1)

(F_D0, F_SD, F_RA0, F_SRA, F_TMR0, F_STMR, F_VH, F_DSAT, F_DC, F_SDELTA, F_JC, F_JCASYM,
 F_SJC, F_TAU0, F_TAUD, F_BETA, F_STUCK_P, F_STUCK_AP, F_SHORT, F_OPEN, F_DISPERSION,
 F_RSHORT, F_ERROR_RATE, F_VW, F_TW, F_DG_NOM, F_THRESHOLD) = (
    K.F_D0, K.F_SD, K.F_RA0, K.F_SRA, K.F_TMR0, K.F_STMR, K.F_VH, K.F_DSAT, K.F_DC,
    K.F_SDELTA, K.F_JC, K.F_JCASYM, K.F_SJC, K.F_TAU0, K.F_TAUD, K.F_BETA, K.F_STUCK_P,
    K.F_STUCK_AP, K.F_SHORT, K.F_OPEN, K.F_DISPERSION, K.F_RSHORT, K.F_ERROR_RATE, K.F_VW,
    K.F_TW, K.F_DG_NOM, K.F_THRESHOLD)
(F_DIE_D, F_DIE_RA, F_DIE_TMR, F_DIE_JC, F_GRAD_RA, F_GRAD_D) = (
    K.F_DIE_D, K.F_DIE_RA, K.F_DIE_TMR, K.F_DIE_JC, K.F_GRAD_RA, K.F_GRAD_D)
(I_VARIATION, I_MODE, I_INIT_RANDOM, I_DEFECTS, I_HIDDEN_SIGN, I_OUT_TANH, I_EVAL_TRAIN,
 I_SENSITIVITY, I_RESET, I_ROWS, I_COLS) = (
    K.I_VARIATION, K.I_MODE, K.I_INIT_RANDOM, K.I_DEFECTS, K.I_HIDDEN_SIGN, K.I_OUT_TANH,
    K.I_EVAL_TRAIN, K.I_SENSITIVITY, K.I_RESET, K.I_ROWS, K.I_COLS)
#: counter columns of this kernel's ``counts`` output (mapped to result names by mcmtj.run.cuda)
(C_STUCK, C_SHORT, C_OPEN, C_WRITE_ERRORS, C_DISTURBS, C_PULSES, C_RESET_ERRORS,
 N_COUNTS) = range(8)

# --- device functions compiled from the CPU kernels' own source -------------------
_device = cuda.jit(device=True)
philox4x32 = _device(_rng._philox4x32)
u32_to_uniform = _device(_rng.u32_to_uniform)
_ppf_central = _device(_rng._ppf_central.py_func)
_tail_rational = _device(_rng._tail_rational)
switching_probability = _device(_switching_probability_jit.py_func)
classify_defect = _device(_classify_defect_jit.py_func)
stuck_state = _device(_stuck_state.py_func)
final_conductance = _device(_final_conductance.py_func)
is_healthy = _device(_is_healthy.py_func)
tmr_at_bias = _device(_tmr_at_bias)
drive_current = _device(_drive_current)
table_switching_probability = _device(_table_switching_probability)
_N_FP = K.N_FP
F_TABLE_N_AP, F_TABLE_N_P = K.F_TABLE_N_AP, K.F_TABLE_N_P


# --- twins of CPU functions that use _fastmath or call other njit functions -------
@_device
def ppf_tail(u):
    """Tail branch of Acklam's normal quantile (twin of ``_rng._ppf_tail``, libm log)."""
    lower = u < 0.5
    tail = _tail_rational(math.sqrt(-2.0 * math.log(u if lower else 1.0 - u)))
    return tail if lower else -tail


@_device
def normal_ppf(u):
    """Standard normal quantile of ``u`` (twin of ``_rng.normal_ppf``)."""
    if u < _P_LOW or u > 1.0 - _P_LOW:
        return ppf_tail(u)
    return _ppf_central(u)


@_device
def normal_from_word(word):
    """Normal of one 32-bit word (held in a uint64), as ``_rng.normals_from_words``:
    the central/tail choice is made on the word, with the CPU's word bounds."""
    u = u32_to_uniform(word)
    if word <= _W_TAIL_LOW or word >= _W_TAIL_HIGH:
        return ppf_tail(u)
    return _ppf_central(u)


@_device
def parallel_conductance(z_diameter, z_ra, diameter, diameter_sigma, resistance_area,
                         resistance_area_sigma):
    """Twin of ``device._sample_parallel_conductance_jit``: ``(g_parallel, d)``."""
    d = diameter + diameter_sigma * z_diameter
    d = MIN_DIAMETER if d < MIN_DIAMETER else d
    ra = resistance_area * math.exp(resistance_area_sigma * z_ra)
    return (math.pi / 4.0) * d * d / ra, d


@_device
def fill_blocks(out, base, first, n_blocks, c1, c2, c3, k0, k1):
    """Words of Philox blocks ``first .. first + n_blocks - 1`` of the lane ``base``, four
    per block, into ``out`` (a thread's slice of the lane, as ``_rng.fill_lane`` lays it)."""
    for b in range(n_blocks):
        w0, w1, w2, w3 = philox4x32(base | (first + uint64(b)), c1, c2, c3, k0, k1)
        out[4 * b] = w0
        out[4 * b + 1] = w1
        out[4 * b + 2] = w2
        out[4 * b + 3] = w3


@_device
def stream_init(st, k0, k1, base, solution, instance):
    """Twin of ``_rng.stream_init`` (``base`` = lane << 26, already shifted)."""
    st[0] = k0
    st[1] = k1
    st[2] = base
    st[3] = uint64(instance) & _MASK32
    st[4] = uint64(instance) >> _S32
    st[5] = uint64(solution)
    st[10] = 4


@_device
def stream_u32(st):
    """Twin of ``_rng.stream_u32``: next 32-bit word of a stream, as uint64."""
    pos = np.int64(st[10])
    if pos >= 4:
        w0, w1, w2, w3 = philox4x32(st[2], st[3], st[4], st[5], st[0], st[1])
        st[2] += _ONE
        st[6] = w0
        st[7] = w1
        st[8] = w2
        st[9] = w3
        pos = 0
    st[10] = uint64(pos + 1)
    return st[6 + pos]


@_device
def sample_gamma(shape, st):
    """Twin of ``device._sample_gamma_jit`` (Marsaglia-Tsang, same word consumption)."""
    boost = 1.0
    if shape < 1.0:
        boost = u32_to_uniform(stream_u32(st)) ** (1.0 / shape)
        shape += 1.0
    d = shape - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        x = normal_ppf(u32_to_uniform(stream_u32(st)))
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        u = u32_to_uniform(stream_u32(st))
        if math.log(u) < 0.5 * x * x + d - d * v + d * math.log(v):
            return boost * d * v


@_device
def sample_rate(mean, dispersion, st):
    """Twin of ``device._sample_rate_jit``: per-instance Beta defect rate."""
    if dispersion == 0.0 or mean == 0.0 or mean == 1.0:
        return mean
    concentration = 1.0 / dispersion - 1.0
    a = sample_gamma(mean * concentration, st)
    b = sample_gamma((1.0 - mean) * concentration, st)
    return a / (a + b)


@_device
def die_offsets(k0, k1, solution, instance, fp, st):
    """Twin of ``_engine_kernels._die_offsets`` (same five words of the die lane)."""
    if (fp[F_DIE_D] == 0.0 and fp[F_DIE_RA] == 0.0 and fp[F_DIE_TMR] == 0.0
            and fp[F_DIE_JC] == 0.0 and fp[F_GRAD_RA] == 0.0 and fp[F_GRAD_D] == 0.0):
        return 0.0, 1.0, 0.0, 1.0, 1.0, 0.0
    stream_init(st, k0, k1, _BASE_DIE, solution, instance)
    z_d = normal_ppf(u32_to_uniform(stream_u32(st)))
    z_ra = normal_ppf(u32_to_uniform(stream_u32(st)))
    z_tmr = normal_ppf(u32_to_uniform(stream_u32(st)))
    z_jc = normal_ppf(u32_to_uniform(stream_u32(st)))
    phi = 2.0 * math.pi * u32_to_uniform(stream_u32(st))
    jcf = 1.0 + fp[F_DIE_JC] * z_jc
    return (fp[F_DIE_D] * z_d, math.exp(fp[F_DIE_RA] * z_ra), fp[F_DIE_TMR] * z_tmr,
            jcf if jcf > 1e-6 else 1e-6, math.cos(phi), math.sin(phi))


@_device
def device_params(z_d, z_ra, z_tmr, r, c, rows, cols, fp, dd, ra_die, dtmr, cphi, sphi):
    """Twin of ``_engine_kernels._device_params``: (G_P, diameter, TMR0) of cell (r, c)."""
    u = ((c + 0.5) / cols - 0.5) * cphi + ((r + 0.5) / rows - 0.5) * sphi
    d_nom = fp[F_D0] * (1.0 + fp[F_GRAD_D] * u) + dd
    ra_nom = fp[F_RA0] * (1.0 + fp[F_GRAD_RA] * u) * ra_die
    g_p, diam = parallel_conductance(z_d, z_ra, d_nom, fp[F_SD], ra_nom, fp[F_SRA])
    tmr = fp[F_TMR0] + dtmr + fp[F_STMR] * z_tmr
    return g_p, diam, 0.0 if tmr < 0.0 else tmr


@_device
def table_probability(fp, state, voltage):
    """Twin of ``_engine_kernels._table_p``: the WER table packed after ``fp[N_FP]``."""
    n_ap = np.int64(fp[F_TABLE_N_AP])
    if state == STATE_AP:
        return table_switching_probability(fp, _N_FP, n_ap, voltage)
    return table_switching_probability(fp, _N_FP + 2 * n_ap, np.int64(fp[F_TABLE_N_P]),
                                       voltage)


@_device
def pulse_switch_probability_physics(state, g_parallel, tmr_write, ic_ap_to_p, ic_p_to_ap, delta,
                                     voltage, pulse_width, tau0, tau_d, beta):
    """Physics branch of ``array._pulse_switch_probability``."""
    current, ic = drive_current(state, voltage, g_parallel, tmr_write, ic_ap_to_p, ic_p_to_ap)
    return switching_probability(current, ic, delta, pulse_width, tau0, tau_d, beta)


@_device
def activate(value, kind, threshold):
    """Neuron activation of ``value`` = sum / gnorm + bias (0: tanh, 1: sign, 2: identity),
    as ``_engine_kernels._activate_row``."""
    if kind == 0:
        return math.tanh(value)
    if kind == 1:
        return 1.0 if value >= threshold else -1.0
    return value


@_device
def forward_sample(weff, max_in, max_out, layer_in, layer_out, bias_s, raw0, act, gnorm,
                   hidden_kind, out_kind, threshold):
    """Class predicted for one sample whose layer-0 sums are in ``raw0``; ``act`` (2, width)
    is scratch. Sums run in increasing input index like the CPU kernel; first max wins."""
    n_layers = layer_in.shape[0]
    n0 = layer_out[0]
    kind = out_kind if n_layers == 1 else hidden_kind
    for j in range(n0):
        act[0, j] = activate(raw0[j] / gnorm + bias_s[0, j], kind, threshold)
    cur = 0
    for l in range(1, n_layers):
        kind = out_kind if l == n_layers - 1 else hidden_kind
        base = l * max_in * max_out
        for j in range(layer_out[l]):
            a = 0.0
            for f in range(layer_in[l]):
                a += act[cur, f] * weff[base + f * max_out + j]
            act[1 - cur, j] = activate(a / gnorm + bias_s[l, j], kind, threshold)
        cur = 1 - cur
    n_out = layer_out[n_layers - 1]
    best = 0
    for k in range(1, n_out):
        if act[cur, k] > act[cur, best]:
            best = k
    return best


@_device
def evaluate_split(weff, max_in, max_out, layer_in, layer_out, bias_s, X, y, sw, gnorms,
                   hidden_kind, out_kind, threshold, raw0, act, correct_out, agree_out,
                   with_agreement):
    """Count correct (and software-agreeing) predictions per gain into the output slots
    ``correct_out[g]`` / ``agree_out[g]`` (this thread's own, so no races), then divide."""
    n_gain = gnorms.shape[0]
    n_samples = X.shape[1]
    n_in0 = layer_in[0]
    n_out0 = layer_out[0]
    for gi in range(n_gain):
        correct_out[gi] = 0.0
        if with_agreement:
            agree_out[gi] = 0.0
    for smp in range(n_samples):
        # layer-0 sums do not depend on the gain: once per sample for the whole grid
        for j in range(n_out0):
            a = 0.0
            for f in range(n_in0):
                a += X[f, smp] * weff[f * max_out + j]
            raw0[j] = a
        for gi in range(n_gain):
            best = forward_sample(weff, max_in, max_out, layer_in, layer_out, bias_s, raw0, act,
                                  gnorms[gi], hidden_kind, out_kind, threshold)
            if best == y[smp]:
                correct_out[gi] += 1.0
            if with_agreement and best == sw[gi, smp]:
                agree_out[gi] += 1.0
    for gi in range(n_gain):
        correct_out[gi] /= n_samples
        if with_agreement:
            agree_out[gi] /= n_samples


def local_sizes(layer_in, layer_out) -> tuple[int, int, int]:
    """Per-thread scratch sizes (rounded up to limit recompilations): effective weights
    (layers x max_in x max_out), layer-0 conductance errors (n_in0 x 2 n_out0), and the
    activation width."""
    max_in, max_out = int(max(layer_in)), int(max(layer_out))
    n_w = len(layer_in) * max_in * max_out
    n_d0 = int(layer_in[0]) * 2 * int(layer_out[0])

    def up(x, m):
        return max(m, (x + m - 1) // m * m)

    return up(n_w, 64), up(n_d0, 64), up(max(max_in, max_out), 8)


def _make_kernel(n_weff: int, n_diff0: int, width: int):
    """Python function of the simulation kernel with the scratch sizes baked in."""

    def simulate_kernel(k0, k1, sol_offset, start, n, states, layer_in, layer_out, bias, fp, ip,
                        gnorms, X_eval, y_eval, sw_eval, X_train, y_train, sw_train, gram, g0,
                        rmse_den, sens, acc, acc_train, agree, write_fid, weight_fid, rmse,
                        sens_fid, counts):
        """Instances ``start .. start + n - 1`` of solutions ``sol_offset + s``, one per
        thread; arguments as ``_engine_kernels.simulate_chunk`` (``block`` aside)."""
        tid = cuda.grid(1)
        n_sol = states.shape[0]
        if tid >= n_sol * n:
            return
        s = tid // n
        local = tid - s * n
        instance = start + local
        solution = sol_offset + s
        c1 = uint64(instance) & _MASK32
        c2 = uint64(instance) >> _S32
        c3 = uint64(solution)

        n_layers = layer_in.shape[0]
        max_in = 0
        max_out = 0
        for l in range(n_layers):
            max_in = max(max_in, layer_in[l])
            max_out = max(max_out, layer_out[l])
        variation = ip[I_VARIATION] != 0
        mode = ip[I_MODE]
        physics = mode == WRITE_PHYSICS
        init_random = ip[I_INIT_RANDOM] != 0
        reset = ip[I_RESET] != 0
        draw_reset = reset and mode != 0
        use_write_words = mode != 0 or init_random
        rows = ip[I_ROWS]
        cols = ip[I_COLS]
        switching_spread = variation and physics and (fp[F_SDELTA] > 0.0 or fp[F_SJC] > 0.0)

        rate_sp = fp[F_STUCK_P]
        rate_sap = fp[F_STUCK_AP]
        rate_short = fp[F_SHORT]
        rate_open = fp[F_OPEN]
        defects_on = ip[I_DEFECTS] != 0
        if defects_on and fp[F_DISPERSION] > 0.0:
            st = cuda.local.array(11, uint64)
            stream_init(st, k0, k1, _BASE_INSTANCE, solution, instance)
            rate_sp = sample_rate(rate_sp, fp[F_DISPERSION], st)
            rate_sap = sample_rate(rate_sap, fp[F_DISPERSION], st)
            rate_short = sample_rate(rate_short, fp[F_DISPERSION], st)
            rate_open = sample_rate(rate_open, fp[F_DISPERSION], st)
        any_defect = defects_on and (rate_sp + rate_sap + rate_short + rate_open) > 0.0
        st_die = cuda.local.array(11, uint64)
        dd, ra_die, dtmr, jcf, cphi, sphi = die_offsets(k0, k1, solution, instance, fp, st_die)

        g_short = 1.0 / fp[F_RSHORT]
        vh = fp[F_VH]
        vw = fp[F_VW]
        inv_dg = 1.0 / fp[F_DG_NOM]
        sens_on = ip[I_SENSITIVITY] != 0

        # words of four consecutive devices: 3 device + 2 switching + 1 defect + 2 write each
        w_dev = cuda.local.array(12, uint64)
        w_sw = cuda.local.array(8, uint64)
        w_def = cuda.local.array(4, uint64)
        w_wr = cuda.local.array(8, uint64)
        w_rs = cuda.local.array(4, uint64)
        weff = cuda.local.array(n_weff, float64)
        diff0 = cuda.local.array(n_diff0, float64)

        n_stuck = 0
        n_short = 0
        n_open = 0
        n_err = 0
        n_pulses = 0
        n_reset_err = 0
        good_dev = 0
        good_w = 0
        n_w = 0
        lost = 0.0
        total = 0.0
        prev_ok = False
        prev_g = 0.0
        k = 0
        for l in range(n_layers):
            c_l = 2 * layer_out[l]
            for r in range(layer_in[l]):
                for c in range(c_l):
                    q = k & 3
                    if q == 0:
                        grp = uint64(k >> 2)
                        if variation:
                            fill_blocks(w_dev, _BASE_DEVICE, uint64(3) * grp, 3, c1, c2, c3,
                                        k0, k1)
                        if switching_spread:
                            fill_blocks(w_sw, _BASE_SWITCHING, uint64(2) * grp, 2, c1, c2, c3,
                                        k0, k1)
                        if any_defect:
                            fill_blocks(w_def, _BASE_DEFECT, grp, 1, c1, c2, c3, k0, k1)
                        if use_write_words:
                            fill_blocks(w_wr, _BASE_WRITE, uint64(2) * grp, 2, c1, c2, c3,
                                        k0, k1)
                        if draw_reset:
                            fill_blocks(w_rs, _BASE_RESET, grp, 1, c1, c2, c3, k0, k1)

                    z0 = 0.0
                    z1 = 0.0
                    z2 = 0.0
                    if variation:
                        z0 = normal_from_word(w_dev[3 * q])
                        z1 = normal_from_word(w_dev[3 * q + 1])
                        z2 = normal_from_word(w_dev[3 * q + 2])
                    g_p, diam, tmr = device_params(z0, z1, z2, r, c, rows, cols, fp, dd, ra_die,
                                                   dtmr, cphi, sphi)

                    defect = 0
                    if any_defect:
                        defect = classify_defect(u32_to_uniform(w_def[q]), rate_sp, rate_sap,
                                                 rate_short, rate_open)
                        if defect == DEFECT_STUCK_P or defect == DEFECT_STUCK_AP:
                            n_stuck += 1
                        elif defect == DEFECT_SHORT:
                            n_short += 1
                        elif defect == DEFECT_OPEN:
                            n_open += 1
                    fab = STATE_AP
                    if init_random:
                        fab = STATE_P if (w_wr[2 * q] & _ONE) != 0 else STATE_AP
                    state = stuck_state(defect, fab)
                    target = states[s, l, r, c]
                    stuck = defect == DEFECT_STUCK_P or defect == DEFECT_STUCK_AP
                    needs_reset = reset and fab == STATE_P and not stuck
                    delta = 0.0
                    ic = 0.0
                    if physics and (needs_reset or (STATE_AP if needs_reset else state) != target):
                        area = (math.pi / 4.0) * diam * diam
                        ratio = diam / fp[F_DC]
                        delta = fp[F_DSAT] * min(1.0, ratio * ratio)
                        jc = fp[F_JC] * jcf
                        if switching_spread:
                            delta *= max(1.0 + fp[F_SDELTA] * normal_ppf(
                                u32_to_uniform(w_sw[2 * q])), 0.0)
                            jc *= max(1.0 + fp[F_SJC] * normal_ppf(
                                u32_to_uniform(w_sw[2 * q + 1])), 1e-6)
                        ic = jc * area
                    if needs_reset:
                        # reset pulse towards AP (twin of _engine_kernels._reset_state)
                        p_reset = 1.0
                        if physics:
                            p_reset = pulse_switch_probability_physics(
                                STATE_P, g_p, tmr_at_bias(tmr, vw, vh), ic, ic * fp[F_JCASYM],
                                delta, vw, fp[F_TW], fp[F_TAU0], fp[F_TAUD], fp[F_BETA])
                        elif mode == WRITE_TABLE:
                            p_reset = table_probability(fp, STATE_P, vw)
                        elif mode != 0:
                            p_reset = 1.0 - fp[F_ERROR_RATE]
                        u_reset = u32_to_uniform(w_rs[q]) if draw_reset else 0.0
                        if u_reset < p_reset:
                            state = STATE_AP
                        elif defect == 0:
                            n_reset_err += 1
                    if state != target:
                        n_pulses += 1
                        p_switch = 1.0
                        if physics:
                            p_switch = pulse_switch_probability_physics(
                                state, g_p, tmr_at_bias(tmr, vw, vh), ic, ic * fp[F_JCASYM], delta,
                                vw, fp[F_TW], fp[F_TAU0], fp[F_TAUD], fp[F_BETA])
                        elif mode == WRITE_TABLE:
                            p_switch = table_probability(fp, state, vw)
                        elif mode != 0:
                            p_switch = 1.0 - fp[F_ERROR_RATE]
                        # ideal mode without random init draws no words: every pulse switches
                        if not use_write_words or u32_to_uniform(w_wr[2 * q + 1]) < p_switch:
                            state = stuck_state(defect, target)
                        if state != target or not is_healthy(defect):
                            n_err += 1
                    ok = state == target and is_healthy(defect)
                    good_dev += ok
                    if sens_on:
                        total += sens[s, k]
                        if not ok:
                            lost += sens[s, k]
                    g = final_conductance(state, defect, g_p, tmr, g_short)
                    if l == 0:
                        diff0[r * c_l + c] = g - g0[s, r, c]
                    if c & 1:
                        weff[(l * max_in + r) * max_out + (c >> 1)] = (prev_g - g) * inv_dg
                        good_w += prev_ok and ok
                        n_w += 1
                    prev_ok = ok
                    prev_g = g
                    k += 1

        write_fid[s, local] = good_dev / k
        weight_fid[s, local] = good_w / n_w
        if sens_on:
            sens_fid[s, local] = 1.0 - lost / total if total > 0.0 else 1.0
        counts[s, local, C_STUCK] = n_stuck
        counts[s, local, C_SHORT] = n_short
        counts[s, local, C_OPEN] = n_open
        counts[s, local, C_WRITE_ERRORS] = n_err
        counts[s, local, C_DISTURBS] = 0
        counts[s, local, C_PULSES] = n_pulses
        counts[s, local, C_RESET_ERRORS] = n_reset_err

        # layer-0 column-current error via the Gram matrix, in the CPU kernel's order
        n0 = layer_in[0]
        c0 = 2 * layer_out[0]
        num = 0.0
        for f in range(n0):
            for c in range(c0):
                m = 0.0
                for h in range(n0):
                    m += gram[f, h] * diff0[h * c0 + c]
                num += diff0[f * c0 + c] * m
        rmse[s, local] = math.sqrt(max(num, 0.0) / rmse_den[s])

        hidden_kind = 1 if ip[I_HIDDEN_SIGN] != 0 else 0
        out_kind = 0 if ip[I_OUT_TANH] != 0 else 2
        threshold = fp[F_THRESHOLD]
        raw0 = cuda.local.array(width, float64)
        act = cuda.local.array((2, width), float64)
        evaluate_split(weff, max_in, max_out, layer_in, layer_out, bias[s], X_eval, y_eval,
                       sw_eval[s], gnorms, hidden_kind, out_kind, threshold, raw0, act,
                       acc[s, local], agree[s, local], True)
        if ip[I_EVAL_TRAIN] != 0:
            evaluate_split(weff, max_in, max_out, layer_in, layer_out, bias[s], X_train,
                           y_train, sw_train[s], gnorms, hidden_kind, out_kind, threshold, raw0,
                           act, acc_train[s, local], acc_train[s, local], False)

    return simulate_kernel


_KERNELS: dict = {}


def kernel_for(n_weff: int, n_diff0: int, width: int):
    """The compiled-on-first-launch CUDA kernel for these scratch sizes (cached)."""
    key = (n_weff, n_diff0, width)
    if key not in _KERNELS:
        _KERNELS[key] = cuda.jit(_make_kernel(*key))
    return _KERNELS[key]


def kernel_signature(args) -> tuple:
    """numba types of the kernel arguments (for ``cuda.compile_ptx`` without a GPU)."""
    import numba

    return tuple(numba.typeof(a) for a in args)
