"""The one place that decides how numba compiles mcmtj's kernels.

Feature modules import the decorators below and never call ``numba.njit`` with
their own options, so caching, the error model and fast-math are set once.

- ``cache=True``: compile once per machine; the first call of a session then
  loads machine code from ``__pycache__`` instead of spending seconds in LLVM.
- ``error_model="numpy"``: division by zero gives inf/nan like NumPy instead of
  raising, which also lets LLVM vectorise loops containing divisions.
- ``fastmath=False``: results must be reproducible bit for bit across thread
  counts and chunkings, and NaN/inf must survive; no measured win justified it.
"""

from __future__ import annotations

import numba

__all__ = ["kernel", "parallel_kernel", "prange"]

_OPTIONS = {"cache": True, "error_model": "numpy", "fastmath": False, "nogil": True}

prange = numba.prange


def kernel(func=None, **overrides):
    """Compile ``func`` as a serial njit kernel with the project's policy."""
    options = {**_OPTIONS, **overrides}
    if func is None:
        return lambda f: numba.njit(**options)(f)
    return numba.njit(**options)(func)


def parallel_kernel(func=None, **overrides):
    """Compile ``func`` with ``parallel=True`` (``prange`` over instances only)."""
    return kernel(func, parallel=True, **overrides)
