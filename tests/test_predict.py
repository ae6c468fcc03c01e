"""`regtracks predict`: bigWig values equal the model's predictions, bins are exact means,
gaps carry no data, headers follow the FASTA index; bad input fails cleanly."""

import json
import os
import stat

import numpy as np
import pyBigWig
import pytest
import torch
from typer.testing import CliRunner

from regtracks.checkpoint import load_checkpoint
from regtracks.cli import app
from regtracks.data.genome import Genome, one_hot

runner = CliRunner()


def predict(run, out, *args):
    return runner.invoke(app, ["predict", str(run), "--out", str(out), "--writers", "0", *args])


def model_probs(run, chrom, genome):
    """Per-base probabilities of one long input: the whole chromosome in one forward pass."""
    ck = load_checkpoint(run / "best.pt")
    model = ck.build_model()
    x = torch.from_numpy(one_hot(genome.fetch(chrom, 0, genome.sizes[chrom])))[None]
    with torch.no_grad():
        return torch.sigmoid(model(x))[0].numpy(), model.receptive_field


def test_values_equal_model_and_bins_are_exact(trained_run, sim_small, tmp_path):
    g = Genome(sim_small / "genome.fa")
    hub = tmp_path / "hub"
    r = predict(trained_run, hub, "--chrom", "chr2", "--bin-size", "1", "--markers", "DNase")
    assert r.exit_code == 0, r.output
    probs, rf = model_probs(trained_run, "chr2", g)
    m = [ln.split("\t")[0] for ln in (sim_small / "markers.tsv").read_text().splitlines()[1:]]
    k = m.index("DNase")
    with pyBigWig.open(str(hub / "tracks" / "pred_DNase.bw")) as bw:
        assert list(bw.chroms().items()) == list(g.sizes.items())  # FASTA index order and sizes
        rng = np.random.default_rng(0)
        for p in rng.integers(rf, 60_000 - rf, size=50):
            assert bw.values("chr2", int(p), int(p) + 1)[0] == pytest.approx(probs[k, p], abs=2e-6)
        # telomeric N run (600 bp) is an assembly gap: no data
        ns, ne = g.n_runs("chr2")
        assert ns[0] == 0 and ne[0] >= 100
        assert bw.intervals("chr2", 0, int(ne[0])) in (None, ())
        assert bw.intervals("chr1") is None  # not predicted
    hub2 = tmp_path / "hub128"
    r = predict(trained_run, hub2, "--chrom", "chr2", "--bin-size", "128", "--category", "DNase")
    assert r.exit_code == 0, r.output
    with pyBigWig.open(str(hub2 / "tracks" / "pred_DNase.bw")) as bw:
        ivs = bw.intervals("chr2")
        assert ivs[-1][1] == 60_000  # the last partial bin ends at the chromosome end
        for s, e, v in ivs:
            assert e - s <= 128 and s % 128 == 0
            if s >= rf and e <= 60_000 - rf:
                assert v == pytest.approx(probs[k, s:e].mean(), abs=2e-6)


def test_manifest_hub_resume_and_provenance(trained_run, tmp_path):
    hub = tmp_path / "hub"
    assert runner.invoke(app, ["evaluate", str(trained_run), "--workers", "0"]).exit_code == 0
    r = predict(trained_run, hub, "--chrom", "chr1")
    assert r.exit_code == 0, r.output
    man = json.loads((hub / "manifest.json").read_text())
    assert man["genome"]["chrom_sizes"][0] == ["chr1", 60_000]
    t = man["tracks"][0]
    assert t["kind"] == "prediction" and t["bin_size"] == 128 and t["chroms"] == ["chr1"]
    prov = t["provenance"]
    assert prov["model"] == "dilated" and len(prov["checkpoint_sha256"]) == 64
    assert prov["window_len"] == 2000 and "test_pr_auc" in prov
    assert (hub / "hub.txt").is_file() and (hub / "igv.html").is_file()
    assert runner.invoke(app, ["hub", "check", str(hub)]).exit_code == 0
    before = {p.name: p.stat().st_mtime_ns for p in (hub / "tracks").iterdir()}
    r = predict(trained_run, hub, "--chrom", "chr1", "--resume")
    assert r.exit_code == 0 and "kept 4 complete track(s)" in r.stderr
    assert {p.name: p.stat().st_mtime_ns for p in (hub / "tracks").iterdir()} == before
    # other chromosomes: redone, never a leftover temporary
    r = predict(trained_run, hub, "--chrom", "chr1", "--chrom", "chr3", "--resume")
    assert r.exit_code == 0 and "wrote 4 track(s) over 2 chromosome(s)" in r.stderr
    assert not [p for p in (hub / "tracks").iterdir() if p.name.startswith(".")]


def _error(r, *needles):
    assert r.exit_code == 1, r.output
    line = [ln for ln in r.stderr.strip().splitlines() if ln.strip()][-1]
    assert line.startswith("error:") and "Traceback" not in r.output
    for n in needles:
        assert n in line, line


def test_bad_input(trained_run, tmp_path):
    out = tmp_path / "hub"
    _error(predict(trained_run, out, "--chrom", "chr9"), "chr9", "valid: chr1, chr2, chr3, chr4")
    _error(predict(trained_run, out, "--chrom", "chr1", "--markers", "NOPE"), "NOPE")
    _error(predict(trained_run, out, "--chrom", "chr1", "--category", "enhancer"), "enhancer")
    _error(predict(trained_run, out, "--chrom", "chr1", "--bin-size", "0"), "--bin-size")
    from tests.conftest import write_fasta

    fa = write_fasta(tmp_path / "other.fa", {"chr1": "ACGT" * 100})
    _error(predict(trained_run, out, "--chrom", "chr1", "--genome", str(fa)), "does not match")
    assert not out.exists() or not any((out / "tracks").glob("*.bw"))
    afile = tmp_path / "afile"
    afile.write_text("x")
    _error(predict(trained_run, afile, "--chrom", "chr1"), "not writable")
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
        _error(predict(trained_run, ro / "hub", "--chrom", "chr1"), "not writable")


def test_tracks_say_the_split_of_their_chromosomes_and_the_test_score(trained_run, tmp_path):
    split = load_checkpoint(trained_run / "best.pt").split_record
    assert split["mode"] == "chrom"
    where = {c: s for s, cs in split["chroms"].items() for c in cs}
    train_c, test_c = split["chroms"]["train"][0], split["chroms"]["test"][0]
    assert runner.invoke(app, ["evaluate", str(trained_run), "--workers", "0"]).exit_code == 0
    report = json.loads((trained_run / "evaluate" / "test" / "report.json").read_text())
    scores = {m["name"]: m for m in report["markers"]}
    hub = tmp_path / "hub"
    r = predict(trained_run, hub, "--chrom", test_c, "--marker", "DNase")
    assert r.exit_code == 0, r.output
    assert "training chromosome" not in r.stderr
    t = json.loads((hub / "manifest.json").read_text())["tracks"][0]
    assert t["split"] == {test_c: "test"}
    m = scores["DNase"]
    assert t["provenance"]["test_pr_auc"] == m["pr_auc"]
    assert t["provenance"]["test_chance"] == m["positive_rate"]
    label = f"test PR-AUC {m['pr_auc']:.2f} (chance {m['positive_rate']:.2f}); {test_c} test"
    assert label in (hub / "genome" / "trackDb.txt").read_text()
    assert label in (hub / "igv_session.xml").read_text()
    assert f"{test_c} (test)" in (hub / "genome" / "html" / "pred_DNase.html").read_text()
    # a training chromosome: said in the track and warned about on the command line
    hub2 = tmp_path / "hub2"
    r = predict(trained_run, hub2, "--chrom", f"{train_c},{test_c}", "--marker", "DNase")
    assert r.exit_code == 0, r.output
    assert f"{train_c}: training chromosome" in r.stderr and test_c in r.stderr
    t = json.loads((hub2 / "manifest.json").read_text())["tracks"][0]
    assert t["split"] == {c: where[c] for c in t["chroms"]}
    assert f"{test_c} test, {train_c} train" in (hub2 / "genome" / "trackDb.txt").read_text()


def test_a_second_predict_into_a_hub_adds_its_chromosomes(trained_run, tmp_path):
    hub, alone = tmp_path / "hub", tmp_path / "alone"
    assert predict(trained_run, hub, "--chrom", "chr1", "--marker", "DNase").exit_code == 0
    track = hub / "tracks" / "pred_DNase.bw"
    with pyBigWig.open(str(track)) as bw:
        chr1 = bw.intervals("chr1")
    r = predict(trained_run, hub, "--chrom", "chr3", "--marker", "DNase,CTCF")
    assert r.exit_code == 0, r.output
    assert predict(trained_run, alone, "--chrom", "chr3", "--marker", "DNase").exit_code == 0
    with pyBigWig.open(str(track)) as bw, pyBigWig.open(str(alone / "tracks" / track.name)) as ref:
        assert bw.intervals("chr1") == chr1  # the first call's chromosome, kept as it was
        assert bw.intervals("chr3") == ref.intervals("chr3")  # the second's, as written alone
        assert bw.intervals("chr2") is None
    tracks = {t["name"]: t for t in json.loads((hub / "manifest.json").read_text())["tracks"]}
    assert tracks["pred_DNase"]["chroms"] == ["chr1", "chr3"]
    assert tracks["pred_CTCF"]["chroms"] == ["chr3"]  # a new marker: what this call predicted
    assert set(tracks["pred_DNase"]["split"]) == {"chr1", "chr3"}
    assert runner.invoke(app, ["hub", "check", str(hub)]).exit_code == 0
    # --resume skips a track that already holds the chromosomes asked for
    r = predict(trained_run, hub, "--chrom", "chr3", "--marker", "DNase", "--resume")
    assert r.exit_code == 0 and "kept 1 complete track(s)" in r.stderr
    # options that would make one track of two kinds of values: refused before scanning
    before = track.stat().st_mtime_ns
    r = predict(trained_run, hub, "--chrom", "chr2", "--marker", "DNase", "--bin-size", "64")
    _error(r, str(track), "chr1, chr3", "bin size 128", "--chrom chr1,chr2,chr3")
    assert track.stat().st_mtime_ns == before
    assert not [p for p in (hub / "tracks").iterdir() if p.name.startswith(".")]


def test_predict_into_a_hub_of_another_genome_refuses_before_scanning(
    trained_run, tmp_path, sim_small
):
    hub = tmp_path / "hub"
    hub.mkdir()
    man = {
        "format": "regtracks-manifest/1",
        "genome": {"name": "other", "chrom_sizes": [["chrA", 1000]]},
        "tracks": [],
    }
    (hub / "manifest.json").write_text(json.dumps(man))
    _error(predict(trained_run, hub, "--chrom", "chr1"), "manifest.json", "'other'")
    assert not (hub / "tracks").exists() or not list((hub / "tracks").iterdir())


def _merged_by_hand(path, sizes):
    """A BED file's intervals, merged (touching ones too) and clipped, chromosome by chromosome."""
    import gzip

    per = {}
    with gzip.open(path, "rt") as fh:
        for line in fh:
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            c, s, e = line.split("\t")[:3]
            per.setdefault(c, []).append((int(s), int(e)))
    out = {}
    for c, ivs in per.items():
        merged = []
        for s, e in sorted(ivs):
            if merged and s <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e)
            else:
                merged.append([s, e])
        clipped = [(s, min(e, sizes[c])) for s, e in merged if s < sizes[c]]
        out[c] = [(s, e) for s, e in clipped if e > s]
    return out


def test_observed_peaks_join_the_hub_as_bigbed_tracks(trained_run, sim_small, tmp_path):
    g = Genome(sim_small / "genome.fa")
    hub = tmp_path / "hub"
    r = predict(trained_run, hub, "--chrom", "chr2", "--marker", "DNase,CTCF")
    assert r.exit_code == 0, r.output
    assert "2 observed-peak track(s)" in r.stderr
    rows = [ln.split("\t") for ln in (sim_small / "markers.tsv").read_text().splitlines()[1:]]
    path = {row[0]: sim_small / row[2] for row in rows}
    bb = hub / "tracks" / "peaks_DNase.bb"
    want = _merged_by_hand(path["DNase"], g.sizes)
    with pyBigWig.open(str(bb)) as f:
        assert f.isBigBed()
        for c in g.chroms:  # every chromosome, not only the one predicted: the labels
            got = (
                [(s, e) for s, e, _ in f.entries(c, 0, g.sizes[c]) or []] if c in f.chroms() else []
            )
            assert got == want.get(c, []), c
        assert {x[2] for x in f.entries("chr1", 0, g.sizes["chr1"])} == {"DNase"}
    tracks = {t["name"]: t for t in json.loads((hub / "manifest.json").read_text())["tracks"]}
    assert tracks["peaks_DNase"]["kind"] == "peaks"
    assert tracks["peaks_DNase"]["n_intervals"] == sum(map(len, want.values()))
    trackdb = (hub / "genome" / "trackDb.txt").read_text()
    assert "shortLabel Peaks" in trackdb and "bigDataUrl ../tracks/peaks_DNase.bb" in trackdb
    assert "type bigBed 4" in trackdb
    assert 'type="bigbed"' in (hub / "igv_session.xml").read_text()
    page = (hub / "igv.html").read_text()
    assert '"format": "bigbed"' in page and "tracks/peaks_CTCF.bb" in page
    assert runner.invoke(app, ["hub", "check", str(hub)]).exit_code == 0
    # unchanged peak files: the tracks are kept as they are
    before = bb.stat().st_mtime_ns
    assert predict(trained_run, hub, "--chrom", "chr3", "--marker", "DNase").exit_code == 0
    assert bb.stat().st_mtime_ns == before
    # hub build --no-peaks hides them (and remembers), --peaks shows them again
    r = runner.invoke(app, ["hub", "build", str(hub), "--no-peaks"])
    assert r.exit_code == 0, r.output
    assert "peaks_DNase" not in (hub / "genome" / "trackDb.txt").read_text()
    assert runner.invoke(app, ["hub", "build", str(hub)]).exit_code == 0
    assert "peaks_DNase" not in (hub / "igv.html").read_text()
    assert runner.invoke(app, ["hub", "build", str(hub), "--peaks"]).exit_code == 0
    assert "peaks_DNase" in (hub / "igv.html").read_text()
    assert runner.invoke(app, ["hub", "check", str(hub)]).exit_code == 0
    # predict --no-peaks writes none
    hub2 = tmp_path / "hub2"
    r = predict(trained_run, hub2, "--chrom", "chr2", "--marker", "DNase", "--no-peaks")
    assert r.exit_code == 0, r.output
    assert not list((hub2 / "tracks").glob("*.bb"))
    kinds = {t["kind"] for t in json.loads((hub2 / "manifest.json").read_text())["tracks"]}
    assert kinds == {"prediction"}
