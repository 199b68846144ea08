"""Study configuration: frozen, documented dataclasses per layer, TOML in and out.

A :class:`Study` composes one section per layer (``device``, ``defects``,
``write``, ``read``, ``array``, ``network``, ``run``) plus an optional
``sweep``: any numeric field may be given a list of values there, and the
cartesian product of all swept fields becomes the dimensions of the result.

All quantities are SI (metres, ohms, ohm m^2, volts, seconds, A/m^2).
Every field carries its unit, range and a docstring in ``metadata``; the
validator and the README's config reference are both generated from it, so the
three cannot drift apart.

Examples
--------
>>> import mcmtj
>>> study = mcmtj.Study().replace(**{"write.error_rate": 0.0, "write.mode": "fixed"})
>>> study.write.error_rate
0.0
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ConfigError",
    "DeviceConfig",
    "DefectConfig",
    "WriteConfig",
    "ReadConfig",
    "ArrayConfig",
    "NetworkConfig",
    "RunConfig",
    "Study",
    "load_study",
    "parse_override",
]


class ConfigError(ValueError):
    """A study field has a bad value, type or name; the message names the field."""


def _f(default, doc, unit="", lo=None, hi=None, lo_open=False, hi_open=False, choices=None):
    """A dataclass field with its documentation and allowed range as metadata."""
    meta = {"doc": doc, "unit": unit, "lo": lo, "hi": hi, "lo_open": lo_open,
            "hi_open": hi_open, "choices": choices}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def _range_text(meta) -> str:
    parts = []
    if meta["choices"] is not None:
        return "one of " + ", ".join(repr(c) for c in meta["choices"])
    if meta["lo"] is not None:
        parts.append(("> " if meta["lo_open"] else ">= ") + f"{meta['lo']:g}")
    if meta["hi"] is not None:
        parts.append(("< " if meta["hi_open"] else "<= ") + f"{meta['hi']:g}")
    return " and ".join(parts) if parts else "any value"


def _check_scalar(name: str, value, meta, ftype: type):
    unit = f" ({meta['unit']})" if meta["unit"] else ""
    if ftype is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")
        return value
    if ftype is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, got {value!r}")
        if meta["choices"] is not None and value not in meta["choices"]:
            raise ConfigError(f"{name} = {value!r} is not allowed: must be {_range_text(meta)}")
        return value
    # numeric
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number{unit}, got {value!r}")
    if ftype is int:
        if isinstance(value, float):
            if not value.is_integer():
                raise ConfigError(f"{name} must be a whole number, got {value!r}")
            value = int(value)
    else:
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{name} = {value!r} is not finite: must be {_range_text(meta)}")
    lo, hi = meta["lo"], meta["hi"]
    bad = (lo is not None and (value < lo or (meta["lo_open"] and value == lo))) or (
        hi is not None and (value > hi or (meta["hi_open"] and value == hi))
    )
    if bad:
        raise ConfigError(
            f"{name} = {value!r} is out of range: must be {_range_text(meta)}{unit}"
        )
    return value


def _field_type(f) -> type:
    t = f.type if isinstance(f.type, str) else f.type.__name__
    return {"float": float, "int": int, "bool": bool, "str": str}.get(t.split(" ")[0], float)


class _Section:
    """Validation shared by every config section (a mixin for frozen dataclasses)."""

    _section = ""

    def __post_init__(self):
        for f in dataclasses.fields(self):
            name = f"{self._section}.{f.name}"
            value = getattr(self, f.name)
            if f.type in ("list[float]", "float | list[float]"):
                values = value if isinstance(value, (list, tuple)) else [value]
                if not values:
                    raise ConfigError(f"{name} must not be empty")
                checked = [_check_scalar(name, v, f.metadata, float) for v in values]
                value = checked if isinstance(value, (list, tuple)) else checked[0]
                object.__setattr__(self, f.name, value)
                continue
            object.__setattr__(self, f.name, _check_scalar(name, value, f.metadata, _field_type(f)))
        self._check()

    def _check(self):
        """Cross-field checks of a section (override)."""

    @classmethod
    def from_dict(cls, data: dict, prefix: str | None = None):
        prefix = prefix or cls._section
        if not isinstance(data, dict):
            raise ConfigError(f"[{prefix}] must be a table, got {data!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        for key in data:
            if key not in names:
                raise ConfigError(_unknown_key(f"{prefix}.{key}", [f"{prefix}.{n}" for n in names]))
        return cls(**data)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def _unknown_key(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown key {key!r}{hint}"


@dataclass(frozen=True, kw_only=True)
class DeviceConfig(_Section):
    """MTJ device model (design.md "Device model"). Defaults are assumed values, see
    :mod:`mcmtj.presets` for their sources."""

    _section = "device"
    diameter: float = _f(60e-9, "mean pillar diameter d0", "m", 0.0, 1e-6, lo_open=True)
    diameter_sigma: float = _f(2e-9, "absolute device-to-device sigma of the diameter", "m",
                               0.0, 1e-6)
    resistance_area: float = _f(1e-11, "median resistance-area product RA0 (10 ohm um^2)",
                                "ohm m^2",
                                0.0, 1e-6, lo_open=True)
    resistance_area_sigma: float = _f(0.03, "log-normal sigma of RA", "1", 0.0, 2.0)
    tmr: float = _f(1.2, "zero-bias tunnel magnetoresistance TMR0 (1.2 = 120 %)", "1", 0.0, 20.0)
    tmr_sigma: float = _f(0.05, "absolute sigma of TMR0", "1", 0.0, 5.0)
    tmr_bias_voltage: float = _f(0.5, "V_h in TMR(V) = TMR0 / (1 + (V/V_h)^2)", "V", 0.0, 100.0,
                                 lo_open=True)
    delta_sat: float = _f(45.0, "thermal stability factor of large devices", "1", 0.0, 1000.0,
                          lo_open=True)
    delta_sigma: float = _f(0.0, "relative device-to-device sigma of the thermal barrier", "1",
                            0.0, 1.0)
    critical_diameter: float = _f(35e-9, "d_c in Delta(d) = Delta_sat min(1, (d/d_c)^2)", "m",
                                  0.0, 1e-6, lo_open=True)
    jc_ap_to_p: float = _f(3e10, "critical current density AP->P (3 MA/cm^2)", "A/m^2", 0.0, 1e14,
                           lo_open=True)
    jc_asymmetry: float = _f(1.5, "J_c0(P->AP) / J_c0(AP->P)", "1", 0.0, 100.0, lo_open=True)
    jc_sigma: float = _f(0.0, "relative device-to-device sigma of J_c0", "1", 0.0, 1.0)
    tau0: float = _f(1e-9, "attempt time of thermal switching", "s", 0.0, 1.0, lo_open=True)
    tau_d: float = _f(1e-9, "precessional time constant", "s", 0.0, 1.0, lo_open=True)
    beta: float = _f(1.0, "exponent of (1 - I/I_c0) in the thermal barrier (1 or 2)", "1", 1.0, 2.0)
    variation: bool = _f(True, "device-to-device variation on (false: every device nominal)")
    die_diameter_sigma: float = _f(0.0, "die-to-die sigma of a per-instance diameter offset "
                                   "(added to every device's d; 0 = off)", "m", 0.0, 1e-6)
    die_resistance_area_sigma: float = _f(0.0, "die-to-die log-normal sigma of a per-instance "
                                          "RA factor (0 = off)", "1", 0.0, 2.0)
    die_tmr_sigma: float = _f(0.0, "die-to-die sigma of a per-instance TMR offset (0 = off)",
                              "1", 0.0, 5.0)
    die_jc_sigma: float = _f(0.0, "die-to-die relative sigma of a per-instance J_c0 factor, "
                             "both directions (0 = off)", "1", 0.0, 1.0)
    ra_gradient: float = _f(0.0, "linear RA gradient across an array: relative RA change from "
                            "edge to edge along a per-instance random direction (0 = off)",
                            "1", -1.0, 1.0)
    diameter_gradient: float = _f(0.0, "linear diameter gradient across an array: relative d "
                                  "change from edge to edge along the same direction (0 = off)",
                                  "1", -1.0, 1.0)


@dataclass(frozen=True, kw_only=True)
class DefectConfig(_Section):
    """Per-device defects; rates may vary per instance (Beta distributed)."""

    _section = "defects"
    stuck_p: float = _f(0.0, "mean rate of devices stuck in P (state never changes)", "1", 0.0, 1.0)
    stuck_ap: float = _f(0.0, "mean rate of devices stuck in AP", "1", 0.0, 1.0)
    short: float = _f(0.0, "mean rate of shorted devices (R = r_short)", "1", 0.0, 1.0)
    open: float = _f(0.0, "mean rate of open devices (G = 0)", "1", 0.0, 1.0)
    dispersion: float = _f(0.0, "instance-to-instance dispersion phi of the rates: Beta with "
                           "variance m(1-m)phi; 0 = fixed rates", "1", 0.0, 1.0, hi_open=True)
    r_short: float = _f(100.0, "resistance of a shorted device", "ohm", 0.0, 1e12, lo_open=True)
    enabled: bool = _f(True, "defects on (false: no defects whatever the rates)")

    def _check(self):
        total = self.stuck_p + self.stuck_ap + self.short + self.open
        if total > 1.0:
            raise ConfigError(
                f"defects.stuck_p + stuck_ap + short + open = {total:g} is out of range: "
                "must be <= 1"
            )


@dataclass(frozen=True, kw_only=True)
class WriteConfig(_Section):
    """Write procedure: reset to the initial state, then one pulse per device whose target
    differs (V/2 disturbs and verify: see the passive-array options)."""

    _section = "write"
    mode: str = _f("physics", "'physics': switching probability from the device model; "
                   "'fixed': every pulse fails with error_rate; 'ideal': every pulse switches",
                   choices=("physics", "fixed", "ideal"))
    error_rate: float = _f(0.0, "write-error probability per pulse in 'fixed' mode", "1", 0.0, 1.0)
    voltage: float = _f(0.6, "write pulse amplitude V_w", "V", 0.0, 100.0, lo_open=True)
    pulse_width: float = _f(20e-9, "write pulse width t_w", "s", 0.0, 1.0, lo_open=True)
    initial: str = _f("ap", "before writing: 'ap' (as-fabricated random states, then a reset "
                      "pulse towards AP with the write's amplitude, width and switching model, "
                      "at the driver's amplitude: no line drop, no disturbs; a failed reset "
                      "leaves the device P), 'ap_ideal' (every device exactly "
                      "AP) or 'random' (as-fabricated random states, no reset)",
                      choices=("ap", "ap_ideal", "random"))
    switching: str = _f("model", "switching probability in 'physics' mode: 'model' (the device "
                        "model) or 'table' (a measured WER(V, pulse width) table, wer_table)",
                        choices=("model", "table"))
    wer_table: str = _f("", "CSV of measured write-error rates with columns voltage (V), "
                        "pulse_width (s), wer and optionally direction (ap_to_p, p_to_ap); "
                        "interpolated in ln WER, linear in V and in ln t; relative paths are "
                        "resolved from the study file's folder")
    scheme: str = _f("none", "half-select biasing: 'none' (no disturb), 'v2' (devices sharing the "
                     "selected row or column see V/2), 'v3' (they see V/3, all others -V/3)",
                     choices=("none", "v2", "v3"))
    order: str = _f("row", "order of device writes: 'row'-major, 'column'-major or 'random'",
                    choices=("row", "column", "random"))
    disturb_rate: float = _f(0.0, "switching probability per half-select in 'fixed' mode", "1",
                             0.0, 1.0)
    verify: bool = _f(False, "read each device back after its pulse and retry when wrong")
    max_retries: int = _f(3, "k_max: retries per device after the first pulse", "", 0, 1000)
    retry_step: float = _f(0.0, "amplitude added to V_w at each retry", "V", 0.0, 10.0)
    verify_scheme: str = _f("half", "unselected lines during a verify read: 'half' (held at "
                            "V_read/2) or 'floating'", choices=("half", "floating"))
    final_verify: bool = _f(True, "with verify: a last read-only pass records readback_fidelity")
    r_driver: float = _f(0.0, "series resistance of each line's write driver and contact, before "
                         "the line's first segment (the segments are read.r_row/r_col + "
                         "r_wire); writes only", "ohm", 0.0, 1e6)
    ir_solver: str = _f("fast", "how a write pulse sees the resistive lines and the array's "
                        "current states: 'fast' (selected row and column exact, other lines "
                        "ideal sources, refined by line Gauss-Seidel sweeps when its error "
                        "estimate exceeds 1e-3; within 0.5 % of 'full'), 'full' (exact nodal "
                        "solve per pulse, O(rows cols^3)), 'off' (ideal V_w, V_w/2, V_w/3)",
                        choices=("fast", "full", "off"))

@dataclass(frozen=True, kw_only=True)
class ReadConfig(_Section):
    """Read path: inputs applied as row voltages x * v_read, columns at virtual ground."""

    _section = "read"
    v_read: float = _f(0.1, "read voltage for an input of 1", "V", 0.0, 100.0, lo_open=True)
    r_row: float = _f(0.0, "wire resistance per cell segment of a row (word line)", "ohm", 0.0,
                      1e6)
    r_col: float = _f(0.0, "wire resistance per cell segment of a column (bit line)", "ohm", 0.0,
                      1e6)
    r_wire: float = _f(0.0, "wire resistance per segment added to both r_row and r_col (one "
                       "field to sweep the two together)", "ohm", 0.0, 1e6)
    bias_tmr: bool = _f(False, "each device's TMR depends on its own read voltage "
                        "(TMR(V) = TMR0/(1+(V/V_h)^2)); solved per sample by fixed-point iteration")
    tolerance: float = _f(1e-9, "fixed-point tolerance (max relative change of G)", "1", 0.0, 1.0,
                          lo_open=True)
    max_iter: int = _f(50, "fixed-point iterations before a read counts as non-converged", "",
                       1, 10000)
    noise: float = _f(0.0, "relative Gaussian noise of each column current per read", "1", 0.0,
                      10.0)
    offset_sigma: float = _f(0.0, "per-column comparator offset sigma (per instance), in units "
                             "of the nominal differential current (G_P - G_AP) V_read", "1",
                             0.0, 1e3)


@dataclass(frozen=True, kw_only=True)
class ArrayConfig(_Section):
    """Crossbar geometry and kind: every layer is placed on its own rows x cols array (or,
    tiled, on several), passive or integrated."""

    _section = "array"
    rows: int = _f(15, "rows (word lines) per array", "", 1, 4096)
    cols: int = _f(15, "columns (bit lines) per array", "", 1, 4096)
    kind: str = _f("passive", "'passive' (selector-less crossbar: half-selects, sneak paths) "
                   "or 'integrated' (each MTJ behind its own access device, 1T1MTJ: a write or "
                   "verify read drives only the selected device through the resistive lines; "
                   "inference reads turn every access device on; needs write.scheme = 'none')",
                   choices=("passive", "integrated"))
    tile_rows: int = _f(0, "layer rows (inputs) placed on one array; a layer with more is split "
                        "over several arrays whose column currents are summed after sensing "
                        "(0 = untiled: the layer must fit; else 1 to array.rows)", "", 0, 4096)
    tile_cols: int = _f(0, "layer columns placed on one array (0 = untiled; else 2 to "
                        "array.cols; a differential pair never straddles two arrays, so an odd "
                        "value leaves the last column of each array unused)", "", 0, 4096)
    device_map: str = _f("", "measured device map (CSV or netCDF, mcmtj.physics.maps) used as "
                         "the devices of every instance: per used device its defect class and "
                         "resistances; relative paths are resolved from the study file's folder")

    def _check(self):
        # tile sizes against rows / cols are checked per sweep point by
        # mcmtj.run.block.check_inputs, so that overrides may come in any order
        if self.tile_cols == 1:
            raise ConfigError("array.tile_cols = 1 is out of range: must be 0 (untiled) or 2 to "
                              "array.cols (a tile holds whole differential pairs)")


@dataclass(frozen=True, kw_only=True)
class NetworkConfig(_Section):
    """Network, its weight solutions, the data and the read-out convention."""

    _section = "network"
    source: str = _f("train", "where solutions come from: 'train' (BinaryMLP on the data set), "
                     "'nist' (NIST text files under nist_path), 'file' (an .npz solution set)",
                     choices=("train", "nist", "file"))
    dataset: str = _f("wine", "'wine' (scikit-learn, fixed stratified split) or 'nist' "
                      "(split files under nist_path)", choices=("wine", "nist"))
    nist_path: str = _f("../../shared/data/nist-wine", "NIST Wine folder; relative paths are "
                        "resolved from the study file's folder")
    solutions_path: str = _f("", "solution set file (.npz) for source = 'file'")
    encoding: str = _f("minmax", "input encoding for 'wine': 'minmax' [0, 1] or 'standard' "
                       "(standardised, clipped to [-1, 1])", choices=("minmax", "standard"))
    eval_split: str = _f("test", "split that 'accuracy' is measured on", choices=("test", "train"))
    eval_train: bool = _f(False, "also record 'accuracy_train' on the training split")
    sensitivity: bool = _f(False, "also record 'sensitivity_fidelity' (device weights computed "
                           "once per solution at the first gnorm on the split that is not "
                           "scored: training when eval_split = 'test')")
    readback: bool = _f(False, "also record 'readback_conductance' per used device (dim "
                        "'device'): what a one-hot calibration read of each cell measures")
    gnorm: float | list[float] = _f(1.0, "read-out gain in units of the nominal G_P - G_AP; "
                                    "a list is evaluated on the same instances (dim 'gnorm')",
                                    "1", 0.0, 1e6, lo_open=True)
    threshold: float = _f(0.0, "sign activation threshold (in units of the normalised current)",
                          "1", -1e6, 1e6)
    hidden: int = _f(6, "hidden units (source = 'train')", "", 1, 4096)
    weights: str = _f("binary", "weight type for source = 'train'", choices=("binary", "ternary"))
    hidden_activation: str = _f("tanh", "hidden activation for source = 'train'",
                                choices=("tanh", "sign"))
    n_solutions: int = _f(300, "solutions trained (source = 'train')", "", 1, 100000)
    epochs: int = _f(200, "training epochs (source = 'train')", "", 1, 100000)
    train_seed: int = _f(0, "seed of the trainer (source = 'train')", "", 0, 2**63 - 1)
    max_solutions: int = _f(0, "use only the first N solutions (0 = all)", "", 0, 100000)


@dataclass(frozen=True, kw_only=True)
class RunConfig(_Section):
    """Monte Carlo run size and seed."""

    _section = "run"
    instances: int = _f(1000, "array instances per solution and sweep point", "", 1, 10**12)
    chunk_size: int = _f(4096, "instances per solution simulated per chunk (bounds memory)", "",
                         1, 10**9)
    seed: int = _f(0, "the one seed of the run", "", 0, 2**64 - 1)


_SECTIONS = {
    "device": DeviceConfig,
    "defects": DefectConfig,
    "write": WriteConfig,
    "read": ReadConfig,
    "array": ArrayConfig,
    "network": NetworkConfig,
    "run": RunConfig,
}
_NUMERIC = (float, int)
_PATH_FIELDS = {"network.nist_path", "network.solutions_path", "write.wer_table",
                "array.device_map"}


def _all_keys() -> dict[str, dataclasses.Field]:
    return {
        f"{sec}.{f.name}": f for sec, cls in _SECTIONS.items() for f in dataclasses.fields(cls)
    }


@dataclass(frozen=True, kw_only=True)
class Study:
    """A whole study: one section per layer plus the swept fields.

    Parameters
    ----------
    device, defects, write, read, array, network, run
        The sections (see each class for fields, units and ranges).
    sweep : tuple of (str, tuple)
        ``(dotted_key, values)`` pairs; the cartesian product of the values
        becomes the sweep dimensions, named after the field (see
        :meth:`sweep_dims`).
    base_dir : str
        Folder that relative paths in the study are resolved from (the study
        file's folder; the working directory for a study built in Python).
    """

    device: DeviceConfig = field(default_factory=DeviceConfig)
    defects: DefectConfig = field(default_factory=DefectConfig)
    write: WriteConfig = field(default_factory=WriteConfig)
    read: ReadConfig = field(default_factory=ReadConfig)
    array: ArrayConfig = field(default_factory=ArrayConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    run: RunConfig = field(default_factory=RunConfig)
    sweep: tuple = ()
    base_dir: str = "."

    def __post_init__(self):
        keys = _all_keys()
        checked = []
        for key, values in self.sweep:
            if key not in keys:
                raise ConfigError(_unknown_key(f"sweep.{key}", [f"sweep.{k}" for k in keys]))
            f = keys[key]
            if key == "network.gnorm":
                raise ConfigError(
                    "sweep.network.gnorm: give network.gnorm a list instead; the gain is swept "
                    "on the same instances (dim 'gnorm')"
                )
            if _field_type(f) not in _NUMERIC or key.startswith("run."):
                raise ConfigError(f"sweep.{key}: only numeric device/circuit fields can be swept")
            if not isinstance(values, (list, tuple)) or len(values) == 0:
                raise ConfigError(f"sweep.{key} must be a non-empty list of values")
            # validate each value through its section (before hashing them below)
            section, name = key.split(".")
            for v in values:
                try:
                    self._with(section, name, v)
                except ConfigError as exc:
                    raise ConfigError(f"sweep.{exc}") from None
            if len(set(values)) != len(values):
                raise ConfigError(f"sweep.{key} has repeated values")
            checked.append((key, tuple(values)))
        if len({k for k, _ in checked}) != len(checked):
            raise ConfigError("sweep names a field twice")
        object.__setattr__(self, "sweep", tuple(checked))

    def _with(self, section: str, name: str, value):
        sec = getattr(self, section)
        return dataclasses.replace(sec, **{name: value})

    # --- construction ----------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict, base_dir: str | Path = ".") -> Study:
        """Build a study from a nested dict (the parsed TOML)."""
        if not isinstance(data, dict):
            raise ConfigError("a study must be a table of sections")
        kwargs = {}
        for key, value in data.items():
            if key == "sweep":
                if not isinstance(value, dict):
                    raise ConfigError("[sweep] must be a table of dotted keys")
                kwargs["sweep"] = tuple(_flatten_sweep(value))
            elif key in _SECTIONS:
                kwargs[key] = _SECTIONS[key].from_dict(value)
            else:
                raise ConfigError(_unknown_key(key, [*_SECTIONS, "sweep"]))
        return cls(**kwargs, base_dir=str(base_dir))

    def replace(self, **overrides) -> Study:
        """A copy with dotted-key overrides, e.g. ``replace(**{"write.error_rate": 0.0})``.

        ``sweep.KEY`` sets a sweep list; the plain key of a swept field replaces
        the sweep by that single value.
        """
        study = self
        keys = _all_keys()
        for key, value in overrides.items():
            if key.startswith("sweep."):
                skey = key[len("sweep."):]
                sweep = [(k, v) for k, v in study.sweep if k != skey]
                if not isinstance(value, (list, tuple)):
                    value = [value]
                study = dataclasses.replace(study, sweep=(*sweep, (skey, tuple(value))))
                continue
            if key not in keys:
                raise ConfigError(_unknown_key(key, list(keys)))
            section, name = key.split(".")
            sweep = tuple((k, v) for k, v in study.sweep if k != key)
            study = dataclasses.replace(
                study, sweep=sweep, **{section: study._with(section, name, value)}
            )
        return study

    # --- sweep --------------------------------------------------------------------
    def sweep_dims(self) -> list[str]:
        """Dimension names of the swept fields: the field name, or the dotted key when two
        sections share a field name."""
        names = [k.split(".")[1] for k, _ in self.sweep]
        return [
            name if names.count(name) == 1 else key
            for name, (key, _) in zip(names, self.sweep, strict=True)
        ]

    @property
    def sweep_shape(self) -> tuple[int, ...]:
        return tuple(len(v) for _, v in self.sweep)

    def points(self):
        """Yield ``(index, study)`` for every sweep point in C order."""
        combos = itertools.product(*(v for _, v in self.sweep))
        for p, combo in enumerate(combos):
            study = self
            for (key, _), value in zip(self.sweep, combo, strict=True):
                section, name = key.split(".")
                study = dataclasses.replace(study, **{section: study._with(section, name, value)})
            yield p, dataclasses.replace(study, sweep=())

    def resolve_path(self, value: str) -> Path:
        """A path field resolved against :attr:`base_dir`."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else (Path(self.base_dir) / p).resolve()

    # --- output -------------------------------------------------------------------
    def to_dict(self) -> dict:
        out = {name: getattr(self, name).to_dict() for name in _SECTIONS}
        if self.sweep:
            out["sweep"] = {k: list(v) for k, v in self.sweep}
        return out

    def to_toml(self) -> str:
        """The full study as TOML text (every field, defaults included)."""
        lines = []
        for name, table in self.to_dict().items():
            lines.append(f"[{name}]")
            for key, value in table.items():
                lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
            lines.append("")
        return "\n".join(lines)


def _toml_key(key: str) -> str:
    return f'"{key}"' if "." in key else key


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + "".join(_toml_char(ch) for ch in value) + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} to TOML")


def _toml_char(ch: str) -> str:
    """One character of a TOML basic string: quote, backslash and control characters escaped."""
    if ch in '"\\':
        return "\\" + ch
    if ord(ch) < 0x20 or ord(ch) == 0x7F:
        return f"\\u{ord(ch):04x}"
    return ch


def _flatten_sweep(table: dict, prefix: str = ""):
    """``{"device": {"diameter": [...]}}`` or ``{"device.diameter": [...]}`` -> pairs."""
    for key, value in table.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _flatten_sweep(value, full + ".")
        else:
            yield full, value


def load_study(path: str | Path, overrides: dict[str, Any] | None = None) -> Study:
    """Read a study TOML file, apply dotted-key overrides and validate.

    Parameters
    ----------
    path : str or Path
        TOML file with sections ``[device]``, ``[defects]``, ``[write]``, ``[read]``,
        ``[array]``, ``[network]``, ``[run]`` and optional ``[sweep]``; missing
        sections and fields take their defaults.
    overrides : dict, optional
        Dotted keys to values, applied after loading (see :meth:`Study.replace`).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ConfigError
        Bad TOML, unknown key (the closest valid key is suggested), bad value.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"study file not found: {path}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    study = Study.from_dict(data, base_dir=path.resolve().parent)
    return study.replace(**overrides) if overrides else study


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``KEY=VALUE`` from the command line into a dotted key and a typed value.

    The value is read as a TOML value (``0.5``, ``true``, ``"tanh"``, ``[1, 2]``);
    a bare word that is not TOML is taken as a string. A relative path given for a
    path field is made absolute against the working directory.
    """
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE")
    key, raw = (s.strip() for s in text.split("=", 1))
    if not key:
        raise ConfigError(f"--set {text!r}: empty key")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    if key in _PATH_FIELDS and isinstance(value, str) and value:
        value = str(Path(value).expanduser().resolve())
    return key, value


def config_reference() -> str:
    """Markdown table of every field: key, default, unit, allowed range, meaning."""
    rows = ["| key | default | unit | allowed | meaning |", "|---|---|---|---|---|"]
    for key, f in _all_keys().items():
        m = f.metadata
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        rows.append(
            f"| `{key}` | `{_toml_value(default)}` | {m['unit']} | {_range_text(m)} | {m['doc']} |"
        )
    return "\n".join(rows)
