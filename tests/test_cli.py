"""Command line: runs, summaries, and one-line errors with no output file."""

import subprocess
import sys

import pytest
from small_studies import CLI_STUDY

from mcmtj.cli import main


@pytest.fixture()
def tiny_study(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(CLI_STUDY)
    return path


def test_run_and_info(tiny_study, tmp_path, capsys):
    out = tmp_path / "r.nc"
    png = tmp_path / "r.png"
    assert main(["run", str(tiny_study), "-o", str(out), "--seed", "3", "--threads", "1",
                 "--set", "defects.stuck_p=0.01", "--plot", str(png), "--quiet"]) == 0
    assert out.is_file() and png.is_file()
    table = capsys.readouterr().out
    assert "median_acc" in table and "4e-08" in table
    assert main(["info", str(out), "--target", "0.8"]) == 0
    text = capsys.readouterr().out
    assert "seed 3" in text and "yield@0.8" in text
    import mcmtj

    ds = mcmtj.open_results(out)
    assert ds.attrs["seed"] == "3" and "stuck_p = 0.01" in ds.attrs["study"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--set", "device.diameter=-1e-9"], "device.diameter"),
        (["--set", "write.error_rate=1.5"], "write.error_rate"),
        (["--set", "device.diamter=1e-9"], "did you mean 'device.diameter'"),
        (["--set", "array.cols=4"], "does not fit"),
        (["--set", "network.source=nist", "--set", "network.nist_path=/nonexistent/nist"],
         "/nonexistent/nist"),
    ],
)
def test_bad_input_one_line_no_output(tiny_study, tmp_path, args, words):
    out = tmp_path / "bad.nc"
    proc = subprocess.run(
        [sys.executable, "-m", "mcmtj.cli", "run", str(tiny_study), "-o", str(out), *args],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mcmtj: error:"), proc.stderr
    assert words in lines[0]
    assert list(tmp_path.iterdir()) == [tiny_study]


def test_missing_study_file(tmp_path, capsys):
    assert main(["run", str(tmp_path / "none.toml"), "-o", str(tmp_path / "x.nc")]) == 2
    assert "none.toml" in capsys.readouterr().err
