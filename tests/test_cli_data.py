"""`regtracks data summary` on good and bad input: one line, exit 1, no traceback."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from regtracks.cli import app
from tests.conftest import write_manifest

runner = CliRunner()


def summary(tiny, *extra, genome=None, markers=None):
    return runner.invoke(
        app,
        [
            "data",
            "summary",
            "--genome",
            str(genome or tiny["fasta"]),
            "--markers",
            str(markers or tiny["manifest"]),
            "--window-len",
            "1000",
            "--split",
            "random",
            *extra,
        ],
    )


def test_summary_table_and_json(tiny):
    r = summary(tiny)
    assert r.exit_code == 0, r.output
    assert "TF1" in r.stdout and "H3K4me3" in r.stdout
    assert "skipped 3 peaks on 1 chromosome(s) absent from the genome: chrUn_random (3)" in r.stderr
    r = summary(tiny, "--json")
    s = json.loads(r.stdout)
    assert s["windows_total"] == 7 + 4 and set(s["splits"]) == {"train", "valid", "test"}
    assert [m["name"] for m in s["markers"]] == ["TF1", "H3K4me3", "DHS"]
    assert set(s["markers"][0]) >= {
        "name",
        "category",
        "intervals",
        "covered_bp",
        "positive_fraction",
    }
    r = summary(tiny, "--json", "--task", "sequence")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["task"] == "sequence"


def _one_line_error(r, *needles):
    assert r.exit_code == 1, r.output
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error:")
    assert "Traceback" not in r.output
    for n in needles:
        assert n in lines[0]


def test_bad_inputs(tiny, tmp_path):
    _one_line_error(summary(tiny, genome=tmp_path / "missing.fa"), "missing.fa", "not found")
    _one_line_error(summary(tiny, markers=tmp_path / "nope.tsv"), "nope.tsv", "not found")
    bad = tmp_path / "bad.tsv"
    bad.write_text("name\tpath\nA\tx.bed\n")
    _one_line_error(summary(tiny, markers=bad), "bad.tsv", "category")
    (tmp_path / "broken.bed").write_text("chr1\t10\t20\nchr1\tabc\t30\n")
    m = write_manifest(
        tmp_path / "m.tsv", [{"name": "A", "category": "TFBS", "path": "broken.bed"}]
    )
    _one_line_error(summary(tiny, markers=m), "broken.bed:2", "not integers")
    (tmp_path / "inv.bed").write_text("chr1\t50\t20\n")
    m = write_manifest(tmp_path / "m2.tsv", [{"name": "A", "category": "TFBS", "path": "inv.bed"}])
    _one_line_error(summary(tiny, markers=m), "inv.bed:1", "bad interval")
    _one_line_error(summary(tiny, "--window-len", "0"), "--window-len")
    _one_line_error(summary(tiny, "--chroms", "chr9"), "chr9")
    _one_line_error(summary(tiny, "--task", "wide"), "wide")
    r = summary(tiny, "--window-len", "abc")
    assert r.exit_code == 2  # usage error


@pytest.mark.parametrize("argv", [["--help"], ["data", "summary", "--help"]])
def test_help_does_not_import_torch(argv):
    code = (
        "import sys\nfrom regtracks.cli import app\n"
        f"try:\n    app({argv!r})\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_python_dash_m(tiny):
    r = subprocess.run(
        [sys.executable, "-m", "regtracks", "--version"], capture_output=True, text=True
    )
    assert r.returncode == 0 and r.stdout.startswith("regtracks ")
