"""mcmtj: Monte Carlo variability studies of neural networks in MTJ crossbars.

Typical use::

    import mcmtj
    study = mcmtj.load_study("studies/quickstart.toml")
    ds = mcmtj.simulate(study, seed=1)
    mcmtj.save(ds, "quickstart.nc")
"""

from mcmtj._version import __version__  # noqa: E402
from mcmtj.config import ConfigError, Study, load_study  # noqa: E402
from mcmtj.networks.datasets import fetch_nist_wine  # noqa: E402
from mcmtj.networks.solutions import (  # noqa: E402
    SolutionSet,
    load_nist_solutions,
    load_solutions,
    save_solutions,
)
from mcmtj.physics.circuit import transfer_matrix  # noqa: E402
from mcmtj.run.block import prepare  # noqa: E402
from mcmtj.run.engine import simulate  # noqa: E402
from mcmtj.run.reader import open_results
from mcmtj.run.results import save  # noqa: E402

__all__ = [
    "__version__",
    "ConfigError",
    "Study",
    "load_study",
    "fetch_nist_wine",
    "prepare",
    "simulate",
    "save",
    "open_results",
    "transfer_matrix",
    "SolutionSet",
    "load_nist_solutions",
    "load_solutions",
    "save_solutions",
]
