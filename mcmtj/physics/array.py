"""Passive crossbar arrays: placing layers, writing devices, reading currents.

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

__all__ = ["check_fit", "ideal_read", "WRITE_IDEAL", "WRITE_FIXED", "WRITE_PHYSICS",
           "WRITE_TABLE"]

WRITE_IDEAL = 0
WRITE_FIXED = 1
WRITE_PHYSICS = 2
WRITE_TABLE = 3  # 'physics' mode with a measured WER table instead of the device model


def check_fit(layer_shapes, rows: int, cols: int) -> None:
    """Raise ``ValueError`` if a layer does not fit on a ``rows x cols`` array.

    Parameters
    ----------
    layer_shapes : sequence of (n_in, n_out)
    rows, cols : int
    """
    for index, (n_in, n_out) in enumerate(layer_shapes):
        if n_in > rows or 2 * n_out > cols:
            raise ValueError(
                f"layer {index} needs {n_in} rows x {2 * n_out} columns but array.rows x "
                f"array.cols is {rows} x {cols}: the layer does not fit (mcmtj never crops)"
            )


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
