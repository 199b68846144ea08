"""Analysis layer: statistics of stored results (:mod:`mcmtj.analysis.metrics`, NumPy cores in
:mod:`mcmtj.analysis._np`) and figure functions (:mod:`mcmtj.analysis.plotting`, imported on
use: it loads matplotlib).

The public names of :mod:`mcmtj.analysis.metrics` are re-exported here, so
``from mcmtj.analysis import yield_fraction`` works.
"""

from mcmtj.analysis import metrics
from mcmtj.analysis.metrics import *  # noqa: F403 (the public names, listed once: metrics.__all__)

__all__ = list(metrics.__all__)
