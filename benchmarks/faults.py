"""Fault injection into ``mcmtj run``: damaged stores, kills, full disks, bad outputs.

Runs a small study (2 solutions x 2 device sizes, 2000 instances, 20 blocks of 200) as a
user would (``python -m mcmtj.cli``), injects each fault, lets mcmtj detect and repair
it (``mcmtj info``, ``mcmtj run --resume`` or a rerun) and sorts the outcome:

- ``identical``: the run recovered and its result equals the uninterrupted run's;
- ``clean error``: mcmtj refused with one ``mcmtj: error:`` line, exit status 2 (or
  ``info`` exit 1 naming the damage), nothing damaged left behind;
- ``bad``: anything else (a traceback, a crash, a wrong result accepted silently).

Usage (one command; about 10-20 minutes on 2 loaded cores)::

    python benchmarks/faults.py [--workdir DIR] [--keep]

Full-disk faults need a small tmpfs (root on Linux); elsewhere they are skipped and
reported as such.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import xarray as xr

STUDY = """
[network]
source = "train"
n_solutions = 2
epochs = 5
[write]
mode = "fixed"
error_rate = 0.05
[defects]
stuck_p = 0.01
[run]
instances = 2000
chunk_size = 200
seed = 11
[sweep]
"device.diameter" = [4e-8, 8e-8]
"""

#: per-instance variables whose chunks the faults hit (accuracy has no gnorm dim here)
VARIABLES = ("accuracy", "write_fidelity", "n_pulses", "agreement")


def cli(*args, timeout=900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mcmtj.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def clean_error(proc, code=2) -> bool:
    """One ``mcmtj: error:`` line and the expected exit status; no traceback."""
    lines = proc.stderr.strip().splitlines()
    return (proc.returncode == code and len(lines) == 1
            and lines[0].startswith("mcmtj: error:"))


def crashed(proc) -> bool:
    return proc.returncode < 0 or "Traceback" in proc.stderr or proc.returncode not in (0, 1, 2)


def load(path: Path) -> xr.Dataset:
    import mcmtj

    ds = mcmtj.open_results(path).load()
    for key in ("created", "git_revision"):
        ds.attrs.pop(key, None)
    return ds


class Bench:
    def __init__(self, work: Path):
        self.work = work
        self.study = work / "study.toml"
        self.study.write_text(STUDY)
        self.outcomes: list[tuple[str, str, str]] = []
        self.ref_zarr = work / "reference.zarr"
        self.ref_nc = work / "reference.nc"
        for path in (self.ref_zarr, self.ref_nc):
            proc = cli("run", self.study, "-o", path, "--quiet")
            assert proc.returncode == 0, proc.stderr
        self.ref = load(self.ref_zarr)
        assert load(self.ref_nc).drop_attrs().identical(self.ref.drop_attrs())

    def record(self, name: str, outcome: str, detail: str = "") -> None:
        self.outcomes.append((name, outcome, detail))
        print(f"{outcome:12s} {name}  {detail}", flush=True)

    def identical(self, path: Path) -> bool:
        try:
            return load(path).identical(self.ref)
        except Exception as exc:  # noqa: BLE001 - any failure to read is a bad outcome
            print(f"    cannot load {path}: {exc}")
            return False

    def copy_store(self, name: str) -> Path:
        path = self.work / name
        shutil.rmtree(path, ignore_errors=True)
        shutil.copytree(self.ref_zarr, path)
        return path

    def run_args(self, path: Path, *extra) -> list:
        return ["run", self.study, "-o", path, "--quiet", *extra]

    # --- damaged stores: info must notice, --resume must repair --------------------
    def damage(self, name: str, inject) -> None:
        path = self.copy_store(f"{name}.zarr")
        inject(path)
        info = cli("info", path)
        if crashed(info):
            return self.record(name, "bad", f"info crashed: {info.stderr[-300:]}")
        noticed = (info.returncode == 1 or "INCOMPLETE" in info.stdout
                   or (clean_error(info) and "damaged" in info.stderr))
        if not noticed and not self.identical(path):
            return self.record(name, "bad", "info accepted damaged data")
        resumed = cli(*self.run_args(path, "--resume"))
        if resumed.returncode == 0 and self.identical(path) and cli("verify", path).returncode == 0:
            return self.record(name, "identical", "info: " + ("noticed" if noticed else "ok"))
        if clean_error(resumed):
            return self.record(name, "clean error", resumed.stderr.strip())
        self.record(name, "bad", f"resume rc {resumed.returncode}: {resumed.stderr[-300:]}")

    def damages(self) -> None:
        def chunk(path, var, block):
            return path / var / "c" / Path(*block.split("."))

        def flip(var, block):
            def inject(path):
                f = chunk(path, var, block)
                data = bytearray(f.read_bytes())
                for i in (len(data) // 4, len(data) // 2):
                    data[i] ^= 0xA5
                f.write_bytes(bytes(data))
            return inject

        def delete(var, block):
            return lambda path: chunk(path, var, block).unlink()

        def truncate(var, block, keep):
            def inject(path):
                f = chunk(path, var, block)
                f.write_bytes(f.read_bytes()[:keep])
            return inject

        for var in VARIABLES:
            for block in ("0.0.3", "1.0.9"):
                self.damage(f"flip {var} {block}", flip(var, block))
        for var in VARIABLES:
            self.damage(f"delete {var} 1.0.4", delete(var, "1.0.4"))
        for var, keep in zip(VARIABLES, (0, 5, 20, 1), strict=True):
            self.damage(f"truncate {var} 0.0.7 to {keep} B", truncate(var, "0.0.7", keep))
        for block in ("0.0.0", "1.0.5"):
            self.damage(f"delete marker {block}",
                        lambda p, b=block: (p / "_mcmtj" / "done" / b).unlink())
            self.damage(f"garble marker {block}",
                        lambda p, b=block: (p / "_mcmtj" / "done" / b).write_text("{"))
        self.damage("truncate software_accuracy",
                    lambda p: (p / "software_accuracy" / "c" / "0" / "0").write_bytes(b"x"))
        self.damage("delete the diameter coordinate's chunk",
                    lambda p: (p / "diameter" / "c" / "0").unlink())

        def leftovers(path):  # what killed writers leave: zarr partials, stale markers
            (path / "accuracy" / "c" / "0" / "0" / "1.0123abcd.partial").write_bytes(b"part")
            (path / "_mcmtj" / "done" / ".1.0.2.deadbeef").write_bytes(b"")
            (path / "_mcmtj" / "done" / "1.0.2").unlink()
        self.damage("stale partial chunk and marker files", leftovers)

    # --- kills ------------------------------------------------------------------------
    def kill_zarr(self, after_blocks: int) -> None:
        name = f"SIGKILL .zarr run after {after_blocks} blocks"
        path = self.work / f"kill{after_blocks}.zarr"
        shutil.rmtree(path, ignore_errors=True)
        proc = subprocess.Popen([sys.executable, "-m", "mcmtj.cli",
                                 *map(str, self.run_args(path, "--threads", "1"))],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        done = path / "_mcmtj" / "done"
        deadline = time.monotonic() + 600
        while proc.poll() is None and time.monotonic() < deadline:
            if done.is_dir() and sum(1 for p in done.iterdir()
                                     if not p.name.startswith(".")) >= after_blocks:
                break
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        resumed = cli(*self.run_args(path, "--resume"))
        if resumed.returncode == 0 and self.identical(path):
            return self.record(name, "identical")
        self.record(name, "clean error" if clean_error(resumed) else "bad",
                    resumed.stderr.strip()[-300:])

    def kill_nc(self, during_write: bool, delay: float = 0.0) -> None:
        name = "SIGKILL .nc run " + ("while writing the file" if during_write
                                     else f"{delay:.1f} s after start")
        path = self.work / "killed.nc"
        for _attempt in range(3):  # the file write is short: the kill may come too late
            shutil.copy(self.ref_nc, path)
            old = path.read_bytes()
            # a larger run (17 MB file) than the reference, so that the write takes a while
            proc = subprocess.Popen(
                [sys.executable, "-m", "mcmtj.cli", *map(str, self.run_args(
                    path, "--overwrite", "--seed", "12", "--instances", "60000"))],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            t0 = time.monotonic()
            while proc.poll() is None:
                if during_write and list(self.work.glob("killed.nc.*.tmp")):
                    break
                if not during_write and time.monotonic() - t0 > delay:
                    break
                time.sleep(0.0005)
            hit = proc.poll() is None
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            if hit:
                break
        else:
            return print(f"skipped      {name} (the run ended before the kill, 3 times)")
        if path.read_bytes() != old:
            return self.record(name, "bad", "the previous file changed")
        rerun = cli(*self.run_args(path, "--overwrite"))
        left = list(self.work.glob("killed.nc.*.tmp"))
        if rerun.returncode == 0 and not left and load(path).identical(self.ref):
            return self.record(name, "identical", "old file intact; no temporary left")
        self.record(name, "bad", f"rerun rc {rerun.returncode}, temporaries {left}")

    # --- refusals before any work -----------------------------------------------------
    def refusal(self, name: str, args: list, expect: str, code: int = 2) -> None:
        before = sorted(p.name for p in self.work.iterdir())
        proc = cli(*args)
        after = sorted(p.name for p in self.work.iterdir())
        if clean_error(proc, code) and expect in proc.stderr and before == after:
            return self.record(name, "clean error", proc.stderr.strip())
        self.record(name, "bad", f"rc {proc.returncode}: {proc.stderr.strip()[-300:]}")

    def refusals(self) -> None:
        w = self.work
        (w / "plain.zarr").write_text("a file")
        (w / "dir.nc").mkdir(exist_ok=True)
        self.refusal("plot with an unknown format",
                     self.run_args(w / "new.nc", "--plot", w / "p.jpgx"), "unknown format")
        self.refusal("plot into a missing folder",
                     self.run_args(w / "new.nc", "--plot", w / "none" / "p.png"),
                     "does not exist")
        self.refusal("output is a folder", self.run_args(w / "dir.nc"), "is a folder")
        self.refusal("existing .nc without --overwrite", self.run_args(self.ref_nc),
                     "pass --overwrite")
        self.refusal("existing .zarr without --resume", self.run_args(self.ref_zarr),
                     "pass --resume")
        self.refusal("--resume on a plain file named .zarr",
                     self.run_args(w / "plain.zarr", "--resume"), "not a zarr store")
        self.refusal("--instances 1e12 into .nc",
                     self.run_args(w / "huge.nc", "--instances", 10**12), ".zarr store instead")
        path = self.copy_store("reseed.zarr")
        self.refusal("resume with another seed", self.run_args(path, "--resume", "--seed", "5"),
                     "run.seed")

    def concurrent(self) -> None:
        name = "two concurrent writers of one .zarr"
        path = self.work / "concurrent.zarr"
        shutil.rmtree(path, ignore_errors=True)
        args = [sys.executable, "-m", "mcmtj.cli",
                *map(str, self.run_args(path, "--resume", "--threads", "1"))]
        a = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while not (path / "_mcmtj" / "lock").exists() and a.poll() is None:
            time.sleep(0.005)
        b = subprocess.run(args, capture_output=True, text=True)
        a_err = a.communicate()[1]
        if a.returncode == 0 and clean_error(b) and "another process" in b.stderr \
                and self.identical(path):
            return self.record(name, "clean error", "second writer refused; first identical")
        if a.returncode == 0 and b.returncode == 0 and self.identical(path):
            return self.record(name, "identical", "the first finished before the second")
        self.record(name, "bad", f"{a.returncode} {a_err[-200:]} / {b.returncode} {b.stderr}")

    # --- full disks -------------------------------------------------------------------
    def full_disks(self) -> None:
        mount = self.work / "disk"
        mount.mkdir(exist_ok=True)
        ok = os.geteuid() == 0 and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mount)],
            capture_output=True).returncode == 0
        if not ok:
            print("skipped      full disks (cannot mount a tmpfs here)")
            return
        try:
            # .nc: refused before the run (free space < results)
            proc = cli(*self.run_args(mount / "r.nc"))
            left = list(mount.iterdir())
            self.record("full disk, .nc", "clean error" if clean_error(proc) and not left
                        else "bad", proc.stderr.strip())
            # .nc: the old file stays when the new one cannot be written
            shutil.copy(self.ref_nc, mount / "old.nc") if self.ref_nc.stat().st_size < 3e5 \
                else (mount / "old.nc").write_bytes(b"old results")
            old = (mount / "old.nc").read_bytes()
            proc = cli(*self.run_args(mount / "old.nc", "--overwrite", "--seed", "3"))
            intact = (mount / "old.nc").read_bytes() == old
            self.record("full disk, .nc over an old file",
                        "clean error" if clean_error(proc) and intact
                        and not list(mount.glob("*.tmp")) else "bad", proc.stderr.strip())
            (mount / "old.nc").unlink()
            # .zarr: the disk fills mid-run; resumed on a larger disk
            path = mount / "r.zarr"
            proc = cli(*self.run_args(path))
            if not clean_error(proc) or crashed(proc):
                self.record("full disk, .zarr", "bad", proc.stderr[-300:])
            else:
                subprocess.run(["mount", "-o", "remount,size=64m", str(mount)], check=True)
                resumed = cli(*self.run_args(path, "--resume"))
                self.record("full disk, .zarr, then resumed",
                            "identical" if resumed.returncode == 0 and self.identical(path)
                            else "bad", proc.stderr.strip())
        finally:
            subprocess.run(["umount", "-l", str(mount)], check=False)

    def dask_worker_killed(self) -> None:
        try:
            import distributed  # noqa: F401
        except ImportError:
            print("skipped      dask (not installed)")
            return
        name = "dask worker SIGKILLed mid-run"
        path = self.work / "dask.zarr"
        shutil.rmtree(path, ignore_errors=True)
        proc = subprocess.Popen([sys.executable, "-m", "mcmtj.cli",
                                 *map(str, self.run_args(path, "--backend", "dask",
                                                         "--workers", "2"))],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        done = path / "_mcmtj" / "done"
        while proc.poll() is None and not (done.is_dir() and any(done.iterdir())):
            time.sleep(0.01)
        workers = _children_running(proc.pid, "distributed")
        for pid in workers[:1]:
            os.kill(pid, signal.SIGKILL)
        err = proc.communicate()[1]
        if proc.returncode == 0 and self.identical(path):
            return self.record(name, "identical", f"killed {workers[:1]}")
        if clean_error(proc):
            resumed = cli(*self.run_args(path, "--resume"))
            if resumed.returncode == 0 and self.identical(path):
                return self.record(name, "clean error", err.strip())
        self.record(name, "bad", err[-300:])


def _children_running(pid: int, word: str) -> list[int]:
    """Descendant processes of ``pid`` whose command line contains ``word``... or any
    descendant python process (dask workers of a LocalCluster are spawned children)."""
    out = []
    try:
        import psutil
    except ImportError:
        return out
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if "python" in " ".join(child.cmdline()):
                out.append(child.pid)
        except psutil.Error:
            pass
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="folder for the runs (default: a "
                        "temporary folder, removed at the end)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="mcmtj-faults-", dir=args.workdir))
    t0 = time.monotonic()
    try:
        bench = Bench(work)
        bench.damages()
        for k in (1, 4, 9, 15):
            bench.kill_zarr(k)
        bench.kill_nc(during_write=True)
        bench.kill_nc(during_write=True)
        bench.kill_nc(during_write=False, delay=2.0)
        bench.refusals()
        bench.concurrent()
        bench.full_disks()
        bench.dask_worker_killed()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    counts = {k: sum(1 for _, o, _ in bench.outcomes if o == k)
              for k in ("identical", "clean error", "bad")}
    print(f"\n{len(bench.outcomes)} faults: {counts['identical']} recovered identical, "
          f"{counts['clean error']} clean errors, {counts['bad']} bad "
          f"({time.monotonic() - t0:.0f} s)")
    return 1 if counts["bad"] else 0


if __name__ == "__main__":
    sys.exit(main())
