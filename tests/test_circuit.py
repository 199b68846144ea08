"""Circuit solver against a plain scipy.sparse nodal solve of the same netlist."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse as sp
import scipy.sparse.csgraph as csgraph
import scipy.sparse.linalg as spla

from mcmtj.physics._circuit_kernels import (
    GS_TOL,
    IR_FAST,
    _gs_max_sweeps,
    _gs_promising,
    _line_relax,
    _line_with_tap,
    _transfer_gs,
    _transfer_work_size,
    _write_bias_kernel,
    _write_sources,
    _write_work_size,
)
from mcmtj.physics.circuit import (
    node_voltages,
    read_currents_nonlinear,
    transfer_matrix,
    verify_read_resistance,
    write_voltages,
)

R_SHORT = 100.0  # ohm


# ----------------------------------------------------------------------------- reference
def reference_solve(G, r_row, r_col, row_src, col_src, r_drv=0.0):
    """Node voltages of the crossbar netlist by one sparse LU (scipy), written from scratch.

    ``row_src`` (m, k) / ``col_src`` (n, k): driver voltages of each line for k right-hand
    sides, NaN for an unconnected (floating) line (same pattern in every column). Unknowns
    are the 2 m n cell nodes (a line without resistance is one node; a driven one is then
    fixed). Unknown nodes in a component that reaches no fixed node carry no current and
    are returned as NaN. ``r_drv``: each driver's own series resistance. Returns (a, b),
    each (k, m, n).
    """
    m, n = G.shape
    k = row_src.shape[1]
    node_a = np.arange(m * n).reshape(m, n) if r_row > 0 else np.repeat(np.arange(m)[:, None], n, 1)
    n_a = node_a.max() + 1
    node_b = n_a + (
        np.arange(m * n).reshape(m, n) if r_col > 0 else np.repeat(np.arange(n)[None, :], m, 0)
    )
    n_nodes = node_b.max() + 1
    # Fixed nodes: drivers behind a wire segment get their own node; ideal driven lines are
    # fixed themselves.
    fixed = {}  # node -> (k,) voltages
    branches = []  # (p, q, g)
    next_node = n_nodes
    for i in range(m):
        if np.isnan(row_src[i, 0]):
            continue
        if r_row + r_drv > 0:
            fixed[next_node] = row_src[i]
            branches.append((next_node, node_a[i, 0], 1.0 / (r_row + r_drv)))
            next_node += 1
        else:
            fixed[node_a[i, 0]] = row_src[i]
    for j in range(n):
        if np.isnan(col_src[j, 0]):
            continue
        if r_col + r_drv > 0:
            fixed[next_node] = col_src[j]
            branches.append((next_node, node_b[m - 1, j], 1.0 / (r_col + r_drv)))
            next_node += 1
        else:
            fixed[node_b[0, j]] = col_src[j]
    if r_row > 0:
        for i in range(m):
            for j in range(n - 1):
                branches.append((node_a[i, j], node_a[i, j + 1], 1.0 / r_row))
    if r_col > 0:
        for j in range(n):
            for i in range(m - 1):
                branches.append((node_b[i, j], node_b[i + 1, j], 1.0 / r_col))
    for i in range(m):
        for j in range(n):
            if G[i, j] != 0:
                branches.append((node_a[i, j], node_b[i, j], G[i, j]))
    total = next_node
    p, q, g = (np.array(x) for x in zip(*branches, strict=True))
    rows = np.concatenate([p, q, p, q])
    cols = np.concatenate([p, q, q, p])
    vals = np.concatenate([g, g, -g, -g])
    K = sp.csr_matrix((vals, (rows, cols)), shape=(total, total))
    is_fixed = np.zeros(total, bool)
    is_fixed[list(fixed)] = True
    # Keep the unknown nodes connected (through non-zero branches) to some fixed node.
    _, label = csgraph.connected_components(K, directed=False)
    grounded_labels = np.unique(label[is_fixed])
    solve = ~is_fixed & np.isin(label, grounded_labels)
    x = np.full((total, k), np.nan)
    x_fixed = np.array([fixed[f] for f in sorted(fixed)])
    x[sorted(fixed)] = x_fixed
    idx_u = np.flatnonzero(solve)
    idx_f = np.array(sorted(fixed))
    K = K.tocsc()
    rhs = -(K[idx_u][:, idx_f] @ x_fixed)
    x[idx_u] = spla.splu(K[idx_u][:, idx_u].tocsc()).solve(np.asarray(rhs))
    a = x[node_a].transpose(2, 0, 1)
    b = x[node_b].transpose(2, 0, 1)
    return a, b


def reference_sense_currents(G, a, b):
    """Current into each column's sense node: the sum of its device currents (k, n)."""
    return np.nansum(G[None] * (a - b), axis=1)


def reference_transfer(G, r_row, r_col):
    m, n = G.shape
    a, b = reference_solve(G, r_row, r_col, np.eye(m), np.zeros((n, m)))
    return reference_sense_currents(G, a, b).T  # (n, m): column i is input i


def random_array(rng, m, n, p_short=0.05, p_open=0.1):
    G = 1.0 / rng.uniform(5e3, 2e4, (m, n))
    G[rng.random((m, n)) < p_short] = 1.0 / R_SHORT
    G[rng.random((m, n)) < p_open] = 0.0
    return G


def assert_rel(actual, expected, rtol):
    """Every element within rtol of the reference, relative to the largest reference value."""
    scale = np.max(np.abs(expected))
    err = np.max(np.abs(actual - expected)) / scale
    assert err < rtol, f"max relative error {err:.3g} >= {rtol:g}"


# ----------------------------------------------------------------------------- transfer matrix
def test_transfer_without_line_resistance_is_exactly_GT():
    G = random_array(np.random.default_rng(1), 4, 6)
    T = transfer_matrix(G, 0.0, 0.0)
    assert np.array_equal(T, G.T)
    T[0, 0] = -1.0
    assert G[0, 0] != -1.0  # a copy, not a view


CASES = [
    # (m, n, r_row, r_col)
    (15, 15, 2.0, 2.0),
    (15, 15, 20.0, 20.0),
    (15, 15, 20.0, 0.5),
    (15, 15, 0.0, 3.0),
    (15, 15, 3.0, 0.0),
    (5, 9, 3.0, 1.0),  # wide: solved through the reciprocal transpose
    (9, 5, 1.0, 7.0),
    (1, 6, 2.0, 2.0),
    (6, 1, 2.0, 2.0),
]


@pytest.mark.parametrize("m,n,r_row,r_col", CASES)
def test_transfer_matches_sparse_solve(m, n, r_row, r_col):
    rng = np.random.default_rng(100 + m * n + int(10 * r_row) + int(r_col))
    G = random_array(rng, m, n)
    T = transfer_matrix(G, r_row, r_col)
    T_ref = reference_transfer(G, r_row, r_col)
    assert T.shape == (n, m)
    assert_rel(T, T_ref, 1e-9)
    # Element by element too (entries of open devices are small but not zero).
    nz = T_ref != 0
    assert np.max(np.abs(T - T_ref)[nz] / np.abs(T_ref[nz])) < 1e-9
    assert np.all(T[~nz] == 0)


@pytest.mark.parametrize("seed", [0, 1])
def test_transfer_64x64_matches_sparse_solve(seed):
    rng = np.random.default_rng(seed)
    G = random_array(rng, 64, 64)
    r = (2.0, 20.0)[seed]
    assert_rel(transfer_matrix(G, r, r), reference_transfer(G, r, r), 1e-9)



GS_CASES = [
    # (m, n, r_row, r_col, p_open): low line resistance, no shorts -- the Gauss-Seidel path
    (15, 15, 0.5, 0.5, 0.0),
    (15, 15, 0.3, 0.4, 0.05),  # opens: tiny sneak-only entries, one sweep more
    (12, 20, 0.3, 0.3, 0.0),  # wide: 12 right-hand sides
    (20, 12, 0.3, 0.3, 0.0),  # tall: through the reciprocal network
    (64, 64, 0.1, 0.1, 0.0),
]


@pytest.mark.parametrize("m,n,r_row,r_col,p_open", GS_CASES)
def test_transfer_gauss_seidel_matches_sparse_solve(m, n, r_row, r_col, p_open):
    rng = np.random.default_rng(200 + m + n)
    G = random_array(rng, m, n, p_short=0.0, p_open=p_open)
    T_ref = reference_transfer(G, r_row, r_col)
    nz = T_ref != 0
    # the iteration itself (it returns 0 when it hands over), on the array or, when tall,
    # on its reciprocal network (flipped transpose, resistances exchanged)
    tall = m > n
    Gk, rr, rc = (G[::-1, ::-1].T.copy(), r_col, r_row) if tall else (G, r_row, r_col)
    work = np.empty(_transfer_work_size(m, n))
    out = np.empty((Gk.shape[1], Gk.shape[0]))
    assert _transfer_gs(Gk, rr, rc, GS_TOL, 10, work, out) > 0
    T_gs = out[::-1, ::-1].T if tall else out
    # and the kernel, whichever path it picks
    for T in (T_gs, transfer_matrix(G, r_row, r_col)):
        assert T.shape == (n, m)
        assert_rel(T, T_ref, 1e-9)
        assert np.max(np.abs(T - T_ref)[nz] / np.abs(T_ref[nz])) < 1e-9
        assert np.all(T[~nz] == 0)


def test_transfer_gauss_seidel_is_picked_only_where_it_pays():
    rng = np.random.default_rng(7)
    G = random_array(rng, 15, 15, p_short=0.0, p_open=0.0)
    k_max = _gs_max_sweeps(15)
    assert _gs_promising(G, 0.5, 0.5, GS_TOL, k_max)
    assert not _gs_promising(G, 5.0, 5.0, GS_TOL, k_max)  # heavy wires: elimination
    G_open = G.copy()
    G_open[3, 4] = 0.0  # an open device costs a sweep: not at 15 x 15
    assert not _gs_promising(G_open, 0.5, 0.5, GS_TOL, k_max)
    # with shorts the tight bound asks for many sweeps: the iteration hands over
    G_short = random_array(rng, 15, 15)
    work = np.empty(_transfer_work_size(15, 15))
    assert _transfer_gs(G_short, 2.0, 2.0, GS_TOL, k_max, work, np.empty((15, 15))) == 0

def test_transfer_resistance_lowers_currents_and_tends_to_GT():
    G = random_array(np.random.default_rng(3), 8, 8, p_short=0.0)
    T = transfer_matrix(G, 2.0, 2.0)
    assert np.sum(T) < np.sum(G)
    T_tiny = transfer_matrix(G, 1e-9, 1e-9)
    assert_rel(T_tiny, G.T, 1e-9)


def test_transfer_open_lines_stay_regular():
    rng = np.random.default_rng(4)
    G = random_array(rng, 7, 6)
    G[:, 2] = 0.0  # a column whose every device is open
    G[4, :] = 0.0  # a row likewise
    for r_row, r_col in [(2.0, 2.0), (0.0, 2.0), (2.0, 0.0)]:
        T = transfer_matrix(G, r_row, r_col)
        assert np.all(np.isfinite(T))
        assert np.all(T[2, :] == 0.0)
        assert np.all(T[:, 4] == 0.0)
        assert_rel(T, reference_transfer(G, r_row, r_col), 1e-9)
    assert np.all(transfer_matrix(np.zeros((3, 4)), 2.0, 2.0) == 0.0)


@pytest.mark.parametrize("r_row,r_col", [(1e5, 2.0), (2.0, 1e5)])
def test_transfer_long_resistive_lines(r_row, r_col):
    # Mostly shorts on 1e5-ohm segments: the attenuation along a 60-cell line falls below
    # 1e-150, which switches the line elimination from its O(n) form to the row-by-row one.
    rng = np.random.default_rng(14)
    G = np.full((60, 60), 1.0 / R_SHORT)
    G[rng.random(G.shape) < 0.3] = 1e-4
    T = transfer_matrix(G, r_row, r_col)
    assert_rel(T, reference_transfer(G, r_row, r_col), 1e-9)


def test_kirchhoff_source_current_equals_column_current():
    rng = np.random.default_rng(5)
    m, n, r = 15, 15, 2.0
    G = random_array(rng, m, n)
    V = rng.uniform(0.0, 0.1, m)
    a, b = node_voltages(G, V, r, r)
    source_current = np.sum((V - a[:, 0]) / r)
    column_current = np.sum(transfer_matrix(G, r, r) @ V)
    assert abs(source_current - column_current) <= 1e-12 * abs(column_current)
    # and the node voltages themselves match the reference
    a_ref, b_ref = reference_solve(G, r, r, V[:, None], np.zeros((n, 1)))
    assert_rel(a, a_ref[0], 1e-9)
    assert_rel(b, b_ref[0], 1e-9)


@pytest.mark.parametrize("r_row,r_col", [(0.0, 0.0), (0.0, 2.0), (2.0, 0.0)])
def test_node_voltages_ideal_lines(r_row, r_col):
    rng = np.random.default_rng(6)
    G = random_array(rng, 5, 4)
    V = rng.uniform(0.0, 0.1, 5)
    a, b = node_voltages(G, V, r_row, r_col)
    if r_row == 0.0:
        assert np.array_equal(a, np.repeat(V[:, None], 4, 1))
    if r_col == 0.0:
        assert np.all(b == 0.0)
    a_ref, b_ref = reference_solve(G, r_row, r_col, V[:, None], np.zeros((4, 1)))
    assert_rel(a - b, (a_ref - b_ref)[0], 1e-9)


def test_transfer_validates_inputs():
    with pytest.raises(ValueError, match="non-negative"):
        transfer_matrix(-np.ones((2, 2)), 1.0, 1.0)
    with pytest.raises(ValueError, match="r_col"):
        transfer_matrix(np.ones((2, 2)), 1.0, -1.0)
    with pytest.raises(ValueError, match="2-D"):
        transfer_matrix(np.ones(3), 1.0, 1.0)


# ----------------------------------------------------------------------------- nonlinear read
def tmr_conductance(g_parallel, tmr0, state, v, v_h):
    g_ap = g_parallel / (1.0 + tmr0 / (1.0 + (v / v_h) ** 2))
    return np.where(state == 1, g_parallel, g_ap)


def test_nonlinear_without_line_resistance_is_one_exact_update():
    rng = np.random.default_rng(7)
    m, n = 5, 4
    g_p = 1.0 / rng.uniform(5e3, 1e4, (m, n))
    tmr0 = rng.uniform(1.0, 1.4, (m, n))
    state = rng.integers(0, 2, (m, n))
    V = rng.uniform(0.0, 0.4, m)
    I, converged, iterations = read_currents_nonlinear(g_p, tmr0, state, 0.5, V)
    G = tmr_conductance(g_p, tmr0, state, V[:, None], 0.5)
    np.testing.assert_allclose(I, G.T @ V, rtol=1e-14)
    assert converged and iterations == 1


def nonlinear_reference(g_p, tmr0, state, v_h, V, r):
    """Solve KCL with voltage-dependent conductances by scipy.optimize.root (hybr)."""
    m, n = state.shape
    G0 = tmr_conductance(g_p, tmr0, state, 0.0, v_h)
    a0, b0 = reference_solve(G0, r, r, V[:, None], np.zeros((n, 1)))
    x0 = np.concatenate([a0[0].ravel(), b0[0].ravel()])
    g = 1.0 / r

    def residual(x):
        a = x[: m * n].reshape(m, n)
        b = x[m * n :].reshape(m, n)
        G = tmr_conductance(g_p, tmr0, state, a - b, v_h)
        dev = G * (a - b)  # current from row node to column node
        left = np.concatenate([V[:, None], a[:, :-1]], axis=1)
        right = np.concatenate([a[:, 1:], a[:, -1:]], axis=1)
        ka = g * (a - left) + g * (a - right) + dev
        up = np.concatenate([b[:1], b[:-1]], axis=0)
        down = np.concatenate([b[1:], np.zeros((1, n))], axis=0)
        kb = g * (b - up) + g * (b - down) - dev
        return np.concatenate([ka.ravel(), kb.ravel()]) * 1e4

    sol = scipy.optimize.root(residual, x0, method="hybr", options={"xtol": 1e-14})
    assert sol.success
    a = sol.x[: m * n].reshape(m, n)
    b = sol.x[m * n :].reshape(m, n)
    return tmr_conductance(g_p, tmr0, state, a - b, v_h) * (a - b)


def test_nonlinear_matches_root_solve():
    rng = np.random.default_rng(8)
    m, n, r, v_h = 6, 5, 20.0, 0.5
    g_p = 1.0 / rng.uniform(5e3, 1e4, (m, n))
    g_p[0, 0] = 1.0 / R_SHORT
    g_p[2, 3] = 0.0
    tmr0 = rng.uniform(1.0, 1.4, (m, n))
    state = rng.integers(0, 2, (m, n))
    V = rng.uniform(0.2, 0.6, m)
    I, converged, iterations = read_currents_nonlinear(g_p, tmr0, state, v_h, V, r, r, tol=1e-13)
    assert converged and 1 < iterations < 50
    I_ref = nonlinear_reference(g_p, tmr0, state, v_h, V, r).sum(axis=0)
    assert_rel(I, I_ref, 1e-9)
    # The bias dependence matters here: a zero-bias linear read differs.
    G0 = tmr_conductance(g_p, tmr0, state, 0.0, v_h)
    assert np.max(np.abs(transfer_matrix(G0, r, r) @ V - I)) > 1e-4 * np.max(np.abs(I))


def test_nonlinear_all_parallel_is_linear_and_batched():
    rng = np.random.default_rng(9)
    m, n = 4, 6
    g_p = 1.0 / rng.uniform(5e3, 1e4, (m, n))
    state = np.ones((m, n), int)
    V = rng.uniform(0.0, 0.3, (3, m))
    I, converged, iterations = read_currents_nonlinear(g_p, 1.2, state, 0.5, V, 2.0, 2.0)
    assert I.shape == (3, n) and converged.all() and np.all(iterations == 1)
    assert_rel(I, V @ transfer_matrix(g_p, 2.0, 2.0).T, 1e-12)
    state[1, 2] = 0
    I_b, conv_b, it_b = read_currents_nonlinear(g_p, 1.2, state, 0.5, V, 2.0, 2.0)
    for s in range(3):
        I_s, conv_s, it_s = read_currents_nonlinear(g_p, 1.2, state, 0.5, V[s], 2.0, 2.0)
        assert np.array_equal(I_s, I_b[s]) and conv_s == conv_b[s] and it_s == it_b[s]


def test_nonlinear_reports_non_convergence():
    rng = np.random.default_rng(10)
    m, n = 4, 4
    g_p = 1.0 / rng.uniform(5e3, 1e4, (m, n))
    state = np.zeros((m, n), int)
    V = np.full(m, 0.3)
    _, converged, iterations = read_currents_nonlinear(
        g_p, 1.2, state, 0.5, V, 2.0, 2.0, max_iter=1
    )
    assert not converged and iterations == 1
    _, converged, _ = read_currents_nonlinear(g_p, 1.2, state, 0.5, V, 2.0, 2.0, max_iter=50)
    assert converged


def test_nonlinear_validates_inputs():
    with pytest.raises(ValueError, match="state"):
        read_currents_nonlinear(1e-4, 1.2, np.full((2, 2), 2), 0.5, np.zeros(2))
    with pytest.raises(ValueError, match="v_h"):
        read_currents_nonlinear(1e-4, 1.2, np.ones((2, 2)), 0.0, np.zeros(2))
    with pytest.raises(ValueError, match="max_iter"):
        read_currents_nonlinear(1e-4, 1.2, np.ones((2, 2)), 0.5, np.zeros(2), max_iter=0)


# ----------------------------------------------------------------------------- verify read
def verify_reference(G, i, j, v, scheme, r_row, r_col):
    m, n = G.shape
    fill = v / 2 if scheme == "half" else np.nan
    row_src = np.full((m, 1), fill)
    col_src = np.full((n, 1), fill)
    row_src[i] = v
    col_src[j] = 0.0
    a, b = reference_solve(G, r_row, r_col, row_src, col_src)
    return v / reference_sense_currents(G, a, b)[0, j]


def test_verify_half_without_line_resistance_closed_form():
    rng = np.random.default_rng(11)
    G = random_array(rng, 6, 5)
    v = 0.1
    for i, j in [(0, 0), (3, 2), (5, 4)]:
        current = G[i, j] * v + (np.sum(G[:, j]) - G[i, j]) * v / 2
        assert verify_read_resistance(G, i, j, v, "half") == pytest.approx(v / current, rel=1e-14)


@pytest.mark.parametrize("scheme", ["floating", "half"])
@pytest.mark.parametrize("r_row,r_col", [(0.0, 0.0), (2.0, 2.0), (0.0, 5.0), (5.0, 0.0)])
def test_verify_matches_sparse_solve(scheme, r_row, r_col):
    rng = np.random.default_rng(12)
    G = random_array(rng, 7, 6)
    # Isolated floating lines: an all-open row, and a row/column pair joined only to each
    # other, so the floating network has components that no driver reaches.
    G[5, :] = 0.0
    G[:, 4] = 0.0
    G[6, :] = 0.0
    G[6, 4] = 1e-4
    for i, j in [(0, 0), (2, 3), (1, 5)]:
        R = verify_read_resistance(G, i, j, 0.1, scheme, r_row, r_col)
        R_ref = verify_reference(G, i, j, 0.1, scheme, r_row, r_col)
        assert R == pytest.approx(R_ref, rel=1e-9)


@pytest.mark.parametrize("scheme", ["floating", "half"])
def test_verify_long_resistive_rows(scheme):
    rng = np.random.default_rng(15)
    G = np.full((3, 60), 1.0 / R_SHORT)
    G[rng.random(G.shape) < 0.3] = 1e-4
    R = verify_read_resistance(G, 1, 5, 0.1, scheme, 1e5, 2.0)
    assert R == pytest.approx(verify_reference(G, 1, 5, 0.1, scheme, 1e5, 2.0), rel=1e-9)


def test_verify_floating_sneak_paths():
    # Without sneak paths the sensed resistance is the device's; with them it is lower.
    G = np.zeros((3, 3))
    G[0, 0] = 1e-4
    assert verify_read_resistance(G, 0, 0, 0.1, "floating") == pytest.approx(1e4, rel=1e-12)
    G[:] = 1e-4
    R = verify_read_resistance(G, 0, 0, 0.1, "floating")
    assert R < 1e4
    # 3 x 3 all equal: the sneak network from (0,0) is 2 devices (row side) || ... -> closed
    # form: row 0 -> 2 floating columns -> 2 floating rows -> column 0.
    g = 1e-4
    sneak = 1.0 / (1.0 / (2 * g) + 1.0 / (4 * g) + 1.0 / (2 * g))
    assert R == pytest.approx(1.0 / (g + sneak), rel=1e-12)
    G[:, 0] = 0.0
    assert verify_read_resistance(G, 0, 0, 0.1, "floating") == np.inf


def test_verify_validates_inputs():
    G = np.full((3, 3), 1e-4)
    with pytest.raises(ValueError, match="scheme"):
        verify_read_resistance(G, 0, 0, 0.1, "ground")
    with pytest.raises(ValueError, match="row indices"):
        verify_read_resistance(G, 3, 0, 0.1, "half")
    with pytest.raises(ValueError, match="v_read"):
        verify_read_resistance(G, 0, 0, 0.0, "half")


# ----------------------------------------------------------------------------- batches
def test_batches_equal_single_calls():
    # The batch paths are njit kernels calling the per-instance kernels with one reused work
    # buffer, as an engine kernel would.
    rng = np.random.default_rng(13)
    Gs = np.stack([random_array(rng, 5, 4) for _ in range(3)])
    T = transfer_matrix(Gs, 2.0, 3.0)
    assert T.shape == (3, 4, 5)
    for s in range(3):
        assert np.array_equal(T[s], transfer_matrix(Gs[s], 2.0, 3.0))
    assert np.array_equal(transfer_matrix(Gs, 0.0, 0.0), Gs.transpose(0, 2, 1))
    i, j = np.meshgrid(np.arange(5), np.arange(4), indexing="ij")
    R = verify_read_resistance(Gs[0], i, j, 0.1, "floating", 2.0, 2.0)
    assert R.shape == (5, 4)
    for a, b in [(0, 0), (4, 3), (2, 1)]:
        assert R[a, b] == verify_read_resistance(Gs[0], a, b, 0.1, "floating", 2.0, 2.0)


# ----------------------------------------------------------------------------- write bias
def write_sources(m, n, i, j, amplitude, scheme):
    """Driver voltages of a write pulse, written from the scheme definitions."""
    row = np.zeros(m)
    col = np.full(n, amplitude / 3.0 if scheme == "v3" else 0.0)
    if scheme == "v2":
        row[i], col[j] = amplitude / 2, -amplitude / 2
    elif scheme == "v3":
        row[i], col[j] = 2 * amplitude / 3, -amplitude / 3
    else:
        row[i], col[j] = amplitude, 0.0
    return row, col


def reference_write(G, i, j, amplitude, scheme, r_row, r_col, r_drv):
    """Device voltages of a write pulse by one sparse solve of the write netlist (every
    line driven at its end through r_drv and its first segment), vectorised so that 64 x 64
    arrays take milliseconds. Lines with resistance > 0 only."""
    assert r_row > 0 and r_col > 0
    m, n = G.shape
    row, col = write_sources(m, n, i, j, amplitude, scheme)
    a = np.arange(m * n).reshape(m, n)
    b = m * n + a
    p = [a[:, :-1].ravel(), b[:-1, :].ravel(), a.ravel()]
    q = [a[:, 1:].ravel(), b[1:, :].ravel(), b.ravel()]
    g = [np.full(m * (n - 1), 1 / r_row), np.full((m - 1) * n, 1 / r_col), G.ravel()]
    p, q, g = (np.concatenate(x) for x in (p, q, g))
    N = 2 * m * n
    K = sp.coo_matrix((np.concatenate([g, g, -g, -g]),
                       (np.concatenate([p, q, p, q]), np.concatenate([p, q, q, p]))),
                      shape=(N, N)).tocsr()
    drive = np.zeros(N)
    rhs = np.zeros(N)
    drive[a[:, 0]] += 1 / (r_row + r_drv)
    rhs[a[:, 0]] += row / (r_row + r_drv)
    drive[b[m - 1, :]] += 1 / (r_col + r_drv)
    rhs[b[m - 1, :]] += col / (r_col + r_drv)
    x = spla.spsolve((K + sp.diags(drive)).tocsc(), rhs)
    return x[: m * n].reshape(m, n) - x[m * n :].reshape(m, n)


def reference_write_general(G, i, j, amplitude, scheme, r_row, r_col, r_drv):
    """As :func:`reference_write` through :func:`reference_solve` (ideal lines allowed)."""
    m, n = G.shape
    row, col = write_sources(m, n, i, j, amplitude, scheme)
    a, b = reference_solve(G, r_row, r_col, row[:, None], col[:, None], r_drv)
    return a[0] - b[0]


def mtj_array(rng, m, n, diameter, p_short=0.0):
    """P/AP devices of a diameter (RA 10 ohm um^2, TMR 1.2), some shorted (100 ohm)."""
    g_p = np.pi / 4 * diameter**2 / 1e-11
    G = np.where(rng.random((m, n)) < 0.5, g_p, g_p / 2.2)
    G[rng.random((m, n)) < p_short] = 1.0 / R_SHORT
    return G


@pytest.mark.parametrize("scheme", ["v2", "v3", "none"])
@pytest.mark.parametrize("r_row, r_col, r_drv", [(2.0, 3.0, 0.0), (2.0, 2.0, 15.0),
                                                 (0.0, 4.0, 5.0), (3.0, 0.0, 5.0),
                                                 (0.0, 0.0, 7.0)])
def test_write_full_matches_sparse(scheme, r_row, r_col, r_drv):
    rng = np.random.default_rng(11)
    G = random_array(rng, 7, 5)
    G[2, 3] = 1e-4  # the selected device is neither open nor shorted
    v, sweeps, ok = write_voltages(G, 2, 3, 0.6, scheme, r_row, r_col, r_drv, solver="full")
    assert ok and sweeps == 0
    assert_rel(v, reference_write_general(G, 2, 3, 0.6, scheme, r_row, r_col, r_drv), 1e-9)
    if r_row > 0 and r_col > 0:  # the two references agree
        assert_rel(v, reference_write(G, 2, 3, 0.6, scheme, r_row, r_col, r_drv), 1e-9)


def test_write_without_resistance_is_ideal():
    rng = np.random.default_rng(3)
    G = random_array(rng, 6, 8)
    for solver in ("fast", "full"):
        v, _, _ = write_voltages(G, 4, 1, 0.6, "v3", solver=solver)
        expected = np.full((6, 8), -0.2)
        expected[4, :] = expected[:, 1] = 0.2
        expected[4, 1] = 0.6
        np.testing.assert_allclose(v, expected, rtol=0, atol=1e-15)


def test_write_selected_only_is_a_series_circuit():
    """'none' with G zero outside the selected device: a voltage divider of the device, two
    drivers and the segments between them and the cell."""
    G = np.zeros((9, 6))
    G[3, 4] = 2e-4
    for solver in ("fast", "full"):
        v, _, _ = write_voltages(G, 3, 4, 0.5, "none", 2.0, 3.0, 10.0, solver=solver)
        r_path = 2 * 10.0 + 2.0 * (4 + 1) + 3.0 * (9 - 3)
        assert v[3, 4] == pytest.approx(0.5 / (1 + G[3, 4] * r_path), rel=1e-12)


@pytest.mark.parametrize("m", [15, 64])
@pytest.mark.parametrize("scheme", ["v2", "v3"])
def test_write_fast_within_half_percent_of_sparse(m, scheme):
    """The fast solver's selected-cell voltage against the sparse solve: 40-100 nm devices,
    segments 0.5-10 ohm, driver 0 or 10 ohm, corner and random cells, 1 % shorts (64 x 64:
    the hardest corner of that range only, the sparse solve takes a while there)."""
    rng = np.random.default_rng(m)
    big = m > 20
    worst = 0.0
    for diameter in (100e-9,) if big else (40e-9, 100e-9):
        for r_wire in (2.0, 10.0) if big else (0.5, 10.0):
            for r_drv in (10.0,) if big else (0.0, 10.0):
                G = mtj_array(rng, m, m, diameter, p_short=0.01)
                cells = [(0, m - 1), tuple(rng.integers(0, m, 2))]
                if not big:
                    cells.append((m - 1, 0))
                for i, j in cells:
                    G[i, j] = np.pi / 4 * diameter**2 / 1e-11
                    v, _, ok = write_voltages(G, i, j, 0.6, scheme, r_wire, r_wire, r_drv)
                    ref = reference_write(G, i, j, 0.6, scheme, r_wire, r_wire, r_drv)
                    assert ok
                    worst = max(worst, abs(v[i, j] / ref[i, j] - 1))
    assert worst < 5e-3


def test_fast_solver_constants_agree():
    """The engine kernels repeat the fast solver's settings (they sit below
    mcmtj.physics.circuit)."""
    from mcmtj.kernels import _engine_kernels as K
    from mcmtj.physics import circuit

    assert (K.FAST_ACCEPT, K.FAST_TOL, K.FAST_MAX_SWEEPS) == (
        circuit.FAST_ACCEPT, circuit.FAST_TOL, circuit.FAST_MAX_SWEEPS)


def test_write_validates_inputs():
    G = np.full((3, 3), 1e-4)
    with pytest.raises(ValueError, match="r_driver"):
        write_voltages(G, 0, 0, 0.5, r_driver=-1.0)
    with pytest.raises(ValueError, match="solver"):
        write_voltages(G, 0, 0, 0.5, solver="fastest")
    with pytest.raises(ValueError, match="scheme"):
        write_voltages(G, 0, 0, 0.5, scheme="v4")
    with pytest.raises(ValueError, match="i must"):
        write_voltages(G, 3, 0, 0.5)


@pytest.mark.parametrize("scheme, shape", [("v2", (5, 4)), ("v3", (4, 6))])
def test_write_sweeps_same_bits_as_line_by_line_relaxation(scheme, shape):
    """The fast solver's one-step answer solves the selected row and column side by side,
    and its Gauss-Seidel sweeps run every row line (then every column line) side by side
    with pivots factorised once; against one ``_line_with_tap`` per selected line, and one
    ``_line_relax`` per line and sweep in plain Python loops from the same start: same
    sweeps, same bits."""
    m, n = shape
    rng = np.random.default_rng(5)
    G = mtj_array(rng, m, n, 60e-9, p_short=0.1)
    G[0, 1] = 0.0  # an open device
    r_row, r_col, r_drv, amp, i, j = 10.0, 7.0, 20.0, 0.6, m - 2, 1
    row_src, col_src = np.zeros(m), np.zeros(n)
    _write_sources({"v2": 1, "v3": 2}[scheme], amp, i, j, row_src, col_src)
    work = np.zeros(_write_work_size(m, n))

    def solve(max_sweeps):
        a, b = np.zeros((m, n)), np.zeros((m, n))
        # accept = 0: always refine (the one-step answer's estimate is never below 0)
        out = _write_bias_kernel(G, r_row, r_col, r_drv, row_src, col_src, i, j, IR_FAST, 0.0,
                                 1e-9, max_sweeps, work, a, b)
        return out, a, b

    _, a, b = solve(0)  # the one-step answer (selected lines), the sweeps' starting point
    # ... against one _line_with_tap call per selected line
    lines = []
    for sh, src, g, gd, v, k in ((G[i].copy(), col_src, 1 / r_row, 1 / (r_row + r_drv),
                                  row_src[i], j),
                                 (G[::-1, j].copy(), row_src[::-1].copy(), 1 / r_col,
                                  1 / (r_col + r_drv), col_src[j], m - 1 - i)):
        x0, x1 = np.zeros(sh.size), np.zeros(sh.size)
        _line_with_tap(sh, src, g, gd, v, k, np.zeros(sh.size), np.zeros(sh.size), x0, x1)
        lines.append((x0, x1))
    (x0, x1), (y0, y1) = lines
    current = G[i, j] * (x0[j] - y0[m - 1 - i]) / (1.0 + G[i, j] * (x1[j] + y1[m - 1 - i]))
    np.testing.assert_array_equal(a[i], x0 - current * x1)
    np.testing.assert_array_equal(b[::-1, j], y0 + current * y1)
    g_r, g_c, gd_r, gd_c = 1 / r_row, 1 / r_col, 1 / (r_row + r_drv), 1 / (r_col + r_drv)
    d, e, x = np.zeros(max(m, n)), np.zeros(max(m, n)), np.zeros(m)
    sweeps_ref = 0
    while sweeps_ref < 100:
        sweeps_ref += 1
        change = 0.0
        for r in range(m):
            change = max(change, _line_relax(G[r], b[r].copy(), g_r, gd_r, row_src[r], d[:n],
                                             e[:n], a[r]))
        for c in range(n):
            x[:] = b[::-1, c]
            change = max(change, _line_relax(G[::-1, c].copy(), a[::-1, c].copy(), g_c, gd_c,
                                             col_src[c], d[:m], e[:m], x))
            b[::-1, c] = x
        if change <= 1e-9 * amp:
            break
    (sweeps, ok), a_new, b_new = solve(2000)
    assert ok and sweeps == sweeps_ref > 1
    np.testing.assert_array_equal(a_new, a)
    np.testing.assert_array_equal(b_new, b)
