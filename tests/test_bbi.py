"""regtracks' own bigWig writer (``engine="native"``, :mod:`regtracks.tracks.bbi`).

The engine tests of ``test_bigwig.py`` (values, gaps, headers, processes, checks, disk) run on
it too; here what only it does: zoom records computed as the blocks arrive, checked record by
record against a brute force over the bases (read back by pybigtools), the split of a bin
across a record boundary, blocks cut anywhere giving the same bytes, the multi-level chromosome
tree, and a track without data.
"""

from __future__ import annotations

import numpy as np
import pybigtools
import pyBigWig
import pytest

from regtracks.tracks.bbi import zoom_reductions
from regtracks.tracks.bigwig import BigWigWriter, check_bigwig, zoom_levels


def _per_base(values: np.ndarray, start: int, size: int, bin_size: int) -> np.ndarray:
    """Per-base float64 values of bins from ``start`` (NaN: no data), over ``[0, size)``."""
    out = np.full(size, np.nan)
    rep = np.repeat(values.astype(np.float64), bin_size)[: size - start]
    out[start : start + len(rep)] = rep
    out[~np.isfinite(out)] = np.nan
    return out


def _zoom_levels(path) -> list[int]:
    import struct

    with open(path, "rb") as fh:
        head = fh.read(64)
        n = struct.unpack("<H", head[6:8])[0]
        return [struct.unpack("<IIQQ", fh.read(24))[0] for _ in range(n)]


def _assert_zooms_exact(path, bases: dict[str, np.ndarray]) -> None:
    """Every zoom record of every level equals the brute force over its bases; the records of
    a level cover every base with data exactly once; none is written without data."""
    rd = pybigtools.open(str(path))
    try:
        levels = _zoom_levels(path)
        assert levels, "no zoom levels"
        for red in levels:
            for chrom, v in bases.items():
                recs = list(rd.zoom_records(red, chrom, 0, len(v)))
                covered = 0
                for s, e, z in recs:
                    assert s % red == 0 and e == min(s + red, len(v))  # on the level's grid
                    x = v[s:e][np.isfinite(v[s:e])]
                    assert len(x) and z["bases_covered"] == len(x)
                    np.testing.assert_allclose(z["min_val"], x.min(), rtol=1e-6)
                    np.testing.assert_allclose(z["max_val"], x.max(), rtol=1e-6)
                    np.testing.assert_allclose(z["sum"], x.sum(), rtol=2e-5, atol=1e-3)
                    np.testing.assert_allclose(z["sum_squares"], (x**2).sum(), rtol=2e-5, atol=1e-3)
                    covered += len(x)
                assert covered == int(np.isfinite(v).sum()), (red, chrom)
    finally:
        rd.close()


SIZES = [("chr1", 61_050), ("chrE", 5_000), ("chr2", 23_333)]  # chrE: no data


def _random(bin_size: int, seed: int = 0, n_tracks: int = 3):
    rng = np.random.default_rng(seed)
    out = {}
    for chrom, size in (("chr1", 61_050), ("chr2", 23_333)):
        out[chrom] = rng.random((n_tracks, -(-size // bin_size))).astype(np.float32)
    a = out["chr1"]
    a[:, 100:130] = np.nan  # a gap in every track
    a[0, 7] = np.nan  # a hole in one
    a[1, -1] = np.inf  # the partial last bin left out in one
    a[2, :] = np.where(np.arange(a.shape[1]) % 50 < 25, a[2], np.nan)  # runs of holes
    return out


@pytest.mark.parametrize("bin_size", [128, 50, 1])
@pytest.mark.parametrize("step", [37, 10_000])
def test_zoom_records_equal_brute_force(tmp_path, bin_size, step):
    """Blocks of 37 bins (records continue across blocks) and of 10,000; three bin sizes."""
    blocks = _random(bin_size)
    paths = [tmp_path / f"t{i}.bw" for i in range(3)]
    with BigWigWriter(paths, SIZES, bin_size=bin_size, n_procs=0, engine="native") as w:
        for chrom, v in blocks.items():
            for j in range(0, v.shape[1], step):
                w.add(chrom, j * bin_size, v[:, j : j + step])
    sizes = dict(SIZES)
    assert _zoom_levels(paths[0]) == zoom_reductions(bin_size, 61_050)
    for i, p in enumerate(paths):
        bases = {c: _per_base(v[i], 0, sizes[c], bin_size) for c, v in blocks.items()}
        _assert_zooms_exact(p, bases)
        with pyBigWig.open(str(p)) as bw:
            for c, want in bases.items():
                np.testing.assert_array_equal(bw.values(c, 0, sizes[c], numpy=True), want)
            assert bw.intervals("chrE") is None


def test_bins_across_record_boundaries_split_their_bases(tmp_path):
    """Blocks starting off the bin grid: bins straddle the zoom records' boundaries, and each
    record counts only its share of their bases."""
    rng = np.random.default_rng(3)
    bs, size = 100, 61_050
    v1 = rng.random((2, 200)).astype(np.float32)
    v2 = rng.random((2, 300)).astype(np.float32)
    paths = [tmp_path / f"t{i}.bw" for i in range(2)]
    with BigWigWriter(paths, [("chr1", size)], bin_size=bs, n_procs=0, engine="native") as w:
        w.add("chr1", 1_037, v1)  # bins [1037, 1137), ...: 2000-bp records cut them
        w.add("chr1", 30_011, v2)
    for i, p in enumerate(paths):
        bases = np.full(size, np.nan)
        bases[1_037 : 1_037 + 200 * bs] = np.repeat(v1[i], bs)
        bases[30_011 : 30_011 + 300 * bs] = np.repeat(v2[i], bs)
        _assert_zooms_exact(p, {"chr1": bases})
        with pyBigWig.open(str(p)) as bw:
            np.testing.assert_array_equal(bw.values("chr1", 0, size, numpy=True), bases)


def _cut(rng, n: int, kind: str) -> list[int]:
    """Cut points of ``n`` bins: one block, every bin, a fixed step, or at random."""
    if kind == "whole":
        return [0, n]
    if kind == "every":
        return list(range(n + 1))
    if kind.isdigit():
        return [*range(0, n, int(kind)), n]
    inner = rng.choice(np.arange(1, n), size=min(n - 1, 40), replace=False)
    return [0, *sorted(inner.tolist()), n]


@pytest.mark.parametrize("bin_size", [128, 1])
def test_files_do_not_depend_on_how_the_blocks_were_cut(tmp_path, bin_size):
    """The same bins in one block a chromosome, one bin a block, blocks of 5,121 and blocks cut
    at random (and a gap between blocks in each): the same bytes, so files written by writer
    processes with any slot size, or under torchrun, are identical to one process's. Sections
    and zoom records (levels longer than a block, and than the writer's grid) included."""
    sizes = [("chr1", 2_000_000 if bin_size > 1 else 61_050), ("chrE", 5_000), ("chr2", 23_333)]
    data = _random(bin_size, seed=7)
    n1 = -(-sizes[0][1] // bin_size)
    rng = np.random.default_rng(8)
    data["chr1"] = np.pad(data["chr1"], ((0, 0), (0, n1 - data["chr1"].shape[1])))
    data["chr1"][:, 61_050 // bin_size :] = rng.random((3, n1 - 61_050 // bin_size))
    gap = (n1 // 3, n1 // 3 + 777)  # no block covers these bins
    want = None
    for kind in ("whole", "every", "5121", "random", "random"):
        if kind == "every" and bin_size > 1:
            kind = "1"
        paths = [tmp_path / f"{kind}{rng.integers(1e9)}_{i}.bw" for i in range(3)]
        with BigWigWriter(paths, sizes, bin_size=bin_size, n_procs=0, engine="native") as w:
            for chrom, v in data.items():
                n = v.shape[1]
                for lo, hi in ((0, gap[0]), (gap[1], n)) if chrom == "chr1" else ((0, n),):
                    cuts = _cut(rng, hi - lo, kind)
                    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
                        w.add(chrom, (lo + a) * bin_size, v[:, lo + a : lo + b])
        got = [p.read_bytes() for p in paths]
        if want is None:
            want = got
            for i, p in enumerate(paths):  # and the file is right
                v = data["chr1"][i].copy()
                v[gap[0] : gap[1]] = np.nan
                _assert_zooms_exact(p, {"chr1": _per_base(v, 0, sizes[0][1], bin_size)})
        assert [g == x for g, x in zip(got, want, strict=True)] == [True] * 3, kind


def test_more_chromosomes_than_one_tree_leaf(tmp_path):
    """70,000 scaffolds (more than a leaf of 65,535 holds): UCSC's sorted multi-level tree;
    every reader finds each scaffold, and pyBigWig lists them in the caller's order."""
    sizes = [(f"scaf{i}", 1_000 + i % 7) for i in range(70_000)][::-1]  # not sorted
    p = tmp_path / "many.bw"
    with BigWigWriter([p], sizes, bin_size=100, n_procs=0, engine="native") as w:
        w.add("scaf69999", 0, np.arange(11, dtype=np.float32)[None])  # the first chromosome
        w.add("scaf5", 0, np.full((1, 11), 2.0, np.float32))  # the last one
    with pyBigWig.open(str(p)) as bw:
        assert list(bw.chroms().items()) == sizes
        assert bw.intervals("scaf69999")[-1] == (1_000, 1_006, 10.0)
        assert bw.intervals("scaf5")[0] == (0, 100, 2.0) and bw.intervals("scaf7") is None
    rd = pybigtools.open(str(p))
    assert dict(rd.chroms()) == dict(sizes)
    np.testing.assert_array_equal(rd.values("scaf5", 995, 1_005, fillna=None), [2.0] * 10)
    rd.close()


def test_a_track_without_data(tmp_path):
    """All NaN: a valid file with no sections and no zoom levels (as pyBigWig writes one)."""
    paths = [tmp_path / "empty.bw", tmp_path / "full.bw"]
    v = np.full((2, 50), np.nan, np.float32)
    v[1] = 0.5
    with BigWigWriter(paths, [("chr1", 5_000)], bin_size=100, n_procs=0, engine="native") as w:
        w.add("chr1", 0, v)
    check_bigwig(paths[0], [("chr1", 5_000)], bases=0)
    assert zoom_levels(paths[0]) == 0 and zoom_levels(paths[1]) >= 1
    with pyBigWig.open(str(paths[0])) as bw:
        assert bw.intervals("chr1") is None and bw.header()["nBasesCovered"] == 0
    with pyBigWig.open(str(paths[1])) as bw:
        assert bw.header()["nBasesCovered"] == 5_000 and bw.stats("chr1")[0] == 0.5
