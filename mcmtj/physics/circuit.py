"""Circuit solver of a passive (selector-less) MTJ crossbar (design.md "Array model").

Netlist
-------
Crossbar of m rows x n columns, conductances ``G[i, j]`` in siemens (``G = 0`` is an open
device; a short is just a large G). Row i is driven by a voltage source V_i at its left end,
with one wire segment of resistance ``r_row`` between the driver and cell (i, 0) and one
between adjacent cells (i, j) and (i, j+1); its right end is open. Column j is read at
virtual ground at its bottom end, with one segment ``r_col`` between adjacent cells (i, j)
and (i+1, j) and one between cell (m-1, j) and the sense amplifier (virtual ground). Device
(i, j) joins the row node and the column node of that cell. The output current of column j
is the current into the virtual ground. When ``r_row = r_col = 0`` the output is exactly
``I = G^T V``.

A line with zero wire resistance is a single node. In a write pulse every line is driven
at its end (rows at the left, columns at the bottom) through a driver/contact resistance
``r_driver`` in series with its first segment (:func:`write_voltages`). In a write-verify read
(:func:`verify_read_resistance`) the same drivers and sense amplifiers hold the unselected
lines at ``v_read / 2`` ("half") or are disconnected from them ("floating").

Functions
---------
transfer_matrix
    T (n x m) with I = T @ V, once per array instance (the read is linear for fixed G).
node_voltages
    Row-node and column-node voltages of one read.
read_currents_nonlinear
    Column currents with bias-dependent TMR (fixed-point iteration).
verify_read_resistance
    Resistance sensed for one device in a write-verify read, sneak paths included.
write_voltages
    Device voltages of one write pulse through the lines (V/2, V/3 or selected-only bias).

Every function has a numba kernel in ``mcmtj.physics._circuit_kernels`` that other kernels can call
(serial, no allocation: the caller passes a flat float64 work buffer sized by the matching
``_*_work_size(m, n)``).
"""

from __future__ import annotations

import numbers

import numpy as np

from mcmtj.physics._circuit_kernels import (
    BIAS_NONE,
    BIAS_V2,
    BIAS_V3,
    IR_FAST,
    IR_FULL,
    SCHEME_FLOATING,
    SCHEME_HALF,
    _nonlinear_read_batch,
    _nonlinear_work_size,
    _solve_nodes,
    _solve_work_size,
    _transfer_matrix_batch,
    _transfer_work_size,
    _verify_read_batch,
    _verify_work_size,
    _write_bias_kernel,
    _write_sources,
    _write_work_size,
)

__all__ = [
    "transfer_matrix",
    "node_voltages",
    "read_currents_nonlinear",
    "verify_read_resistance",
    "write_voltages",
]

_SCHEMES = {"floating": SCHEME_FLOATING, "half": SCHEME_HALF}
_WRITE_SCHEMES = {"none": BIAS_NONE, "v2": BIAS_V2, "v3": BIAS_V3}
_IR_SOLVERS = {"fast": IR_FAST, "full": IR_FULL}
#: the fast write solver keeps its one-step answer when its estimated relative error of the
#: selected-cell voltage is below this, else it iterates line Gauss-Seidel sweeps ...
FAST_ACCEPT = 1e-3
#: ... until no node moves by more than this times the pulse amplitude ...
FAST_TOL = 1e-7
#: ... or this many sweeps have run (then the solve counts as not converged).
FAST_MAX_SWEEPS = 2000


# ----------------------------------------------------------------------------- validation
def _c_array(x, dtype=np.float64):
    """C-contiguous, writeable copy if needed: one numba type per argument, one compile."""
    return np.require(x, dtype=dtype, requirements=["C", "W"])


def _conductances(G, name="G", batch=False):
    G = _c_array(G)
    ndims = (2, 3) if batch else (2,)
    if G.ndim not in ndims or G.shape[-2] == 0 or G.shape[-1] == 0:
        shape = "(m, n) or (k, m, n)" if batch else "(m, n)"
        raise ValueError(
            f"{name} must be a non-empty 2-D array (rows x columns) of shape {shape}, "
            f"got shape {G.shape}"
        )
    if not np.all(np.isfinite(G)):
        raise ValueError(f"{name} must be finite (model a short as a large conductance)")
    if np.any(G < 0):
        raise ValueError(f"{name} must be non-negative (0 is an open device)")
    return G


def _resistance(value, name):
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite resistance >= 0 ohm, got {value}")
    return value


def _inputs(V, m):
    V = _c_array(V)
    if V.ndim not in (1, 2) or V.shape[-1] != m:
        raise ValueError(f"V must have shape (m,) or (k, m) with m = {m} rows, got {V.shape}")
    if not np.all(np.isfinite(V)):
        raise ValueError("V must be finite")
    return V


# ----------------------------------------------------------------------------- public API
def transfer_matrix(G, r_row=0.0, r_col=0.0):
    """Transfer matrix of a crossbar read: column currents ``I = T @ V``.

    The read is linear for fixed conductances, so T is computed once per array instance
    and inference is a matrix product. Solves the full nodal equations of the netlist in
    the module docstring to 1e-10 relative per element (checked against a sparse LU in
    the tests) in one of two ways. Exact elimination: row lines are eliminated as
    tridiagonal chains, then the column nodes by block Gaussian elimination; cost
    O(m n^2 (n + m)) with n <= m (a wide array is solved as its reciprocal transpose), a
    few tens of microseconds for 15 x 15. Line Gauss-Seidel from the ideal solution
    ``G.T``, when the wires are light against the devices (r G n^2 << 1): each sweep
    solves every row line and then every column line exactly for all inputs at once,
    O(m n min(m, n)), and sweeps stop on a rigorous element-wise error bound. A cheap bound
    picks it only where it needs few enough sweeps to be faster (at 15 x 15 about
    r <= 0.5 ohm for 5-20 kohm devices without shorts; larger arrays afford more sweeps),
    and it hands over to the elimination whenever its tighter bound asks for more.

    Parameters
    ----------
    G : array_like, shape (m, n) or (k, m, n)
        Device conductances, S (rows x columns), of one array or of k arrays. 0 is an open
        device, a short a large value.
    r_row, r_col : float, optional
        Wire resistance per cell segment of the row and column lines, ohm (default 0).

    Returns
    -------
    T : ndarray, shape (n, m) or (k, n, m)
        Transfer conductances, S: ``T[j, i]`` is the current (A) into the sense node of
        column j per volt on row i. Exactly ``G.T`` (a copy) when both resistances are 0.

    Examples
    --------
    >>> import numpy as np
    >>> G = np.full((2, 3), 1e-4)
    >>> T = transfer_matrix(G, r_row=2.0, r_col=2.0)
    >>> T.shape
    (3, 2)
    >>> bool(np.all(T < G.T))  # here line resistance only loses current
    True
    """
    G = _conductances(G, batch=True)
    r_row = _resistance(r_row, "r_row")
    r_col = _resistance(r_col, "r_col")
    if r_row == 0.0 and r_col == 0.0:
        return np.swapaxes(G, -1, -2).copy()
    Gs = G if G.ndim == 3 else G[None]
    k, m, n = Gs.shape
    out = np.empty((k, n, m))
    work = np.empty(_transfer_work_size(m, n))
    _transfer_matrix_batch(Gs, r_row, r_col, work, out)
    return out if G.ndim == 3 else out[0]


def node_voltages(G, V, r_row=0.0, r_col=0.0):
    """Node voltages of one read (rows driven by ``V``, columns at virtual ground).

    Parameters
    ----------
    G : array_like, shape (m, n)
        Device conductances, S.
    V : array_like, shape (m,)
        Row driver voltages, V.
    r_row, r_col : float, optional
        Wire resistance per cell segment, ohm.

    Returns
    -------
    row_nodes, column_nodes : ndarray, shape (m, n)
        Voltage (V) of the row node and of the column node of every cell; device (i, j)
        sees ``row_nodes[i, j] - column_nodes[i, j]``. A line without wire resistance is one
        node, repeated in each cell.
    """
    G = _conductances(G)
    m, n = G.shape
    V = _inputs(V, m)
    if V.ndim != 1:
        raise ValueError(f"V must have shape ({m},), got {V.shape}")
    r_row = _resistance(r_row, "r_row")
    r_col = _resistance(r_col, "r_col")
    row_nodes = np.empty((m, n))
    column_nodes = np.empty((m, n))
    work = np.empty(_solve_work_size(m, n))
    _solve_nodes(
        G, r_row, r_col, 0.0, np.ones(m), V, np.ones(n), np.zeros(n), work, row_nodes,
        column_nodes,
    )
    return row_nodes, column_nodes


def read_currents_nonlinear(
    g_parallel, tmr0, state, v_h, V, r_row=0.0, r_col=0.0, tol=1e-9, max_iter=50
):
    """Column currents of a read in which the TMR depends on each device's own voltage.

    ``G_P = g_parallel`` (bias independent); ``G_AP(v) = g_parallel / (1 + TMR(v))`` with
    ``TMR(v) = tmr0 / (1 + (v / v_h)^2)`` and v the device voltage (row node minus column
    node). Fixed-point iteration from the zero-bias conductances: solve the linear network,
    update every G from its voltage, until the largest relative change of G is below
    ``tol``. Without line resistance every device sees its row voltage and one update is
    exact. Each iteration is a full solve, O(m n^3).

    Parameters
    ----------
    g_parallel : float or array_like, shape (m, n)
        Parallel-state conductance, S (0 for an open device).
    tmr0 : float or array_like, shape (m, n)
        Zero-bias TMR ratio (R_AP / R_P - 1), dimensionless.
    state : array_like of int, shape (m, n)
        1 = parallel (P), 0 = antiparallel (AP).
    v_h : float
        Bias voltage at which the TMR halves, V (> 0).
    V : array_like, shape (m,) or (k, m)
        Row driver voltages, V; one read per row of a 2-D array.
    r_row, r_col : float, optional
        Wire resistance per cell segment, ohm.
    tol : float, optional
        Convergence threshold on the maximum relative change of any conductance.
    max_iter : int, optional
        Maximum number of network solves.

    Returns
    -------
    I : ndarray, shape (n,) or (k, n)
        Column currents into the sense nodes, A, from the last solve.
    converged : bool or ndarray of bool, shape (k,)
        False when ``max_iter`` solves did not reach ``tol`` (I is then not accepted
        silently: check it).
    iterations : int or ndarray of int, shape (k,)
        Network solves performed (1 without line resistance).
    """
    state = np.asarray(state)
    if state.ndim != 2:
        raise ValueError(f"state must be a 2-D array (rows x columns), got shape {state.shape}")
    if not np.all((state == 0) | (state == 1)):
        raise ValueError("state must hold 1 (P) or 0 (AP)")
    state = _c_array(state, np.int8)
    m, n = state.shape
    g_parallel = _conductances(np.broadcast_to(g_parallel, (m, n)), "g_parallel")
    tmr0 = _c_array(np.broadcast_to(tmr0, (m, n)))
    if not np.all(np.isfinite(tmr0)) or np.any(tmr0 < 0):
        raise ValueError("tmr0 must be finite and >= 0")
    v_h = float(v_h)
    if not np.isfinite(v_h) or v_h <= 0:
        raise ValueError(f"v_h must be a finite voltage > 0 V, got {v_h}")
    V = _inputs(V, m)
    r_row = _resistance(r_row, "r_row")
    r_col = _resistance(r_col, "r_col")
    tol = float(tol)
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol}")
    if not isinstance(max_iter, numbers.Integral) or max_iter < 1:
        raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}")
    single = V.ndim == 1
    V2 = V[None, :] if single else V
    k = V2.shape[0]
    out = np.empty((k, n))
    converged = np.empty(k, dtype=np.bool_)
    iterations = np.empty(k, dtype=np.int64)
    work = np.empty(_nonlinear_work_size(m, n))
    _nonlinear_read_batch(
        g_parallel,
        tmr0,
        state,
        v_h,
        V2,
        r_row,
        r_col,
        tol,
        int(max_iter),
        work,
        out,
        converged,
        iterations,
    )
    if single:
        return out[0], bool(converged[0]), int(iterations[0])
    return out, converged, iterations


def verify_read_resistance(G, i, j, v_read, scheme, r_row=0.0, r_col=0.0):
    """Resistance sensed for device (i, j) in a write-verify read of a passive array.

    Row i is driven at ``v_read``, column j is held at 0 V by its sense amplifier, and the
    unselected lines are either disconnected ("floating": their voltages settle through the
    sneak-path network) or driven at ``v_read / 2`` ("half"). Drivers and sense amplifier
    sit at the line ends of the netlist in the module docstring. Floating lines that no
    non-zero device joins to the selected lines carry no current and are ignored.

    Parameters
    ----------
    G : array_like, shape (m, n)
        Device conductances, S.
    i, j : int or array_like of int
        Selected row and column; arrays (broadcast together) read several devices, one at
        a time.
    v_read : float
        Read voltage, V (non-zero).
    scheme : {"floating", "half"}
        Bias of the unselected lines.
    r_row, r_col : float, optional
        Wire resistance per cell segment, ohm.

    Returns
    -------
    R_sensed : float or ndarray
        ``v_read / I_sensed``, ohm, with I_sensed the current into the sense node of column
        j; ``inf`` when no current flows. Shape of ``i`` and ``j`` broadcast.

    Notes
    -----
    For "half" without line resistance the sneak devices of column j each see
    ``v_read / 2``: ``I = G[i, j] v + sum_{k != i} G[k, j] v / 2``, so R_sensed is below
    ``1 / G[i, j]`` whenever column j holds other conducting devices. Cost per device:
    O(m) for that case, else a full solve, O(m n^3) (O(m n^2 + n^3) without line
    resistance).
    """
    G = _conductances(G)
    m, n = G.shape
    i_arr, j_arr = np.broadcast_arrays(np.asarray(i), np.asarray(j))
    for name, idx, size in (("i", i_arr, m), ("j", j_arr, n)):
        if idx.dtype.kind not in "iu" or np.any(idx < 0) or np.any(idx >= size):
            kind = "row" if name == "i" else "column"
            raise ValueError(f"{name} must be {kind} indices in [0, {size}), got {idx!r}")
    v_read = float(v_read)
    if not np.isfinite(v_read) or v_read == 0:
        raise ValueError(f"v_read must be a finite non-zero voltage, got {v_read}")
    if scheme not in _SCHEMES:
        raise ValueError(f"scheme must be one of {sorted(_SCHEMES)}, got {scheme!r}")
    r_row = _resistance(r_row, "r_row")
    r_col = _resistance(r_col, "r_col")
    rows = _c_array(i_arr.ravel(), np.int64)
    cols = _c_array(j_arr.ravel(), np.int64)
    current = np.empty(rows.shape[0])
    work = np.empty(_verify_work_size(m, n))
    _verify_read_batch(G, rows, cols, v_read, _SCHEMES[scheme], r_row, r_col, work, current)
    with np.errstate(divide="ignore"):
        R = np.where(current == 0.0, np.inf, v_read / current).reshape(i_arr.shape)
    return float(R) if R.ndim == 0 else R


def write_voltages(G, i, j, amplitude, scheme="v2", r_row=0.0, r_col=0.0, r_driver=0.0,
                   solver="fast"):
    """Device voltages of one write pulse on device (i, j) through resistive lines.

    Every line is driven at its end (rows at column 0, columns at row m-1, the netlist of
    the module docstring) by an ideal source behind ``r_driver`` and its first segment:
    "v2" drives row i at +A/2, column j at -A/2 and every other line at 0; "v3" row i at
    +2A/3, column j at -A/3, other rows at 0 and other columns at +A/3; "none" row i at A
    and every other line at 0 (for an array whose devices sit behind access devices, pass
    G zero outside (i, j)). The network is linear: G holds each device's conductance at
    the bias it is taken to have (the engine uses the ideal bias of each device's class).

    Parameters
    ----------
    G : array_like, shape (m, n)
        Device conductances, S (0: open device).
    i, j : int
        Selected row and column.
    amplitude : float
        Pulse amplitude A, V (the selected device sees A when the lines are ideal).
    scheme : {"v2", "v3", "none"}
        Bias of the unselected lines.
    r_row, r_col : float
        Wire resistance per cell segment, ohm.
    r_driver : float
        Series resistance of each line's driver and contact, ohm.
    solver : {"fast", "full"}
        "full": exact nodal solve, O(m n^2 (m + n)). "fast": the selected row and column
        solved exactly with every other line an ideal source at its driver's voltage,
        O(m + n); when its error estimate (the current each unselected line carries times
        its path to the driver, times the share of A lost in the selected lines, times 4)
        exceeds ``FAST_ACCEPT`` = 1e-3, line Gauss-Seidel sweeps (O(m n) each) refine it to
        the exact answer within ``FAST_TOL`` x A. Its selected-cell voltage is within
        0.5 % of "full" on 15 x 15 and 64 x 64 arrays with segments up to 10 ohm (tested).

    Returns
    -------
    v : ndarray, shape (m, n)
        Voltage of every device, V (row node minus column node).
    sweeps : int
        Gauss-Seidel sweeps of the fast solver (0: its one-step answer was kept; 0 for
        "full").
    converged : bool
        False when the fast solver stopped at ``FAST_MAX_SWEEPS`` sweeps: ``v`` is then
        not accurate and the caller must not accept it silently.
    """
    G = _conductances(G)
    m, n = G.shape
    for name, idx, size in (("i", i, m), ("j", j, n)):
        if not isinstance(idx, numbers.Integral) or not 0 <= idx < size:
            raise ValueError(f"{name} must be an index in [0, {size}), got {idx!r}")
    amplitude = float(amplitude)
    if not np.isfinite(amplitude):
        raise ValueError(f"amplitude must be a finite voltage, got {amplitude}")
    if scheme not in _WRITE_SCHEMES:
        raise ValueError(f"scheme must be one of {sorted(_WRITE_SCHEMES)}, got {scheme!r}")
    if solver not in _IR_SOLVERS:
        raise ValueError(f"solver must be one of {sorted(_IR_SOLVERS)}, got {solver!r}")
    r_row = _resistance(r_row, "r_row")
    r_col = _resistance(r_col, "r_col")
    r_driver = _resistance(r_driver, "r_driver")
    row_src = np.empty(m)
    col_src = np.empty(n)
    _write_sources(_WRITE_SCHEMES[scheme], amplitude, int(i), int(j), row_src, col_src)
    # nodes the kernel may leave alone (unselected lines at one voltage) sit at their source
    a = np.repeat(row_src[:, None], n, axis=1)
    b = np.repeat(col_src[None, :], m, axis=0)
    work = np.empty(_write_work_size(m, n))
    sweeps, converged = _write_bias_kernel(
        G, r_row, r_col, r_driver, row_src, col_src, int(i), int(j), _IR_SOLVERS[solver],
        FAST_ACCEPT, FAST_TOL, FAST_MAX_SWEEPS, work, a, b)
    return a - b, int(sweeps), bool(converged)
