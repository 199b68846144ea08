"""The compile policy: caches are tied to the source of the folders holding kernels."""

import sys

import numba
import numpy as np
import pytest

# every layer, so that every compiled function of the package is defined
import mcmtj.analysis.plotting  # noqa: F401
import mcmtj.cli  # noqa: F401
import mcmtj.papers.goodwill2022  # noqa: F401
import mcmtj.run.cuda  # noqa: F401
import mcmtj.run.store  # noqa: F401
from mcmtj.kernels import _engine_kernels
from mcmtj.numerics import _jit


def test_cache_stamp_covers_every_kernel_folder():
    stamp = _engine_kernels.simulate_chunk_core._cache._cache_file._source_stamp
    assert stamp[1] == _jit.KERNEL_STAMP == _jit._package_stamp(_jit.KERNEL_FOLDERS)
    assert _jit.PACKAGE_STAMP == _jit._package_stamp() != _jit.KERNEL_STAMP
    # every compiled function of the package (njit'd directly too) is inside those folders
    for name, module in list(sys.modules.items()):
        if name.startswith("mcmtj.") and name.split(".")[1] not in _jit.KERNEL_FOLDERS:
            assert not any(isinstance(v, numba.core.registry.CPUDispatcher)
                           and v.py_func.__module__ == name for v in vars(module).values()), name


def test_a_kernel_outside_the_stamped_folders_is_refused():
    def f(x):
        return x

    f.__module__ = "mcmtj.run.somewhere"
    with pytest.raises(ImportError, match="mcmtj.run.somewhere.f"):
        _jit.kernel(f)


def test_changed_package_invalidates_a_cached_kernel(tmp_path, monkeypatch):
    monkeypatch.setattr(_jit.numba.config, "CACHE_DIR", str(tmp_path))

    def twice(x):
        return 2 * x

    def build(stamp):
        monkeypatch.setattr(_jit, "KERNEL_STAMP", stamp)
        return _jit.kernel(twice)

    first = build("a")
    assert first(np.int64(3)) == 6
    assert build("a")._cache.load_overload(first.signatures[0], first.targetctx) is not None
    assert build("b")._cache.load_overload(first.signatures[0], first.targetctx) is None
