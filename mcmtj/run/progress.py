"""Progress of long runs: a tqdm bar on a terminal, one-line log records elsewhere.

A run reports through :func:`progress_bar` (instances done) and :func:`compile_notice`
(before numba compiles the kernels a run needs). Where stderr is a terminal the bar
shows; elsewhere -- a batch job, a notebook's log, CI -- the same progress goes out as
``logging`` records of the ``"mcmtj"`` logger at level INFO, at most one every
``interval`` seconds. A library never configures logging, so from Python these records
are silent unless the caller asks for them (``logging.basicConfig(level="INFO")``);
``mcmtj run`` and ``mcmtj paper`` print them to stderr (:func:`log_to_stderr`) unless
``--quiet``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time

__all__ = ["LOGGER", "compile_notice", "compile_seconds", "log_to_stderr", "progress_bar",
           "progress_interval"]

#: The logger of progress records and run notices.
LOGGER = logging.getLogger("mcmtj")

#: Default seconds between two progress records when stderr is not a terminal.
INTERVAL = 10.0

#: CPU seconds numba takes to compile each kernel of a run the first time (empty cache),
#: measured with ``NUMBA_CACHE_DIR=$(mktemp -d) python benchmarks/compile_times.py`` on the
#: 2-core development machine (numba 0.68; 11.6, 51.9 and 141.7 s CPU, in the order of a
#: run, which compiles the helpers they share with the first). LLVM compiles on one
#: thread, so these are the wall seconds of an idle machine whatever its number of cores
#: (that run took 49, 228 and 620 s wall at a load average of 9 to 12 on 2 cores).
COMPILE_SECONDS = {
    "software_predictions": 12.0,
    "simulate_chunk_core": 52.0,
    "simulate_chunk_circuit": 142.0,
}
#: Seconds assumed for a kernel that is not in :data:`COMPILE_SECONDS`.
_OTHER_KERNEL_SECONDS = 10.0


def _load_factor() -> float:
    """How much longer a one-thread job takes now than on an idle machine: the 1-minute
    load average per core when above 1 (a compile then gets that share of a core)."""
    try:
        return max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))
    except (OSError, AttributeError):  # no load average (Windows)
        return 1.0


_interval = INTERVAL


@contextlib.contextmanager
def progress_interval(seconds: float):
    """Within the block, :func:`progress_bar` logs at most one record every ``seconds``
    (``mcmtj run --progress-interval``)."""
    global _interval
    if not seconds >= 0:
        raise ValueError(f"--progress-interval {seconds:g} is out of range: must be >= 0")
    before, _interval = _interval, seconds
    try:
        yield
    finally:
        _interval = before


class _Silent:
    """What :func:`progress_bar` yields when progress is off."""

    def update(self, n: int = 1) -> None:
        """Count ``n`` more units (ignored)."""


class _LogRecords:
    """Progress as one-line log records, at most one every ``interval`` seconds.

    The first finished block is always reported (it shows the run is going and how
    long it took, kernel loading or compiling included); then one record per
    ``interval`` with the rate and ETA, which leave out that first block; then a last
    one.
    """

    def __init__(self, total: int, desc: str, interval: float, clock=time.monotonic):
        self.total = total
        self.desc = desc
        self.interval = interval
        self.clock = clock
        self.done = 0
        self.start = clock()
        self.first: tuple[float, int] | None = None  # (time, done) after the first update
        self.last_record = self.start

    def update(self, n: int = 1) -> None:
        """Count ``n`` more units; log a record when one is due."""
        self.done += n
        now = self.clock()
        if self.first is None:
            self.first = (now, self.done)
            self.last_record = now
            # no rate yet: the first block also paid for loading or compiling the kernels
            LOGGER.info(f"{self.done:,}/{self.total:,} {self.desc} "
                        f"({100.0 * self.done / max(self.total, 1):.0f} %), first block done "
                        f"after {_duration(now - self.start)}")
        elif now - self.last_record >= self.interval or self.done >= self.total:
            self._record(now)

    def rate(self, now: float) -> float | None:
        """Units per second since the first update (or since the start when that is all
        there is); None before any unit is done."""
        if self.first is not None and now > self.first[0] and self.done > self.first[1]:
            return (self.done - self.first[1]) / (now - self.first[0])
        if self.done and now > self.start:
            return self.done / (now - self.start)
        return None

    def _record(self, now: float) -> None:
        self.last_record = now
        rate = self.rate(now)
        pct = 100.0 * self.done / self.total if self.total else 100.0
        text = f"{self.done:,}/{self.total:,} {self.desc} ({pct:.0f} %)"
        if rate:
            text += f", {rate:,.0f} {self.desc}/s"
            if self.done < self.total:
                text += f", ETA {_duration((self.total - self.done) / rate)}"
        text += f", {_duration(now - self.start)} elapsed"
        LOGGER.info(text)


def _duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 07 min``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


@contextlib.contextmanager
def progress_bar(total: int, enabled: bool | None = None, desc: str = "instances",
                 interval: float | None = None):
    """Report progress over ``total`` units: yields an object with ``update(n)``.

    Parameters
    ----------
    total : int
        Units of work (instances) of the whole run.
    enabled : bool, optional
        True: a tqdm bar; False: nothing; None (default): a tqdm bar when stderr is a
        terminal, else log records of the ``"mcmtj"`` logger (level INFO, one line
        each: done/total, percent, instances/s, ETA, elapsed).
    desc : str
        What a unit is.
    interval : float, optional
        Least seconds between two log records (default :data:`INTERVAL`).
    """
    if enabled is False:
        yield _Silent()
        return
    if enabled is None and not sys.stderr.isatty():
        yield _LogRecords(total, desc, _interval if interval is None else interval)
        return
    from tqdm.auto import tqdm

    try:
        width = os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError, AttributeError):
        width = 0
    # a terminal that reports no width (a fresh pty, `docker run -t`): tqdm would draw
    # nothing (0 columns, and no row to draw on); give it 80 x 24
    size = {"dynamic_ncols": True} if width else {"ncols": 80, "nrows": 24}
    bar = tqdm(total=total, unit=" inst", unit_scale=True, desc=desc, **size)
    try:
        yield bar
    finally:
        bar.close()


def _is_cached(dispatcher) -> bool | None:
    """Whether numba's on-disk cache holds a compiled version of ``dispatcher`` that is
    valid for this source; None when that cannot be told.

    numba's index file loads only when its source stamp (the file's and, through
    ``mcmtj.numerics._jit``, the kernel folders') matches, else it reads as empty
    (``IndexDataCacheFile._load_index``, numba >= 0.49).
    """
    try:
        cache_file = dispatcher._cache._cache_file
        return bool(cache_file._load_index())
    except Exception:  # a numba without these internals: say "unknown"
        return None


def compile_seconds(dispatchers) -> tuple[float, float]:
    """Estimated seconds to compile the ``dispatchers`` not yet compiled in this process.

    The rule: the sum of :data:`COMPILE_SECONDS` over the kernels to compile, times
    the machine's load average per core when above 1.

    Returns
    -------
    (cold, unknown) : tuple of float
        ``cold``: seconds for the kernels numba's cache does not hold; ``unknown``:
        seconds for kernels whose cache state cannot be told. Kernels already compiled
        in this process cost nothing.
    """
    cold = unknown = 0.0
    factor = _load_factor()
    for d in dispatchers:
        if getattr(d, "overloads", None):  # compiled (or loaded) in this process already
            continue
        seconds = factor * COMPILE_SECONDS.get(getattr(d, "__name__", ""),
                                               _OTHER_KERNEL_SECONDS)
        state = _is_cached(d)
        if state is None:
            unknown += seconds
        elif not state:
            cold += seconds
    return cold, unknown


def compile_notice(dispatchers, enabled: bool | None = None) -> str | None:
    """Log, before a run's first kernel call, what compiling will cost.

    "compiling kernels, about N s the first time" when numba's cache lacks some of
    them (N from :data:`COMPILE_SECONDS`), "loading compiled kernels from numba's
    cache" when it holds them all, nothing when they are loaded in this process.

    Parameters
    ----------
    dispatchers : iterable of numba dispatchers
        The kernels the run will call.
    enabled : bool, optional
        False: log nothing (``progress=False``).

    Returns
    -------
    str or None
        The message logged.
    """
    if enabled is False:
        return None
    dispatchers = list(dispatchers)
    if all(getattr(d, "overloads", None) for d in dispatchers):
        return None
    cold, unknown = compile_seconds(dispatchers)
    if cold:
        text = (f"compiling kernels, about {_duration(cold)} the first time (numba caches "
                "them for later runs)")
    elif unknown:
        text = (f"compiling kernels unless numba's cache holds them: up to about "
                f"{_duration(unknown)} the first time")
    else:
        text = "loading compiled kernels from numba's cache"
    LOGGER.info(text)
    return text


def log_to_stderr(quiet: bool = False) -> logging.Handler | None:
    """Print the ``"mcmtj"`` logger's INFO records to stderr, one timestamped line each
    (what the command line does); nothing when ``quiet``.

    Returns
    -------
    logging.Handler or None
        The handler added (remove it with ``LOGGER.removeHandler``).
    """
    if quiet:
        return None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s mcmtj: %(message)s",
                                           datefmt="%Y-%m-%d %H:%M:%S"))
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.INFO)
    return handler
