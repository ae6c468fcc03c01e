"""`regtracks demo`: the README's main command runs the whole pipeline and leaves a valid hub."""

import json

from typer.testing import CliRunner

from regtracks.cli import app


def test_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    r = CliRunner().invoke(app, ["demo", "--out", str(out), "--steps", "2", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    for stage in ("1/6 simulate", "2/6 train", "3/6 evaluate", "4/6 predict", "5/6 saliency",
                  "6/6 variants"):  # fmt: skip
        assert stage in r.stderr
    assert "regtracks serve" in r.stderr and "igv_session.xml" in r.stderr
    report = json.loads((out / "run" / "evaluate" / "test" / "report.json").read_text())
    assert set(report["categories"]) == {"TFBS", "Histone", "DNase"}
    manifest = json.loads((out / "hub" / "manifest.json").read_text())
    kinds = [t["kind"] for t in manifest["tracks"]]
    assert kinds.count("prediction") == 12 and kinds.count("saliency") == 1
    # the saliency region holds a planted distal site and its partner 1-5 kb away
    sal = next(t for t in manifest["tracks"] if t["kind"] == "saliency")
    info = json.loads((out / "sim" / "simulation.json").read_text())
    rule = next(m for m in info["markers"] if m["name"] == sal["marker"])
    assert rule["rule"] == "distal"
    chrom, span = sal["provenance"]["region"].split(":")
    s, e = (int(x) for x in span.split("-"))
    centre = (s - 1 + e) // 2
    truth = [ln.split("\t") for ln in (out / "sim" / "truth.bed").read_text().splitlines()]
    here = [((int(a) + int(b)) // 2, m) for c, a, b, m, *_ in truth if c == chrom]
    assert (centre, rule["motif_names"][0]) in here
    assert any(m == rule["partner_name"] and 1_000 <= abs(p - centre) <= 5_000 for p, m in here)
    # variant scores: one row per knock-out and TFBS marker
    rows = (out / "variants.tsv").read_text().splitlines()
    n_vcf = sum(1 for ln in (out / "variants.vcf").read_text().splitlines() if ln[0] != "#")
    assert n_vcf > 0 and len(rows) == 1 + 6 * n_vcf
    assert "knock-outs of planted TFBS sites" in r.stderr
    assert manifest["tracks"][0]["chroms"] == ["chr1", "chr2", "chr3", "chr4"]
    assert (out / "hub" / "genome" / "genome.2bit").is_file()
    assert CliRunner().invoke(app, ["hub", "check", str(out / "hub")]).exit_code == 0
    # a second run keeps the finished stages
    r = CliRunner().invoke(app, ["demo", "--out", str(out), "--steps", "2", "--device", "cpu"])
    assert r.exit_code == 0 and " ".join(r.stderr.split()).count("done earlier, kept") == 2
