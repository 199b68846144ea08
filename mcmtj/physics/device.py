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

import csv
import math
from pathlib import Path

import numpy as np

from mcmtj.config import ConfigError
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
    "load_wer_table",
    "wer_table_curves",
    "table_switching_probability",
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


#: Barrier (in kT) below which the Neel-Brown thermal law is no longer trusted: Kramers/Brown
#: escape rates are asymptotic in a barrier large against kT (a few kT at least). Where the
#: current-lowered barrier Delta (1 - I/I_c0)^beta falls below it, the crossover begins.
THERMAL_MIN_BARRIER = 5.0


def _switching_probability(current, critical_current, delta, pulse_width, tau0, tau_d, beta):
    # Scalar source shared by the njit twin and the CUDA kernel (plain arithmetic and math).
    # The model's two documented exponents skip libm's pow (a third of a disturb
    # evaluation): pow is exact at exponents 1 (y) and 0 (1.0), so beta = 1 keeps the same
    # bits; at 2, y * y is the correctly rounded square (what NumPy's ``** 2`` computes;
    # libm's pow is within a ulp of it). Below I_c0 the precessional decay factor is
    # exp(-0.0) = 1.0 exactly, so its call is skipped (same bits).
    ratio = current / critical_current
    a = pulse_width / tau0
    r1 = 0.0
    if delta > THERMAL_MIN_BARRIER:
        q = THERMAL_MIN_BARRIER / delta
        r1 = 1.0 - (q if beta == 1.0 else q ** (1.0 / beta))
    if ratio <= r1:
        y = 1.0 - ratio
        y_beta = y if beta == 1.0 else (y * y if beta == 2.0 else y**beta)
        log_wer = -a * math.exp(-delta * y_beta)
    else:
        x1 = 1.0 - r1
        x1_beta = x1 if beta == 1.0 else (x1 * x1 if beta == 2.0 else x1**beta)
        x1_beta_m1 = 1.0 if beta == 1.0 else (x1 if beta == 2.0 else x1 ** (beta - 1.0))
        log_wer1 = -a * math.exp(-delta * x1_beta)
        # tangent of the thermal log WER at r1 (C1 join), continued in a straight line
        slope = -log_wer1 * delta * beta * x1_beta_m1
        log_wer = log_wer1 - slope * (ratio - r1)
    p_thermal = -math.expm1(log_wer)
    p_prec = -(math.pi * math.pi * delta / 4.0)
    if ratio > 1.0:
        p_prec = p_prec * math.exp(-2.0 * (ratio - 1.0) * pulse_width / tau_d)
    p_prec = math.exp(p_prec)
    return p_thermal if p_thermal > p_prec else p_prec


def switching_probability(current, critical_current, delta, pulse_width, tau0, tau_d, beta):
    """Probability that one pulse switches a device (1 - write-error rate).

    Three pieces, in the write-error rate WER = 1 - P and r = I / I_c0:

    1. **Thermal activation** (Neel-Brown with a current-lowered barrier; Koch, Katine &
       Sun, PRL 92, 088302 (2004)) while the barrier is at least ``B = THERMAL_MIN_BARRIER``
       (5 kT), i.e. for ``r <= r1 = 1 - (B / Delta)^(1/beta)`` (``r1 = 0`` if Delta <= B)::

           ln WER_th(r) = -(t/tau0) exp(-Delta (1 - r)^beta)

    2. **Crossover** for ``r > r1``: ln WER continues along the tangent of ln WER_th at r1
       (continuous with a continuous slope)::

           ln WER_x(r) = L1 - s (r - r1),  L1 = ln WER_th(r1),
           s = -L1 Delta beta (1 - r1)^(beta - 1) > 0

       (for Delta > B: ``L1 = -(t/tau0) e^-B``).
    3. **Precessional switching** from a thermal initial angle (Sun, PRB 62, 570 (2000);
       the WER form of Butler et al., IEEE Trans. Magn. 48, 4684 (2012))::

           WER_pr(r) = 1 - exp(-(pi^2 Delta / 4) exp(-2 (max(r, 1) - 1) t / tau_D))

    and ``WER = min(WER_th or WER_x, WER_pr)``: the more effective mechanism wins. Both
    branches are continuous and non-increasing in r and in t, the first strictly in r, so
    WER falls strictly and continuously through I_c0 (it can only be flat where
    WER > 1 - exp(-pi^2 Delta/4), i.e. never for Delta > 10). The crossover runs from
    ``r1 I_c0`` up to where the line meets WER_pr: about 0.89 to 1.16 I_c0 for Delta = 45,
    beta = 1, t = 20 ns, tau0 = tau_D = 1 ns (up to ~3.6 I_c0 at t = 1 ns, where the
    precessional formula needs a large overdrive). The former ``max(1 - exp(-t/tau0),
    P_prec)`` joint kept the zero-barrier thermal rate 1/tau0 from I_c0 up to ~1.7 I_c0 (a
    flat WER = exp(-t/tau0)); here Neel-Brown is not used where its barrier is below 5 kT.

    Parameters
    ----------
    current : array_like
        Current magnitude in the switching direction, A.
    critical_current : array_like
        Zero-temperature critical current I_c0 for this direction, A.
    delta : array_like
        Thermal stability factor (barrier / kT), >= 0.
    pulse_width : array_like
        Pulse width t, s.
    tau0, tau_d : float
        Thermal attempt time, precessional time constant, s.
    beta : float
        Exponent of (1 - I/I_c0) in the thermal barrier (1 to 2).

    Returns
    -------
    ndarray
        Switching probability, computed as ``max(-expm1(ln WER_th|x), P_pr)`` so that small
        probabilities (disturbs) keep full relative precision.
    """
    current, critical_current, delta, pulse_width = np.broadcast_arrays(
        np.asarray(current, float), np.asarray(critical_current, float),
        np.asarray(delta, float), np.asarray(pulse_width, float))
    ratio = current / critical_current
    a = pulse_width / tau0
    big = delta > THERMAL_MIN_BARRIER
    r1 = np.where(big, 1.0 - (THERMAL_MIN_BARRIER / np.where(big, delta, 1.0)) ** (1.0 / beta),
                  0.0)
    x1 = 1.0 - r1
    log_wer1 = -a * np.exp(-delta * x1**beta)
    slope = -log_wer1 * delta * beta * x1 ** (beta - 1.0)
    thermal = -a * np.exp(-delta * np.maximum(1.0 - ratio, 0.0) ** beta)
    log_wer = np.where(ratio <= r1, thermal, log_wer1 - slope * (ratio - r1))
    p_thermal = -np.expm1(log_wer)
    decay = np.exp(-2.0 * np.maximum(ratio - 1.0, 0.0) * pulse_width / tau_d)
    p_prec = np.exp(-(np.pi**2 * delta / 4.0) * decay)
    return np.maximum(p_thermal, p_prec)


_switching_probability_jit = kernel(_switching_probability)


# --- measured write-error-rate tables ---------------------------------------------
#: directions of a WER table, in the order the kernels store their curves
TABLE_DIRECTIONS = ("ap_to_p", "p_to_ap")
_TABLE_FIELD = "write.wer_table"


def load_wer_table(path) -> dict:
    """Read and check a measured write-error-rate table (CSV).

    Columns (header row, any order, extra columns ignored): ``voltage`` (pulse amplitude
    across the device, V, >= 0), ``pulse_width`` (s, > 0), ``wer`` (write-error rate
    1 - P_switch, 0 < wer <= 1: the curves are interpolated in log WER, so give the
    measurement floor instead of 0) and optionally ``direction`` (``ap_to_p`` or
    ``p_to_ap``; without it one table serves both directions). Every (direction,
    pulse width) curve needs at least two distinct voltages and a WER that does not rise
    with the voltage.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    dict
        ``direction -> {pulse_width: (voltages, wer)}`` with both directions present and
        voltages ascending.

    Raises
    ------
    ConfigError
        One line naming ``write.wer_table`` and the file: missing file or column, a value
        that is not a finite number, a rate outside (0, 1], too few points, a repeated
        voltage, a WER that rises with the voltage, an unknown direction.
    """
    path = Path(path)
    where = f"{_TABLE_FIELD} = {str(path)!r}"
    if not path.is_file():
        raise ConfigError(f"{where}: file not found")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        reader = csv.reader(lines)
        header = [h.strip().lower() for h in (next(reader, None) or [])]
        rows = [(line, dict(zip(header, cells, strict=False)))
                for line, cells in enumerate(reader, start=2) if cells]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"{where}: cannot read the CSV: {exc}") from None
    missing = [c for c in ("voltage", "pulse_width", "wer") if c not in header]
    if missing:
        raise ConfigError(f"{where}: missing column(s) {missing}: need voltage, pulse_width, "
                          "wer (and optionally direction)")
    has_dir = "direction" in header
    curves: dict = {d: {} for d in TABLE_DIRECTIONS}
    for line, row in rows:
        row = {k: v.strip() for k, v in row.items()}
        if len(row) < len(header):
            raise ConfigError(f"{where}: line {line}: {len(row)} values for {len(header)} "
                              "columns")
        values = []
        for col in ("voltage", "pulse_width", "wer"):
            try:
                x = float(row[col])
            except ValueError:
                raise ConfigError(f"{where}: line {line}: {col} = {row[col]!r} is not a "
                                  "number") from None
            if not math.isfinite(x):
                raise ConfigError(f"{where}: line {line}: {col} = {row[col]} is not finite")
            values.append(x)
        v, t, wer = values
        if v < 0.0:
            raise ConfigError(f"{where}: line {line}: voltage = {v!r} must be >= 0 (V)")
        if t <= 0.0:
            raise ConfigError(f"{where}: line {line}: pulse_width = {t!r} must be > 0 (s)")
        if not 0.0 < wer <= 1.0:
            raise ConfigError(f"{where}: line {line}: wer = {wer!r} is out of range: must be "
                              "> 0 and <= 1 (log-space interpolation: give the floor, not 0)")
        dirs = TABLE_DIRECTIONS
        if has_dir:
            name = row["direction"].lower()
            if name not in TABLE_DIRECTIONS:
                raise ConfigError(f"{where}: line {line}: direction = {row['direction']!r} "
                                  f"must be one of {', '.join(TABLE_DIRECTIONS)}")
            dirs = (name,)
        for name in dirs:
            curves[name].setdefault(t, []).append((v, wer))
    out = {}
    for name in TABLE_DIRECTIONS:
        if not curves[name]:
            raise ConfigError(f"{where}: no rows for direction {name} (give both directions, "
                              "or no direction column)")
        out[name] = {}
        for t, points in sorted(curves[name].items()):
            points.sort()
            v = np.array([p[0] for p in points])
            wer = np.array([p[1] for p in points])
            label = f"{where}: {name} at pulse_width {t:g} s"
            if v.size < 2:
                raise ConfigError(f"{label}: too few points ({v.size}); need >= 2 voltages")
            if np.any(np.diff(v) == 0.0):
                repeated = v[1:][np.diff(v) == 0.0][0]
                raise ConfigError(f"{label}: voltage {repeated:g} V is repeated")
            if np.any(np.diff(wer) > 0.0):
                k = int(np.argmax(np.diff(wer) > 0.0))
                raise ConfigError(f"{label}: wer is not monotone in voltage (rises from "
                                  f"{wer[k]:g} at {v[k]:g} V to {wer[k + 1]:g} at "
                                  f"{v[k + 1]:g} V); it must not rise with the voltage")
            out[name][t] = (v, wer)
    return out


def wer_table_curves(table: dict, pulse_width: float, path="") -> list:
    """Per direction, the table's ln WER against voltage at ``pulse_width``.

    Within a pulse width ln WER is linear in V between measured voltages and constant
    beyond the first and last (no extrapolation); between the two measured widths that
    bracket ``pulse_width`` it is linear in ln t. The result is exact as a piecewise-linear
    function on the union of the two widths' voltages.

    Parameters
    ----------
    table : dict
        From :func:`load_wer_table`.
    pulse_width : float
        The study's ``write.pulse_width``, s; it must lie within the table's widths.
    path : str, optional
        The table's file, for error messages.

    Returns
    -------
    list of (voltages, log_wer)
        In :data:`TABLE_DIRECTIONS` order.

    Raises
    ------
    ConfigError
        ``pulse_width`` outside the measured widths (it is never extrapolated).
    """
    out = []
    for name in TABLE_DIRECTIONS:
        widths = np.array(sorted(table[name]))
        if not widths[0] * (1 - 1e-9) <= pulse_width <= widths[-1] * (1 + 1e-9):
            raise ConfigError(
                f"write.pulse_width = {pulse_width!r} is outside the pulse widths "
                f"{widths[0]:g} to {widths[-1]:g} s of {_TABLE_FIELD} = {str(path)!r} "
                f"({name}); WER tables are not extrapolated in pulse width")
        k = int(np.clip(np.searchsorted(widths, pulse_width), 1, max(widths.size - 1, 1)))
        if widths.size == 1:
            v, wer = table[name][widths[0]]
            out.append((v.copy(), np.log(wer)))
            continue
        t0, t1 = widths[k - 1], widths[k]
        lam = min(max((math.log(pulse_width) - math.log(t0)) / (math.log(t1) - math.log(t0)),
                      0.0), 1.0)
        (v0, w0), (v1, w1) = table[name][t0], table[name][t1]
        knots = np.union1d(v0, v1)
        log_wer = ((1 - lam) * np.interp(knots, v0, np.log(w0))
                   + lam * np.interp(knots, v1, np.log(w1)))
        out.append((knots, log_wer))
    return out


def table_switching_probability(voltage, knots, log_wer):
    """Switching probability ``1 - exp(ln WER(V))`` of a table curve (NumPy reference).

    ``knots`` ascending voltages (V) and ``log_wer`` from :func:`wer_table_curves`; ln WER
    is linear between knots and constant beyond the ends.
    """
    return -np.expm1(np.interp(np.asarray(voltage, float), knots, log_wer))


def _table_switching_probability(table, start, n, voltage):
    # Scalar twin of table_switching_probability over table[start:start + n] (voltages) and
    # table[start + n:start + 2n] (ln WER). Plain arithmetic: njit and CUDA share it.
    if voltage <= table[start]:
        return -math.expm1(table[start + n])
    if voltage >= table[start + n - 1]:
        return -math.expm1(table[start + 2 * n - 1])
    lo = 0
    hi = n - 1
    while hi - lo > 1:  # bisection: table[start + lo] < voltage < table[start + hi]
        mid = (lo + hi) // 2
        if table[start + mid] <= voltage:
            lo = mid
        else:
            hi = mid
    v0 = table[start + lo]
    v1 = table[start + hi]
    l0 = table[start + n + lo]
    l1 = table[start + n + hi]
    return -math.expm1(l0 + (l1 - l0) * (voltage - v0) / (v1 - v0))


_table_switching_probability_jit = kernel(_table_switching_probability)


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
