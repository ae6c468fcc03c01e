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


# --- engines -----------------------------------------------------------------------------------
# every engine's files must read back the same in pyBigWig and pybigtools, with zoom levels, the
# NaN gaps absent, and pass `regtracks hub check`; figwig is optional (skipped when missing)
def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


ENGINES = [
    "native",
    "pybigwig",
    pytest.param(
        "figwig", marks=pytest.mark.skipif(not _has("figwig"), reason="figwig not installed")
    ),
]


def _per_base(values: np.ndarray, size: int, bin_size: int) -> np.ndarray:
    """What a reader must return per base: each bin's value over its bases, NaN where no data."""
    out = np.repeat(values.astype(np.float64), bin_size)[:size]
    out[~np.isfinite(out)] = np.nan
    return out


def _assert_reads_back(path: Path, blocks, i: int, bin_size: int, sizes=CHROM_SIZES) -> None:
    """Track ``i`` of ``blocks`` in ``path``, through pyBigWig and pybigtools: the header, zoom
    levels, every base's float32 value, and nothing at all where the values were not finite."""
    import pybigtools

    sizes = dict(sizes)
    assert zoom_levels(path) >= 1
    bw, rd = pyBigWig.open(str(path)), pybigtools.open(str(path))
    try:
        assert list(bw.chroms().items()) == list(sizes.items())  # every chromosome, in order
        assert rd.info()["zoomLevels"] == zoom_levels(path)
        covered = 0
        for chrom, values in blocks.items():
            want = _per_base(values[i], sizes[chrom], bin_size)
            covered += int(np.isfinite(want).sum())
            np.testing.assert_array_equal(bw.values(chrom, 0, sizes[chrom], numpy=True), want)
            np.testing.assert_array_equal(rd.values(chrom, 0, sizes[chrom], fillna=None), want)
            ivs = bw.intervals(chrom)
            assert all(np.isfinite(v) for _, _, v in ivs)  # no NaN written
            assert all(e <= sizes[chrom] for _, e, _ in ivs)
            gap = np.flatnonzero(~np.isfinite(values[i]))
            for j in gap:  # each non-finite bin: no interval in any reader
                a, b = int(j) * bin_size, min(sizes[chrom], (int(j) + 1) * bin_size)
                assert bw.intervals(chrom, a, b) is None
                assert list(rd.records(chrom, a, b)) == []
        assert bw.intervals("chrM") is None  # in the header, no data
        header = bw.header()
        assert header["nBasesCovered"] == covered == rd.info()["summary"]["basesCovered"]
        assert np.isfinite([header["sumData"], header["sumSquared"]]).all()
    finally:
        bw.close()
        rd.close()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("bin_size", [BIN, 1])
def test_engine_files_read_back_equal_in_pybigwig_and_pybigtools(tmp_path, engine, bin_size):
    rng = np.random.default_rng(7)
    blocks = {}
    for chrom in ("chrA", "chrB"):
        n = -(-dict(CHROM_SIZES)[chrom] // bin_size)
        blocks[chrom] = rng.normal(size=(3, n)).astype(np.float32)
    a = blocks["chrA"]
    a[:, 10:20] = np.nan  # a gap in every track
    a[0, -1] = np.nan  # the partial last bin (at BIN)
    a[1, 33] = np.inf  # no data either
    a[2, 40:45] = 0.0  # zeros are data (figwig leaves out its `missing` value)
    paths = [tmp_path / f"t{i}.bw" for i in range(3)]
    with BigWigWriter(paths, CHROM_SIZES, bin_size=bin_size, n_procs=0, engine=engine) as w:
        w.add("chrA", 0, a[:, :37])
        w.add("chrA", 37 * bin_size, a[:, 37:])
        w.add("chrB", 0, blocks["chrB"])
    for i, p in enumerate(paths):
        _assert_reads_back(p, blocks, i, bin_size)
        assert is_complete(p, CHROM_SIZES)


@pytest.mark.parametrize("engine", ENGINES)
def test_engine_in_processes_with_reused_slots_writes_what_it_was_given(tmp_path, engine):
    """Slots of 7 bins reused again and again: an engine that kept a view of a slot (figwig
    keeps the arrays it is given until it compresses them) would write later blocks' values."""
    blocks = _blocks(5, seed=3)
    paths = _write(
        tmp_path, blocks, n_procs=2, buffer_mb=4 * 5 * 7 * 2 / 2**20, n_slots=2, engine=engine
    )
    for i, p in enumerate(paths):
        _assert_reads_back(p, blocks, i, BIN)


@pytest.mark.parametrize("engine", ENGINES)
def test_engine_output_is_checked_after_it_is_written(tmp_path, monkeypatch, engine):
    """A library that reports a failed write by printing (pyBigWig, pybigtools) leaves a broken
    file and no exception: the writer re-opens every file and refuses it, keeping nothing."""
    import regtracks.tracks.bigwig as bwmod

    cls = bwmod._ENGINE_TRACKS[engine]
    real_open_all = cls._open_all

    class LosesTheEnd:  # a file handle whose close() "succeeds" but leaves half the file
        def __init__(self, handle, path):
            self.handle, self.path = handle, path

        def __getattr__(self, name):  # everything else: the library's own handle
            return getattr(self.handle, name)

        def close(self):
            self.handle.close()
            with open(self.path, "r+b") as fh:
                fh.truncate(os.path.getsize(self.path) // 2)

    def open_all(self):
        real_open_all(self)
        self.handles = [LosesTheEnd(h, p) for h, p in zip(self.handles, self.paths, strict=True)]

    monkeypatch.setattr(cls, "_open_all", open_all)
    paths = [tmp_path / "out" / f"t{i}.bw" for i in range(2)]
    with pytest.raises(RegtracksError, match=r"t0\.bw: the bigWig written is incomplete"):
        with BigWigWriter(paths, CHROM_SIZES, bin_size=BIN, n_procs=0, engine=engine) as w:
            w.add("chrA", 0, _blocks(2)["chrA"])
    assert os.listdir(tmp_path / "out") == []


@pytest.mark.parametrize("engine", ENGINES)
def test_engine_full_disk_is_refused_before_the_library_writes(tmp_path, monkeypatch, engine):
    import regtracks.tracks.bigwig as bwmod

    real = shutil.disk_usage
    paths = [tmp_path / f"t{i}.bw" for i in range(2)]
    w = BigWigWriter(paths, CHROM_SIZES, bin_size=BIN, n_procs=0, engine=engine)
    monkeypatch.setattr(bwmod.shutil, "disk_usage", lambda p: real(p)._replace(free=0))
    with pytest.raises(RegtracksError) as e:
        w.add("chrA", 0, _blocks(2)["chrA"])
    msg = str(e.value)
    assert "no space left on device" in msg and "t0.bw" in msg and "\n" not in msg
    assert os.listdir(tmp_path) == []  # the writer aborted: no temporary left


def test_unknown_or_missing_engine_is_one_line(tmp_path, monkeypatch):
    import importlib.util

    from regtracks.tracks.bigwig import ENGINES as NAMES
    from regtracks.tracks.bigwig import check_engine

    assert NAMES == ("native", "pybigwig", "figwig") and check_engine(None) == "native"
    assert check_engine(" PyBigWig ") == "pybigwig"
    with pytest.raises(RegtracksError, match=r"^bigWig engine \(--bigwig-engine\) must be one of "
                       r"native, pybigwig, figwig, got 'pybigtools'$"):  # fmt: skip
        BigWigWriter([tmp_path / "t.bw"], CHROM_SIZES, bin_size=BIN, engine="pybigtools")
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "figwig" else real(name, *a)
    )
    with pytest.raises(RegtracksError, match=r"figwig needs the figwig package \(pip install"):
        BigWigWriter([tmp_path / "t.bw"], CHROM_SIZES, bin_size=BIN, engine="figwig")
    assert os.listdir(tmp_path) == []


# --- an engine end to end: predict, hub check, readers -------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
def test_predict_with_engine_passes_hub_check_and_reads_back(trained_run, tmp_path, engine):
    from typer.testing import CliRunner

    from regtracks.cli import app

    runner = CliRunner()
    hubs = {}
    for name in dict.fromkeys(["pybigwig", engine]):  # the engine, and pyBigWig to compare
        hub = tmp_path / name
        r = runner.invoke(app, [
            "predict", str(trained_run), "--out", str(hub), "--writers", "0", "--chrom", "chr2",
            "--bin-size", "128", "--category", "DNase", "--bigwig-engine", name,
        ])  # fmt: skip
        assert r.exit_code == 0, r.output
        r = runner.invoke(app, ["hub", "check", str(hub)])
        assert r.exit_code == 0, r.output
        hubs[name] = hub / "tracks" / "pred_DNase.bw"
    import pybigtools

    ref = pyBigWig.open(str(hubs["pybigwig"]))
    sizes = ref.chroms()
    want = ref.values("chr2", 0, sizes["chr2"], numpy=True)
    ref.close()
    assert np.isnan(want[:100]).all() and np.isfinite(want).sum() > 50_000  # the N run at 0
    with pyBigWig.open(str(hubs[engine])) as bw:
        assert bw.chroms() == sizes and zoom_levels(hubs[engine]) >= 1
        np.testing.assert_array_equal(bw.values("chr2", 0, sizes["chr2"], numpy=True), want)
        assert bw.intervals("chr1") is None
    rd = pybigtools.open(str(hubs[engine]))
    np.testing.assert_array_equal(rd.values("chr2", 0, sizes["chr2"], fillna=None), want)
    rd.close()


def test_predict_bad_engine_fails_before_scanning(trained_run, tmp_path):
    from typer.testing import CliRunner

    from regtracks.cli import app

    r = CliRunner().invoke(app, [
        "predict", str(trained_run), "--out", str(tmp_path / "hub"), "--chrom", "chr2",
        "--bigwig-engine", "nope",
    ])  # fmt: skip
    assert r.exit_code == 1, r.output
    assert r.stderr.strip().splitlines()[-1] == (
        "error: bigWig engine (--bigwig-engine) must be one of native, pybigwig, figwig, got 'nope'"
    )
    assert not (tmp_path / "hub").exists()
