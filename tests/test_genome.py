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
