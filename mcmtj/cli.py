"""Command line of mcmtj: ``mcmtj run``, ``mcmtj info`` and ``mcmtj paper``.

Errors in the input (bad study, missing file, layer too large, bad option) end the
program with exit status 2 and one line on stderr that names the field or file; no
output file is written in that case.

SIGINT (Ctrl-C) and SIGTERM end a run with one line on stderr -- what was kept and the
command that goes on from there -- and exit status 130 or 143 (128 + the signal's
number, as a shell reports a process the signal killed). Output into a pipe that closed
early (``mcmtj info run.nc | head -1``) ends quietly with status 141, like a tool that
SIGPIPE ends.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import signal
import sys
import threading
from pathlib import Path

import numba
import numpy as np

from mcmtj._version import __version__
from mcmtj.config import RunConfig
from mcmtj.papers import PAPERS, paper_module
from mcmtj.run.progress import INTERVAL, log_to_stderr, progress_interval

__all__ = ["main"]

_DESCRIPTION = """\
Monte Carlo variability studies of neural networks written into passive MTJ crossbars:
simulate a study (run), summarise stored results (info), regenerate a paper (paper)."""

_EPILOG = """\
examples:
  mcmtj run studies/quickstart.toml -o quickstart.nc --plot quickstart.png
  mcmtj run study.toml -o big.zarr --instances 100000 --set defects.stuck_p=0.01
  mcmtj info quickstart.nc --target 0.95
  mcmtj paper goodwill2022 --quick

'mcmtj COMMAND --help' describes a command; README.md, section "Writing a study",
describes study files."""

_RESUME_HELP = (
    "finish the run in an existing .zarr store, computing only the blocks it lacks "
    "(starts the store when it does not exist). Refused -- exit 2, one line, store left as "
    "it is -- when the store holds another study (any field but run.chunk_size), another "
    "seed, other inputs (solution set or data, by sha256), another mcmtj version or other "
    "mcmtj code (sha256 of its sources); when it is not a store written by mcmtj or is being "
    "written by another process; and for a .nc output"
)


def _default(field: str):
    """The default of a [run] field, for the help texts."""
    return {f.name: f.default for f in dataclasses.fields(RunConfig)}[field]


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (argparse prints the usage first by default)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _fraction(text: str) -> float:
    """A fraction in (0, 1] for ``--target``; a percentage is refused with its fraction."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number: give a fraction in "
                                         "(0, 1], e.g. 0.9") from None
    if not 0 < value <= 1:
        hint = (f"; for {value:g} % write {value / 100:g}" if 1 < value <= 100
                else ", e.g. 0.9 for 90 %")
        raise argparse.ArgumentTypeError(f"{text} is not a fraction in (0, 1]{hint}")
    return value


def _parser() -> argparse.ArgumentParser:
    cores = numba.config.NUMBA_NUM_THREADS
    p = _Parser(prog="mcmtj", description=_DESCRIPTION, epilog=_EPILOG,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"mcmtj {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="simulate a study and store the results",
                         description="Simulate a study and store every instance's results; "
                         "print a summary table per sweep point on stdout.")
    run.add_argument("study", type=Path, help="the study: a TOML file (README.md, "
                     "'Writing a study')")
    run.add_argument("-o", "--output", type=Path, required=True,
                     help="results: a .nc file (written at the end) or a .zarr store (written "
                     "block by block while running; resumable)")
    run.add_argument("--instances", type=int, metavar="N",
                     help="array instances per solution and sweep point (default: the "
                     f"study's run.instances, else {_default('instances')})")
    run.add_argument("--seed", type=int, metavar="N",
                     help="the run's seed, an integer >= 0 (default: the study's run.seed, "
                     f"else {_default('seed')})")
    run.add_argument("--threads", type=int, metavar="N",
                     help=f"numba threads, 1 to {cores} (default: {cores}, all cores or "
                     "NUMBA_NUM_THREADS); results do not depend on it")
    run.add_argument("--chunk-size", type=int, metavar="N",
                     help="instances per solution in one block, the unit of memory, progress "
                     "and of a .zarr store's resume (default: the study's run.chunk_size, "
                     f"else {_default('chunk_size')}); results do not depend on it")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a study field, e.g. --set write.error_rate=0 (repeatable; "
                     "keys as in the study file's reference in README.md)")
    run.add_argument("--plot", type=Path, metavar="IMAGE",
                     help="also draw write fidelity, accuracy and yield against write "
                     "fidelity, one colour per sweep point, to this image (.png, .pdf, .svg)")
    run.add_argument("--quiet", action="store_true",
                     help="no progress bar, progress records or notices on stderr")
    run.add_argument("--progress-interval", type=float, default=INTERVAL, metavar="SECONDS",
                     help="least seconds between two progress records when stderr is not a "
                     "terminal (a batch job, a log file; default: %(default)g)")
    run.add_argument("--resume", action="store_true", help=_RESUME_HELP)
    run.add_argument("--overwrite", action="store_true",
                     help="replace an existing output (-o and --plot); without it an existing "
                     "output is refused before any work")
    run.add_argument("--backend", choices=("cpu", "dask", "cuda"), default=None,
                     help="cpu: this process (default); dask: a dask.distributed cluster; "
                     "cuda: an NVIDIA GPU (core effects only)")
    run.add_argument("--scheduler", metavar="ADDRESS",
                     help="dask scheduler address, e.g. tcp://host:8786 (implies --backend "
                     "dask; default: a LocalCluster on this machine)")
    run.add_argument("--workers", type=int, metavar="N",
                     help="workers of the dask LocalCluster (default: min(4, cores))")

    info = sub.add_parser("info", help="summarise a results file per sweep point",
                          description="Print a stored run's provenance and its summary table "
                          "per sweep point.")
    info.add_argument("results", type=Path, help="results written by 'mcmtj run': a .nc file "
                      "or a .zarr store (an unfinished store shows how far it got)")
    info.add_argument("--target", type=_fraction, default=0.9, metavar="FRACTION",
                      help="accuracy target of the yield, a fraction in (0, 1] (0.95 = 95 %%; "
                      "default: %(default)g)")
    info.add_argument("--verify", action="store_true",
                      help="check every block's SHA-256 digest (reads the whole store), not "
                      "only its marker and chunk sizes")

    verify = sub.add_parser("verify", help="check a results file or store for damage "
                            "(every block's digest); exit 1 when damaged")
    verify.add_argument("results", type=Path, help="a .nc file or .zarr store")

    paper = sub.add_parser("paper", help="regenerate a paper's figures and report "
                           "(simulates what is missing)")
    paper.add_argument("paper", choices=sorted(PAPERS), help="figure set")
    paper.add_argument("--quick", action="store_true",
                       help="reduced studies for CI (default out: figures/PAPER/quick)")
    paper.add_argument("--out", type=Path, help="folder for figures and REPORT.md "
                       "(default: figures/PAPER)")
    paper.add_argument("--results", type=Path, help="folder of stored results "
                       "(default: OUT/results)")
    paper.add_argument("--threads", type=int, metavar="N",
                       help=f"numba threads (default: {cores}); results do not depend on it")
    paper.add_argument("--quiet", action="store_true",
                       help="no progress records or notices on stderr")
    paper.add_argument("--data", type=Path, help="local copy of the NIST Wine data (default: "
                       "MCMTJ_NIST_WINE, the studies' nist_path, or the download cache)")
    return p


def _run(args) -> int:
    from mcmtj.config import load_study, parse_override
    from mcmtj.run.engine import simulate

    overrides = dict(parse_override(text) for text in args.overrides)
    for key, value in (("run.instances", args.instances), ("run.seed", args.seed),
                       ("run.chunk_size", args.chunk_size)):
        if value is not None:
            overrides[key] = value
    study = load_study(args.study, overrides)
    out = args.output
    _check_outputs(args)
    backend = args.backend or ("dask" if args.scheduler or args.workers else "cpu")
    if backend != "dask" and (args.scheduler or args.workers):
        raise ValueError("--scheduler and --workers need --backend dask")
    executor = _ResponsiveExecutor(args.threads) if backend == "cpu" else None
    if backend == "cuda":
        from mcmtj.run.cuda import CudaExecutor, cuda_available

        if not cuda_available():
            raise ValueError("--backend cuda needs an NVIDIA GPU and numba-cuda "
                             "(pip install 'mcmtj[cuda]'), or NUMBA_ENABLE_CUDASIM=1")
        executor = CudaExecutor()
    if backend == "dask":
        import importlib.util

        from mcmtj.run.executors import DaskExecutor

        if importlib.util.find_spec("distributed") is None:
            raise ValueError("--backend dask needs dask.distributed: pip install 'mcmtj[dask]'")
        executor = DaskExecutor(args.scheduler, n_workers=args.workers, threads=args.threads)
    try:
        _start_local_cluster(executor)
        with progress_interval(args.progress_interval):
            ds = simulate(study, threads=args.threads, progress=None if not args.quiet else False,
                          store=out, resume=args.resume, executor=executor,
                          overwrite=args.overwrite)
    finally:
        if executor is not None:
            executor.close()
    print(f"wrote {out}", file=sys.stderr)
    if args.plot:
        _draw_plot(ds, args.plot, args.study.stem)
        print(f"wrote {args.plot}", file=sys.stderr)
    print(summary_table(ds, target=0.9))
    return 0


def _check_outputs(args) -> None:
    """Every output of ``mcmtj run`` checked before any work: the results path and the
    plot path (format, writable folder, not a folder, existing output without
    ``--overwrite``)."""
    from mcmtj.run.results import check_output

    out = args.output
    if args.resume and out.suffix != ".zarr":
        raise ValueError(f"--resume needs a .zarr output, not {out}")
    check_output(out, overwrite=args.overwrite, resume=args.resume, cli=True)
    if out.suffix == ".zarr":
        import importlib.util

        if importlib.util.find_spec("zarr") is None:
            raise ValueError(f"output {out}: .zarr stores need zarr: pip install 'mcmtj[zarr]'")
    if args.plot is not None:
        from matplotlib.figure import Figure

        formats = tuple(f".{k}" for k in Figure().canvas.get_supported_filetypes())
        check_output(args.plot, formats=formats, overwrite=args.overwrite, cli=True,
                     label="plot")
        if args.plot.resolve() == out.resolve():
            raise ValueError(f"--plot {args.plot} is the results output too")


def _save_figure(fig, path: Path) -> None:
    """Save a figure atomically (temporary name, rename), with the umask's permissions."""
    import uuid

    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}"
    try:
        fig.savefig(tmp, dpi=150, format=path.suffix[1:].lower())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def summary_table(ds, target: float = 0.9) -> str:
    """Per sweep point (and gain): median and 5th-percentile accuracy, yield at ``target``
    with its 95 % Wilson interval, mean write fidelity."""
    from mcmtj.analysis.metrics import yield_fraction
    from mcmtj.run import schema

    acc = ds[schema.ACCURACY]
    wf = ds[schema.WRITE_FIDELITY]
    pooled = (schema.SOLUTION, schema.INSTANCE)
    point_dims = [d for d in acc.dims if d not in pooled]
    med = acc.median(pooled)
    q05 = acc.quantile(0.05, dim=pooled).drop_vars("quantile")
    yl = yield_fraction(acc, target, dims=pooled)
    mwf = wf.mean(pooled)
    header = [*point_dims, "median_acc", "p05_acc", f"yield@{target:g}", "yield_95ci",
              "write_fid"]
    rows = []
    for idx in np.ndindex(*(acc.sizes[d] for d in point_dims)):
        sel = dict(zip(point_dims, idx, strict=True))
        row = [f"{acc[d].values[i]:.4g}" for d, i in sel.items()]
        y = yl.isel(sel)
        row += [
            f"{float(med.isel(sel)):.4f}",
            f"{float(q05.isel(sel)):.4f}",
            f"{float(y['yield']):.4f}",
            f"[{float(y['yield_low']):.4f}, {float(y['yield_high']):.4f}]",
            f"{float(mwf.isel({k: v for k, v in sel.items() if k in mwf.dims})):.5f}",
        ]
        rows.append(row)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:>{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), *(fmt.format(*r) for r in rows)])


def _verify(args) -> int:
    """``mcmtj verify PATH``: every digest of a store (every checksum of a .nc file)."""
    from mcmtj.run.reader import open_results
    from mcmtj.run.store import store_status, verify_store

    path = args.results
    if not path.exists():
        raise FileNotFoundError(f"results file not found: {path}")
    if not path.is_dir():
        try:
            open_results(path)  # reads every chunk: HDF5 checks each Fletcher-32 checksum
        except ValueError as exc:
            print(f"{path}: DAMAGED: {exc}")
            return 1
        print(f"{path}: ok (every chunk's checksum verified)")
        return 0
    if store_status(path).layout is None:
        open_results(path).load()  # a plain store (mcmtj.save): every CRC-32C on reading
        print(f"{path}: ok (every chunk's checksum verified)")
        return 0
    report = verify_store(path, full=True)
    if report.ok:
        status = report.status
        state = "complete" if status.complete else f"incomplete: {status.done}/{status.total}"
        print(f"{path}: ok ({report.checked} blocks verified, {state})")
        return 0
    _print_damage(report)
    return 1


def _print_damage(report) -> None:
    layout = report.status.layout
    print(f"{report.path}: DAMAGED: {len(report.damaged)} block(s)"
          f"{', per-solution data' if report.damaged_static else ''}")
    for key, reason in report.damaged:
        print(f"  {layout.describe(key)}: {reason}")
    for name, reason in report.damaged_static:
        print(f"  variable {name}: {reason}")
    from mcmtj.run.store import resume_hint

    print(f"  repair: {resume_hint(report.path)} (recomputes the damaged blocks)")


def _open_for_info(path: Path):
    """Open ``path`` for ``mcmtj info``; a file that cannot be read is a one-line error
    naming it and saying what is wrong (not the HDF5 library's text)."""
    from mcmtj.run import schema
    from mcmtj.run.reader import open_results

    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or store")
    if path.is_file():
        try:
            with open(path, "rb") as f:
                head = f.read(8)
        except OSError as exc:
            raise OSError(f"{path}: cannot be read: {exc.strerror or exc}") from None
        if not head:
            raise ValueError(f"{path}: empty file, not a results file (an interrupted copy?)")
        # netCDF-4 files are HDF5 files: this signature opens them (netCDF-3 'CDF' files
        # are not written by mcmtj)
        if head != b"\x89HDF\r\n\x1a\n":
            what = "a netCDF-3 file" if head[:3] == b"CDF" else "not a netCDF-4/HDF5 file"
            raise ValueError(f"{path}: {what}; mcmtj results are .nc files written by "
                             "'mcmtj run' (netCDF-4) or .zarr stores")
    try:
        ds = open_results(path, incomplete_ok=True, verify=False)
    except (FileNotFoundError, ValueError) as exc:
        raise ValueError(str(exc) if str(path) in str(exc) else f"{path}: {exc}") from None
    except OSError as exc:
        # h5py's text ("Unable to synchronously open file (truncated file: eof = ...)")
        # names the HDF5 call, not the file: keep only its reason in parentheses
        reason = str(exc)
        if "(" in reason and reason.endswith(")"):
            reason = reason[reason.rindex("(") + 1:-1]
        raise OSError(f"{path}: cannot be read as netCDF ({reason}): damaged or "
                      "incomplete?") from None
    missing = [v for v in (schema.ACCURACY, schema.WRITE_FIDELITY) if v not in ds]
    if missing:
        raise ValueError(f"{path}: not mcmtj results (no {' or '.join(missing)} variable)")
    return ds


def _info(args) -> int:
    from mcmtj.run.store import store_status, verify_store

    path = args.results
    status = store_status(path) if path.is_dir() else None
    if status is not None and status.layout is not None:
        # every digest with --verify, and for stores small enough to read at once
        report = verify_store(path, full=True if args.verify else "auto")
        if not report.ok:
            _print_damage(report)
            return 1
    ds = _open_for_info(path)
    attrs = ds.attrs
    print(f"{path}: {ds.sizes.get('solution', 0)} solutions x "
          f"{ds.sizes.get('instance', 0)} instances, seed {attrs.get('seed')}, "
          f"mcmtj {attrs.get('version_mcmtj')}")
    complete = status is None or status.complete
    if status is None or status.layout is None:
        state = "complete"
    elif complete:
        state = f"complete ({status.done}/{status.total} blocks)"
    else:
        from mcmtj.run.store import resume_hint

        state = (f"INCOMPLETE: {status.done}/{status.total} blocks written; finish it with "
                 f"`{resume_hint(path)}`")
    created = attrs.get("created") or (status.created if status else "") or "unknown"
    versions = ", ".join(f"{k[len('version_'):]} {v}" for k, v in attrs.items()
                         if k.startswith("version_"))
    lines = [
        ("status", state),
        ("created", created),
        ("git revision", attrs.get("git_revision", "unknown")),
        ("inputs", f"{attrs.get('solutions', '?')} / {attrs.get('data', '?')}, sha256 "
                   f"{attrs.get('input_sha256', 'unknown')}"),
        ("versions", versions),
    ]
    if status is not None and len(status.sessions) > 1:
        revs = sorted({s.get("git_revision", "unknown") for s in status.sessions})
        lines.append(("sessions", f"{len(status.sessions)} (git revisions: {', '.join(revs)})"))
    for label, text in lines:
        print(f"  {label + ':':<14}{text}")
    if complete:
        try:
            table = summary_table(ds, target=args.target)
        except Exception as exc:  # noqa: BLE001 - a chunk failing its checksum when read
            if status is None:
                raise
            raise ValueError(f"{path}: damaged data ({str(exc).splitlines()[0]}); "
                             f"`mcmtj verify {shlex.quote(str(path))}` names the blocks") from None
        print(table)
    return 0


def _paper(args) -> int:
    paper_module(args.paper).main(args.paper, quick=args.quick, out=args.out,
                                  results=args.results, threads=args.threads, data=args.data,
                                  log=(lambda line: None) if args.quiet else None)
    return 0


def _draw_plot(ds, path: Path, name: str) -> None:
    """``--plot``: the per-sweep-point overview (:func:`mcmtj.analysis.plotting.run_overview`)."""
    import matplotlib

    matplotlib.use("Agg")
    from mcmtj.analysis.plotting import run_overview

    fig = run_overview(ds, name=name)
    _save_figure(fig, path)
    import matplotlib.pyplot as plt

    plt.close(fig)


class _ResponsiveExecutor:
    """The CPU backend for ``mcmtj run``: blocks one after the other, each in a helper
    thread, while the main thread waits in Python.

    A numba kernel holds the thread that calls it until its block is done (minutes for a
    large block), and Python runs signal handlers in the main thread only; with the
    kernel in a helper thread, Ctrl-C and SIGTERM are handled at once. Results are those
    of :class:`mcmtj.run.executors.SerialExecutor` (the same :func:`run_task` per block).
    """

    #: helper threads still inside a kernel (after an interruption: not waited for)
    busy: set = set()

    def __init__(self, threads: int | None = None):
        cores = numba.config.NUMBA_NUM_THREADS
        if threads is not None and not 1 <= threads <= cores:
            raise ValueError(f"--threads {threads} is out of range: must be 1 to {cores}")
        self.threads = threads

    def run(self, plan, tasks):
        """Yield ``(task, block)`` for every task, in order."""
        from mcmtj.run.executors import run_task

        for task in tasks:
            result = {}

            def work(task=task, result=result):
                try:
                    result["block"] = run_task(plan, task, self.threads)
                except BaseException as exc:  # noqa: B036 - re-raised in the main thread
                    result["error"] = exc

            thread = threading.Thread(target=work, name="mcmtj-block", daemon=True)
            self.busy.add(thread)
            thread.start()
            while thread.is_alive():
                thread.join(0.25)  # a timed wait: signal handlers run in between
            self.busy.discard(thread)
            if "error" in result:
                raise result["error"]
            yield task, result["block"]

    def close(self) -> None:
        """Nothing to release."""


def _start_local_cluster(executor) -> None:
    """Start a dask ``LocalCluster`` now, with SIGINT ignored while its processes spawn.

    They inherit that (a new Python that finds SIGINT ignored leaves it so), so a Ctrl-C
    on the terminal, which goes to the whole process group, reaches mcmtj alone: no
    worker prints a traceback, and mcmtj closes the cluster. Workers also end by
    themselves when mcmtj does (distributed watches its parent).
    """
    from mcmtj.run.executors import DaskExecutor

    if not isinstance(executor, DaskExecutor) or executor.scheduler is not None:
        return
    if threading.current_thread() is not threading.main_thread():
        executor.client  # noqa: B018 - starts the cluster
        return
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        executor.client  # noqa: B018 - starts the cluster
    finally:
        signal.signal(signal.SIGINT, before)


class _Stop(BaseException):
    """SIGINT or SIGTERM arrived (a BaseException, like KeyboardInterrupt, so that no
    ``except Exception`` on the way swallows it while every ``finally`` runs)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum, frame):
    # a second signal while the first one's clean-up runs: stop at once
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _on_second_signal)
    raise _Stop(signum)


def _on_second_signal(signum, frame):
    print(f"mcmtj: stopped by a second {signal.Signals(signum).name}, before cleaning up",
          file=sys.stderr, flush=True)
    os._exit(128 + signum)


def _catch_signals() -> dict | None:
    """Route SIGINT and SIGTERM to :class:`_Stop`; the previous handlers, or None when
    not in the main thread (where Python cannot set handlers)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, _on_signal)
    return previous


def _resume_hint(args, argv: list[str]) -> str:
    """What an interrupted command kept and the command that goes on from there."""
    q = shlex.quote
    cmd = ["mcmtj", *argv]
    if args.command == "run":
        out = args.output
        if out.suffix == ".zarr":
            from mcmtj.run.store import store_status

            if "--resume" not in argv:
                cmd.append("--resume")
            try:
                status = store_status(out)
                kept = f"{q(str(out))} keeps {status.done} of {status.total} finished blocks"
            except (OSError, ValueError):
                kept = f"no store written at {q(str(out))}"
            return f"{kept}; resume with: {shlex.join(cmd)}"
        kept = (f"{q(str(out))} left as it was" if getattr(args, "_output_existed", False)
                else f"no {q(str(out))} written")
        return (f"{kept} (a .nc file is written at the end only; a .zarr output keeps "
                f"finished blocks); start again with: {shlex.join(cmd)}")
    if args.command == "paper":
        out = args.out or Path("figures") / args.paper / ("quick" if args.quick else "")
        results = args.results or out / "results"
        n = len(list(results.glob("*.nc"))) if results.is_dir() else 0
        return (f"{n} finished result file(s) kept in {q(str(results))}, reused by the next "
                f"run; go on with: {shlex.join(cmd)}")
    return "nothing written"


def main(argv=None) -> int:
    """Entry point of the ``mcmtj`` command; returns the exit status."""
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    args = _parser().parse_args(argv)
    from mcmtj.config import ConfigError
    from mcmtj.run.progress import LOGGER

    if args.command == "run":
        args._output_existed = args.output.exists()
    handler = None
    if args.command in ("run", "paper"):
        handler = log_to_stderr(quiet=args.quiet)
    previous = _catch_signals()
    try:
        try:
            code = _dispatch(args)
            sys.stdout.flush()  # a closed pipe shows here, not at exit
            return code
        except BrokenPipeError:
            raise
        except (ConfigError, FileNotFoundError, ValueError, OSError) as exc:
            print(f"mcmtj: error: {exc}", file=sys.stderr)
            return 2
    except (_Stop, KeyboardInterrupt) as stop:
        signum = getattr(stop, "signum", signal.SIGINT)
        print(f"mcmtj: stopped by {signal.Signals(signum).name}; {_resume_hint(args, argv)}",
              file=sys.stderr, flush=True)
        code = 128 + signum
        if _ResponsiveExecutor.busy:
            # a kernel still runs in a helper thread and cannot be interrupted; the store
            # is closed and consistent, so leave without waiting for it
            sys.stdout.flush()
            os._exit(code)
        return code
    except BrokenPipeError:
        # the reader left (`| head`): stop writing, and keep Python from complaining
        # about the unflushed rest when it closes stdout at exit
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):  # stdout without a file descriptor (tests)
            pass
        return 128 + signal.SIGPIPE
    finally:
        if previous is not None:
            for sig, handler_before in previous.items():
                signal.signal(sig, handler_before)
        if handler is not None:
            LOGGER.removeHandler(handler)


def _dispatch(args) -> int:
    if args.command == "run":
        return _run(args)
    if args.command == "paper":
        return _paper(args)
    if args.command == "verify":
        return _verify(args)
    return _info(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
