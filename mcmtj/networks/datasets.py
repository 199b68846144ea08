"""External data sets: where they come from, how they are fetched, verified and cached.

The NIST Wine solutions (300 pre-trained ternary 13 x 6 x 3 perceptrons and the
148/30-sample Wine split they were trained on) are public: folder ``examples/wine`` of
usnistgov/daffodil-lib, BSD-3 licence plus the NIST software statement. Nothing of them
is committed to mcmtj; :func:`fetch_nist_wine` finds a local copy or downloads the
repository archive at a pinned commit once (with pooch) and keeps the extracted files in
the user's cache folder. Every file is checked against the SHA-256 manifest committed
in the package (``mcmtj/networks/nist_wine.sha256``, the ``sha256sum`` format, computed from that
commit's files), so a download, a cache or a local copy is either exactly that commit's
data or refused with a one-line error naming the file.

Only :func:`fetch_nist_wine` without a local copy needs the network. Offline, point
``MCMTJ_NIST_WINE`` (or the ``data`` argument, ``mcmtj paper --data``) at a copy of the
folder, e.g. one fetched on another machine (``python -c "import mcmtj.networks.datasets as d;
print(d.fetch_nist_wine())"`` prints where it is).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "NIST_WINE_COMMIT",
    "NIST_WINE_URL",
    "NIST_WINE_ENV",
    "NIST_WINE_CITATION",
    "DatasetError",
    "nist_wine_manifest",
    "verify_nist_wine",
    "find_nist_wine",
    "fetch_nist_wine",
]

#: Commit of usnistgov/daffodil-lib whose ``examples/wine`` files the manifest describes.
NIST_WINE_COMMIT = "1b64a411f7f73a5f8048d3fed0f10faed6a778d5"
#: Archive of that commit (GitHub generates it; its bytes are not guaranteed stable, so
#: the extracted files are what is verified, against the committed manifest).
NIST_WINE_URL = f"https://github.com/usnistgov/daffodil-lib/archive/{NIST_WINE_COMMIT}.tar.gz"
#: Environment variable naming a local copy of the NIST Wine folder.
NIST_WINE_ENV = "MCMTJ_NIST_WINE"
#: How to acknowledge the data (shown in the README and by ``fetch_nist_wine``'s docs).
NIST_WINE_CITATION = (
    "NIST, daffodil-lib (usnistgov/daffodil-lib), examples/wine, commit "
    f"{NIST_WINE_COMMIT[:12]}; J. M. Goodwill et al., Phys. Rev. Applied 18, 014039 (2022)"
)

_MANIFEST = Path(__file__).with_name("nist_wine.sha256")
_COMPLETE = ".mcmtj-complete"  # written last: a cache folder without it is not trusted
_CHUNK = 1 << 16


class DatasetError(ValueError):
    """A data file is missing, altered or truncated (the message names it)."""


def nist_wine_manifest() -> dict[str, str]:
    """The committed SHA-256 manifest of the NIST Wine folder.

    Returns
    -------
    dict
        Relative path in the folder (``LICENSE``, ``dataset/X_train.txt``,
        ``solutions/0_fc1_weight.txt``, ...) -> lower-case hex SHA-256.
    """
    out = {}
    for line in _MANIFEST.read_text(encoding="ascii").splitlines():
        if line.strip():
            digest, name = line.split(None, 1)
            out[name.strip()] = digest.lower()
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def verify_nist_wine(folder: str | os.PathLike, manifest: Mapping[str, str] | None = None,
                     *, hashes: bool = True) -> Path:
    """Check that a folder holds every file of the manifest, unaltered.

    Parameters
    ----------
    folder : path
        A NIST Wine folder (``dataset/`` and ``solutions/`` inside).
    manifest : mapping, optional
        Relative path -> SHA-256 (default: :func:`nist_wine_manifest`).
    hashes : bool, default True
        Also compare the SHA-256 of every file (about 5 MB read); False checks presence.

    Returns
    -------
    Path
        ``folder``.

    Raises
    ------
    DatasetError
        The first missing or differing file, named with its path.
    """
    folder = Path(folder)
    manifest = nist_wine_manifest() if manifest is None else manifest
    if not folder.is_dir():
        raise DatasetError(f"NIST Wine data folder not found: {folder}")
    for name, digest in manifest.items():
        path = folder / name
        if not path.is_file():
            raise DatasetError(f"{path}: missing from the NIST Wine data (expected "
                               f"{len(manifest)} files of daffodil-lib {NIST_WINE_COMMIT[:12]})")
        if hashes and _sha256(path) != digest:
            raise DatasetError(f"{path}: SHA-256 differs from the manifest (altered or "
                               "truncated); fetch the data again")
    return folder


def _cache_root() -> Path:
    import pooch

    return Path(pooch.os_cache("mcmtj"))


def find_nist_wine(data: str | os.PathLike | None = None, *, cache_dir=None) -> Path | None:
    """Where the NIST Wine data are, without downloading: the first that exists of

    1. ``data`` (an explicit folder; an error if it is not one),
    2. the folder named by ``MCMTJ_NIST_WINE`` (an error if it is not one),
    3. the completed cache folder of :func:`fetch_nist_wine`.

    Parameters
    ----------
    data : path, optional
    cache_dir : path, optional
        Cache root (default: the user's cache folder, e.g. ``~/.cache/mcmtj``).

    Returns
    -------
    Path or None
        None when no explicit folder was given and nothing is cached.

    Raises
    ------
    DatasetError
        An explicit or environment folder that does not exist.
    """
    for given, origin in ((data, "data"), (os.environ.get(NIST_WINE_ENV) or None, NIST_WINE_ENV)):
        if given is not None:
            path = Path(given).expanduser()
            if not path.is_dir():
                raise DatasetError(f"{origin} = {path}: not a folder; point it at a copy of "
                                   "the NIST Wine data (dataset/ and solutions/ inside)")
            return path
    folder = _cache_folder(cache_dir)
    return folder if (folder / _COMPLETE).is_file() else None


def _cache_folder(cache_dir) -> Path:
    root = Path(cache_dir) if cache_dir is not None else _cache_root()
    return root / f"nist-wine-{NIST_WINE_COMMIT[:12]}"


def _archive_name(member: str, manifest: Mapping[str, str]) -> str | None:
    """Manifest path of an archive member (``<top>/examples/wine/X`` or ``<top>/LICENSE*``)."""
    parts = member.split("/", 1)
    if len(parts) != 2:
        return None
    rest = parts[1]
    if rest.startswith("examples/wine/"):
        rest = rest[len("examples/wine/"):]
    elif "/" in rest:
        return None
    return rest if rest in manifest else None


def _extract(archive: Path, staging: Path, manifest: Mapping[str, str], label: str) -> None:
    """Write the manifest's files from ``archive`` (fetched from ``label``) into
    ``staging``, verifying each."""
    seen = set()
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                name = _archive_name(member.name, manifest)
                if name is None or not member.isfile():
                    continue
                data = tar.extractfile(member).read()
                if hashlib.sha256(data).hexdigest() != manifest[name]:
                    raise DatasetError(f"{member.name} in {label}: SHA-256 differs from "
                                       "the manifest of mcmtj (not the pinned commit's file)")
                target = staging / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                seen.add(name)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DatasetError(f"{label}: not a complete tar archive ({exc})") from None
    missing = [n for n in manifest if n not in seen]
    if missing:
        raise DatasetError(f"{missing[0]}: missing from the archive {label} "
                           f"({len(missing)} of {len(manifest)} files missing)")


def _retrieve(url: str, known_hash: str | None, folder: Path, progress: bool) -> Path:
    """Download ``url`` into ``folder`` with pooch (``file://``: a copy, same hash check)."""
    import pooch

    if url.startswith("file://"):
        from urllib.parse import unquote, urlparse

        folder.mkdir(parents=True)
        archive = folder / "archive.tar.gz"
        shutil.copyfile(unquote(urlparse(url).path), archive)
        if known_hash is not None:
            algorithm, _, expected = known_hash.rpartition(":")
            actual = pooch.file_hash(str(archive), alg=algorithm or "sha256")
            if actual != expected.lower():
                raise ValueError(f"{algorithm or 'sha256'} hash of downloaded file "
                                 f"({archive.name}) does not match the known hash: expected "
                                 f"{expected}, got {actual}")
        return archive
    return Path(pooch.retrieve(url, known_hash=known_hash, fname="archive.tar.gz",
                               path=folder, progressbar=progress))


def fetch_nist_wine(data: str | os.PathLike | None = None, *, url: str = NIST_WINE_URL,
                    known_hash: str | None = None, cache_dir: str | os.PathLike | None = None,
                    manifest: Mapping[str, str] | None = None, download: bool = True,
                    progress: bool = False) -> Path:
    """The NIST Wine folder: a local copy, the cache, or a verified download.

    A local copy (``data``, else ``MCMTJ_NIST_WINE``) is used as it is after every
    manifest file is checked. Otherwise the cache folder
    ``<cache_dir>/nist-wine-<commit>`` is used when complete; else the archive at
    ``url`` is downloaded with pooch into a temporary folder inside the cache root,
    the manifest's files are extracted and verified there, and the folder is renamed
    into place only when all are good, so an interrupted or refused fetch leaves no
    partial cache. The archive itself is removed afterwards.

    Parameters
    ----------
    data : path, optional
        Local copy to use instead of the cache (no network).
    url : str, default :data:`NIST_WINE_URL`
        Archive (``.tar.gz``) of daffodil-lib at :data:`NIST_WINE_COMMIT`; ``file://``
        and local mirrors work too.
    known_hash : str, optional
        ``"sha256:<hex>"`` of the archive, when known (GitHub does not promise stable
        archive bytes, so the default checks the extracted files only).
    cache_dir : path, optional
        Cache root (default: the user's cache folder from ``pooch.os_cache("mcmtj")``).
    manifest : mapping, optional
        Relative path -> SHA-256 (default: the committed :func:`nist_wine_manifest`).
    download : bool, default True
        False: never touch the network; raise if nothing local or cached is found.
    progress : bool, default False
        Show pooch's download progress bar (needs tqdm).

    Returns
    -------
    Path
        Folder holding ``LICENSE``, ``LICENSE-NIST``, ``dataset/`` and ``solutions/``.

    Raises
    ------
    DatasetError
        A local copy or the cache lacks a file or holds an altered one; the archive's
        hash differs from ``known_hash``, it is truncated or it lacks a file; or nothing
        is available and ``download`` is False. The message names the file.

    Notes
    -----
    Licence: BSD-3 (``LICENSE``) plus the NIST software statement (``LICENSE-NIST``),
    both fetched with the data. Cite as :data:`NIST_WINE_CITATION`.
    """
    manifest = nist_wine_manifest() if manifest is None else manifest
    local = find_nist_wine(data, cache_dir=cache_dir)
    if local is not None:
        return verify_nist_wine(local, manifest)
    folder = _cache_folder(cache_dir)
    if folder.exists():
        # a folder without the completion mark was not written by a finished fetch
        raise DatasetError(f"{folder / _COMPLETE}: missing, the cached NIST Wine data are "
                           f"incomplete; remove {folder} and fetch again")
    if not download:
        raise DatasetError(f"NIST Wine data not found: set {NIST_WINE_ENV} to a copy of the "
                           "folder, or fetch it (needs the network): python -c \"import "
                           "mcmtj.networks.datasets as d; d.fetch_nist_wine()\"")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".nist-wine-", dir=folder.parent))
    try:
        try:
            archive = _retrieve(url, known_hash, staging / ".download", progress)
        except ValueError as exc:  # pooch: hash mismatch
            raise DatasetError(f"{url}: {' '.join(str(exc).split())}") from None
        except Exception as exc:  # network errors differ between downloaders
            raise DatasetError(f"{url}: download failed ({type(exc).__name__}: "
                               f"{' '.join(str(exc).split())[:200]})") from None
        tree = staging / "data"
        tree.mkdir()
        _extract(archive, tree, manifest, url)
        verify_nist_wine(tree, manifest)
        (tree / _COMPLETE).write_text(f"{NIST_WINE_COMMIT}\n{url}\n", encoding="utf-8")
        os.replace(tree, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder

