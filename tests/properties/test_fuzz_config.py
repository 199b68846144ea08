"""Fuzzing the study loader and the ``--set`` parser (Hypothesis).

Whatever the TOML text -- random types, NaN/inf, huge numbers, missing sections, unknown
keys, nested tables where numbers belong -- the only outcomes allowed are a valid
:class:`~mcmtj.Study` or a :class:`~mcmtj.ConfigError` (``FileNotFoundError`` for a
missing file) whose message is one line and names the offending key. Never another
exception type, never a hang.

Bounded example counts run by default; the ``slow`` variants run many more.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mcmtj
from mcmtj.config import (
    ArrayConfig,
    ConfigError,
    DefectConfig,
    DeviceConfig,
    NetworkConfig,
    ReadConfig,
    RunConfig,
    WriteConfig,
    load_study,
    parse_override,
)

SECTIONS = {"device": DeviceConfig, "defects": DefectConfig, "write": WriteConfig,
            "read": ReadConfig, "array": ArrayConfig, "network": NetworkConfig,
            "run": RunConfig}
KEYS = sorted(f"{s}.{f.name}" for s, cls in SECTIONS.items() for f in dataclasses.fields(cls))
FAST = settings(max_examples=50, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SLOW = settings(max_examples=400, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# --- TOML values and their text ------------------------------------------------------------
names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=12)
scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, 1, -1, 2**63 - 1, -(2**63), 10**12, 10**12 + 1, 4096, 4097]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, 0.0, -0.0]),
    st.text(max_size=16),
    st.sampled_from(["physics", "fixed", "ideal", "train", "nist", "tanh", "", "1e-9"]),
    st.dates(),
    st.datetimes(timezones=st.just(dt.UTC)),
)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(names, children,
                                                                       max_size=3),
    max_leaves=8,
)


def toml_string(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_string(k)} = {toml_value(v)}"
                               for k, v in value.items()) + "}"
    raise TypeError(value)


_FOLDER = Path(tempfile.mkdtemp(prefix="mcmtj-fuzz-"))


def load_text(text: str):
    """load_study on ``text``: the Study, or the ConfigError (anything else fails)."""
    path = _FOLDER / "study.toml"
    path.write_text(text, encoding="utf-8")
    try:
        return load_study(path)
    except ConfigError as exc:
        message = str(exc)
        assert message and "\n" not in message, repr(message)
        return exc


def assert_roundtrip(study):
    """A study that loads writes TOML that loads back to the same study."""
    again = load_text(study.to_toml())
    assert not isinstance(again, ConfigError), again
    assert again.to_toml() == study.to_toml()


def names_key(message: str, key: str) -> bool:
    """The message names ``key`` (as typed, or escaped the way repr() shows it)."""
    return key in message or repr(key)[1:-1] in message


# --- properties ----------------------------------------------------------------------------
def one_field(key, value):
    section, name = key.split(".")
    result = load_text(f"[{section}]\n{toml_string(name)} = {toml_value(value)}\n")
    if isinstance(result, ConfigError):
        assert names_key(str(result), key), (key, str(result))
    else:
        assert_roundtrip(result)


def unknown_key(section, name, value):
    result = load_text(f"[{section}]\n{toml_string(name)} = {toml_value(value)}\n")
    assert isinstance(result, ConfigError)
    assert names_key(str(result), f"{section}.{name}")


def sweep_entry(key, value):
    result = load_text(f"[sweep]\n{toml_string(key)} = {toml_value(value)}\n")
    if isinstance(result, ConfigError):
        assert names_key(str(result), f"sweep.{key}"), (key, str(result))
    else:
        assert_roundtrip(result)


def whole_document(doc):
    text = "\n".join(
        f"[{toml_string(section)}]\n" + "".join(f"{toml_string(k)} = {toml_value(v)}\n"
                                               for k, v in table.items())
        for section, table in doc.items())
    result = load_text(text)
    if not isinstance(result, ConfigError):
        assert_roundtrip(result)


def raw_text(text):
    result = load_text(text)
    if not isinstance(result, ConfigError):
        assert_roundtrip(result)


def set_option(text):
    try:
        key, value = parse_override(text)
        study = mcmtj.Study().replace(**{key: value})
    except ConfigError as exc:
        message = str(exc)
        assert message and "\n" not in message
        key = text.split("=", 1)[0].strip()
        if "=" in text and key:
            assert names_key(message, key) or "--set" in message, message
        return
    assert_roundtrip(study)


documents = st.dictionaries(
    st.sampled_from([*SECTIONS, "sweep"]) | names,
    st.dictionaries(st.sampled_from([k.split(".")[1] for k in KEYS]) | names, values,
                    max_size=4),
    max_size=4,
)
set_texts = st.one_of(
    st.text(max_size=30),
    st.builds(lambda k, v: f"{k}={toml_value(v)}", st.sampled_from(KEYS), values),
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(KEYS), st.text(max_size=12)),
    st.builds(lambda k, v: f"sweep.{k}={toml_value(v)}", st.sampled_from(KEYS), values),
)
sweep_keys = st.sampled_from(KEYS) | st.builds(lambda a, b: f"{a}.{b}", names, names)

CASES = {
    "one_field": (one_field, (st.sampled_from(KEYS), values)),
    "unknown_key": (unknown_key, (st.sampled_from(list(SECTIONS)),
                                  names.filter(lambda n: n not in {k.split(".")[1]
                                                                   for k in KEYS}),
                                  values)),
    "sweep_entry": (sweep_entry, (sweep_keys, values | st.lists(scalars, min_size=1,
                                                                  max_size=5))),
    "whole_document": (whole_document, (documents,)),
    "raw_text": (raw_text, (st.text(max_size=200),)),
    "set_option": (set_option, (set_texts,)),
}


@pytest.mark.parametrize("case", CASES)
def test_fuzz(case):
    func, strategies = CASES[case]
    FAST(given(*strategies)(func))()


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_fuzz_many(case):
    func, strategies = CASES[case]
    SLOW(given(*strategies)(func))()


def test_huge_sizes_load_fast_and_out_of_range_is_named():
    study = load_text("[run]\ninstances = 1000000000000\nchunk_size = 1000000000\n")
    assert study.run.instances == 10**12
    for key, value in (("run.instances", 10**13), ("array.rows", 10**9),
                       ("network.n_solutions", 2**63 - 1)):
        section, name = key.split(".")
        result = load_text(f"[{section}]\n{name} = {value}\n")
        assert isinstance(result, ConfigError) and key in str(result)
    big = load_text("[sweep]\n\"device.diameter\" = ["
                    + ", ".join(f"{(i + 1) * 1e-10!r}" for i in range(5000)) + "]\n")
    assert big.sweep_shape == (5000,)


def test_missing_file_and_sections():
    with pytest.raises(FileNotFoundError, match="nowhere.toml"):
        load_study(_FOLDER / "nowhere.toml")
    assert load_text("") == mcmtj.Study(base_dir=str(_FOLDER))


@pytest.mark.parametrize("text", ['"array.cols" = [[1], [2]]', '"device.diameter" = [{a = 1}]'])
def test_sweep_values_that_are_lists_or_tables_are_a_config_error(text):
    result = load_text(f"[sweep]\n{text}\n")
    assert isinstance(result, ConfigError) and "sweep." in str(result)


@pytest.mark.parametrize("path", ["a\x1bb", "line\nbreak", "del\x7f"])
def test_strings_with_control_characters_roundtrip_through_toml(path):
    study = mcmtj.Study().replace(**{"network.solutions_path": path})
    again = load_text(study.to_toml())
    assert not isinstance(again, ConfigError) and again.network.solutions_path == path
