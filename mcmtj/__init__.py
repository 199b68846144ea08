"""mcmtj: Monte Carlo variability studies of neural networks in MTJ crossbars.

Typical use::

    import mcmtj
    study = mcmtj.load_study("studies/quickstart.toml")
    ds = mcmtj.simulate(study, seed=1)
    mcmtj.save(ds, "quickstart.nc")
"""

__version__ = "0.1.0"

from .circuit import transfer_matrix  # noqa: E402
from .config import ConfigError, Study, load_study  # noqa: E402
from .datasets import fetch_nist_wine  # noqa: E402
from .engine import prepare, simulate  # noqa: E402
from .results import open_results, save  # noqa: E402
from .solutions import SolutionSet, load_nist_solutions, load_solutions, save_solutions  # noqa: E402

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
