from dataclasses import replace

import numpy as np
import pytest

from regtracks._util import RegtracksError
from regtracks.config import DEFAULT_DATA
from regtracks.data.genome import Genome
from regtracks.data.windows import dense_windows
from tests.conftest import random_seq, write_fasta


@pytest.fixture
def genome10(tmp_path, rng):
    seqs = {}
    for i in range(1, 11):
        s = list(random_seq(rng, 1_000 + 37 * i, lower_frac=0.1))
        if i == 3:
            s[0:150] = "N" * 150  # 15% N in the first 1 kb window
        if i == 4:
            s[200:290] = "N" * 90  # 9%: kept at max_n 0.10
        seqs[f"chr{i}"] = "".join(s)
    return Genome(write_fasta(tmp_path / "g10.fa", seqs))


def test_tiling_filters_and_paper_split(genome10, tmp_path):
    cfg = replace(DEFAULT_DATA, window_len=1_000)
    w = dense_windows(genome10, cfg)
    assert w.total == 10  # one whole 1 kb window per chromosome; tails unused
    assert w.dropped == {"n_content": 1, "excluded": 0}
    assert len(w) == 9 and (w.start == 0).all()
    info = w.split_info
    assert (
        not info.auto
        and info.chroms["valid"] == ["chr7"]
        and info.chroms["test"] == ["chr8", "chr9"]
    )
    by = {w.chroms[w.chrom_idx[i]]: int(w.split[i]) for i in range(len(w))}
    assert by["chr7"] == 1 and by["chr8"] == 2 and by["chr9"] == 2 and by["chr1"] == 0
    # exclude: a BED covering 20% of chr5's window drops it
    xs = {"chr5": (np.array([100]), np.array([300]))}
    w2 = dense_windows(genome10, cfg, exclude=xs)
    assert w2.dropped == {"n_content": 1, "excluded": 1}


def test_auto_and_explicit_splits(genome10):
    cfg = replace(
        DEFAULT_DATA, window_len=1_000, chroms=("chr1", "chr2", "chr3", "chr4", "chr5", "chr6")
    )
    w = dense_windows(genome10, cfg)
    assert w.split_info.auto
    assert w.split_info.chroms["test"] == ["chr6"] and w.split_info.chroms["valid"] == ["chr5"]
    w = dense_windows(genome10, replace(cfg, valid_chroms=("chr1",), test_chroms=("2",)))
    assert w.split_info.chroms["test"] == ["chr2"] and not w.split_info.auto
    with pytest.raises(RegtracksError, match="unknown chromosome 'chrZ'"):
        dense_windows(genome10, replace(cfg, test_chroms=("chrZ",)))
    with pytest.raises(RegtracksError, match="unknown chromosome 'chr99'"):
        dense_windows(genome10, replace(cfg, chroms=("chr99",)))


def test_random_split_is_seeded(genome10):
    cfg = replace(DEFAULT_DATA, window_len=100, split="random", seed=7)
    a = dense_windows(genome10, cfg)
    b = dense_windows(genome10, cfg)
    c = dense_windows(genome10, replace(cfg, seed=8))
    np.testing.assert_array_equal(a.split, b.split)
    assert not np.array_equal(a.split, c.split)
    frac = np.bincount(a.split, minlength=3) / len(a)
    assert abs(frac[0] - 0.8) < 0.08 and abs(frac[1] - 0.1) < 0.05


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"window_len": 0}, "window-len"),
        ({"max_n": 2.0}, "max-n"),
        ({"window_len": 10**7}, "no window"),
    ],
)
def test_bad_window_options(genome10, kw, match):
    with pytest.raises(RegtracksError, match=match):
        dense_windows(genome10, replace(DEFAULT_DATA, **kw))
