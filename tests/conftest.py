"""Shared fixtures: the NIST Wine data from ../shared (never copied into the repo)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

NIST_DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "nist-wine"


def nist_wine_path() -> Path:
    return Path(os.environ.get("MCMTJ_NIST_WINE", NIST_DEFAULT))


@pytest.fixture(scope="session")
def nist_dir() -> Path:
    path = nist_wine_path()
    if not (path / "solutions" / "0_fc1_weight.txt").is_file():
        pytest.skip(f"NIST Wine data not found at {path} (set MCMTJ_NIST_WINE)")
    return path


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
