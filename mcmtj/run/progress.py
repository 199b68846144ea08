"""Progress reporting for long runs (tqdm), silent when not on a terminal."""

from __future__ import annotations

import contextlib
import sys


@contextlib.contextmanager
def progress_bar(total: int, enabled: bool | None = None, desc: str = "instances"):
    """A tqdm bar over ``total`` units; ``enabled=None`` shows it only on a TTY."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    from tqdm.auto import tqdm

    bar = tqdm(total=total, disable=not enabled, unit=" inst", unit_scale=True, desc=desc,
               dynamic_ncols=True)
    try:
        yield bar
    finally:
        bar.close()
