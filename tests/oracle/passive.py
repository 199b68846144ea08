"""Independent oracle of the passive-array path: one instance, written plainly.

Written from the formulas of design.md ("Device model", "Array model"), the README and the
documented switching model (mcmtj.physics.device.switching_probability's docstring), with
scipy.sparse nodal solves for every circuit question (write pulses, verify reads with sneak
paths, reads with line resistance and bias-dependent TMR). It imports nothing of mcmtj's
physics: only the study config (as plain attributes) and the random-number lanes of
``mcmtj.numerics._rng``, so it reads the same uniforms in the same order as the kernels and
must give the same instance.

Conventions (design.md): state 1 = P, 0 = AP; defects 0 none, 1 stuck-P, 2 stuck-AP,
3 short, 4 open. Array netlist (mcmtj.physics.circuit docstring): row i driven at its left end
(before cell (i, 0)), column j at its bottom end (after cell (m-1, j)), one segment of
r_row / r_col between the end and the first cell and between neighbouring cells; a write
driver adds ``write.r_driver`` in series with the first segment.

Random numbers consumed, in the kernels' layout (mcmtj.numerics._rng lanes):

- device lane: 3 words per used device (diameter, RA, TMR normals), when variation is on;
- switching lane: 2 per used device (barrier, critical current normals), when spread is on;
- defect lane: 1 per used device, when any defect rate is > 0;
- write lane: 2 per used device (initial state bit, first pulse's uniform);
- reset lane: 1 per used device (its reset pulse's uniform), when the reset is stochastic
  (``write.initial = "ap"`` and a mode other than 'ideal');
- die lane: 5 words per instance (diameter, RA, TMR, J_c0 normals, gradient angle), when any
  die-to-die sigma or gradient is non-zero;
- unused lane: 5 normals per unused cell, then 2 words each (defect, initial state), then 1
  each (reset uniform, slot 7 n_unused + u);
- disturb stream: thinning walk (53-bit uniforms) per pulse and candidate group;
- verify stream: random write order (Fisher-Yates), retry pulses, verify-read noise;
- read stream: comparator offsets, then read noise per inference.

Initial states (README "What is modelled"): ``write.initial = "random"`` keeps the
as-fabricated states (bit 0 of the write word: 1 = P); ``"ap"`` starts from them and gives
every device fabricated P a reset pulse towards AP at the nominal write amplitude and width
with the write's switching model (P -> AP direction; ideal: always switches, fixed:
1 - write.error_rate); a failure leaves it P and, for a healthy used device, counts in
``n_reset_errors``; stuck devices keep their stuck state and draw nothing; ``"ap_ideal"``
starts every device exactly AP.

Die-to-die variation (mcmtj.physics.device docstrings): per instance offsets
delta_d = sigma_die_d z_d, an RA factor exp(sigma_die_RA z_RA), delta_TMR = sigma_die_TMR
z_TMR and a J_c0 factor max(1 + sigma_die_Jc z_Jc, 1e-6), and a gradient direction phi =
2 pi u; the cell (r, c) of a rows x cols array sits at u_rc = ((c + 1/2)/cols - 1/2) cos phi
+ ((r + 1/2)/rows - 1/2) sin phi along it, so its nominal diameter is d0 (1 + g_d u_rc) +
delta_d and its nominal RA is RA0 (1 + g_RA u_rc) exp(sigma_die_RA z_RA); device-to-device
variation then acts on these nominal values.

Integrated arrays (``array.kind = "integrated"``, README "Writing a study"): every device
sits behind its own access device, so a write pulse or a verify read solves the same netlist
with every device but the selected one removed (the reference: a device half-way between
nominal G_P and G_AP alone on that cell); inference reads keep every device.

Tiled layers (``array.tile_rows``, ``array.tile_cols``): a layer is cut into tiles of
tile_rows inputs and tile_cols // 2 output pairs, row tiles outer; each tile is its own
rows x cols array, sampled and written as a layer is; a layer's column currents are the sums
of its row tiles' sensed currents (read noise per array column, offsets per output).

Only fixed defect rates (``defects.dispersion = 0``) are covered.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import scipy.sparse.csgraph as csgraph
import scipy.sparse.linalg as spla

from mcmtj.numerics import _rng

P, AP = 1, 0
NONE, STUCK_P, STUCK_AP, SHORT, OPEN = 0, 1, 2, 3, 4
MIN_DIAMETER = 1e-9


# ----------------------------------------------------------------------------- random numbers
class Stream:
    """Sequential words of one lane (the kernels' streams read a lane from its start)."""

    def __init__(self, key, lane, solution, instance):
        self.args = (key, lane, solution, np.array([instance]))
        self.words = np.zeros(0, np.uint32)
        self.pos = 0

    def u32(self):
        if self.pos >= self.words.size:
            n = max(4096, 2 * self.words.size)
            self.words = _rng.lane_words(*self.args, n)[0]
        w = int(self.words[self.pos])
        self.pos += 1
        return w

    def uniform(self):
        return (self.u32() + 0.5) * 2.0**-32

    def uniform53(self):
        a = self.u32() >> 5
        b = self.u32() >> 6
        return ((a * 67108864.0 + b) + 0.5) * 2.0**-53

    def normal(self):
        return float(_rng.normal_ppf_np(np.array([self.uniform()]))[0])


def lane(key, which, solution, instance, n):
    return _rng.lane_words(key, which, solution, np.array([instance]), n)[0]


def uniform(word):
    return (float(word) + 0.5) * 2.0**-32


def normals(words):
    return _rng.words_to_normal_np(np.asarray(words))


# ----------------------------------------------------------------------------- device physics
def tmr_at(tmr0, v, v_h):
    """TMR(V) = TMR0 / (1 + (V / V_h)^2)."""
    return tmr0 / (1.0 + (v / v_h) ** 2)


def switching_probability(current, ic, delta, dev, width):
    """Switching probability of one pulse, 1 - WER (mcmtj.physics.device.switching_probability's
    documented model, written out here): with r = I / I_c0 and B = 5 kT,

    - thermal (Neel-Brown) for r <= r1 = 1 - (B / Delta)^(1/beta) (r1 = 0 if Delta <= B):
      ln WER = -(t/tau0) exp(-Delta (1 - r)^beta);
    - beyond r1 ln WER follows the tangent of that curve at r1:
      ln WER = L1 - s (r - r1), L1 = ln WER_th(r1), s = -L1 Delta beta (1 - r1)^(beta - 1);
    - precessional: P_pr = exp(-(pi^2 Delta / 4) exp(-2 (max(r, 1) - 1) t / tau_D));
    - P = max(1 - WER_thermal-or-crossover, P_pr).
    """
    r = current / ic
    a = width / dev.tau0
    barrier_min = 5.0
    r1 = 1.0 - (barrier_min / delta) ** (1.0 / dev.beta) if delta > barrier_min else 0.0
    if r <= r1:
        log_wer = -a * math.exp(-delta * (1.0 - r) ** dev.beta)
    else:
        l1 = -a * math.exp(-delta * (1.0 - r1) ** dev.beta)
        slope = -l1 * delta * dev.beta * (1.0 - r1) ** (dev.beta - 1.0)
        log_wer = l1 - slope * (r - r1)
    p_thermal = -math.expm1(log_wer)
    p_prec = math.exp(-(math.pi**2 * delta / 4.0)
                      * math.exp(-2.0 * max(r - 1.0, 0.0) * width / dev.tau_d))
    return max(p_thermal, p_prec)


class Cell:
    """One device: its sampled parameters, defect and state."""

    def __init__(self, g_p, diameter, tmr, delta, ic, ic_rev, defect, state):
        self.g_p, self.diameter, self.tmr = g_p, diameter, tmr
        self.delta, self.ic, self.ic_rev = delta, ic, ic_rev
        self.defect, self.state = defect, state

    def conductance(self, study, v=0.0):
        """Conductance at device voltage v (bias-dependent TMR of an AP device)."""
        if self.defect == SHORT:
            return 1.0 / study.defects.r_short
        if self.defect == OPEN:
            return 0.0
        if self.state == P:
            return self.g_p
        return self.g_p / (1.0 + tmr_at(self.tmr, v, study.device.tmr_bias_voltage))

    def push_probability(self, study, v):
        """Probability that a pulse of v volts (> 0) in the direction out of the cell's
        state switches it ('physics' mode; a full pulse or a half-select alike)."""
        dev = study.device
        if self.state == AP:
            current = v * self.g_p / (1.0 + tmr_at(self.tmr, v, dev.tmr_bias_voltage))
            ic = self.ic
        else:
            current = v * self.g_p
            ic = self.ic_rev
        return switching_probability(current, ic, self.delta, dev, study.write.pulse_width)


# ----------------------------------------------------------------------------- circuit
def solve(G, r_row, r_col, r_drv, row_src, col_src):
    """Node voltages (a: row nodes, b: column nodes; m x n) of the crossbar by one sparse
    solve. ``row_src``/``col_src``: driver voltage per line, NaN for an unconnected line.
    Nodes that reach no driver through non-zero conductances carry no current: NaN."""
    m, n = G.shape
    a_id = (np.arange(m * n).reshape(m, n) if r_row > 0
            else np.repeat(np.arange(m)[:, None], n, 1))
    b_id = a_id.max() + 1 + (np.arange(m * n).reshape(m, n) if r_col > 0
                             else np.repeat(np.arange(n)[None, :], m, 0))
    n_nodes = b_id.max() + 1
    p, q, g = [], [], []
    fixed = {}
    extra = n_nodes
    for src, r_line, ends in ((row_src, r_row, a_id[:, 0]), (col_src, r_col, b_id[m - 1, :])):
        for t, v in enumerate(src):
            if np.isnan(v):
                continue
            if r_line + r_drv > 0:  # the driver behind its resistance and first segment
                fixed[extra] = v
                p.append([extra])
                q.append([ends[t]])
                g.append([1.0 / (r_line + r_drv)])
                extra += 1
            else:
                fixed[ends[t]] = v
    if r_row > 0:
        p.append(a_id[:, :-1].ravel())
        q.append(a_id[:, 1:].ravel())
        g.append(np.full(m * (n - 1), 1.0 / r_row))
    if r_col > 0:
        p.append(b_id[:-1, :].ravel())
        q.append(b_id[1:, :].ravel())
        g.append(np.full((m - 1) * n, 1.0 / r_col))
    on = G.ravel() > 0
    p.append(a_id.ravel()[on])
    q.append(b_id.ravel()[on])
    g.append(G.ravel()[on])
    N = extra
    p, q, g = (np.concatenate([np.asarray(x) for x in y]) for y in (p, q, g))
    p, q = p.astype(int), q.astype(int)
    K = sp.coo_matrix((np.concatenate([g, g, -g, -g]),
                       (np.concatenate([p, q, p, q]), np.concatenate([p, q, q, p]))),
                      shape=(N, N)).tocsr()
    is_fixed = np.zeros(N, bool)
    fixed_ids = np.array(sorted(fixed))
    is_fixed[fixed_ids] = True
    free = ~is_fixed
    if np.isnan(row_src).any() or np.isnan(col_src).any():  # floating lines: components
        _, label = csgraph.connected_components(K, directed=False)
        free &= np.isin(label, np.unique(label[is_fixed]))
    x = np.full(N, np.nan)
    x[fixed_ids] = [fixed[f] for f in fixed_ids]
    idx = np.flatnonzero(free)
    if idx.size:
        rhs = -(K[idx][:, fixed_ids] @ x[fixed_ids])
        x[idx] = spla.spsolve(K[idx][:, idx].tocsc(), rhs)
    return x[a_id], x[b_id]


def read_currents(G, r_row, r_col, v_rows):
    """Column currents of a read: rows driven at ``v_rows``, columns at virtual ground."""
    m, n = G.shape
    if r_row == 0 and r_col == 0:
        return G.T @ v_rows
    a, b = solve(G, r_row, r_col, 0.0, v_rows, np.zeros(n))
    return np.nansum(G * (a - b), axis=0)


def transfer(G, r_row, r_col):
    """T (n x m): column currents per volt on each row."""
    m, _ = G.shape
    return np.stack([read_currents(G, r_row, r_col, np.eye(m)[i]) for i in range(m)], axis=1)


def verify_current(G, i, j, v, scheme, r_row, r_col):
    """Current into column j's sense node reading device (i, j) at v."""
    m, n = G.shape
    if scheme == "half":  # unselected lines at v/2, wire resistance neglected (README)
        return v * (G[i, j] + 0.5 * (G[:, j].sum() - G[i, j]))
    row = np.full(m, np.nan)
    col = np.full(n, np.nan)
    row[i], col[j] = v, 0.0
    a, b = solve(G, r_row, r_col, 0.0, row, col)
    return float(np.nansum(G[:, j] * (a[:, j] - b[:, j])))


# ----------------------------------------------------------------------------- one instance
def simulate_instance(study, solutions, data, solution, instance, seed=0, point=0):
    """One instance of one solution at one sweep point (``study`` without a sweep).

    Returns a dict: accuracy, agreement (G,), accuracy_train (G,), write_fidelity,
    weight_fidelity, readback_fidelity, current_rmse, and the counters n_stuck, n_short,
    n_open, n_write_errors, n_disturbs, n_pulses, n_verify_retries, n_nonconverged,
    n_reset_errors.
    """
    dev, dfc, wr, rd = study.device, study.defects, study.write, study.read
    assert dfc.dispersion == 0, "the oracle covers fixed defect rates only"
    key = _rng.instance_key(seed, point)
    rows, cols = study.array.rows, study.array.cols
    layer_targets = [np.asarray(s[solution]) for s in solutions.states]
    n_layers = len(layer_targets)
    # the physical arrays: each layer cut into tiles of tile_rows inputs and tile_cols // 2
    # output pairs (0: the whole dimension), row tiles outer; untiled: one per layer
    placed = []  # (layer, first input, first column, inputs, columns)
    for l, t in enumerate(layer_targets):
        n_in, n_c = t.shape
        step_r = study.array.tile_rows or n_in
        step_c = 2 * (study.array.tile_cols // 2) or n_c
        placed += [(l, r0, c0, min(step_r, n_in - r0), min(step_c, n_c - c0))
                   for r0 in range(0, n_in, step_r) for c0 in range(0, n_c, step_c)]
    targets = [layer_targets[l][r0:r0 + nr, c0:c0 + nc] for l, r0, c0, nr, nc in placed]
    L = len(targets)  # arrays, written and read one by one
    shapes = [t.shape for t in targets]  # (inputs, columns) used on each array
    n_dev = sum(a * b for a, b in shapes)
    n_un = L * rows * cols - n_dev
    physics = wr.mode == "physics"
    spread = dev.variation and physics and (dev.delta_sigma > 0 or dev.jc_sigma > 0)
    rates = (dfc.stuck_p, dfc.stuck_ap, dfc.short, dfc.open)
    any_defect = dfc.enabled and sum(rates) > 0
    r_row = rd.r_row + rd.r_wire
    r_col = rd.r_col + rd.r_wire
    area0 = math.pi / 4 * dev.diameter**2
    g_nom_p = area0 / dev.resistance_area
    g_nom_ap = g_nom_p / (1 + dev.tmr)
    dg_nom = g_nom_p - g_nom_ap
    init_random = wr.initial in ("random", "ap")  # as fabricated (then reset for "ap")
    reset = wr.initial == "ap"
    draw_reset = reset and wr.mode != "ideal"  # an ideal reset always succeeds: no draw

    # --- 0. die-to-die offsets of this instance (5 words of the die lane)
    die_on = any(x != 0.0 for x in (dev.die_diameter_sigma, dev.die_resistance_area_sigma,
                                     dev.die_tmr_sigma, dev.die_jc_sigma, dev.ra_gradient,
                                     dev.diameter_gradient))
    die_d, die_ra, die_tmr, die_jc, cos_phi, sin_phi = 0.0, 1.0, 0.0, 1.0, 1.0, 0.0
    if die_on:
        u_die = [uniform(w) for w in lane(key, _rng.LANE_DIE, solution, instance, 5)]
        z_die = _rng.normal_ppf_np(np.array(u_die[:4]))
        die_d = dev.die_diameter_sigma * z_die[0]
        die_ra = math.exp(dev.die_resistance_area_sigma * z_die[1])
        die_tmr = dev.die_tmr_sigma * z_die[2]
        die_jc = max(1.0 + dev.die_jc_sigma * z_die[3], 1e-6)
        phi = 2.0 * math.pi * u_die[4]
        cos_phi, sin_phi = math.cos(phi), math.sin(phi)

    # --- 1. sample every cell of every array
    z_dev = normals(lane(key, _rng.LANE_DEVICE, solution, instance, 3 * n_dev)) \
        if dev.variation else None
    z_sw = normals(lane(key, _rng.LANE_SWITCHING, solution, instance, 2 * n_dev)) \
        if spread else None
    w_def = lane(key, _rng.LANE_DEFECT, solution, instance, n_dev) if any_defect else None
    w_wr = lane(key, _rng.LANE_WRITE, solution, instance, 2 * n_dev)
    w_rs = lane(key, _rng.LANE_RESET, solution, instance, n_dev) if draw_reset else None
    w_un = lane(key, _rng.LANE_UNUSED, solution, instance, 8 * n_un)
    z_un = normals(w_un[: 5 * n_un])
    cells = [[[None] * cols for _ in range(rows)] for _ in range(L)]

    def reset_probability(cell):
        if wr.mode == "ideal":
            return 1.0
        if wr.mode == "fixed":
            return 1.0 - wr.error_rate
        return cell.push_probability(study, wr.voltage)  # cell.state is P: P -> AP

    k = u = 0
    counts = dict(n_stuck=0, n_short=0, n_open=0, n_write_errors=0, n_disturbs=0,
                  n_pulses=0, n_verify_retries=0, n_nonconverged=0, n_reset_errors=0)
    for l in range(L):
        for r in range(rows):
            for c in range(cols):
                used = r < shapes[l][0] and c < shapes[l][1]
                if used:
                    z = z_dev[3 * k: 3 * k + 3] if dev.variation else (0.0, 0.0, 0.0)
                    zd, zj = z_sw[2 * k: 2 * k + 2] if spread else (0.0, 0.0)
                    u_def = uniform(w_def[k]) if any_defect else 1.0
                    init = int(w_wr[2 * k])
                    u_reset = uniform(w_rs[k]) if draw_reset else 0.0
                else:
                    z = z_un[5 * u: 5 * u + 3] if dev.variation else (0.0, 0.0, 0.0)
                    zd, zj = z_un[5 * u + 3], z_un[5 * u + 4]
                    u_def = uniform(w_un[5 * n_un + 2 * u])
                    init = int(w_un[5 * n_un + 2 * u + 1])
                    u_reset = uniform(w_un[7 * n_un + u]) if draw_reset else 0.0
                sd = dev.diameter_sigma if dev.variation else 0.0
                sra = dev.resistance_area_sigma if dev.variation else 0.0
                # position along the die's gradient, nominal d and RA of this cell
                pos = ((c + 0.5) / cols - 0.5) * cos_phi + ((r + 0.5) / rows - 0.5) * sin_phi
                d_nom = dev.diameter * (1.0 + dev.diameter_gradient * pos) + die_d
                ra_nom = dev.resistance_area * (1.0 + dev.ra_gradient * pos) * die_ra
                d = max(d_nom + sd * z[0], MIN_DIAMETER)
                g_p = math.pi / 4 * d * d / (ra_nom * math.exp(sra * z[1]))
                stmr = dev.tmr_sigma if dev.variation else 0.0
                tmr = max(dev.tmr + die_tmr + stmr * z[2], 0.0)
                delta = dev.delta_sat * min(1.0, (d / dev.critical_diameter) ** 2)
                jc = dev.jc_ap_to_p * die_jc
                if spread:
                    delta *= max(1.0 + dev.delta_sigma * zd, 0.0)
                    jc *= max(1.0 + dev.jc_sigma * zj, 1e-6)
                ic = jc * math.pi / 4 * d * d
                defect = NONE
                if any_defect:
                    edges = np.cumsum(rates)
                    hit = np.flatnonzero(u_def < edges)
                    defect = int(hit[0]) + 1 if hit.size else NONE
                    if used:
                        key_name = {STUCK_P: "n_stuck", STUCK_AP: "n_stuck", SHORT: "n_short",
                                    OPEN: "n_open"}.get(defect)
                        if key_name:
                            counts[key_name] += 1
                fabricated = (init & 1) if init_random else AP
                cell = Cell(g_p, d, tmr, delta, ic, ic * dev.jc_asymmetry, defect, fabricated)
                if defect in (STUCK_P, STUCK_AP):
                    cell.state = P if defect == STUCK_P else AP
                elif reset and fabricated == P:
                    # the reset pulse towards AP, at the nominal write amplitude (no line
                    # drop, no half-selects), the write's switching model
                    if not u_reset < reset_probability(cell):
                        if used and defect == NONE:
                            counts["n_reset_errors"] += 1
                    else:
                        cell.state = AP
                cells[l][r][c] = cell
                if used:
                    k += 1
                else:
                    u += 1

    def G_of(l, v_of=None):
        return np.array([[cells[l][i][j].conductance(study, 0.0 if v_of is None else v_of(i, j))
                          for j in range(cols)] for i in range(rows)])

    def push(cell, v):
        """Switching probability of a pulse / half-select of v volts pushing out of state."""
        if wr.mode == "ideal":
            return 1.0
        if wr.mode == "fixed":
            return 1.0 - wr.error_rate
        return cell.push_probability(study, v)

    def disturb_p(cell, v):
        if cell.defect != NONE:
            return 0.0
        if wr.mode == "ideal":
            return 0.0
        if wr.mode == "fixed":
            return wr.disturb_rate
        return cell.push_probability(study, v)

    # --- 2. write
    st_dist = Stream(key, _rng.LANE_DISTURB, solution, instance)
    st_ver = Stream(key, _rng.LANE_VERIFY, solution, instance)
    ir = wr.ir_solver != "off" and wr.mode not in ("ideal", "fixed")
    g_mid = 0.5 * (g_nom_p + g_nom_ap)
    integrated = study.array.kind == "integrated"

    def alone(G, r, c):
        """The conductances an integrated array's single-device operation sees: every access
        device but (r, c)'s is off."""
        out = np.zeros_like(G)
        out[r, c] = G[r, c]
        return out

    def known_nominal(l):
        """The experimenter's knowledge before writing: nominal conductances of the random
        initial states ('random'), else AP (after a reset the experimenter assumes AP, a
        failed reset included; README "What is modelled")."""
        return np.array([[g_nom_p if (wr.initial == "random" and cells[l][i][j].state == P)
                          else g_nom_ap for j in range(cols)] for i in range(rows)])

    def reference(known, r, c):
        if integrated:  # the selected cell alone, half-way between G_P and G_AP
            return verify_current(alone(np.full_like(known, g_mid), r, c), r, c, rd.v_read,
                                  "floating", r_row, r_col)
        if wr.verify_scheme == "half":
            return rd.v_read * (g_mid + 0.5 * (known[:, c].sum() - known[r, c]))
        Gk = known.copy()
        Gk[r, c] = g_mid
        return verify_current(Gk, r, c, rd.v_read, "floating", r_row, r_col)

    def verify_read(l, r, c, ref):
        if integrated:  # only the selected access device is on
            current = verify_current(alone(G_of(l), r, c), r, c, rd.v_read, "floating", r_row,
                                     r_col)
        else:
            current = verify_current(G_of(l), r, c, rd.v_read, wr.verify_scheme, r_row, r_col)
        if rd.noise > 0:
            current *= 1.0 + rd.noise * float(_rng.normal_ppf_np(np.array([st_ver.uniform()]))[0])
        return P if current > ref else AP

    def pulse_voltages(l, r, c, amplitude):
        """Device voltages of the pulse from a full nodal solve (design.md "Array model")."""
        scheme = wr.scheme
        half = amplitude / 2 if scheme == "v2" else amplitude / 3

        def bias(i, j):
            if i == r and j == c:
                return amplitude
            if i == r or j == c:
                return half
            return amplitude / 3 if scheme == "v3" else 0.0

        Gw = G_of(l, bias)
        # 'none' (and every integrated array, which allows only 'none'): each device behind
        # its own access device
        if scheme == "none" or integrated:
            keep = Gw[r, c]
            Gw[:] = 0.0
            Gw[r, c] = keep
        row = np.zeros(rows)
        col = np.full(cols, amplitude / 3 if scheme == "v3" else 0.0)
        if scheme == "v2":
            row[r], col[c] = amplitude / 2, -amplitude / 2
        elif scheme == "v3":
            row[r], col[c] = 2 * amplitude / 3, -amplitude / 3
        else:
            row[r] = amplitude
        a, b = solve(Gw, r_row, r_col, wr.r_driver, row, col)
        return a - b

    def walk(l, r, c, to_p, others, v_cells, v_ideal, nominal):
        """Half-select disturbs of one candidate group: each candidate switches with the
        probability at its own voltage, one Bernoulli draw each, sampled by thinning as
        the kernels do (geometric skips at p_max, acceptance p / p_max). p_max is the
        largest of the candidates' bounds: the probability at the ideal voltage when the
        pulse has the nominal amplitude and the candidate's voltage is not above the ideal
        one (the probability rises with the voltage), else the probability itself."""
        if others:
            cand = [(i, j) for i in range(rows) if i != r for j in range(cols) if j != c]
        else:
            cand = [(r, j) for j in range(cols) if j != c] + \
                   [(i, c) for i in range(rows) if i != r]
        from_state = AP if to_p else P
        bounds, probs = [], []
        for i, j in cand:
            cell = cells[l][i][j]
            bound = p = 0.0
            if cell.state == from_state and cell.defect == NONE:
                v = v_ideal
                if v_cells is not None:
                    v = -v_cells[i, j] if others else v_cells[i, j]
                if v <= 0:
                    bound = p = 0.0
                elif nominal and v <= v_ideal:
                    bound = disturb_p(cell, v_ideal)
                    p = disturb_p(cell, v)
                else:
                    bound = p = disturb_p(cell, v)
            bounds.append(bound)
            probs.append(p)
        p_max = max(bounds) if bounds else 0.0
        hits = 0
        if p_max <= 0:
            return 0
        pos = -1
        while True:
            if p_max >= 1.0:
                skip = 0
            else:
                skip = min(math.floor(math.log(st_dist.uniform53()) / math.log1p(-p_max)),
                           1 << 40)
            pos += 1 + skip
            if pos >= len(cand):
                return hits
            if st_dist.uniform53() * p_max < probs[pos]:
                i, j = cand[pos]
                cells[l][i][j].state = P if to_p else AP
                hits += 1

    k_first = 0
    known_all = []
    for l in range(L):
        n_in, n_c = shapes[l]
        known = known_nominal(l)
        order = list(range(n_in * n_c))
        if wr.order == "column":
            order = [(t % n_in) * n_c + t // n_in for t in range(n_in * n_c)]
        elif wr.order == "random":
            for t in range(n_in * n_c - 1, 0, -1):
                j = st_ver.u32() % (t + 1)
                order[t], order[j] = order[j], order[t]
        for cell_index in order:
            r, c = divmod(cell_index, n_c)
            k = k_first + cell_index
            target = int(targets[l][r, c])
            known[r, c] = g_nom_p if target == P else g_nom_ap
            cell = cells[l][r][c]
            if cell.state == target:
                continue
            attempt = 0
            ref = None
            while True:
                counts["n_pulses"] += 1
                amplitude = wr.voltage + attempt * wr.retry_step
                uw = uniform(w_wr[2 * k + 1]) if attempt == 0 else st_ver.uniform()
                v_cells = pulse_voltages(l, r, c, amplitude) if ir else None
                v_sel = max(v_cells[r, c], 0.0) if ir else amplitude
                if cell.state != target and uw < push(cell, v_sel):
                    cell.state = P if cell.defect == STUCK_P else AP if \
                        cell.defect == STUCK_AP else target
                healthy = cell.defect in (NONE, STUCK_P, STUCK_AP)
                if cell.state != target or not healthy:
                    counts["n_write_errors"] += 1
                if wr.scheme != "none":
                    to_p = target == P
                    v_half = amplitude / 2 if wr.scheme == "v2" else amplitude / 3
                    nominal = amplitude == wr.voltage
                    counts["n_disturbs"] += walk(l, r, c, to_p, False, v_cells, v_half,
                                                 nominal)
                    if wr.scheme == "v3":
                        counts["n_disturbs"] += walk(l, r, c, not to_p, True, v_cells, v_half,
                                                     nominal)
                if not wr.verify:
                    break
                if ref is None:
                    ref = reference(known, r, c)
                if verify_read(l, r, c, ref) == target:
                    break
                if attempt >= wr.max_retries:
                    break
                attempt += 1
                counts["n_verify_retries"] += 1
        known_all.append(known)
        k_first += n_in * n_c

    # --- 3. correctness and read-back
    good_dev = good_w = n_w = readback = 0
    correct = []
    for l in range(L):
        n_in, n_c = shapes[l]
        ok = np.zeros((n_in, n_c), bool)
        for r in range(n_in):
            for c in range(n_c):
                cell = cells[l][r][c]
                ok[r, c] = cell.state == targets[l][r, c] and cell.defect in (NONE, STUCK_P,
                                                                             STUCK_AP)
                good_dev += ok[r, c]
                if wr.verify and wr.final_verify:
                    ref = reference(known_all[l], r, c)
                    readback += verify_read(l, r, c, ref) == targets[l][r, c]
            for j in range(n_c // 2):
                good_w += ok[r, 2 * j] and ok[r, 2 * j + 1]
                n_w += 1
        correct.append(ok)

    # --- 4. read and inference
    Gs = [G_of(l) for l in range(L)]
    Ts = [transfer(G, r_row, r_col) if (r_row > 0 or r_col > 0) else G.T.copy() for G in Gs]
    # each layer's effective conductances (inputs x columns): its tiles' sensed partial
    # currents per input volt, placed where the tiles sit; the row tiles' currents add up
    geff = [np.zeros(t.shape) for t in layer_targets]
    for (l, r0, c0, nr, nc), T in zip(placed, Ts, strict=True):
        geff[l][r0:r0 + nr, c0:c0 + nc] = T.T[:nr, :nc]
    weff = [(g[:, 0::2] - g[:, 1::2]) / dg_nom for g in geff]  # (n_in, n_out)
    st_read = Stream(key, _rng.LANE_READ, solution, instance)
    offs = [np.zeros(t.shape[1] // 2) for t in layer_targets]
    if rd.offset_sigma > 0:
        for l in range(n_layers):
            for j in range(layer_targets[l].shape[1] // 2):
                offs[l][j] = rd.offset_sigma * float(
                    _rng.normal_ppf_np(np.array([st_read.uniform()]))[0])
    biases = [np.asarray(b[solution]) for b in solutions.biases]
    threshold = study.network.threshold or solutions.threshold
    slow = rd.bias_tmr or rd.noise > 0

    def activate(a, last):
        if last:
            return np.tanh(a) if solutions.output_activation == "tanh" else a
        if solutions.hidden_activation == "sign":
            return np.where(a >= threshold, 1.0, -1.0)
        return np.tanh(a)

    def bias_tmr_currents(l, v_rows):
        """Column currents with each AP device's TMR at its own voltage: fixed point from
        the zero-bias conductances, to read.tolerance (max relative change of G)."""
        cl = cells[l]
        free = np.array([[cl[i][j].defect not in (SHORT, OPEN) and cl[i][j].state == AP
                          for j in range(cols)] for i in range(rows)])
        if r_row == 0 and r_col == 0:
            G = G_of(l, lambda i, j: v_rows[i])
            return G.T @ v_rows, True
        G = Gs[l].copy()
        for _ in range(rd.max_iter):
            a, b = solve(G, r_row, r_col, 0.0, v_rows, np.zeros(cols))
            v = a - b
            out = (G * v).sum(axis=0)
            G_new = G_of(l, lambda i, j, v=v: v[i, j])
            change = np.max(np.abs(G_new - G)[free] / G_new[free], initial=0.0)
            G = np.where(free, G_new, G)
            if change < rd.tolerance:
                return out, True
        return out, False

    def predict(X, gnorm):
        n_s = X.shape[0]
        if not slow:
            act = X
            for l in range(n_layers):
                a = (act @ weff[l] + offs[l]) / gnorm + biases[l]
                act = activate(a, l == n_layers - 1)
            return np.argmax(act, axis=1), 0
        preds = np.empty(n_s, int)
        nonconv = 0
        for s in range(n_s):
            act = X[s]
            for l in range(n_layers):
                diff = np.zeros(layer_targets[l].shape[1] // 2)
                for a_i, (la, r0, c0, nr, nc) in enumerate(placed):
                    if la != l:
                        continue
                    v_rows = np.zeros(rows)
                    v_rows[:nr] = act[r0:r0 + nr] * rd.v_read
                    if rd.bias_tmr:
                        cur, ok = bias_tmr_currents(a_i, v_rows)
                        nonconv += not ok
                    else:
                        cur = Ts[a_i] @ v_rows
                    if rd.noise > 0:
                        for c in range(nc):
                            cur[c] *= 1.0 + rd.noise * float(
                                _rng.normal_ppf_np(np.array([st_read.uniform()]))[0])
                    # sensed per array, summed over the layer's row tiles
                    diff[c0 // 2:(c0 + nc) // 2] += (cur[0:nc:2] - cur[1:nc:2]) / (
                        dg_nom * rd.v_read)
                act = activate((diff + offs[l]) / gnorm + biases[l], l == n_layers - 1)
            preds[s] = int(np.argmax(act))
        return preds, nonconv

    def software(X, gnorm):
        act = X
        for l in range(n_layers):
            w = solutions.weights[l][solution]
            act = activate((act @ w) / gnorm + biases[l], l == n_layers - 1)
        return np.argmax(act, axis=1)

    X_eval, y_eval = data.X_test, data.y_test
    if study.network.eval_split == "train":
        X_eval, y_eval = data.X_train, data.y_train
    gnorms = np.atleast_1d(study.network.gnorm)
    acc, agree, acc_train = [], [], []
    for gnorm in gnorms:
        pred, nc = predict(X_eval, gnorm)
        counts["n_nonconverged"] += nc
        acc.append(np.mean(pred == y_eval))
        agree.append(np.mean(pred == software(X_eval, gnorm)))
        if study.network.eval_train:
            pred, nc = predict(data.X_train, gnorm)
            counts["n_nonconverged"] += nc
            acc_train.append(np.mean(pred == data.y_train))

    # current error of layer 0 vs the nominal targets, over the evaluation samples
    g0 = np.where(layer_targets[0] == P, g_nom_p, g_nom_ap)
    I = X_eval @ geff[0]
    I0 = X_eval @ g0
    rmse = math.sqrt(np.sum((I - I0) ** 2) / np.sum(I0**2))
    return dict(accuracy=np.array(acc), agreement=np.array(agree),
                accuracy_train=np.array(acc_train), write_fidelity=good_dev / n_dev,
                weight_fidelity=good_w / n_w,
                readback_fidelity=readback / n_dev, current_rmse=rmse, **counts)
