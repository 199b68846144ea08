"""Crossbar arrays (passive or integrated): placing layers, writing devices, reading currents.

A layer with ``n_in`` inputs and ``n_out`` outputs occupies ``n_in`` rows and
``2 n_out`` columns (a differential pair per output) in the top-left corner of
its own ``rows x cols`` array. Device target states come from
:class:`mcmtj.networks.solutions.SolutionSet` (1 = P, 0 = AP).

Write procedure (this module's part; half-select disturb and verify belong to
the passive-array options): every device starts in its as-fabricated state (P or AP
with probability 1/2) and gets a reset pulse towards AP of the write's amplitude and
width, which switches it with the same probability as a write (``write.initial =
'ap'``; a failure leaves it P and counts in ``n_reset_errors``; ``'ap_ideal'`` starts
every device exactly AP, ``'random'`` skips the reset); then each device whose target
differs from its state gets one pulse of amplitude ``V_w`` and width ``t_w``
with the polarity of its target, which switches it with the device's own
probability (:func:`mcmtj.physics.device.switching_probability`), or ``1 - error_rate``
in ``fixed`` mode. Stuck devices keep their stuck state; shorted and open devices
take any pulse but their conductance is fixed, so they always count as wrongly
written.

Half-select disturb (``write.scheme``): under the V/2 scheme the selected row is
at +V/2 and the selected column at -V/2, so every other device of that row or
column sees V/2 in the pulse's polarity; under V/3 those see V/3 and all other
devices -V/3. Each may switch towards the polarity it sees, with the switching
probability at its own voltage and state. Disturbs are rare, so they are drawn by
*thinning*: proposals at the largest probability ``p_max`` of the array, skipped
to with geometric draws, each accepted with ``p_device / p_max``. That is exactly
one Bernoulli draw per half-selected device (tested against brute force) at a
cost of about one random number per pulse.

Write-verify (``write.verify``): after each pulse the device is read back and the
pulse repeated (amplitude raised by ``retry_step``) up to ``max_retries`` times.
The verify read senses the selected column's current with the selected row at
V_read and the unselected lines held at V_read/2 (``'half'``: closed form, wire
resistance neglected) or floating (``'floating'``: the full network solve of
:mod:`mcmtj.physics.circuit`), and compares it with the current a device half-way between
G_P and G_AP would give among nominal neighbours in their target states; sneak
currents through varied neighbours can therefore misread a device.

Ideal read: column currents ``I = G^T V``; with wire resistance see
:func:`mcmtj.physics.circuit.transfer_matrix`.

Integrated arrays (``array.kind = 'integrated'``, 1T1MTJ): each device sits behind its own
access device. A write pulse or a verify read turns on the selected device's only, so
it sees a series circuit through its row and column lines
(:func:`integrated_write_voltage`, :func:`integrated_read_current`): no half-select
disturb, no sneak current, no load from other devices (a short costs nothing to its
neighbours' writes and verifies). An inference read turns every access device on, so it
is the crossbar's nodal network as for a passive array: a short then costs its own cell
plus the load it puts on its lines (their IR drop). The verify reference is the same
single-device read of a device half-way between nominal G_P and G_AP on that cell's
(designed) lines.

Tiled layers (``array.tile_rows``, ``array.tile_cols``): :func:`tile_layout` cuts a layer
into tiles, each on its own array; row tiles see disjoint inputs and their sensed partial
column currents are summed.
"""

from __future__ import annotations

import math

import numpy as np

from mcmtj.numerics._jit import kernel
from mcmtj.numerics._rng import stream_uniform53
from mcmtj.physics.device import (
    DEFECT_NONE,
    DEFECT_OPEN,
    DEFECT_SHORT,
    DEFECT_STUCK_AP,
    DEFECT_STUCK_P,
    STATE_AP,
    STATE_P,
    _switching_probability_jit,
    _tmr_at_bias_jit,
)

__all__ = ["check_fit", "ideal_read", "tile_layout", "integrated_write_voltage",
           "integrated_read_current", "WRITE_IDEAL", "WRITE_FIXED", "WRITE_PHYSICS",
           "WRITE_TABLE", "KIND_PASSIVE", "KIND_INTEGRATED"]

WRITE_IDEAL = 0
WRITE_FIXED = 1
WRITE_PHYSICS = 2
WRITE_TABLE = 3  # 'physics' mode with a measured WER table instead of the device model
KIND_PASSIVE = 0
KIND_INTEGRATED = 1  # each device behind its own access device (array.kind = 'integrated')


def check_fit(layer_shapes, rows: int, cols: int, tile_rows: int = 0, tile_cols: int = 0) -> None:
    """Raise ``ValueError`` if a layer does not fit on its ``rows x cols`` arrays.

    Parameters
    ----------
    layer_shapes : sequence of (n_in, n_out)
    rows, cols : int
        Size of one array.
    tile_rows, tile_cols : int
        Layer rows / columns per array when the layer is tiled (0: untiled, the whole
        dimension on one array). A tile must fit on its array.
    """
    if tile_rows > rows or tile_cols > cols:
        name, tile, size = (("tile_rows", tile_rows, f"rows = {rows}") if tile_rows > rows
                            else ("tile_cols", tile_cols, f"cols = {cols}"))
        raise ValueError(f"array.{name} = {tile} is out of range: must be 0 (untiled) or at "
                         f"most array.{size}")
    for index, (n_in, n_out) in enumerate(layer_shapes):
        if (not tile_rows and n_in > rows) or (not tile_cols and 2 * n_out > cols):
            raise ValueError(
                f"layer {index} needs {n_in} rows x {2 * n_out} columns but array.rows x "
                f"array.cols is {rows} x {cols}: the layer does not fit (mcmtj never crops; "
                "array.tile_rows / array.tile_cols split a layer over several arrays)"
            )


def tile_layout(layer_shapes, tile_rows: int = 0, tile_cols: int = 0) -> np.ndarray:
    """The physical arrays that hold a network's layers.

    A layer of ``n_in`` inputs and ``n_out`` outputs (``2 n_out`` columns) is cut into
    row tiles of ``tile_rows`` inputs and column tiles of ``tile_cols // 2`` differential
    pairs (0: one tile in that dimension); each tile sits in the top-left corner of its own
    array. Arrays are listed layer by layer, row tiles outer, column tiles inner. The row
    tiles of a layer see disjoint inputs, so the layer's column currents are the sums of
    their sensed partial currents (its effective weights are the tiles' stacked).

    Parameters
    ----------
    layer_shapes : sequence of (n_in, n_out)
    tile_rows, tile_cols : int
        Layer rows and columns per array (0: untiled; ``tile_cols`` >= 2).

    Returns
    -------
    ndarray of int64, shape (n_arrays, 5)
        Per array: layer, first input row, first column of the layer, rows used,
        columns used (even).
    """
    out = []
    for l, (n_in, n_out) in enumerate(layer_shapes):
        step_r = tile_rows if tile_rows else n_in
        step_c = 2 * (tile_cols // 2) if tile_cols else 2 * n_out
        for r0 in range(0, n_in, step_r):
            for c0 in range(0, 2 * n_out, step_c):
                out.append((l, r0, c0, min(step_r, n_in - r0), min(step_c, 2 * n_out - c0)))
    return np.array(out, np.int64).reshape(-1, 5)


def integrated_write_voltage(conductance, amplitude, row, col, rows, r_row=0.0, r_col=0.0,
                             r_driver=0.0):
    """Voltage across the selected device of an integrated array during a write pulse.

    Only the selected device's access device is on, so the pulse sees a series circuit:
    the row driver (``r_driver``), ``col + 1`` row segments (the row is driven at its left
    end, before cell (row, 0)), the device, ``rows - row`` column segments (the column is
    driven at its bottom end, after cell (rows - 1, col)) and the column driver
    (``r_driver``); the access device's on-resistance is part of the device's.

    Parameters
    ----------
    conductance : float or ndarray
        Device conductance at the pulse's bias, S (0: open).
    amplitude : float
        Pulse amplitude, V.
    row, col, rows : int
        The cell and the array's number of rows.
    r_row, r_col, r_driver : float
        Segment and driver resistances, ohm.

    Returns
    -------
    float or ndarray
        Device voltage, V: ``A / (1 + g R_path)``.
    """
    r_path = 2.0 * r_driver + r_row * (col + 1) + r_col * (rows - row)
    return amplitude / (1.0 + np.asarray(conductance) * r_path)


def integrated_read_current(conductance, v_read, row, col, rows, r_row=0.0, r_col=0.0):
    """Sensed current of a single-device read (verify) of an integrated array.

    Only the selected device conducts (no sneak paths): the row's read driver, ``col + 1``
    row segments, the device and ``rows - row`` column segments to the sense amplifier at
    virtual ground (no driver resistance in reads, as in the passive array's reads).

    Returns
    -------
    float or ndarray
        Current, A: ``V g / (1 + g R_path)``.
    """
    g = np.asarray(conductance)
    return v_read * g / (1.0 + g * (r_row * (col + 1) + r_col * (rows - row)))


@kernel
def _integrated_write_voltage(g, amplitude, row, col, rows, r_row, r_col, r_driver):
    """Scalar twin of :func:`integrated_write_voltage`."""
    return amplitude / (1.0 + g * (2.0 * r_driver + r_row * (col + 1) + r_col * (rows - row)))


@kernel
def _integrated_read_current(g, v_read, row, col, rows, r_row, r_col):
    """Scalar twin of :func:`integrated_read_current`."""
    return v_read * g / (1.0 + g * (r_row * (col + 1) + r_col * (rows - row)))


def ideal_read(conductance, voltages):
    """Column currents of an ideal crossbar, ``I = G^T V``.

    Parameters
    ----------
    conductance : ndarray, shape (..., rows, cols), S
    voltages : ndarray, shape (..., rows) or (..., rows, n_samples), V

    Returns
    -------
    ndarray, shape (..., cols) or (..., cols, n_samples), A
    """
    conductance = np.asarray(conductance)
    voltages = np.asarray(voltages)
    if voltages.ndim == conductance.ndim - 1:
        return np.einsum("...rc,...r->...c", conductance, voltages)
    return np.einsum("...rc,...rs->...cs", conductance, voltages)


def _drive_current(state, voltage, g_parallel, tmr, ic_ap_to_p, ic_p_to_ap):
    """Current through a device at ``voltage`` pushing it out of ``state``, and the critical
    current it must beat: an AP device carries its AP current (``tmr`` at that bias).
    Plain arithmetic, so the CUDA kernel compiles this very source."""
    if state == STATE_AP:
        return voltage * g_parallel / (1.0 + tmr), ic_ap_to_p
    return voltage * g_parallel, ic_p_to_ap


_drive_current_jit = kernel(_drive_current)


@kernel
def _pulse_switch_probability(mode, error_rate, state, g_parallel, tmr_write, ic_ap_to_p,
                              ic_p_to_ap, delta, voltage, pulse_width, tau0, tau_d, beta):
    """Probability that a full-select pulse towards the other state switches a device.

    ``tmr_write`` is the device's TMR at the write bias (the AP resistance sets the current
    of an AP->P pulse).
    """
    if mode == WRITE_IDEAL:
        return 1.0
    if mode == WRITE_FIXED:
        return 1.0 - error_rate
    current, ic = _drive_current_jit(state, voltage, g_parallel, tmr_write, ic_ap_to_p,
                                     ic_p_to_ap)
    return _switching_probability_jit(current, ic, delta, pulse_width, tau0, tau_d, beta)


@kernel
def _final_conductance(state, defect, g_parallel, tmr, g_short):
    """Read conductance of a device after writing (zero-bias TMR)."""
    if defect == DEFECT_SHORT:
        return g_short
    if defect == DEFECT_OPEN:
        return 0.0
    if state == STATE_P:
        return g_parallel
    return g_parallel / (1.0 + tmr)


@kernel
def _stuck_state(defect, state):
    """State imposed by a stuck defect, or ``state`` when the device is free."""
    if defect == DEFECT_STUCK_P:
        return STATE_P
    if defect == DEFECT_STUCK_AP:
        return STATE_AP
    return state


@kernel
def _is_healthy(defect):
    return defect == DEFECT_NONE or defect == DEFECT_STUCK_P or defect == DEFECT_STUCK_AP


# Cap on a geometric skip: anything past the candidate list is the same.
_SKIP_CAP = 1 << 40


@kernel
def _geometric_skip(p_max, st):
    """Failures before the next success of Bernoulli(p_max) trials (from stream ``st``)."""
    if p_max >= 1.0:
        return 0
    u = stream_uniform53(st)
    skip = math.floor(math.log(u) / math.log1p(-p_max))
    return skip if skip < _SKIP_CAP else _SKIP_CAP


@kernel
def sample_thinned(probs, n, p_max, st, hits):
    """Independent Bernoulli(probs[i]) draws for i < n by thinning; all probs <= p_max.

    Writes the indices that came up into ``hits`` and returns their count. Costs about
    ``1 + n p_max`` geometric draws instead of ``n`` uniforms. (Reference sampler for
    tests; the write kernel inlines the same walk over its candidate cells.)
    """
    count = 0
    if p_max <= 0.0:
        return 0
    pos = -1
    while True:
        pos += 1 + _geometric_skip(p_max, st)
        if pos >= n:
            return count
        if stream_uniform53(st) * p_max < probs[pos]:
            hits[count] = pos
            count += 1


@kernel
def _disturb_probability(mode, disturb_rate, state, g_parallel, tmr0, v_half, v_h, ic_ap_to_p,
                         ic_p_to_ap, delta, pulse_width, tau0, tau_d, beta):
    """Probability that a half-selected device in ``state`` switches under ``v_half``
    applied in the direction that would take it out of that state."""
    if mode == WRITE_IDEAL:
        return 0.0
    if mode == WRITE_FIXED:
        return disturb_rate
    current, ic = _drive_current_jit(state, v_half, g_parallel,
                                     _tmr_at_bias_jit(tmr0, v_half, v_h), ic_ap_to_p, ic_p_to_ap)
    return _switching_probability_jit(current, ic, delta, pulse_width, tau0, tau_d, beta)


@kernel
def _sense_half(G, r, c, v_read, rows):
    """Sensed current of column c reading device (r, c) with unselected lines at v_read/2
    (wire resistance neglected): v (G_rc + 1/2 sum_{k != r} G_kc)."""
    sneak = 0.0
    for k in range(rows):
        if k != r:
            sneak += G[k, c]
    return v_read * (G[r, c] + 0.5 * sneak)
