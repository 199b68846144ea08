"""Transfer matrix of one 15 x 15 array with 2 ohm line segments: mcmtj kernel vs scipy.

The scipy side is what a user would write per Monte Carlo instance: build the 2 m n-node
sparse nodal matrix with vectorised NumPy, factorise it once (``splu``, default ordering)
and solve the m right-hand sides; the natural ordering, faster for this node numbering, is
timed too. The mcmtj side is the numba kernel with preallocated buffers, as the
engine calls it (timed from Python, so it includes numba's dispatch overhead), plus the
per-instance cost inside an njit loop and the public wrapper for reference.

Timings are interleaved in rounds so that a busy machine slows both sides alike; medians
over rounds. Both sides run on one thread. Last line: ``transfer_speedup=<scipy median /
kernel median> path=<gs|exact> threads=1 load_avg=<1-min load average>``.

``--crossover`` times the two exact-to-1e-10 methods inside the kernel against each other
on arrays without defects (line Gauss-Seidel from the ideal solution, forced, with the
sweeps its bound asks for; and the block elimination), per array size and line
resistance, and says which one ``_transfer_matrix_kernel`` picks.

    python benchmarks/bench_transfer.py [--rounds 15] [--crossover]
"""

from __future__ import annotations

import argparse
import os
import time

import numba
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from mcmtj.physics._circuit_kernels import (
    GS_MIN_BLOCK,
    GS_TOL,
    _gs_max_sweeps,
    _gs_promising,
    _gs_work_size,
    _transfer_exact,
    _transfer_gs,
    _transfer_matrix_batch,
    _transfer_matrix_kernel,
    _transfer_work_size,
)
from mcmtj.physics.circuit import transfer_matrix


def scipy_transfer(G, r_row, r_col, permc_spec="COLAMD"):
    """Per-instance sparse build + one LU + m right-hand sides (the fair fast scipy way)."""
    m, n = G.shape
    g_r, g_c = 1.0 / r_row, 1.0 / r_col
    mn = m * n
    a = np.arange(mn).reshape(m, n)  # row-wire node of each cell
    b = a + mn  # column-wire node of each cell
    p = np.concatenate([a[:, :-1].ravel(), b[:-1, :].ravel(), a.ravel()])
    q = np.concatenate([a[:, 1:].ravel(), b[1:, :].ravel(), b.ravel()])
    g = np.concatenate([np.full(m * (n - 1), g_r), np.full((m - 1) * n, g_c), G.ravel()])
    diag = np.bincount(p, g, 2 * mn) + np.bincount(q, g, 2 * mn)
    diag[a[:, 0]] += g_r  # driver segments
    diag[b[-1, :]] += g_c  # sense-amplifier segments
    rows = np.concatenate([p, q, np.arange(2 * mn)])
    cols = np.concatenate([q, p, np.arange(2 * mn)])
    vals = np.concatenate([-g, -g, diag])
    K = sp.csc_matrix((vals, (rows, cols)), shape=(2 * mn, 2 * mn))
    rhs = np.zeros((2 * mn, m))
    rhs[a[:, 0], np.arange(m)] = g_r
    x = spla.splu(K, permc_spec=permc_spec).solve(rhs)
    return g_c * x[b[-1, :]]


def per_call(fn, calls):
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--m", type=int, default=15)
    parser.add_argument("--n", type=int, default=15)
    parser.add_argument("--r", type=float, default=2.0, help="ohm per segment (rows and columns)")
    parser.add_argument("--crossover", action="store_true",
                        help="time Gauss-Seidel against the block elimination instead")
    args = parser.parse_args(argv)
    if args.crossover:
        crossover(args.rounds)
        return
    measure_speedup(args.rounds, args.m, args.n, args.r, verbose=True)


@numba.njit
def _loop_gs(G, r, work, out, reps):
    k = 0
    for _ in range(reps):
        k = _transfer_gs(G, r, r, GS_TOL, 1000, work, out)
    return k


@numba.njit
def _loop_exact(G, r, work, out, reps):
    for _ in range(reps):
        _transfer_exact(G, r, r, work, out)


def uses_gs(G, r):
    """Whether ``_transfer_matrix_kernel`` takes the Gauss-Seidel path for G at r ohm."""
    m, n = G.shape
    if min(m, n) < GS_MIN_BLOCK or not _gs_promising(G, r, r, GS_TOL, _gs_max_sweeps(min(m, n))):
        return False
    work = np.empty(_transfer_work_size(m, n))
    return _transfer_gs(G, r, r, GS_TOL, _gs_max_sweeps(min(m, n)), work, np.empty((n, m))) > 0


def crossover(rounds=7, sizes=(8, 15, 32, 64), resistances=(0.1, 0.25, 0.5, 1.0, 2.0, 5.0)):
    """Per-instance time of both methods (medians of interleaved rounds), no defects."""
    print("size  r(ohm)  sweeps  gauss-seidel(us)  elimination(us)  ratio  kernel uses")
    for size in sizes:
        rng = np.random.default_rng(0)
        G = 1.0 / rng.uniform(5e3, 2e4, (size, size))
        work = np.empty(max(_transfer_work_size(size, size), _gs_work_size(size, size)))
        out = np.empty((size, size))
        reps = max(1, 200_000 // size**3)
        for r in resistances:
            k = _loop_gs(G, r, work, out, 1)
            _loop_exact(G, r, work, out, 1)
            t_gs, t_ex = [], []
            for _ in range(rounds):
                t0 = time.perf_counter()
                _loop_gs(G, r, work, out, reps)
                t1 = time.perf_counter()
                _loop_exact(G, r, work, out, reps)
                t_gs.append((t1 - t0) / reps)
                t_ex.append((time.perf_counter() - t1) / reps)
            a, b = np.median(t_gs) * 1e6, np.median(t_ex) * 1e6
            print(f"{size:4d}  {r:6.2f}  {k:6d}  {a:16.2f}  {b:15.2f}  {b / a:5.2f}  "
                  f"{'gauss-seidel' if uses_gs(G, r) else 'elimination'}")
    print(f"load_avg={os.getloadavg()[0]:.2f} threads=1")


def measure_speedup(rounds=15, m=15, n=15, r=2.0, verbose=False):
    """Median time of scipy's per-instance solve over the kernel's per-instance time inside
    an njit loop (the way the engine calls it), measured side by side; prints a table."""
    rng = np.random.default_rng(0)
    G = 1.0 / rng.uniform(5e3, 2e4, (m, n))
    work = np.empty(_transfer_work_size(m, n))
    out = np.empty((n, m))
    batch = 1000
    Gs = np.repeat(G[None], batch, axis=0)
    out_batch = np.empty((batch, n, m))

    # Warm up (numba compile or cache load) and check the two agree.
    _transfer_matrix_kernel(G, r, r, work, out)
    _transfer_matrix_batch(Gs[:2], r, r, work, out_batch[:2])
    T_scipy = scipy_transfer(G, r, r)
    T_mcmtj = transfer_matrix(G, r, r)
    rel_err = np.max(np.abs(T_mcmtj - T_scipy)) / np.max(np.abs(T_scipy))

    t_scipy, t_natural, t_kernel, t_loop, t_wrapper = [], [], [], [], []
    for _ in range(rounds):
        t_scipy.append(per_call(lambda: scipy_transfer(G, r, r), 20))
        t_natural.append(per_call(lambda: scipy_transfer(G, r, r, "NATURAL"), 20))
        t_kernel.append(per_call(lambda: _transfer_matrix_kernel(G, r, r, work, out), 500))
        t_loop.append(
            per_call(lambda: _transfer_matrix_batch(Gs, r, r, work, out_batch), 1) / batch
        )
        t_wrapper.append(per_call(lambda: transfer_matrix(G, r, r), 500))

    us = 1e6
    med = {
        k: float(np.median(v))
        for k, v in dict(
            scipy=t_scipy, natural=t_natural, kernel=t_kernel, loop=t_loop, wrapper=t_wrapper
        ).items()
    }
    print(f"array {m} x {n}, r_row = r_col = {r} ohm, {rounds} rounds, medians")
    print(f"max relative difference kernel vs scipy: {rel_err:.2e}")
    print(f"scipy build + splu + {m} RHS : {med['scipy'] * us:9.1f} us  (default COLAMD)")
    print(f"  same, permc_spec='NATURAL'  : {med['natural'] * us:9.1f} us  (fastest ordering here)")
    print(f"mcmtj kernel (from Python)  : {med['kernel'] * us:9.1f} us")
    print(f"mcmtj kernel (in njit loop) : {med['loop'] * us:9.1f} us per instance")
    print(f"mcmtj transfer_matrix()     : {med['wrapper'] * us:9.1f} us")
    print(f"speedup, kernel called from Python: {med['scipy'] / med['kernel']:.1f}")
    print(f"speedup vs NATURAL ordering (kernel from Python): {med['natural'] / med['kernel']:.1f}")
    speedup = med["scipy"] / med["loop"]
    path = "gs" if uses_gs(G, r) else "exact"
    if verbose:
        print(f"kernel path at this point: {path} (per instance inside an njit loop)")
        print(f"transfer_speedup={speedup:.1f} path={path} threads=1 "
              f"load_avg={os.getloadavg()[0]:.2f}")
    return speedup


if __name__ == "__main__":
    main()
