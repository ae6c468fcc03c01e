"""`regtracks variants`: scores equal the model run on the whole chromosome with the allele in
place (a linear model computed with numpy; a dilated model in one long input); VCF errors name
the line; nothing is half-written."""

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from regtracks._util import RegtracksError
from regtracks.cli import app
from regtracks.data.genome import Genome, encode, one_hot
from regtracks.inference.variants import read_vcf, variant_effects
from regtracks.models import get_model
from tests.conftest import random_seq, write_fasta, write_text
from tests.test_saliency import LinearConv

runner = CliRunner()


@pytest.fixture(scope="module")
def genome(tmp_path_factory):
    rng = np.random.default_rng(11)
    d = tmp_path_factory.mktemp("var")
    return Genome(write_fasta(d / "g.fa", {"c1": random_seq(rng, 30_000), "c2": "ACGT" * 500}))


def write_vcf(path, rows, *, gz=False):
    text = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    text += "".join("\t".join(map(str, r)) + "\t.\t.\t.\n" for r in rows)
    return write_text(path, text, gz=gz)


def _alleles(genome, specs):
    """VCF rows from (chrom, 0-based start, ref length, alt) with REF read from the genome."""
    return [
        (c, s + 1, f"v{i}", genome.fetch_text(c, s, s + n).upper(), alt)
        for i, (c, s, n, alt) in enumerate(specs)
    ]


def _whole_chrom_probs(model_fn, genome, chrom, start, ref, alt):
    codes = genome.fetch(chrom, 0, genome.sizes[chrom])
    new = np.concatenate([codes[:start], encode(alt), codes[start + len(ref) :]])
    return model_fn(codes), model_fn(new)


def test_read_vcf(genome, tmp_path):
    rows = _alleles(genome, [("c1", 100, 1, "T"), ("c1", 200, 3, "A")])
    rows[0] = (*rows[0][:4], "G,<DEL>,T,*")
    vs, skipped = read_vcf(write_vcf(tmp_path / "a.vcf.gz", rows, gz=True), genome)
    assert [(v.start, v.alt) for v in vs] == [(100, "G"), (100, "T"), (200, "A")]
    assert skipped == 2 and vs[0].line == 3
    bad = list(rows[1])
    bad[3] = "N" * 3 if bad[3] != "NNN" else "AAA"
    with pytest.raises(RegtracksError, match=r"b.vcf:4: REF .* does not match the genome"):
        read_vcf(write_vcf(tmp_path / "b.vcf", [rows[0], bad]), genome)
    with pytest.raises(RegtracksError, match=r"c.vcf:3: chromosome 'chrQ'"):
        read_vcf(write_vcf(tmp_path / "c.vcf", [("chrQ", 5, ".", "A", "C")]), genome)
    with pytest.raises(RegtracksError, match=r"d.vcf:3: POS 'x'"):
        read_vcf(write_vcf(tmp_path / "d.vcf", [("c1", "x", ".", "A", "C")]), genome)
    with pytest.raises(RegtracksError, match="not found"):
        read_vcf(tmp_path / "none.vcf", genome)


@pytest.mark.parametrize("radius", [0, 25])
def test_linear_model_against_numpy(genome, tmp_path, radius):
    torch.manual_seed(0)
    k = 15
    model = LinearConv(3, k).eval()
    w = model.conv.weight.detach().double().numpy()
    bias = model.conv.bias.detach().double().numpy()

    def probs(codes):  # numpy: the whole chromosome, zero (N) padding as the model's
        x = np.pad(one_hot(codes).astype(np.float64), ((0, 0), (model.left, k - 1 - model.left)))
        win = np.lib.stride_tricks.sliding_window_view(x, k, axis=1)  # (4, L, k)
        return 1 / (1 + np.exp(-(np.einsum("mck,clk->ml", w, win) + bias[:, None])))

    specs = [("c1", 5_000, 1, "A"), ("c1", 5_000, 1, "GT"), ("c1", 8_000, 4, "C"),
             ("c1", 3, 2, "TTTT"), ("c1", 29_990, 1, "C"), ("c2", 1_000, 1, "A")]  # fmt: skip
    vs, _ = read_vcf(write_vcf(tmp_path / "v.vcf", _alleles(genome, specs)), genome)
    got = list(
        variant_effects(model, genome, vs, marker_idx=[2, 0], radius=radius, margin=k, batch_size=4)
    )
    assert [v for v, *_ in got] == vs
    for v, ref_s, alt_s, top in got:
        pr, pa = _whole_chrom_probs(probs, genome, v.chrom, v.start, v.ref, v.alt)
        # scored: the variant and `radius` bases each side, clipped to the chromosome
        lr = min(radius, v.start)
        rr = min(radius, genome.sizes[v.chrom] - v.start - len(v.ref))
        sr = pr[:, v.start - lr : v.start + len(v.ref) + rr]
        sa = pa[:, v.start - lr : v.start + len(v.alt) + rr]
        np.testing.assert_allclose(ref_s, sr[[2, 0]].mean(axis=1), atol=1e-6)
        np.testing.assert_allclose(alt_s, sa[[2, 0]].mean(axis=1), atol=1e-6)
        if len(v.ref) == len(v.alt):
            np.testing.assert_allclose(top, np.abs(sa - sr)[[2, 0]].max(axis=1), atol=1e-6)
        elif lr + rr:
            flank = np.concatenate(
                [np.abs(sa[:, :lr] - sr[:, :lr]),
                 np.abs(sa[:, sa.shape[1] - rr :] - sr[:, sr.shape[1] - rr :])], axis=1,
            )  # fmt: skip
            np.testing.assert_allclose(top, flank[[2, 0]].max(axis=1), atol=1e-6)
    # a change the linear model weighs: an SNV's diff is the mean of its position's changes
    assert any(abs(d) > 1e-4 for _, r, a, _ in got for d in a - r)


def test_dilated_equals_one_long_input(genome, tmp_path):
    torch.manual_seed(2)
    model = get_model("dilated", n_markers=2, f1=8, f2=8, f3=8, d_hidden=8).eval()
    rf = model.receptive_field

    def probs(codes):
        with torch.no_grad():
            return torch.sigmoid(model(torch.from_numpy(one_hot(codes))[None]))[0].double().numpy()

    specs = [("c1", 15_001, 1, "A"), ("c1", 14_000, 3, "G"), ("c1", 16_000, 1, "CCCA")]
    vs, _ = read_vcf(write_vcf(tmp_path / "v.vcf", _alleles(genome, specs)), genome)
    got = variant_effects(
        model, genome, vs, marker_idx=[0, 1], radius=50, margin=rf, stride=10, batch_size=2
    )
    for v, ref_s, alt_s, _ in got:
        pr, pa = _whole_chrom_probs(probs, genome, v.chrom, v.start, v.ref, v.alt)
        r = pr[:, v.start - 50 : v.start + len(v.ref) + 50].mean(axis=1)
        a = pa[:, v.start - 50 : v.start + len(v.alt) + 50].mean(axis=1)
        np.testing.assert_allclose(ref_s, r, atol=2e-6)
        np.testing.assert_allclose(alt_s, a, atol=2e-6)


def test_cli(trained_run, sim_small, tmp_path):
    g = Genome(sim_small / "genome.fa")
    rows = _alleles(g, [("chr1", 30_000, 1, "A"), ("chr2", 1_000, 2, "T")])
    rows[0] = (*rows[0][:4], "C,G")
    vcf = write_vcf(tmp_path / "v.vcf", rows)
    out = tmp_path / "scores.tsv"
    args = ["variants", str(trained_run), "--vcf", str(vcf), "--out", str(out), "--device", "cpu"]
    r = runner.invoke(app, [*args, "--marker", "DNase", "--marker", "SP1", "--radius", "20"])
    assert r.exit_code == 0, r.output
    lines = out.read_text().splitlines()
    assert lines[0].split("\t")[:3] == ["chrom", "pos", "id"] and len(lines) == 1 + 3 * 2
    row = dict(zip(lines[0].split("\t"), lines[1].split("\t"), strict=True))
    assert row["chrom"] == "chr1" and row["pos"] == "30001" and row["alt"] == "C"
    assert row["marker"] == "DNase" and row["category"] == "DNase"
    assert float(row["diff"]) == pytest.approx(
        float(row["alt_score"]) - float(row["ref_score"]), abs=1e-5
    )
    # bad REF: one line naming the line, no output written, the old one kept
    bad = write_vcf(tmp_path / "bad.vcf", [("chr1", 100, ".", "ACGTACGTAC", "A")])
    before = out.read_text()
    r = runner.invoke(app, ["variants", str(trained_run), "--vcf", str(bad), "--out", str(out)])
    assert r.exit_code == 1 and "bad.vcf:3: REF" in r.output
    assert len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output
    assert out.read_text() == before
    r = runner.invoke(app, [*args, "--marker", "NOPE"])
    assert r.exit_code == 1 and "NOPE" in r.output
