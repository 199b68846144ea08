"""The one place that decides how numba compiles mcmtj's kernels.

Feature modules import the decorators below and never call ``numba.njit`` with
their own options, so caching, the error model and fast-math are set once.

- ``cache=True``: compile once per machine; the first call of a session then
  loads machine code from ``__pycache__`` instead of spending seconds in LLVM.
- ``error_model="numpy"``: division by zero gives inf/nan like NumPy instead of
  raising, which also lets LLVM vectorise loops containing divisions.
- ``fastmath=False``: results must be reproducible bit for bit across thread
  counts and chunkings, and NaN/inf must survive; no measured win justified it.
- The cache is stamped with a hash of the whole package: numba checks a cached
  kernel only against its own source file, but machine code is inlined across
  modules, so an edit of a helper elsewhere (a pull onto an editable install)
  would otherwise run stale code without a word. The price: any edit of any module
  recompiles every kernel on its next use (a minute or more).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numba

__all__ = ["kernel", "parallel_kernel", "prange"]

_OPTIONS = {"cache": True, "error_model": "numpy", "fastmath": False, "nogil": True}

prange = numba.prange


def _package_stamp() -> str:
    """SHA-256 of the contents of every module of the package."""
    digest = hashlib.sha256()
    root = Path(__file__).parents[1]  # the mcmtj package, all layers
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


PACKAGE_STAMP = _package_stamp()


def _stamp_cache(dispatcher):
    """Make ``dispatcher``'s cache valid only for this exact package source.

    numba compares the stamp saved in a cache index with the one computed at
    decoration (``IndexDataCacheFile._source_stamp``, stable since numba 0.4x); a
    differing stamp discards the index and recompiles. Where a numba version lacks
    that attribute nothing is changed (``tests/test_jit.py`` notices).
    """
    cache_file = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    if cache_file is not None and hasattr(cache_file, "_source_stamp"):
        cache_file._source_stamp = (cache_file._source_stamp, PACKAGE_STAMP)
    return dispatcher


def kernel(func=None, **overrides):
    """Compile ``func`` as a serial njit kernel with the project's policy."""
    options = {**_OPTIONS, **overrides}
    if func is None:
        return lambda f: _stamp_cache(numba.njit(**options)(f))
    return _stamp_cache(numba.njit(**options)(func))


def parallel_kernel(func=None, **overrides):
    """Compile ``func`` with ``parallel=True`` (``prange`` over instances only)."""
    return kernel(func, parallel=True, **overrides)
