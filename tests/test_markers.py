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
    p = tmp_path / "markers.tsv"
    p.write_text(text)
    with pytest.raises(RegtracksError, match=match):
        MarkerSet.from_tsv(p)


def test_missing_files(tmp_path):
    with pytest.raises(RegtracksError, match="manifest not found"):
        MarkerSet.from_tsv(tmp_path / "none.tsv")
    m = write_manifest(tmp_path / "m.tsv", [{"name": "A", "category": "TFBS", "path": "gone.bed"}])
    with pytest.raises(RegtracksError, match=r"gone\.bed: peak file of marker 'A' not found"):
        MarkerSet.from_tsv(m).check_files()


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
