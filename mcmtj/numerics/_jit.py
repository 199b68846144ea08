"""The one place that decides how numba compiles mcmtj's kernels.

Feature modules import the decorators below and never call ``numba.njit`` with
their own options, so caching, the error model and fast-math are set once.

- ``cache=True``: compile once per machine; the first call of a session then
  loads machine code from ``__pycache__`` instead of spending seconds in LLVM.
- ``error_model="numpy"``: division by zero gives inf/nan like NumPy instead of
  raising, which also lets LLVM vectorise loops containing divisions.
- ``fastmath=False``: results must be reproducible bit for bit across thread
  counts and chunkings, and NaN/inf must survive; no measured win justified it.
- The cache is stamped with a hash of every module of the folders that hold
  compiled code (:data:`KERNEL_FOLDERS`): numba checks a cached kernel only against
  its own source file, but machine code is inlined across modules (and module
  constants are frozen into it), so an edit of a helper elsewhere (a pull onto an
  editable install) would otherwise run stale code without a word. The price: an edit
  there recompiles every kernel on its next use (minutes); an edit of the layers above
  (run, analysis, papers, the CLI, the config) does not. A kernel defined in another
  folder of the package is refused at import, so the stamp cannot miss one.
  :data:`PACKAGE_STAMP`, the hash of the whole package, is what a result's provenance
  records (``code_sha256``): results depend on the run layer too.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numba

__all__ = ["kernel", "parallel_kernel", "prange"]

_OPTIONS = {"cache": True, "error_model": "numpy", "fastmath": False, "nogil": True}

prange = numba.prange


#: the package's folders that may hold compiled kernels (and the module globals they freeze)
KERNEL_FOLDERS = ("numerics", "physics", "kernels")
_ROOT = Path(__file__).parents[1]  # the mcmtj package


#: the parts of the package that cannot change a simulated result: statistics, reports, CLI
NOT_SIMULATION = ("analysis", "papers", "cli.py")


def _package_stamp(folders: tuple[str, ...] | None = None, exclude: tuple[str, ...] = ()) -> str:
    """SHA-256 of the contents of every module of the package (or of ``folders`` of it),
    leaving out the top-level folders or modules named in ``exclude``."""
    digest = hashlib.sha256()
    paths = (_ROOT.rglob("*.py") if folders is None
             else (p for f in folders for p in (_ROOT / f).rglob("*.py")))
    for path in sorted(paths):
        rel = path.relative_to(_ROOT)
        if rel.parts[0] in exclude:
            continue
        digest.update(rel.as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


#: hash of the whole package: the provenance of results (``code_sha256``)
PACKAGE_STAMP = _package_stamp()
#: hash of everything that can change a simulated result (``simulation_sha256``): a stored
#: result with another one must be simulated again before it is reported
SIMULATION_STAMP = _package_stamp(exclude=NOT_SIMULATION)
#: hash of :data:`KERNEL_FOLDERS`: the stamp of numba's on-disk cache
KERNEL_STAMP = _package_stamp(KERNEL_FOLDERS)


def _stamp_cache(dispatcher):
    """Make ``dispatcher``'s cache valid only for this exact source of the kernel folders.

    numba compares the stamp saved in a cache index with the one computed at
    decoration (``IndexDataCacheFile._source_stamp``, stable since numba 0.4x); a
    differing stamp discards the index and recompiles. Where a numba version lacks
    that attribute nothing is changed (``tests/test_jit.py`` notices).
    """
    module = getattr(dispatcher.py_func, "__module__", "") or ""
    parts = module.split(".")
    if parts[0] == "mcmtj" and (len(parts) < 3 or parts[1] not in KERNEL_FOLDERS):
        raise ImportError(f"{module}.{dispatcher.py_func.__name__}: mcmtj kernels live in "
                          f"mcmtj.{{{','.join(KERNEL_FOLDERS)}}}, whose source stamps the "
                          "numba cache (mcmtj.numerics._jit)")
    cache_file = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    if cache_file is not None and hasattr(cache_file, "_source_stamp"):
        cache_file._source_stamp = (cache_file._source_stamp, KERNEL_STAMP)
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
