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
