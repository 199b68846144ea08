"""Numba kernels of the crossbar circuit solver.

The netlist is documented in ``mcmtj.physics.circuit``.

Every kernel is a serial ``kernel`` (njit) function, so it can be called from other kernels,
including the body of a ``prange`` loop over instances. Kernels never allocate: the caller
passes a flat float64 ``work`` buffer of at least ``*_work_size(m, n)`` elements (one per
thread or per instance) and the output arrays.

Method. The nodal matrix of the crossbar is symmetric positive definite (every line reaches a
driver or a pinned node through its wire). Each row line is a tridiagonal chain, so it is
eliminated first: what is left is its Norton equivalent seen from the column nodes of that
crossbar row, a dense n x n block S plus a source vector w, built in O(n) + one O(n^2) fill
from the semiseparable form of the chain's inverse. The column nodes then form a
block-tridiagonal system along the columns with n x n diagonal blocks and ``-g_col * I``
off-diagonal blocks, solved by block Gaussian elimination (block Thomas): exact, and no
pivoting is needed on an SPD matrix. The transfer matrix carries all m right-hand sides
through that elimination at once; cost m n^3 + m^2 n^2 / 2 multiply-adds (n <= m after
transposing a wide array). Chains are factorised in the Grassmann-Taufer-Heyman form
(pivot = grounded part + link), so no pivot is a difference of nearly equal numbers even
when a line is floating.

With low line resistance (the usual case, r G n^2 << 1) the transfer matrix starts from the
ideal solution instead and refines it by line Gauss-Seidel sweeps (``_transfer_gs``, each
row and column line solved exactly in turn, O(m^2 n) per sweep), stopping on a rigorous
element-wise error bound; a cheap bound decides beforehand whether that beats the
elimination, and it hands over to it when the tighter bound asks for more sweeps.

Kernels a caller may use from njit code, with their work sizes:

- ``_transfer_matrix_kernel(G, r_row, r_col, work, out)``, ``_transfer_work_size(m, n)``
- ``_solve_nodes(G, r_row, r_col, r_drv, row_on, row_src, col_on, col_src, work, a, b)``,
  ``_solve_work_size(m, n)``
- ``_nonlinear_read_kernel(g_parallel, tmr0, state, v_h, V, r_row, r_col, tol, max_iter,
  work, out) -> (converged, iterations)``, ``_nonlinear_work_size(m, n)``
- ``_verify_read_kernel(G, i, j, v_read, scheme, r_row, r_col, work) -> current``,
  ``_verify_work_size(m, n)``
- ``_write_bias_kernel(G, r_row, r_col, r_drv, row_src, col_src, r, c, solver, accept, tol,
  max_sweeps, work, a, b) -> (sweeps, converged)``, ``_write_work_size(m, n)``; driver
  voltages from ``_write_sources(scheme, amplitude, r, c, row_src, col_src)``
"""

from __future__ import annotations

import math

from mcmtj.numerics._jit import kernel
from mcmtj.physics.device import _tmr_at_bias_jit

# Transfer matrix by line Gauss-Seidel (``_transfer_gs``): used when the array is at least
# GS_MIN_BLOCK wide both ways and a cheap a-priori bound promises at most GS_MAX_SWEEPS
# sweeps to a rigorous element-wise error bound of GS_TOL; otherwise, and whenever the
# tighter bound computed inside asks for more, the exact block elimination. Measured
# (benchmarks/bench_transfer.py --crossover): at 15 x 15 three sweeps cost ~0.7 of the
# block elimination and four about the same; at 8 x 8 even three cost more; the block
# elimination grows as n^4 and a sweep as n^3, so larger arrays afford more sweeps
# (``_gs_max_sweeps``: 5 at 32 x 32, 9 at 64 x 64, about 0.8 of the measured break-even).
GS_TOL = 1e-10
GS_MIN_BLOCK = 12


@kernel
def _gs_max_sweeps(block):
    """Most Gauss-Seidel sweeps worth trying before the exact elimination is cheaper."""
    return 3 + max(block - 16, 0) // 8

# Verify-read schemes understood by ``_verify_read_kernel``.
SCHEME_FLOATING = 0
SCHEME_HALF = 1


# ----------------------------------------------------------------------------- work sizes
@kernel
def _take(work, o, size):
    """The ``size`` elements of a work buffer from offset ``o``: (view, next offset)."""
    return work[o : o + size], o + size


@kernel
def _take2(work, o, rows, cols):
    """The next ``rows * cols`` elements as a C-contiguous matrix: (view, next offset)."""
    return work[o : o + rows * cols].reshape((rows, cols)), o + rows * cols


@kernel
def _padded(n):
    """Block width rounded up to a multiple of 4: length-4k inner loops vectorise without a
    scalar remainder, which makes the 16-wide blocks of a 15 x 15 array ~25 % faster."""
    return (n + 3) // 4 * 4


@kernel
def _gs_work_size(m, n):
    """Length of the ``work`` buffer ``_transfer_gs`` needs for an m x n array (m <= n)."""
    S = _padded(m)
    return (m + 1) * n * S + 4 * n * S + 8 * m * n + 2 * n + m


@kernel
def _transfer_work_size(m, n):
    """Length of the ``work`` buffer ``_transfer_matrix_kernel`` needs for an m x n array."""
    block = min(m, n)
    nb = _padded(block)
    direct = block * block + (nb + max(m, n)) * nb + nb + 4 * block + max(m, n) + 5 * m * n
    if block < GS_MIN_BLOCK:
        return direct
    return max(direct, 2 * m * n + _gs_work_size(block, max(m, n)))


@kernel
def _gs_promising(G, r_row, r_col, tol, k_max):
    """True when a cheap upper bound of the Gauss-Seidel contraction promises convergence
    of ``_transfer_gs`` within ``k_max`` sweeps: a row node rises at most
    r_row sum_l G_l (l + 1) above its driver when every cell pulls at 1 V (each segment
    carries at most the cells beyond it), a column node likewise towards its sense end.
    An open device makes its entry of T a pure sneak current, orders of magnitude below
    the others, and the element-wise bound needs about one sweep more for it."""
    m, n = G.shape
    tau_r = 0.0
    for i in range(m):
        acc = 0.0
        for j in range(n):
            acc += G[i, j] * (j + 1)
        tau_r = max(tau_r, r_row * acc)
    tau_c = 0.0
    worst = 0.0
    opens = 0.0
    for j in range(n):
        acc = 0.0
        total = 0.0
        smallest = math.inf
        zero = False
        for i in range(m):
            acc += G[i, j] * (m - i)
            total += G[i, j]
            if G[i, j] > 0.0:
                smallest = min(smallest, G[i, j])
            else:
                zero = True
        tau_c = max(tau_c, r_col * acc)
        if total > 0.0:
            worst = max(worst, total / smallest)
            if zero:
                opens = 1.0
    rho = tau_r * tau_c
    if rho >= 0.5:
        return False
    if rho == 0.0 or worst == 0.0:
        return True
    return 1.0 + opens + math.log(tol / (worst * rho)) / math.log(rho) <= k_max


@kernel
def _solve_work_size(m, n):
    """Length of the ``work`` buffer ``_solve_nodes`` needs for an m x n array."""
    return m * n * n + m * n + n * n + 5 * n


@kernel
def _nonlinear_work_size(m, n):
    """Length of the ``work`` buffer ``_nonlinear_read_kernel`` needs for an m x n array."""
    return _solve_work_size(m, n) + 3 * m * n + 2 * m + 2 * n


@kernel
def _verify_work_size(m, n):
    """Length of the ``work`` buffer ``_verify_read_kernel`` needs for an m x n array."""
    return _solve_work_size(m, n) + 2 * m * n + 3 * m + 3 * n


# ----------------------------------------------------------------------------- one line
@kernel
def _line_pivots(shunt, g_link, g_drive, d, e):
    """LDL^T pivots ``d`` of one line's tridiagonal nodal matrix.

    Node k has a shunt ``shunt[k]`` to a fixed node, links ``g_link`` to its neighbours and,
    at node 0 only, ``g_drive`` to the driver. ``e[k]`` is the part of pivot k that leaks to
    fixed nodes; ``d[k] = e[k] + g_link`` (except the last node), which avoids cancellation.
    """
    n = shunt.shape[0]
    e[0] = g_drive + shunt[0]
    for k in range(n - 1):
        d[k] = e[k] + g_link
        e[k + 1] = shunt[k + 1] + g_link * e[k] / d[k]
    d[n - 1] = e[n - 1]


@kernel
def _line_drive_response(d, g_link, g_drive, y):
    """Node voltages of a line driven at 1 V through ``g_drive`` with all shunts at 0 V."""
    n = d.shape[0]
    z = g_drive
    y[0] = z
    for k in range(1, n):
        z = z * g_link / d[k - 1]
        y[k] = z
    y[n - 1] = y[n - 1] / d[n - 1]
    for k in range(n - 2, -1, -1):
        y[k] = (y[k] + g_link * y[k + 1]) / d[k]


@kernel
def _line_solve(d, g_link, rhs, x):
    """Solve one line's tridiagonal system given its pivots ``d``; ``x`` may alias ``rhs``."""
    n = d.shape[0]
    x[0] = rhs[0]
    for k in range(1, n):
        x[k] = rhs[k] + g_link * x[k - 1] / d[k - 1]
    x[n - 1] = x[n - 1] / d[n - 1]
    for k in range(n - 2, -1, -1):
        x[k] = (x[k] + g_link * x[k + 1]) / d[k]


@kernel
def _row_norton(shunt, r_row, drive, r_drv, d, e, y, z, S, w):
    """Norton equivalent (S, w) of one row line seen from the column nodes of its cells.

    The current from the column nodes ``b`` into the row line is ``S @ b - w * v_source``.
    ``drive``: 1.0 if the line's driver is connected, 0.0 if the line floats; ``r_drv``:
    the driver's own series resistance (ohm) before the first segment.
    ``d``, ``e``, ``y``, ``z``: n-vectors of scratch; ``S``: n x n.
    """
    n = shunt.shape[0]
    if r_row == 0.0:
        if drive != 0.0 and r_drv == 0.0:
            for j in range(n):
                for col in range(n):
                    S[j, col] = 0.0
                S[j, j] = shunt[j]
                w[j] = shunt[j]
            return
        # An ideal line is one node, at the conductance-weighted mean of its cells and its
        # driver (conductance 1 / r_drv when driven): S = diag(G) - G G^T / total.
        g_d = drive / r_drv if drive != 0.0 else 0.0
        total = g_d
        for j in range(n):
            total += shunt[j]
        scale = 1.0 / total if total > 0.0 else 0.0
        for j in range(n):
            w[j] = shunt[j] * g_d * scale
            for col in range(n):
                S[j, col] = -shunt[j] * shunt[col] * scale
            S[j, j] = 0.0
    else:
        g = 1.0 / r_row
        g_drive = drive / (r_row + r_drv)
        # With A the line's tridiagonal matrix and inv = A^{-1}: S = diag(shunt) -
        # diag(shunt) inv diag(shunt) and w = g_drive * shunt * inv[:, 0]. For i >= j,
        # inv[i, j] = dinv[j] * rho[j+1] * ... * rho[i], rho[t] = g / f[t] with f the
        # pivots of elimination from the far end, and dinv[j] = 1 / (e[j] + q[j]) adds the
        # grounded parts of both eliminations (GTH form): every quantity is a sum or product
        # of positive numbers, so nothing cancels.
        e[0] = g_drive + shunt[0]
        for k in range(n - 1):
            e[k + 1] = shunt[k + 1] + g * e[k] / (e[k] + g)
        dinv = e
        rho = y
        h = shunt[n - 1]
        dinv[n - 1] = 1.0 / e[n - 1]
        for i in range(n - 1, 0, -1):
            rho[i] = g / (h + g)
            q = h * rho[i]
            dinv[i - 1] = 1.0 / (e[i - 1] + q)
            h = shunt[i - 1] + q
        # Semiseparable form inv[i, j] = u[i] v[j] (i >= j), u the running product of rho:
        # O(n) per line and full-length vector loops for S. Only when the product stays far
        # from underflow (a line hundreds of cells long, low-resistance devices, very
        # resistive wire); otherwise the running product is taken row by row.
        u = d
        u[0] = 1.0
        for i in range(1, n):
            u[i] = u[i - 1] * rho[i]
        if u[n - 1] > 1e-150:
            v = e  # v[j] = dinv[j] / u[j], written over dinv
            for j in range(n):
                v[j] = dinv[j] / u[j]
                y[j] = shunt[j] * u[j]  # G u, written over rho
                z[j] = shunt[j] * v[j]  # G v
            # Diagonal from the row sums (S @ 1 = w): all terms non-negative, no cancellation.
            acc = 0.0
            for i in range(n - 1, -1, -1):
                w[i] = acc  # sum_{j > i} G_j u_j, until w[i] is written below
                acc += y[i]
            lower = 0.0  # sum_{j < i} G_j v_j
            v0 = v[0]
            for i in range(n):
                gi = shunt[i]
                a = -gi * u[i]
                b = -gi * v[i]
                for j in range(i):
                    S[i, j] = a * z[j]
                for j in range(i + 1, n):
                    S[i, j] = b * y[j]
                upper = w[i]
                w[i] = g_drive * gi * u[i] * v0
                S[i, i] = w[i] + gi * (u[i] * lower + v[i] * upper)
                lower += z[i]
            return
        run = z  # run[j] = inv[i, j] for j <= i while row i is built
        for i in range(n):
            if i > 0:
                r = rho[i]
                for j in range(i):
                    run[j] *= r
            run[i] = dinv[i]
            w[i] = g_drive * shunt[i] * run[0]
            gi = shunt[i]
            for j in range(i):
                S[i, j] = -gi * run[j] * shunt[j]
            S[i, i] = 0.0
        for i in range(n):
            for j in range(i + 1, n):
                S[i, j] = S[j, i]
    # Diagonal from the row sums (S @ 1 = w): a sum of non-negative terms, no cancellation.
    # Summed as column sums (S is symmetric) so the inner loop is a vector update, not a
    # serial reduction.
    acc = e
    for j in range(n):
        acc[j] = w[j]
    for i in range(n):
        for j in range(n):
            acc[j] -= S[i, j]
    for j in range(n):
        S[j, j] = acc[j]


@kernel
def _sweep(A, npiv, first_extra, rows, u):
    """Sweep the leading ``npiv`` pivots of ``A``, carrying rows ``first_extra:rows`` along.

    The leading npiv x npiv block D of ``A`` must be symmetric positive definite, and the
    columns npiv: of its rows zero (padding). Afterwards the block holds ``-D^{-1}`` and
    each carried row y holds ``y D^{-1}``. Gauss-Jordan in sweep-operator form, no pivoting
    (none is needed on an SPD matrix): each pivot is one branch-free rank-1 update of every
    row over all ``A.shape[1]`` columns, which vectorises (~3x faster than the textbook loop
    at n = 15, more with a width that is a multiple of 4). ``u``: A.shape[1] of scratch.
    """
    ncol = A.shape[1]
    for p in range(npiv):
        for c in range(ncol):
            u[c] = A[p, c]
        inv_pivot = 1.0 / u[p]
        for r in range(npiv):
            f = A[r, p] * inv_pivot
            for c in range(ncol):
                A[r, c] -= f * u[c]
            A[r, p] = f
        for r in range(first_extra, rows):
            f = A[r, p] * inv_pivot
            for c in range(ncol):
                A[r, c] -= f * u[c]
            A[r, p] = f
        for c in range(ncol):
            A[p, c] = u[c] * inv_pivot
        A[p, p] = -inv_pivot


@kernel
def _invert_spd(A, u):
    """In-place inverse of a symmetric positive definite matrix; ``u``: n-vector of scratch."""
    n = A.shape[0]
    _sweep(A, n, n, n, u)
    for r in range(n):
        for c in range(n):
            A[r, c] = -A[r, c]


# ----------------------------------------------------------------------------- transfer matrix
@kernel
def _transfer_core(G, GT, r_row, r_col, S, A, EV, RU, h, d, e, y, z, w, out):
    """Transfer matrix (``out``, n x m) of an m x n crossbar with r_row > 0 and r_col > 0.

    Block Gaussian elimination down the columns with all m right-hand sides at once, in
    units of the column-wire conductance g_c: the diagonal block of crossbar row k is
    ``D_k / g_c``, and row nb + c of ``A`` holds the reduced right-hand side of input c
    (c <= k) times ``g_c``. Sweeping ``D_k / g_c`` carries those rows along, so the product
    with the inverse costs no separate pass. ``GT``: G transposed (n x m); ``S``: n x n;
    ``A``: (nb + m) x nb with nb = ``_padded(n)``, its padding a decoupled identity block,
    never swept; ``EV``, ``RU``: n x m; ``h``: m; ``d``: nb; ``e``, ``y``, ``z``, ``w``: n.
    """
    m, n = G.shape
    nb = A.shape[1]
    g = 1.0 / r_row
    # Row-line factors (see _row_norton) for all rows at once: the recurrences run along
    # each line, and the inner loops over the m rows vectorise the divisions instead of
    # waiting on one dependent chain per row. EV: pivots e, then 1 / (e + q), then v;
    # RU: rho, then its running product u.
    for k in range(m):
        EV[0, k] = g + GT[0, k]
    for j in range(n - 1):
        for k in range(m):
            EV[j + 1, k] = GT[j + 1, k] + g * EV[j, k] / (EV[j, k] + g)
    for k in range(m):
        h[k] = GT[n - 1, k]
        EV[n - 1, k] = 1.0 / EV[n - 1, k]
    for i in range(n - 1, 0, -1):
        for k in range(m):
            rho = g / (h[k] + g)
            q = h[k] * rho
            RU[i, k] = rho
            EV[i - 1, k] = 1.0 / (EV[i - 1, k] + q)
            h[k] = GT[i - 1, k] + q
    for k in range(m):
        RU[0, k] = 1.0
    for i in range(1, n):
        for k in range(m):
            RU[i, k] *= RU[i - 1, k]
    for j in range(n):
        for k in range(m):
            EV[j, k] /= RU[j, k]

    for j in range(nb):
        for c in range(nb):
            A[j, c] = 0.0
        A[j, j] = 1.0
    for k in range(m):
        # The top block holds -g_c D_{k-1}^{-1}, so D_k / g_c = (S_k + wires) / g_c
        # - g_c D_{k-1}^{-1} is one update. Column wires: a link up (k > 0) and one down,
        # to the next row or to the sense node.
        carry = 0.0 if k == 0 else 1.0
        wire = 1.0 if k == 0 else 2.0
        if RU[n - 1, k] > 1e-150:
            # S_k from the semiseparable factors, straight into the block (as _row_norton).
            v0 = EV[0, k]
            acc = 0.0
            for j in range(n - 1, -1, -1):
                gj = G[k, j]
                y[j] = gj * RU[j, k]
                z[j] = gj * EV[j, k]
                e[j] = acc
                acc += y[j]
            lower = 0.0
            for i in range(n):
                gi = G[k, i]
                ui = RU[i, k]
                vi = EV[i, k]
                a = -gi * ui * r_col
                b = -gi * vi * r_col
                for j in range(i):
                    A[i, j] = carry * A[i, j] + a * z[j]
                for j in range(i + 1, n):
                    A[i, j] = carry * A[i, j] + b * y[j]
                w[i] = g * gi * ui * v0
                diag = w[i] + gi * (ui * lower + vi * e[i])
                A[i, i] = carry * A[i, i] + diag * r_col + wire
                lower += z[i]
        else:
            _row_norton(G[k], r_row, 1.0, 0.0, d, e, y, z, S, w)
            for i in range(n):
                for j in range(n):
                    A[i, j] = carry * A[i, j] + S[i, j] * r_col
                A[i, i] += wire
        # Input k enters at row k with right-hand side w (times g_c, cancelled by the
        # scaling of the block: y (D / g_c)^{-1} = g_c y D^{-1}).
        row = nb + k
        for j in range(nb):
            A[row, j] = w[j] if j < n else 0.0
        _sweep(A, n, nb, nb + k + 1, d)
    # Row nb + c is now g_c * b_{m-1} for input c: the sense currents, i.e. T[:, c].
    for j in range(n):
        for c in range(m):
            out[j, c] = A[nb + c, j]


@kernel
def _transfer_gs(G, r_row, r_col, tol, k_max, work, out):
    """Transfer matrix (``out``, n x m) of an m x n crossbar (r_row > 0, r_col > 0) by line
    Gauss-Seidel from the ideal solution, for m <= n; returns the sweeps, or 0 when the
    a-priori bound says more than ``k_max`` sweeps are needed (``out`` is then garbage and
    the caller solves exactly).

    Unknowns: the node voltages of all m right-hand sides (input s at 1 V, the others at
    0 V), the right-hand side the innermost, padded dimension so every line operation is a
    vector loop. A sweep solves every row line exactly given its column nodes, then every
    column line given its row nodes (tridiagonal, factors shared by all right-hand sides),
    the row solves of four rows interleaved (independent division-free chains). The first
    sweep starts from the ideal solution (column nodes at 0 V).

    Error bound (rigorous, in exact arithmetic): R0 and C0, the maps from column-node to
    row-node errors and back, are non-negative with max-norms tau_r = max(R0 1) and
    tau_c = max(C0 1); one sweep contracts the column-node error by rho = max(C0 R0 1).
    Node voltages lie in [0, 1] V, so after K sweeps every entry obeys
    |T_js - T*_js| <= cs_j tau_r tau_c rho^(K-1), cs_j the sense current of column j with
    all its row nodes at 1 V. Sweeps continue until that bound is below ``tol`` times
    every non-zero |T_js| (structural zeros are exact).
    """
    m, n = G.shape
    S = _padded(m)
    g = 1.0 / r_row
    gc = 1.0 / r_col
    o = 0
    B, o = _take(work, o, (m + 1) * n * S)  # column nodes, (m + 1, n, S); row 0 a ghost
    ar, o = _take(work, o, 4 * n * S)  # row nodes of four rows, (4, n, S)
    FR, o = _take(work, o, m * n)  # row-line elimination factors g / d[j - 1]
    IR, o = _take(work, o, m * n)  # and 1 / d[j]
    FC, o = _take(work, o, m * n)  # column-line factors, from the top
    IC, o = _take(work, o, m * n)
    YR, o = _take(work, o, m * n)  # drive response of each row line
    UR, o = _take(work, o, m * n)  # R0 1
    U2, o = _take(work, o, m * n)  # C0 1
    U3, o = _take(work, o, m * n)  # C0 R0 1
    cs, o = _take(work, o, n)
    ep, o = _take(work, o, n)
    er, o = _take(work, o, m)  # running row pivots
    # row factors (row i along j, driver at j = 0 through one segment). The recurrences run
    # along each row; the inner loops over the m rows are independent chains, so their
    # divisions pipeline instead of each waiting on the one before (same operations, in the
    # same order per row, as one row at a time).
    for i in range(m):
        er[i] = g + G[i, 0]
    for j in range(n - 1):
        for i in range(m):
            d = er[i] + g
            IR[i * n + j] = 1.0 / d
            FR[i * n + j + 1] = g / d
            er[i] = G[i, j + 1] + g * er[i] / d
    # drive response (rhs g at node 0) and R0 1 (rhs G)
    for i in range(m):
        IR[i * n + n - 1] = 1.0 / er[i]
        YR[i * n] = g
        UR[i * n] = G[i, 0]
    for j in range(1, n):
        for i in range(m):
            k = i * n + j
            YR[k] = FR[k] * YR[k - 1]
            UR[k] = G[i, j] + FR[k] * UR[k - 1]
    for i in range(m):
        k = i * n + n - 1
        YR[k] *= IR[k]
        UR[k] *= IR[k]
    for j in range(n - 2, -1, -1):
        for i in range(m):
            k = i * n + j
            YR[k] = IR[k] * (YR[k] + g * YR[k + 1])
            UR[k] = IR[k] * (UR[k] + g * UR[k + 1])
    tau_r = 0.0
    for k in range(m * n):
        tau_r = max(tau_r, UR[k])
    # column factors (column j along i from the top, sense at the bottom through one segment)
    for j in range(n):
        ep[j] = G[0, j]
    for i in range(m):
        for j in range(n):
            d = ep[j] + gc
            IC[i * n + j] = 1.0 / d
            if i + 1 < m:
                FC[(i + 1) * n + j] = gc / d
                ep[j] = G[i + 1, j] + gc * ep[j] / d
    # C0 1 (U2) and C0 R0 1 (U3)
    for i in range(m):
        for j in range(n):
            k = i * n + j
            x2 = G[i, j]
            x3 = G[i, j] * UR[k]
            if i > 0:
                x2 += FC[k] * U2[k - n]
                x3 += FC[k] * U3[k - n]
            U2[k] = x2
            U3[k] = x3
    tau_c = 0.0
    rho = 0.0
    for i in range(m - 1, -1, -1):
        for j in range(n):
            k = i * n + j
            if i < m - 1:
                U2[k] = IC[k] * (U2[k] + gc * U2[k + n])
                U3[k] = IC[k] * (U3[k] + gc * U3[k + n])
            else:
                U2[k] = IC[k] * U2[k]
                U3[k] = IC[k] * U3[k]
            tau_c = max(tau_c, U2[k])
            rho = max(rho, U3[k])
    for j in range(n):
        cs[j] = gc * U2[(m - 1) * n + j]
    lead = tau_r * tau_c  # error bound of a^1 relative to cs (in units of V)
    # first guess of the sweeps from the ideal transfer matrix
    q = math.inf
    for j in range(n):
        if cs[j] > 0.0:
            for i in range(m):
                if G[i, j] > 0.0:
                    q = min(q, G[i, j] / cs[j])
    if lead == 0.0 or rho == 0.0 or q == math.inf:
        k_need = 1
    else:
        if rho >= 1.0:
            return 0
        k_need = 1 + int(math.ceil(math.log(tol * q / lead) / math.log(rho)))
        k_need = max(k_need, 1)
    if k_need > k_max:
        return 0
    # sweeps. B3[i + 1] holds row i's column nodes (forward-eliminated, then solved);
    # B3[0] is a ghost row of zeros, so row 0 needs no branch (FC[0] = 0).
    B3 = B.reshape((m + 1, n, S))
    A4 = ar.reshape((4, n, S))
    FR2 = FR.reshape((m, n))
    IR2 = IR.reshape((m, n))
    FC2 = FC.reshape((m, n))
    IC2 = IC.reshape((m, n))
    for j in range(n):
        FC2[0, j] = 0.0
        for s in range(S):
            B3[0, j, s] = 0.0
    sweep = 0
    while True:
        while sweep < k_need:
            first = sweep == 0
            sweep += 1
            if first:
                # With the column nodes at 0 V, row i's nodes are its drive response for
                # input i and 0 for the others: the column elimination needs no row solve.
                for i in range(m):
                    for j in range(n):
                        f = FC2[i, j]
                        for s in range(S):
                            B3[i + 1, j, s] = f * B3[i, j, s]
                        B3[i + 1, j, i] += G[i, j] * YR[i * n + j]
            else:
                for i0 in range(0, m, 4):
                    nr = min(4, m - i0)
                    for rr in range(nr):
                        i = i0 + rr
                        gij = G[i, 0]
                        for s in range(S):
                            A4[rr, 0, s] = gij * B3[i + 1, 0, s]
                        A4[rr, 0, i] += g
                    for j in range(1, n):
                        for rr in range(nr):
                            i = i0 + rr
                            gij = G[i, j]
                            f = FR2[i, j]
                            for s in range(S):
                                A4[rr, j, s] = gij * B3[i + 1, j, s] + f * A4[rr, j - 1, s]
                    for rr in range(nr):
                        f = IR2[i0 + rr, n - 1]
                        for s in range(S):
                            A4[rr, n - 1, s] *= f
                    for j in range(n - 2, -1, -1):
                        for rr in range(nr):
                            f = IR2[i0 + rr, j]
                            for s in range(S):
                                A4[rr, j, s] = f * (A4[rr, j, s] + g * A4[rr, j + 1, s])
                    # column forward elimination of these rows
                    for rr in range(nr):
                        i = i0 + rr
                        for j in range(n):
                            gij = G[i, j]
                            f = FC2[i, j]
                            for s in range(S):
                                B3[i + 1, j, s] = gij * A4[rr, j, s] + f * B3[i, j, s]
            # back substitution up the columns
            for j in range(n):
                f = IC2[m - 1, j]
                for s in range(S):
                    B3[m, j, s] *= f
            for i in range(m - 2, -1, -1):
                for j in range(n):
                    f = IC2[i, j]
                    for s in range(S):
                        B3[i + 1, j, s] = f * (B3[i + 1, j, s] + gc * B3[i + 2, j, s])
        # transfer matrix and the check
        bl = m * n * S
        worst = 0.0
        for j in range(n):
            for s in range(m):
                t = gc * B[bl + j * S + s]
                out[j, s] = t
                if t > 0.0:
                    worst = max(worst, cs[j] / t)
        bound = lead * rho ** (sweep - 1)
        if bound * worst <= tol or rho == 0.0:
            return sweep
        k_need = 1 + int(math.ceil(math.log(tol / (worst * lead)) / math.log(rho)))
        if k_need <= sweep:
            k_need = sweep + 1
        if k_need > k_max:
            return 0


@kernel
def _transfer_exact(G, r_row, r_col, work, out):
    """Transfer matrix (``out``, n x m) of an m x n crossbar with r_row > 0 and r_col > 0
    by block Gaussian elimination (``_transfer_core``); ``work`` as
    ``_transfer_matrix_kernel``'s."""
    m, n = G.shape
    # A wide array (n > m) is solved as its reciprocal network: the flipped transpose
    # G'[p, q] = G[m-1-q, n-1-p] with r_row and r_col exchanged has T[j, i] = T'[m-1-i, n-1-j].
    wide = n > m
    block = min(m, n)
    steps = max(m, n)
    nb = _padded(block)
    o = 0
    S, o = _take2(work, o, block, block)
    A, o = _take2(work, o, nb + steps, nb)
    d, o = _take(work, o, nb)
    e, o = _take(work, o, block)
    y, o = _take(work, o, block)
    z, o = _take(work, o, block)
    w, o = _take(work, o, block)
    h, o = _take(work, o, steps)
    Gc, o = _take2(work, o, steps, block)
    GT, o = _take2(work, o, block, steps)
    EV, o = _take2(work, o, block, steps)
    RU, o = _take2(work, o, block, steps)
    Tc = work[o : o + m * n].reshape((block, steps))
    for p in range(steps):
        for q in range(block):
            v = G[m - 1 - q, n - 1 - p] if wide else G[p, q]
            Gc[p, q] = v
            GT[q, p] = v
    r_line = r_col if wide else r_row
    r_cross = r_row if wide else r_col
    _transfer_core(Gc, GT, r_line, r_cross, S, A, EV, RU, h, d, e, y, z, w, Tc)
    for j in range(n):
        for i in range(m):
            out[j, i] = Tc[m - 1 - i, n - 1 - j] if wide else Tc[j, i]


@kernel
def _transfer_matrix_kernel(G, r_row, r_col, work, out):
    """Transfer matrix T (n x m, I = T @ V) of the crossbar G (m x n) into ``out``.

    ``work``: float64, at least ``_transfer_work_size(m, n)`` elements. With resistive rows
    and columns: line Gauss-Seidel (``_transfer_gs``) where its bound promises few sweeps
    (low r G n^2: the usual case with small wire resistance), else, or when it hands over,
    the exact block elimination (``_transfer_exact``); both match a sparse LU to 1e-10
    relative per element. Wide arrays (n > m) are solved as their reciprocal transposed
    network so the dense blocks are min(m, n) wide.
    """
    m, n = G.shape
    if r_row == 0.0 and r_col == 0.0:
        for i in range(m):
            for j in range(n):
                out[j, i] = G[i, j]
        return
    if r_row == 0.0 or r_col == 0.0:
        # One kind of line is ideal, so the other kind are independent chains: rows when the
        # columns are at virtual ground along their whole length, else columns (rows at
        # their source voltage), driven from their sense end; by reciprocity T[j, i] is
        # G[i, j] times the voltage at cell (i, j) then. Each chain is driven at its node 0.
        rows = r_col == 0.0
        n_lines = m if rows else n
        length = n if rows else m
        g = 1.0 / (r_row if rows else r_col)
        shunt = work[0:length]
        d = work[length : 2 * length]
        e = work[2 * length : 3 * length]
        y = work[3 * length : 4 * length]
        for line in range(n_lines):
            for t in range(length):
                shunt[t] = G[line, t] if rows else G[m - 1 - t, line]
            _line_pivots(shunt, g, g, d, e)
            _line_drive_response(d, g, g, y)
            for t in range(length):
                if rows:
                    out[t, line] = shunt[t] * y[t]
                else:
                    out[line, m - 1 - t] = shunt[t] * y[t]
        return
    k_max = _gs_max_sweeps(min(m, n))
    if min(m, n) >= GS_MIN_BLOCK and _gs_promising(G, r_row, r_col, GS_TOL, k_max):
        # Line Gauss-Seidel with min(m, n) right-hand sides: a tall array goes through
        # its reciprocal network (as in _transfer_exact).
        if m <= n:
            if _transfer_gs(G, r_row, r_col, GS_TOL, k_max, work, out) > 0:
                return
        else:
            Gt = work[0 : m * n].reshape((n, m))
            Tt = work[m * n : 2 * m * n].reshape((m, n))
            for p in range(n):
                for q in range(m):
                    Gt[p, q] = G[m - 1 - q, n - 1 - p]
            if _transfer_gs(Gt, r_col, r_row, GS_TOL, k_max, work[2 * m * n :],
                            Tt) > 0:
                for j in range(n):
                    for i in range(m):
                        out[j, i] = Tt[m - 1 - i, n - 1 - j]
                return
    _transfer_exact(G, r_row, r_col, work, out)


@kernel
def _transfer_matrix_batch(Gs, r_row, r_col, work, out):
    """``_transfer_matrix_kernel`` for each array of ``Gs`` (k x m x n) into ``out`` (k x n x m)."""
    for s in range(Gs.shape[0]):
        _transfer_matrix_kernel(Gs[s], r_row, r_col, work, out[s])


# ----------------------------------------------------------------------------- general solve
@kernel
def _solve_nodes(G, r_row, r_col, r_drv, row_on, row_src, col_on, col_src, work, a, b):
    """Node voltages of the crossbar with per-line terminations, one right-hand side.

    Row i is driven at ``row_src[i]`` volts through a driver resistance ``r_drv`` and its
    first segment when ``row_on[i]`` is 1.0 and unconnected when 0.0; column j likewise at
    its sense end with ``col_on[j]``, ``col_src[j]``. Every line must reach a driven line
    through non-zero devices (pin isolated lines by driving them at 0 V), otherwise the
    network is singular. Writes the row-node voltages into ``a`` and column-node voltages
    into ``b`` (m x n; a line with zero wire resistance is one node, copied to all its
    cells). ``work``: at least ``_solve_work_size(m, n)`` elements.
    """
    m, n = G.shape
    o = 0
    Pall = work[o : o + m * n * n].reshape((m, n, n))
    o += m * n * n
    Yall, o = _take2(work, o, m, n)
    S, o = _take2(work, o, n, n)
    d, o = _take(work, o, n)
    e, o = _take(work, o, n)
    y, o = _take(work, o, n)
    z, o = _take(work, o, n)
    w = work[o : o + n]

    # One pass over the rows: Norton equivalent of row k, then either (ideal columns) add it
    # onto the n column nodes, or (resistive columns) one step of block elimination down
    # the columns. One call site per helper keeps the inlined machine code, and the
    # compile time, small. A column is 'fixed' (its voltage known) when it is driven by an
    # ideal source over an ideal wire.
    collapsed = r_col == 0.0
    g_c = 0.0 if collapsed else 1.0 / r_col
    g_c2 = g_c * g_c
    g_cd = 1.0 / (r_col + r_drv) if r_col + r_drv > 0.0 else 0.0
    n_free = 0
    for j in range(n):
        if col_on[j] == 0.0 or r_drv > 0.0:
            n_free += 1
    for k in range(m):
        _row_norton(G[k], r_row, row_on[k], r_drv, d, e, y, z, S, w)
        if collapsed:
            M = Pall[0]
            R = Yall[0]
            for j in range(n):
                if k == 0:
                    R[j] = 0.0
                R[j] += w[j] * row_src[k]
                for c in range(n):
                    M[j, c] = S[j, c] if k == 0 else M[j, c] + S[j, c]
            invert = k == m - 1 and n_free > 0
            if invert:
                for j in range(n):
                    if col_on[j] != 0.0 and r_drv > 0.0:
                        M[j, j] += g_cd
                        R[j] += g_cd * col_src[j]
                # Fixed columns are known: move them to the right-hand side and leave an
                # identity row and column in their place.
                for j in range(n):
                    if col_on[j] != 0.0 and r_drv == 0.0:
                        for r in range(n):
                            if not (col_on[r] != 0.0 and r_drv == 0.0):
                                R[r] -= M[r, j] * col_src[j]
                        for r in range(n):
                            M[r, j] = 0.0
                            M[j, r] = 0.0
                        M[j, j] = 1.0
        else:
            P = Pall[k]
            for j in range(n):
                for c in range(n):
                    P[j, c] = S[j, c]
                    if k > 0:
                        P[j, c] -= g_c2 * Pall[k - 1, j, c]
                wire = g_c if k > 0 else 0.0
                rhs = w[j] * row_src[k]
                if k < m - 1:
                    wire += g_c
                elif col_on[j] != 0.0:
                    wire += g_cd
                    rhs += g_cd * col_src[j]
                P[j, j] += wire
                Yall[k, j] = rhs
            if k > 0:
                # y_k += g_c * P_{k-1} y_{k-1}
                for j in range(n):
                    acc = 0.0
                    for c in range(n):
                        acc += Pall[k - 1, j, c] * Yall[k - 1, c]
                    Yall[k, j] += g_c * acc
            invert = True
        if invert:
            _invert_spd(Pall[0 if collapsed else k], d)

    if collapsed:
        M = Pall[0]
        R = Yall[0]
        for j in range(n):
            if col_on[j] != 0.0 and r_drv == 0.0:
                y[j] = col_src[j]
            else:
                acc = 0.0
                for c in range(n):
                    if not (col_on[c] != 0.0 and r_drv == 0.0):
                        acc += M[j, c] * R[c]
                y[j] = acc
        for k in range(m):
            for j in range(n):
                b[k, j] = y[j]
    else:
        for k in range(m - 1, -1, -1):
            for j in range(n):
                w[j] = Yall[k, j]
                if k < m - 1:
                    w[j] += g_c * b[k + 1, j]
            for j in range(n):
                acc = 0.0
                for c in range(n):
                    acc += Pall[k, j, c] * w[c]
                b[k, j] = acc

    # Row nodes from the column nodes.
    for k in range(m):
        if r_row == 0.0:
            if row_on[k] != 0.0 and r_drv == 0.0:
                for j in range(n):
                    a[k, j] = row_src[k]
            else:
                g_d = 1.0 / r_drv if row_on[k] != 0.0 else 0.0
                total = g_d
                acc = g_d * row_src[k]
                for j in range(n):
                    total += G[k, j]
                    acc += G[k, j] * b[k, j]
                v = acc / total if total > 0.0 else 0.0
                for j in range(n):
                    a[k, j] = v
        else:
            g = 1.0 / r_row
            g_drive = 1.0 / (r_row + r_drv) if row_on[k] != 0.0 else 0.0
            _line_pivots(G[k], g, g_drive, d, e)
            for j in range(n):
                w[j] = G[k, j] * b[k, j]
            w[0] += g_drive * row_src[k]
            _line_solve(d, g, w, a[k])


# ----------------------------------------------------------------------------- nonlinear read
@kernel
def _ap_conductance(g_parallel, tmr0, v, v_h):
    """Antiparallel conductance at device voltage v: g_P / (1 + TMR0 / (1 + (v / V_h)^2))."""
    return g_parallel / (1.0 + _tmr_at_bias_jit(tmr0, v, v_h))


@kernel
def _nonlinear_read_kernel(g_parallel, tmr0, state, v_h, V, r_row, r_col, tol, max_iter, work, out):
    """Column currents (``out``, n) of a read with bias-dependent TMR, by fixed-point iteration.

    Returns ``(converged, iterations)``; ``iterations`` counts network solves. ``work``: at
    least ``_nonlinear_work_size(m, n)`` elements.
    """
    m, n = state.shape
    o = _solve_work_size(m, n)
    solve_work = work[0:o]
    Gc, o = _take2(work, o, m, n)
    a, o = _take2(work, o, m, n)
    b, o = _take2(work, o, m, n)
    row_on, o = _take(work, o, m)
    col_on, o = _take(work, o, n)
    col_src = work[o : o + n]

    if r_row == 0.0 and r_col == 0.0:
        # Every device sees its row voltage: one update is the exact answer.
        for j in range(n):
            out[j] = 0.0
        for i in range(m):
            for j in range(n):
                if state[i, j] == 1:
                    g = g_parallel[i, j]
                else:
                    g = _ap_conductance(g_parallel[i, j], tmr0[i, j], V[i], v_h)
                out[j] += g * V[i]
        return True, 1

    for i in range(m):
        row_on[i] = 1.0
        for j in range(n):
            if state[i, j] == 1:
                Gc[i, j] = g_parallel[i, j]
            else:
                Gc[i, j] = _ap_conductance(g_parallel[i, j], tmr0[i, j], 0.0, v_h)
    for j in range(n):
        col_on[j] = 1.0
        col_src[j] = 0.0

    for it in range(1, max_iter + 1):
        _solve_nodes(Gc, r_row, r_col, 0.0, row_on, V, col_on, col_src, solve_work, a, b)
        change = 0.0
        for j in range(n):
            out[j] = 0.0
        for i in range(m):
            for j in range(n):
                v = a[i, j] - b[i, j]
                out[j] += Gc[i, j] * v
                if state[i, j] != 1:
                    g_new = _ap_conductance(g_parallel[i, j], tmr0[i, j], v, v_h)
                    if g_new != Gc[i, j]:
                        rel = abs(g_new - Gc[i, j]) / abs(g_new)
                        if rel > change:
                            change = rel
                    Gc[i, j] = g_new
        if change < tol:
            return True, it
    return False, max_iter


@kernel
def _nonlinear_read_batch(
    g_parallel, tmr0, state, v_h, V, r_row, r_col, tol, max_iter, work, out, converged, iterations
):
    """``_nonlinear_read_kernel`` for each row of ``V`` (k x m) into ``out`` (k x n)."""
    for s in range(V.shape[0]):
        ok, it = _nonlinear_read_kernel(
            g_parallel, tmr0, state, v_h, V[s], r_row, r_col, tol, max_iter, work, out[s]
        )
        converged[s] = ok
        iterations[s] = it


# ----------------------------------------------------------------------------- verify read
@kernel
def _verify_read_kernel(G, i, j, v_read, scheme, r_row, r_col, work):
    """Current (A) into the sense node of column j while device (i, j) is read at ``v_read``.

    ``scheme``: ``SCHEME_FLOATING`` (unselected lines unconnected) or ``SCHEME_HALF``
    (unselected lines driven at v_read / 2). ``work``: at least ``_verify_work_size(m, n)``.
    """
    m, n = G.shape
    if scheme == SCHEME_HALF and r_row == 0.0 and r_col == 0.0:
        current = G[i, j] * v_read
        for k in range(m):
            if k != i:
                current += G[k, j] * (0.5 * v_read)
        return current
    o = _solve_work_size(m, n)
    solve_work = work[0:o]
    a, o = _take2(work, o, m, n)
    b, o = _take2(work, o, m, n)
    row_on, o = _take(work, o, m)
    row_src, o = _take(work, o, m)
    col_on, o = _take(work, o, n)
    col_src, o = _take(work, o, n)
    # Breadth-first search over lines (rows 0..m-1, columns m..m+n-1) for floating lines.
    queue = work[o : o + m + n]

    if scheme == SCHEME_HALF:
        for k in range(m):
            row_on[k] = 1.0
            row_src[k] = 0.5 * v_read
        for c in range(n):
            col_on[c] = 1.0
            col_src[c] = 0.5 * v_read
    else:
        for k in range(m):
            row_on[k] = 0.0
            row_src[k] = 0.0
        for c in range(n):
            col_on[c] = 0.0
            col_src[c] = 0.0
    row_on[i] = 1.0
    row_src[i] = v_read
    col_on[j] = 1.0
    col_src[j] = 0.0

    if scheme != SCHEME_HALF:
        # Floating lines reached from no driven line through non-zero devices carry no
        # current and have no defined voltage: drive them at 0 V, which changes nothing else.
        # row_on / col_on double as the marks: 2.0 driven, 3.0 floating and reached.
        head = 0
        tail = 0
        row_on[i] = 2.0
        queue[tail] = i
        tail += 1
        col_on[j] = 2.0
        queue[tail] = m + j
        tail += 1
        while head < tail:
            node = int(queue[head])
            head += 1
            if node < m:
                for c in range(n):
                    if col_on[c] == 0.0 and G[node, c] != 0.0:
                        col_on[c] = 3.0
                        queue[tail] = m + c
                        tail += 1
            else:
                c = node - m
                for k in range(m):
                    if row_on[k] == 0.0 and G[k, c] != 0.0:
                        row_on[k] = 3.0
                        queue[tail] = k
                        tail += 1
        for k in range(m):
            # 2.0: driven; 3.0: floating and reached; 0.0: isolated, pin at 0 V.
            row_on[k] = 0.0 if row_on[k] == 3.0 else 1.0
        for c in range(n):
            col_on[c] = 0.0 if col_on[c] == 3.0 else 1.0

    _solve_nodes(G, r_row, r_col, 0.0, row_on, row_src, col_on, col_src, solve_work, a, b)
    current = 0.0
    for k in range(m):
        current += G[k, j] * (a[k, j] - b[k, j])
    return current


@kernel
def _verify_read_batch(G, rows, cols, v_read, scheme, r_row, r_col, work, out):
    """``_verify_read_kernel`` for devices (rows[t], cols[t]) into ``out[t]`` (sensed current)."""
    for t in range(rows.shape[0]):
        out[t] = _verify_read_kernel(G, rows[t], cols[t], v_read, scheme, r_row, r_col, work)


# ----------------------------------------------------------------------------- write bias
# Solvers of ``_write_bias_kernel``.
IR_OFF = 0
IR_FAST = 1
IR_FULL = 2
# Write biasing schemes (``_write_sources``).
BIAS_NONE = 0
BIAS_V2 = 1
BIAS_V3 = 2


@kernel
def _write_sources(scheme, amplitude, r, c, row_src, col_src):
    """Driver voltages (V) of a write pulse of ``amplitude`` on cell (r, c).

    V/2: selected row +A/2, selected column -A/2, every other line 0. V/3: selected row
    +2A/3, selected column -A/3, other rows 0, other columns +A/3 (half-selected devices
    see A/3, all others -A/3). None (each device behind its own access device): selected
    row A, everything else 0.
    """
    m = row_src.shape[0]
    n = col_src.shape[0]
    other_col = amplitude / 3.0 if scheme == BIAS_V3 else 0.0
    for i in range(m):
        row_src[i] = 0.0
    for j in range(n):
        col_src[j] = other_col
    if scheme == BIAS_V2:
        row_src[r] = 0.5 * amplitude
        col_src[c] = -0.5 * amplitude
    elif scheme == BIAS_V3:
        row_src[r] = 2.0 * amplitude / 3.0
        col_src[c] = -amplitude / 3.0
    else:
        row_src[r] = amplitude
        col_src[c] = 0.0


@kernel
def _write_work_size(m, n):
    """Length of the ``work`` buffer ``_write_bias_kernel`` needs for an m x n array."""
    return max(_solve_work_size(m, n) + 2 * (m + n), 8 * max(m, n) + 8 * m * n)


@kernel
def _lines_pivots(SH, g_link, g_drive, D):
    """``_line_pivots`` of many lines side by side: ``SH`` (positions, lines) shunts, ``D``
    the pivots (same shape); the leak parts ``e`` are built in ``D`` itself."""
    P, L = SH.shape
    for q in range(L):
        D[0, q] = g_drive + SH[0, q]
    for t in range(P - 1):
        for q in range(L):
            e = D[t, q]
            D[t, q] = e + g_link
            D[t + 1, q] = SH[t + 1, q] + g_link * e / D[t, q]


@kernel
def _lines_relax(SH, D, g_link, g_drive, drive, src, X):
    """One Gauss-Seidel block of many independent lines side by side (``_line_relax``'s
    arithmetic): ``X`` (positions, lines) receives each line's node voltages with its shunts
    ``SH`` leading to ``src`` (same layout) and its driver at position 0 at ``drive``
    (per line); ``D`` from ``_lines_pivots``."""
    P, L = SH.shape
    for t in range(P):
        for q in range(L):
            X[t, q] = SH[t, q] * src[t, q]
    for q in range(L):
        X[0, q] += g_drive * drive[q]
    for t in range(1, P):
        for q in range(L):
            X[t, q] = X[t, q] + g_link * X[t - 1, q] / D[t - 1, q]
    for q in range(L):
        X[P - 1, q] = X[P - 1, q] / D[P - 1, q]
    for t in range(P - 2, -1, -1):
        for q in range(L):
            X[t, q] = (X[t, q] + g_link * X[t + 1, q]) / D[t, q]


@kernel
def _write_sweeps(G, g_row, g_col, gd_row, gd_col, row_src, col_src, limit, max_sweeps, work,
                  a, b):
    """Line Gauss-Seidel sweeps of ``_write_bias_kernel`` (resistive rows and columns) from
    the node voltages in ``a`` and ``b`` until no node moves by more than ``limit`` (V), at
    most ``max_sweeps``; returns (sweeps, converged). ``work``: 8 m n floats.

    The arithmetic of ``_line_relax`` line by line, laid out for speed: within a sweep the
    row lines are independent of each other (they see only the column nodes), and so are
    the column lines, so each phase runs all its lines side by side, position by position
    (the innermost loop over lines vectorises, and the tridiagonal solves' chains of
    divisions no longer wait on each other); each line's pivots depend on its conductances
    only, so they are factorised once, not every sweep. The same operations on the same
    numbers as one ``_line_relax`` per line and sweep: the same bits (tested).
    """
    m, n = G.shape
    mn = m * n
    # position-major layouts: rows (position j from the driver, line i); columns (position
    # t from the driver, i.e. row m - 1 - t, line j)
    SR = work[0:mn].reshape((n, m))
    DR = work[mn : 2 * mn].reshape((n, m))
    XR = work[2 * mn : 3 * mn].reshape((n, m))
    BR = work[3 * mn : 4 * mn].reshape((n, m))  # the column nodes each row line sees
    SC = work[4 * mn : 5 * mn].reshape((m, n))
    DC = work[5 * mn : 6 * mn].reshape((m, n))
    XC = work[6 * mn : 7 * mn].reshape((m, n))
    AC = work[7 * mn : 8 * mn].reshape((m, n))  # the row nodes each column line sees
    for i in range(m):
        for j in range(n):
            SR[j, i] = G[i, j]
            SC[m - 1 - i, j] = G[i, j]
    _lines_pivots(SR, g_row, gd_row, DR)
    _lines_pivots(SC, g_col, gd_col, DC)
    for sweep in range(1, max_sweeps + 1):
        change = 0.0
        for i in range(m):
            for j in range(n):
                BR[j, i] = b[i, j]
        _lines_relax(SR, DR, g_row, gd_row, row_src, BR, XR)
        for i in range(m):
            for j in range(n):
                change = max(change, abs(XR[j, i] - a[i, j]))
                a[i, j] = XR[j, i]
                AC[m - 1 - i, j] = XR[j, i]
        _lines_relax(SC, DC, g_col, gd_col, col_src, AC, XC)
        for i in range(m):
            for j in range(n):
                change = max(change, abs(XC[m - 1 - i, j] - b[i, j]))
                b[i, j] = XC[m - 1 - i, j]
        if change <= limit:
            return sweep, True
    return max_sweeps, False


@kernel
def _line_with_tap(shunt, src, g_link, g_drive, v_drive, k, d, e, x0, x1):
    """One driven line without the device at its node ``k``: node voltages ``x0`` (V) from
    its driver and shunts, and ``x1``, the node voltages per ampere drawn out of node k
    (ohm). ``g_link``: segment conductance (0 for an ideal wire: one node); ``g_drive``:
    driver conductance at node 0 (0 for an ideal source on an ideal wire: fixed node)."""
    n = shunt.shape[0]
    if g_link == 0.0:
        if g_drive == 0.0:
            for t in range(n):
                x0[t] = v_drive
                x1[t] = 0.0
            return
        total = g_drive
        acc = g_drive * v_drive
        for t in range(n):
            if t != k:
                total += shunt[t]
                acc += shunt[t] * src[t]
        for t in range(n):
            x0[t] = acc / total
            x1[t] = 1.0 / total
        return
    keep = shunt[k]
    shunt[k] = 0.0
    _line_pivots(shunt, g_link, g_drive, d, e)
    for t in range(n):
        x0[t] = shunt[t] * src[t]
        x1[t] = 0.0
    x0[0] += g_drive * v_drive
    x1[k] = 1.0
    # _line_solve on x0 and on x1 in one loop: two independent chains of divisions side by
    # side (each waited on its own; this is most of a fast write-bias solve); same bits
    for t in range(1, n):
        x0[t] = x0[t] + g_link * x0[t - 1] / d[t - 1]
        x1[t] = x1[t] + g_link * x1[t - 1] / d[t - 1]
    x0[n - 1] = x0[n - 1] / d[n - 1]
    x1[n - 1] = x1[n - 1] / d[n - 1]
    for t in range(n - 2, -1, -1):
        x0[t] = (x0[t] + g_link * x0[t + 1]) / d[t]
        x1[t] = (x1[t] + g_link * x1[t + 1]) / d[t]
    shunt[k] = keep


@kernel
def _selected_lines(G, r, c, row_src, col_src, g_row, gd_row, g_col, gd_col, dr, dc, x0, x1,
                    y0, y1):
    """``_line_with_tap`` of the selected row (tap at column c) and of the selected column
    (tap at row r, numbered from its driver at row m - 1) of a write pulse, both lines
    resistive: ``x0``, ``x1`` (row, first n) and ``y0``, ``y1`` (column, first m); ``dr``,
    ``dc`` receive the two lines' pivots. The two lines' four solves (and two pivot
    chains) run in the same loops: each step is a division waiting on the step before,
    and four independent chains keep the divider busy. Same operations as two
    ``_line_with_tap`` calls, so the same bits (tested against them)."""
    m, n = G.shape
    kc = m - 1 - r
    # pivots (_line_pivots with the tapped device removed: its shunt is 0.0)
    er = gd_row + (0.0 if c == 0 else G[r, 0])
    ec = gd_col + (0.0 if kc == 0 else G[m - 1, c])
    for t in range(max(m, n) - 1):
        if t < n - 1:
            dr[t] = er + g_row
            er = (0.0 if t + 1 == c else G[r, t + 1]) + g_row * er / dr[t]
        if t < m - 1:
            dc[t] = ec + g_col
            ec = (0.0 if t + 1 == kc else G[m - 2 - t, c]) + g_col * ec / dc[t]
    dr[n - 1] = er
    dc[m - 1] = ec
    for t in range(n):
        x0[t] = (0.0 if t == c else G[r, t]) * col_src[t]
        x1[t] = 0.0
    for t in range(m):
        y0[t] = (0.0 if t == kc else G[m - 1 - t, c]) * row_src[m - 1 - t]
        y1[t] = 0.0
    x0[0] += gd_row * row_src[r]
    y0[0] += gd_col * col_src[c]
    x1[c] = 1.0
    y1[kc] = 1.0
    for t in range(1, max(m, n)):
        if t < n:
            x0[t] = x0[t] + g_row * x0[t - 1] / dr[t - 1]
            x1[t] = x1[t] + g_row * x1[t - 1] / dr[t - 1]
        if t < m:
            y0[t] = y0[t] + g_col * y0[t - 1] / dc[t - 1]
            y1[t] = y1[t] + g_col * y1[t - 1] / dc[t - 1]
    x0[n - 1] = x0[n - 1] / dr[n - 1]
    x1[n - 1] = x1[n - 1] / dr[n - 1]
    y0[m - 1] = y0[m - 1] / dc[m - 1]
    y1[m - 1] = y1[m - 1] / dc[m - 1]
    for t in range(max(m, n) - 2, -1, -1):
        if t < n - 1:
            x0[t] = (x0[t] + g_row * x0[t + 1]) / dr[t]
            x1[t] = (x1[t] + g_row * x1[t + 1]) / dr[t]
        if t < m - 1:
            y0[t] = (y0[t] + g_col * y0[t + 1]) / dc[t]
            y1[t] = (y1[t] + g_col * y1[t + 1]) / dc[t]


@kernel
def _line_relax(shunt, src, g_link, g_drive, v_drive, d, e, x):
    """Node voltages ``x`` of one driven line whose shunts lead to the fixed voltages
    ``src`` (one block of a line Gauss-Seidel sweep); returns the largest change (V)."""
    n = shunt.shape[0]
    change = 0.0
    if g_link == 0.0:
        total = g_drive
        acc = g_drive * v_drive
        for t in range(n):
            total += shunt[t]
            acc += shunt[t] * src[t]
        v = v_drive if g_drive == 0.0 else acc / total
        for t in range(n):
            change = max(change, abs(v - x[t]))
            x[t] = v
        return change
    _line_pivots(shunt, g_link, g_drive, d, e)
    for t in range(n):
        e[t] = shunt[t] * src[t]
    e[0] += g_drive * v_drive
    _line_solve(d, g_link, e, e)
    for t in range(n):
        change = max(change, abs(e[t] - x[t]))
        x[t] = e[t]
    return change


@kernel
def _fill_sources(row_src, col_src, a, b):
    """Every row node at its row's source voltage, every column node at its column's."""
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            a[i, j] = row_src[i]
            b[i, j] = col_src[j]


@kernel
def _write_bias_kernel(G, r_row, r_col, r_drv, row_src, col_src, r, c, solver, accept, tol,
                       max_sweeps, work, a, b):
    """Node voltages of a write pulse on cell (r, c): every line driven at its end (rows
    at node 0, columns at node m-1) by ``row_src``/``col_src`` through ``r_drv`` and its
    first segment. Row-node voltages into ``a``, column-node voltages into ``b`` (m x n).

    ``solver``: ``IR_FULL``, the exact nodal solve (``_solve_nodes``); ``IR_FAST``: the
    selected row and column solved exactly with every other line an ideal source at its
    driver's voltage (O(m + n)), then, when the estimated relative error of that
    selected-cell voltage is above ``accept``, line Gauss-Seidel sweeps (each line solved
    against the current voltages of the lines it crosses, O(m n) per sweep, exact at
    convergence) until no node moves by more than ``tol`` times the pulse amplitude, at
    most ``max_sweeps``.
    Returns (sweeps, converged).
    """
    m, n = G.shape
    if solver == IR_FULL:
        o = _solve_work_size(m, n)
        ones_r = work[o : o + m]
        ones_c = work[o + m : o + m + n]
        for i in range(m):
            ones_r[i] = 1.0
        for j in range(n):
            ones_c[j] = 1.0
        _solve_nodes(G, r_row, r_col, r_drv, ones_r, row_src, ones_c, col_src, work[0:o], a, b)
        return 0, True
    L = max(m, n)
    d = work[0:L]
    e = work[L : 2 * L]
    sh = work[2 * L : 3 * L]
    src = work[3 * L : 4 * L]
    x0 = work[4 * L : 5 * L]
    x1 = work[5 * L : 6 * L]
    y0 = work[6 * L : 7 * L]
    y1 = work[7 * L : 8 * L]
    g_row = 1.0 / r_row if r_row > 0.0 else 0.0
    g_col = 1.0 / r_col if r_col > 0.0 else 0.0
    gd_row = 1.0 / (r_row + r_drv) if r_row + r_drv > 0.0 else 0.0
    gd_col = 1.0 / (r_col + r_drv) if r_col + r_drv > 0.0 else 0.0
    # 1. every line at its source voltage. When every unselected line has the same source
    # voltage (V/2, selected-only) the devices between unselected lines carry no current,
    # so the answer and its error estimate involve the selected row and column only: the
    # other node voltages are left to the caller (and written before any sweep).
    uniform = True
    v_other = row_src[1] if r == 0 and m > 1 else row_src[0]
    for i in range(m):
        if i != r and row_src[i] != v_other:
            uniform = False
    for j in range(n):
        if j != c and col_src[j] != v_other:
            uniform = False
    if uniform:
        for j in range(n):
            b[r, j] = col_src[j]
        for i in range(m):
            a[i, c] = row_src[i]
    else:
        _fill_sources(row_src, col_src, a, b)
    # 2. the selected row (taps at column c) and column (tap at row r, numbered from its
    # driver at the bottom), joined by the selected device
    if g_row > 0.0 and g_col > 0.0:
        _selected_lines(G, r, c, row_src, col_src, g_row, gd_row, g_col, gd_col, d, e, x0, x1,
                        y0, y1)
    else:
        for j in range(n):
            sh[j] = G[r, j]
            src[j] = col_src[j]
        _line_with_tap(sh[:n], src[:n], g_row, gd_row, row_src[r], c, d[:n], e[:n], x0[:n],
                       x1[:n])
        for t in range(m):
            sh[t] = G[m - 1 - t, c]
            src[t] = row_src[m - 1 - t]
        _line_with_tap(sh[:m], src[:m], g_col, gd_col, col_src[c], m - 1 - r, d[:m], e[:m],
                       y0[:m], y1[:m])
    g_sel = G[r, c]
    k = m - 1 - r
    current = g_sel * (x0[c] - y0[k]) / (1.0 + g_sel * (x1[c] + y1[k]))
    for j in range(n):
        a[r, j] = x0[j] - current * x1[j]
    for t in range(m):
        b[m - 1 - t, c] = y0[t] + current * y1[t]
    # 3. error estimate of step 2: an unselected line carries the current of its devices
    # and so moves from its source by about that current times its path to the driver.
    # The relative change of the half-selected currents, times the share of the amplitude
    # lost in the selected lines, bounds the error of the selected voltage (a factor 4 of
    # margin over the worst case measured against the full solve).
    amplitude = abs(row_src[r] - col_src[c])
    if amplitude == 0.0:
        return 0, True
    # (the largest drop divided once: division by A > 0 is monotone, so the same bits)
    worst = 0.0
    if uniform:  # only the device joining each unselected line to a selected one conducts
        for i in range(m):
            if i != r:
                drop = G[i, c] * abs(row_src[i] - b[i, c]) * (r_drv + r_row * (c + 1))
                worst = max(worst, drop)
        for j in range(n):
            if j != c:
                drop = G[r, j] * abs(a[r, j] - col_src[j]) * (r_drv + r_col * (m - r))
                worst = max(worst, drop)
    else:
        for i in range(m):
            if i != r:
                # row i: the current of each device at its ideal bias, weighted by its path
                path = r_drv
                drop = 0.0
                for j in range(n):
                    path += r_row
                    drop += G[i, j] * abs(row_src[i] - b[i, j]) * path
                worst = max(worst, drop)
        for j in range(n):
            if j != c:
                path = r_drv
                drop = 0.0
                for i in range(m - 1, -1, -1):
                    path += r_col
                    drop += G[i, j] * abs(a[i, j] - col_src[j]) * path
                worst = max(worst, drop)
    shift = worst / amplitude
    v_sel = a[r, c] - b[r, c]
    estimate = 4.0 * shift * (1.0 - abs(v_sel) / amplitude)
    if estimate <= accept:
        return 0, True
    # 4. line Gauss-Seidel to convergence
    if uniform:
        for i in range(m):
            if i != r:
                for j in range(n):
                    if j != c:
                        a[i, j] = row_src[i]
                        b[i, j] = col_src[j]
    limit = tol * amplitude
    if g_row > 0.0 and g_col > 0.0:
        return _write_sweeps(G, g_row, g_col, gd_row, gd_col, row_src, col_src, limit,
                             max_sweeps, work[8 * L :], a, b)
    for sweep in range(1, max_sweeps + 1):
        change = 0.0
        for i in range(m):
            for j in range(n):
                src[j] = b[i, j]
            change = max(change, _line_relax(G[i], src[:n], g_row, gd_row, row_src[i], d[:n],
                                             e[:n], a[i]))
        for j in range(n):
            for t in range(m):
                sh[t] = G[m - 1 - t, j]
                src[t] = a[m - 1 - t, j]
                x0[t] = b[m - 1 - t, j]
            change = max(change, _line_relax(sh[:m], src[:m], g_col, gd_col, col_src[j],
                                             d[:m], e[:m], x0[:m]))
            for t in range(m):
                b[m - 1 - t, j] = x0[t]
        if change <= limit:
            return sweep, True
    return max_sweeps, False
