"""bigWig writer: values, gaps, clipping, header, zoom levels, processes, atomicity, order."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pyBigWig
import pytest

from regtracks._util import RegtracksError
from regtracks.tracks.bigwig import (
    BIGWIG_MAGIC,
    BigWigWriter,
    is_complete,
    write_bigwig,
    zoom_levels,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from pybigwig_floor import write_floor  # noqa: E402  (a benchmark tool, not in the package)

DATA = Path(__file__).parent / "data"
ENCODE_BW = DATA / "CEBPB_rep1.fc.signal.bigWig"

BIN = 100
# chrA ends in a partial bin (50 bp), chrM gets no data at all, chrB is short and partial too
CHROM_SIZES = [("chrA", 10_050), ("chrM", 300), ("chrB", 777)]


def _blocks(n_tracks: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Whole-chromosome bin values with a shared N gap and a few per-track holes."""
    rng = np.random.default_rng(seed)
    out = {}
    for chrom, size in (("chrA", 10_050), ("chrB", 777)):
        n_bins = -(-size // BIN)
        v = rng.normal(size=(n_tracks, n_bins)).astype(np.float32)
        out[chrom] = v
    out["chrA"][:, 10:20] = np.nan  # an assembly gap, in every track
    out["chrA"][0, -1] = np.nan  # track 0 has no data in chrA's partial last bin
    out["chrA"][-1, 55] = np.nan  # a hole in the last track
    out["chrB"][-1, 0] = np.inf  # also no data
    return out


def _expected_intervals(values: np.ndarray, size: int) -> list[tuple[int, int, float]]:
    """Brute force: one interval per finite bin, clipped to the chromosome end."""
    out = []
    for j, v in enumerate(values):
        if np.isfinite(v):
            out.append((j * BIN, min((j + 1) * BIN, size), float(v)))
    return out


def _write(tmp: Path, blocks, n_procs: int, **kw) -> list[Path]:
    n_tracks = blocks["chrA"].shape[0]
    paths = [tmp / f"track{i}.bw" for i in range(n_tracks)]
    with BigWigWriter(paths, CHROM_SIZES, bin_size=BIN, n_procs=n_procs, **kw) as w:
        # chrA in three uneven blocks, the middle one with a gap before it
        a = blocks["chrA"]
        w.add("chrA", 0, a[:, :37])
        w.add("chrA", 37 * BIN, a[:, 37:90])
        w.add("chrA", 90 * BIN, a[:, 90:])
        w.add("chrB", 0, blocks["chrB"])
    return paths


def test_values_intervals_and_stats_read_back(tmp_path):
    blocks = _blocks(3)
    paths = _write(tmp_path, blocks, n_procs=0)
    for i, p in enumerate(paths):
        bw = pyBigWig.open(str(p))
        for chrom, size in (("chrA", 10_050), ("chrB", 777)):
            want = _expected_intervals(blocks[chrom][i], size)
            got = [(s, e, v) for s, e, v in bw.intervals(chrom)]
            assert got == want  # exact float32 values, gaps skipped, last bin clipped
            per_base = np.array(bw.values(chrom, 0, size), dtype=np.float64)
            expect = np.repeat(blocks[chrom][i].astype(np.float64), BIN)[:size]
            expect[~np.isfinite(expect)] = np.nan
            np.testing.assert_array_equal(per_base, expect)
            # stats over the covered bases, weighted by span
            spans = np.array([e - s for s, e, _ in want], dtype=np.float64)
            vals = np.array([v for _, _, v in want], dtype=np.float64)
            mean = bw.stats(chrom, 0, size, type="mean", exact=True)[0]
            assert mean == pytest.approx((spans * vals).sum() / spans.sum(), rel=1e-6)
            assert bw.stats(chrom, type="max", exact=True)[0] == pytest.approx(vals.max())
            cov = bw.stats(chrom, type="coverage", exact=True)[0]
            assert cov == pytest.approx(spans.sum() / size)
        assert bw.intervals("chrM") is None  # no data, but listed in the header
        bw.close()


def test_gaps_carry_no_data_and_no_nan_anywhere(tmp_path):
    blocks = _blocks(3)
    paths = _write(tmp_path, blocks, n_procs=0)
    bw = pyBigWig.open(str(paths[2]))
    assert bw.intervals("chrA", 1000, 2000) is None  # the N gap
    assert all(np.isnan(bw.values("chrA", 1000, 2000)))
    assert bw.intervals("chrA", 5500, 5600) is None  # the one-track hole
    assert not np.isnan(bw.values("chrA", 5600, 5601)[0])
    assert bw.intervals("chrB")[0][0] == BIN  # inf is no data too
    header = bw.header()
    assert np.isfinite([header["sumData"], header["sumSquared"]]).all()
    bw.close()
    bw = pyBigWig.open(str(paths[0]))
    assert bw.intervals("chrA")[-1][1] == 10_000  # its last (partial) bin was NaN
    bw.close()


def test_header_chroms_order_and_zoom_levels(tmp_path):
    paths = _write(tmp_path, _blocks(2), n_procs=0)
    for p in paths:
        bw = pyBigWig.open(str(p))
        assert list(bw.chroms().items()) == CHROM_SIZES
        bw.close()
        raw = p.read_bytes()
        assert int.from_bytes(raw[:4], "little") == BIGWIG_MAGIC
        assert int.from_bytes(raw[6:8], "little") >= 1  # zoomLevels, uint16 at offset 6
        assert zoom_levels(p) == int.from_bytes(raw[6:8], "little")
        assert is_complete(p, CHROM_SIZES)


def test_independent_reader_pybbi(tmp_path):
    bbi = pytest.importorskip("bbi")
    blocks = _blocks(2)
    paths = _write(tmp_path, blocks, n_procs=0)
    p = str(paths[1])
    assert bbi.is_bigwig(p)
    assert bbi.chromsizes(p) == dict(CHROM_SIZES)
    info = bbi.info(p)
    assert info["zoomLevels"] >= 1 and info["version"] == 4 and info["isCompressed"]
    assert len(bbi.zooms(p)) == info["zoomLevels"]
    got = bbi.fetch(p, "chrA", 0, 10_050, missing=np.nan)
    expect = np.repeat(blocks["chrA"][1].astype(np.float64), BIN)[:10_050]
    np.testing.assert_array_equal(got, expect)


def test_processes_match_in_process_byte_for_byte(tmp_path):
    blocks = _blocks(5, seed=1)
    one = _write(tmp_path / "inproc", blocks, n_procs=0)
    # 2 processes, and slots of 7 bins so that blocks are cut and slots are reused
    many = _write(tmp_path / "procs", blocks, n_procs=2, buffer_mb=4 * 5 * 7 * 2 / 2**20, n_slots=2)
    for a, b in zip(one, many, strict=True):
        assert a.read_bytes() == b.read_bytes()
    assert sorted(os.listdir(tmp_path / "procs")) == sorted(p.name for p in many)


def test_rows_pick_tracks_out_of_a_bigger_array(tmp_path):
    blocks = _blocks(4)
    full = _write(tmp_path / "full", blocks, n_procs=0)
    paths = [tmp_path / "some" / "t3.bw", tmp_path / "some" / "t1.bw"]
    with BigWigWriter(paths, CHROM_SIZES, bin_size=BIN, n_procs=0, rows=[3, 1]) as w:
        w.add("chrA", 0, blocks["chrA"])
        w.add("chrB", 0, blocks["chrB"].astype(np.float64))  # cast to float32
    assert paths[0].read_bytes() == full[3].read_bytes()
    assert paths[1].read_bytes() == full[1].read_bytes()


@pytest.mark.parametrize("n_procs", [0, 2])
def test_exception_inside_with_leaves_nothing(tmp_path, n_procs):
    blocks = _blocks(3)
    paths = [tmp_path / "out" / f"t{i}.bw" for i in range(3)]
    with pytest.raises(KeyError):
        with BigWigWriter(paths, CHROM_SIZES, bin_size=BIN, n_procs=n_procs) as w:
            w.add("chrA", 0, blocks["chrA"])
            raise KeyError("scan failed")
    assert os.listdir(tmp_path / "out") == []


def test_abort_and_add_after_close(tmp_path):
    blocks = _blocks(2)
    paths = [tmp_path / f"t{i}.bw" for i in range(2)]
    w = BigWigWriter(paths, CHROM_SIZES, bin_size=BIN, n_procs=0)
    w.add("chrA", 0, blocks["chrA"])
    w.abort()
    assert os.listdir(tmp_path) == []
    w.abort()  # idempotent
    with pytest.raises(RegtracksError, match="aborted"):
        w.add("chrB", 0, blocks["chrB"])


def test_killed_writer_process_is_reported_and_cleaned(tmp_path):
    blocks = _blocks(2)
    paths = [tmp_path / f"t{i}.bw" for i in range(2)]
    w = BigWigWriter(paths, CHROM_SIZES, bin_size=BIN, n_procs=2, buffer_mb=1e-4, n_slots=1)
    w._procs[1].kill()
    w._procs[1].join()
    with pytest.raises(RegtracksError, match="process 1 died"):
        for j in range(0, 101, 3):  # fills the single slot again and again
            w.add("chrA", j * BIN, blocks["chrA"][:, j : j + 3])
        w.close()
    assert os.listdir(tmp_path) == []


def test_stale_temporaries_of_a_killed_run_are_removed(tmp_path):
    stale = tmp_path / ".t0.bw.abc123.tmp.bw"
    stale.write_bytes(b"half a file")
    other = tmp_path / ".other.bw.abc123.tmp.bw"
    other.write_bytes(b"not ours")
    write_bigwig(tmp_path / "t0.bw", CHROM_SIZES, [("chrB", 0, np.ones(8))], bin_size=BIN)
    assert sorted(os.listdir(tmp_path)) == [".other.bw.abc123.tmp.bw", "t0.bw"]


@pytest.mark.parametrize(
    ("chrom", "start", "n_bins", "match"),
    [
        ("chrA", 500, 2, "before the end of the previous block"),  # overlaps 0-1000
        ("chrA", 999, 2, "before the end of the previous block"),
        ("chrUn", 0, 2, "not in the bigWig header"),
        ("chrB", 700, 2, "outside chrB"),  # second bin starts at 800 >= 777
        ("chrB", -100, 2, "outside chrB"),
    ],
)
def test_bad_blocks_raise(tmp_path, chrom, start, n_bins, match):
    w = BigWigWriter([tmp_path / "t.bw"], CHROM_SIZES, bin_size=BIN, n_procs=0)
    w.add("chrA", 0, np.ones((1, 10), np.float32))
    with pytest.raises(RegtracksError, match=match):
        w.add(chrom, start, np.ones((1, n_bins), np.float32))
    w.abort()


def test_chromosome_order_is_the_header_order(tmp_path):
    w = BigWigWriter([tmp_path / "t.bw"], CHROM_SIZES, bin_size=BIN, n_procs=0)
    w.add("chrB", 0, np.ones((1, 2), np.float32))
    with pytest.raises(RegtracksError, match="genome order"):
        w.add("chrA", 5000, np.ones((1, 2), np.float32))
    # a rejected block is not written; the writer stays usable
    w.add("chrB", 200, np.full((1, 2), 2.0, np.float32))
    w.close()
    bw = pyBigWig.open(str(tmp_path / "t.bw"))
    assert bw.intervals("chrA") is None
    assert bw.intervals("chrB") == (
        (0, 100, 1.0),
        (100, 200, 1.0),
        (200, 300, 2.0),
        (300, 400, 2.0),
    )


def test_bad_arguments(tmp_path):
    p = tmp_path / "t.bw"
    with pytest.raises(RegtracksError, match="twice"):
        BigWigWriter([p, tmp_path / "." / "t.bw"], CHROM_SIZES, bin_size=BIN)
    with pytest.raises(RegtracksError, match="bin_size"):
        BigWigWriter([p], CHROM_SIZES, bin_size=0)
    with pytest.raises(RegtracksError, match="listed twice"):
        BigWigWriter([p], [("c", 5), ("c", 6)], bin_size=BIN)
    w = BigWigWriter([p], CHROM_SIZES, bin_size=BIN, n_procs=0)
    with pytest.raises(RegtracksError, match="rows"):
        w.add("chrA", 0, np.ones((2, 3), np.float32))
    with pytest.raises(RegtracksError, match="2-D"):
        BigWigWriter([p], CHROM_SIZES, bin_size=BIN, n_procs=0).add("chrA", 0, np.ones(3))
    assert os.listdir(tmp_path) == []


def test_is_complete(tmp_path):
    paths = _write(tmp_path, _blocks(1), n_procs=0)
    assert is_complete(paths[0], CHROM_SIZES)
    assert not is_complete(paths[0], CHROM_SIZES[:2])  # another genome
    assert not is_complete(paths[0], [CHROM_SIZES[2], *CHROM_SIZES[:2]])  # another order
    assert not is_complete(tmp_path / "missing.bw", CHROM_SIZES)
    junk = tmp_path / "junk.bw"
    junk.write_bytes(b"\x00" * 100)
    assert not is_complete(junk, CHROM_SIZES)


def test_write_floor_writes_the_same_bytes(tmp_path):
    blocks = _blocks(3)
    paths = [tmp_path / f"t{i}.bw" for i in range(3)]
    with BigWigWriter(paths, CHROM_SIZES, bin_size=BIN, n_procs=0) as w:
        w.add("chrA", 0, blocks["chrA"])
        w.add("chrB", 0, blocks["chrB"])
    floor = write_floor(blocks, CHROM_SIZES, bin_size=BIN, n_procs=2, out_dir=tmp_path / "floor")
    assert floor.n_procs == 2 and floor.seconds > 0
    assert floor.n_bytes == w.bytes_written == sum(p.stat().st_size for p in paths)
    for i, p in enumerate(paths):
        assert (tmp_path / "floor" / f"track{i}.bw").read_bytes() == p.read_bytes()


def test_real_encode_bigwig_rebinned_reads_like_the_original(tmp_path):
    """Re-bin ENCODE's CEBPB signal (chr19) at 1 kb and compare what readers see."""
    src = pyBigWig.open(str(ENCODE_BW))
    chrom_sizes = list(src.chroms().items())
    (chrom, size), bin_size = chrom_sizes[0], 1000
    n_full = size // bin_size
    means = src.stats(chrom, 0, n_full * bin_size, type="mean", nBins=n_full)
    means += src.stats(chrom, n_full * bin_size, size, type="mean")
    values = np.array([np.nan if m is None else m for m in means], dtype=np.float32)
    assert np.isnan(values).any() and np.isfinite(values).sum() > 50_000
    out = write_bigwig(tmp_path / "cebpb.bw", chrom_sizes, [(chrom, 0, values)], bin_size=bin_size)

    ours = pyBigWig.open(str(out))
    assert ours.chroms() == src.chroms()
    for key in ("version", "nLevels", "nBasesCovered", "sumData"):
        assert key in ours.header()
    assert ours.header()["version"] == src.header()["version"] == 4
    assert zoom_levels(out) >= 1 and zoom_levels(ENCODE_BW) >= 1
    got = ours.stats(chrom, 0, n_full * bin_size, type="mean", nBins=n_full)
    np.testing.assert_array_equal(
        np.array([np.nan if g is None else g for g in got], np.float32), values[:n_full]
    )
    # zoom-level (non-exact) summaries agree with the original file
    whole_ours = ours.stats(chrom, 0, size, type="mean")[0]
    whole_src = src.stats(chrom, 0, size, type="mean")[0]
    assert whole_ours == pytest.approx(whole_src, rel=0.01)
    ours.close()
    src.close()

    bbi = pytest.importorskip("bbi")
    a, b = bbi.info(str(out)), bbi.info(str(ENCODE_BW))
    assert a.keys() == b.keys() and a["summary"].keys() == b["summary"].keys()
    assert a["isCompressed"] == b["isCompressed"] and a["chromCount"] == b["chromCount"] == 1
    assert a["zoomLevels"] >= 1 and b["zoomLevels"] >= 1
    # a zoomed query (what a browser asks when showing the whole chromosome)
    coarse_ours = bbi.fetch(str(out), chrom, 0, size, bins=100)
    coarse_src = bbi.fetch(str(ENCODE_BW), chrom, 0, size, bins=100)
    # zoom records of the two files have different widths: the same picture, not the same numbers
    assert np.corrcoef(coarse_ours, coarse_src)[0, 1] > 0.98
    np.testing.assert_allclose(coarse_ours.mean(), coarse_src.mean(), rtol=0.02)


def test_write_bigwig_is_atomic_on_bad_input(tmp_path):
    out = tmp_path / "x.bw"
    with pytest.raises(RegtracksError):
        write_bigwig(out, CHROM_SIZES, [("chrB", 0, np.ones(8)), ("chrA", 0, [1.0])], bin_size=BIN)
    assert not out.exists() and os.listdir(tmp_path) == []
    shutil.rmtree(tmp_path, ignore_errors=True)
