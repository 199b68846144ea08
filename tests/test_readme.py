"""README.md's "Writing a study": its example study loads and runs as the text says."""

from __future__ import annotations

import re
from pathlib import Path

import mcmtj

README = Path(__file__).resolve().parents[1] / "README.md"


def example_toml() -> str:
    text = README.read_text(encoding="utf-8")
    block = re.search(r"<!-- writing-a-study:start -->\n```toml\n(.*?)```\n"
                      r"<!-- writing-a-study:end -->", text, re.S)
    assert block, "README.md lost its 'Writing a study' example"
    return block.group(1)


def test_writing_a_study_example_loads_and_runs_as_described(tmp_path):
    path = tmp_path / "my_study.toml"
    path.write_text(example_toml())
    study = mcmtj.load_study(path)
    # what the section says about it: a 2 x 2 grid, one dim per swept key
    assert study.sweep_dims() == ["diameter", "stuck_p"]
    assert study.sweep_shape == (2, 2)
    assert study.device.diameter_sigma == 2e-9 and study.write.voltage == 0.80
    assert (study.network.n_solutions, study.run.instances, study.run.seed) == (10, 200, 1)
    # and it runs (a few instances only; the README's table comes from the full command)
    ds = mcmtj.simulate(study.replace(**{"network.epochs": 5}), instances=3, progress=False)
    assert ds.accuracy.dims == ("diameter", "stuck_p", "solution", "instance")
    assert ds.accuracy.sel(diameter=40e-9, stuck_p=0.01).shape == (10, 3)
