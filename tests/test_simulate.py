"""The synthetic genome: files, planted rules, determinism, and `data summary` agreement."""

import gzip
import json
from dataclasses import replace

import numpy as np
import pytest
from typer.testing import CliRunner

from regtracks.cli import app
from regtracks.config import DEFAULT_SIM
from regtracks.data.simulate import simulate

CFG = replace(
    DEFAULT_SIM,
    n_chroms=3,
    chrom_len=200_000,
    n_markers=8,
    site_density=40,
    noise=0.0,
    mutation=0.0,
)


def read_fasta(path):
    seqs, name, buf = {}, None, []
    for line in open(path):
        if line.startswith(">"):
            if name:
                seqs[name] = "".join(buf)
            name, buf = line[1:].strip(), []
        else:
            buf.append(line.strip())
    seqs[name] = "".join(buf)
    return seqs


def read_rows(path):
    with gzip.open(path, "rt") as fh:
        return [(f[0], int(f[1]), int(f[2])) for f in (ln.split("\t") for ln in fh)]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    res = simulate(out, CFG)
    return out, res, json.loads((out / "simulation.json").read_text())


def test_files_and_manifest(sim):
    out, res, info = sim
    assert (out / "genome.fa.fai").exists() and (out / "truth.bed").exists()
    assert not list(out.glob(".*tmp*"))
    lines = (out / "markers.tsv").read_text().splitlines()
    assert lines[0].split("\t") == ["name", "category", "path", "cell_type", "color", "description"]
    cats = [ln.split("\t")[1] for ln in lines[1:]]
    assert len(cats) == 8 and set(cats) == {"TFBS", "Histone", "DNase"}
    for ln in lines[1:]:
        assert (out / ln.split("\t")[2]).is_file()
    seqs = read_fasta(out / "genome.fa")
    assert sorted(seqs) == ["chr1", "chr2", "chr3"] and all(
        len(s) == 200_000 for s in seqs.values()
    )
    text = "".join(seqs.values())
    assert "N" * 1000 in text  # gaps
    assert sum(ch.islower() for ch in text) > 0.1 * len(text)  # soft-masking


def test_planted_sites_and_rules(sim):
    out, res, info = sim
    seqs = read_fasta(out / "genome.fa")
    consensus = {m["name"]: m["consensus"] for m in info["motifs"]}
    comp = str.maketrans("ACGT", "TGCA")
    truth = [ln.split("\t") for ln in (out / "truth.bed").read_text().splitlines()]
    assert len(truth) == res.n_sites > 100
    sites = {}
    for chrom, s, e, motif, _, strand in truth:
        s, e = int(s), int(e)
        planted = seqs[chrom][s:e].upper()
        want = consensus[motif] if strand == "+" else consensus[motif].translate(comp)[::-1]
        assert planted == want  # mutation=0: exact
        sites.setdefault(motif, []).append((chrom, (s + e) // 2))
    for m in info["markers"]:
        rows = read_rows(out / "peaks" / f"{m['name']}.bed.gz")
        centres = {(c, (s + e) // 2) for c, s, e in rows}

        def covered(chrom, pos, rows=rows):
            return any(c == chrom and s <= pos < e for c, s, e in rows)

        motif = m["motif_names"][0]
        if m["rule"] in ("local", "broad"):
            assert all(covered(c, p) for c, p in sites[motif])
            assert len(rows) == len(sites[motif])
        elif m["rule"] == "union":
            both = sites[m["motif_names"][0]] + sites[m["motif_names"][1]]
            assert all(covered(c, p) for c, p in both)
        else:  # distal: peak iff a partner site is 1-5 kb away
            partner = sites[m["partner_name"]]
            for c, p in sites[motif]:
                has = any(c2 == c and 1_000 <= abs(p2 - p) <= 5_000 for c2, p2 in partner)
                assert covered(c, p) == has
            assert 0 < len(rows) < len(sites[motif])
        assert centres  # some peaks


def test_deterministic(sim, tmp_path):
    out, _, _ = sim
    simulate(tmp_path, CFG)
    assert (tmp_path / "genome.fa").read_bytes() == (out / "genome.fa").read_bytes()
    assert (tmp_path / "truth.bed").read_bytes() == (out / "truth.bed").read_bytes()


def test_summary_json_agrees_with_files(sim):
    out, _, _ = sim
    r = CliRunner().invoke(
        app,
        [
            "data",
            "summary",
            "--genome",
            str(out / "genome.fa"),
            "--markers",
            str(out / "markers.tsv"),
            "--window-len",
            "10000",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    seqs = read_fasta(out / "genome.fa")
    kept, dropped, per_chrom = [], 0, {}
    for chrom, seq in seqs.items():
        for k in range(len(seq) // 10_000):
            w = seq[k * 10_000 : (k + 1) * 10_000]
            if sum(ch in "Nn" for ch in w) > 1_000:
                dropped += 1
            else:
                kept.append((chrom, k * 10_000))
                per_chrom[chrom] = per_chrom.get(chrom, 0) + 1
    assert s["windows_total"] == 60 and s["windows_kept"] == len(kept)
    assert s["windows_dropped"]["n_content"] == dropped
    assert sum(v["windows"] for v in s["splits"].values()) == len(kept)
    assert s["splits"]["test"]["chromosomes"] == ["chr3"]
    assert s["splits"]["test"]["windows"] == per_chrom["chr3"]
    names = [ln.split("\t")[0] for ln in (out / "markers.tsv").read_text().splitlines()[1:]]
    for m, name in zip(s["markers"], names, strict=True):
        rows = read_rows(out / "peaks" / f"{name}.bed.gz")
        assert m["name"] == name and m["peaks"] == len(rows)
        cov = {c: np.zeros(200_000, bool) for c in seqs}
        for c, a, b in rows:
            cov[c][a:b] = True
        assert m["covered_bp"] == sum(int(v.sum()) for v in cov.values())
        assert m["intervals"] == sum(
            int((np.diff(v.astype(np.int8), prepend=0) == 1).sum()) for v in cov.values()
        )
        in_windows = sum(int(cov[c][s0 : s0 + 10_000].sum()) for c, s0 in kept)
        assert m["positive_fraction"] == pytest.approx(in_windows / (len(kept) * 10_000))


def test_simulate_cli(tmp_path):
    r = CliRunner().invoke(
        app,
        [
            "simulate",
            "--out",
            str(tmp_path / "s"),
            "--chroms",
            "2",
            "--chrom-len",
            "60000",
            "--markers",
            "3",
        ],
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "s" / "markers.tsv").exists()
    r = CliRunner().invoke(app, ["simulate", "--out", str(tmp_path / "t"), "--markers", "2"])
    assert r.exit_code == 1 and "at least 3" in r.output
