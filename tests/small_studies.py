"""The small studies that several test files run, written once here.

``TINY`` (dotted overrides for :class:`mcmtj.Study`) and :func:`tiny_toml` (the same kind of
study as a TOML file for the command line) are the store and fault tests' study: 2 trained
solutions x 2 device sizes. The ``tiny`` fixture in ``conftest.py`` prepares ``TINY``.
``CLI_STUDY`` is the command-line tests' study file.
"""

from __future__ import annotations

TINY = {
    "network.source": "train", "network.n_solutions": 2, "network.epochs": 5,
    "write.mode": "fixed", "write.error_rate": 0.05, "defects.stuck_p": 0.01,
    "network.gnorm": [0.8, 1.2], "sweep.device.diameter": [4e-8, 8e-8], "run.instances": 23,
}


def tiny_toml(instances: int, epochs: int = 5) -> str:
    """A study file's text: 2 trained solutions x 2 device sizes, fixed write errors.

    Unlike ``TINY`` it has no defects and the default gain grid.
    """
    return f"""
[network]
source = "train"
n_solutions = 2
epochs = {epochs}
[write]
mode = "fixed"
error_rate = 0.05
[run]
instances = {instances}
[sweep]
"device.diameter" = [4e-8, 8e-8]
"""


#: the command-line tests' study: 2 solutions x 2 sizes, 20 instances (many blocks with a
#: small --chunk-size, so that a run is still going when a test stops it)
CLI_STUDY = tiny_toml(20, epochs=10)


class Crash(Exception):
    """Raised by a test's ``on_chunk`` callback to stop a run part-way, as a crash would."""
