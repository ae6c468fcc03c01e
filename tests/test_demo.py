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


def test_saliency_peaks_by_hand(tmp_path):
    """Peaks of |saliency| summed over 15 bp, at least 15 bp apart, with the nearest site."""
    import numpy as np
    import pyBigWig

    from regtracks.demo import saliency_peaks

    v = np.zeros(2_000)
    v[500:515] = -3.0  # strongest (|.|), centred 507 (0-based) -> 1-based 1,508 in chr:1001-
    v[1200:1215] = 2.0
    v[1220:1222] = 1.0  # weaker, 20 bp off the second; not a site
    path = tmp_path / "s.bw"
    with pyBigWig.open(str(path), "w") as bw:
        bw.addHeader([("c", 10_000)])
        bw.addEntries("c", 1_000, values=v.tolist(), span=1, step=1)
    sites = {"CTCF": np.array([1_507, 5_000]), "MAX": np.array([2_230])}
    peaks = saliency_peaks(path, "c:1,001-3,000", sites, k=2)
    assert [p["position"] for p in peaks] == [1_000 + 507 + 1, 1_000 + 1_207 + 1]
    assert peaks[0]["score"] == 45.0 and peaks[1]["score"] == 30.0
    assert (peaks[0]["nearest_motif"], peaks[0]["distance"], peaks[0]["on_site"]) == (
        "CTCF",
        0,
        True,
    )
    assert (peaks[1]["nearest_motif"], peaks[1]["distance"]) == ("MAX", 2_230 - 2_207)
    assert peaks[1]["on_site"] is False
