"""Passive crossbar arrays: placing layers, writing devices, reading currents.

A layer with ``n_in`` inputs and ``n_out`` outputs occupies ``n_in`` rows and
``2 n_out`` columns (a differential pair per output) in the top-left corner of
its own ``rows x cols`` array. Device target states come from
:class:`mcmtj.solutions.SolutionSet` (1 = P, 0 = AP).

Write procedure (this module's part; half-select disturb and verify belong to
the passive-array options): every device is first reset to its initial state
(all AP, or random), the reset being ideal; then each device whose target
differs from its state gets one pulse of amplitude ``V_w`` and width ``t_w``
with the polarity of its target, which switches it with the device's own
probability (:func:`mcmtj.device.switching_probability`), or ``1 - error_rate``
in ``fixed`` mode. Stuck devices keep their stuck state; shorted and open devices
take any pulse but their conductance is fixed, so they always count as wrongly
written.

Ideal read: column currents ``I = G^T V``.
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel
from .device import (
    DEFECT_NONE,
    DEFECT_OPEN,
    DEFECT_SHORT,
    DEFECT_STUCK_AP,
    DEFECT_STUCK_P,
    STATE_AP,
    STATE_P,
    _switching_probability_jit,
)

__all__ = ["check_fit", "ideal_read", "WRITE_IDEAL", "WRITE_FIXED", "WRITE_PHYSICS"]

WRITE_IDEAL = 0
WRITE_FIXED = 1
WRITE_PHYSICS = 2


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
    if state == STATE_AP:
        current = voltage * g_parallel / (1.0 + tmr_write)
        ic = ic_ap_to_p
    else:
        current = voltage * g_parallel
        ic = ic_p_to_ap
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
