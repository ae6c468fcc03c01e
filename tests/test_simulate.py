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


def test_distal_range_and_broad_density_options(tmp_path):
    """``simulate --distal-min --distal-max --broad-density`` reach the configuration; a
    distal marker's peak is there iff a partner site lies in that range (brute force over the
    planted sites, noise off); the histone motif's site count follows ``broad_density``."""
    out = tmp_path / "cli"
    r = _sim_cli(
        "--out", str(out), "--n-chroms", "1", "--chrom-len", "50000", "--n-markers", "5",
        "--distal-min", "1000", "--distal-max", "1400", "--broad-density", "10",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    info = json.loads((out / "simulation.json").read_text())
    cfg = info["config"]
    assert (cfg["distal_min"], cfg["distal_max"], cfg["broad_density"]) == (1000, 1400, 10)
    assert "1-1.4 kb" in next(m for m in info["markers"] if m["rule"] == "distal")["description"]

    out = tmp_path / "lib"
    cfg = replace(CFG, n_markers=5, site_density=60.0, broad_density=10.0, distal_min=1000,
                  distal_max=1400)  # fmt: skip
    simulate(out, cfg)
    info = json.loads((out / "simulation.json").read_text())
    sites = {}
    for ln in (out / "truth.bed").read_text().splitlines():
        chrom, s, e, motif = ln.split("\t")[:4]
        sites.setdefault(motif, []).append((chrom, (int(s) + int(e)) // 2))
    distal = next(m for m in info["markers"] if m["rule"] == "distal")
    rows = read_rows(out / "peaks" / f"{distal['name']}.bed.gz")
    partner = sites[distal["partner_name"]]
    own = sites[distal["motif_names"][0]]
    n_pos = 0
    for c, p in own:
        has = any(c2 == c and 1_000 <= abs(p2 - p) <= 1_400 for c2, p2 in partner)
        assert any(c2 == c and s <= p < e for c2, s, e in rows) == has
        n_pos += has
    assert 0 < n_pos < len(own)
    broad = next(m for m in info["markers"] if m["rule"] == "broad")
    assert len(sites[broad["motif_names"][0]]) < len(own) / 3  # 10 against 60 per Mbp


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


# -- a real background (a FASTA written here) and PWM motifs ---------------------------------

# one-hot matrices: every sampled site is the consensus
ONE_HOT = ["GGGGCGGGGC", "CCACCAGGGGGCGC", "GCCACGTGGC", "GCGCATGCGCA", "AAGATGGCGGC",
           "GCGTGACCAAG", "ACCGGAAGTG", "TGTGGTTTGC"]  # fmt: skip
GENOME_CFG = replace(CFG, n_chroms=0, chrom_len=0, site_density=150)


def jaspar_text(consensus: list[str]) -> str:
    out = []
    for k, seq in enumerate(consensus):
        out.append(f">MA{k:04d}.1 TF{k}")
        for b in "ACGT":
            out.append(f"{b} [ " + " ".join("10" if ch == b else "0" for ch in seq) + " ]")
    return "\n".join(out) + "\n"


def background(path, width=70):
    """A FASTA with mixed case, N runs (upper and lower case), IUPAC letters, a tiny contig."""
    rng = np.random.default_rng(7)
    seqs = {}
    for name, n in [("chrA", 120_000), ("chrB", 90_000), ("chrC", 50_000), ("tiny", 8)]:
        s = rng.choice(np.frombuffer(b"ACGTacgt", np.uint8), size=n, p=[0.2] * 4 + [0.05] * 4)
        if n > 1000:
            s[:3000] = ord("N")
            s[n // 2 : n // 2 + 5000] = ord("n")
            s[n // 3 : n // 3 + 200] = ord("N")
            s[rng.integers(0, n, size=20)] = ord("R")
        seqs[name] = s.tobytes().decode()
    with open(path, "w") as fh:
        for name, s in seqs.items():
            fh.write(f">{name} some description\n")
            fh.writelines(s[i : i + width] + "\n" for i in range(0, len(s), width))
    return {name: s for name, s in seqs.items()}


def check_rules(out, info, truth):
    """Every marker's peaks follow its rule (as in test_planted_sites_and_rules)."""
    sites = {}
    for chrom, s, e, motif, _, _ in truth:
        sites.setdefault(motif, []).append((chrom, (int(s) + int(e)) // 2))
    for m in info["markers"]:
        rows = read_rows(out / "peaks" / f"{m['name']}.bed.gz")

        def covered(chrom, pos, rows=rows):
            return any(c == chrom and s <= pos < e for c, s, e in rows)

        motif = m["motif_names"][0]
        if m["rule"] in ("local", "broad"):
            assert all(covered(c, p) for c, p in sites[motif])
            assert len(rows) == len(sites[motif])
        elif m["rule"] == "union":
            both = sites[m["motif_names"][0]] + sites[m["motif_names"][1]]
            assert all(covered(c, p) for c, p in both)
        else:
            partner = sites[m["partner_name"]]
            for c, p in sites[motif]:
                has = any(c2 == c and 1_000 <= abs(p2 - p) <= 5_000 for c2, p2 in partner)
                assert covered(c, p) == has
            assert 0 < len(rows) < len(sites[motif])


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    d = tmp_path_factory.mktemp("real")
    src = background(d / "bg.fa")
    (d / "m.jaspar").write_text(jaspar_text(ONE_HOT))
    out = d / "sim"
    res = simulate(out, GENOME_CFG, genome=d / "bg.fa", motifs=d / "m.jaspar")
    return d, out, res, src, json.loads((out / "simulation.json").read_text())


def test_real_background_kept_outside_sites(real):
    d, out, res, src, info = real
    seqs = read_fasta(out / "genome.fa")
    assert list(seqs) == ["chrA", "chrB", "chrC", "tiny"]  # names and order kept
    assert {c: len(s) for c, s in seqs.items()} == {c: len(s) for c, s in src.items()}
    assert res.n_bases == sum(len(s) for s in src.values()) and res.chroms == list(src)
    truth = [ln.split("\t") for ln in (out / "truth.bed").read_text().splitlines()]
    assert len(truth) == res.n_sites > 200
    planted = {c: np.zeros(len(s), bool) for c, s in src.items()}
    for chrom, s, e, *_ in truth:
        assert not planted[chrom][int(s) : int(e)].any()  # no overlaps
        planted[chrom][int(s) : int(e)] = True
    for c, s in src.items():
        a = np.frombuffer(s.encode(), np.uint8)
        b = np.frombuffer(seqs[c].encode(), np.uint8)
        assert (a[~planted[c]] == b[~planted[c]]).all()  # byte for byte, case included
        if planted[c].any():
            assert ((a | 0x20) == (b | 0x20))[planted[c]].mean() < 0.9  # sites changed bases
        assert ((a >= 97) == (b >= 97)).all()  # a site takes the case of what it replaces
        acgt = np.isin(a | 0x20, np.frombuffer(b"acgt", np.uint8))
        assert not planted[c][~acgt].any()  # never on N or IUPAC letters, nor across them
        assert "N" * 3000 in seqs[c] or c == "tiny"  # N runs kept
    assert info["genome"]["source"] == "fasta" and info["genome"]["path"].endswith("bg.fa")
    assert info["chroms"] == {c: len(s) for c, s in src.items()}


def test_one_hot_pwm_sites_are_the_consensus(real):
    d, out, res, src, info = real
    seqs = read_fasta(out / "genome.fa")
    comp = str.maketrans("ACGT", "TGCA")
    names = [f"TF{k}" for k in range(8)]
    assert [m["name"] for m in info["motifs"]] == names
    assert [m["consensus"] for m in info["motifs"]] == ONE_HOT
    assert np.array(info["motifs"][0]["matrix"]).shape == (10, 4)
    truth = [ln.split("\t") for ln in (out / "truth.bed").read_text().splitlines()]
    by_name = dict(zip(names, ONE_HOT, strict=True))
    strands = set()
    for chrom, s, e, motif, _, strand in truth:
        want = by_name[motif] if strand == "+" else by_name[motif].translate(comp)[::-1]
        assert seqs[chrom][int(s) : int(e)].upper() == want
        strands.add(strand)
    assert strands == {"+", "-"}
    # brute force: a consensus occurrence not in truth.bed was in the background already, or
    # straddles a planted site and the background (a reverse-complement shifted by one, ...)
    starts = {(c, int(s), m) for c, s, _, m, _, _ in truth}
    planted = {c: np.zeros(len(s), bool) for c, s in src.items()}
    for chrom, s, e, *_ in truth:
        planted[chrom][int(s) : int(e)] = True
    n_found = 0
    for c, seq in seqs.items():
        up = seq.upper()
        for name, cons in by_name.items():
            for word in {cons, cons.translate(comp)[::-1]}:
                k = up.find(word)
                while k >= 0:
                    n_found += (c, k, name) in starts
                    assert (
                        (c, k, name) in starts
                        or src[c].upper()[k : k + len(word)] == word
                        or not planted[c][k : k + len(word)].all()
                    )
                    k = up.find(word, k + 1)
    assert n_found == len(truth)
    # the manifest names the motifs; peaks follow the rules
    rows = (out / "markers.tsv").read_text().splitlines()[1:]
    assert rows[0].split("\t")[0] == "TF0" and "TF0 site" in rows[0].split("\t")[5]
    check_rules(out, info, truth)


def test_pwm_sites_follow_the_matrix(tmp_path):
    """Sampled sites: each position's base frequencies match the matrix's column."""
    bg = tmp_path / "bg.fa"
    background(bg)
    probs = np.array([[0.7, 0.1, 0.1, 0.1], [0.0, 0.5, 0.5, 0.0], [0.25] * 4, [0.1, 0.0, 0.0, 0.9]])
    text = ""
    for k in range(2):
        text += f"MOTIF M{k} P{k}\nletter-probability matrix: alength= 4 w= 4 nsites= 20\n"
        text += "".join(" ".join(f"{v:g}" for v in row) + "\n" for row in probs[:, :: 1 - 2 * k])
        text += "\n"
    (tmp_path / "m.meme").write_text(text)
    cfg = replace(GENOME_CFG, n_markers=3, site_density=3000)
    simulate(tmp_path / "s", cfg, genome=bg, motifs=tmp_path / "m.meme")
    seqs = read_fasta(tmp_path / "s" / "genome.fa")
    comp = str.maketrans("ACGT", "TGCA")
    counts = {"P0": np.zeros((4, 4)), "P1": np.zeros((4, 4))}
    for ln in (tmp_path / "s" / "truth.bed").read_text().splitlines():
        c, s, e, m, _, strand = ln.split("\t")
        site = seqs[c][int(s) : int(e)].upper()
        if strand == "-":
            site = site.translate(comp)[::-1]
        for i, b in enumerate(site):
            counts[m][i, "ACGT".index(b)] += 1
    for k, m in enumerate(["P0", "P1"]):
        n = counts[m][0].sum()
        assert n > 500
        freq = counts[m] / n
        want = probs[:, :: 1 - 2 * k]
        assert np.abs(freq - want).max() < 0.06, (m, freq)
        assert (freq[want == 0] == 0).all()  # impossible bases never drawn


def test_real_genome_crop_bgzip_and_determinism(real, tmp_path):
    import pysam

    d, out, _, src, _ = real
    pysam.tabix_compress(str(d / "bg.fa"), str(tmp_path / "bg.fa.gz"))
    simulate(tmp_path / "gz", GENOME_CFG, genome=tmp_path / "bg.fa.gz", motifs=d / "m.jaspar")
    for f in ("genome.fa", "truth.bed", "markers.tsv"):
        assert (tmp_path / "gz" / f).read_bytes() == (out / f).read_bytes()
    # --chroms / --chrom-len: the first N chromosomes, cropped
    cfg = replace(GENOME_CFG, n_chroms=2, chrom_len=40_000)
    res = simulate(tmp_path / "crop", cfg, genome=d / "bg.fa", motifs=d / "m.jaspar")
    seqs = read_fasta(tmp_path / "crop" / "genome.fa")
    assert {c: len(s) for c, s in seqs.items()} == {"chrA": 40_000, "chrB": 40_000}
    assert res.n_bases == 80_000
    for ln in (tmp_path / "crop" / "truth.bed").read_text().splitlines():
        assert int(ln.split("\t")[2]) <= 40_000
    # without motifs: the consensus library on the real background
    simulate(tmp_path / "cons", GENOME_CFG, genome=d / "bg.fa")
    info = json.loads((tmp_path / "cons" / "simulation.json").read_text())
    assert info["motifs"][0] == {"name": "SP1", "consensus": "GGGGCGGGGC"}


def test_default_simulation_records_its_source(sim):
    _, _, info = sim
    assert info["genome"] == {"source": "random", "gc": CFG.gc}
    assert info["motif_source"] == "consensus"


def test_simulate_cli_genome_and_motifs(real, tmp_path):
    d, out, _, src, _ = real
    base = ["simulate", "--genome", str(d / "bg.fa"), "--motifs", str(d / "m.jaspar")]
    r = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "all"), "--markers", "8"])
    assert r.exit_code == 0, r.output
    assert "4 chromosomes" in r.output  # every chromosome, whole: no default cropping
    assert list(read_fasta(tmp_path / "all" / "genome.fa")) == list(src)
    r = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "one"), "--chroms", "1"])
    assert r.exit_code == 0, r.output
    assert {c: len(s) for c, s in read_fasta(tmp_path / "one" / "genome.fa").items()} == {
        "chrA": 120_000
    }
    r = CliRunner().invoke(
        app, ["simulate", "--genome", str(tmp_path / "no.fa"), "--out", str(tmp_path / "x")]
    )
    assert r.exit_code == 1 and "not found" in r.output


def test_broad_density_thins_histone_motifs_only(tmp_path):
    """broad_density: sites of the motifs histone marks follow, unless a TF / DNase peak is
    centred on them (a distal rule's partner may be thinned); the others keep site_density."""
    cfg = replace(CFG, n_chroms=2, chrom_len=1_000_000, n_markers=12, site_density=100)
    simulate(tmp_path / "a", replace(cfg, broad_density=10))
    info = json.loads((tmp_path / "a" / "simulation.json").read_text())
    centred = {m["motif_names"][i] for m in info["markers"] if m["rule"] != "broad"
               for i in range(len(m["motif_names"]))}  # fmt: skip
    broad = {m["motif_names"][0] for m in info["markers"] if m["rule"] == "broad"}
    thinned = broad - centred
    assert thinned  # the 12-marker library has histone-only and partner motifs

    def counts(d):
        n = {}
        for ln in (d / "truth.bed").read_text().splitlines():
            n[ln.split("\t")[3]] = n.get(ln.split("\t")[3], 0) + 1
        return n

    simulate(tmp_path / "b", cfg)  # broad_density None: every motif at site_density
    thin, full = counts(tmp_path / "a"), counts(tmp_path / "b")
    partners = {m["partner_name"] for m in info["markers"] if m["rule"] == "distal"}
    for motif in thinned - partners:  # 10 per Mbp x 2 Mbp instead of 100 x 2
        assert thin.get(motif, 0) < 60 < 150 < full[motif], (motif, thin.get(motif))
    for motif in thinned & partners:  # plus the partners planted beside the distal sites
        assert thin[motif] < full[motif] - 100, (motif, thin[motif], full[motif])
    for motif in centred:  # 100 per Mbp x 2 Mbp
        assert thin[motif] > 150, (motif, thin[motif])


# -- option ranges and output paths: one line each, before any work ----------------------------
def _sim_cli(*argv):
    return CliRunner().invoke(app, ["simulate", *argv])


def _one_line(r, *needles):
    assert r.exit_code == 1, r.output
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    assert "Traceback" not in r.output
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.mark.parametrize(
    "argv,needles",
    [
        (["--seed", "-1"], ["--seed", "-1"]),
        (["--site-density", "-1"], ["--site-density", ">= 0"]),
        (["--site-density", "nan"], ["--site-density"]),
        (["--site-density", "inf"], ["--site-density"]),
        (["--site-density", "1e9"], ["--site-density 1e+09", "cannot fit", "at most"]),
        (["--n-markers", "0"], ["--n-markers", "at least 3"]),
        (["--n-markers", "-5"], ["--n-markers"]),
        (["--n-chroms", "0"], ["--n-chroms", "at least 1"]),
        (["--n-chroms", "-2"], ["--n-chroms"]),
        (["--chrom-len", "0"], ["--chrom-len"]),
        (["--chrom-len", "-100"], ["--chrom-len"]),
        (["--chrom-len", "10000000000"], ["--chrom-len", "4,294,967,295"]),
        (["--broad-density", "-1"], ["--broad-density", ">= 0"]),
        (["--distal-min", "0"], ["--distal-min", ">= 1"]),
        (["--distal-min", "2000", "--distal-max", "1500"], ["--distal-max", "--distal-min (2000)"]),
    ],
)
def test_simulate_option_ranges(tmp_path, argv, needles):
    out = tmp_path / "o"
    _one_line(
        _sim_cli("--out", str(out), "--n-chroms", "1", "--chrom-len", "50000", *argv), *needles
    )
    assert not out.exists()  # refused before anything was written


def test_site_density_bound_is_what_fits(tmp_path):
    """The bound: the planted sites of every motif, which never overlap, fill the genome."""
    from regtracks.data.simulate import MOTIFS

    total = sum(len(seq) for _, seq in MOTIFS[:8])  # n_markers <= 8: the first 8 motifs
    most = 1e6 / total
    cfg = replace(CFG, n_chroms=1, chrom_len=50_000, n_markers=3)
    from regtracks._util import RegtracksError

    with pytest.raises(RegtracksError, match=rf"at most {int(most):,}$"):
        simulate(tmp_path / "a", replace(cfg, site_density=most * 1.01))
    assert not (tmp_path / "a").exists()
    simulate(tmp_path / "b", replace(cfg, site_density=most * 0.5))  # dense, but fits
    sites = (tmp_path / "b" / "truth.bed").read_text().count("\n")
    assert sites > 0.3 * 50_000 / total * 8 * 0.5  # many sites


@pytest.mark.parametrize(
    "field,value,needle",
    [
        ("gc", 1.0, "gc"),
        ("gc", 0.0, "gc"),
        ("n_gaps_per_chrom", -1, "n_gaps_per_chrom"),
        ("softmask_fraction", 1.5, "softmask_fraction"),
        ("noise", -0.1, "noise"),
        ("mutation", 2.0, "mutation"),
        ("distal_min", 0, "--distal-min"),
        ("distal_max", 500, "--distal-max"),
        ("broad_density", -3.0, "--broad-density"),
        ("seed", 1.5, "--seed"),
    ],
)
def test_simulate_config_ranges(tmp_path, field, value, needle):
    from regtracks._util import RegtracksError

    with pytest.raises(RegtracksError, match=needle) as exc:
        simulate(tmp_path / "o", replace(CFG, **{field: value}))
    assert "\n" not in str(exc.value)
    assert not (tmp_path / "o").exists()


def test_simulate_output_path_errors(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    small = ["--n-chroms", "1", "--chrom-len", "50000", "--n-markers", "3"]
    _one_line(_sim_cli("--out", str(f), *small), str(f), "is a file")
    _one_line(_sim_cli("--out", str(f / "sub"), *small), str(f), "is a file")
    assert f.read_text() == "x"
