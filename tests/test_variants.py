"""`regtracks variants`: scores equal the model run on the whole chromosome with the allele in
place (a linear model computed with numpy; a dilated model in one long input); shared windows
equal one window per allele; the wide, long and HDF5 tables and the annotated VCF hold the same
numbers; records that cannot be scored are skipped and listed; nothing is half-written."""

import gzip
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from regtracks._util import RegtracksError
from regtracks.cli import app
from regtracks.data.genome import Genome, encode, one_hot
from regtracks.inference.variants import (
    CLUSTER_ALLELES,
    STATS,
    Skipped,
    Variant,
    _LocalPlan,
    iter_vcf,
    log_odds,
    read_vcf,
    variant_effects,
)
from regtracks.models import get_model
from tests.conftest import random_seq, write_fasta, write_text
from tests.test_saliency import LinearConv

runner = CliRunner()
TINY = {"f1": 8, "f2": 8, "f3": 8, "d_hidden": 8}


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


def _strong(name, seed=1, **hp):
    """A small random model whose alleles move its outputs (batch norm statistics set, weights
    scaled up), in eval mode."""
    torch.manual_seed(seed)
    from regtracks.models.registry import model_hparams

    tiny = {k: v for k, v in TINY.items() if k in model_hparams(name)}
    model = get_model(name, n_markers=3, **{**tiny, **hp}).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
        for p in model.parameters():
            if p.dim() > 1:
                p.mul_(2.5)
    return model


def test_read_vcf(genome, tmp_path):
    rows = _alleles(genome, [("c1", 100, 1, "T"), ("c1", 200, 3, "A")])
    rows[0] = (*rows[0][:4], "G,<DEL>,T,*")
    vs, skipped = read_vcf(write_vcf(tmp_path / "a.vcf.gz", rows, gz=True), genome)
    assert [(v.start, v.alt) for v in vs] == [(100, "G"), (100, "T"), (200, "A")]
    assert [(s.alt, s.reason, s.line) for s in skipped] == [
        ("<DEL>", "symbolic_allele", 3), ("*", "symbolic_allele", 3)
    ]  # fmt: skip
    assert vs[0].line == 3
    bad = list(rows[1])
    bad[3] = "N" * 3 if bad[3] != "NNN" else "AAA"
    b = write_vcf(tmp_path / "b.vcf", [rows[0], bad])
    with pytest.raises(RegtracksError, match=r"b.vcf:4: REF .* does not match the genome"):
        read_vcf(b, genome)  # the default of read_vcf: an error, as before
    vs, skipped = read_vcf(b, genome, on_ref_mismatch="skip")
    assert len(vs) == 2 and skipped[-1].reason == "ref_mismatch" and skipped[-1].line == 4
    with pytest.raises(RegtracksError, match=r"c.vcf:3: chromosome 'chrQ'"):
        read_vcf(write_vcf(tmp_path / "c.vcf", [("chrQ", 5, ".", "A", "C")]), genome)
    with pytest.raises(RegtracksError, match=r"d.vcf:3: POS 'x'"):  # malformed: always an error
        list(iter_vcf(write_vcf(tmp_path / "d.vcf", [("c1", "x", ".", "A", "C")]), genome))
    with pytest.raises(RegtracksError, match="not found"):
        read_vcf(tmp_path / "none.vcf", genome)
    # every reason of the skip mode, each with its line
    e = write_vcf(
        tmp_path / "e.vcf",
        [("chrQ", 5, "a", "A", "C"), ("c2", 1999, "b", "GTA", "G"), ("c1", 10, "c", "R", "A"),
         rows[1], bad],
    )  # fmt: skip
    items = list(iter_vcf(e, genome))
    got = [(s.line, s.reason) for s in items if isinstance(s, Skipped)]
    assert got == [(3, "unknown_chrom"), (4, "past_chrom_end"), (5, "ref_not_dna"),
                   (7, "ref_mismatch")]  # fmt: skip
    assert [v.line for v in items if isinstance(v, Variant)] == [6]


@pytest.mark.parametrize("share", [False, True])
@pytest.mark.parametrize("radius", [0, 25])
def test_linear_model_against_numpy(genome, tmp_path, radius, share):
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
        variant_effects(
            model,
            genome,
            vs,
            marker_idx=[2, 0],
            radius=radius,
            margin=k,
            batch_size=4,
            share_windows=share,
        )  # fmt: skip
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


@pytest.mark.parametrize("share", [False, True])
def test_dilated_equals_one_long_input(genome, tmp_path, share):
    model = _strong("dilated", seed=2)
    rf = model.receptive_field

    def probs(codes):
        with torch.no_grad():
            return torch.sigmoid(model(torch.from_numpy(one_hot(codes))[None]))[0].double().numpy()

    specs = [("c1", 15_001, 1, "A"), ("c1", 14_000, 3, "G"), ("c1", 16_000, 1, "CCCA"),
             ("c1", 15_500, 2, "TT")]  # fmt: skip
    vs, _ = read_vcf(write_vcf(tmp_path / "v.vcf", _alleles(genome, specs)), genome)
    got = variant_effects(model, genome, vs, marker_idx=[0, 1, 2], radius=50, margin=rf, stride=10,
                          batch_size=2, share_windows=share)  # fmt: skip
    for v, ref_s, alt_s, _ in got:
        pr, pa = _whole_chrom_probs(probs, genome, v.chrom, v.start, v.ref, v.alt)
        r = pr[:, v.start - 50 : v.start + len(v.ref) + 50].mean(axis=1)
        a = pa[:, v.start - 50 : v.start + len(v.alt) + 50].mean(axis=1)
        np.testing.assert_allclose(ref_s, r, atol=2e-6)
        np.testing.assert_allclose(alt_s, a, atol=2e-6)


@pytest.mark.parametrize(
    "name,hp",
    [("dilated", {}), ("dilated", {"stem_width": 0, "residual": False}), ("cnn7", {}),
     ("cnn1", {}), ("idcnn", {"n_passes": 1, "kernel_width": 3})],
)  # fmt: skip
def test_shared_windows_equal_one_window_per_allele(genome, name, hp):
    """SNVs, an MNP, indels, both chromosome ends, an N allele, several clusters and an
    unsorted tail: the shared path (the strided CNNs recompute substitutions from the reference
    pass) gives the scores of one window per allele."""
    model = _strong(name, **hp)
    assert (_LocalPlan.of(model) is not None) == (name != "cnn1" and name != "idcnn")
    rng = np.random.default_rng(5)
    specs = [("c1", int(p), 1, "ACGT"[int(rng.integers(4))])
             for p in sorted(rng.choice(np.arange(2, 29_990), 40, replace=False))]  # fmt: skip
    specs += [("c1", 0, 1, "G"), ("c1", 29_999, 1, "N"), ("c1", 7_000, 3, "GGA"),
              ("c1", 7_010, 1, "ACGTA"), ("c1", 7_020, 9, "T"), ("c2", 5, 1, "A"),
              ("c1", 12_345, 1, "C"), ("c1", 100, 2, "AT")]  # fmt: skip
    vs = [
        Variant(c, s, f"v{i}", genome.fetch_text(c, s, s + n).upper(), alt, i)
        for i, (c, s, n, alt) in enumerate(specs)
    ]
    margin = -(-model.receptive_field // model.stride) * model.stride
    kw = dict(marker_idx=[2, 0], radius=37, margin=margin, stride=model.stride, batch_size=3)
    one = list(variant_effects(model, genome, vs, share_windows=False, **kw))
    shared = list(variant_effects(model, genome, vs, cluster_span=6_000, **kw))
    assert [v for v, *_ in shared] == vs
    for a, b in zip(one, shared, strict=True):
        for k in (1, 2, 3):
            np.testing.assert_allclose(b[k], a[k], atol=2e-6, rtol=0)
    assert max(np.abs(a[2] - a[1]).max() for a in one) > 1e-4  # the alleles do move outputs


def test_streams_a_cluster_at_a_time(genome):
    """The first scores come out after at most one cluster of alleles was read."""
    model = _strong("cnn7")
    read = [0]

    def alleles():
        for i in range(3 * CLUSTER_ALLELES):
            read[0] += 1
            s = 20 + (i * 7) % 29_000
            yield Variant("c1", s, ".", genome.fetch_text("c1", s, s + 1).upper(), "A", i)

    it = variant_effects(model, genome, alleles(), marker_idx=[0], radius=5, margin=880,
                         stride=10)  # fmt: skip
    next(it)
    assert read[0] <= CLUSTER_ALLELES + 1
    # a None asks for the scores so far (score_variants sends one behind many skipped records)
    for share in (True, False):
        read[0] = 0

        def with_flush():
            for i, v in enumerate(alleles()):
                yield v
                if i == 2:
                    yield None

        it = variant_effects(model, genome, with_flush(), marker_idx=[0], radius=5, margin=880,
                             stride=10, share_windows=share, batch_size=8)  # fmt: skip
        assert [next(it)[0].line for _ in range(3)] == [0, 1, 2] and read[0] == 3


def test_ref_alt_swap_flips_the_sign(genome, tmp_path):
    """An allele scored on a genome, and the reverse change scored on the genome carrying it:
    diff and logodds change sign, maxabs stays (an SNV, a substitution of two bases and an
    insertion, whose reverse is a deletion)."""
    model = _strong("dilated", seed=4)
    seq = genome.fetch_text("c1", 0, genome.sizes["c1"]).upper()
    swap = str.maketrans("ACGT", "CGTA")
    changes = [(9_000, seq[9_000], seq[9_000].translate(swap)),
               (12_000, seq[12_000:12_002], seq[12_000:12_002].translate(swap)),
               (15_000, seq[15_000], seq[15_000] + "GATTACA")]  # fmt: skip
    kw = dict(marker_idx=[0, 1, 2], radius=40, margin=11_320, stride=10)
    moved = 0.0
    for i, (s, ref, alt) in enumerate(changes):
        g2 = Genome(write_fasta(tmp_path / f"g{i}.fa", {"c1": seq[:s] + alt + seq[s + len(ref) :]}))
        [(_, r1, a1, t1)] = variant_effects(
            model, genome, [Variant("c1", s, ".", ref, alt, 1)], **kw
        )
        [(_, r2, a2, t2)] = variant_effects(model, g2, [Variant("c1", s, ".", alt, ref, 1)], **kw)
        np.testing.assert_allclose(a2 - r2, -(a1 - r1), atol=2e-6)
        np.testing.assert_allclose(t2, t1, atol=2e-6)
        np.testing.assert_allclose(log_odds(r2, a2), -log_odds(r1, a1), atol=1e-4)
        moved = max(moved, np.abs(a1 - r1).max())
    assert moved > 1e-3


# --- the command line ----------------------------------------------------------------------------
def _cli_vcf(g, tmp_path):
    """Sorted records (lines 3-7): multi-allelic with a symbolic ALT, an SNV, a REF mismatch
    (line 5), an unknown chromosome (line 6), a deletion."""
    specs = [("chr1", 30_000, 1, "A"), ("chr1", 30_500, 1, "G"), ("chr1", 31_000, 1, "C"),
             ("chr2", 1_000, 2, "T")]  # fmt: skip
    rows = _alleles(g, specs)
    rows[0] = (*rows[0][:4], "C,<DEL>,G")
    have = rows[2][3]
    rows[2] = (*rows[2][:3], "T" if have != "T" else "A", rows[2][4])  # REF mismatch
    rows.insert(3, ("chrZ", 10, "z", "A", "C"))
    return write_vcf(tmp_path / "v.vcf", rows), rows


def _read_tsv(path):
    lines = path.read_text().splitlines()
    cols = lines[0].split("\t")
    return cols, [dict(zip(cols, ln.split("\t"), strict=True)) for ln in lines[1:]]


def test_cli_formats_agree(trained_run, sim_small, tmp_path):
    g = Genome(sim_small / "genome.fa")
    vcf, rows = _cli_vcf(g, tmp_path)
    base = ["variants", str(trained_run), "--vcf", str(vcf), "--device", "cpu", "--radius", "20",
            "--marker", "DNase", "--marker", "SP1"]  # fmt: skip
    wide, long, h5 = tmp_path / "w.tsv", tmp_path / "l.tsv", tmp_path / "s.h5"
    vout = tmp_path / "annotated.vcf.gz"
    r = runner.invoke(app, [*base, "--out", str(wide), "--vcf-out", str(vout)])
    assert r.exit_code == 0, r.output
    assert "scored 4 allele(s) of 5 record(s)" in r.output
    assert "skipped 3: 1 REF mismatch, 1 symbolic allele, 1 unknown chromosome" in r.output
    try:
        import h5py
    except ImportError:
        h5py = None
    for fmt, out in (("long", long), ("h5", h5))[: 1 if h5py is None else 2]:
        r = runner.invoke(app, [*base, "--out", str(out), "--format", fmt])
        assert r.exit_code == 0, r.output

    cols, w = _read_tsv(wide)
    assert cols[:5] == ["chrom", "pos", "id", "ref", "alt"]
    assert cols[5:] == [f"{m}.{s}" for m in ("DNase", "SP1") for s in STATS]
    # multi-allelic: one row per ALT (the symbolic one skipped); positions 1-based as in the VCF
    assert [(x["pos"], x["alt"]) for x in w] == [
        ("30001", "C"), ("30001", "G"), ("30501", rows[1][4]), ("1001", "T")
    ]  # fmt: skip
    lcols, lrows = _read_tsv(long)
    assert lcols[5:7] == ["marker", "category"] and len(lrows) == 4 * 2
    hd = None
    if h5py is not None:  # a dev dependency (pip install 'regtracks[h5]')
        with h5py.File(h5) as f:
            assert f["diff"].shape == (4, 2) and set(STATS) <= set(f)
            assert [x.decode() for x in f["marker"][:]] == ["DNase", "SP1"]
            assert list(f["pos"][:]) == [int(x["pos"]) for x in w]
            assert [x.decode() for x in f["alt"][:]] == [x["alt"] for x in w]
            assert list(f["line"][:]) == [3, 3, 4, 7]
            assert f.attrs["radius"] == 20
            hd = {s: f[s][:] for s in STATS}
    for i, row in enumerate(w):
        for j, m in enumerate(("DNase", "SP1")):
            lr = lrows[2 * i + j]
            assert (lr["alt"], lr["marker"]) == (row["alt"], m)
            ref, alt = float(lr["ref_score"]), float(lr["alt_score"])
            diff = float(row[f"{m}.diff"])
            assert diff == pytest.approx(float(lr["diff"]), abs=1e-6)
            assert diff == pytest.approx(alt - ref, abs=1e-5)
            assert float(row[f"{m}.maxabs"]) == pytest.approx(float(lr["max_abs_diff"]), abs=1e-6)
            lo = float(log_odds(np.array(ref), np.array(alt)))
            assert float(row[f"{m}.logodds"]) == pytest.approx(lo, abs=1e-4)
            for s in STATS:
                if hd is not None:
                    assert float(hd[s][i, j]) == pytest.approx(float(row[f"{m}.{s}"]), abs=1e-5)
    # the skipped list: VCF line and reason, one row per record (per ALT for symbolic alleles)
    scols, skipped = _read_tsv(tmp_path / "w.tsv.skipped.tsv")
    assert scols == ["line", "chrom", "pos", "id", "ref", "alt", "reason", "detail"]
    assert [(x["line"], x["reason"]) for x in skipped] == [
        ("3", "symbolic_allele"), ("5", "ref_mismatch"), ("6", "unknown_chrom")
    ]  # fmt: skip
    assert "does not match the genome" in skipped[1]["detail"]

    # the annotated VCF: every record, INFO fields named by marker and statistic, indexed
    import pysam

    assert (tmp_path / "annotated.vcf.gz.tbi").is_file()
    with gzip.open(vout, "rt") as fh:
        assert fh.readline().startswith("##fileformat")
    with pysam.VariantFile(str(vout)) as vf:
        desc = vf.header.info["RT_SP1_logodds"].description
        assert "SP1" in desc and "logodds" in desc
        recs = list(vf)
        assert len(recs) == 5
        first = recs[0]
        assert first.alts == ("C", "<DEL>", "G")
        for m in ("DNase", "SP1"):
            for s in STATS:
                got = first.info[f"RT_{m}_{s}"]
                assert got[1] is None  # the symbolic ALT: '.'
                assert got[0] == pytest.approx(float(w[0][f"{m}.{s}"]), rel=1e-3, abs=1e-6)
                assert got[2] == pytest.approx(float(w[1][f"{m}.{s}"]), rel=1e-3, abs=1e-6)
        assert recs[2].info["RT_SKIP"] == ("ref_mismatch",) and "RT_SP1_diff" not in recs[2].info
        assert list(vf.fetch("chr2")) and len(list(vf.fetch("chr1", 30_400, 30_600))) == 1


def test_cli_mismatch_modes_and_failures(trained_run, sim_small, tmp_path, monkeypatch):
    g = Genome(sim_small / "genome.fa")
    rows = _alleles(g, [("chr1", 30_000, 1, "A"), ("chr2", 1_000, 2, "T")])
    vcf = write_vcf(tmp_path / "v.vcf", rows)
    out = tmp_path / "scores.tsv"
    args = ["variants", str(trained_run), "--vcf", str(vcf), "--out", str(out), "--device", "cpu",
            "--marker", "DNase"]  # fmt: skip
    r = runner.invoke(app, [*args, "--format", "long"])
    assert r.exit_code == 0, r.output
    row = _read_tsv(out)[1][0]
    assert row["chrom"] == "chr1" and row["pos"] == "30001" and row["marker"] == "DNase"
    assert _read_tsv(tmp_path / "scores.tsv.skipped.tsv")[1] == []  # nothing skipped: a header
    before = out.read_text()

    def one_line_error(r, *words):
        assert r.exit_code == 1, r.output
        assert len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output
        for w in words:
            assert w in r.output
        assert out.read_text() == before  # the old output kept

    # --on-ref-mismatch error: the first mismatch stops the run, naming its line
    bad = write_vcf(tmp_path / "bad.vcf", [rows[0], ("chr1", 100, ".", "ACGTACGTAC", "A")])
    cmd = ["variants", str(trained_run), "--vcf", str(bad), "--out", str(out)]
    one_line_error(runner.invoke(app, [*cmd, "--on-ref-mismatch", "error"]), "bad.vcf:4: REF")
    # skip (the default): scored, the mismatch listed, exit 0
    r = runner.invoke(app, [*cmd, "--marker", "DNase", "--out", str(tmp_path / "b.tsv")])
    assert r.exit_code == 0, r.output
    assert "1 REF mismatch" in r.output
    assert _read_tsv(tmp_path / "b.tsv.skipped.tsv")[1][0]["line"] == "4"
    # nothing could be scored: one error line, nothing written
    none = write_vcf(tmp_path / "none.vcf", [("chr1", 100, ".", "ACGTACGTAC", "A")])
    vout = tmp_path / "a.vcf.gz"
    cmd = ["variants", str(trained_run), "--vcf", str(none), "--out", str(out)]
    r = runner.invoke(app, [*cmd, "--vcf-out", str(vout)])
    one_line_error(r, "nothing could be scored", "1 REF mismatch", "none.vcf:3")
    assert not vout.exists() and not (tmp_path / "a.vcf.gz.tbi").exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]
    # --vcf-out needs a sorted VCF, and says so before the work
    unsorted = write_vcf(tmp_path / "u.vcf", [rows[0], *_alleles(g, [("chr1", 20_000, 1, "A")])])
    r = runner.invoke(app, [*args[:3], str(unsorted), *args[4:], "--vcf-out", str(vout)])
    one_line_error(r, "u.vcf:4", "sorted")
    r = runner.invoke(app, [*args, "--vcf-out", str(tmp_path / "a.vcf")])
    one_line_error(r, ".vcf.gz")
    # --format h5 without h5py: one line saying how to get it
    monkeypatch.setitem(sys.modules, "h5py", None)
    one_line_error(runner.invoke(app, [*args, "--format", "h5"]), "pip install h5py")
    one_line_error(runner.invoke(app, [*args, "--format", "csv"]), "--format")
    one_line_error(runner.invoke(app, [*args, "--on-ref-mismatch", "maybe"]), "--on-ref-mismatch")
    r = runner.invoke(app, [*args, "--marker", "NOPE"])
    assert r.exit_code == 1 and "NOPE" in r.output
