"""Command line: ``mcmtj run`` and ``mcmtj info``.

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
    run.add_argument("-o", "--output", type=Path, required=True, help="results file (.nc)")
    run.add_argument("--instances", type=int, help="instances per solution and point")
    run.add_argument("--seed", type=int, help="the run's seed (default: run.seed)")
    run.add_argument("--threads", type=int, help="numba threads (results do not depend on it)")
    run.add_argument("--chunk-size", type=int, help="instances per chunk")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a study field, e.g. --set write.error_rate=0 (repeatable)")
    run.add_argument("--plot", type=Path, help="also draw accuracy vs write fidelity to this PNG")
    run.add_argument("--quiet", action="store_true", help="no progress bar")

    info = sub.add_parser("info", help="summarise a results file per sweep point")
    info.add_argument("results", type=Path)
    info.add_argument("--target", type=float, default=0.9, help="accuracy target for the yield")
    return p


def _run(args) -> int:
    from .config import load_study, parse_override
    from .engine import simulate
    from .results import save

    overrides = dict(parse_override(text) for text in args.overrides)
    for key, value in (("run.instances", args.instances), ("run.seed", args.seed),
                       ("run.chunk_size", args.chunk_size)):
        if value is not None:
            overrides[key] = value
    study = load_study(args.study, overrides)
    out = args.output
    if out.suffix != ".nc":
        raise ValueError(f"output {out}: only .nc files are written by this version")
    if not out.parent.exists():
        raise FileNotFoundError(f"output folder does not exist: {out.parent}")
    ds = simulate(study, threads=args.threads, progress=None if not args.quiet else False)
    save(ds, out)
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

    ds = open_results(args.results)
    print(f"{args.results}: {ds.sizes.get('solution', 0)} solutions x "
          f"{ds.sizes.get('instance', 0)} instances, seed {ds.attrs.get('seed')}, "
          f"mcmtj {ds.attrs.get('version_mcmtj')}")
    print(summary_table(ds, target=args.target))
    return 0


def main(argv=None) -> int:
    """Entry point of the ``mcmtj`` command."""
    args = _parser().parse_args(argv)
    from .config import ConfigError

    try:
        if args.command == "run":
            return _run(args)
        return _info(args)
    except (ConfigError, FileNotFoundError, ValueError, OSError) as exc:
        print(f"mcmtj: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
