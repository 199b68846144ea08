"""MTJ device physics (design.md "Device model").

Each formula exists twice: a vectorised NumPy reference (public, documented,
used by tests and by the batched-NumPy benchmark) and a scalar ``_*_jit`` twin
called from the fused Monte Carlo kernels. ``tests/test_device.py`` drives both
with the same inputs and requires equal outputs.

Conventions: SI units; state 1 = parallel (P, low resistance), 0 = antiparallel
(AP); a current ``I`` is the magnitude flowing in the direction that would switch
the device (a pulse of the wrong polarity never switches it, callers check that).
"""

from __future__ import annotations

import math

import numpy as np

from mcmtj.numerics._fastmath import exp as _exp
from mcmtj.numerics._jit import kernel
from mcmtj.numerics._rng import normal_ppf, stream_u32, u32_to_uniform_jit

__all__ = [
    "STATE_AP",
    "STATE_P",
    "DEFECT_NONE",
    "DEFECT_STUCK_P",
    "DEFECT_STUCK_AP",
    "DEFECT_SHORT",
    "DEFECT_OPEN",
    "area",
    "thermal_stability",
    "tmr_at_bias",
    "switching_probability",
    "sample_parallel_conductance",
    "classify_defects",
    "nominal_conductances",
]

STATE_AP = 0
STATE_P = 1
DEFECT_NONE = 0
DEFECT_STUCK_P = 1
DEFECT_STUCK_AP = 2
DEFECT_SHORT = 3
DEFECT_OPEN = 4

# Smallest diameter a sampled device may take: a Normal tail below it would give a
# negative area; 1 nm is far below any d0 we accept and leaves the spread intact.
MIN_DIAMETER = 1e-9


def area(diameter):
    """Pillar area pi d^2 / 4 in m^2 (``diameter`` in m)."""
    return np.pi * np.asarray(diameter) ** 2 / 4.0


def thermal_stability(diameter, delta_sat, critical_diameter):
    """Thermal barrier Delta(d) = Delta_sat min(1, (d / d_c)^2), dimensionless."""
    ratio = np.asarray(diameter) / critical_diameter
    return delta_sat * np.minimum(1.0, ratio * ratio)


def _tmr_at_bias(tmr0, voltage, bias_voltage):
    # plain arithmetic: one source for NumPy, the njit twin and the CUDA kernel
    x = voltage / bias_voltage
    return tmr0 / (1.0 + x * x)


def tmr_at_bias(tmr0, voltage, bias_voltage):
    """Bias-dependent TMR(V) = TMR0 / (1 + (V / V_h)^2)."""
    return _tmr_at_bias(tmr0, np.asarray(voltage), bias_voltage)


_tmr_at_bias_jit = kernel(_tmr_at_bias)


def switching_probability(current, critical_current, delta, pulse_width, tau0, tau_d, beta):
    """Probability that one pulse switches a device.

    Parameters
    ----------
    current : array_like
        Current magnitude in the switching direction, A.
    critical_current : array_like
        Zero-temperature critical current I_c0 for this direction, A.
    delta : array_like
        Thermal stability factor (barrier / kT).
    pulse_width, tau0, tau_d : float
        Pulse width, thermal attempt time, precessional time constant, s.
    beta : float
        Exponent of (1 - I/I_c0) in the thermal regime (1 or 2).

    Returns
    -------
    ndarray
        Thermal regime (I < I_c0):
        ``1 - exp(-(t/tau0) exp(-Delta (1 - I/I_c0)^beta))``; precessional regime:
        ``max(1 - exp(-t/tau0), exp(-(pi^2 Delta/4) exp(-2 (I/I_c0 - 1) t/tau_d)))``,
        which is continuous at I = I_c0 and non-decreasing in I and t.
    """
    current, critical_current, delta = np.broadcast_arrays(
        np.asarray(current, float), np.asarray(critical_current, float), np.asarray(delta, float)
    )
    ratio = current / critical_current
    floor = -np.expm1(-pulse_width / tau0)
    barrier = delta * np.maximum(1.0 - ratio, 0.0) ** beta
    thermal = -np.expm1(-(pulse_width / tau0) * np.exp(-barrier))
    decay = np.exp(-2.0 * np.maximum(ratio - 1.0, 0.0) * pulse_width / tau_d)
    precessional = np.exp(-(np.pi**2 * delta / 4.0) * decay)
    return np.where(ratio < 1.0, thermal, np.maximum(floor, precessional))


@kernel
def _switching_probability_jit(current, critical_current, delta, pulse_width, tau0, tau_d, beta):
    """Scalar twin of :func:`switching_probability`."""
    ratio = current / critical_current
    if ratio < 1.0:
        barrier = delta * (1.0 - ratio) ** beta
        return -math.expm1(-(pulse_width / tau0) * math.exp(-barrier))
    floor = -math.expm1(-pulse_width / tau0)
    decay = math.exp(-2.0 * (ratio - 1.0) * pulse_width / tau_d)
    prec = math.exp(-(math.pi**2 * delta / 4.0) * decay)
    return max(floor, prec)


def sample_parallel_conductance(z_diameter, z_ra, diameter, diameter_sigma, resistance_area,
                                resistance_area_sigma):
    """Per-device parallel-state conductance and diameter from standard normals.

    d = max(d0 + sigma_d z_d, 1 nm); RA = RA0 exp(sigma_RA z_RA) (log-normal, median RA0);
    G_P = A(d) / RA.

    Returns
    -------
    g_parallel : ndarray, S
    diameter : ndarray, m
    """
    d = np.maximum(diameter + diameter_sigma * np.asarray(z_diameter), MIN_DIAMETER)
    ra = resistance_area * np.exp(resistance_area_sigma * np.asarray(z_ra))
    return (math.pi / 4.0) * d * d / ra, d


@kernel
def _sample_parallel_conductance_jit(z_diameter, z_ra, diameter, diameter_sigma, resistance_area,
                                     resistance_area_sigma):
    """Scalar twin of :func:`sample_parallel_conductance`; returns ``(g_parallel, d)``."""
    d = diameter + diameter_sigma * z_diameter
    d = MIN_DIAMETER if d < MIN_DIAMETER else d
    ra = resistance_area * _exp(resistance_area_sigma * z_ra)
    return (math.pi / 4.0) * d * d / ra, d


def classify_defects(u, stuck_p, stuck_ap, short, open_):
    """Defect code per device from a uniform in (0, 1), one draw per device.

    The unit interval is cut into consecutive pieces of length stuck_p, stuck_ap,
    short, open; a device whose draw falls past them all is healthy.
    """
    u = np.asarray(u)
    c1 = stuck_p
    c2 = c1 + stuck_ap
    c3 = c2 + short
    c4 = c3 + open_
    return np.select(
        [u < c1, u < c2, u < c3, u < c4],
        [DEFECT_STUCK_P, DEFECT_STUCK_AP, DEFECT_SHORT, DEFECT_OPEN],
        DEFECT_NONE,
    ).astype(np.uint8)


@kernel
def _classify_defect_jit(u, stuck_p, stuck_ap, short, open_):
    """Scalar twin of :func:`classify_defects`."""
    c = stuck_p
    if u < c:
        return DEFECT_STUCK_P
    c += stuck_ap
    if u < c:
        return DEFECT_STUCK_AP
    c += short
    if u < c:
        return DEFECT_SHORT
    c += open_
    if u < c:
        return DEFECT_OPEN
    return DEFECT_NONE


def nominal_conductances(device) -> tuple[float, float]:
    """Nominal (G_P, G_AP) at zero bias of a :class:`~mcmtj.config.DeviceConfig`, S."""
    g_p = (math.pi / 4.0) * device.diameter**2 / device.resistance_area
    return g_p, g_p / (1.0 + device.tmr)


@kernel
def _sample_gamma_jit(shape, st):
    """Gamma(shape, 1) variate by Marsaglia-Tsang, consuming words from stream ``st``."""
    boost = 1.0
    if shape < 1.0:
        # Gamma(a) = Gamma(a + 1) U^(1/a)
        boost = u32_to_uniform_jit(float(stream_u32(st))) ** (1.0 / shape)
        shape += 1.0
    d = shape - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        x = normal_ppf(u32_to_uniform_jit(float(stream_u32(st))))
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        u = u32_to_uniform_jit(float(stream_u32(st)))
        if math.log(u) < 0.5 * x * x + d - d * v + d * math.log(v):
            return boost * d * v


@kernel
def _sample_rate_jit(mean, dispersion, st):
    """Per-instance defect rate: Beta with this mean and variance m(1-m)phi; phi = 0 gives
    the mean itself and consumes nothing."""
    if dispersion == 0.0 or mean == 0.0 or mean == 1.0:
        return mean
    concentration = 1.0 / dispersion - 1.0
    a = _sample_gamma_jit(mean * concentration, st)
    b = _sample_gamma_jit((1.0 - mean) * concentration, st)
    return a / (a + b)
