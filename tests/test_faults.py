"""Fault injection: damaged stores are detected, named and repaired to the uninterrupted
result; full disks and killed writers never crash, never damage the previous file and
leave no temporary behind; impossible plans are refused up front; every output is
checked before the work."""

import errno
import fcntl
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from small_studies import Crash, tiny_toml

import mcmtj
from mcmtj.cli import main
from mcmtj.run import results as results_mod
from mcmtj.run.store import store_status, verify_store

zarr = pytest.importorskip("zarr")

#: the block the faults hit: point 1, solution block 0, chunk 2 (instances 10-14)
BLOCK = "1.0.2"


@pytest.fixture(scope="module")
def reference(tiny):
    study, prep = tiny
    ds = mcmtj.simulate(study, seed=4, prepared=prep)
    ds.attrs.pop("created")
    return ds


def _store(tmp_path, tiny, name="r.zarr"):
    study, prep = tiny
    path = tmp_path / name
    mcmtj.simulate(study, seed=4, prepared=prep, store=path, chunk_size=5, solution_block=1)
    return path


def _cli(*args, cwd=None, umask=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "mcmtj.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)


def _one_error_line(proc, code=2):
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mcmtj: error:"), proc.stderr
    return lines[0]


# --- damaged stores -------------------------------------------------------------------

def _flip(path):
    chunk = path / "write_fidelity" / "c" / "1" / "0" / "2"
    data = bytearray(chunk.read_bytes())
    for i in (len(data) // 3, len(data) // 2, len(data) - 9):
        data[i] ^= 0x5A
    chunk.write_bytes(bytes(data))


def _delete(path):
    (path / "accuracy" / "c" / "1" / "0" / "2" / "0").unlink()


def _truncate(path):
    chunk = path / "n_pulses" / "c" / "1" / "0" / "2"
    chunk.write_bytes(chunk.read_bytes()[:7])


def _garble_marker(path):
    (path / "_mcmtj" / "done" / BLOCK).write_text("{not json")


def _delete_marker(path):
    (path / "_mcmtj" / "done" / BLOCK).unlink()


@pytest.mark.parametrize("fault", [_flip, _delete, _truncate, _garble_marker],
                         ids=["flipped", "deleted", "truncated", "garbled-marker"])
def test_a_damaged_block_is_named_refused_and_recomputed(tmp_path, tiny, reference, fault):
    study, prep = tiny
    path = _store(tmp_path, tiny)
    fault(path)
    report = verify_store(path, full=True)
    assert [key for key, _ in report.damaged] == [BLOCK], report.damaged
    if fault is not _flip:  # sizes and markers: the fast check finds all but a same-size flip
        assert [key for key, _ in verify_store(path).damaged] == [BLOCK]
    with pytest.raises(ValueError, match=r"1 damaged block\(s\): block 1\.0\.2 \(point 1, "
                       r"solutions 0-0, instances 10-14\).*--resume"):
        mcmtj.open_results(path)
    # an explicit check-free open still works (salvage)
    assert mcmtj.open_results(path, verify=False).sizes["instance"] == 23

    computed = []
    resumed = mcmtj.simulate(study, seed=4, prepared=prep, store=path, resume=True,
                             on_chunk=lambda p, s, n: computed.append((p, s, n)))
    assert computed == [(1, 10, 5)]
    xr.testing.assert_identical(resumed.load(), reference)
    assert verify_store(path, full=True).ok


def test_a_lost_marker_is_recomputed(tmp_path, tiny, reference):
    study, prep = tiny
    path = _store(tmp_path, tiny)
    _delete_marker(path)
    status = store_status(path)
    assert status.done == status.total - 1 and verify_store(path, full=True).ok
    resumed = mcmtj.simulate(study, seed=4, prepared=prep, store=path, resume=True)
    xr.testing.assert_identical(resumed.load(), reference)


def test_damaged_per_solution_data_is_rewritten(tmp_path, tiny, reference):
    study, prep = tiny
    path = _store(tmp_path, tiny)
    chunk = path / "software_accuracy" / "c" / "0" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:-3])
    report = verify_store(path)
    assert report.damaged_static and report.damaged_static[0][0] == "software_accuracy"
    with pytest.raises(ValueError, match="software_accuracy"):
        mcmtj.open_results(path)
    resumed = mcmtj.simulate(study, seed=4, prepared=prep, store=path, resume=True)
    xr.testing.assert_identical(resumed.load(), reference)


def test_cli_info_verify_and_resume_repair(tmp_path):
    study = tmp_path / "tiny.toml"
    study.write_text(tiny_toml(12))
    out = tmp_path / "my results" / "r.zarr"  # a space: the resume hint quotes it
    out.parent.mkdir()
    run = ["run", study, "-o", out, "--seed", "3", "--chunk-size", "5", "--quiet"]
    assert main([str(a) for a in run]) == 0
    clean = _files(out)
    (out / "write_fidelity" / "c" / "1" / "0" / "1").write_bytes(b"\0" * 5)
    info = _cli("info", out)
    assert info.returncode == 1
    assert "DAMAGED: 1 block(s)" in info.stdout and "block 1.0.1 (point 1" in info.stdout
    assert f"-o '{out}' --resume" in info.stdout
    assert "Traceback" not in info.stderr
    verify = _cli("verify", out)
    assert verify.returncode == 1 and "block 1.0.1" in verify.stdout
    resumed = _cli(*run, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert main(["verify", str(out)]) == 0
    after = _files(out)
    # everything but the manifest (one session more) is byte-identical to the clean store
    assert {k: v for k, v in after.items() if not k.startswith("_mcmtj/")} == \
        {k: v for k, v in clean.items() if not k.startswith("_mcmtj/")}


def _files(path: Path) -> dict:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file() and p.name != "lock"}


def test_a_damaged_netcdf_file_is_refused(tmp_path, tiny, reference):
    path = tmp_path / "r.nc"
    mcmtj.save(reference, path)
    data = bytearray(path.read_bytes())
    start = data.find(np.ascontiguousarray(reference.accuracy.values).tobytes()[:64])
    assert start > 0  # the accuracy chunk, found by its bytes
    data[start + 100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="r.nc is damaged: a chunk fails its Fletcher-32"):
        mcmtj.open_results(path)


# --- full disks and killed writers ----------------------------------------------------

def test_full_disk_during_a_zarr_run_is_one_line_and_resumable(tmp_path, tiny, reference,
                                                               monkeypatch):
    from zarr.storage import LocalStore

    study, prep = tiny
    path = tmp_path / "r.zarr"
    real_set = LocalStore.set
    chunk_writes = []

    async def full_after_some(self, key, value):
        if "/c/" in key:
            chunk_writes.append(key)
        # the structure and a few blocks fit (a block writes one chunk per variable, about
        # 20; the run has 20 blocks), counted in chunk writes so new variables do not move it
        if len(chunk_writes) > 100:
            raise OSError(errno.ENOSPC, "No space left on device")
        return await real_set(self, key, value)

    monkeypatch.setattr(LocalStore, "set", full_after_some)
    with pytest.raises(OSError) as err:
        mcmtj.simulate(study, seed=4, prepared=prep, store=path, chunk_size=5,
                       solution_block=1)
    message = str(err.value)
    assert "\n" not in message and f"cannot write {path}: No space left on device" in message
    assert "--resume" in message
    monkeypatch.undo()
    status = store_status(path)
    assert 0 < status.done < status.total
    resumed = mcmtj.simulate(study, seed=4, prepared=prep, store=path, resume=True)
    xr.testing.assert_identical(resumed.load(), reference)


def test_full_disk_while_writing_netcdf_keeps_the_old_file(tmp_path, tiny, reference,
                                                          monkeypatch):
    path = tmp_path / "r.nc"
    path.write_bytes(b"the previous results")
    real_write = os.write

    def full(fd, data):
        real_write(fd, bytes(data[:1000]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(results_mod.os, "write", full)
    with pytest.raises(OSError) as err:
        mcmtj.save(reference, path)
    monkeypatch.undo()
    message = str(err.value)
    assert "\n" not in message and f"cannot write {path}: No space left on device" in message
    assert "needs " in message and "unchanged" in message
    assert path.read_bytes() == b"the previous results"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.nc"]


@pytest.fixture()
def tiny_disk(tmp_path):
    """A 1 MB tmpfs, where this process may mount one (root on Linux)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs",
                                            str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (the patched-write tests cover this)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_really_full_disk_does_not_crash_the_interpreter(tiny_disk, monkeypatch):
    """h5py segfaulted here; the in-memory image written with os.write cannot (3.2 MB of
    results on a 1 MB disk)."""
    big = xr.Dataset({"accuracy": (("instance",), np.random.default_rng(1).random(400_000))})
    path = tiny_disk / "r.nc"
    path.write_bytes(b"old")
    # skip the free-space check, so that the write itself meets the full disk
    monkeypatch.setattr(results_mod, "_free_bytes", lambda folder: None)
    with pytest.raises(OSError, match=r"cannot write .*r\.nc: No space left on device"):
        mcmtj.save(big, path)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["r.nc"]
    monkeypatch.undo()
    with pytest.raises(OSError, match=r"not enough space to write .*r\.nc: needs about"):
        mcmtj.save(big, path)  # refused before writing


@pytest.mark.slow  # two runs on a tmpfs (root only)
def test_cli_full_disk_is_one_line(tiny_disk, tmp_path):
    study = tmp_path / "tiny.toml"
    study.write_text(tiny_toml(20000))  # ~6 MB of results
    for name in ("r.nc", "r.zarr"):
        proc = _cli("run", study, "-o", tiny_disk / name, "--quiet", "--chunk-size", "2000")
        line = _one_error_line(proc)
        assert "space" in line and str(tiny_disk / name) in line, line
        if name == "r.zarr":  # blocks written before the disk filled stay resumable
            assert "--resume" in line
    assert not list(tiny_disk.glob("*.tmp")) and not list(tiny_disk.rglob("*.partial"))


_KILLED_WRITER = """
import os, sys, time
import numpy as np, xarray as xr
import mcmtj
from mcmtj.run import results
path, flag = sys.argv[1], sys.argv[2]
ds = xr.Dataset({"accuracy": (("instance",), np.random.default_rng(0).random(3_000_000))})
real_write = os.write
def slow(fd, data):
    n = real_write(fd, bytes(data[:4096]))
    open(flag, "w").close()
    time.sleep(600)
    return n
results.os.write = slow
mcmtj.save(ds, path)
"""


def test_sigkill_during_a_netcdf_write_keeps_the_old_file_and_the_next_run_cleans_up(
        tmp_path, reference):
    path, flag = tmp_path / "r.nc", tmp_path / "flag"
    mcmtj.save(reference, path)
    old = path.read_bytes()
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(path), str(flag)])
    deadline = time.monotonic() + 120
    while not flag.exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    # a live writer's temporary is not touched by another writer's clean-up
    assert results_mod.remove_stale_temporaries(path) == []
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    flag.unlink()
    assert path.read_bytes() == old
    stale = list(tmp_path.glob("r.nc.*.tmp"))
    assert len(stale) == 1
    mcmtj.save(reference, path)  # the next write of the same output removes it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.nc"]
    xr.testing.assert_identical(mcmtj.open_results(path), reference)


# --- bounded plans --------------------------------------------------------------------

def test_a_1e12_instance_netcdf_run_is_refused_up_front(tmp_path):
    study = tmp_path / "tiny.toml"
    study.write_text(tiny_toml(12))
    t0 = time.monotonic()
    proc = _cli("run", study, "-o", tmp_path / "x.nc", "--instances", 10**12, "--quiet")
    elapsed = time.monotonic() - t0
    line = _one_error_line(proc)
    assert "too large" in line and ".zarr" in line
    assert elapsed < 10 + 20  # 10 s of work; the rest is the interpreter and numba imports
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.toml"]


def test_a_1e12_instance_zarr_plan_is_bounded(tmp_path, tiny):
    study, prep = tiny
    path = tmp_path / "huge.zarr"
    mcmtj.simulate(study, seed=1, instances=10, prepared=prep)  # warm
    tracemalloc.start()
    t0 = time.monotonic()
    try:
        with pytest.raises(Crash):
            mcmtj.simulate(study, seed=1, instances=10**12, prepared=prep, store=path,
                           chunk_size=64, progress=False, on_chunk=_crash)
        elapsed = time.monotonic() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < 10 and peak < 20e6, (elapsed, peak)
    status = store_status(path)
    assert status.done == 1 and status.total == 2 * -(-10**12 // 64)
    # the instance coordinate is not stored: the store stays small
    assert sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) < 1e6
    ds = mcmtj.open_results(path, incomplete_ok=True)
    assert ds.sizes["instance"] == 10**12 and int(ds.instance[-1]) == 10**12 - 1
    with pytest.raises(ValueError, match="too large for memory.*a .zarr store instead"):
        mcmtj.simulate(study, seed=1, instances=10**12, prepared=prep)  # no store
    assert np.isfinite(ds.accuracy[0, 0, :64].values).all()


def _crash(point, start, n):
    raise Crash


# --- every output checked before the work ---------------------------------------------

def test_outputs_are_checked_before_any_work(tmp_path, capsys):
    study = tmp_path / "tiny.toml"
    study.write_text(tiny_toml(12))
    (tmp_path / "old.nc").write_bytes(b"old")
    (tmp_path / "plain.zarr").write_bytes(b"a file")
    (tmp_path / "folder.nc").mkdir()
    # as a user types it: a typo in the plot's format ends the command at once
    t0 = time.monotonic()
    line = _one_error_line(_cli("run", study, "-o", tmp_path / "l.nc", "--plot",
                                tmp_path / "l.jpgx", "--quiet"))
    assert "plot " in line and "unknown format ('.jpgx')" in line
    assert time.monotonic() - t0 < 60  # no simulation ran (it would compile, then run)
    cases = [
        (["-o", tmp_path / "l.nc", "--plot", "/nonexistent_dir/m.png"],
         "plot folder does not exist: /nonexistent_dir"),
        (["-o", tmp_path / "l.h5"], "unknown format ('.h5'): must end in .nc, .zarr"),
        (["-o", tmp_path / "no" / "l.nc"], "output folder does not exist"),
        (["-o", tmp_path / "old.nc" / "l.nc"], "output folder is not a folder"),
        (["-o", tmp_path / "folder.nc"], "is a folder, not a file"),
        (["-o", tmp_path / "old.nc"], "old.nc exists: pass --overwrite to replace it"),
        (["-o", tmp_path / "plain.zarr", "--resume"], "is a file, not a zarr store"),
        (["-o", tmp_path / "l.nc", "--resume"], "--resume needs a .zarr output"),
        (["-o", tmp_path / "l.nc", "--plot", tmp_path / "l.nc"], "unknown format"),
        (["-o", tmp_path / "l.zarr", "--plot", tmp_path / "l.zarr"], "unknown format"),
    ]
    for args, words in cases:
        assert main(["run", str(study), *map(str, args), "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], (args, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "folder.nc", "old.nc", "plain.zarr", "tiny.toml"]
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "ro"
        locked.mkdir(mode=0o500)
        assert main(["run", str(study), "-o", str(locked / "r.nc"), "--quiet"]) == 2
        assert "is not writable" in capsys.readouterr().err


def test_one_overwrite_policy_and_the_umask(tmp_path, capsys):
    study = tmp_path / "tiny.toml"
    study.write_text(tiny_toml(6))
    out, png = tmp_path / "r.nc", tmp_path / "r.png"
    args = ["run", str(study), "-o", str(out), "--plot", str(png), "--quiet", "--seed", "1"]
    proc = _cli(*args, umask=0o022)
    assert proc.returncode == 0, proc.stderr
    assert (out.stat().st_mode & 0o777, png.stat().st_mode & 0o777) == (0o644, 0o644)
    first = out.read_bytes()
    line = _one_error_line(_cli(*args))  # the user's exit code and wording
    assert "r.nc exists: pass --overwrite to replace it" in line and "overwrite=True" not in line
    assert out.read_bytes() == first
    out.unlink()
    assert main([*args]) == 2  # the plot is an output too: same policy
    assert "plot " in capsys.readouterr().err and not out.exists()
    png.unlink()
    old = os.umask(0o077)
    try:
        assert main(args) == 0
    finally:
        os.umask(old)
    assert (out.stat().st_mode & 0o777, png.stat().st_mode & 0o777) == (0o600, 0o600)
    assert main([*args, "--overwrite"]) == 0
    assert mcmtj.open_results(out).attrs["seed"] == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.nc", "r.png", "tiny.toml"]
    # a zarr store: refused, then replaced with --overwrite
    z = tmp_path / "r.zarr"
    zargs = ["run", str(study), "-o", str(z), "--quiet", "--seed", "1"]
    assert main(zargs) == 0
    capsys.readouterr()
    assert main(zargs) == 2
    assert "pass --resume to finish its run, or --overwrite" in capsys.readouterr().err
    (z / "junk").write_text("from the old store")
    assert main([*zargs, "--overwrite"]) == 0
    assert not (z / "junk").exists() and store_status(z).complete
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_locked_temporaries_of_live_writers_are_kept(tmp_path):
    path = tmp_path / "r.nc"
    live, dead = tmp_path / "r.nc.aaaa.tmp", tmp_path / "r.nc.bbbb.tmp"
    other = tmp_path / "other.nc.cccc.tmp"
    for p in (live, dead, other):
        p.write_bytes(b"partial")
    fd = os.open(live, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        assert results_mod.remove_stale_temporaries(path) == [dead]
    finally:
        os.close(fd)
    assert live.exists() and other.exists() and not dead.exists()
