"""`regtracks demo`: the README's main command runs the whole pipeline and leaves a valid hub."""

import json

from typer.testing import CliRunner

from regtracks.cli import app


def test_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    r = CliRunner().invoke(app, ["demo", "--out", str(out), "--steps", "2", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    for stage in ("1/4 simulate", "2/4 train", "3/4 evaluate", "4/4 predict"):
        assert stage in r.stderr
    assert "regtracks serve" in r.stderr and "igv_session.xml" in r.stderr
    report = json.loads((out / "run" / "evaluate" / "test" / "report.json").read_text())
    assert set(report["categories"]) == {"TFBS", "Histone", "DNase"}
    manifest = json.loads((out / "hub" / "manifest.json").read_text())
    assert len(manifest["tracks"]) == 12
    assert manifest["tracks"][0]["chroms"] == ["chr1", "chr2", "chr3", "chr4"]
    assert (out / "hub" / "genome" / "genome.2bit").is_file()
    assert CliRunner().invoke(app, ["hub", "check", str(out / "hub")]).exit_code == 0
    # a second run keeps the finished stages
    r = CliRunner().invoke(app, ["demo", "--out", str(out), "--steps", "2", "--device", "cpu"])
    assert r.exit_code == 0 and " ".join(r.stderr.split()).count("done earlier, kept") == 2
