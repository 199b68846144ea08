"""Command line: ``mcmtj run``, ``mcmtj info`` and ``mcmtj paper``.

Errors in the input (bad study, missing file, layer too large) end the program with
exit status 2 and one line on stderr that names the field or file; no output file
is written in that case.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

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

    paper = sub.add_parser("paper", help="regenerate a paper's figures and report "
                           "(simulates what is missing)")
    paper.add_argument("paper", choices=["goodwill2022"], help="figure set")
    paper.add_argument("--quick", action="store_true",
                       help="reduced studies for CI (default out: figures/PAPER/quick)")
    paper.add_argument("--out", type=Path, help="folder for figures and REPORT.md "
                       "(default: figures/PAPER)")
    paper.add_argument("--results", type=Path, help="folder of stored results "
                       "(default: OUT/results)")
    paper.add_argument("--threads", type=int, help="numba threads (results do not depend on it)")
    paper.add_argument("--data", type=Path, help="local copy of the NIST Wine data (default: "
                       "MCMTJ_NIST_WINE, the studies' nist_path, or the download cache)")
    return p


def _run(args) -> int:
    from .config import load_study, parse_override
    from .engine import simulate

    overrides = dict(parse_override(text) for text in args.overrides)
    for key, value in (("run.instances", args.instances), ("run.seed", args.seed),
                       ("run.chunk_size", args.chunk_size)):
        if value is not None:
            overrides[key] = value
    study = load_study(args.study, overrides)
    out = args.output
    if out.suffix not in (".nc", ".zarr"):
        raise ValueError(f"output {out}: must end in .nc or .zarr")
    if out.suffix == ".zarr":
        import importlib.util

        if importlib.util.find_spec("zarr") is None:
            raise ValueError(f"output {out}: .zarr stores need zarr: pip install 'mcmtj[zarr]'")
    if not out.parent.exists():
        raise FileNotFoundError(f"output folder does not exist: {out.parent}")
    backend = args.backend or ("dask" if args.scheduler or args.workers else "cpu")
    if backend != "dask" and (args.scheduler or args.workers):
        raise ValueError("--scheduler and --workers need --backend dask")
    executor = None
    if backend == "cuda":
        from .cuda import CudaExecutor, cuda_available

        if not cuda_available():
            raise ValueError("--backend cuda needs an NVIDIA GPU and numba-cuda "
                             "(pip install 'mcmtj[cuda]'), or NUMBA_ENABLE_CUDASIM=1")
        executor = CudaExecutor()
    if backend == "dask":
        import importlib.util

        from .executors import DaskExecutor

        if importlib.util.find_spec("distributed") is None:
            raise ValueError("--backend dask needs dask.distributed: pip install 'mcmtj[dask]'")
        executor = DaskExecutor(args.scheduler, n_workers=args.workers, threads=args.threads)
    try:
        ds = simulate(study, threads=args.threads, progress=None if not args.quiet else False,
                      store=out, resume=args.resume, executor=executor)
    finally:
        if executor is not None:
            executor.close()
    print(f"wrote {out}", file=sys.stderr)
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        from .plotting import accuracy_vs_write_fidelity

        ax = accuracy_vs_write_fidelity(ds)
        ax.set_title(args.study.stem)
        ax.figure.savefig(args.plot, dpi=150)
        print(f"wrote {args.plot}", file=sys.stderr)
    print(summary_table(ds, target=0.9))
    return 0


def summary_table(ds, target: float = 0.9) -> str:
    """Per sweep point (and gain): median and 5th-percentile accuracy, yield at ``target``
    with its 95 % Wilson interval, mean write fidelity."""
    from . import schema
    from .analysis import yield_fraction

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


def _info(args) -> int:
    from .results import open_results
    from .store import store_status

    path = args.results
    status = store_status(path) if path.is_dir() else None
    ds = open_results(path, incomplete_ok=True)
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
        state = (f"INCOMPLETE: {status.done}/{status.total} blocks written; finish it with "
                 f"`mcmtj run STUDY -o {path} --resume`")
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
        print(summary_table(ds, target=args.target))
    return 0


def _paper(args) -> int:
    from .paper import main as paper_main

    paper_main(args.paper, quick=args.quick, out=args.out, results=args.results,
               threads=args.threads, data=args.data)
    return 0


def main(argv=None) -> int:
    """Entry point of the ``mcmtj`` command."""
    args = _parser().parse_args(argv)
    from .config import ConfigError

    try:
        if args.command == "run":
            return _run(args)
        if args.command == "paper":
            return _paper(args)
        return _info(args)
    except (ConfigError, FileNotFoundError, ValueError, OSError) as exc:
        print(f"mcmtj: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
