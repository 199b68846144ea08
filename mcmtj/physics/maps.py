"""Device maps: one die's devices (defect class and resistances), measured or sampled.

A map fixes the devices of a study's instances (``array.device_map``): every instance
then uses the map's resistances and defects instead of sampling them, while the write
(its randomness, the switching barrier and critical current, which the device model
still samples from the instance's streams), the lines and the read run as usual. So a
measured die can be studied beside sampled ones, and a die sampled by one run can be
saved (:func:`mcmtj.run.maps.instance_device_map`) and studied again.

File format (CSV, or netCDF with the same variables along one dimension ``device``)
-- one row per used device, in the network's coordinates (not those of the tiles):

======== ==================================================================
column   meaning
======== ==================================================================
layer    layer index, 0-based
row      input index f of the layer (its row on the array)
col      column of the layer: 2 j is the plus device of output j, 2 j + 1 its
         minus device
defect   ``none``, ``stuck_p``, ``stuck_ap``, ``short`` or ``open`` (netCDF: these
         names, or the codes 0-4 of :mod:`mcmtj.physics.device`)
r_p      resistance in the parallel state, ohm (finite, > 0)
r_ap     resistance in the antiparallel state, ohm (finite, >= r_p)
======== ==================================================================

Every device of every layer appears exactly once. For ``short`` and ``open`` devices the
resistances are not used (a short conducts ``1 / defects.r_short``, an open nothing) and
may be any number that is not NaN (``inf`` included). Lines starting with ``#`` are
comments.

Semantics shared with the trainer: a binary weight +1 is the pair (P, AP), -1 is (AP, P)
(state 1 = P, 0 = AP); :func:`map_conductances` gives the conductance each device of a
map shows when a layer's target states are written into it without write errors.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from mcmtj.physics.device import (
    DEFECT_NONE,
    DEFECT_OPEN,
    DEFECT_SHORT,
    DEFECT_STUCK_AP,
    DEFECT_STUCK_P,
    STATE_P,
)

__all__ = ["DeviceMap", "DEFECT_NAMES", "load_device_map", "save_device_map",
           "map_conductances", "written_conductances"]

#: defect class names in the map files, by code
DEFECT_NAMES = {DEFECT_NONE: "none", DEFECT_STUCK_P: "stuck_p", DEFECT_STUCK_AP: "stuck_ap",
                DEFECT_SHORT: "short", DEFECT_OPEN: "open"}
_CODES = {name: code for code, name in DEFECT_NAMES.items()}
_COLUMNS = ("layer", "row", "col", "defect", "r_p", "r_ap")


@dataclass(frozen=True)
class DeviceMap:
    """One die's devices, per layer.

    Attributes
    ----------
    defect : tuple of ndarray of int8, each (n_in, 2 n_out)
        Defect codes (:mod:`mcmtj.physics.device`: 0 none, 1 stuck-P, 2 stuck-AP, 3 short,
        4 open).
    r_p, r_ap : tuple of ndarray of float64, each (n_in, 2 n_out)
        Resistances in the P and AP states, ohm.
    """

    defect: tuple
    r_p: tuple
    r_ap: tuple

    @property
    def layer_shapes(self) -> list[tuple[int, int]]:
        """(n_in, n_out) per layer, as :attr:`SolutionSet.layer_shapes`."""
        return [(d.shape[0], d.shape[1] // 2) for d in self.defect]

    def check_shapes(self, layer_shapes, path="device map") -> None:
        """Raise ``ValueError`` unless the map covers exactly a network of ``layer_shapes``."""
        mine = self.layer_shapes
        want = [tuple(int(x) for x in s) for s in layer_shapes]
        if mine != want:
            show = ", ".join(f"{n} x {2 * m}" for n, m in want)
            have = ", ".join(f"{n} x {2 * m}" for n, m in mine)
            raise ValueError(f"{path}: the map has layers of {have} devices but the network "
                             f"needs {show} (rows x columns)")


def map_conductances(device_map: DeviceMap, states, r_short: float) -> list[np.ndarray]:
    """Conductance of each device of a map with given target states written without error.

    Parameters
    ----------
    device_map : DeviceMap
    states : sequence of ndarray, each (..., n_in, 2 n_out)
        Target states per layer (1 = P, 0 = AP), e.g. ``SolutionSet.states``.
    r_short : float
        Resistance of a shorted device, ohm (``defects.r_short``).

    Returns
    -------
    list of ndarray, each of its states' shape, S
        short: 1 / r_short; open: 0; stuck-P: 1 / r_p; stuck-AP: 1 / r_ap; otherwise
        1 / r_p in state P and 1 / r_ap in state AP.
    """
    out = []
    for d, rp, rap, st in zip(device_map.defect, device_map.r_p, device_map.r_ap, states,
                              strict=True):
        st = np.asarray(st)
        healthy = (d != DEFECT_SHORT) & (d != DEFECT_OPEN)
        g_p = 1.0 / np.where(healthy, rp, 1.0)
        g_ap = 1.0 / np.where(healthy, rap, 1.0)
        in_p = np.where(d == DEFECT_STUCK_P, True,
                        np.where(d == DEFECT_STUCK_AP, False, st == STATE_P))
        g = np.where(in_p, g_p, g_ap)
        g = np.where(d == DEFECT_SHORT, 1.0 / r_short, np.where(d == DEFECT_OPEN, 0.0, g))
        out.append(g)
    return out


def written_conductances(device_map: DeviceMap, r_short: float) -> list[np.ndarray]:
    """Per layer, each device's conductance when written P and when written AP.

    The trainer's map layout (:class:`mcmtj.networks.trainer.BinaryMLP` ``device_map``,
    after dividing by the nominal G_P - G_AP): :func:`map_conductances` for all-P and
    all-AP targets.

    Returns
    -------
    list of ndarray, each (n_in, 2 n_out, 2), S
        ``[..., 0]``: written P; ``[..., 1]``: written AP.
    """
    ones = [np.ones(d.shape, np.uint8) for d in device_map.defect]
    zeros = [np.zeros(d.shape, np.uint8) for d in device_map.defect]
    return [np.stack([p, ap], axis=-1) for p, ap in zip(
        map_conductances(device_map, ones, r_short), map_conductances(device_map, zeros, r_short),
        strict=True)]


def _fail(path, text):
    raise ValueError(f"{path}: {text}")


def _from_table(path, layer, row, col, defect, r_p, r_ap) -> DeviceMap:
    """Validate the columns of a map and shape them per layer."""
    n = len(layer)
    if n == 0:
        _fail(path, "the map has no devices")
    codes = np.empty(n, np.int8)
    for i, d in enumerate(defect):
        if isinstance(d, str):
            d = d.strip()
            if d not in _CODES:
                _fail(path, f"device {i} (layer {layer[i]}, row {row[i]}, col {col[i]}): defect "
                      f"{d!r} is not one of {', '.join(_CODES)}")
            codes[i] = _CODES[d]
        else:
            if d not in DEFECT_NAMES:
                _fail(path, f"device {i}: defect code {d!r} is not one of 0-4")
            codes[i] = d
    idx = []
    for name, values in (("layer", layer), ("row", row), ("col", col)):
        try:
            arr = np.array([float(v) for v in values])
        except (TypeError, ValueError):
            _fail(path, f"column {name!r} must hold whole numbers")
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)) or np.any(arr < 0):
            bad = int(np.flatnonzero(~np.isfinite(arr) | (arr != np.round(arr)) | (arr < 0))[0])
            _fail(path, f"device {bad}: {name} = {values[bad]!r} must be a whole number >= 0")
        idx.append(arr.astype(np.int64))
    layer, row, col = idx
    res = []
    for name, values in (("r_p", r_p), ("r_ap", r_ap)):
        try:
            res.append(np.array([float(v) for v in values]))
        except (TypeError, ValueError):
            _fail(path, f"column {name!r} must hold numbers (ohm)")
    r_p, r_ap = res
    healthy = (codes != DEFECT_SHORT) & (codes != DEFECT_OPEN)
    for name, arr in (("r_p", r_p), ("r_ap", r_ap)):
        bad = np.isnan(arr) | (healthy & ~(np.isfinite(arr) & (arr > 0)))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            _fail(path, f"device {i} (layer {layer[i]}, row {row[i]}, col {col[i]}): {name} = "
                  f"{float(arr[i])!r} is out of range: must be finite and > 0 ohm (any non-NaN "
                  "value for a short or open device)")
    bad = healthy & (r_ap < r_p)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        _fail(path, f"device {i} (layer {layer[i]}, row {row[i]}, col {col[i]}): r_ap = "
              f"{float(r_ap[i])!r} is out of range: must be >= r_p = {float(r_p[i])!r}")
    defects, rps, raps = [], [], []
    for l in range(int(layer.max()) + 1):
        sel = layer == l
        if not sel.any():
            _fail(path, f"layer {l} has no devices (layers must be 0 .. {int(layer.max())})")
        n_in, n_c = int(row[sel].max()) + 1, int(col[sel].max()) + 1
        if n_c % 2:
            _fail(path, f"layer {l} has {n_c} columns: must be even (a pair per output)")
        count = np.zeros((n_in, n_c), np.int64)
        np.add.at(count, (row[sel], col[sel]), 1)
        if np.any(count != 1):
            r, c = (int(x[0]) for x in np.nonzero(count != 1))
            what = "is missing" if count[r, c] == 0 else "appears more than once"
            _fail(path, f"layer {l}, row {r}, col {c} {what}: the map must list every device "
                  f"of the layer's {n_in} x {n_c} once")
        d = np.zeros((n_in, n_c), np.int8)
        a = np.zeros((n_in, n_c))
        b = np.zeros((n_in, n_c))
        d[row[sel], col[sel]] = codes[sel]
        a[row[sel], col[sel]] = r_p[sel]
        b[row[sel], col[sel]] = r_ap[sel]
        defects.append(d)
        rps.append(a)
        raps.append(b)
    return DeviceMap(tuple(defects), tuple(rps), tuple(raps))


def load_device_map(path) -> DeviceMap:
    """Read a device map from CSV (``.csv``) or netCDF (``.nc``); format in the module
    docstring.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        A missing column, an unknown defect class, a NaN or out-of-range resistance, a
        device missing or listed twice; the message names the file and the device.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"device map not found: {path}")
    if path.suffix == ".nc":
        try:
            with xr.open_dataset(path, engine="h5netcdf") as ds:
                missing = [c for c in _COLUMNS if c not in ds.variables]
                if missing:
                    _fail(path, f"missing variable(s) {', '.join(missing)} (a map needs "
                          f"{', '.join(_COLUMNS)})")
                cols = {c: ds[c].values.tolist() for c in _COLUMNS}
        except (OSError, ValueError) as exc:
            if str(exc).startswith(str(path)):
                raise
            _fail(path, f"not a readable netCDF device map ({exc})")
        return _from_table(path, *(cols[c] for c in _COLUMNS))
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            lines = [line for line in fh if line.strip() and not line.lstrip().startswith("#")]
    except UnicodeDecodeError:
        _fail(path, "not a text (CSV) file; a netCDF map must end in .nc")
    reader = csv.DictReader(lines)
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in _COLUMNS if c not in header]
    if missing:
        _fail(path, f"missing column(s) {', '.join(missing)} (header must name "
              f"{', '.join(_COLUMNS)})")
    cols = {c: [] for c in _COLUMNS}
    for record in reader:
        record = {k.strip(): (v or "").strip() for k, v in record.items() if k is not None}
        for c in _COLUMNS:
            cols[c].append(record.get(c, ""))
    return _from_table(path, *(cols[c] for c in _COLUMNS))


def save_device_map(device_map: DeviceMap, path) -> Path:
    """Write a device map to CSV (``.csv``) or netCDF (``.nc``); :func:`load_device_map`
    reads it back exactly (resistances written with 17 significant digits)."""
    path = Path(path)
    rows = []
    for l, (d, rp, rap) in enumerate(zip(device_map.defect, device_map.r_p, device_map.r_ap,
                                         strict=True)):
        for r in range(d.shape[0]):
            for c in range(d.shape[1]):
                rows.append((l, r, c, int(d[r, c]), float(rp[r, c]), float(rap[r, c])))
    if path.suffix == ".nc":
        arr = list(zip(*rows, strict=True))
        ds = xr.Dataset(
            {name: ("device", np.asarray(values)) for name, values in zip(_COLUMNS, arr,
                                                                           strict=True)},
            attrs={"title": "mcmtj device map", "defect_codes": ", ".join(
                f"{k} = {v}" for k, v in DEFECT_NAMES.items())})
        ds["r_p"].attrs["units"] = ds["r_ap"].attrs["units"] = "ohm"
        ds.to_netcdf(path, engine="h5netcdf")
        return path
    with path.open("w", newline="", encoding="utf-8") as fh:
        fh.write("# mcmtj device map: resistances in ohm; defect none|stuck_p|stuck_ap|short|"
                 "open\n")
        writer = csv.writer(fh)
        writer.writerow(_COLUMNS)
        for l, r, c, d, rp, rap in rows:
            writer.writerow((l, r, c, DEFECT_NAMES[d], _num(rp), _num(rap)))
    return path


def _num(x: float) -> str:
    return repr(x) if math.isfinite(x) else ("inf" if x > 0 else "-inf")
