"""The 36-die study: defect-unaware, hardware-aware and statistics-aware training.

``mcmtj paper borders2024`` regenerates the figures and ``REPORT.md`` of a miniature of
Borders et al., Phys. Rev. Applied 21, 054028 (2024), arXiv 2312.06446: a binary
64 -> 32 -> 10 network for scikit-learn's digits (8 x 8, shipped with scikit-learn) written
into dies of integrated MTJ arrays, each die with its own short rate drawn from a Beta
distribution (``studies/borders2024/dies.toml``). Four ways to get weights are compared on
the same dies:

- *software baseline*: the defect-unaware networks on ideal hardware;
- *defect-unaware*: the same networks written into each die;
- *hardware-aware*: networks trained on each die's own map (one training per die);
- *statistics-aware*: networks trained on a fresh die drawn from the die model at every
  training step (:class:`mcmtj.networks.trainer.BinaryMLP`, ``training="statistics"``).

Steps, meeting only through files (like :mod:`mcmtj.papers.goodwill2022`):

1. :func:`ensure_results` samples the scored dies, trains the three solution sets and scores
   every solution on every scored die and on the further sampled dies; stored as
   ``<results>/evaluation.nc`` (reused while the study, sizes and mcmtj's source hash match);
2. :func:`analyse` computes the method means and the paired intervals;
3. :func:`write_report` and :func:`draw_figures` read the stored file only; the reading is
   generated from the intervals.

Scoring: a die's inference is the engine's ideal-read inference of a die with ideal writes
(:func:`mcmtj.networks.trainer.map_weights`: the effective weight of each device pair is
``(G+ - G-) / (G_P - G_AP)`` of the nominal device, biases in software, ``gnorm = 1``), so
training and scoring see the same hardware model. What is scored never enters a choice:
every training keeps its best epoch on the training split only (hardware-aware: on its
die; statistics-aware: on dies drawn from the model, never the scored ones), and the scored
dies and the test split are disjoint from everything a training sees (apart from the die
itself in hardware-aware training, which is that method's definition).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from mcmtj.config import Study, load_study
from mcmtj.networks.data import DataSplit
from mcmtj.networks.trainer import BinaryMLP, map_weights
from mcmtj.numerics import _jit
from mcmtj.papers._common import (
    figure_metadata,
    log_default,
    output_folders,
    repo_root,
    write_outputs,
)
from mcmtj.physics.device import nominal_conductances, sample_parallel_conductance

__all__ = [
    "PAPERS",
    "METHODS",
    "FULL",
    "QUICK",
    "DieModel",
    "die_model",
    "load_digits_split",
    "sample_dies",
    "die_sampler",
    "ensure_results",
    "analyse",
    "write_report",
    "draw_figures",
    "main",
]

#: Paper figure sets this module knows.
PAPERS = ("borders2024",)
#: Method -> label (order of the figures and the report).
METHODS = {
    "software": "software baseline",
    "unaware": "defect-unaware",
    "hardware": "hardware-aware (per die)",
    "statistics": "statistics-aware",
}
#: Sizes of the full study: scored dies, further sampled dies, solutions per method,
#: hardware-aware solutions per die, training epochs and mini-batch, evaluation maps per
#: epoch (statistics-aware), bootstrap replicates.
FULL = {
    "dies": 36,
    "further_dies": 10_000,
    "solutions": 16,
    "hardware_per_die": 2,
    "hidden": 32,
    "epochs": 50,
    "batch_size": 64,
    "eval_maps": 4,
    "n_boot": 2000,
}
#: The reduced run of CI (``--quick``): same pipeline, far fewer dies, solutions, epochs.
QUICK = {
    "dies": 6,
    "further_dies": 100,
    "solutions": 2,
    "hardware_per_die": 1,
    "hidden": 32,
    "epochs": 3,
    "batch_size": 64,
    "eval_maps": 2,
    "n_boot": 200,
}
#: Test split of the digits (stratified; the rest trains).
TEST_SIZE = 360
#: The paper's headline: statistics-aware error within about 2 % of software on MNIST.
PAPER_GAP = 0.02
_VERSION = 1  # bump when the stored evaluation changes meaning
_STUDY_FILE = "dies.toml"
_DIES_PER_BLOCK = 16  # dies scored together (memory: block x solutions x samples x hidden)


# ------------------------------------------------------------------------- data and dies


def load_digits_split(test_size: int = TEST_SIZE, random_state: int = 0) -> DataSplit:
    """scikit-learn's digits (1,797 samples, 8 x 8 pixels, 10 classes), split and encoded.

    Pixels (0..16) are divided by 16, so inputs lie in [0, 1] (row voltage ``x V_read``,
    the NIST min-max convention with the data's fixed range). The split is stratified by
    class and fixed by `random_state`; nothing is downloaded.

    Returns
    -------
    DataSplit
        Named ``"digits"``: 1,437 training and 360 test samples by default.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X / 16.0, y, test_size=test_size, stratify=y, random_state=random_state)
    return DataSplit(X_train=X_train, y_train=y_train, X_test=X_test, y_test=y_test,
                     name="digits")


@dataclass(frozen=True)
class DieModel:
    """What a die is: device variation and a short rate per die.

    Attributes
    ----------
    beta_a, beta_b : float
        Beta distribution of a die's short rate (``a, b > 0``).
    diameter, diameter_sigma : float
        Device diameter and its device-to-device sigma, m.
    resistance_area, resistance_area_sigma : float
        Median RA (ohm m^2) and its log-normal sigma.
    tmr, tmr_sigma : float
        Zero-bias TMR and its absolute sigma.
    variation : bool
        Device-to-device variation on.
    r_short : float
        Resistance of a shorted cell, ohm.
    unit : float
        Nominal ``G_P - G_AP``, S: maps are in this unit.
    """

    beta_a: float
    beta_b: float
    diameter: float
    diameter_sigma: float
    resistance_area: float
    resistance_area_sigma: float
    tmr: float
    tmr_sigma: float
    variation: bool
    r_short: float
    unit: float

    @property
    def mean_rate(self) -> float:
        """Mean short rate of a die, ``a / (a + b)``."""
        return self.beta_a / (self.beta_a + self.beta_b)

    @property
    def rate_sd(self) -> float:
        """Standard deviation of a die's short rate."""
        a, b = self.beta_a, self.beta_b
        return math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))


def die_model(study: Study) -> DieModel:
    """The die model of a study: its device section and a Beta short rate per die.

    The Beta distribution has mean ``m = defects.short`` and variance ``m (1 - m) phi``
    with ``phi = defects.dispersion`` (the engine's die-to-die rates), so
    ``a = m (1/phi - 1)`` and ``b = (1 - m)(1/phi - 1)``.

    Raises
    ------
    ValueError
        A rate other than ``short`` is set, or ``short`` or ``dispersion`` do not give
        ``a, b > 0`` (one line naming the field and the allowed range).
    """
    dfc, dev = study.defects, study.device
    for name in ("stuck_p", "stuck_ap", "open"):
        if getattr(dfc, name) != 0:
            raise ValueError(f"defects.{name} = {getattr(dfc, name)!r} is out of range: the "
                             "borders2024 dies have shorts only (must be 0)")
    if not dfc.enabled or not 0 < dfc.short < 1:
        raise ValueError(f"defects.short = {dfc.short!r} is out of range: the mean short rate "
                         "of a die must be in (0, 1) with defects.enabled = true")
    if not dfc.dispersion > 0:
        raise ValueError(f"defects.dispersion = {dfc.dispersion!r} is out of range: must be in "
                         "(0, 1) so that each die draws its rate from Beta(a, b), a, b > 0")
    scale = 1.0 / dfc.dispersion - 1.0
    a, b = dfc.short * scale, (1.0 - dfc.short) * scale
    g_p, g_ap = nominal_conductances(dev)
    return DieModel(beta_a=a, beta_b=b, diameter=dev.diameter, diameter_sigma=dev.diameter_sigma,
                    resistance_area=dev.resistance_area,
                    resistance_area_sigma=dev.resistance_area_sigma, tmr=dev.tmr,
                    tmr_sigma=dev.tmr_sigma, variation=dev.variation, r_short=dfc.r_short,
                    unit=g_p - g_ap)


def sample_dies(model: DieModel, rng: np.random.Generator, n: int,
                device_shapes) -> tuple[tuple[np.ndarray, ...], np.ndarray, np.ndarray]:
    """Draw ``n`` dies: per-device conductances and shorts, per die a Beta short rate.

    Per device: ``G_P`` from the diameter and RA draws
    (:func:`mcmtj.physics.device.sample_parallel_conductance`), ``TMR ~ max(Normal, 0)``,
    ``G_AP = G_P / (1 + TMR)``; shorted with the die's rate, then ``1 / r_short`` in both
    states.

    Parameters
    ----------
    model : DieModel
    rng : numpy.random.Generator
    n : int
        Number of dies.
    device_shapes : sequence of (int, int)
        ``(n_in, 2*n_out)`` per layer.

    Returns
    -------
    maps : tuple of ndarray, one per layer, shape (n, n_in, 2*n_out, 2)
        In units of the nominal ``G_P - G_AP`` (the trainer's map format).
    rate : ndarray, shape (n,)
        Each die's drawn short rate.
    short_fraction : ndarray, shape (n,)
        Fraction of the die's devices that are shorted.
    """
    rate = rng.beta(model.beta_a, model.beta_b, size=n)
    maps, n_short, n_dev = [], np.zeros(n), 0
    sigma = (model.diameter_sigma, model.resistance_area_sigma, model.tmr_sigma)
    if not model.variation:
        sigma = (0.0, 0.0, 0.0)
    for n_in, n_cols in device_shapes:
        z = rng.standard_normal((3, n, n_in, n_cols))
        g_p, _ = sample_parallel_conductance(z[0], z[1], model.diameter, sigma[0],
                                             model.resistance_area, sigma[1])
        tmr = np.maximum(model.tmr + sigma[2] * z[2], 0.0)
        layer = np.stack([g_p, g_p / (1.0 + tmr)], axis=-1) / model.unit
        short = rng.random((n, n_in, n_cols)) < rate[:, None, None]
        layer[short] = 1.0 / model.r_short / model.unit
        n_short += short.sum(axis=(1, 2))
        n_dev += n_in * n_cols
        maps.append(layer)
    return tuple(maps), rate, n_short / n_dev


def die_sampler(model: DieModel, device_shapes) -> Callable:
    """A ``map_sampler`` for statistics-aware training: ``f(rng, n) -> maps`` of n fresh dies."""

    def sampler(rng, n):
        return sample_dies(model, rng, n, device_shapes)[0]

    return sampler


# ------------------------------------------------------------------------- results


def _device_shapes(n_features: int, hidden: int, n_classes: int) -> list[tuple[int, int]]:
    sizes = (n_features, hidden, n_classes)
    return [(n_in, 2 * n_out) for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)]


def _tiles(device_shapes, tile_rows: int, tile_cols: int) -> list[tuple[int, int]]:
    """Arrays per layer, (row tiles, column tiles), as the engine tiles a layer.

    ``tile_rows`` inputs and ``tile_cols`` columns per array (``array.tile_rows``,
    ``array.tile_cols``; 0 = untiled); an odd ``tile_cols`` leaves a column unused, since a
    differential pair never straddles two arrays.
    """
    pair_cols = tile_cols - tile_cols % 2
    return [(-(-n_in // tile_rows) if tile_rows else 1,
             -(-n_cols // pair_cols) if pair_cols else 1) for n_in, n_cols in device_shapes]


def _scores(weights, biases, X) -> np.ndarray:
    """Scores of many networks: weights (..., n_in, n_out), biases (..., n_out) per layer.

    The reference convention (:func:`mcmtj.networks.solutions.forward` at ``gnorm = 1``,
    tanh hidden, identity output) with ``np.matmul`` for speed: equal up to rounding.
    """
    x = X
    for layer, (w, b) in enumerate(zip(weights, biases, strict=True)):
        if x.ndim == 2:
            # inputs shared by every network: one matrix product over all of them
            a = np.moveaxis(np.tensordot(x, w, axes=([1], [-2])), 0, -2)
        else:
            a = np.matmul(x, w)
        a += b[..., None, :]
        x = np.tanh(a, out=a) if layer < len(weights) - 1 else a
    return x


def _error_and_loss(scores: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Test error and mean cross-entropy (nats) over the sample axis (-2)."""
    shifted = scores - scores.max(axis=-1, keepdims=True)
    log_prob = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    loss = -log_prob[..., np.arange(y.size), y].mean(axis=-1)
    error = (np.argmax(scores, axis=-1) != y).mean(axis=-1)
    return error, loss


def _score_on_dies(weights, biases, X, y, maps, per_solution_die=False):
    """Error and loss of K networks on D dies: (D, K) each (or (K,) with per-solution dies).

    ``per_solution_die``: ``maps`` has a leading solution axis and network k is scored on
    its own die only.
    """
    if per_solution_die:
        eff = map_weights(weights, maps)
        return _error_and_loss(_scores(eff, biases, X), y)
    n_dies = maps[0].shape[0]
    error = np.empty((n_dies, weights[0].shape[0]))
    loss = np.empty_like(error)
    for start in range(0, n_dies, _DIES_PER_BLOCK):
        block = [m[start:start + _DIES_PER_BLOCK, None] for m in maps]  # (B, 1, ...)
        eff = map_weights([w[None] for w in weights], block)  # (B, K, n_in, n_out)
        e, lo = _error_and_loss(_scores(eff, [b[None] for b in biases], X), y)
        error[start:start + len(e)] = e
        loss[start:start + len(e)] = lo
    return error, loss


def _stamp(study: Study, sizes: Mapping[str, int]) -> str:
    # the package hash too: the evaluation is computed by this module, the trainer and the
    # device model, so any edit of mcmtj must evaluate again rather than report old numbers
    text = json.dumps({"study": study.to_dict(), "sizes": dict(sizes), "version": _VERSION,
                       "test_size": TEST_SIZE, "code": _jit.PACKAGE_STAMP},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _save(ds: xr.Dataset, path: Path) -> None:
    """Write netCDF atomically: a temporary in the same folder, then a rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine="h5netcdf")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure_results(study: Study, results: str | Path, sizes: Mapping[str, int], *,
                   log: Callable[[str], None] | None = None) -> Path:
    """Train, sample and score, unless ``<results>/evaluation.nc`` of this study exists.

    Parameters
    ----------
    study : Study
        The die model (``studies/borders2024/dies.toml``); its ``run.seed`` roots every
        random stream (scored dies, further dies, each training, the bootstrap).
    results : path
        Folder of the stored evaluation.
    sizes : mapping
        :data:`FULL` or :data:`QUICK` (or the same keys).
    log : callable, optional

    Returns
    -------
    Path
        The stored evaluation.
    """
    log = log or log_default
    results = Path(results)
    path = results / "evaluation.nc"
    stamp = _stamp(study, sizes)
    if path.is_file():
        with xr.open_dataset(path, engine="h5netcdf") as old:
            if old.attrs.get("stamp") == stamp:
                log(f"{path}: up to date, reused")
                return path
    model = die_model(study)
    seeds = np.random.SeedSequence(study.run.seed).spawn(5)
    data = load_digits_split(random_state=int(seeds[0].generate_state(1)[0]))
    shapes = _device_shapes(data.n_features, sizes["hidden"], data.n_classes)
    X_train, y_train, X_test, y_test = data.X_train, data.y_train, data.X_test, data.y_test
    n_dies, n_further = sizes["dies"], sizes["further_dies"]
    die_maps, die_rate, die_short = sample_dies(model, np.random.default_rng(seeds[1]),
                                                n_dies, shapes)
    train_seeds = [int(s) for s in seeds[2].generate_state(3)]
    common = dict(hidden=sizes["hidden"], epochs=sizes["epochs"],
                  batch_size=sizes["batch_size"], hidden_activation="tanh",
                  output_activation="identity")
    K, R = sizes["solutions"], sizes["hardware_per_die"]

    log(f"training {K} defect-unaware solutions ({sizes['epochs']} epochs)")
    unaware = BinaryMLP(n_solutions=K, random_state=train_seeds[0], **common).fit(
        X_train, y_train)
    log(f"training {K} statistics-aware solutions (a fresh die per step)")
    statistics = BinaryMLP(n_solutions=K, random_state=train_seeds[1], training="statistics",
                           map_sampler=die_sampler(model, shapes),
                           n_eval_maps=sizes["eval_maps"], **common).fit(X_train, y_train)
    log(f"training {R} hardware-aware solution(s) on each of the {n_dies} dies")
    hw_maps = tuple(np.repeat(m, R, axis=0) for m in die_maps)
    hardware = BinaryMLP(n_solutions=n_dies * R, random_state=train_seeds[2],
                         training="hardware", device_map=hw_maps, **common).fit(X_train, y_train)

    log(f"scoring on {n_dies} dies and {n_further} further sampled dies")
    sets = {"unaware": unaware, "statistics": statistics}
    out = {}
    for name, fitted in sets.items():
        sw_err, sw_loss = _error_and_loss(_scores(fitted.weights_, fitted.biases_, X_test),
                                          y_test)
        out[f"software_error_{name}"] = (("solution",), sw_err)
        out[f"software_loss_{name}"] = (("solution",), sw_loss)
        err, loss = _score_on_dies(fitted.weights_, fitted.biases_, X_test, y_test, die_maps)
        out[f"error_{name}"] = (("die", "solution"), err)
        out[f"loss_{name}"] = (("die", "solution"), loss)
    err, loss = _score_on_dies(hardware.weights_, hardware.biases_, X_test, y_test, hw_maps,
                               per_solution_die=True)
    out["error_hardware"] = (("die", "replica"), err.reshape(n_dies, R))
    out["loss_hardware"] = (("die", "replica"), loss.reshape(n_dies, R))
    out["die_rate"] = (("die",), die_rate)
    out["die_short_fraction"] = (("die",), die_short)

    rng_further = np.random.default_rng(seeds[3])
    f_rate, f_short = np.empty(n_further), np.empty(n_further)
    f_err = {n: np.empty((n_further, K)) for n in sets}
    f_loss = {n: np.empty((n_further, K)) for n in sets}
    chunk = 500  # dies sampled at a time (memory: chunk x 4,736 devices x 2)
    for start in range(0, n_further, chunk):
        n = min(chunk, n_further - start)
        maps, rate, short = sample_dies(model, rng_further, n, shapes)
        f_rate[start:start + n], f_short[start:start + n] = rate, short
        for name, fitted in sets.items():
            e, lo = _score_on_dies(fitted.weights_, fitted.biases_, X_test, y_test, maps)
            f_err[name][start:start + n], f_loss[name][start:start + n] = e, lo
    for name in sets:
        out[f"further_error_{name}"] = (("further_die", "solution"), f_err[name])
        out[f"further_loss_{name}"] = (("further_die", "solution"), f_loss[name])
    out["further_rate"] = (("further_die",), f_rate)
    out["further_short_fraction"] = (("further_die",), f_short)
    out["train_error_unaware"] = (("solution",), 1.0 - unaware.train_accuracy_)

    tiles = _tiles(shapes, study.array.tile_rows, study.array.tile_cols)
    ds = xr.Dataset(out, attrs={
        "stamp": stamp,
        "study": json.dumps(study.to_dict(), default=str),
        "sizes": json.dumps(dict(sizes)),
        "seed": study.run.seed,
        "beta_a": model.beta_a,
        "beta_b": model.beta_b,
        "r_short": model.r_short,
        "short_weight": 1.0 / model.r_short / model.unit,
        "layers": json.dumps([list(s) for s in shapes]),
        "tiles": json.dumps([list(t) for t in tiles]),
        "array": f"{study.array.rows} x {study.array.cols} {study.array.kind}",
        "n_train": len(y_train),
        "n_test": len(y_test),
        "boot_seed": int(seeds[4].generate_state(1)[0]),
    })
    results.mkdir(parents=True, exist_ok=True)
    _save(ds, path)
    log(f"wrote {path}")
    return path


# ------------------------------------------------------------------------- analysis


def _interval(replicates: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    tail = 50 * (1 - confidence)
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return float(low), float(high)


def analyse(ds: xr.Dataset) -> dict:
    """Mean error of each method and the paired differences, with bootstrap intervals.

    Scored dies: every replicate resamples the dies (the same dies for every method: the
    comparison is paired by die) and, independently, each method's solutions (independent
    trainings); the software baseline is the defect-unaware solutions' ideal error, on the
    same resampled solutions as their die errors (paired by solution). Further dies: the
    same, with the further dies. Intervals are 95 % percentile intervals and cover the
    choice of dies and of training seeds; the test split is fixed (not resampled).

    Returns
    -------
    dict
        ``"dies"`` and ``"further"``: method -> mean error, and ``"diff"``: (a, b) ->
        (mean of a - b, low, high).
    """
    n_boot = json.loads(ds.attrs["sizes"])["n_boot"]
    rng = np.random.default_rng(int(ds.attrs["boot_seed"]))
    sw = ds["software_error_unaware"].values
    result = {}
    for scope, prefix, die_dim in (("dies", "error_", "die"), ("further", "further_error_",
                                                                "further_die")):
        errors = {"unaware": ds[f"{prefix}unaware"].values,
                  "statistics": ds[f"{prefix}statistics"].values}
        if scope == "dies":
            errors["hardware"] = ds["error_hardware"].values
        n_d = ds.sizes[die_dim]
        means = {"software": float(sw.mean())}
        means.update({m: float(e.mean()) for m, e in errors.items()})
        reps = {m: np.empty(n_boot) for m in means}
        for i in range(n_boot):
            dies = rng.integers(0, n_d, n_d)
            for m, e in errors.items():
                cols = rng.integers(0, e.shape[1], e.shape[1])
                per_die = e[:, cols].mean(axis=1)
                reps[m][i] = per_die[dies].mean()
                if m == "unaware":
                    reps["software"][i] = sw[cols].mean()
        pairs = [("statistics", "software"), ("statistics", "unaware"),
                 ("unaware", "software")]
        if scope == "dies":
            pairs += [("hardware", "software"), ("statistics", "hardware"),
                      ("hardware", "unaware")]
        diff = {}
        for a, b in pairs:
            diff[(a, b)] = (means[a] - means[b], *_interval(reps[a] - reps[b]))
        intervals = {m: _interval(r) for m, r in reps.items()}
        result[scope] = {"mean": means, "interval": intervals, "diff": diff}
    return result


# ------------------------------------------------------------------------- report


def _pct(x: float, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f} %"


def _pp(x: float, digits: int = 1) -> str:
    return f"{100 * x:+.{digits}f} points"


def _diff_sentence(a: str, b: str, d: tuple[float, float, float]) -> str:
    mean, low, high = d
    span = f"{_pp(mean)} [{_pp(low)}, {_pp(high)}]"
    if high < 0:
        return f"{METHODS[a]} has a lower error than {METHODS[b]}: {span}."
    if low > 0:
        return f"{METHODS[a]} has a higher error than {METHODS[b]}: {span}."
    return (f"{METHODS[a]} and {METHODS[b]} cannot be told apart: {span} (the interval "
            "holds 0).")


def write_report(ds: xr.Dataset, path: str | Path, *, quick: bool = False) -> str:
    """Write ``REPORT.md`` from the stored evaluation; every number comes from it.

    Returns
    -------
    str
        The report text.
    """
    an = analyse(ds)
    sizes = json.loads(ds.attrs["sizes"])
    layers = json.loads(ds.attrs["layers"])
    tiles = json.loads(ds.attrs["tiles"])
    n_dev = sum(a * b for a, b in layers)
    n_arrays = sum(a * b for a, b in tiles)
    a, b = float(ds.attrs["beta_a"]), float(ds.attrs["beta_b"])
    mean_rate = a / (a + b)
    sd_rate = math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    title = "# Borders et al. 2024 in miniature: defect-aware training on 36 simulated dies"
    lines = []
    if quick:
        title = ("# QUICK RUN (reduced sizes, not the study's result): defect-aware training "
                 "on simulated dies")
    lines += [title, "",
              "Generated by `mcmtj paper borders2024" + (" --quick" if quick else "")
              + "` from the stored evaluation; nothing here is typed by hand.", ""]
    if quick:
        lines += [f"> **Quick run**: {sizes['dies']} dies, {sizes['further_dies']} further "
                  f"dies, {sizes['solutions']} solutions per method, {sizes['epochs']} "
                  "epochs. Numbers show that the pipeline runs, not what the study finds.", ""]
    lines += [
        "## Setup", "",
        f"- Data: scikit-learn digits (8 x 8 pixels / 16, inputs in [0, 1]), stratified "
        f"split: {ds.attrs['n_train']} training, {ds.attrs['n_test']} test samples.",
        f"- Network: binary {layers[0][0]} -> {layers[0][1] // 2} -> {layers[1][1] // 2}, "
        "tanh hidden units, real biases in software, class = argmax; "
        f"{n_dev} devices (two per weight) on {n_arrays} arrays of {ds.attrs['array']} "
        f"(layer tiles {' and '.join(f'{r} x {c}' for r, c in tiles)}).",
        f"- Dies: device variation of the study file; each die's short rate drawn from "
        f"Beta(a = {a:.2f}, b = {b:.2f}) (mean {_pct(mean_rate, 2)}, sd {_pct(sd_rate, 2)}; "
        "assumed, see `studies/borders2024/dies.toml` for why); a shorted cell conducts "
        f"1/r_short with r_short = {float(ds.attrs['r_short']):g} ohm, "
        f"{float(ds.attrs['short_weight']):.1f} times the nominal weight unit G_P - G_AP, "
        "in either state. Writes and reads ideal: the scores are the engine's ideal-read "
        "inference of each die.",
        f"- Training (BinaryMLP, straight-through estimator, Adam, {sizes['epochs']} epochs, "
        f"mini-batches of {sizes['batch_size']}): {sizes['solutions']} defect-unaware "
        f"solutions; {sizes['solutions']} statistics-aware solutions (a fresh die from the "
        "same model at every step, best epoch on "
        f"{sizes['eval_maps']} further dies); {sizes['hardware_per_die']} hardware-aware "
        f"solution(s) per scored die, trained on that die. Software baseline: the "
        "defect-unaware solutions on ideal hardware.",
        "- What is scored never enters a choice: every training keeps its best epoch by "
        "training-split accuracy only; statistics-aware training and its epoch choice see "
        "dies drawn from the model, never a scored die; the test split is used for scoring "
        "only.",
        f"- Intervals: 95 % bootstrap ({sizes['n_boot']} replicates) over dies (paired: the "
        "same dies for every method) and over each method's solutions (training seeds); "
        f"the {ds.attrs['n_test']}-sample test split is fixed, so they do not cover "
        "test-set sampling. A method is called better only where the interval of the "
        "difference excludes 0.",
        "",
    ]
    for scope, heading in (("dies", f"## The {ds.sizes['die']} scored dies"),
                           ("further", f"## {ds.sizes['further_die']:,} further sampled dies")):
        res = an[scope]
        lines += [heading, "", "| method | mean test error | 95 % interval |", "|---|---|---|"]
        for m, label in METHODS.items():
            if m in res["mean"]:
                low, high = res["interval"][m]
                lines.append(f"| {label} | {_pct(res['mean'][m], 2)} | "
                             f"[{_pct(low, 2)}, {_pct(high, 2)}] |")
        if scope == "further":
            lines.append("")
            lines.append("(Hardware-aware solutions belong to one die each and are not "
                         "scored on other dies.)")
        lines += ["", "Differences (error of the first minus the second, percentage points):",
                  ""]
        lines += [f"- {_diff_sentence(x, y, d)}" for (x, y), d in res["diff"].items()]
        lines.append("")
    gap, low, high = an["dies"]["diff"][("statistics", "software")]
    f_gap, f_low, f_high = an["further"]["diff"][("statistics", "software")]
    lines += ["## Reading", ""]
    lines.append(
        f"- The mean error gap of statistics-aware training to the software baseline is "
        f"{_pp(gap, 2)} [{_pp(low, 2)}, {_pp(high, 2)}] on the {ds.sizes['die']} scored dies "
        f"and {_pp(f_gap, 2)} [{_pp(f_low, 2)}, {_pp(f_high, 2)}] on the "
        f"{ds.sizes['further_die']:,} further dies. The paper reports about "
        f"{100 * PAPER_GAP:.0f} points on MNIST on its 36 dies; here the gap is "
        + ("within" if high <= PAPER_GAP else "beyond" if low > PAPER_GAP
           else "not shown to be within or beyond")
        + f" {100 * PAPER_GAP:.0f} points on the scored dies (its interval "
        + ("lies below" if high <= PAPER_GAP else "lies above" if low > PAPER_GAP
           else "holds")
        + f" {100 * PAPER_GAP:.0f} points).")
    if low > PAPER_GAP:
        lines.append(
            "- This miniature does not reproduce the paper's gap. Differences from the paper "
            "that this study does not test one by one: the assumed die model (rates and "
            "r_short of `dies.toml`, not the paper's measured dies), the network "
            f"({layers[0][0]} -> {layers[0][1] // 2} -> {layers[1][1] // 2} on the digits, "
            "not the paper's MNIST network) and the training budget "
            f"({sizes['epochs']} epochs, the same for every method).")
    lines.append(
        "- On ideal hardware the statistics-aware solutions have a mean test error of "
        f"{_pct(float(ds['software_error_statistics'].mean()), 2)} (defect-unaware: "
        f"{_pct(float(ds['software_error_unaware'].mean()), 2)}; descriptive, no interval).")
    for pair in (("unaware", "software"), ("hardware", "unaware"), ("statistics", "unaware")):
        lines.append(f"- Scored dies: {_diff_sentence(*pair, an['dies']['diff'][pair])}")
    per_die = {m: ds[f"error_{m}"].mean(axis=1).values for m in ("unaware", "statistics",
                                                                  "hardware")}
    rate = ds["die_short_fraction"].values
    for m in ("unaware", "statistics"):
        rho = _spearman(rate, per_die[m])
        lines.append(f"- Spearman correlation of a die's shorted fraction with the "
                     f"{METHODS[m]} error (mean over solutions) on the scored dies: "
                     f"{rho:+.2f} (no interval: descriptive).")
    lines += ["", "## Figures", "",
              "- `fig1_error_per_die`: test error of the four methods on each scored die "
              "(dies ordered by shorted fraction; points: mean over solutions, bars: their "
              "range).",
              "- `fig2_error_vs_defect_rate`: error against each die's shorted fraction, the "
              "scored dies as points and the further dies as binned means.",
              "- `fig3_sensitivity`: test loss (cross-entropy) of each solution over the "
              "further sampled dies (boxes: quartiles, whiskers: 1.5 IQR); the diamond is "
              "the solution's loss on ideal hardware.",
              ""]
    text = "\n".join(lines)
    Path(path).write_text(text)
    return text


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


# ------------------------------------------------------------------------- figures

_COLOURS = {"software": "0.3", "unaware": "tab:red", "hardware": "tab:green",
            "statistics": "tab:blue"}


def draw_figures(ds: xr.Dataset, out: str | Path, formats=("png", "pdf")) -> list[Path]:
    """Draw the three figures from the stored evaluation (never simulates).

    Returns
    -------
    list of Path
        The files written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    written = []

    def save(fig, name):
        for fmt in formats:
            path = out / f"{name}.{fmt}"
            fig.savefig(path, dpi=150, metadata=figure_metadata(fmt))
            written.append(path)
        plt.close(fig)

    rate = ds["die_short_fraction"].values
    order = np.argsort(rate, kind="stable")
    x = np.arange(len(order))
    fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
    sw = ds["software_error_unaware"].values
    ax.axhspan(100 * sw.min(), 100 * sw.max(), color=_COLOURS["software"], alpha=0.15)
    ax.axhline(100 * sw.mean(), color=_COLOURS["software"], lw=1,
               label=f"{METHODS['software']} (band: solutions)")
    offsets = {"unaware": -0.2, "hardware": 0.0, "statistics": 0.2}
    for m, dx in offsets.items():
        e = 100 * ds[f"error_{m}"].values[order]
        mean = e.mean(axis=1)
        ax.errorbar(x + dx, mean, yerr=[mean - e.min(axis=1), e.max(axis=1) - mean], fmt="o",
                    ms=3, lw=0.8, color=_COLOURS[m], label=METHODS[m])
    ax.set_xticks(x, [f"{100 * r:.1f}" for r in rate[order]], rotation=90, fontsize=6)
    ax.set_xlabel("scored die (labelled by its shorted fraction, %)")
    ax.set_ylabel("test error (%)")
    ax.legend(fontsize=7)
    save(fig, "fig1_error_per_die")

    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    f_rate = ds["further_short_fraction"].values
    edges = np.quantile(f_rate, np.linspace(0, 1, 11))
    centre = 0.5 * (edges[1:] + edges[:-1])
    which = np.clip(np.searchsorted(edges, f_rate, side="right") - 1, 0, len(edges) - 2)
    for m in ("unaware", "statistics"):
        per_die = ds[f"further_error_{m}"].values.mean(axis=1)
        binned = [per_die[which == i].mean() if np.any(which == i) else np.nan
                  for i in range(len(centre))]
        ax.plot(100 * centre, 100 * np.asarray(binned), "-", color=_COLOURS[m], lw=1,
                label=f"{METHODS[m]}, further dies (decile means)")
    for m in ("unaware", "hardware", "statistics"):
        ax.plot(100 * rate, 100 * ds[f"error_{m}"].values.mean(axis=1), "o", ms=4,
                color=_COLOURS[m], label=f"{METHODS[m]}, scored dies")
    ax.axhline(100 * sw.mean(), color=_COLOURS["software"], lw=1, ls="--",
               label=METHODS["software"])
    ax.set_xlabel("shorted fraction of the die's devices (%)")
    ax.set_ylabel("test error, mean over solutions (%)")
    ax.legend(fontsize=7)
    save(fig, "fig2_error_vs_defect_rate")

    fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
    positions, colours, data, ideal = [], [], [], []
    k = ds.sizes["solution"]
    for j, m in enumerate(("unaware", "statistics")):
        loss = ds[f"further_loss_{m}"].values
        for s in range(k):
            positions.append(j * (k + 1) + s)
            data.append(loss[:, s])
            colours.append(_COLOURS[m])
            ideal.append(float(ds[f"software_loss_{m}"].values[s]))
    parts = ax.boxplot(data, positions=positions, widths=0.6, showfliers=False,
                       patch_artist=True)
    for patch, colour in zip(parts["boxes"], colours, strict=True):
        patch.set_facecolor(colour)
        patch.set_alpha(0.4)
    ax.plot(positions, ideal, "D", color="k", ms=4, ls="none",
            label="the solution's loss on ideal hardware")
    ax.set_xticks([(k - 1) / 2, k + 1 + (k - 1) / 2],
                  [f"{METHODS['unaware']} solutions", f"{METHODS['statistics']} solutions"])
    ax.set_ylabel("test cross-entropy over further dies (nats)")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    save(fig, "fig3_sensitivity")
    return written


# ------------------------------------------------------------------------- command


def load_die_study(studies_dir: str | Path | None = None,
                   overrides: Mapping[str, object] | None = None) -> Study:
    """``studies/borders2024/dies.toml`` (or the same file in `studies_dir`)."""
    folder = Path(studies_dir) if studies_dir is not None else (
        repo_root() / "studies" / "borders2024")
    path = folder / _STUDY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: study file not found")
    return load_study(path, overrides=dict(overrides or {}))


def main(
    paper: str = "borders2024",
    *,
    quick: bool = False,
    out: str | Path | None = None,
    results: str | Path | None = None,
    studies_dir: str | Path | None = None,
    overrides: Mapping[str, object] | None = None,
    threads: int | None = None,
    formats=("png", "pdf"),
    log: Callable[[str], None] | None = None,
    data: str | Path | None = None,
) -> dict[str, object]:
    """Regenerate the borders2024 figure set: train and score what is missing, report, draw.

    Parameters
    ----------
    paper : str, default "borders2024"
    quick : bool, default False
        Reduced sizes (:data:`QUICK`) for CI.
    out : path, optional
        Folder for figures and ``REPORT.md``; default ``figures/borders2024`` (quick:
        ``figures/borders2024/quick``), relative to the working directory.
    results : path, optional
        Folder of the stored evaluation; default ``<out>/results``.
    studies_dir : path, optional
        Folder of ``dies.toml`` (default: ``studies/borders2024`` of this repository).
    overrides : mapping, optional
        Dotted-key overrides of the die study (e.g. ``{"defects.short": 0.02}``).
    threads : int, optional
        Unused (the training and scoring are NumPy); accepted for the command line.
    formats : sequence of str, default ("png", "pdf")
    log : callable, optional
        Receives progress lines (default: stderr).
    data : path, optional
        Unused: the digits ship with scikit-learn. Accepted for the command line.

    Returns
    -------
    dict
        ``"results"``: the stored evaluation; ``"report"``: REPORT.md; ``"figures"``.
    """
    if paper not in PAPERS:
        raise ValueError(f"unknown paper {paper!r}: must be one of {', '.join(PAPERS)}")
    log = log or log_default
    out, results = output_folders(paper, quick, out, results)
    study = load_die_study(studies_dir, overrides)
    die_model(study)  # refuse a bad die model before anything is written
    path = ensure_results(study, results, QUICK if quick else FULL, log=log)
    with xr.open_dataset(path, engine="h5netcdf") as stored:
        ds = stored.load()
    report, figures = write_outputs(ds, out, write_report=write_report,
                                    draw_figures=draw_figures, quick=quick, formats=formats,
                                    log=log)
    return {"results": path, "report": report, "figures": figures}
