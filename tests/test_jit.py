"""The compile policy: caches are tied to the whole package's source."""

import numpy as np

from mcmtj.kernels import _engine_kernels
from mcmtj.numerics import _jit


def test_cache_stamp_covers_the_whole_package():
    stamp = _engine_kernels.simulate_chunk_core._cache._cache_file._source_stamp
    assert stamp[1] == _jit.PACKAGE_STAMP == _jit._package_stamp()


def test_changed_package_invalidates_a_cached_kernel(tmp_path, monkeypatch):
    monkeypatch.setattr(_jit.numba.config, "CACHE_DIR", str(tmp_path))

    def twice(x):
        return 2 * x

    def build(stamp):
        monkeypatch.setattr(_jit, "PACKAGE_STAMP", stamp)
        return _jit.kernel(twice)

    first = build("a")
    assert first(np.int64(3)) == 6
    assert build("a")._cache.load_overload(first.signatures[0], first.targetctx) is not None
    assert build("b")._cache.load_overload(first.signatures[0], first.targetctx) is None
