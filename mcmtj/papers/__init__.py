"""Paper plug-ins: one module per paper, each regenerating that paper's studies, report and
figures from stored results (``mcmtj paper NAME``).

A paper module provides ``main(paper, *, quick, out, results, threads, ...)``; register it in
:data:`PAPERS` under the name the command line uses. Papers sit on top of the library: they
use the run, analysis and plotting layers and never change them. What every paper's command
does alike (default folders, REPORT.md and figure output, logging) is in :mod:`._common`.
"""

from __future__ import annotations

import importlib

__all__ = ["PAPERS", "paper_module"]

#: command-line name -> module implementing it
PAPERS = {
    "goodwill2022": "mcmtj.papers.goodwill2022",
    "borders2024": "mcmtj.papers.borders2024",
}


def paper_module(name: str):
    """The plug-in module of paper ``name`` (imported on first use: papers load matplotlib).

    Raises
    ------
    ValueError
        ``name`` is not in :data:`PAPERS`.
    """
    if name not in PAPERS:
        raise ValueError(f"paper = {name!r} is not known: must be one of {sorted(PAPERS)}")
    return importlib.import_module(PAPERS[name])
