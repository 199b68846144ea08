"""Provenance of a run: what produced a result store, so it can be trusted and repeated.

Every Dataset that :func:`mcmtj.simulate` returns (and so every netCDF file and zarr
store) carries, next to the study TOML and the seed that :func:`mcmtj.run.dataset.build_dataset`
records:

- ``version_<package>``: mcmtj, Python and the dependencies that can change numbers or
  files (:func:`dependency_versions`);
- ``git_revision``: the commit of the repository mcmtj is imported from, with ``+dirty``
  when files of the package differ from it, or ``"unknown"`` outside a git checkout
  (:func:`git_revision`);
- ``input_sha256``: a hash of the inputs that are not in the study text -- the solution
  set's arrays and the data split's arrays (:func:`input_hash`). Two runs with the same
  study, seed and input hash simulate the same instances.

All values are strings, so they survive netCDF and zarr attrs unchanged.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import platform
import subprocess
from pathlib import Path

import numpy as np

from mcmtj._version import __version__
from mcmtj.numerics import _jit

__all__ = ["dependency_versions", "git_revision", "input_hash", "provenance_attrs",
           "same_simulation"]

#: distributions whose versions are recorded (absent ones are recorded as "absent")
_DISTRIBUTIONS = ("numpy", "numba", "xarray", "scikit-learn", "scipy", "zarr", "h5netcdf",
                  "h5py", "dask", "distributed")


def dependency_versions() -> dict[str, str]:
    """Versions of mcmtj, Python and the dependencies that shape results and files.

    Returns
    -------
    dict
        Name -> version string; ``"absent"`` for an optional dependency that is not
        installed.
    """
    out = {"mcmtj": __version__, "python": platform.python_version()}
    for name in _DISTRIBUTIONS:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def _git(folder: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(folder), *args], capture_output=True,
                              text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


@functools.lru_cache(maxsize=4)
def git_revision(folder: str | None = None) -> str:
    """The git commit the mcmtj package is imported from.

    Parameters
    ----------
    folder : str, optional
        Folder to ask instead of the package's own (for tests).

    Returns
    -------
    str
        ``git rev-parse HEAD``, with ``+dirty`` appended when tracked or untracked files
        under the package folder differ from that commit; ``"unknown"`` when git is not
        installed, the package is not in a checkout (e.g. installed from a wheel), or
        its files are not tracked by the enclosing repository. Computed once per process.
    """
    # the mcmtj package folder (this module is in mcmtj/run/)
    pkg = Path(folder) if folder is not None else Path(__file__).resolve().parents[1]
    # a wheel installed into a venv inside some other checkout must not report that
    # checkout's commit: the package's own files have to be tracked by it
    tracked = _git(pkg, "ls-files", "--", ".")
    if not tracked:
        return "unknown"
    head = _git(pkg, "rev-parse", "HEAD")
    if not head:
        return "unknown"
    status = _git(pkg, "status", "--porcelain", "--", ".")
    return head + ("+dirty" if status else "")


def _update(h, label: str, values) -> None:
    arr = np.ascontiguousarray(values)
    h.update(f"{label}:{arr.dtype.str}:{arr.shape};".encode())
    h.update(arr.tobytes())


def input_hash(prepared) -> str:
    """SHA-256 of a run's inputs beyond the study text: solutions and data split.

    Parameters
    ----------
    prepared : mcmtj.run.block.Prepared
        The solution set and data split the run uses.

    Returns
    -------
    str
        64 hex digits. Covers every layer's device states and biases, the activations
        and threshold, and the train and test arrays (inputs as float64, labels as
        int64), each with its shape, so equal hashes mean equal inputs.
    """
    sol, data = prepared.solutions, prepared.data
    h = hashlib.sha256(b"mcmtj-inputs/1;")
    for layer, (states, biases) in enumerate(zip(sol.states, sol.biases, strict=True)):
        _update(h, f"states{layer}", np.asarray(states, np.uint8))
        _update(h, f"biases{layer}", np.asarray(biases, np.float64))
    h.update(f"activations:{sol.hidden_activation},{sol.output_activation};".encode())
    _update(h, "threshold", np.float64(sol.threshold))
    for split in ("train", "test"):
        _update(h, f"X_{split}", np.asarray(getattr(data, f"X_{split}"), np.float64))
        _update(h, f"y_{split}", np.asarray(getattr(data, f"y_{split}"), np.int64))
    return h.hexdigest()


def provenance_attrs(prepared) -> dict[str, str]:
    """Dataset attrs recording versions, git revision and the input hash of a run.

    Parameters
    ----------
    prepared : mcmtj.run.block.Prepared

    Returns
    -------
    dict
        ``version_<name>`` for :func:`dependency_versions`, ``git_revision``,
        ``code_sha256`` (of mcmtj's own sources: a development version is not pinned by
        its version number), ``simulation_sha256`` (of the sources that can change a
        simulated result: all but the analysis, papers and CLI) and ``input_sha256``; all
        strings.
    """
    attrs = {f"version_{k}": v for k, v in dependency_versions().items()}
    attrs["git_revision"] = git_revision()
    attrs["code_sha256"] = _jit.PACKAGE_STAMP  # read at call time: tests may patch it
    attrs["simulation_sha256"] = _jit.SIMULATION_STAMP
    attrs["input_sha256"] = input_hash(prepared)
    return attrs


def same_simulation(attrs, study) -> bool:
    """Whether a stored result (its ``attrs``) stands for simulating ``study`` now.

    True only when the stored study text equals ``study.to_toml()`` (configuration and
    seed) and its ``simulation_sha256`` equals this mcmtj's: a result simulated by other
    physics or engine code is never reused in a figure or report, while an edit of the
    analysis, the reports or the CLI keeps it valid.

    Parameters
    ----------
    attrs : mapping or None
        The stored Dataset's attrs (None: nothing stored).
    study : mcmtj.config.Study

    Returns
    -------
    bool
    """
    return (attrs is not None and attrs.get("study") == study.to_toml()
            and attrs.get("simulation_sha256") == _jit.SIMULATION_STAMP)
