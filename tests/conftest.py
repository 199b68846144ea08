"""Shared fixtures: the NIST Wine data from ../shared (never copied into the repo).

Tests that need the data use the ``nist_dir`` fixture (they are marked ``nist_data``
automatically). Without the data they are skipped, unless ``MCMTJ_REQUIRE_DATA=1`` (set by
``.ci/run``): then a missing data set fails them, so CI cannot pass by skipping.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

NIST_DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "nist-wine"
REQUIRE_DATA = "MCMTJ_REQUIRE_DATA"


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
