"""Command line: ``mcmtj run``, ``mcmtj info`` and ``mcmtj paper``.

Errors in the input (bad study, missing file, layer too large) end the program with
exit status 2 and one line on stderr that names the field or file; no output file
is written in that case.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np

from mcmtj.papers import PAPERS, paper_module

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mcmtj", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="simulate a study and store the results")
    run.add_argument("study", type=Path, help="study TOML file")
    run.add_argument("-o", "--output", type=Path, required=True,
                     help="results: a .nc file (written at the end) or a .zarr store (written "
                     "block by block while running; resumable)")
    run.add_argument("--instances", type=int, help="instances per solution and point")
    run.add_argument("--seed", type=int, help="the run's seed (default: run.seed)")
    run.add_argument("--threads", type=int, help="numba threads (results do not depend on it)")
    run.add_argument("--chunk-size", type=int, help="instances per chunk")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a study field, e.g. --set write.error_rate=0 (repeatable)")
    run.add_argument("--plot", type=Path, help="also draw accuracy vs write fidelity to this PNG")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--overwrite", action="store_true",
                     help="replace an existing output (-o and --plot); without it an existing "
                     "output is refused before any work")
    run.add_argument("--resume", action="store_true",
                     help="finish the run in an existing .zarr store (refused if it holds "
                     "another study or seed); starts it when it does not exist")
    run.add_argument("--backend", choices=("cpu", "dask", "cuda"), default=None,
                     help="cpu: this process (default); dask: a dask.distributed cluster; "
                     "cuda: an NVIDIA GPU (core effects only)")
    run.add_argument("--scheduler", metavar="ADDRESS",
                     help="dask scheduler address, e.g. tcp://host:8786 (implies --backend "
                     "dask; default: a LocalCluster on this machine)")
    run.add_argument("--workers", type=int,
                     help="workers of the dask LocalCluster (default: min(4, cores))")

    info = sub.add_parser("info", help="summarise a results file per sweep point")
    info.add_argument("results", type=Path)
    info.add_argument("--target", type=float, default=0.9, help="accuracy target for the yield")
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
    paper.add_argument("--threads", type=int, help="numba threads (results do not depend on it)")
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
    executor = None
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
        ds = simulate(study, threads=args.threads, progress=None if not args.quiet else False,
                      store=out, resume=args.resume, executor=executor,
                      overwrite=args.overwrite)
    finally:
        if executor is not None:
            executor.close()
    print(f"wrote {out}", file=sys.stderr)
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        from mcmtj.analysis.plotting import accuracy_vs_write_fidelity

        ax = accuracy_vs_write_fidelity(ds)
        ax.set_title(args.study.stem)
        _save_figure(ax.figure, args.plot)
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
    import os
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


def _info(args) -> int:
    from mcmtj.run.reader import open_results
    from mcmtj.run.store import store_status, verify_store

    path = args.results
    status = store_status(path) if path.is_dir() else None
    if status is not None and status.layout is not None:
        # every digest with --verify, and for stores small enough to read at once
        report = verify_store(path, full=True if args.verify else "auto")
        if not report.ok:
            _print_damage(report)
            return 1
    ds = open_results(path, incomplete_ok=True, verify=False)
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
                                  results=args.results, threads=args.threads)
    return 0


def main(argv=None) -> int:
    """Entry point of the ``mcmtj`` command."""
    args = _parser().parse_args(argv)
    from mcmtj.config import ConfigError

    try:
        if args.command == "run":
            return _run(args)
        if args.command == "paper":
            return _paper(args)
        if args.command == "verify":
            return _verify(args)
        return _info(args)
    except (ConfigError, FileNotFoundError, ValueError, OSError) as exc:
        print(f"mcmtj: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
