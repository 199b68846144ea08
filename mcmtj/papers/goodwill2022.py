"""Paper figure sets: simulate what is missing, then draw and report from stored results.

``mcmtj paper goodwill2022`` regenerates the figures and ``REPORT.md`` of the
passive-MTJ Wine study (Goodwill et al., Phys. Rev. Applied 18, 014039 (2022)):
the 300 NIST ternary solutions and 300 mcmtj-trained ternary and binary solutions
of a 13 x 6 x 3 perceptron written into 15 x 15 passive MTJ arrays of four device
sizes, tuned on the read-out gain Gnorm.

The work is split in three steps that only meet through files:

1. :func:`ensure_results` simulates each study of ``studies/goodwill2022`` whose
   stored result (``<results>/<name>.nc``) is missing or was made from a different
   study, and samples the device resistances shown in the R_P/R_AP figure
   (:func:`device_samples`, NumPy functions of :mod:`mcmtj.physics.device`);
2. :func:`metric_ranking_results` ranks the fidelity metrics (Spearman with
   bootstrap intervals) from the stored results and stores the ranking;
3. :func:`write_report` and :func:`draw_figures` read the stored files only.

``quick=True`` runs a reduced version of the same studies (fewer solutions and
instances, see :data:`QUICK`) for CI; its files go to their own folder.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import xarray as xr

from mcmtj.analysis.metrics import accuracy_stats, metric_correlations, tune, yield_fraction
from mcmtj.config import Study, load_study
from mcmtj.physics.device import MIN_DIAMETER, sample_parallel_conductance, tmr_at_bias
from mcmtj.run import schema
from mcmtj.run.engine import simulate
from mcmtj.run.reader import open_results
from mcmtj.run.results import save

__all__ = [
    "PAPERS",
    "SETS",
    "PAPER_ACCURACY",
    "YIELD_TARGETS",
    "RANKED_METRICS",
    "QUICK",
    "load_studies",
    "device_samples",
    "ensure_results",
    "open_stored",
    "accuracy_table",
    "yield_table",
    "metric_ranking_results",
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

#: The paper's best tuned accuracy (on a 30-sample test split: at least 29 of 30).
PAPER_ACCURACY = 0.953
#: Accuracy targets of the yield table.
YIELD_TARGETS = (0.90, 0.95)
#: Per-instance metrics ranked by how well they predict the tuned accuracy (those
#: missing or constant in a result set are left out of its ranking).
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
#: Overrides of the ``quick`` run (CI): fewer solutions, instances, epochs, bootstraps.
QUICK = {
    "solutions": 24,
    "instances": 8,
    "epochs": 60,
    "n_boot": 200,
    "device_samples": 1000,
}
_FULL = {"n_boot": 1000, "device_samples": 5000}
_BEFORE_GNORM = 1.0
_BOOT_SEED = 2022
_POOLED = (schema.SOLUTION, schema.INSTANCE)
_DEVICES = "devices"
_RANKING = "metric_ranking"


def _log_default(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[2]  # mcmtj/papers/this.py -> the repository


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
    folder = Path(studies_dir) if studies_dir is not None else _repo_root() / "studies" / paper
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
        study=study.to_toml(), seed=str(seed), voltage=voltage, n_devices=n_devices
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
    study's TOML (same configuration and seed); anything else is simulated again with
    :func:`mcmtj.simulate` and saved with :func:`mcmtj.save` (gzip-compressed).
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
    log = log or _log_default
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, study in studies.items():
        path = results_dir / f"{name}.nc"
        attrs = _stored_attrs(path)
        if attrs is not None and attrs.get("study") == study.to_toml():
            log(f"{name}: using stored {path}")
        else:
            shape = " x ".join(str(n) for n in study.sweep_shape)
            log(f"{name}: simulating {shape} sizes x {study.run.instances} instances per solution")
            ds = simulate(study, threads=threads, progress=None)
            save(_compress(ds), path)
            log(f"{name}: wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
        paths[name] = path
    first = next(iter(studies.values()))
    path = results_dir / f"{_DEVICES}.nc"
    attrs = _stored_attrs(path)
    if not (
        attrs is not None
        and attrs.get("study") == first.to_toml()
        and int(attrs.get("n_devices", -1)) == n_device_samples
    ):
        save(_compress(device_samples(first, n_device_samples)), path)
        log(f"devices: wrote {path}")
    paths[_DEVICES] = path
    return paths


def open_stored(results_dir: str | Path) -> dict[str, xr.Dataset]:
    """Open what :func:`ensure_results` (and the ranking step) stored.

    Parameters
    ----------
    results_dir : path
        Folder holding ``<set>.nc`` for every set of :data:`SETS`, ``devices.nc`` and,
        once ranked, ``metric_ranking.nc``.

    Returns
    -------
    dict
        Set name, ``"devices"`` and (when stored) ``"metric_ranking"`` -> Dataset,
        loaded into memory.

    Raises
    ------
    FileNotFoundError
        A set's results or the device samples are missing.
    """
    results_dir = Path(results_dir)
    out = {name: open_results(results_dir / f"{name}.nc") for name in SETS}
    out[_DEVICES] = open_results(results_dir / f"{_DEVICES}.nc")
    ranking = results_dir / f"{_RANKING}.nc"
    if ranking.is_file():
        out[_RANKING] = open_results(ranking)
    return out


# ------------------------------------------------------------------------- analysis


def _size_dim(ds: xr.Dataset) -> str:
    dims = [d for d in ds[schema.ACCURACY].dims if d not in (*_POOLED, schema.GNORM)]
    if len(dims) != 1:
        raise ValueError(f"expected one sweep dim (device diameter), got {dims}")
    return dims[0]


def _before(ds: xr.Dataset) -> xr.DataArray:
    return ds[schema.ACCURACY].sel({schema.GNORM: _BEFORE_GNORM})


def accuracy_table(ds: xr.Dataset, target: float = PAPER_ACCURACY) -> xr.Dataset:
    """Accuracy per device size before and after tuning the gain (one result set).

    Before tuning: Gnorm = 1. Tuned: :func:`mcmtj.analysis.tune` chooses Gnorm on
    ``accuracy_train`` (training split), per instance or per solution, and reports
    ``accuracy`` (test split); the test split never enters the choice.

    Parameters
    ----------
    ds : xarray.Dataset
        Stored results with one sweep dim, ``gnorm`` (holding 1.0), ``accuracy`` and
        ``accuracy_train``.
    target : float, default :data:`PAPER_ACCURACY`
        A solution reaches it when the median over its instances of its accuracy
        is ``>= target`` (within 1e-9); for the software network, its one accuracy.

    Returns
    -------
    xarray.Dataset
        Per size, fractions (not per cent), for ``X`` in ``before`` (Gnorm 1),
        ``tuned_solution``, ``tuned_instance``:

        - ``software``: median software accuracy at Gnorm 1 over solutions;
        - ``X``, ``mean_X``: median and mean over solutions x instances;
        - ``reach_X``: fraction of solutions reaching ``target`` (``reach_software``
          for the software network);
        - ``best_X``: the largest median over instances of any solution.
    """
    accs = {
        "before": _before(ds),
        "tuned_solution": tune(ds, per="solution")[schema.ACCURACY],
        "tuned_instance": tune(ds, per="instance")[schema.ACCURACY],
    }
    sw = ds[schema.SOFTWARE_ACCURACY].sel({schema.GNORM: _BEFORE_GNORM})
    out = {
        "software": sw.median(schema.SOLUTION),
        "reach_software": (sw >= target - 1e-9).mean(schema.SOLUTION),
    }
    for name, acc in accs.items():
        stats = accuracy_stats(acc)
        per_solution = accuracy_stats(acc, dims=schema.INSTANCE)["median"]
        out[name] = stats["median"]
        out[f"mean_{name}"] = stats["mean"]
        out[f"reach_{name}"] = (per_solution >= target - 1e-9).mean(schema.SOLUTION)
        out[f"best_{name}"] = per_solution.max(schema.SOLUTION)
    return xr.Dataset(out).assign_attrs(target=target)


def yield_table(ds: xr.Dataset, targets=YIELD_TARGETS, confidence: float = 0.95) -> xr.Dataset:
    """Yield with Wilson intervals per size, at Gnorm 1 and tuned per instance.

    Parameters
    ----------
    ds : xarray.Dataset
        Stored results (see :func:`accuracy_table`).
    targets : sequence of float, default :data:`YIELD_TARGETS`
        Accuracies an instance must reach.
    confidence : float, default 0.95
        Level of the Wilson score interval.

    Returns
    -------
    xarray.Dataset
        :func:`mcmtj.analysis.yield_fraction` of ``accuracy`` over (solution, instance),
        dims (``tuning`` = ["Gnorm 1", "tuned per instance"], ``target``, size dim).
    """
    tuned = tune(ds, per="instance")[schema.ACCURACY]
    parts = [
        yield_fraction(acc, list(targets), confidence=confidence) for acc in (_before(ds), tuned)
    ]
    return xr.concat(parts, dim="tuning").assign_coords(tuning=["Gnorm 1", "tuned per instance"])


def _ranking_input(ds: xr.Dataset, metrics) -> tuple[xr.Dataset, list[str]]:
    """Per-instance metrics and the per-instance tuned accuracy, without the gnorm dim.

    A metric with a gnorm dim (``agreement``) is taken at each instance's chosen gain.
    Metrics absent or constant in the results are dropped.
    """
    with_gain = [m for m in metrics if m in ds and schema.GNORM in ds[m].dims]
    tuned = tune(ds, per="instance", report=[schema.ACCURACY, *with_gain])
    data = {schema.ACCURACY: tuned[schema.ACCURACY]}
    kept = []
    for m in metrics:
        if m not in ds:
            continue
        da = tuned[m] if m in with_gain else ds[m]
        values = da.values
        finite = values[np.isfinite(values)]
        if finite.size == 0 or np.all(finite == finite[0]):
            continue
        data[m] = da
        kept.append(m)
    return xr.Dataset(data), kept


def metric_ranking_results(
    datasets: Mapping[str, xr.Dataset],
    n_boot: int = 1000,
    seed: int = _BOOT_SEED,
    metrics=RANKED_METRICS,
) -> xr.Dataset:
    """Rank the metrics by Spearman correlation with the tuned accuracy, per result set.

    For each set, :func:`mcmtj.analysis.metric_correlations` of the per-instance
    metrics with the accuracy tuned per instance, pooling every size, solution and
    instance (metrics constant in a set, e.g. defect counts without defects, are left
    out: NaN there).

    Parameters
    ----------
    datasets : mapping of str to Dataset
        Set name -> stored results.
    n_boot : int, default 1000
        Bootstrap replicates.
    seed : int
        Bootstrap seed (the same for every set).
    metrics : sequence of str

    Returns
    -------
    xarray.Dataset
        Dims (``set``, ``metric``): ``rho``, ``rho_low``, ``rho_high``, ``rank``, ``n``.
    """
    parts = []
    for name, ds in datasets.items():
        data, kept = _ranking_input(ds, metrics)
        pooled = (_size_dim(ds), *_POOLED)
        corr = metric_correlations(data, kept, dims=pooled, n_boot=n_boot, seed=seed)
        parts.append(corr.expand_dims(set=[name]))
    out = xr.concat(parts, dim="set", join="outer", coords="minimal", combine_attrs="override")
    out = out.reindex(metric=[m for m in metrics if m in out["metric"].values])
    return out.assign_attrs(
        target="tuned accuracy",
        n_boot=int(n_boot),
        seed=str(seed),
        pooled_dims="diameter solution instance",
    )


def _ranking_stamp(datasets: Mapping[str, xr.Dataset], n_boot: int) -> str:
    return (
        ";".join(
            f"{k}:{ds.attrs.get('created', '')}:{ds.attrs.get('seed', '')}"
            for k, ds in datasets.items()
        )
        + f";n_boot={n_boot}"
    )


def _ensure_ranking(
    results_dir: Path, datasets: Mapping[str, xr.Dataset], n_boot: int, log: Callable[[str], None]
) -> xr.Dataset:
    path = results_dir / f"{_RANKING}.nc"
    stamp = _ranking_stamp(datasets, n_boot)
    attrs = _stored_attrs(path)
    if attrs is not None and attrs.get("sources") == stamp:
        log(f"metric ranking: using stored {path}")
        return open_results(path)
    log(f"metric ranking: {n_boot} bootstrap replicates per set")
    ranking = metric_ranking_results(datasets, n_boot=n_boot).assign_attrs(sources=stamp)
    save(ranking, path)
    return ranking


# ------------------------------------------------------------------------- report


def _pct(x: float, digits: int = 1) -> str:
    return "n/a" if not np.isfinite(x) else f"{100 * x:.{digits}f}"


def _nm(value: float) -> str:
    return f"{value * 1e9:g}"


def write_report(stored: Mapping[str, xr.Dataset], path: str | Path, *, quick: bool = False) -> str:
    """Write ``REPORT.md`` from stored results (and the stored metric ranking).

    Parameters
    ----------
    stored : mapping
        From :func:`open_stored` (the sets of :data:`SETS` and ``"metric_ranking"``).
    path : path
        File to write.
    quick : bool
        Whether these are the reduced CI results (said in the report).

    Returns
    -------
    str
        The report text.
    """
    sets = {name: stored[name] for name in SETS}
    ranking = stored[_RANKING]
    first = next(iter(sets.values()))
    grid = ", ".join(f"{g:g}" for g in sorted(first[schema.GNORM].values))
    n_test = _n_samples(first)
    lines = [
        "# Goodwill et al. 2022 with mcmtj: 300 Wine solutions on passive MTJ arrays",
        "",
        "Written by `mcmtj paper goodwill2022" + (" --quick" if quick else "") + "` from the "
        "stored results; do not edit by hand. Source: J. M. Goodwill et al., Phys. Rev. "
        "Applied 18, 014039 (2022) (arXiv 2112.09159). Studies: `studies/goodwill2022/`.",
        "",
    ]
    if quick:
        lines += [
            "**Quick run (CI): reduced solution sets and instances; the numbers are "
            "a smoke test, not the study.**",
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
    lines += [
        "",
        "- Device, write and read parameters are **assumed** (not published in what we have); "
        "the reasons are in the study files' headers. As stored with the results: "
        + _setup_text(first)
        + ".",
        f"- Accuracy is measured on the {n_test}-sample NIST test split, so it moves in steps "
        f"of {100 / n_test:.1f} %; the paper's {100 * PAPER_ACCURACY:.1f} % means at least "
        f"{int(np.ceil(PAPER_ACCURACY * n_test - 1e-9))} of {n_test} here.",
        f"- *Gnorm 1*: the nominal gain, untuned. *Tuned*: Gnorm chosen from {{{grid}}} on the "
        "148-sample training split (`accuracy_train`), per instance (a trim for each array) or "
        "per solution (one gain for all arrays of a solution, maximising the median training "
        "accuracy), then reported on the test split, which never enters the choice.",
        f"- A solution *reaches* {100 * PAPER_ACCURACY:.1f} % when the median over its "
        "instances of its test accuracy does.",
        "",
        "## Accuracy per device size",
        "",
        "Median and mean over all solutions x instances, in %.",
        "",
        "| set | diameter (nm) | software median (Gnorm 1) | median at Gnorm 1 | "
        "median tuned per solution | median tuned per instance | mean at Gnorm 1 | "
        "mean tuned per instance |",
        "|---|---|---|---|---|---|---|---|",
    ]
    tables = {name: accuracy_table(ds) for name, ds in sets.items()}

    def size_rows(columns):
        """One row per set and device size: the columns of ``tables``, in %."""
        for name, table in tables.items():
            dim = _size_dim(sets[name])
            for value in table[dim].values:
                row = table.sel({dim: value})
                cells = " | ".join(_pct(float(row[k])) for k in columns)
                yield f"| {SETS[name]} | {_nm(value)} | {cells} |"

    lines += size_rows(("software", "before", "tuned_solution", "tuned_instance",
                        "mean_before", "mean_tuned_instance"))
    lines += [
        "",
        f"## Solutions reaching the paper's {100 * PAPER_ACCURACY:.1f} %",
        "",
        "Share of the solutions (in %) whose software accuracy, or whose median accuracy "
        "over its instances, reaches the target; and the best solution's median accuracy "
        "over its instances (in %).",
        "",
        "| set | diameter (nm) | solutions reaching: software | at Gnorm 1 | "
        "tuned per solution | tuned per instance | best solution at Gnorm 1 | "
        "best solution tuned per instance |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += size_rows(("reach_software", "reach_before", "reach_tuned_solution",
                        "reach_tuned_instance", "best_before", "best_tuned_instance"))
    lines += [
        "",
        "## Yield",
        "",
        "Fraction of instances (all solutions pooled) whose test accuracy reaches the target, "
        "in %, with the 95 % Wilson score interval.",
        "",
        "| set | diameter (nm) | target (%) | tuning | yield | 95 % interval | instances |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, ds in sets.items():
        table = yield_table(ds)
        dim = _size_dim(ds)
        for value in table[dim].values:
            for target in table["target"].values:
                for tuning in table["tuning"].values:
                    y = table.sel({dim: value, "target": target, "tuning": tuning})
                    lines.append(
                        f"| {SETS[name]} | {_nm(value)} | {100 * target:g} | {tuning} | "
                        f"{_pct(float(y['yield']))} | [{_pct(float(y['yield_low']))}, "
                        f"{_pct(float(y['yield_high']))}] | {int(y['n'])} |"
                    )
    lines += [
        "",
        "## Which metric predicts the tuned accuracy",
        "",
        "Spearman rank correlation of each per-instance metric with the accuracy tuned per "
        "instance, pooled over sizes, solutions and instances, with a "
        f"{ranking.attrs.get('n_boot')}-replicate bootstrap 95 % percentile interval "
        f"(seed {ranking.attrs.get('seed')}); rank 1 = largest |rho|. Metrics constant in a "
        "set (e.g. defect counts without defects, or disturbs when none occurred) are not "
        "ranked. `agreement` (share of test samples predicted as the software "
        "network does, at the chosen gain) is measured on the very samples it predicts, "
        "so it is a diagnostic, not a pre-deployment metric.",
        "",
        "| set | rank | metric | rho | 95 % interval |",
        "|---|---|---|---|---|",
    ]
    summary = []
    for name in sets:
        r = ranking.sel(set=name)
        ok = np.isfinite(r["rho"].values)
        metrics = [str(m) for m in r["metric"].values[ok]]
        order = np.argsort(r["rank"].values[ok], kind="stable")
        for k in order:
            m = metrics[k]
            row = r.sel(metric=m)
            lines.append(
                f"| {SETS[name]} | {int(row['rank'])} | {m} | {float(row['rho']):.3f} "
                f"| [{float(row['rho_low']):.3f}, {float(row['rho_high']):.3f}] |"
            )
        if schema.WRITE_FIDELITY in metrics:
            wf = r.sel(metric=schema.WRITE_FIDELITY)
            best = metrics[order[0]]
            summary.append(
                f"- {SETS[name]}: write fidelity ranks {int(wf['rank'])} of {len(metrics)} "
                f"(rho {float(wf['rho']):.2f}); the best predictor is {best} "
                f"(rho {float(r.sel(metric=best)['rho']):.2f})."
            )
    lines += ["", "## Reading", "", *summary, ""]
    text = "\n".join(lines)
    Path(path).write_text(text, encoding="utf-8")
    return text


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
        f"all-{wr['initial'].upper()}, half-select scheme '{wr.get('scheme', 'none')}'"
        + (", write-verify" if wr.get("verify") else ""),
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
            fig.savefig(path, dpi=dpi, metadata=_metadata(fmt))
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
            axes[1, j].set_title(f"{label}: tuned per instance")
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
        axes[0].set_title("Test accuracy (median, interquartile bars)")
        for ax, target in zip(axes[1:], YIELD_TARGETS, strict=True):
            P.yield_vs_size(sets, ax=ax, target=target)
            ax.set_title(f"Yield at {100 * target:g} % (95 % Wilson intervals)")
            ax.set_ylabel(f"instances with accuracy >= {100 * target:g} % (%)")
        _shared_legend(fig, axes, ncol=len(sets))
        finish(fig, "fig5_accuracy_yield_vs_size")

        fig, ax = plt.subplots(figsize=(6.4, 3.8), layout="constrained")
        ranking = stored[_RANKING].assign_coords(
            set=[SETS.get(str(s), str(s)) for s in stored[_RANKING]["set"].values]
        )
        P.metric_ranking(ranking, ax=ax)
        ax.set_xlabel(
            "Spearman rho with the tuned accuracy\n(bars: 95 % bootstrap interval, "
            "often inside the marker)"
        )
        ax.set_title("Which metric predicts the tuned accuracy (all sizes pooled)")
        finish(fig, "fig6_metric_ranking")

        fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.4), layout="constrained")
        P.software_accuracy_distribution(sets, ax=axes[0], split="test")
        P.software_accuracy_distribution(sets, ax=axes[1], split="train")
        axes[0].set_title("Software accuracy, 30-sample test split (Gnorm 1)")
        axes[1].set_title("Software accuracy, 148-sample training split (Gnorm 1)")
        finish(fig, "fig7_software_accuracy")
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


def _metadata(fmt: str) -> dict:
    """File metadata without a time stamp, so unchanged figures are unchanged files."""
    if fmt == "pdf":
        return {"CreationDate": None, "Creator": "mcmtj"}
    if fmt == "png":
        return {"Software": "mcmtj"}
    return {}


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
) -> dict[str, object]:
    """Regenerate a paper figure set: simulate what is missing, rank, report, draw.

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

    Returns
    -------
    dict
        ``"results"``: set name -> stored file; ``"report"``: the REPORT.md path;
        ``"figures"``: the figure files.
    """
    _check_paper(paper)
    log = log or _log_default
    out = Path(out) if out is not None else Path("figures") / paper / ("quick" if quick else "")
    results = Path(results) if results is not None else out / "results"
    sizes = QUICK if quick else _FULL
    studies = load_studies(paper, quick=quick, studies_dir=studies_dir, overrides=overrides)
    paths = ensure_results(
        studies, results, n_device_samples=sizes["device_samples"], threads=threads, log=log
    )
    stored = open_stored(results)
    stored[_RANKING] = _ensure_ranking(results, {n: stored[n] for n in SETS}, sizes["n_boot"], log)
    out.mkdir(parents=True, exist_ok=True)
    report = out / "REPORT.md"
    write_report(stored, report, quick=quick)
    log(f"wrote {report}")
    figures = draw_figures(stored, out, formats=formats)
    log(f"wrote {len(figures)} figure files to {out}")
    return {"results": paths, "report": report, "figures": figures}
