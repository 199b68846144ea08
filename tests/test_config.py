"""Study config: validation names the field, unknown keys get a suggestion, TOML round trip."""

import tomllib

import pytest

from mcmtj import ConfigError, Study, load_study
from mcmtj.config import config_reference, parse_override


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ({"device.diameter": -1e-9}, ["device.diameter", "> 0"]),
        ({"write.error_rate": 1.5}, ["write.error_rate", "<= 1"]),
        ({"defects.stuck_p": 0.7, "defects.short": 0.5}, ["defects.stuck_p", "<= 1"]),
        ({"write.mode": "magic"}, ["write.mode", "'physics'"]),
        ({"network.gnorm": [1.0, -2.0]}, ["network.gnorm", "> 0"]),
        ({"device.variation": "yes"}, ["device.variation", "true or false"]),
        ({"array.rows": 2.5}, ["array.rows", "whole number"]),
        ({"device.tmr": float("nan")}, ["device.tmr", "not finite"]),
    ],
)
def test_bad_values_name_the_field(override, words):
    with pytest.raises(ConfigError) as err:
        Study().replace(**override)
    for word in words:
        assert word in str(err.value)


def test_unknown_key_suggests_closest():
    with pytest.raises(ConfigError, match="did you mean 'device.diameter'"):
        Study().replace(**{"device.diamter": 1e-9})
    with pytest.raises(ConfigError, match="did you mean 'write'"):
        Study.from_dict({"wrte": {}})


def test_toml_round_trip_and_sweep(tmp_path):
    study = Study().replace(**{
        "write.error_rate": 0.01, "network.gnorm": [0.5, 1.0],
        "sweep.device.diameter": [40e-9, 60e-9], "sweep.defects.stuck_p": [0.0, 0.01, 0.02],
    })
    path = tmp_path / "s.toml"
    path.write_text(study.to_toml())
    again = load_study(path)
    assert again.to_dict() == study.to_dict()
    assert again.sweep_dims() == ["diameter", "stuck_p"]
    assert again.sweep_shape == (2, 3)
    points = list(again.points())
    assert len(points) == 6
    assert points[4][1].device.diameter == 60e-9 and points[4][1].defects.stuck_p == 0.01
    assert tomllib.loads(study.to_toml())["sweep"]["device.diameter"] == [40e-9, 60e-9]


def test_sweep_validation():
    with pytest.raises(ConfigError, match="sweep.device.diameter"):
        Study().replace(**{"sweep.device.diameter": [60e-9, -1e-9]})
    with pytest.raises(ConfigError, match="network.gnorm"):
        Study().replace(**{"sweep.network.gnorm": [1.0, 2.0]})
    with pytest.raises(ConfigError, match="sweep.write.mode"):
        Study().replace(**{"sweep.write.mode": ["fixed"]})


def test_nested_sweep_table_and_missing_file(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[sweep]\ndevice.diameter = [4e-8, 6e-8]\n[write]\nmode = "fixed"\n')
    study = load_study(path, {"write.error_rate": 0.1})
    assert study.sweep == (("device.diameter", (4e-8, 6e-8)),)
    assert study.write.error_rate == 0.1
    with pytest.raises(FileNotFoundError, match="nope.toml"):
        load_study(tmp_path / "nope.toml")
    path.write_text("[device\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_study(path)


def test_parse_override():
    assert parse_override("write.error_rate=0") == ("write.error_rate", 0)
    assert parse_override("network.gnorm=[0.5, 1]") == ("network.gnorm", [0.5, 1])
    assert parse_override("write.mode=fixed") == ("write.mode", "fixed")
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_override("write.mode")


def test_reference_lists_every_field():
    table = config_reference()
    assert "`device.diameter`" in table and "`run.seed`" in table


def test_readme_config_reference_is_current():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    marker = "<!-- config-reference:start -->\n"
    start = readme.index(marker) + len(marker)
    end = readme.index("<!-- config-reference:end -->")
    assert readme[start:end].strip() == config_reference().strip(), (
        "README's configuration table is stale: paste mcmtj.config.config_reference()")
