"""mcmtj.networks.datasets: fetch, verify and cache the NIST Wine data without the real host.

The archive is built here (laid out as GitHub's archive of daffodil-lib) and served from
a loopback HTTP server (127.0.0.1 only) or a file URL; the manifest is computed here
with hashlib, independently of the code under test.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
from functools import partial
from pathlib import Path

import pytest

from mcmtj.networks import datasets as D

TOP = f"daffodil-lib-{D.NIST_WINE_COMMIT}"
FILES = {
    "LICENSE": b"BSD-3 text\n",
    "LICENSE-NIST": b"NIST statement\n",
    "dataset/X_train.txt": b"0.1 0.2\n0.3 0.4\n",
    "solutions/0_fc1_weight.txt": b"1 0\n0 1\n",
}
# where each file sits in the repository archive
ARCHIVE_PATH = {
    "LICENSE": "LICENSE",
    "LICENSE-NIST": "LICENSE-NIST",
    "dataset/X_train.txt": "examples/wine/dataset/X_train.txt",
    "solutions/0_fc1_weight.txt": "examples/wine/solutions/0_fc1_weight.txt",
}
MANIFEST = {name: hashlib.sha256(data).hexdigest() for name, data in FILES.items()}


def make_archive(path: Path, files=FILES, extra=None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        members = {ARCHIVE_PATH[n]: d for n, d in files.items()}
        members.update(extra or {})
        members["README.md"] = b"other files of the repository are ignored\n"
        for name, data in members.items():
            info = tarfile.TarInfo(f"{TOP}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def server(tmp_path):
    """Serve ``tmp_path / 'www'`` on 127.0.0.1 (an ephemeral port) for one test."""
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    monkeypatch.delenv(D.NIST_WINE_ENV, raising=False)


def test_fetch_over_http_verifies_and_caches(server, tmp_path):
    root, base = server
    make_archive(root / "a.tar.gz")
    cache = tmp_path / "cache"
    folder = D.fetch_nist_wine(url=f"{base}/a.tar.gz", cache_dir=cache, manifest=MANIFEST)
    assert folder.parent == cache
    for name, data in FILES.items():
        assert (folder / name).read_bytes() == data
    assert not (folder / "README.md").exists()
    # only the finished folder is left in the cache root (no archive, no staging)
    assert [p.name for p in cache.iterdir()] == [folder.name]
    # second call: served from the cache, even with the server's file gone
    (root / "a.tar.gz").unlink()
    assert D.fetch_nist_wine(url=f"{base}/a.tar.gz", cache_dir=cache,
                             manifest=MANIFEST) == folder
    assert D.find_nist_wine(cache_dir=cache) == folder


def test_fetch_from_file_url_with_known_hash(tmp_path):
    archive = make_archive(tmp_path / "a.tar.gz")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    folder = D.fetch_nist_wine(url=archive.as_uri(), known_hash=f"sha256:{digest}",
                               cache_dir=tmp_path / "c", manifest=MANIFEST)
    assert (folder / "LICENSE-NIST").read_bytes() == FILES["LICENSE-NIST"]


def _assert_nothing_cached(cache: Path):
    assert not cache.exists() or list(cache.iterdir()) == []


def test_archive_hash_mismatch_is_one_line_and_caches_nothing(tmp_path):
    archive = make_archive(tmp_path / "a.tar.gz")
    cache = tmp_path / "c"
    with pytest.raises(D.DatasetError) as err:
        D.fetch_nist_wine(url=archive.as_uri(), known_hash="sha256:" + "0" * 64,
                          cache_dir=cache, manifest=MANIFEST)
    msg = str(err.value)
    assert "\n" not in msg and "a.tar.gz" in msg and "hash" in msg.lower()
    _assert_nothing_cached(cache)


def test_altered_file_in_archive_is_named(tmp_path):
    altered = dict(FILES, **{"dataset/X_train.txt": b"0.1 0.2\n0.3 0.5\n"})
    archive = make_archive(tmp_path / "a.tar.gz", files=altered)
    cache = tmp_path / "c"
    with pytest.raises(D.DatasetError, match=r"examples/wine/dataset/X_train\.txt.*SHA-256"):
        D.fetch_nist_wine(url=archive.as_uri(), cache_dir=cache, manifest=MANIFEST)
    _assert_nothing_cached(cache)


def test_truncated_archive_is_refused(tmp_path):
    archive = make_archive(tmp_path / "a.tar.gz")
    archive.write_bytes(archive.read_bytes()[:-60])
    cache = tmp_path / "c"
    with pytest.raises(D.DatasetError, match="a.tar.gz") as err:
        D.fetch_nist_wine(url=archive.as_uri(), cache_dir=cache, manifest=MANIFEST)
    assert "\n" not in str(err.value)
    _assert_nothing_cached(cache)


def test_archive_missing_a_file_is_named(tmp_path):
    partial_files = {k: v for k, v in FILES.items() if k != "solutions/0_fc1_weight.txt"}
    archive = make_archive(tmp_path / "a.tar.gz", files=partial_files)
    cache = tmp_path / "c"
    with pytest.raises(D.DatasetError, match=r"solutions/0_fc1_weight\.txt: missing"):
        D.fetch_nist_wine(url=archive.as_uri(), cache_dir=cache, manifest=MANIFEST)
    _assert_nothing_cached(cache)


def test_partial_cache_is_refused_not_trusted(tmp_path):
    archive = make_archive(tmp_path / "a.tar.gz")
    cache = tmp_path / "c"
    folder = D.fetch_nist_wine(url=archive.as_uri(), cache_dir=cache, manifest=MANIFEST)
    # a file truncated after the fetch
    (folder / "dataset/X_train.txt").write_bytes(b"0.1")
    with pytest.raises(D.DatasetError, match=r"X_train\.txt: SHA-256 differs"):
        D.fetch_nist_wine(url=archive.as_uri(), cache_dir=cache, manifest=MANIFEST)
    # a folder left by an interrupted copy (no completion mark)
    (folder / D._COMPLETE).unlink()
    with pytest.raises(D.DatasetError, match="incomplete"):
        D.fetch_nist_wine(url=archive.as_uri(), cache_dir=cache, manifest=MANIFEST)
    assert D.find_nist_wine(cache_dir=cache) is None


def test_local_copy_via_env_and_argument(tmp_path, monkeypatch):
    local = tmp_path / "copy"
    for name, data in FILES.items():
        (local / name).parent.mkdir(parents=True, exist_ok=True)
        (local / name).write_bytes(data)
    url = "http://127.0.0.1:9/never-used.tar.gz"  # a closed port: no download happens
    assert D.fetch_nist_wine(local, url=url, cache_dir=tmp_path / "c",
                             manifest=MANIFEST) == local
    monkeypatch.setenv(D.NIST_WINE_ENV, str(local))
    assert D.fetch_nist_wine(url=url, cache_dir=tmp_path / "c", manifest=MANIFEST) == local
    (local / "solutions/0_fc1_weight.txt").unlink()
    with pytest.raises(D.DatasetError, match=r"0_fc1_weight\.txt: missing"):
        D.fetch_nist_wine(url=url, cache_dir=tmp_path / "c", manifest=MANIFEST)
    monkeypatch.setenv(D.NIST_WINE_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(D.DatasetError, match="MCMTJ_NIST_WINE.*nowhere.*not a folder"):
        D.find_nist_wine()


def test_offline_without_data_says_how_to_get_it(tmp_path):
    with pytest.raises(D.DatasetError, match="MCMTJ_NIST_WINE"):
        D.fetch_nist_wine(cache_dir=tmp_path / "c", download=False)
    _assert_nothing_cached(tmp_path / "c")


def test_download_failure_is_one_line(tmp_path):
    with pytest.raises(D.DatasetError, match="download failed") as err:
        D.fetch_nist_wine(url=(tmp_path / "absent.tar.gz").as_uri(), cache_dir=tmp_path / "c",
                          manifest=MANIFEST)
    assert "\n" not in str(err.value)
    _assert_nothing_cached(tmp_path / "c")


def test_committed_manifest_lists_the_whole_set():
    manifest = D.nist_wine_manifest()
    solutions = [n for n in manifest if n.startswith("solutions/")]
    assert len(solutions) == 4 * 300
    assert {"LICENSE", "LICENSE-NIST", "dataset/X_train.txt", "dataset/Y_train.txt",
            "dataset/X_test.txt", "dataset/Y_test.txt"} <= set(manifest)
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in manifest.values())


@pytest.mark.nist_data
def test_committed_manifest_matches_the_shared_copy(nist_dir):
    """The manifest is that of the shared copy (the pinned commit's files), byte for byte."""
    for name, digest in D.nist_wine_manifest().items():
        assert hashlib.sha256((nist_dir / name).read_bytes()).hexdigest() == digest, name
