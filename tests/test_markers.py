import gzip
from pathlib import Path

import numpy as np
import pytest

from regtracks._util import RegtracksError
from regtracks.data.genome import Genome
from regtracks.data.markers import MarkerSet, read_peaks
from tests.conftest import write_bed, write_fasta, write_manifest

DATA = Path(__file__).parent / "data"


def brute_cover(rows, chrom, size):
    cov = np.zeros(size, dtype=bool)
    for c, s, e in rows:
        if c == chrom:
            cov[s:e] = True
    return cov


def test_manifest_and_merging(tiny):
    ms = MarkerSet.from_tsv(tiny["manifest"])
    assert ms.names == ["TF1", "H3K4me3", "DHS"]
    assert ms.categories == ["TFBS", "Histone", "DNase"]  # any case in the file
    assert ms[0].cell_type == "K562"
    g = Genome(tiny["fasta"])
    mi = ms.read(g)
    for i, name in enumerate(ms.names):
        rows = tiny["rows"][name]
        assert mi.n_peaks[i] == len(rows)
        for chrom, size in tiny["sizes"].items():
            s, e = mi.per_marker[i][chrom]
            assert (np.diff(s) > 0).all() and (
                s[1:] > e[:-1]
            ).all()  # sorted, disjoint, not touching
            cov = brute_cover(rows, chrom, size)
            got = np.zeros(size, dtype=bool)
            for a, b in zip(s, e, strict=True):
                got[a:b] = True
            np.testing.assert_array_equal(got, cov)
            # number of merged intervals = number of runs of coverage
            assert s.size == int((np.diff(cov.astype(int), prepend=0) == 1).sum())
    assert mi.missing_chroms == {"chrUn_random": 3}
    assert "3 peaks on 1 chromosome(s) absent" in mi.missing_summary()


def test_formats(tmp_path):
    bed3 = write_bed(tmp_path / "a.bed", [("chr1", 5, 10), ("chr1", 1, 3)], header=False)
    broad = write_bed(tmp_path / "b.broadPeak", [("chr1", 5, 10, "x", 0, ".", 1, -1, -1)])
    spaced = tmp_path / "c.bed"
    spaced.write_text("chr1 5 10\nchr1 20 30 name\n")
    for p in (bed3, broad):
        pf = read_peaks(p)
        assert pf.n_peaks == (2 if p == bed3 else 1)
    pf = read_peaks(spaced)
    assert pf.intervals["chr1"][0].tolist() == [5, 20]


@pytest.mark.parametrize(
    "line,match",
    [
        ("chr1\tx\t10", r"a\.bed:2: start/end are not integers"),
        ("chr1\t10\t10", r"a\.bed:2: bad interval chr1:10-10"),
        ("chr1\t-1\t10", r"a\.bed:2: bad interval"),
        ("chr1\t10", r"a\.bed:2: expected at least 3 columns"),
    ],
)
def test_malformed_bed_names_file_and_line(tmp_path, line, match):
    p = tmp_path / "a.bed"
    p.write_text("chr1\t1\t5\n" + line + "\n")
    with pytest.raises(RegtracksError, match=match):
        read_peaks(p)


@pytest.mark.parametrize(
    "text,match",
    [
        ("", "empty"),
        ("name\tpath\nA\ta.bed\n", "lacks required column.*category"),
        (
            "name\tcategory\tpath\nA\tenhancer\ta.bed\n",
            r"markers.tsv:2: unknown category 'enhancer'",
        ),
        (
            "name\tcategory\tpath\nA\tTFBS\ta.bed\nA\tDNase\ta.bed\n",
            r"markers.tsv:3: duplicate marker name 'A'",
        ),
        ("name\tcategory\tpath\n", "lists no markers"),
    ],
)
def test_bad_manifests(tmp_path, text, match):
    (tmp_path / "a.bed").write_text("chr1\t1\t5\n")
    p = tmp_path / "markers.tsv"
    p.write_text(text)
    with pytest.raises(RegtracksError, match=match):
        MarkerSet.from_tsv(p)


def test_missing_files(tmp_path):
    with pytest.raises(RegtracksError, match="manifest not found"):
        MarkerSet.from_tsv(tmp_path / "none.tsv")
    m = write_manifest(tmp_path / "m.tsv", [{"name": "A", "category": "TFBS", "path": "gone.bed"}])
    # refused when the manifest is read, naming it and the line
    with pytest.raises(
        RegtracksError, match=r"m\.tsv:2: peak file of marker 'A' not found: gone\.bed"
    ):
        MarkerSet.from_tsv(m)
    (tmp_path / "gone.bed").mkdir()
    with pytest.raises(RegtracksError, match=r"m\.tsv:2: peak file of marker 'A' is a folder"):
        MarkerSet.from_tsv(m)
    (tmp_path / "gone.bed").rmdir()
    (tmp_path / "gone.bed").write_text("chr1\t1\t2\n")
    ms = MarkerSet.from_tsv(m)
    (tmp_path / "gone.bed").unlink()  # gone after the manifest was read
    with pytest.raises(RegtracksError, match=r"gone\.bed: peak file of marker 'A' not found"):
        ms.check_files()


def test_ensembl_names_reconciled(tmp_path):
    g = Genome(write_fasta(tmp_path / "g.fa", {"chr1": "ACGT" * 100, "chr2": "ACGT" * 50}))
    write_bed(tmp_path / "p.bed", [("1", 0, 10), ("2", 5, 9), ("chr2", 8, 20), ("9", 1, 2)])
    m = write_manifest(tmp_path / "m.tsv", [{"name": "A", "category": "TFBS", "path": "p.bed"}])
    mi = MarkerSet.from_tsv(m).read(g)
    assert mi.per_marker[0]["chr1"][0].tolist() == [0]
    assert mi.per_marker[0]["chr2"][0].tolist() == [5] and mi.per_marker[0]["chr2"][1].tolist() == [
        20
    ]
    assert mi.missing_chroms == {"9": 1}


@pytest.fixture(scope="module")
def chr19_genome(tmp_path_factory):
    """A real-size hg38 chr19 (all N: only the sizes matter here), named as Ensembl does."""
    d = tmp_path_factory.mktemp("hg38")
    sizes = dict(
        line.split() for line in (DATA / "hg38_chr19_chrM.chrom.sizes").read_text().splitlines()
    )
    n = int(sizes["chr19"])
    path = d / "chr19.fa"
    with open(path, "w") as fh:
        fh.write(">19\n")
        line = "N" * 60 + "\n"
        fh.write(line * (n // 60))
        fh.write("N" * (n % 60) + "\n")
    return Genome(path), n


@pytest.mark.parametrize("name,n_peaks", [("CEBPB_rep1", 19_017), ("CEBPB_rep2", 17_872)])
def test_real_encode_narrowpeak(tmp_path, chr19_genome, name, n_peaks):
    g, n = chr19_genome
    src = DATA / f"{name}.narrowPeak.gz"
    rows = []
    with gzip.open(src, "rt") as fh:
        for line in fh:
            f = line.split("\t")
            assert len(f) == 10  # ENCODE narrowPeak
            rows.append((f[0], int(f[1]), int(f[2])))
    assert len(rows) == n_peaks
    m = write_manifest(
        tmp_path / "m.tsv", [{"name": "CEBPB", "category": "TFBS", "path": str(src)}]
    )
    mi = MarkerSet.from_tsv(m).read(g)
    assert mi.n_peaks == [n_peaks]
    assert mi.missing_chroms == {}
    cov = brute_cover(rows, "chr19", n)
    assert mi.covered_bp(0) == int(cov.sum())
    assert mi.n_intervals(0) == int((np.diff(cov.astype(np.int8), prepend=0) == 1).sum())
    # a genome without chr19: every peak is reported once as on an absent chromosome
    other = Genome(write_fasta(tmp_path / "o.fa", {"chrM": "ACGT" * 4142 + "A"}))
    mi2 = MarkerSet.from_tsv(m).read(other)
    assert mi2.missing_chroms == {"chr19": n_peaks}
    assert mi2.missing_summary().startswith(f"skipped {n_peaks:,} peaks on 1 chromosome(s)")


def test_parallel_read_same_result_and_errors(tiny, tmp_path):
    ms = MarkerSet.from_tsv(tiny["manifest"])
    g = Genome(tiny["fasta"])
    a, b = ms.read(g, workers=1), ms.read(g, workers=2)
    assert a.n_peaks == b.n_peaks and a.missing_chroms == b.missing_chroms
    for x, y in zip(a.per_marker, b.per_marker, strict=True):
        assert x.keys() == y.keys()
        for c in x:
            np.testing.assert_array_equal(x[c][0], y[c][0])
            np.testing.assert_array_equal(x[c][1], y[c][1])
    (tmp_path / "bad.bed").write_text("chr1\t1\t2\nchr1\t9\t3\n")
    m = write_manifest(
        tmp_path / "m.tsv",
        [
            {"name": "A", "category": "TFBS", "path": str(tiny["dir"] / "TF1.bed.gz")},
            {"name": "B", "category": "TFBS", "path": "bad.bed"},
        ],
    )
    with pytest.raises(RegtracksError, match=r"bad\.bed:2: bad interval"):
        MarkerSet.from_tsv(m).read(g, workers=2)


# --- undecodable text, corrupt gzip ----------------------------------------------------------
def test_undecodable_bed_names_file_and_line(tmp_path):
    p = tmp_path / "a.bed"
    p.write_bytes(b"chr1\t1\t5\nchr1\t6\t9\nchr1\t10\t20\tn\xff\xfeme\n")
    with pytest.raises(RegtracksError, match=r"a\.bed:3: not UTF-8 text \(byte 0xff at column 13"):
        read_peaks(p)
    gz = tmp_path / "b.bed.gz"
    gz.write_bytes(gzip.compress(p.read_bytes()))
    with pytest.raises(RegtracksError, match=r"b\.bed\.gz:3: not UTF-8 text"):
        read_peaks(gz)
    # a line ending \r\n and a byte-order mark are text
    crlf = tmp_path / "c.bed"
    crlf.write_bytes(b"\xef\xbb\xbfchr1\t1\t5\r\nchr1\t8\t9\r\n")
    assert read_peaks(crlf).intervals["chr1"][1].tolist() == [5, 9]


def _gz_rows(n=3000):
    return "".join(f"chr1\t{10 * i}\t{10 * i + 5}\n" for i in range(n)).encode()


@pytest.mark.parametrize("damage", ["crc", "flipped", "truncated", "size"])
def test_corrupt_gzip_names_the_file(tmp_path, damage):
    raw = gzip.compress(_gz_rows(), mtime=0)
    if damage == "crc":
        raw = raw[:-8] + bytes(b ^ 0xFF for b in raw[-8:-4]) + raw[-4:]
    elif damage == "size":
        raw = raw[:-4] + bytes(b ^ 0xFF for b in raw[-4:])
    elif damage == "flipped":
        mid = len(raw) // 2
        raw = raw[:mid] + bytes([raw[mid] ^ 0x55]) + b"\xff" * 8 + raw[mid + 9 :]
    else:
        raw = raw[: len(raw) * 2 // 3]
    p = tmp_path / "peaks.bed.gz"
    p.write_bytes(raw)
    with pytest.raises(RegtracksError) as exc:
        read_peaks(p)
    msg = str(exc.value)
    assert "peaks.bed.gz" in msg and "corrupt or truncated gzip" in msg and "\n" not in msg


def test_binary_manifest_names_file_and_line(tmp_path):
    p = tmp_path / "markers.tsv"
    p.write_bytes(b"name\tcategory\tpath\nA\tTFBS\ta.bed\n\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(RegtracksError, match=r"markers\.tsv:3: not UTF-8 text"):
        MarkerSet.from_tsv(p)


# --- manifest fields checked when it is read ------------------------------------------------
def _manifest(tmp_path, rows, header="name\tcategory\tpath\tcell_type\tcolor\tdescription"):
    (tmp_path / "a.bed").write_text("chr1\t1\t5\n")
    p = tmp_path / "markers.tsv"
    p.write_text(header + "\n" + "".join("\t".join(r) + "\n" for r in rows))
    return p


GOOD = ("A", "TFBS", "a.bed", "K562", "0,90,200", "a marker")


@pytest.mark.parametrize(
    "row,match",
    [
        (("A", "TFBS", "a.bed", "", "red", ""), r":2: marker 'A': color 'red' is not R,G,B"),
        (("A", "TFBS", "a.bed", "", "0,90", ""), r":2: marker 'A': color '0,90' is not R,G,B"),
        (("A", "TFBS", "a.bed", "", "0,256,0", ""), r":2: marker 'A': color '0,256,0'"),
        (("A", "TFBS", "a.bed", "", "-1,0,0", ""), r":2: marker 'A': color '-1,0,0'"),
        (("A", "TFBS", "a.bed", "", "1.5,0,0", ""), r":2: marker 'A': color"),
        (("A", "TFBS", "a.bed", "", "#ff0000", ""), r":2: marker 'A': color"),
        (("A", "enhancer", "a.bed", "", "", ""), r":2: unknown category 'enhancer'"),
        (("", "TFBS", "a.bed", "", "", ""), r":2: empty marker name"),
        (("--", "TFBS", "a.bed", "", "", ""), r":2: marker name '--' has no letter or digit"),
        (("A\x01B", "TFBS", "a.bed", "", "", ""), r":2: marker name 'A\\x01B' holds a control"),
        (("X" * 201, "TFBS", "a.bed", "", "", ""), r":2: marker name 'XXXX.*longer than 200"),
        (("A", "TFBS", "a.bed", "K\x1b562", "", ""), r":2: marker 'A': cell_type holds a control"),
        (("A", "TFBS", "", "", "", ""), r":2: marker 'A' has no path"),
    ],
)
def test_manifest_fields_refused_with_file_and_line(tmp_path, row, match):
    p = _manifest(tmp_path, [row])
    with pytest.raises(RegtracksError, match=r"markers\.tsv:2: ") as exc:
        MarkerSet.from_tsv(p)
    assert "\n" not in str(exc.value)
    import re

    assert re.search(match, str(exc.value)), str(exc.value)


def test_manifest_names_that_share_a_track_file(tmp_path):
    p = _manifest(
        tmp_path,
        [GOOD, ("B", "TFBS", "a.bed"), ("A/x", "TFBS", "a.bed"), ("A_x", "DNase", "a.bed")],
    )
    with pytest.raises(
        RegtracksError,
        match=r"markers\.tsv:5: marker names 'A/x' and 'A_x' give the same track file name "
        r"\(pred_A_x\.bw\); rename one \(line 4\)",
    ):
        MarkerSet.from_tsv(p)
    p = _manifest(tmp_path, [("ctcf", "TFBS", "a.bed"), ("CTCF", "TFBS", "a.bed")])
    with pytest.raises(
        RegtracksError, match=r":3: marker names 'ctcf' and 'CTCF'.*differ only in case"
    ):
        MarkerSet.from_tsv(p)
    p = _manifest(tmp_path, [GOOD], header="name\tcategory\tpath\tcolor\tcolor\tdescription")
    with pytest.raises(RegtracksError, match=r"markers\.tsv:1: .*column 'color' twice"):
        MarkerSet.from_tsv(p)


def test_manifest_good_fields_kept(tmp_path):
    rows = [
        GOOD,
        ("H3K4me3.SIM2", "histone", "a.bed", "", " 200 , 60,0 ", ""),
        ("Pol2(S5)", "DNase", "a.bed"),
    ]
    ms = MarkerSet.from_tsv(_manifest(tmp_path, rows))
    assert ms.names == ["A", "H3K4me3.SIM2", "Pol2(S5)"]
    assert [m.color for m in ms] == ["0,90,200", "200,60,0", ""]  # spaces dropped
    assert ms.categories == ["TFBS", "Histone", "DNase"]


def test_marker_set_checks_records_too():
    from regtracks.data.markers import Marker

    with pytest.raises(RegtracksError, match=r"marker 'A': color 'red' is not R,G,B"):
        MarkerSet.from_records([{"name": "A", "category": "TFBS", "path": "x", "color": "red"}])
    with pytest.raises(RegtracksError, match="duplicate marker name 'A'"):
        MarkerSet([Marker("A", "TFBS", "x"), Marker("A", "DNase", "y")])


def test_data_summary_refuses_a_red_color(tiny, tmp_path):
    """The colour is refused when the manifest is read: `data summary` (and so train) fails
    before any peak file is read, naming markers.tsv and its line."""
    from typer.testing import CliRunner

    from regtracks.cli import app

    text = tiny["manifest"].read_text().splitlines()
    f = text[2].split("\t")
    f[4] = "red"
    text[2] = "\t".join(f)
    bad = tiny["dir"] / "markers.tsv"
    bad.write_text("\n".join(text) + "\n")
    r = CliRunner().invoke(
        app, ["data", "summary", "-g", str(tiny["fasta"]), "-m", str(bad), "--window-len", "1000"]
    )
    assert r.exit_code == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "markers.tsv:3: marker 'H3K4me3': color 'red'" in lines[0]


# --- intervals past the chromosome ends --------------------------------------------------------
def _past_end_case(tmp_path, rng, gz=False):
    """chr1 1,000 bp and chr2 500 bp; peaks inside, across the end, wholly past it, on a
    chromosome the genome lacks. Returns genome, bed path, rows, expected clipped / dropped."""
    sizes = {"chr1": 1_000, "chr2": 500}
    g = Genome(write_fasta(tmp_path / "g.fa", {c: "ACGT" * (n // 4) for c, n in sizes.items()}))
    rows = []
    for _ in range(60):
        c = "chr1" if rng.random() < 0.6 else "chr2"
        s = int(rng.integers(0, sizes[c] + 300))
        rows.append((c, s, s + int(rng.integers(1, 400))))
    rows += [("chr2", 400, 100_000), ("chr1", 1_000, 1_001), ("chrUn", 5, 50_000)]
    clipped = sum(1 for c, s, e in rows if c in sizes and e > sizes[c])
    dropped = sum(1 for c, s, e in rows if c in sizes and s >= sizes[c])
    bed = write_bed(tmp_path / ("p.bed.gz" if gz else "p.bed"), rows, gz=gz)
    return g, bed, rows, sizes, clipped, dropped


@pytest.mark.parametrize("workers", [1, 2])
def test_intervals_past_chrom_ends_clipped_and_counted(tmp_path, rng, workers):
    g, bed, rows, sizes, clipped, dropped = _past_end_case(tmp_path, rng)
    assert clipped > 5 and dropped > 1
    m = write_manifest(tmp_path / "m.tsv", [{"name": "A", "category": "TFBS", "path": bed.name}])
    mi = MarkerSet.from_tsv(m).read(g, workers=workers)
    want = 0
    for c, n in sizes.items():  # brute force over the bases of each chromosome
        cov = np.zeros(n + 200_000, dtype=bool)
        for rc, s, e in rows:
            if rc == c:
                cov[s:e] = True
        inside = cov[:n]
        want += int(inside.sum())
        s, e = mi.per_marker[0].get(c, (np.zeros(0, int), np.zeros(0, int)))
        assert (e <= n).all() and (s < n).all()
        got = np.zeros(n, dtype=bool)
        for a, b in zip(s, e, strict=True):
            got[a:b] = True
        np.testing.assert_array_equal(got, inside)
    assert mi.covered_bp(0) == want < sum(sizes.values())
    assert mi.clipped_by_marker == [clipped] and mi.past_end_by_marker == [dropped]
    assert mi.n_peaks == [len(rows)] and mi.missing_chroms == {"chrUn": 1}
    notes = mi.clipped_notes()
    assert len(notes) == 1 and notes[0] == (
        f"{clipped} intervals clipped at chromosome ends in {bed} ({dropped} wholly past the "
        "end, dropped)"
    )
    # a file that stays inside its chromosomes: nothing clipped, no note
    write_bed(tmp_path / "ok.bed", [("chr1", 0, 1_000), ("chr2", 10, 500)])
    m2 = write_manifest(tmp_path / "m2.tsv", [{"name": "A", "category": "TFBS", "path": "ok.bed"}])
    mi2 = MarkerSet.from_tsv(m2).read(g)
    assert mi2.clipped_by_marker == [0] and mi2.clipped_notes() == [] and mi2.covered_bp(0) == 1_490


def test_intervals_past_chrom_ends_strict(tmp_path, rng):
    g, bed, rows, sizes, _, _ = _past_end_case(tmp_path, rng, gz=True)
    first = next(i for i, (c, s, e) in enumerate(rows) if c in sizes and e > sizes[c])
    c, s, e = rows[first]
    lineno = first + 4  # after the track, browser and comment lines
    m = write_manifest(tmp_path / "m.tsv", [{"name": "A", "category": "TFBS", "path": bed.name}])
    with pytest.raises(RegtracksError) as exc:
        MarkerSet.from_tsv(m).read(g, strict=True)
    msg = str(exc.value)
    assert msg.startswith(f"{bed}:{lineno}: interval {c}:{s}-{e} ") and "\n" not in msg
    assert f"past the end of {c} ({sizes[c]:,} bp in g.fa)" in msg
    with pytest.raises(RegtracksError, match=rf"p\.bed\.gz:{lineno}: interval {c}:"):
        read_peaks(bed, genome=g, strict=True)
    # read_bed_intervals (exclude BEDs): clipped by default, refused with strict
    from regtracks.data.markers import read_bed_intervals

    ex = read_bed_intervals(bed, g)
    assert all((e <= sizes[c]).all() for c, (_, e) in ex.items())
    with pytest.raises(RegtracksError, match=rf":{lineno}: interval {c}:"):
        read_bed_intervals(bed, g, strict=True)
