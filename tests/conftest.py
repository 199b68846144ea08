"""Shared fixtures: the NIST Wine data from ../shared (never copied into the repo).

Tests that need the data use the ``nist_dir`` fixture (they are marked ``nist_data``
automatically). Without the data they are skipped, unless ``MCMTJ_REQUIRE_DATA=1`` (set by
``.ci/run``): then a missing data set fails them, so CI cannot pass by skipping.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from small_studies import TINY

NIST_DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "nist-wine"
REQUIRE_DATA = "MCMTJ_REQUIRE_DATA"


# Compiles the engine's kernels into numba's on-disk cache: run once per kernel family
# (``core`` or ``circuit``) in its own process, before the test workers start.
_WARM_UP = """
import sys
import mcmtj
from mcmtj.run.block import make_plan, run_block
study = mcmtj.Study().replace(**{"network.n_solutions": 1, "network.epochs": 2})
if sys.argv[1] == "circuit":
    study = study.replace(**{"write.scheme": "v2", "read.r_wire": 1.0})
run_block(make_plan(study), 0, 0, 1, 0, 2)
"""


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    """Under pytest-xdist, compile the two big kernel families side by side first.

    Cold, they take about a minute (core) and two (circuit) of numba's single-threaded
    compiler. Left to the workers, every worker whose first test needs a kernel compiles
    it at the same time as the others; compiled here in two processes at once, each is
    compiled once and the workers load it from the cache. Runs in the controlling
    process only and only with two or more workers; a warm cache makes it a few seconds.
    """
    config = session.config
    if hasattr(config, "workerinput") or (getattr(config.option, "numprocesses", 0) or 0) < 2:
        return
    procs = [subprocess.Popen([sys.executable, "-c", _WARM_UP, kind],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for kind in ("circuit", "core")]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:  # the tests themselves will show the error in full
            print(f"kernel warm-up failed ({proc.args[-1]}): {err.strip()[-500:]}",
                  file=sys.stderr)


def nist_wine_path() -> Path:
    return Path(os.environ.get("MCMTJ_NIST_WINE") or NIST_DEFAULT)


def require_nist_wine() -> Path:
    """The NIST Wine folder; skip the test without it (fail under MCMTJ_REQUIRE_DATA=1)."""
    path = nist_wine_path()
    if not (path / "solutions" / "0_fc1_weight.txt").is_file():
        message = f"NIST Wine data not found at {path} (set MCMTJ_NIST_WINE)"
        if os.environ.get(REQUIRE_DATA, "") not in ("", "0"):
            pytest.fail(f"{message}; {REQUIRE_DATA} is set, so the data are required",
                        pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def nist_dir() -> Path:
    return require_nist_wine()


def pytest_collection_modifyitems(config, items):
    """Mark every test that uses the NIST data (``-m "not nist_data"`` runs without it)."""
    for item in items:
        if "nist_dir" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.nist_data)


@pytest.fixture(scope="session")
def nist_study(nist_dir):
    """NIST solutions, ideal everything, evaluated on the 148-sample training split."""
    import mcmtj

    return mcmtj.Study().replace(**{
        "network.source": "nist", "network.dataset": "nist", "network.nist_path": str(nist_dir),
        "network.eval_split": "train", "device.variation": False, "write.mode": "ideal",
        "run.instances": 3,
    })


@pytest.fixture(scope="session")
def nist_prepared(nist_study):
    import mcmtj

    return mcmtj.prepare(nist_study)


@pytest.fixture(scope="module")
def tiny():
    """``(study, prepared)`` of :data:`small_studies.TINY`, prepared once per test module."""
    import mcmtj

    study = mcmtj.Study().replace(**TINY)
    return study, mcmtj.prepare(study)
