"""The small toolkit the paper plug-ins share: their command's defaults and output layout.

Every paper's ``main`` writes ``REPORT.md`` and its figures into one folder
(``figures/<paper>`` by default, ``figures/<paper>/quick`` for the reduced CI run), keeps
its stored results under ``<out>/results``, logs to stderr and stamps its figure files
without a date; these helpers do that once for all papers.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["figure_metadata", "log_default", "output_folders", "repo_root", "write_outputs"]


def log_default(message: str) -> None:
    """Print a progress line to stderr (the papers' default ``log``)."""
    print(message, file=sys.stderr, flush=True)


def repo_root() -> Path:
    """The repository that holds this package (where ``studies/`` lives)."""
    return Path(__file__).resolve().parents[2]  # mcmtj/papers/this.py -> the repository


def figure_metadata(fmt: str) -> dict:
    """File metadata without a time stamp, so unchanged figures are unchanged files."""
    if fmt == "pdf":
        return {"CreationDate": None, "Creator": "mcmtj"}
    if fmt == "png":
        return {"Software": "mcmtj"}
    return {}


def output_folders(paper: str, quick: bool, out: str | Path | None,
                   results: str | Path | None) -> tuple[Path, Path]:
    """The figure folder and the results folder of a paper's ``main``.

    Parameters
    ----------
    paper : str
        The paper's command-line name.
    quick : bool
        Whether this is the reduced CI run.
    out, results : path or None
        As given to ``main``; ``None`` takes the default: ``figures/<paper>`` (quick:
        ``figures/<paper>/quick``) relative to the working directory, and ``<out>/results``.

    Returns
    -------
    out, results : Path
    """
    out = Path(out) if out is not None else Path("figures") / paper / ("quick" if quick else "")
    results = Path(results) if results is not None else out / "results"
    return out, results


def write_outputs(stored, out: Path, *, write_report: Callable, draw_figures: Callable,
                  quick: bool, formats, log: Callable[[str], None]) -> tuple[Path, list[Path]]:
    """Write ``REPORT.md`` and the figures of a paper into ``out`` (created if missing).

    Parameters
    ----------
    stored
        What the paper's ``write_report`` and ``draw_figures`` read.
    out : Path
        The figure folder.
    write_report : callable
        ``write_report(stored, path, quick=quick)``.
    draw_figures : callable
        ``draw_figures(stored, out, formats=formats)``, returning the files it wrote.
    quick : bool
        Whether this is the reduced CI run (said in the report).
    formats : sequence of str
        Figure file formats.
    log : callable
        Receives one line per output.

    Returns
    -------
    report : Path
        The ``REPORT.md`` written.
    figures : list of Path
        The figure files.
    """
    out.mkdir(parents=True, exist_ok=True)
    report = out / "REPORT.md"
    write_report(stored, report, quick=quick)
    log(f"wrote {report}")
    figures = draw_figures(stored, out, formats=formats)
    log(f"wrote {len(figures)} figure files to {out}")
    return report, figures
