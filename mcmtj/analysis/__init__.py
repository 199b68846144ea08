"""Analysis layer: statistics of stored results (:mod:`mcmtj.analysis.metrics`, NumPy cores in
:mod:`mcmtj.analysis._np`) and figure functions (:mod:`mcmtj.analysis.plotting`, imported on
use: it loads matplotlib).

The public names of :mod:`mcmtj.analysis.metrics` are re-exported here, so
``from mcmtj.analysis import yield_fraction`` works.
"""

from mcmtj.analysis.metrics import (
    DEFAULT_METRICS,
    accuracy_stats,
    device_sensitivity,
    metric_correlations,
    sensitivity_weighted_fidelity,
    tune,
    wilson_interval,
    yield_fraction,
)

__all__ = [
    "DEFAULT_METRICS",
    "accuracy_stats",
    "wilson_interval",
    "yield_fraction",
    "tune",
    "metric_correlations",
    "sensitivity_weighted_fidelity",
    "device_sensitivity",
]
