import multiprocessing as mp
import pickle

import numpy as np
import pysam
import pytest

from regtracks._util import RegtracksError
from regtracks.data.genome import Genome, decode, encode, one_hot, reverse_complement
from tests.conftest import write_fasta

BRUTE = {"A": 1, "C": 2, "G": 3, "T": 4}


def brute_codes(text: str) -> np.ndarray:
    return np.array([BRUTE.get(ch.upper(), 0) for ch in text], dtype=np.uint8)


@pytest.mark.parametrize("backend", ["pysam", "pyfaidx"])
def test_fetch_matches_text(tiny, rng, backend):
    g = Genome(tiny["fasta"], backend=backend)
    assert g.chroms == ["chr1", "chr2"]
    assert g.sizes == tiny["sizes"]
    for _ in range(50):
        chrom = "chr1" if rng.random() < 0.5 else "chr2"
        size = tiny["sizes"][chrom]
        s = int(rng.integers(-50, size))
        e = s + int(rng.integers(0, 400))
        got = g.fetch(chrom, s, e)
        text = tiny["seqs"][chrom]
        want = np.zeros(e - s, dtype=np.uint8)
        lo, hi = max(s, 0), min(e, size)
        if hi > lo:
            want[lo - s : hi - s] = brute_codes(text[lo:hi])
        np.testing.assert_array_equal(got, want)


def test_softmask_iupac_and_gap(tiny):
    g = Genome(tiny["fasta"])
    c = g.fetch("chr1", 5_000, 5_050)
    assert (c == 0).all()  # lowercase n is N
    assert g.fetch("chr1", 1_000, 1_002).tolist() == [0, 0]  # IUPAC R -> N
    lower = tiny["seqs"]["chr2"][:200]
    assert any(ch.islower() for ch in lower)
    assert (g.fetch("chr2", 0, 200) > 0).all()  # soft-masked bases read as bases


def test_bgzip_fasta(tiny, tmp_path):
    bgz = tmp_path / "tiny.fa.gz"
    pysam.tabix_compress(str(tiny["fasta"]), str(bgz))
    g = Genome(bgz)
    plain = Genome(tiny["fasta"])
    assert g.compressed and g.name == "tiny"
    np.testing.assert_array_equal(g.fetch("chr2", 10, 4_000), plain.fetch("chr2", 10, 4_000))


def test_plain_gzip_and_missing_fasta(tiny, tmp_path):
    import gzip

    gz = tmp_path / "plain.fa.gz"
    gz.write_bytes(gzip.compress(tiny["fasta"].read_bytes()))
    with pytest.raises(RegtracksError, match="bgzip"):
        Genome(gz)
    with pytest.raises(RegtracksError, match="not found"):
        Genome(tmp_path / "nope.fa")


def test_one_hot_and_reverse_complement(rng):
    codes = rng.integers(0, 5, size=(3, 57)).astype(np.uint8)
    x = one_hot(codes)
    assert x.shape == (3, 4, 57) and x.dtype == np.float32
    np.testing.assert_array_equal(x.sum(1), (codes > 0).astype(np.float32))
    for k in range(4):
        np.testing.assert_array_equal(x[:, k], (codes == k + 1))
    rc = reverse_complement(codes)
    np.testing.assert_array_equal(reverse_complement(rc), codes)
    # one-hot of the reverse complement = both axes flipped (ACGT order)
    np.testing.assert_array_equal(one_hot(rc), x[:, ::-1, ::-1])
    assert decode(reverse_complement(encode("AACGTN"))) == "NACGTT"


def test_chrom_aliases(tmp_path):
    g = Genome(write_fasta(tmp_path / "a.fa", {"chr1": "ACGT" * 10, "chrM": "AC" * 5}))
    assert g.resolve("1") == "chr1" and g.resolve("MT") == "chrM" and g.resolve("chr2") is None
    with pytest.raises(RegtracksError, match="unknown chromosome 'chr2'.*valid: chr1, chrM"):
        g.require("chr2")
    both = Genome(write_fasta(tmp_path / "b.fa", {"1": "ACGT", "chr1": "ACGT"}))
    assert both.resolve("1") == "1" and both.resolve("chr1") == "chr1"
    ens = Genome(write_fasta(tmp_path / "c.fa", {"1": "ACGT", "X": "ACGT"}))
    assert ens.resolve("chr1") == "1" and ens.resolve("chrX") == "X"


def test_n_runs_and_counts(tiny, rng):
    g = Genome(tiny["fasta"])
    text = tiny["seqs"]["chr1"]
    isn = brute_codes(text) == 0
    for _ in range(30):
        s = int(rng.integers(-100, 7_000))
        e = s + int(rng.integers(1, 2_000))
        inside = isn[max(s, 0) : min(e, 7_000)].sum()
        outside = (e - s) - max(0, min(e, 7_000) - max(s, 0))
        assert g.n_count("chr1", [s], [e])[0] == inside + outside


_INHERITED = {}


def _fetch_in_child(start):
    # uses the Genome inherited through fork, whose handle was opened in the parent
    return _INHERITED["g"].fetch("chr1", start, start + 500)


def test_handles_are_per_process(tiny):
    g = Genome(tiny["fasta"])
    want = [g.fetch("chr1", s, s + 500) for s in range(0, 6_000, 700)]  # parent opens a handle
    assert g._handle is not None
    state = pickle.loads(pickle.dumps(g))
    assert state._handle is None
    _INHERITED["g"] = g
    ctx = mp.get_context("fork")
    with ctx.Pool(2) as pool:
        got = pool.map(_fetch_in_child, list(range(0, 6_000, 700)))
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)


def _dup_fasta(path, *, crlf=False, desc=False, width=7):
    """chr1, chr2, a second chr1, chr3 (lines of ``width``; optional descriptions, CRLF)."""
    recs = [("chr1", "ACGT" * 5), ("chr2", "GGCC" * 3), ("chr1", "TTTT" * 6), ("chr3", "AC" * 9)]
    nl = "\r\n" if crlf else "\n"
    text = ""
    for name, seq in recs:
        text += f">{name}{' some description' if desc else ''}{nl}"
        text += "".join(seq[i : i + width] + nl for i in range(0, len(seq), width))
    path.write_bytes(text.encode())
    return path


@pytest.mark.parametrize("backend", ["pysam", "pyfaidx"])
@pytest.mark.parametrize("crlf,desc", [(False, False), (False, True), (True, True)])
def test_duplicate_fasta_names_refused(tmp_path, backend, crlf, desc):
    fa = _dup_fasta(tmp_path / "dup.fa", crlf=crlf, desc=desc)
    with pytest.raises(RegtracksError) as exc:
        Genome(fa, backend=backend)
    msg = str(exc.value)
    assert "\n" not in msg and "dup.fa" in msg and "'chr1'" in msg and "twice" in msg
    # an index already there (samtools faidx, which keeps the first chr1) is caught too
    fai = tmp_path / "dup.fa.fai"
    if not fai.exists():
        level = pysam.set_verbosity(0)  # samtools' warning is not the test's
        pysam.faidx(str(fa))
        pysam.set_verbosity(level)
    assert [ln.split("\t")[0] for ln in fai.read_text().splitlines()] == ["chr1", "chr2", "chr3"]
    with pytest.raises(RegtracksError, match=r"dup\.fa.*'chr1'.*twice"):
        Genome(fa, backend=backend)


def test_duplicate_last_record_and_bgzip(tmp_path):
    # the second chr1 is the last record: nothing indexed follows it
    fa = write_fasta(tmp_path / "end.fa", {"chr1": "ACGT" * 30, "chr2": "GG" * 5})
    with open(fa, "a") as fh:
        fh.write(">chr2 again\nACGTACGT\nAC\n")
    with pytest.raises(RegtracksError, match=r"end\.fa.*'chr2'.*twice"):
        Genome(fa)
    # bgzip, blocks of 64 kb: the gap is read through the .gzi
    big = _dup_fasta(tmp_path / "big.fa", width=60)
    seqs = {f"c{i}": "ACGT" * 20_000 for i in range(3)}
    extra = write_fasta(tmp_path / "extra.fa", seqs)
    big.write_bytes(extra.read_bytes() + big.read_bytes() + extra.read_bytes()[:0])
    bgz = tmp_path / "big.fa.gz"
    pysam.tabix_compress(str(big), str(bgz))
    with pytest.raises(RegtracksError, match=r"big\.fa\.gz.*'chr1'.*twice"):
        Genome(bgz)
    level = pysam.set_verbosity(0)
    pysam.faidx(str(bgz))  # samtools' index, first chr1 kept
    pysam.set_verbosity(level)
    assert (tmp_path / "big.fa.gz.gzi").stat().st_size > 8  # several blocks
    with pytest.raises(RegtracksError, match=r"big\.fa\.gz.*'chr1'.*twice"):
        Genome(bgz)


def test_index_with_duplicate_names_refused(tmp_path):
    fa = write_fasta(tmp_path / "a.fa", {"chr1": "ACGT" * 5, "chr2": "AC"})
    Genome(fa)
    fai = tmp_path / "a.fa.fai"
    first = fai.read_text().splitlines()[0]
    fai.write_text(fai.read_text() + first.replace("chr1", "chr2", 1) + "\n")
    with pytest.raises(RegtracksError, match=r"a\.fa\.fai.*'chr2'.*twice"):
        Genome(fa)


@pytest.mark.parametrize("desc", [False, True])
def test_good_fastas_pass_the_record_check(tmp_path, rng, desc):
    """Descriptions, CRLF, blank lines at record ends, an empty record (htslib leaves it out of
    the index) and a last line without a newline are not mistaken for duplicates; bgzip too."""
    from tests.conftest import random_seq

    parts = []
    for i, n in enumerate([0, 1, 59, 60, 61, 600, 1234]):
        head = f">s{i}" + (f" len={n} x y" if desc else "")
        seq = random_seq(rng, n)
        body = "".join(seq[k : k + 60] + "\n" for k in range(0, n, 60))
        parts.append(head + "\n" + body + ("\n" if i == 3 else ""))
    text = "".join(parts).rstrip("\n")  # the last line lacks its newline
    fa = tmp_path / "ok.fa"
    fa.write_text(text)
    g = Genome(fa)
    assert g.chroms == [f"s{i}" for i in range(1, 7)]
    crlf = tmp_path / "crlf.fa"
    crlf.write_bytes(("\r\n".join("".join(parts).split("\n"))).encode())
    assert Genome(crlf).chroms == g.chroms
    bgz = tmp_path / "ok.fa.gz"
    pysam.tabix_compress(str(fa), str(bgz))
    assert Genome(bgz).sizes == g.sizes


def test_gap_reader_bgzip_matches_plain(tmp_path, rng):
    """The byte ranges the record check reads are the same through BGZF blocks (ranges that
    cross block ends, reach the end of the file, or are cut at the limit)."""
    from regtracks.data.genome import _GapReader
    from tests.conftest import random_seq

    fa = write_fasta(tmp_path / "r.fa", {f"c{i}": random_seq(rng, 70_000) for i in range(4)})
    bgz = tmp_path / "r.fa.gz"
    pysam.tabix_compress(str(fa), str(bgz))
    Genome(bgz)  # writes the .gzi
    text = fa.read_bytes()
    plain, comp = _GapReader(fa, False), _GapReader(bgz, True)
    assert comp.blocks.shape[0] > 3
    cases = [
        (int(a), int(a) + int(n))
        for a, n in zip(rng.integers(0, len(text), 40), rng.integers(0, 90_000, 40), strict=True)
    ]
    cases += [(65_000, 66_000), (len(text) - 10, None), (100, None), (0, 0)]
    for a, b in cases:
        got_p, got_c = plain.read(a, b), comp.read(a, b)
        assert got_p == got_c
        want = text[a:] if b is None else text[a:b]
        assert got_p[0] == want[: _GapReader.LIMIT] and got_p[1] == (len(want) <= _GapReader.LIMIT)
    plain.close()
    comp.close()


def test_cannot_index_names_htslib_reason(tmp_path):
    fa = tmp_path / "ragged.fa"
    fa.write_text(">chr1\nACGTACGT\nAC\nACGT\n>chr2\nAAAA\n")
    with pytest.raises(RegtracksError) as exc:
        Genome(fa)
    msg = str(exc.value)
    assert msg.startswith(f"{fa}: cannot index FASTA (") and "line 4" in msg and "\n" not in msg
