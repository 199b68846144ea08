"""Paper figure sets: simulate what is missing, then draw and report from stored results.

``mcmtj paper goodwill2022`` regenerates the figures and ``REPORT.md`` of the
passive-MTJ Wine study (Goodwill et al., Phys. Rev. Applied 18, 014039 (2022)):
the 300 NIST ternary solutions and 300 mcmtj-trained ternary and binary solutions
of a 13 x 6 x 3 perceptron written into 15 x 15 passive MTJ arrays of four device
sizes, tuned on the read-out gain Gnorm.

The work is split in steps that only meet through files:

1. :func:`resolve_nist_data` finds and verifies the NIST data before anything is written;
2. :func:`ensure_results` simulates each study of ``studies/goodwill2022`` whose
   stored result (``<results>/<name>.nc``) is missing or was made from a different
   study, and samples the device resistances shown in the R_P/R_AP figure
   (:func:`device_samples`, NumPy functions of :mod:`mcmtj.physics.device`);
3. the analysis step (stored as ``<set>_analysis.nc``) rebuilds per-sample predictions
   from the read-back conductances (:func:`readback_analysis`), tunes by K-fold
   cross-validation on the training split (:func:`cv_accuracy`), fits the pre-deployment
   predictor (:func:`calibration_predictor`), compares every metric with write fidelity
   (:func:`metric_comparison`, paired cluster bootstrap) and computes intervals that cover
   the test set (:func:`test_set_intervals`) and the size effect (:func:`size_effect`);
4. :func:`write_report` and :func:`draw_figures` read the stored files only; the report's
   "Reading" is generated from the intervals, nothing is typed by hand.

``quick=True`` runs a reduced version of the same studies (fewer solutions and
instances, see :data:`QUICK`) for CI; its files go to their own folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import xarray as xr

from mcmtj.analysis._np import (
    bootstrap_solutions_and_samples,
    cv_tuned_correct,
    exact_transform,
    paired_cluster_bootstrap,
    readback_predictions,
)
from mcmtj.analysis.metrics import tune, yield_fraction
from mcmtj.config import Study, load_study
from mcmtj.networks.datasets import NIST_WINE_ENV, DatasetError, find_nist_wine, verify_nist_wine
from mcmtj.numerics import _jit
from mcmtj.papers._common import (
    figure_metadata,
    log_default,
    output_folders,
    repo_root,
    write_outputs,
)
from mcmtj.physics.circuit import transfer_matrix
from mcmtj.physics.device import (
    MIN_DIAMETER,
    nominal_conductances,
    sample_parallel_conductance,
    tmr_at_bias,
)
from mcmtj.run import schema
from mcmtj.run.block import pack, prepare
from mcmtj.run.engine import simulate
from mcmtj.run.provenance import same_simulation
from mcmtj.run.reader import open_results
from mcmtj.run.results import save

__all__ = [
    "PAPERS",
    "SETS",
    "PAPER_TARGET",
    "PAPER_ACCURACY",
    "TARGET_NAME",
    "YIELD_TARGETS",
    "RANKED_METRICS",
    "CV_FOLDS",
    "QUICK",
    "resolve_nist_data",
    "load_studies",
    "device_samples",
    "ensure_results",
    "open_stored",
    "readback_analysis",
    "cv_accuracy",
    "test_split_accuracy",
    "test_set_intervals",
    "calibration_predictor",
    "metric_comparison",
    "size_effect",
    "write_report",
    "draw_figures",
    "main",
]

#: Paper figure sets this module knows.
PAPERS = ("goodwill2022",)

#: Study file stem -> label of the solution set (order of figures and report).
SETS = {
    "nist": "NIST ternary",
    "trained_ternary": "mcmtj ternary",
    "trained_binary": "mcmtj binary",
}

#: The paper's headline, as counts: 141 of the 148 samples of the NIST training split.
PAPER_TARGET = (141, 148)
#: The same as a fraction (95.27 %), reached when accuracy >= 141/148.
PAPER_ACCURACY = PAPER_TARGET[0] / PAPER_TARGET[1]
#: The one name the report gives the paper's target.
TARGET_NAME = f"the paper's target ({PAPER_TARGET[0]}/{PAPER_TARGET[1]} = 95.3 %)"
#: Accuracy targets of the test-split yield table.
YIELD_TARGETS = (0.90, 0.95)
#: Folds of the cross-validated tuning on the training split, and their shuffling seed.
CV_FOLDS = 4
CV_SEED = 2022
#: Name of the pre-deployment predictor in the metric comparison.
PREDICTOR = "calibration_predictor"
#: Per-instance metrics compared with write fidelity (those missing or constant in a
#: result set are left out; exact transforms of an earlier one are merged into it).
RANKED_METRICS = (
    schema.WRITE_FIDELITY,
    schema.WEIGHT_FIDELITY,
    schema.SENSITIVITY_FIDELITY,
    schema.CURRENT_RMSE,
    schema.N_WRITE_ERRORS,
    schema.N_DISTURBS,
    schema.N_STUCK,
    schema.N_SHORT,
    schema.N_OPEN,
    schema.AGREEMENT,
)
#: Measured on the scored samples themselves: reported, never a candidate predictor.
DIAGNOSTICS = (schema.AGREEMENT,)
#: Direction fixed before looking at the data: +1 when a larger value should mean a
#: more accurate array, -1 for error measures and counts.
ORIENTATION = {
    schema.WRITE_FIDELITY: 1, schema.WEIGHT_FIDELITY: 1, schema.SENSITIVITY_FIDELITY: 1,
    schema.AGREEMENT: 1, PREDICTOR: 1, schema.CURRENT_RMSE: -1, schema.N_WRITE_ERRORS: -1,
    schema.N_DISTURBS: -1, schema.N_STUCK: -1, schema.N_SHORT: -1, schema.N_OPEN: -1,
}
#: Overrides of the ``quick`` run (CI): fewer solutions, instances, epochs, bootstraps.
QUICK = {
    "solutions": 24,
    "instances": 8,
    "epochs": 60,
    "n_boot": 200,
    "n_boot_paired": 100,
    "device_samples": 1000,
}
_FULL = {"n_boot": 1000, "n_boot_paired": 250, "device_samples": 5000}
_ANALYSIS_VERSION = 3  # bump when the stored analysis changes meaning
_BEFORE_GNORM = 1.0
_BOOT_SEED = 2022
_POOLED = (schema.SOLUTION, schema.INSTANCE)
_DEVICES = "devices"


def _check_paper(paper: str) -> None:
    if paper not in PAPERS:
        raise ValueError(f"unknown paper {paper!r}: must be one of {', '.join(PAPERS)}")


# ------------------------------------------------------------------------- studies


def load_studies(
    paper: str = "goodwill2022",
    quick: bool = False,
    studies_dir: str | Path | None = None,
    overrides: Mapping[str, object] | None = None,
) -> dict[str, Study]:
    """The studies of a paper figure set, as :data:`SETS` names them.

    Parameters
    ----------
    paper : str, default "goodwill2022"
    quick : bool, default False
        Reduce each study to :data:`QUICK` (the first ``solutions`` NIST solutions, or
        that many trained for ``epochs``; ``instances`` per solution and size).
    studies_dir : path, optional
        Folder of the study files (default: ``studies/<paper>`` of this repository).
    overrides : mapping, optional
        Dotted-key overrides applied to every study after loading (e.g.
        ``{"network.nist_path": "/data/nist-wine"}``).

    Returns
    -------
    dict
        Set name -> :class:`~mcmtj.config.Study`.

    Raises
    ------
    FileNotFoundError
        A study file is missing.
    ValueError
        A study lacks what the paper needs (a ``gnorm`` grid holding 1.0,
        ``eval_train``, a ``device.diameter`` sweep).
    """
    _check_paper(paper)
    folder = Path(studies_dir) if studies_dir is not None else repo_root() / "studies" / paper
    studies = {}
    for name in SETS:
        study = load_study(folder / f"{name}.toml", dict(overrides) if overrides else None)
        _check_study(name, study)
        if quick:
            reduced = {"run.instances": QUICK["instances"]}
            if study.network.source == "train":
                reduced.update(
                    {"network.n_solutions": QUICK["solutions"], "network.epochs": QUICK["epochs"]}
                )
            else:
                reduced["network.max_solutions"] = QUICK["solutions"]
            study = study.replace(**reduced)
        studies[name] = study
    return studies


def _check_study(name: str, study: Study) -> None:
    grid = study.network.gnorm
    if not isinstance(grid, list) or not any(np.isclose(g, _BEFORE_GNORM) for g in grid):
        raise ValueError(
            f"{name}: network.gnorm must be a list holding {_BEFORE_GNORM} "
            "(the untuned gain) to tune over"
        )
    if not study.network.eval_train:
        raise ValueError(f"{name}: network.eval_train must be true (tuning uses accuracy_train)")
    if study.network.eval_split != "test":
        raise ValueError(f"{name}: network.eval_split must be 'test' (the reported split)")
    if study.sweep_dims() != ["diameter"]:
        raise ValueError(f"{name}: the study must sweep device.diameter and nothing else")
    try:
        _check_linear_read(study)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def resolve_nist_data(studies: Mapping[str, Study], data: str | Path | None = None
                      ) -> dict[str, Study]:
    """Find and verify the NIST Wine data the studies need, before anything is written.

    The first that applies: ``data``; ``MCMTJ_NIST_WINE``; the studies' own
    ``network.nist_path`` (``../shared/data/nist-wine`` beside the repository) when it
    exists; the cache of :func:`mcmtj.networks.datasets.fetch_nist_wine`. The folder is checked
    against the committed SHA-256 manifest. Nothing is downloaded here.

    Returns
    -------
    dict
        The studies, with ``network.nist_path`` set to the folder found when it is not
        the one they name (so stored results stay reusable when it is).

    Raises
    ------
    mcmtj.networks.datasets.DatasetError
        No copy found (the message says how to get one), or a file missing or altered.
    """
    needs = {n: st for n, st in studies.items()
             if st.network.source == "nist" or st.network.dataset == "nist"}
    if not needs:
        return dict(studies)
    own = {n: Path(st.resolve_path(st.network.nist_path)) for n, st in needs.items()}
    explicit = data is not None or bool(os.environ.get(NIST_WINE_ENV))
    folder = find_nist_wine(data) if explicit else None
    if folder is None:
        present = [p for p in own.values() if p.is_dir()]
        folder = present[0] if present else find_nist_wine()
    if folder is None:
        where = next(iter(own.values()))
        raise DatasetError(
            f"NIST Wine data not found at {where} (the studies' network.nist_path), in "
            f"{NIST_WINE_ENV} or in the download cache: pass --data FOLDER, set "
            f"{NIST_WINE_ENV}, or fetch it once (needs the network): python -c \"import "
            "mcmtj.networks.datasets as d; print(d.fetch_nist_wine())\"")
    verify_nist_wine(folder)
    out = dict(studies)
    for n, st in needs.items():
        if not (own[n].is_dir() and own[n].samefile(folder)):
            out[n] = st.replace(**{"network.nist_path": str(Path(folder).resolve())})
    return out


# ------------------------------------------------------------------------- results


def device_samples(
    study: Study, n_devices: int = 5000, seed: int | None = None, voltage: float = 0.0
) -> xr.Dataset:
    """Sample device resistances R_P and R_AP at every sweep point of a study.

    Figure data preparation with the NumPy reference functions of
    :mod:`mcmtj.physics.device` and the design's variability model: diameter
    ``d ~ Normal(d0, sigma_d)``, ``RA ~ LogNormal(RA0, sigma_RA)``, ``R_P = RA / A(d)``,
    ``TMR ~ Normal(TMR0, sigma_TMR)`` (clipped at 0), ``R_AP = R_P (1 + TMR(V))``.

    Parameters
    ----------
    study : Study
        Its ``device`` section and sweep (e.g. over ``device.diameter``) are used.
    n_devices : int, default 5000
        Devices per sweep point.
    seed : int, optional
        Default: ``study.run.seed``. Point ``p`` draws from ``default_rng([seed, p])``.
    voltage : float, default 0.0
        Bias at which the TMR is taken, V. 0 matches the ideal read of the engine.

    Returns
    -------
    xarray.Dataset
        ``r_parallel`` and ``r_antiparallel`` (ohm), dims (sweep dims..., ``device``).
    """
    seed = study.run.seed if seed is None else seed
    dims = study.sweep_dims()
    rp = np.empty((int(np.prod(study.sweep_shape, dtype=int)), n_devices))
    rap = np.empty_like(rp)
    for p, point in study.points():
        d = point.device
        rng = np.random.default_rng([seed, p])
        z = rng.standard_normal((3, n_devices))
        if d.variation:
            g_p, _ = sample_parallel_conductance(
                z[0], z[1], d.diameter, d.diameter_sigma, d.resistance_area, d.resistance_area_sigma
            )
            tmr0 = np.maximum(d.tmr + d.tmr_sigma * z[2], 0.0)
        else:
            g_p, _ = sample_parallel_conductance(
                0 * z[0], 0 * z[1], max(d.diameter, MIN_DIAMETER), 0.0, d.resistance_area, 0.0
            )
            tmr0 = np.full(n_devices, d.tmr)
        rp[p] = 1.0 / g_p
        rap[p] = rp[p] * (1.0 + tmr_at_bias(tmr0, voltage, d.tmr_bias_voltage))
    shape = (*study.sweep_shape, n_devices)
    coords = {dim: np.asarray(values) for dim, (_, values) in zip(dims, study.sweep, strict=True)}
    attrs = {"long_name": "", "units": "ohm"}
    ds = xr.Dataset(
        {
            "r_parallel": (
                (*dims, "device"),
                rp.reshape(shape),
                {**attrs, "long_name": "parallel-state resistance"},
            ),
            "r_antiparallel": (
                (*dims, "device"),
                rap.reshape(shape),
                {**attrs, "long_name": "antiparallel-state resistance"},
            ),
        },
        coords=coords,
    )
    return ds.assign_attrs(
        study=study.to_toml(), seed=str(seed), voltage=voltage, n_devices=n_devices,
        simulation_sha256=_jit.SIMULATION_STAMP,
    )


def _stored_attrs(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            return dict(ds.attrs)
    except (OSError, ValueError):
        return None


def _compress(ds: xr.Dataset) -> xr.Dataset:
    """Ask the netCDF writer for lossless gzip (accuracies take few distinct values)."""
    for var in ds.data_vars.values():
        var.encoding.update(zlib=True, complevel=4, shuffle=True)
    return ds


def ensure_results(
    studies: Mapping[str, Study],
    results_dir: str | Path,
    *,
    n_device_samples: int = _FULL["device_samples"],
    threads: int | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Path]:
    """Simulate every study whose stored result is missing or stale; sample the devices.

    A stored ``<results_dir>/<name>.nc`` is reused when its ``study`` attr equals the
    study's TOML (same configuration and seed) and its ``simulation_sha256`` the running
    package's (so a physics change is never reported from old results); anything else
    is simulated again with :func:`mcmtj.simulate` and saved with :func:`mcmtj.save`
    (gzip-compressed).
    ``devices.nc`` holds :func:`device_samples` of the first study.

    Parameters
    ----------
    studies : mapping of str to Study
        From :func:`load_studies`.
    results_dir : path
        Created if missing.
    n_device_samples : int
        Devices per size for the resistance histograms.
    threads : int, optional
        Numba threads (results do not depend on it).
    log : callable, optional
        Receives one line per step (default: stderr).

    Returns
    -------
    dict
        Set name (and ``"devices"``) -> path of the stored file.
    """
    log = log or log_default
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, study in studies.items():
        path = results_dir / f"{name}.nc"
        attrs = _stored_attrs(path)
        if same_simulation(attrs, study):
            log(f"{name}: using stored {path}")
        else:
            if attrs is not None and attrs.get("study") == study.to_toml():
                log(f"{name}: stored {path} was simulated by other mcmtj code (simulation_sha256 "
                    f"{str(attrs.get('simulation_sha256'))[:12]}), simulating again")
            shape = " x ".join(str(n) for n in study.sweep_shape)
            log(f"{name}: simulating {shape} sizes x {study.run.instances} instances per solution")
            ds = simulate(study, threads=threads, progress=None)
            save(_compress(ds), path)
            log(f"{name}: wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
        paths[name] = path
    first = next(iter(studies.values()))
    path = results_dir / f"{_DEVICES}.nc"
    attrs = _stored_attrs(path)
    if not (same_simulation(attrs, first) and int(attrs.get("n_devices", -1)) == n_device_samples):
        save(_compress(device_samples(first, n_device_samples)), path)
        log(f"devices: wrote {path}")
    paths[_DEVICES] = path
    return paths


def open_stored(results_dir: str | Path) -> dict[str, xr.Dataset]:
    """Open what :func:`ensure_results` (and the analysis step) stored.

    Parameters
    ----------
    results_dir : path
        Folder holding ``<set>.nc`` for every set of :data:`SETS`, ``devices.nc`` and,
        once analysed, ``<set>_analysis.nc``.

    Returns
    -------
    dict
        Set name, ``"devices"`` and (when stored) ``"<set>_analysis"`` -> Dataset,
        loaded into memory.

    Raises
    ------
    FileNotFoundError
        A set's results or the device samples are missing.
    """
    results_dir = Path(results_dir)
    out = {name: open_results(results_dir / f"{name}.nc") for name in SETS}
    out[_DEVICES] = open_results(results_dir / f"{_DEVICES}.nc")
    for name in SETS:
        path = results_dir / f"{name}_analysis.nc"
        if path.is_file():
            out[f"{name}_analysis"] = open_results(path)
    return out


# ------------------------------------------------------------------------- analysis


def _size_dim(ds: xr.Dataset) -> str:
    dims = [d for d in ds[schema.ACCURACY].dims if d not in (*_POOLED, schema.GNORM)]
    if len(dims) != 1:
        raise ValueError(f"expected one sweep dim (device diameter), got {dims}")
    return dims[0]


def _before(ds: xr.Dataset) -> xr.DataArray:
    return ds[schema.ACCURACY].sel({schema.GNORM: _BEFORE_GNORM})


# ------------------------------------------------------------------------- read-back


def _fold_ids(y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Stratified fold number of every sample (scikit-learn, shuffled with ``seed``)."""
    from sklearn.model_selection import StratifiedKFold

    out = np.empty(len(y), np.int64)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (_, held) in enumerate(splitter.split(np.zeros((len(y), 1)), y)):
        out[held] = k
    return out


def _check_linear_read(study: Study) -> None:
    rd = study.read
    if not study.network.readback:
        raise ValueError("the study must set network.readback = true (the report rebuilds "
                         "per-sample predictions from the read-back conductances)")
    if rd.bias_tmr or rd.noise > 0 or rd.offset_sigma > 0:
        raise ValueError("the report needs a linear read (read.bias_tmr false, read.noise 0, "
                         "read.offset_sigma 0): only then do the read-back conductances "
                         "determine every prediction")


def _nominal_wire_gain(study: Study, pk, target: np.ndarray, n_solutions: int = 20
                       ) -> np.ndarray:
    """Per size: the read-back gain of nominal arrays (every device at its nominal
    conductance and written right; unused cells AP) through the study's line resistance
    alone, via :func:`mcmtj.physics.circuit.transfer_matrix`; 1 without wires. Median over the
    first ``n_solutions`` solutions."""
    out = []
    S = min(n_solutions, pk.states.shape[0])
    for _, point in study.points():
        g_p, g_ap = nominal_conductances(point.device)
        rows, cols = point.array.rows, point.array.cols
        r_row = point.read.r_row + point.read.r_wire
        r_col = point.read.r_col + point.read.r_wire
        gains = []
        for s in range(S):
            weff = []
            for l, (n_in, n_out) in enumerate(zip(pk.layer_in, pk.layer_out, strict=True)):
                G = np.full((rows, cols), g_ap)
                G[:n_in, :2 * n_out] = np.where(pk.states[s, l, :n_in, :2 * n_out] == 1,
                                                g_p, g_ap)
                T = transfer_matrix(G, r_row, r_col)  # (cols, rows)
                weff.append(((T[0:2 * n_out:2, :n_in] - T[1:2 * n_out:2, :n_in]).T
                             / (g_p - g_ap)).ravel())
            weff = np.concatenate(weff)
            w = target[s]
            gains.append(float((weff * w).sum() / (w * w).sum()))
        out.append(np.median(gains))
    return np.array(out)


def readback_analysis(ds: xr.Dataset, study: Study, folds: int = CV_FOLDS,
                      seed: int = CV_SEED, prepared=None, block: int = 25) -> xr.Dataset:
    """Per-sample results rebuilt from the stored read-back conductances.

    With a linear read the conductances a one-hot calibration read measures
    (``readback_conductance``) fix every prediction
    (:func:`mcmtj.analysis._np.readback_predictions`); this rebuilds them for both
    splits and every gain, so that the 148-sample training split can be scored with
    K-fold cross-validated tuning and the test split can be resampled.

    Parameters
    ----------
    ds : xarray.Dataset
        Stored results of ``study`` with ``readback_conductance`` (dims size, solution,
        instance, device) and a ``gnorm`` grid.
    study : Study
        The study that made ``ds`` (data, solutions, device per size).
    folds : int, default :data:`CV_FOLDS`
        Stratified folds of the training split (``K``).
    seed : int
        Fold shuffling seed.
    prepared : mcmtj.run.block.Prepared, optional
        Pre-loaded solutions and data.
    block : int
        Solutions per vectorised block (memory ~ block x instances x samples).

    Returns
    -------
    xarray.Dataset
        ``fold_correct`` (size, solution, instance, gnorm, fold): training-split samples
        of each fold classified right; ``test_correct`` (..., gnorm, sample): test
        sample right or not; ``train_margin`` (..., gnorm): mean margin on the training
        split; ``effective_gain`` and ``weight_spread`` (size, solution, instance): slope
        of the read-back weights on the target weights and the RMS scatter about it, in
        units of that slope; ``sw_fold_correct`` (solution, gnorm, fold) and
        ``sw_test_correct`` (solution, gnorm, sample) of the software network; attrs
        ``mismatch_test``/``mismatch_train``: (instance, gain) pairs whose rebuilt
        accuracy differs from the engine's (0 expected), ``folds``, ``fold_seed``.
    """
    _check_linear_read(study)
    prep = prepared or prepare(study)
    pk = pack(prep, study)
    sol = prep.solutions
    kw = {"hidden_sign": sol.hidden_activation == "sign",
          "out_tanh": sol.output_activation == "tanh"}
    dim = _size_dim(ds)
    gnorms = [float(g) for g in ds[schema.GNORM].values]
    y_te, y_tr = pk.y_eval, pk.y_train
    fold = _fold_ids(y_tr, folds, seed)
    P, S, I = ds.sizes[dim], ds.sizes[schema.SOLUTION], ds.sizes[schema.INSTANCE]
    G, N_te = len(gnorms), y_te.size
    layer_in, layer_out = pk.layer_in, pk.layer_out
    # target weights in device-pair order (layer-major, row, output)
    shapes = enumerate(zip(layer_in, layer_out, strict=True))
    target = np.concatenate([pk.weights[:, l, :n_in, :n_out].reshape(S, -1)
                             for l, (n_in, n_out) in shapes], axis=1)
    fold_correct = np.empty((P, S, I, G, folds), np.int16)
    test_correct = np.empty((P, S, I, G, N_te), np.bool_)
    margin = np.empty((P, S, I, G))
    gain = np.empty((P, S, I))
    spread = np.empty((P, S, I))
    mism_te = mism_tr = 0
    g_all = ds[schema.READBACK_CONDUCTANCE].transpose(dim, schema.SOLUTION, schema.INSTANCE,
                                                      schema.DEVICE)
    for p, point in study.points():
        g_p, g_ap = nominal_conductances(point.device)
        threshold = point.network.threshold if point.network.threshold != 0.0 else sol.threshold
        inv_dg = 1.0 / (g_p - g_ap)  # the engine's nominal G_P - G_AP (its F_DG_NOM)
        for s0 in range(0, S, block):
            s1 = min(S, s0 + block)
            g = np.asarray(g_all[p, s0:s1].values, dtype=np.float64)
            bias = pk.bias[s0:s1, None]
            pred_te = readback_predictions(g, layer_in, layer_out, inv_dg, bias, pk.X_eval,
                                           gnorms, threshold=threshold, **kw)
            pred_tr, marg = readback_predictions(g, layer_in, layer_out, inv_dg, bias,
                                                 pk.X_train, gnorms, threshold=threshold,
                                                 y=y_tr, **kw)
            ok_te = pred_te == y_te
            ok_tr = pred_tr == y_tr
            test_correct[p, s0:s1] = ok_te
            for k in range(folds):
                fold_correct[p, s0:s1, ..., k] = ok_tr[..., fold == k].sum(axis=-1)
            margin[p, s0:s1] = marg
            mism_te += int(np.sum(~np.isclose(ok_te.mean(-1),
                                              ds[schema.ACCURACY][p, s0:s1].values,
                                              rtol=0, atol=1e-12)))
            mism_tr += int(np.sum(~np.isclose(ok_tr.mean(-1),
                                              ds[schema.ACCURACY_TRAIN][p, s0:s1].values,
                                              rtol=0, atol=1e-12)))
            # read-back weights against the targets: the array's gain and scatter
            k = 0
            weff = []
            for n_in, n_out in zip(layer_in, layer_out, strict=True):
                gl = g[..., k:k + n_in * 2 * n_out].reshape(*g.shape[:-1], n_in, 2 * n_out)
                k += n_in * 2 * n_out
                weff.append(((gl[..., 0::2] - gl[..., 1::2]) * inv_dg).reshape(*g.shape[:-1],
                                                                                 -1))
            weff = np.concatenate(weff, axis=-1)
            w = target[s0:s1, None, :]
            slope = (weff * w).sum(-1) / (w * w).sum(-1)
            gain[p, s0:s1] = slope
            spread[p, s0:s1] = np.sqrt(((weff - slope[..., None] * w) ** 2).mean(-1)) / slope
    wire_gain = _nominal_wire_gain(study, pk, target)
    # the software network: the same forward pass on the target weights
    g_sw = np.zeros((S, target.shape[1] * 2))
    g_sw[:, 0::2] = target
    sw_te = readback_predictions(g_sw, layer_in, layer_out, 1.0, pk.bias, pk.X_eval, gnorms,
                                 threshold=sol.threshold, **kw) == y_te
    sw_tr = readback_predictions(g_sw, layer_in, layer_out, 1.0, pk.bias, pk.X_train, gnorms,
                                 threshold=sol.threshold, **kw) == y_tr
    sw_fold = np.stack([sw_tr[..., fold == k].sum(-1) for k in range(folds)], axis=-1)
    inst = (dim, schema.SOLUTION, schema.INSTANCE)
    coords = {dim: ds[dim].values, schema.SOLUTION: ds[schema.SOLUTION].values,
              schema.INSTANCE: ds[schema.INSTANCE].values, schema.GNORM: gnorms,
              "fold": np.arange(folds), "sample": np.arange(N_te)}
    out = xr.Dataset(
        {
            "fold_correct": ((*inst, schema.GNORM, "fold"), fold_correct),
            "test_correct": ((*inst, schema.GNORM, "sample"), test_correct.astype(np.int8)),
            "train_margin": ((*inst, schema.GNORM), margin),
            "effective_gain": (inst, gain),
            "weight_spread": (inst, spread),
            "sw_fold_correct": ((schema.SOLUTION, schema.GNORM, "fold"), sw_fold.astype(np.int16)),
            "sw_test_correct": ((schema.SOLUTION, schema.GNORM, "sample"), sw_te.astype(np.int8)),
            "fold_size": ("fold", np.bincount(fold, minlength=folds)),
            "nominal_wire_gain": ((dim,), wire_gain),
        },
        coords=coords,
    )
    return out.assign_attrs(folds=folds, fold_seed=seed, n_train=int(y_tr.size),
                            n_test=int(N_te), mismatch_test=mism_te, mismatch_train=mism_tr,
                            pairs=int(P * S * I * G))


# ------------------------------------------------------------------------- statistics


def cv_accuracy(dv: xr.Dataset) -> dict[str, xr.DataArray]:
    """Accuracy on the training split (the paper's 148 samples) with K-fold CV tuning.

    For each held-out fold the gain is chosen per instance on the other K-1 folds and
    the fold is scored at it (:func:`mcmtj.analysis._np.cv_tuned_correct`); the same for
    the software network per solution. Also the untuned hardware (Gnorm 1).

    Returns
    -------
    dict
        ``"tuned"``, ``"before"`` (size, solution, instance) and ``"software"``
        (solution,), fractions of the split.
    """
    n = int(dv.attrs["n_train"])
    fc = dv["fold_correct"]
    tuned, _ = cv_tuned_correct(fc.values)
    sw, _ = cv_tuned_correct(dv["sw_fold_correct"].values)
    before = fc.sel({schema.GNORM: _BEFORE_GNORM}).sum("fold") / n
    return {
        "tuned": xr.DataArray(tuned / n, coords=before.coords, dims=before.dims),
        "before": before,
        "software": xr.DataArray(sw / n, dims=(schema.SOLUTION,),
                                 coords={schema.SOLUTION: dv[schema.SOLUTION].values}),
    }


def _tuned_index(ds: xr.Dataset) -> xr.DataArray:
    return tune(ds, per="instance")[f"{schema.GNORM}_index"]


def test_split_accuracy(ds: xr.Dataset) -> dict[str, xr.DataArray]:
    """Accuracy on the 30-sample test split: Gnorm 1, and the gain chosen per instance on
    the whole training split; the software network tuned the same way (on its training
    accuracy, per solution)."""
    sw = tune(ds[[schema.SOFTWARE_ACCURACY, schema.SOFTWARE_ACCURACY_TRAIN]]
              .isel({_size_dim(ds): 0}, drop=True),
              select_on=schema.SOFTWARE_ACCURACY_TRAIN, report=schema.SOFTWARE_ACCURACY,
              per="instance")[schema.SOFTWARE_ACCURACY]
    return {"before": _before(ds), "tuned": tune(ds, per="instance")[schema.ACCURACY],
            "software": sw}


def _best_on(choose: xr.DataArray, report: xr.DataArray) -> xr.DataArray:
    """Median over instances of ``report`` for the solution whose median of ``choose`` is
    largest (first on ties), per size: a pick made on one split, reported on another."""
    pick = choose.median(schema.INSTANCE).argmax(schema.SOLUTION)
    return report.median(schema.INSTANCE).isel({schema.SOLUTION: pick})


def test_set_intervals(ds: xr.Dataset, dv: xr.Dataset, targets=YIELD_TARGETS,
                       n_boot: int = 1000, seed: int = _BOOT_SEED) -> xr.Dataset:
    """Yield and mean test accuracy per size and tuning, with both kinds of interval.

    ``wilson_*``: Monte Carlo over dies only (the solutions and the 30 test samples
    fixed). ``boot_*``: also another draw of solutions and of the test samples
    (:func:`mcmtj.analysis._np.bootstrap_solutions_and_samples`).
    """
    dim = _size_dim(ds)
    idx = _tuned_index(ds)
    tc = dv["test_correct"]
    g1 = list(dv[schema.GNORM].values).index(_BEFORE_GNORM)
    rows = []
    for tuning in ("Gnorm 1", "tuned per instance"):
        per_size = []
        for p in range(ds.sizes[dim]):
            c = tc.isel({dim: p}).values  # (S, I, G, N)
            if tuning == "Gnorm 1":
                c = c[:, :, g1]
            else:
                ix = idx.isel({dim: p}).values
                c = np.take_along_axis(c, ix[:, :, None, None], axis=2)[:, :, 0]
            b = bootstrap_solutions_and_samples(c.astype(bool), targets, n_boot=n_boot,
                                                seed=seed)
            acc = c.mean(-1)
            y = yield_fraction(xr.DataArray(acc, dims=(schema.SOLUTION, schema.INSTANCE)),
                               list(targets))
            per_size.append(xr.Dataset({
                "yield": ("target", b["yield"]),
                "wilson_low": ("target", y["yield_low"].values),
                "wilson_high": ("target", y["yield_high"].values),
                "boot_low": ("target", b["yield_low"]),
                "boot_high": ("target", b["yield_high"]),
                "mean": b["mean"], "mean_low": b["mean_low"], "mean_high": b["mean_high"],
                "n": int(y["n"].values[0]),
            }, coords={"target": list(targets)}))
        rows.append(xr.concat(per_size, dim=dim).assign_coords({dim: ds[dim].values}))
    return xr.concat(rows, dim="tuning").assign_coords(tuning=["Gnorm 1",
                                                               "tuned per instance"])


# ------------------------------------------------------------------------- metrics


def _features(ds: xr.Dataset, dv: xr.Dataset) -> tuple[np.ndarray, list[str]]:
    """Pre-deployment features per instance: (size x solution x instance, n_features).

    Everything here is measurable after writing an array and before using it: read-back
    states (write/weight fidelity and the sensitivity fidelity, whose weights come from
    the training split), counted pulses, the read-back weights' gain and scatter, and
    reads of the training split (the calibration set that also tunes the gain):
    accuracy and mean margin at every gain. Nothing of the test split enters.
    """
    dim = _size_dim(ds)
    inst = (dim, schema.SOLUTION, schema.INSTANCE)
    cols, names = [], []

    def add(name, da):
        v = da.transpose(*inst).values.ravel().astype(float)
        if np.all(v == v[0]):
            return  # constant: carries nothing
        cols.append(v)
        names.append(name)

    for m in (schema.WRITE_FIDELITY, schema.WEIGHT_FIDELITY, schema.SENSITIVITY_FIDELITY,
              schema.N_PULSES, schema.N_VERIFY_RETRIES, schema.READBACK_FIDELITY):
        if m in ds:
            add(m, ds[m])
    for g in ds[schema.GNORM].values:
        add(f"accuracy_train@{g:g}", ds[schema.ACCURACY_TRAIN].sel({schema.GNORM: g}))
        add(f"train_margin@{g:g}", dv["train_margin"].sel({schema.GNORM: g}))
    add("effective_gain", dv["effective_gain"])
    add("weight_spread", dv["weight_spread"])
    add("diameter", ds[dim].broadcast_like(ds[schema.WRITE_FIDELITY]))
    return np.stack(cols, axis=1), names


def calibration_predictor(ds: xr.Dataset, dv: xr.Dataset, n_splits: int = 5,
                          seed: int = 0, max_rows: int = 20000) -> xr.DataArray:
    """Out-of-fold prediction of each instance's tuned test accuracy from pre-deployment
    measurements (:func:`_features`), fitted on some solutions and scored on others.

    A gradient-boosted regression (scikit-learn ``HistGradientBoostingRegressor``) is fitted
    with ``GroupKFold`` over solutions: every instance's prediction comes from a model that
    saw none of its solution's instances (at any size); each fold's model is fitted on at
    most ``max_rows`` instances drawn at random from the other folds.

    Returns
    -------
    xarray.DataArray
        Dims (size, solution, instance); attrs ``features``, ``n_splits``.
    """
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.model_selection import GroupKFold

    dim = _size_dim(ds)
    X, names = _features(ds, dv)
    target = tune(ds, per="instance")[schema.ACCURACY]
    like = ds[schema.WRITE_FIDELITY].transpose(dim, schema.SOLUTION, schema.INSTANCE)
    y = target.transpose(*like.dims).values.ravel()
    groups = np.broadcast_to(ds[schema.SOLUTION].values[None, :, None], like.shape).ravel()
    pred = np.empty_like(y)
    n_splits = min(n_splits, ds.sizes[schema.SOLUTION])
    rng = np.random.default_rng(seed)
    for train, held in GroupKFold(n_splits=n_splits).split(X, y, groups):
        if train.size > max_rows:  # a random subset fits as well, in a fraction of the time
            train = np.sort(rng.choice(train, size=max_rows, replace=False))
        model = HistGradientBoostingRegressor(max_iter=100, random_state=seed)
        model.fit(X[train], y[train])
        pred[held] = model.predict(X[held])
    return xr.DataArray(pred.reshape(like.shape), coords=like.coords, dims=like.dims,
                        name=PREDICTOR).assign_attrs(features=" ".join(names),
                                                     n_splits=n_splits)


def metric_comparison(ds: xr.Dataset, predictor: xr.DataArray | None = None,
                      n_boot: int = 1000, seed: int = _BOOT_SEED,
                      metrics=RANKED_METRICS) -> xr.Dataset:
    """Each metric's Spearman rho with the tuned test accuracy and its paired difference
    to write fidelity, with a cluster bootstrap over solutions.

    Pooled over sizes, solutions and instances; each replicate resamples whole solutions
    (:func:`mcmtj.analysis._np.paired_cluster_bootstrap`). Metrics constant in the set are
    dropped; a metric that is an exact monotone transform of one listed before it (e.g.
    ``n_write_errors`` of ``write_fidelity`` without defects) is merged into it (attr
    ``merged``). Differences compare oriented correlations (:data:`ORIENTATION`), so an
    error count that falls as accuracy rises counts as predictive. ``agreement`` is in
    the output with ``diagnostic = True``: it is measured on the scored samples and is
    not a candidate.

    Returns
    -------
    xarray.Dataset
        Dim ``metric``: ``rho``, ``rho_low``, ``rho_high``, ``diff``, ``diff_low``,
        ``diff_high``, ``diagnostic``; attrs ``merged`` ("a=b; ..."), ``n_boot``, ``seed``,
        ``n_clusters``, ``n``.
    """
    dim = _size_dim(ds)
    inst = (dim, schema.SOLUTION, schema.INSTANCE)
    with_gain = [m for m in metrics if m in ds and schema.GNORM in ds[m].dims]
    tuned = tune(ds, per="instance", report=[schema.ACCURACY, *with_gain])
    y = tuned[schema.ACCURACY].transpose(*inst).values.ravel()
    cols, names, merged = [], [], []
    candidates = [(m, tuned[m] if m in with_gain else ds[m]) for m in metrics if m in ds]
    if predictor is not None:
        candidates.append((PREDICTOR, predictor))
    for m, da in candidates:
        v = da.broadcast_like(ds[schema.WRITE_FIDELITY]).transpose(*inst).values.ravel()
        v = v.astype(float)
        if np.all(v == v[0]):
            continue
        twin = next((n for n, c in zip(names, cols, strict=True) if exact_transform(c, v)),
                    None)
        if twin is not None:
            merged.append(f"{twin}={m}")
            continue
        cols.append(v)
        names.append(m)
    if schema.WRITE_FIDELITY not in names:
        raise ValueError("write_fidelity varies in no instance: nothing to compare with")
    ref = names.index(schema.WRITE_FIDELITY)
    clusters = np.broadcast_to(ds[schema.SOLUTION].values[None, :, None],
                               ds[schema.WRITE_FIDELITY].transpose(*inst).shape).ravel()
    out = paired_cluster_bootstrap(np.stack(cols), y, clusters, reference=ref, n_boot=n_boot,
                                   seed=seed, orientation=[ORIENTATION.get(m, 1) for m in names])
    data = {k: ("metric", out[k]) for k in ("rho", "rho_low", "rho_high", "diff", "diff_low",
                                             "diff_high")}
    data["diagnostic"] = ("metric", np.array([m in DIAGNOSTICS for m in names]))
    return xr.Dataset(data, coords={"metric": np.asarray(names, dtype=str)}).assign_attrs(
        merged="; ".join(merged), n_boot=int(n_boot), seed=str(seed),
        n_clusters=int(out["n_clusters"]), n=int(out["n"]),
        target="accuracy tuned per instance (gain chosen on the training split), test split")


def size_effect(ds: xr.Dataset, dv: xr.Dataset) -> xr.Dataset:
    """What changes with device size: per size, medians of the read-back weights' gain
    and scatter, of the gain chosen per instance, the device resistance, and the yields
    at 90 % before and after tuning (the device resistance is in ``devices.nc``)."""
    pooled = (schema.SOLUTION, schema.INSTANCE)
    chosen = tune(ds, per="instance")[f"{schema.GNORM}_chosen"]
    y_before = yield_fraction(_before(ds), YIELD_TARGETS[0])
    y_tuned = yield_fraction(tune(ds, per="instance")[schema.ACCURACY], YIELD_TARGETS[0])
    return xr.Dataset({
        "effective_gain": dv["effective_gain"].median(pooled),
        "gain_q1": dv["effective_gain"].quantile(0.25, pooled).drop_vars("quantile"),
        "gain_q3": dv["effective_gain"].quantile(0.75, pooled).drop_vars("quantile"),
        "weight_spread": dv["weight_spread"].median(pooled),
        "nominal_wire_gain": dv["nominal_wire_gain"],
        "write_fidelity": ds[schema.WRITE_FIDELITY].median(pooled),
        "chosen_gnorm": chosen.median(pooled),
        "yield_before": y_before["yield"], "yield_tuned": y_tuned["yield"],
        "yield_before_low": y_before["yield_low"], "yield_before_high": y_before["yield_high"],
        "yield_tuned_low": y_tuned["yield_low"], "yield_tuned_high": y_tuned["yield_high"],
    })


def _analysis_stamp(datasets: Mapping[str, xr.Dataset], n_boot: int, n_paired: int) -> str:
    return (
        ";".join(
            f"{k}:{ds.attrs.get('created', '')}:{ds.attrs.get('seed', '')}"
            for k, ds in datasets.items()
        )
        + f";n_boot={n_boot};n_paired={n_paired};folds={CV_FOLDS};fold_seed={CV_SEED};"
        f"v={_ANALYSIS_VERSION};code={_jit.PACKAGE_STAMP}"
    )


def _ensure_analysis(results_dir: Path, studies: Mapping[str, Study],
                     datasets: Mapping[str, xr.Dataset], n_boot: int, n_paired: int,
                     log: Callable[[str], None]) -> dict[str, xr.Dataset]:
    """Compute (or reuse) per set: the read-back analysis (``<set>_readback.nc``), then
    the predictor, the metric comparison (``n_paired`` cluster-bootstrap replicates: each
    costs a pass over every instance per metric), the test-set intervals (``n_boot``
    replicates); stored as ``<set>_analysis.nc``."""
    out = {}
    for name, ds in datasets.items():
        path = results_dir / f"{name}_analysis.nc"
        stamp = _analysis_stamp({name: ds}, n_boot, n_paired)
        attrs = _stored_attrs(path)
        if attrs is not None and attrs.get("sources") == stamp:
            log(f"{name}: using stored {path}")
            out[name] = open_results(path)
            continue
        rb_path = results_dir / f"{name}_readback.nc"
        rb_stamp = _analysis_stamp({name: ds}, 0, 0)
        rb_attrs = _stored_attrs(rb_path)
        if rb_attrs is not None and rb_attrs.get("sources") == rb_stamp:
            dv = open_results(rb_path)
        else:
            log(f"{name}: rebuilding per-sample predictions from the read-back conductances")
            dv = readback_analysis(ds, studies[name]).assign_attrs(sources=rb_stamp)
            save(_compress(dv), rb_path)
        log(f"{name}: predictor, paired bootstrap ({n_paired} replicates), test-set "
            f"intervals ({n_boot} replicates)")
        pred = calibration_predictor(ds, dv)
        comp = metric_comparison(ds, pred, n_boot=n_paired)
        intervals = test_set_intervals(ds, dv, n_boot=n_boot)
        cv = cv_accuracy(dv)
        res = xr.Dataset({
            **{f"cv_{k}": v for k, v in cv.items()},
            PREDICTOR: pred,
            **{f"cmp_{k}": v for k, v in comp.data_vars.items()},
            **{f"int_{k}": v for k, v in intervals.data_vars.items()},
            **{f"size_{k}": v for k, v in size_effect(ds, dv).data_vars.items()},
        })
        res = res.assign_attrs(
            sources=stamp, folds=CV_FOLDS, fold_seed=CV_SEED, n_train=dv.attrs["n_train"],
            n_test=dv.attrs["n_test"], mismatch_test=dv.attrs["mismatch_test"],
            mismatch_train=dv.attrs["mismatch_train"], pairs=dv.attrs["pairs"],
            fold_sizes=" ".join(str(int(v)) for v in dv["fold_size"].values),
            merged=comp.attrs["merged"], n_boot=n_boot, n_boot_paired=n_paired,
            seed=str(_BOOT_SEED), n_clusters=comp.attrs["n_clusters"],
            features=pred.attrs["features"], predictor_splits=pred.attrs["n_splits"])
        save(_compress(res), path)
        out[name] = res
    return out


# ------------------------------------------------------------------------- report


def _set_sizes(sets: Mapping[str, xr.Dataset]):
    """``(name, size dim, size)`` of every set and each of its device sizes, in the order of
    the report's tables (set by set, sizes as stored)."""
    for name, ds in sets.items():
        dim = _size_dim(ds)
        for value in ds[dim].values:
            yield name, dim, value


def _pct(x: float, digits: int = 1) -> str:
    return "n/a" if not np.isfinite(x) else f"{100 * x:.{digits}f}"


def _nm(value: float) -> str:
    return f"{value * 1e9:g}"


def _iv(low: float, high: float, digits: int = 1) -> str:
    return f"[{_pct(low, digits)}, {_pct(high, digits)}]"


def _verdict(row) -> str:
    if bool(row["diagnostic"]):
        return "diagnostic (not ranked)"
    lo, hi = float(row["diff_low"]), float(row["diff_high"])
    if lo > 0:
        return "better"
    if hi < 0:
        return "worse"
    return "not distinguishable"


def _trend(values, unit_fmt) -> str:
    """'falls from a to b' / 'rises from a to b' (first to last size)."""
    a, b = float(values[0]), float(values[-1])
    word = "falls" if b < a else "rises" if b > a else "stays at"
    return f"{word} from {unit_fmt(a)} to {unit_fmt(b)}" if a != b else f"stays at {unit_fmt(a)}"


def _size_reading(name: str, ds: xr.Dataset, an: xr.Dataset, devices) -> list[str]:
    """The size effect in words, every number and direction read from the data."""
    dim = _size_dim(ds)
    sizes = ds[dim].values
    span = f"{_nm(sizes[0])} to {_nm(sizes[-1])} nm"
    gain = an["size_effective_gain"].values
    wires = an["size_nominal_wire_gain"].values
    wfid = an["size_write_fidelity"].values
    chosen = an["size_chosen_gnorm"].values
    spread = an["size_weight_spread"].values
    yb, yt = an["size_yield_before"].values, an["size_yield_tuned"].values
    lines = [
        f"- {SETS[name]}, {span}: yield at {100 * YIELD_TARGETS[0]:g} % at Gnorm 1 "
        f"{_trend(yb, lambda v: _pct(v) + ' %')}; tuned per instance it "
        f"{_trend(yt, lambda v: _pct(v) + ' %')}. The read-back weights' gain (slope on the "
        f"target weights, 1 = nominal) {_trend(gain, lambda v: f'{v:.3f}')}; for nominal, "
        f"rightly written arrays the wires alone give a gain that "
        f"{_trend(wires, lambda v: f'{v:.3f}')}; "
        f"the median write fidelity {_trend(wfid, lambda v: _pct(v) + ' %')}; the gain chosen "
        f"per instance {_trend(chosen, lambda v: f'{v:g}')}, and the scatter of the read-back "
        f"weights about that slope {_trend(spread, lambda v: f'{100 * v:.1f} %')}."
    ]
    if devices is not None and "r_parallel" in devices:
        rp = devices["r_parallel"].median("device").values
        lines[-1] += (f" The median device resistance R_P {_trend(rp, lambda v: f'{v:.0f} ohm')}"
                      f" while the wire resistance per cell stays fixed.")
    falls_before = yb[-1] < yb[0]
    wire_drop = wires[0] - wires[-1]
    gain_drop = gain[0] - gain[-1]
    written_no_worse = wfid[-1] >= wfid[0]
    tuned_holds = yt[-1] >= yt[0]
    if falls_before and wire_drop > 0 and wire_drop >= 0.5 * gain_drop > 0 and tuned_holds:
        lines.append(
            f"  Reading: the read-back gain falls by {gain_drop:.3f} from the smallest to the "
            f"largest devices, and nominal, rightly written arrays lose {wire_drop:.3f} through "
            "the wires alone: the larger devices have a lower resistance, so the same line "
            "resistance takes a larger share of the read current (IR drop), and at Gnorm 1 "
            "every layer's input to its activation is too small by that factor; "
            + ("the larger devices are not written worse (write fidelity does not fall); "
               if written_no_worse else "")
            + f"tuning the gain removes the loss (tuned yield {_pct(yt[-1])} % at "
            f"{_nm(sizes[-1])} nm); what is left after tuning follows the scatter.")
    elif falls_before:
        lines.append("  Reading: the yield at Gnorm 1 falls with size, but the wires' gain "
                     "error does not account for most of it here (see the table).")
    return lines


def write_report(stored: Mapping[str, xr.Dataset], path: str | Path, *, quick: bool = False) -> str:
    """Write ``REPORT.md`` from stored results and the stored analysis; every number and the
    generated reading come from them.

    Parameters
    ----------
    stored : mapping
        From :func:`open_stored` (the sets of :data:`SETS`, ``"devices"`` and
        ``"<set>_analysis"``).
    path : path
        File to write.
    quick : bool
        Whether these are the reduced CI results (said in the title and a banner).

    Returns
    -------
    str
        The report text.
    """
    sets = {name: stored[name] for name in SETS}
    an = {name: stored[f"{name}_analysis"] for name in SETS}
    devices = stored.get(_DEVICES)
    first, a0 = sets["nist"], an["nist"]
    grid = ", ".join(f"{g:g}" for g in sorted(first[schema.GNORM].values))
    n_test, n_train = int(a0.attrs["n_test"]), int(a0.attrs["n_train"])
    folds = int(a0.attrs["folds"])
    n_sol = sorted({ds.sizes[schema.SOLUTION] for ds in sets.values()})
    n_inst = sorted({ds.sizes[schema.INSTANCE] for ds in sets.values()})
    sol_txt = "/".join(str(v) for v in n_sol)
    title = (f"# Goodwill et al. 2022 with mcmtj: {sol_txt} Wine solutions per set on passive "
             "MTJ arrays" + (" (quick run)" if quick else ""))
    n_boot = int(a0.attrs["n_boot"])
    lines = [
        title,
        "",
        "Written by `mcmtj paper goodwill2022" + (" --quick" if quick else "") + "` from the "
        "stored results; do not edit by hand. Source: J. M. Goodwill et al., Phys. Rev. "
        "Applied 18, 014039 (2022) (arXiv 2112.09159). Studies: `studies/goodwill2022/`. "
        "Data: NIST daffodil-lib `examples/wine` (BSD-3 + NIST notice, see the README).",
        "",
    ]
    if quick:
        lines += [
            f"**Quick run (CI): {sol_txt} solutions per set, {'/'.join(map(str, n_inst))} "
            f"instances per solution and size, {n_boot} / {int(a0.attrs['n_boot_paired'])} "
            "bootstrap replicates; the numbers are a "
            "smoke test, not the study.**",
            "",
        ]
    lines += [
        "## Setup",
        "",
        "| set | solutions | instances per solution and size | seed | solutions from |",
        "|---|---|---|---|---|",
    ]
    for name, ds in sets.items():
        lines.append(
            f"| {SETS[name]} | {ds.sizes[schema.SOLUTION]} | "
            f"{ds.sizes[schema.INSTANCE]} | {ds.attrs.get('seed', '')} | "
            f"{ds.attrs.get('solutions', '')} |"
        )
    mism = ", ".join(f"{SETS[n]} {int(a.attrs['mismatch_test'])} + "
                     f"{int(a.attrs['mismatch_train'])}" for n, a in an.items())
    lines += [
        "",
        "- Device, write and read parameters are **assumed** (not published in what we have); "
        "the reasons are in the study files' headers. As stored with the results: "
        + _setup_text(first)
        + ".",
        f"- Two splits of the NIST Wine data: the {n_train}-sample training split, on which "
        f"the paper's 95.3 % = {PAPER_TARGET[0]}/{PAPER_TARGET[1]} is defined, and the "
        f"{n_test}-sample test split (accuracy in steps of {100 / n_test:.1f} %). "
        f"{TARGET_NAME[0].upper() + TARGET_NAME[1:]} is compared on the training split only. "
        "The training split is what the solutions were fitted on (the mcmtj sets by "
        "construction; the NIST files ship it as their training data), so accuracy there "
        "says how faithfully an array reproduces its trained network; the test split says "
        "how it generalises.",
        f"- Gains: *Gnorm 1* is the nominal gain, untuned; the grid is {{{grid}}}. "
        f"*CV-tuned* (training split): {folds}-fold stratified cross-validation (fold sizes "
        f"{a0.attrs['fold_sizes']}, seed {CV_SEED}); for each held-out fold the gain is "
        f"chosen per instance on the other {folds - 1} folds and the held-out fold is scored "
        "at it. *Tuned* (test split): the gain is chosen per instance on the whole training "
        "split and the test split is scored. The software network is tuned the same way "
        "(per solution). No scored sample enters any choice.",
        "- Per-sample predictions are rebuilt from each instance's read-back conductances "
        "(`readback_conductance`, what one-hot calibration reads measure; the read is linear); "
        "(instance, gain) pairs whose rebuilt accuracy differs from the engine's, test + "
        f"training split: {mism} (of {int(a0.attrs['pairs'])} per split for the NIST set).",
        "",
        f"## {TARGET_NAME[0].upper() + TARGET_NAME[1:]} on its own split",
        "",
        f"Accuracy on the {n_train}-sample training split in %, median (and mean) over "
        f"solutions x instances. *Reaching*: a solution whose median over its instances is "
        f">= {PAPER_TARGET[0]}/{PAPER_TARGET[1]}; an instance whose accuracy is. Interval: 95 % "
        "Wilson, Monte Carlo over dies only. *Best solution*: the solution with the highest "
        "median tuned accuracy on the test split, reported here (chosen on the other split).",
        "",
        "| set | diameter (nm) | software CV-tuned: median | software reaching | median at "
        "Gnorm 1 | median CV-tuned | mean CV-tuned | solutions reaching | instances reaching "
        "| 95 % interval | best solution (chosen on test) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    test_split = {name: test_split_accuracy(ds) for name, ds in sets.items()}
    for name, dim, value in _set_sizes(sets):
        a, tst, sel = an[name], test_split[name], {dim: value}
        tuned = a["cv_tuned"].sel(sel)
        sw = a["cv_software"]
        per_sol = tuned.median(schema.INSTANCE)
        y = yield_fraction(tuned, PAPER_ACCURACY)
        best = _best_on(tst["tuned"].sel(sel), tuned)
        lines.append(
            f"| {SETS[name]} | {_nm(value)} | {_pct(float(sw.median()))} | "
            f"{_pct(float((sw >= PAPER_ACCURACY - 1e-9).mean()))} | "
            f"{_pct(float(a['cv_before'].sel(sel).median()))} | "
            f"{_pct(float(tuned.median()))} | {_pct(float(tuned.mean()))} | "
            f"{_pct(float((per_sol >= PAPER_ACCURACY - 1e-9).mean()))} | "
            f"{_pct(float(y['yield']))} | {_iv(float(y['yield_low']), float(y['yield_high']))}"
            f" | {_pct(float(best))} |"
        )
    lines += [
        "",
        f"## Test split ({n_test} samples)",
        "",
        "Accuracy in %, median over solutions x instances, and the mean with two 95 % "
        "intervals: *dies only* (Monte Carlo over instances, solutions and test samples "
        f"fixed: normal approximation of the mean) and *+ solutions + test set* (bootstrap "
        f"over solutions and over the {n_test} test samples, {n_boot} replicates). *Best "
        "solution*: highest median CV-tuned accuracy on the training split, reported on the "
        "test split.",
        "",
        "| set | diameter (nm) | software tuned: median | median at Gnorm 1 | median tuned | "
        "mean tuned | dies only | + solutions + test set | best solution (chosen on training) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, dim, value in _set_sizes(sets):
        a, tst, sel = an[name], test_split[name], {dim: value}
        tuned = tst["tuned"].sel(sel)
        se = float(tuned.std()) / np.sqrt(tuned.size)
        m = float(tuned.mean())
        it = a["int_mean_low"].sel(sel).sel(tuning="tuned per instance")
        ih = a["int_mean_high"].sel(sel).sel(tuning="tuned per instance")
        best = _best_on(a["cv_tuned"].sel(sel), tuned)
        lines.append(
            f"| {SETS[name]} | {_nm(value)} | {_pct(float(tst['software'].median()))} | "
            f"{_pct(float(tst['before'].sel(sel).median()))} | {_pct(float(tuned.median()))}"
            f" | {_pct(m)} | {_iv(m - 1.96 * se, m + 1.96 * se)} | "
            f"{_iv(float(it), float(ih))} | {_pct(float(best))} |"
        )
    lines += [
        "",
        "## Yield on the test split",
        "",
        "Fraction of instances (all solutions pooled) whose test accuracy reaches the target, "
        "in %. *Dies only*: 95 % Wilson interval, Monte Carlo over dies with these solutions "
        f"and these {n_test} test samples fixed. *+ solutions + test set*: 95 % bootstrap "
        "interval that also redraws the solutions and the test samples.",
        "",
        "| set | diameter (nm) | target (%) | tuning | yield | dies only | "
        "+ solutions + test set | instances |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, dim, value in _set_sizes(sets):
        a = an[name]
        for target in a["target"].values:
            for tuning in a["tuning"].values:
                y = a.sel({dim: value, "target": target, "tuning": tuning})
                lines.append(
                    f"| {SETS[name]} | {_nm(value)} | {100 * target:g} | {tuning} | "
                    f"{_pct(float(y['int_yield']))} | "
                    f"{_iv(float(y['int_wilson_low']), float(y['int_wilson_high']))} | "
                    f"{_iv(float(y['int_boot_low']), float(y['int_boot_high']))} | "
                    f"{int(y['int_n'])} |"
                )
    lines += [
        "",
        "## Device size",
        "",
        "Per size, medians over solutions x instances: the read-back weights' gain (least-"
        "squares slope of the differential read-back conductance, in units of the nominal "
        "G_P - G_AP, on the target weights), the same gain for nominal arrays (every device "
        "nominal and written right) through the line resistance alone (circuit solve, median "
        "of 20 solutions), their scatter about that slope (RMS, relative "
        "to the slope), the gain chosen per instance on the training split, and the test-"
        f"split yield at {100 * YIELD_TARGETS[0]:g} % (Wilson, dies only). Figure: "
        "`fig8_size_effect`.",
        "",
        "| set | diameter (nm) | write fidelity (%) | read-back gain | interquartile | "
        "nominal array through the wires | scatter (%) | chosen Gnorm | "
        f"yield {100 * YIELD_TARGETS[0]:g} % at Gnorm 1 | tuned |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, dim, value in _set_sizes(sets):
        r = an[name].sel({dim: value})
        lines.append(
            f"| {SETS[name]} | {_nm(value)} | {_pct(float(r['size_write_fidelity']))} | "
            f"{float(r['size_effective_gain']):.3f} | "
            f"[{float(r['size_gain_q1']):.3f}, {float(r['size_gain_q3']):.3f}] | "
            f"{float(r['size_nominal_wire_gain']):.3f} | "
            f"{100 * float(r['size_weight_spread']):.1f} | "
            f"{float(r['size_chosen_gnorm']):g} | {_pct(float(r['size_yield_before']))} | "
            f"{_pct(float(r['size_yield_tuned']))} |"
        )
    lines.append("")
    for name, ds in sets.items():
        lines += _size_reading(name, ds, an[name], devices if name == "nist" else None)
    feats = a0.attrs.get("features", "")
    lines += [
        "",
        "## Which metric predicts the tuned accuracy",
        "",
        "Spearman rank correlation of each per-instance metric with the test accuracy tuned "
        "per instance, pooled over sizes, solutions and instances, and the difference of "
        "each metric's correlation from write fidelity's. Intervals: 95 % percentile, "
        f"{int(a0.attrs['n_boot_paired'])}-replicate *cluster* bootstrap that resamples whole "
        "solutions (instances "
        f"of one solution share its weights; seed {a0.attrs['seed']}); the differences are "
        "paired (the same replicates for every metric). Directions are fixed in advance "
        "(error counts and the current error count as predictive when they fall), so the "
        "difference compares strengths. A metric is called *better* or *worse* only when "
        "the interval of its difference excludes 0. Metrics constant in a set are left out; "
        "exact monotone transforms of each other are one metric (merged: "
        + "; ".join(f"{SETS[n]}: {a.attrs['merged'] or 'none'}" for n, a in an.items())
        + ").",
        f"- `{PREDICTOR}`: a pre-deployment predictor, gradient-boosted regression "
        f"(scikit-learn) fitted with {int(a0.attrs['predictor_splits'])}-fold GroupKFold over "
        "solutions (every prediction comes from a model that saw no instance of that "
        "solution), on what can be measured after writing and before use: "
        f"{', '.join(f'`{f}`' for f in feats.split())}. `accuracy_train@g` and "
        "`train_margin@g` are reads of the training split (the calibration set that also tunes "
        "the gain); no test sample enters. Its interval holds the fitted models fixed.",
        f"- `{schema.SENSITIVITY_FIDELITY}` weighs devices by accuracy lost on the training "
        "split (not the scored one). `current_rmse` uses the test split's inputs, not its "
        "labels. `agreement` is measured on the scored samples themselves: shown as a "
        "diagnostic, never ranked.",
        "",
        "| set | metric | rho | 95 % interval | rho - rho(write_fidelity), oriented | "
        "paired 95 % interval | vs write fidelity |",
        "|---|---|---|---|---|---|---|",
    ]
    reading = []
    for name, a in an.items():
        cmp = a[[v for v in a.data_vars if v.startswith("cmp_")]].rename(
            {v: v[4:] for v in a.data_vars if v.startswith("cmp_")})
        order = sorted(range(cmp.sizes["metric"]),
                       key=lambda k: (bool(cmp["diagnostic"][k]),
                                      -float(ORIENTATION.get(str(cmp["metric"][k].values), 1)
                                             * cmp["rho"][k])))
        better, worse, same = [], [], []
        for k in order:
            row = cmp.isel(metric=k)
            m = str(row["metric"].values)
            verdict = "reference" if m == schema.WRITE_FIDELITY else _verdict(row)
            diff_cells = ("-", "-") if m == schema.WRITE_FIDELITY else (
                f"{float(row['diff']):+.3f}",
                f"[{float(row['diff_low']):+.3f}, {float(row['diff_high']):+.3f}]")
            lines.append(
                f"| {SETS[name]} | {m} | {float(row['rho']):.3f} | "
                f"[{float(row['rho_low']):.3f}, {float(row['rho_high']):.3f}] | "
                f"{diff_cells[0]} | {diff_cells[1]} | {verdict} |"
            )
            item = f"{m} ({float(row['diff']):+.3f} [{float(row['diff_low']):+.3f}, " \
                   f"{float(row['diff_high']):+.3f}])"
            if verdict == "better":
                better.append(item)
            elif verdict == "worse":
                worse.append(item)
            elif verdict == "not distinguishable":
                same.append(item)
        wf = cmp.sel(metric=schema.WRITE_FIDELITY)
        text = (f"- {SETS[name]}: write fidelity rho {float(wf['rho']):.3f} "
                f"[{float(wf['rho_low']):.3f}, {float(wf['rho_high']):.3f}]. "
                f"Better than write fidelity (paired interval above 0): "
                f"{', '.join(better) or 'none'}. Not distinguishable from it: "
                f"{', '.join(same) or 'none'}. Worse: {', '.join(worse) or 'none'}.")
        if PREDICTOR in cmp["metric"].values:
            p = cmp.sel(metric=PREDICTOR)
            beats = float(p["diff_low"]) > 0
            text += (f" The pre-deployment predictor reaches rho {float(p['rho']):.3f} and "
                     + ("beats write fidelity" if beats else
                        "does NOT beat write fidelity (its paired interval is not above 0)")
                     + f" (difference {float(p['diff']):+.3f} [{float(p['diff_low']):+.3f}, "
                     f"{float(p['diff_high']):+.3f}]).")
        reading.append(text)
    # the paper's target, in words, from the same numbers as the table
    nist, a_n = sets["nist"], an["nist"]
    dim = _size_dim(nist)
    reach = [(float((a_n["cv_tuned"].sel({dim: v}).median(schema.INSTANCE)
                     >= PAPER_ACCURACY - 1e-9).mean()), v) for v in nist[dim].values]
    sw_reach = float((a_n["cv_software"] >= PAPER_ACCURACY - 1e-9).mean())
    reading.insert(0, (
        f"- {TARGET_NAME[0].upper() + TARGET_NAME[1:]}, on its own {n_train}-sample split with "
        f"{folds}-fold CV-tuned gain: "
        + ", ".join(f"{_pct(r)} % at {_nm(v)} nm" for r, v in reach)
        + f" of the NIST solutions reach it in the median over their arrays; in software "
        f"(tuned the same way) {_pct(sw_reach)} % do."))
    lines += ["", "## Reading", "", "Generated from the tables above.", "", *reading, ""]
    text = "\n".join(lines)
    Path(path).write_text(text, encoding="utf-8")
    return text


#: ``write.initial`` in words, for the report's setup line
_INITIAL_WORDS = {
    "ap": "as-fabricated random states reset to AP by one pulse of the same model",
    "ap_ideal": "all-AP (ideal reset)",
    "random": "as-fabricated random states (no reset)",
}


def _setup_text(ds: xr.Dataset) -> str:
    """The assumed device, write and read settings of a stored result, in words."""
    import tomllib

    st = tomllib.loads(ds.attrs["study"])
    dev, wr, rd, df = st["device"], st["write"], st["read"], st["defects"]
    parts = [
        f"RA {dev['resistance_area'] * 1e12:g} ohm um^2, TMR {100 * dev['tmr']:g} %, "
        f"sigma_d {dev['diameter_sigma'] * 1e9:g} nm, J_c0 {dev['jc_ap_to_p'] * 1e-10:g} MA/cm^2 "
        f"(x{dev['jc_asymmetry']:g} P->AP, {100 * dev['jc_sigma']:g} % spread), "
        f"Delta_sat {dev['delta_sat']:g}, beta {dev['beta']:g}",
        f"write '{wr['mode']}' {wr['voltage']:g} V / {wr['pulse_width'] * 1e9:g} ns from "
        f"{_INITIAL_WORDS.get(wr['initial'], wr['initial'])}, half-select scheme "
        f"'{wr.get('scheme', 'none')}'" + (", write-verify" if wr.get("verify") else "")
        + (f", write pulses solved through the lines ('{wr.get('ir_solver', 'fast')}' solver, "
           f"{wr.get('r_driver', 0.0):g} ohm drivers)"
           if wr.get("ir_solver", "fast") != "off" and (rd.get("r_row") or rd.get("r_col"))
           else ""),
        f"line resistance {rd.get('r_row', 0.0):g} / {rd.get('r_col', 0.0):g} ohm per row / "
        f"column segment, TMR read at "
        + ("each device's bias" if rd.get("bias_tmr") else "zero bias"),
    ]
    rates = {k: df[k] for k in ("stuck_p", "stuck_ap", "short", "open") if df[k] > 0}
    if df["enabled"] and rates:
        parts.append("defects " + ", ".join(f"{k} {v:g}" for k, v in rates.items()))
    else:
        parts.append("no defects")
    return "; ".join(parts)


def _n_samples(ds: xr.Dataset) -> int:
    """Test-split size inferred from the accuracy lattice (smallest step 1/n)."""
    values = np.unique(np.round(ds[schema.SOFTWARE_ACCURACY].values.ravel(), 9))
    acc = np.unique(np.round(np.concatenate([values, ds[schema.ACCURACY].values.ravel()]), 9))
    acc = acc[np.isfinite(acc)]
    step = np.min(np.diff(acc)) if acc.size > 1 else 1.0
    return int(round(1.0 / step))


# ------------------------------------------------------------------------- figures


def draw_figures(
    stored: Mapping[str, xr.Dataset], out_dir: str | Path, formats=("png", "pdf"), dpi: int = 150
) -> list[Path]:
    """Draw the paper figures from stored results (matplotlib Agg), one file per format.

    Parameters
    ----------
    stored : mapping
        From :func:`open_stored`.
    out_dir : path
        Folder for ``fig*.png`` / ``fig*.pdf`` (created if missing).
    formats : sequence of str
    dpi : int
        Resolution of the PNG files.

    Returns
    -------
    list of Path
        The files written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mcmtj.analysis import plotting as P

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sets = {SETS[name]: stored[name] for name in SETS}
    written = []

    def finish(fig, stem):
        for fmt in formats:
            path = out_dir / f"{stem}.{fmt}"
            fig.savefig(path, dpi=dpi, metadata=figure_metadata(fmt))
            written.append(path)
        plt.close(fig)

    with plt.rc_context(
        {"font.size": 9, "axes.titlesize": 9, "pdf.compression": 9, "svg.hashsalt": "mcmtj"}
    ):
        fig, ax = plt.subplots(figsize=(6.4, 3.6), layout="constrained")
        P.resistance_histograms(stored[_DEVICES], ax=ax)
        ax.set_title("Sampled device resistances per size (assumed device model)")
        finish(fig, "fig1_resistance")

        fig, axes = plt.subplots(
            1, len(sets), figsize=(3.3 * len(sets), 3.2), layout="constrained", sharey=True
        )
        for ax, (label, ds) in zip(np.atleast_1d(axes), sets.items(), strict=True):
            P.write_fidelity_distribution(ds, ax=ax)
            ax.set_title(label)
        finish(fig, "fig2_write_fidelity")

        fig, axes = plt.subplots(
            2,
            len(sets),
            figsize=(3.4 * len(sets), 5.8),
            layout="constrained",
            sharex="col",
            squeeze=False,
        )
        for j, (label, ds) in enumerate(sets.items()):
            P.accuracy_vs_write_fidelity(ds, ax=axes[0, j])
            axes[0, j].set_title(f"{label}: Gnorm 1")
            P.accuracy_vs_write_fidelity(ds, ax=axes[1, j], tuned=True)
            axes[1, j].set_title(f"{label}: tuned per instance (gain from training split)")
        finish(fig, "fig3_accuracy_vs_write_fidelity")

        fig, axes = plt.subplots(
            1, len(sets), figsize=(3.3 * len(sets), 3.6), layout="constrained", sharey=True
        )
        for ax, (label, ds) in zip(np.atleast_1d(axes), sets.items(), strict=True):
            P.accuracy_vs_gnorm(ds, ax=ax)
            ax.set_title(f"{label} (all sizes)")
        _shared_legend(fig, np.atleast_1d(axes), ncol=3)
        finish(fig, "fig4_accuracy_vs_gnorm")

        fig, axes = plt.subplots(1, 3, figsize=(10.5, 4.0), layout="constrained")
        P.accuracy_vs_size(sets, ax=axes[0])
        axes[0].set_title("Test accuracy (median, interquartile bars)\n"
                          "tuned: gain chosen per instance on the training split")
        for ax, target in zip(axes[1:], YIELD_TARGETS, strict=True):
            P.yield_vs_size(sets, ax=ax, target=target)
            ax.set_title(f"Yield at {100 * target:g} %, test split\n"
                         "(95 % Wilson intervals: dies only)")
            ax.set_ylabel(f"instances with accuracy >= {100 * target:g} % (%)")
        _shared_legend(fig, axes, ncol=len(sets))
        finish(fig, "fig5_accuracy_yield_vs_size")

        fig, ax = plt.subplots(figsize=(6.6, 4.0), layout="constrained")
        cmp = xr.concat(
            [stored[f"{name}_analysis"][[v for v in stored[f"{name}_analysis"].data_vars
                                         if v.startswith("cmp_")]]
             .rename({v: v[4:] for v in stored[f"{name}_analysis"].data_vars
                      if v.startswith("cmp_")})
             for name in SETS],
            dim="set", join="outer", fill_value={"diagnostic": False},
        ).assign_coords(set=list(sets))
        P.metric_differences(cmp, ax=ax)
        ax.set_title("Which metric predicts the tuned accuracy better than write fidelity\n"
                     "(all sizes pooled; right of the dashed line and clear of it: better)")
        finish(fig, "fig6_metric_vs_write_fidelity")

        fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.4), layout="constrained")
        P.software_accuracy_distribution(sets, ax=axes[0], split="test")
        P.software_accuracy_distribution(sets, ax=axes[1], split="train")
        axes[0].set_title("Software accuracy, 30-sample test split (Gnorm 1)")
        axes[1].set_title("Software accuracy, 148-sample training split (Gnorm 1)")
        finish(fig, "fig7_software_accuracy")

        fig, axes = plt.subplots(1, 3, figsize=(11.0, 3.8), layout="constrained")
        per_set = {}
        for name, label in SETS.items():
            a = stored[f"{name}_analysis"]
            per_set[label] = a[[v for v in a.data_vars if v.startswith("size_")]].rename(
                {v: v[5:] for v in a.data_vars if v.startswith("size_")})
        P.size_effect(per_set, axes)
        axes[0].set_title("Read-back gain and the gain tuning picks")
        axes[1].set_title("Scatter of the read-back weights")
        axes[2].set_title("Yield at 90 % (95 % Wilson: dies only)")
        finish(fig, "fig8_size_effect")
    return written


def _shared_legend(fig, axes, ncol: int) -> None:
    """One legend below the panels (the first panel's entries) instead of one per panel."""
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    fig.legend(
        handles, labels, loc="outside lower center", ncol=ncol, frameon=False, fontsize="small"
    )


# ------------------------------------------------------------------------- command


def main(
    paper: str = "goodwill2022",
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
    """Regenerate a paper figure set: simulate what is missing, analyse, report, draw.

    Parameters
    ----------
    paper : str, default "goodwill2022"
        One of :data:`PAPERS`.
    quick : bool, default False
        Reduced studies (:data:`QUICK`) for CI, under two minutes.
    out : path, optional
        Folder for figures and ``REPORT.md``; default ``figures/<paper>`` (quick:
        ``figures/<paper>/quick``), relative to the working directory.
    results : path, optional
        Folder of the stored results; default ``<out>/results``.
    studies_dir : path, optional
        Folder of the study files (default: ``studies/<paper>`` of this repository).
    overrides : mapping, optional
        Dotted-key overrides for every study (see :func:`load_studies`).
    threads : int, optional
        Numba threads for the simulations.
    formats : sequence of str, default ("png", "pdf")
        Figure file formats.
    log : callable, optional
        Receives progress lines (default: stderr).
    data : path, optional
        Local copy of the NIST Wine data (see :func:`resolve_nist_data`).

    Returns
    -------
    dict
        ``"results"``: set name -> stored file; ``"report"``: the REPORT.md path;
        ``"figures"``: the figure files.
    """
    _check_paper(paper)
    log = log or log_default
    out, results = output_folders(paper, quick, out, results)
    sizes = QUICK if quick else _FULL
    studies = load_studies(paper, quick=quick, studies_dir=studies_dir, overrides=overrides)
    # the data are found and verified before anything is created
    studies = resolve_nist_data(studies, data)
    paths = ensure_results(
        studies, results, n_device_samples=sizes["device_samples"], threads=threads, log=log
    )
    stored = open_stored(results)
    stored.update({f"{n}_analysis": a for n, a in _ensure_analysis(
        results, studies, {n: stored[n] for n in SETS}, sizes["n_boot"], sizes["n_boot_paired"],
        log).items()})
    report, figures = write_outputs(stored, out, write_report=write_report,
                                    draw_figures=draw_figures, quick=quick, formats=formats,
                                    log=log)
    return {"results": paths, "report": report, "figures": figures}
