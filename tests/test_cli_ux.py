"""The command line as a user meets it: help texts, one-line errors, Ctrl-C and SIGTERM,
progress records without a terminal, a closed pipe. Commands run in a subprocess, as a
user would run them, and their exit statuses are checked."""

from __future__ import annotations

import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from small_studies import CLI_STUDY

from mcmtj.cli import main
from mcmtj.run import progress

ROOT = Path(__file__).resolve().parents[1]
MCMTJ = [sys.executable, "-m", "mcmtj.cli"]
RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d mcmtj: ([\d,]+)/([\d,]+) instances "
                    r"\((\d+) %\)")


@pytest.fixture()
def study(tmp_path):
    path = tmp_path / "tiny study.toml"  # a space: the printed commands must quote it
    path.write_text(CLI_STUDY)
    return path


def mcmtj(*args, **kwargs):
    return subprocess.run([*MCMTJ, *map(str, args)], capture_output=True, text=True,
                          cwd=kwargs.pop("cwd", None), timeout=kwargs.pop("timeout", 300),
                          **kwargs)


def one_error_line(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


# --- item 8: help texts and --version -------------------------------------------------


def test_version_and_help_texts(capsys):
    proc = mcmtj("--version")
    assert proc.returncode == 0 and re.fullmatch(r"mcmtj \d+\.\d+\.\d+\S*\n", proc.stdout)
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    top = capsys.readouterr().out
    assert "``" not in top and "mcmtj run studies/quickstart.toml" in top
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    run_help = " ".join(capsys.readouterr().out.split("options:", 1)[1].split())
    for option, words in (("--instances N", "(default: the study's run.instances, else 1000)"),
                          ("--chunk-size N", "(default: the study's run.chunk_size, else 4096)"),
                          ("--threads N", "(default: "),
                          ("--progress-interval SECONDS", "a log file; default: 10)")):
        assert words in run_help.split(option, 1)[1].split(" --", 1)[0], option
    resume = run_help.split("--resume ", 1)[1].split(" --backend", 1)[0]
    # every refusal of store.ResultStore.resume / simulate, as README.md lists them
    for reason in ("another study", "any field but run.chunk_size", "another seed",
                   "other inputs", "another mcmtj version", "mcmtj code",
                   "not a store written by mcmtj", "another process", ".nc output"):
        assert reason in resume, reason
    readme = " ".join((ROOT / "README.md").read_text().split())
    for reason in ("study", "seed", "inputs", "mcmtj version", "code", "another process",
                   "not written by mcmtj"):
        assert reason in readme.split("`--resume` computes only", 1)[1][:900], reason
    with pytest.raises(SystemExit):
        main(["info", "--help"])
    info_help = " ".join(capsys.readouterr().out.split())
    assert "results written by 'mcmtj run': a .nc file or a .zarr store" in info_help
    assert "a fraction in (0, 1] (0.95 = 95 %; default: 0.9)" in info_help


# --- item 4: --target is a fraction ------------------------------------------------------


def test_info_target_must_be_a_fraction(tmp_path, capsys):
    proc = mcmtj("info", tmp_path / "run.nc", "--target", "95")
    assert proc.returncode == 2
    assert one_error_line(proc) == ("mcmtj info: error: argument --target: 95 is not a "
                                    "fraction in (0, 1]; for 95 % write 0.95 (see 'mcmtj "
                                    "info --help')")
    for value, words in (("0", "e.g. 0.9 for 90 %"), ("150", "e.g. 0.9 for 90 %"),
                         ("1.5", "for 1.5 % write 0.015"), ("ninety", "'ninety' is not a number")):
        with pytest.raises(SystemExit) as exc:
            main(["info", str(tmp_path / "run.nc"), "--target", value])
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0]


# --- item 3: unreadable results files name the file --------------------------------------


@pytest.mark.parametrize(("content", "words"), [
    (b"garbage, not netCDF\n", "not a netCDF-4/HDF5 file"),
    (b"", "empty file"),
    (b"\x89HDF\r\n\x1a\n" + bytes(64), "cannot be read as netCDF ("),
    (b"CDF\x01" + bytes(32), "a netCDF-3 file"),
])
def test_info_on_a_bad_file_is_one_line_naming_it(tmp_path, capsys, content, words):
    bad = tmp_path / "bad.nc"
    bad.write_bytes(content)
    assert main(["info", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"mcmtj: error: {bad}: ") and words in err[0]
    assert "synchronously" not in err[0]


def test_info_bad_file_subprocess_and_missing_file(tmp_path):
    bad = tmp_path / "bad.nc"
    bad.write_bytes(b"garbage")
    proc = mcmtj("info", bad)
    assert proc.returncode == 2 and str(bad) in one_error_line(proc)
    assert proc.stdout == ""
    proc = mcmtj("info", tmp_path / "none.nc")
    assert proc.returncode == 2
    assert one_error_line(proc) == f"mcmtj: error: {tmp_path / 'none.nc'}: no such file or store"


# --- items 2, 3, 7: runs in a subprocess --------------------------------------------------


def _start(args, cwd, **kwargs):
    return subprocess.Popen([*MCMTJ, *map(str, args)], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def _read_until(proc, pattern, lines, timeout=300):
    """stderr lines of ``proc`` into ``lines`` until one matches ``pattern``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if re.search(pattern, line):
            return re.search(pattern, line)
    proc.kill()
    text = "\n".join(lines)
    raise AssertionError(f"no line matched {pattern!r}:\n{text}")


@pytest.mark.slow  # three runs in subprocesses; the SIGTERM test below is the quick check
def test_sigint_keeps_zarr_blocks_and_prints_the_resume_command(study, tmp_path):
    """Ctrl-C on a .zarr run: one line saying how many blocks the store keeps and the
    exact command that resumes it; exit 130; the command works and draws the plot."""
    pytest.importorskip("zarr")
    args = ["run", study.name, "-o", "out dir/r.zarr", "--instances", 3000, "--chunk-size", 60,
            "--seed", 4, "--progress-interval", 0, "--plot", "out dir/r.png"]
    (tmp_path / "out dir").mkdir()
    proc = _start(args, tmp_path, start_new_session=True)
    lines = []
    # progress records on a pipe: the compile notice first, then instances/s and an ETA
    _read_until(proc, r"mcmtj: (compiling kernels, about [\d a-z]+ the first time|loading "
                r"compiled kernels)", lines)
    match = _read_until(proc, RECORD.pattern, lines)
    first_done, total = (int(g.replace(",", "")) for g in match.groups()[:2])
    assert total == 2 * 2 * 3000 and first_done % 120 == 0
    match = _read_until(proc, r"instances/s, ETA \d", lines)
    os.killpg(proc.pid, signal.SIGINT)  # as Ctrl-C on a terminal: the whole process group
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    last = err.strip().splitlines()[-1]
    kept = re.fullmatch(r"mcmtj: stopped by SIGINT; 'out dir/r.zarr' keeps (\d+) of 100 "
                        r"finished blocks; resume with: (.*)", last)
    assert kept, last
    assert 0 < int(kept.group(1)) < 100
    assert kept.group(2) == shlex.join(["mcmtj", *map(str, args), "--resume"])
    assert not (tmp_path / "out dir" / "r.png").exists()
    # the printed command, run as printed (mcmtj = python -m mcmtj.cli), finishes the store
    resumed = subprocess.run([*MCMTJ, *shlex.split(kept.group(2))[1:], "--quiet"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "yield@0.9" in resumed.stdout and (tmp_path / "out dir" / "r.png").is_file()
    info = mcmtj("info", tmp_path / "out dir" / "r.zarr")
    assert info.returncode == 0 and "complete (100/100 blocks)" in info.stdout


def test_sigterm_on_a_nc_run_on_a_terminal(study, tmp_path):
    """stderr on a terminal: a tqdm bar (no log records); SIGTERM then ends the run with
    one line, exit 143, and no .nc (nor a temporary file) left behind."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    args = ["run", study.name, "-o", "r.nc", "--instances", 100000, "--chunk-size", 500]
    master, slave = pty.openpty()
    # a terminal 100 columns wide (a new pty has 0, where tqdm draws nothing)
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen([*MCMTJ, *map(str, args)], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=slave)
    os.close(slave)
    screen = b""
    bar = re.compile(rb"instances:\s+\d+%\|.*?\|\s*[1-9][\d.]*[kM]?/400k")
    deadline = time.monotonic() + 300

    def read(timeout):
        nonlocal screen
        if select.select([master], [], [], timeout)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed its end
                return False
            screen += chunk
            return bool(chunk)
        return True

    while not bar.search(screen):  # the bar has counted a finished block
        assert time.monotonic() < deadline and read(1.0), screen.decode(errors="replace")
    proc.send_signal(signal.SIGTERM)
    while read(1.0) and time.monotonic() < deadline:  # to EOF: the child closed the pty
        pass
    proc.wait(timeout=120)
    os.close(master)
    text = screen.decode(errors="replace")
    assert proc.returncode == 143, text
    assert "Traceback" not in text and "instances/s, ETA" not in text  # a bar, not records
    last = [line for line in re.split(r"[\r\n]+", text) if line.strip()][-1]
    assert last == (
        "mcmtj: stopped by SIGTERM; no r.nc written (a .nc file is written at the end only; "
        "a .zarr output keeps finished blocks); start again with: "
        f"mcmtj run {shlex.quote(study.name)} -o r.nc --instances 100000 --chunk-size 500")
    assert sorted(p.name for p in tmp_path.iterdir()) == [study.name]


def test_quiet_run_then_info_into_a_closed_pipe(study, tmp_path, capsys):
    """--quiet: nothing but the 'wrote' line on stderr; `mcmtj info r.nc | head -1`:
    nothing on stderr, status 141 (a reader that left early), like a tool SIGPIPE ends."""
    # the run in this process (a subprocess run cost ~15 s of CI); the pipes need real ones
    assert main(["run", str(study), "-o", str(tmp_path / "r.nc"), "--quiet"]) == 0
    assert capsys.readouterr().err == f"wrote {tmp_path / 'r.nc'}\n"
    reader = _start(["info", tmp_path / "r.nc"], tmp_path)
    reader.stdout.close()  # the reader leaves before mcmtj writes a byte
    err = reader.stderr.read()
    assert reader.wait(timeout=120) == 141 and err == ""
    shell = subprocess.run(f"{shlex.join(MCMTJ)} info {shlex.quote(str(tmp_path / 'r.nc'))}"
                           " | head -1", shell=True, capture_output=True, text=True,
                           timeout=120)
    assert shell.stdout.startswith(str(tmp_path / "r.nc")) and shell.stderr == ""


# --- item 7: the progress records and the compile notice, in this process ---------------


def test_progress_records_rate_eta_and_interval(caplog):
    clock = iter([0.0, 5.0, 8.0, 25.0, 26.0, 40.0]).__next__
    records = progress._LogRecords(1000, "instances", interval=10.0, clock=clock)
    with caplog.at_level(logging.INFO, logger="mcmtj"):
        records.update(100)  # t = 5: the first block is always reported
        records.update(100)  # t = 8: within 10 s of the last record: quiet
        records.update(300)  # t = 25: 400 more since the first block, in 20 s
        records.update(100)  # t = 26: quiet
        records.update(400)  # t = 40: done, always reported
    texts = [r.getMessage() for r in caplog.records]
    assert texts == [
        "100/1,000 instances (10 %), first block done after 5 s",
        "500/1,000 instances (50 %), 20 instances/s, ETA 25 s, 25 s elapsed",
        "1,000/1,000 instances (100 %), 26 instances/s, 40 s elapsed",
    ]


def test_compile_notice_tells_cold_from_cached(tmp_path, monkeypatch, caplog):
    """A kernel that numba's cache lacks: "compiling ... about N s" with N from the stated
    table; the same kernel in a new process (here: a new module from the same file) after
    one compile: "loading"; already compiled in this process: nothing."""
    import importlib.util

    source = tmp_path / "notice_kernel.py"
    source.write_text("import numba\n\n@numba.njit(cache=True)\ndef software_predictions(x):\n"
                      "    return x + 1\n")
    # the stated rule: table seconds x load average per core (when above 1)
    monkeypatch.setattr(progress.os, "getloadavg", lambda: (8.0, 8.0, 8.0))
    monkeypatch.setattr(progress.os, "cpu_count", lambda: 2)

    def fresh(name):
        spec = importlib.util.spec_from_file_location(name, source)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.software_predictions

    kernel = fresh("notice_a")
    with caplog.at_level(logging.INFO, logger="mcmtj"):
        cold = progress.compile_notice([kernel])
        kernel(1)
        assert progress.compile_notice([kernel]) is None  # compiled here already
        cached = progress.compile_notice([fresh("notice_b")])
        assert progress.compile_notice([kernel], enabled=False) is None
    seconds = 4 * progress.COMPILE_SECONDS["software_predictions"]
    assert cold.startswith(f"compiling kernels, about {progress._duration(seconds)} ")
    assert progress.compile_seconds([fresh("notice_c")]) == (0.0, 0.0)  # cached: free
    assert cached == "loading compiled kernels from numba's cache"
    assert [r.getMessage() for r in caplog.records] == [cold, cached]


@pytest.mark.slow
def test_ctrl_c_on_a_dask_run_stops_the_cluster_too(study, tmp_path):
    """Ctrl-C reaches the whole process group, LocalCluster workers included: one line,
    exit 130, no worker traceback, and no process of the group left behind."""
    pytest.importorskip("distributed")
    pytest.importorskip("zarr")
    args = ["run", study.name, "-o", "d.zarr", "--backend", "dask", "--workers", 1,
            "--instances", 3000, "--chunk-size", 60, "--progress-interval", 0]
    proc = _start(args, tmp_path, start_new_session=True)
    _read_until(proc, RECORD.pattern, [])
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert re.fullmatch(r"mcmtj: stopped by SIGINT; d.zarr keeps \d+ of 100 finished blocks; "
                        r"resume with: mcmtj run .* --resume", err.strip().splitlines()[-1])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.5)
    else:
        raise AssertionError("processes of the run are still alive")


def test_stop_hint_for_paper_names_the_results_kept(tmp_path):
    """`mcmtj paper` stopped: which stored results the next run reuses (the signal path
    itself is the one the run tests above exercise)."""
    from mcmtj.cli import _parser, _resume_hint

    results = tmp_path / "out" / "results"
    results.mkdir(parents=True)
    (results / "nist.nc").write_bytes(b"")
    argv = ["paper", "goodwill2022", "--quick", "--out", str(tmp_path / "out")]
    hint = _resume_hint(_parser().parse_args(argv), argv)
    assert hint == (f"1 finished result file(s) kept in {results}, reused by the next run; "
                    f"go on with: mcmtj paper goodwill2022 --quick --out {tmp_path / 'out'}")


def test_progress_bar_on_a_terminal_that_reports_no_size():
    """A fresh pty (or `docker run -t`) reports 0 x 0: tqdm alone would draw nothing."""
    import pty

    master, slave = pty.openpty()
    code = ("import time\nfrom mcmtj.run.progress import progress_bar\n"
            "with progress_bar(100) as bar:\n    for _ in range(3):\n"
            "        time.sleep(0.05)\n        bar.update(30)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=slave)
    os.close(slave)
    screen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        screen += chunk
    os.close(master)
    assert proc.wait(timeout=120) == 0
    assert re.search(rb"instances:\s+90%\|.+\| 90\.0/100 ", screen), screen
