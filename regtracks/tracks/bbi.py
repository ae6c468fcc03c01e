"""regtracks' own bigWig writer: the UCSC bbi format written with numpy and libdeflate.

Why a writer of our own: writing 919 prediction tracks is the floor of ``regtracks predict``,
and no library lowers it at wide bins (``benchmarks/bench_bigwig_engines.py``: pyBigWig
takes the least CPU of pyBigWig, pybigtools and figwig at 128 bp). The tracks of one
``predict`` share their chromosomes, bins and (nearly always) finite runs, so everything but
the compression of each file's blocks is done once for all tracks, in numpy; the zoom levels
are summarised as the blocks arrive (libBigWig reads the whole file back at ``close()`` to
build them); and the blocks go through libdeflate (4x zlib's speed for the same size) when
the ``deflate`` package is there.

The files (Kent et al. 2010, *Bioinformatics* 26:2204; the layout of UCSC's ``bbiWrite.c``)::

    header (64 B) | zoom headers (24 B each) | total summary (40 B) | chromosome B+ tree
    | section count (8 B) + data sections | data R-tree
    | per zoom level: record count (4 B) + zoom blocks | its R-tree
    | magic (4 B)

* Data: fixedStep sections (``type 3``) with ``step = span = bin_size``, cut every
  :data:`ITEMS_PER_SECTION` bins from the chromosome start, each zlib-compressed; a
  chromosome's partial last bin is a section of its own with a shorter span; a run of
  non-finite bins ends a section (no NaN is ever written).
* The same bytes however the caller cuts its blocks (writer processes with any slot size,
  torchrun's ranks): a block is written up to its last :data:`GRID` point, the rest waits for
  the next block; each zoom record above the first level is summed from all its children at
  once; zoom blocks are runs of a file's own records; the header's sums are in record order.
  Blocks that start off the bin grid still give right files, not always the same bytes.
* Zoom levels: records (chromId, start, end, validCount, min, max, sum, sumSquares) on a grid
  of ``reduction`` bp from the chromosome start. The first reduction is 20 bins (UCSC's rule
  in ``bedGraphToBigWig``: ten items, doubled until the summary is under half the data), each
  next one 4x while it is shorter than the longest chromosome, at most 10 levels. A record
  counts the bases of the bins it holds (a bin across a record boundary is split by its
  bases); records without data are left out. The zoom blocks of every file of a set go to
  one anonymous temporary file beside the outputs while data streams in, and are copied
  level by level behind each file's data when it is finished.
* Indexes: R-trees of block size 256 (nodes not padded, as libBigWig writes them). The
  chromosome tree is one leaf with the chromosomes in the caller's order (ids in that order,
  as libBigWig writes it) up to 65,535 chromosomes, UCSC's sorted multi-level tree beyond.

Everything here is format only; :mod:`regtracks.tracks.bigwig` wraps it as the ``native``
engine of :class:`~regtracks.tracks.bigwig.BigWigWriter` (temporary names, checks,
processes). Memory: each file's index entries (40 bytes a block), the bins held back (at
most :data:`GRID` a track) and the set's zoom records not yet compressed (at most ~2,000
records of each level for every track, ~40 bytes each).
"""

from __future__ import annotations

import contextlib
import os
import struct
import tempfile
import zlib
from collections.abc import Sequence

import numpy as np

__all__ = [
    "BigWigSet",
    "zoom_reductions",
    "finite_runs",
    "GRID",
    "ITEMS_PER_SECTION",
    "MIN_REDUCTION",
]

BIGWIG_MAGIC = 0x888FFC26
"""First four bytes of a bigWig file (little-endian uint32)."""
_CHROM_TREE_MAGIC = 0x78CA8C91
_RTREE_MAGIC = 0x2468ACE0
ITEMS_PER_SECTION = 1024
"""Bins per data section (UCSC's ``itemsPerSlot``)."""
_RECORDS_PER_BLOCK = 1024
"""Zoom records per compressed zoom block."""
_RTREE_BLOCK = 256
_UNCOMPRESS_BUF = max(24 + 4 * ITEMS_PER_SECTION, 32 * _RECORDS_PER_BLOCK)
MIN_REDUCTION = 20
"""Smallest first zoom reduction, bp."""
MAX_ZOOMS = 10
ZLIB_LEVEL = 1
"""Compression level of every block. Prediction tracks hardly compress (float32 noise in the
low bits: 3.5 bytes a value at any zlib level), so the fastest level loses nothing."""


def _compressor():
    """The fastest zlib-format compressor installed: libdeflate (``deflate``, 4x zlib's speed
    on prediction tracks for the same size), ISA-L (``isal``), else the standard zlib."""
    try:
        import deflate

        return lambda data: deflate.zlib_compress(data, ZLIB_LEVEL), "libdeflate"
    except ImportError:
        pass
    try:
        from isal import isal_zlib

        return lambda data: isal_zlib.compress(data, ZLIB_LEVEL), "isal"
    except ImportError:
        return lambda data: zlib.compress(data, ZLIB_LEVEL), "zlib"


compress, COMPRESSOR = _compressor()
GRID = 5120
"""Bins (from the chromosome start) where a block is cut before it is written: a multiple
of :data:`ITEMS_PER_SECTION` and of the 20 bins of a first-level zoom record, so neither
crosses it and the bytes written do not depend on how the caller cut the blocks. Also the
bins summarised at a time for the zoom levels (bounds the temporaries per set)."""

_SECTION_HEAD = struct.Struct("<IIIIIBBH")
_RECORD = np.dtype(
    [
        ("chrom", "<u4"),
        ("start", "<u4"),
        ("end", "<u4"),
        ("valid", "<u4"),
        ("min", "<f4"),
        ("max", "<f4"),
        ("sum", "<f4"),
        ("sumsq", "<f4"),
    ]
)
_LEAF_ITEM = np.dtype(
    [("c0", "<u4"), ("s0", "<u4"), ("c1", "<u4"), ("e1", "<u4"), ("off", "<u8"), ("size", "<u8")]
)
_NODE_ITEM = np.dtype([("c0", "<u4"), ("s0", "<u4"), ("c1", "<u4"), ("e1", "<u4"), ("off", "<u8")])


def finite_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Runs of True of a boolean ``(n,)`` array as ``[(a, b), ...]`` half-open."""
    d = np.diff(mask.astype(np.int8), prepend=0, append=0)
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist(), strict=True))


def _grid_cuts(q: int, a: int, b: int, step: int) -> list[int]:
    """``[a, ..., b]``: bins ``a`` and ``b`` of a block whose bin 0 is bin ``q`` of its
    chromosome, and between them every bin whose index in the chromosome is a multiple of
    ``step`` (so the cuts do not depend on where the block starts)."""
    return [a, *range(a + step - (q + a) % step, b, step), b]


def zoom_reductions(bin_size: int, max_chrom: int) -> list[int]:
    """The zoom levels' reductions (bp) for bins of ``bin_size`` and the longest chromosome.

    UCSC's rule (``bedGraphToBigWig``): start at ten items, double until the summary takes
    less than half the data it summarises. A 32-byte record over k bins of 4 bytes: k = 20.
    Then 4x a level while a record is shorter than the longest chromosome, at most 10."""
    k = 10
    while 32 >= (k * 4) / 2:
        k *= 2
    r = max(k * int(bin_size), MIN_REDUCTION)
    out = [r]
    while len(out) < MAX_ZOOMS and out[-1] * 4 < max_chrom and out[-1] * 4 < 2**31:
        out.append(out[-1] * 4)
    return out


# ---------------------------------------------------------------------------------------------
# indexes
def _rtree(items: np.ndarray, at: int) -> bytes:
    """A CIR tree (UCSC's ``cirTreeFile``) over ``items`` (``_LEAF_ITEM``, sorted), written
    at file offset ``at``: header, then the levels from the root down, each node holding up
    to ``_RTREE_BLOCK`` children. Nodes are not padded to the block size (libBigWig does not
    pad them either; readers follow each node's count): a padded leaf is 8 KiB, more than the
    data of a short track."""
    b = _RTREE_BLOCK
    n = len(items)
    levels = [items]  # leaves first, then the bounds of each node above
    while len(levels[-1]) > b:
        lower = levels[-1]
        first = np.arange(0, len(lower), b)
        last = np.minimum(first + b, len(lower)) - 1
        up = np.zeros(len(first), _NODE_ITEM)
        for f in ("c0", "s0"):
            up[f] = lower[f][first]
        for f in ("c1", "e1"):
            up[f] = lower[f][last]
        levels.append(up)
    levels.reverse()  # root first
    # bytes of each level: a 4-byte header per node, then its items
    sizes = [4 * -(-max(len(lv), 1) // b) + len(lv) * lv.dtype.itemsize for lv in levels]
    starts = np.cumsum([at + 48, *sizes[:-1]])
    if n:
        head = (items["c0"][0], items["s0"][0], items["c1"][-1], items["e1"][-1])
    else:
        head = (0, 0, 0, 0)
    end_file = int(items["off"][-1] + items["size"][-1]) if n else at
    out = [struct.pack("<IIQIIIIQII", _RTREE_MAGIC, b, n, *map(int, head), end_file, 1, 0)]
    for k, lv in enumerate(levels):
        leaf = k == len(levels) - 1
        if not leaf:  # the children: the nodes of the next level, in order
            child = levels[k + 1]
            node_bytes = 4 + b * child.dtype.itemsize  # every node full but the last
            lv = lv.copy()
            lv["off"] = starts[k + 1] + np.arange(len(lv), dtype=np.uint64) * node_bytes
        for a in range(0, max(len(lv), 1), b):
            part = lv[a : a + b]
            out.append(struct.pack("<BBH", 1 if leaf else 0, 0, len(part)))
            out.append(part.tobytes())
    return b"".join(out)


def _chrom_tree(names: Sequence[str], sizes: Sequence[int], at: int) -> bytes:
    """The chromosome B+ tree, written at file offset ``at``; ids are the caller's order.
    One leaf (libBigWig's layout: keys in that order) up to 65,535 chromosomes; beyond,
    UCSC's bulk tree (``bPlusTree.c``) on sorted keys, block size 256, nodes padded."""
    keys = [c.encode() for c in names]
    key_size = max(len(k) for k in keys)
    n = len(keys)
    items = [
        k.ljust(key_size, b"\0") + struct.pack("<II", i, int(s))
        for i, (k, s) in enumerate(zip(keys, sizes, strict=True))
    ]
    if n <= 0xFFFF:
        head = struct.pack("<IIIIQQ", _CHROM_TREE_MAGIC, n, key_size, 8, n, 0)
        return head + struct.pack("<BBH", 1, 0, n) + b"".join(items)
    b = 256
    items.sort(key=lambda item: item[:key_size])
    out = [struct.pack("<IIIIQQ", _CHROM_TREE_MAGIC, b, key_size, 8, n, 0)]
    levels = 1
    while b**levels < n:
        levels += 1
    block_bytes = 4 + b * (key_size + 8)  # index and leaf slots are both key + 8 bytes
    offset = at + 32
    for lev in range(levels - 1, 0, -1):
        slot = b**lev  # items under one slot of a node of this level
        n_nodes = -(-n // (slot * b))
        next_child = offset + n_nodes * block_bytes
        for a in range(0, n, slot * b):
            firsts = range(a, min(n, a + slot * b), slot)
            out.append(struct.pack("<BBH", 0, 0, len(firsts)))
            for j in firsts:
                out.append(items[j][:key_size] + struct.pack("<Q", next_child))
                next_child += block_bytes
            out.append(bytes((b - len(firsts)) * (key_size + 8)))
        offset += n_nodes * block_bytes
    for a in range(0, n, b):
        part = items[a : a + b]
        out.append(struct.pack("<BBH", 1, 0, len(part)) + b"".join(part))
        out.append(bytes((b - len(part)) * (key_size + 8)))
    return b"".join(out)


# ---------------------------------------------------------------------------------------------
class _Level:
    """One zoom level of every track of a set. Level 1 keeps the record still open (its bins
    may continue in the next block, after a gap); a level above keeps the finished records
    of the level below whose parent may still get more (at most three), so each of its
    records is summed from all its children at once, in one order, however the blocks came."""

    def __init__(self, reduction: int):
        self.reduction = reduction
        self.carry = None  # level 1: (chrom, id, cnt, s, sq, mn, mx), the open record, (T,) each
        self.kids = None  # above: (chrom, ids, cnt, s, sq, mn, mx), children not yet summed
        self.done: list = []  # [(chrom, ids, cnt, s, sq, mn, mx)], (k,) and (T, k)
        self.n_done = 0


def _group(ids, cnt, s, sq, mn, mx):
    """Merge consecutive columns with equal ``ids``."""
    if len(ids) > 1 and (ids[1:] == ids[:-1]).any():
        at = np.flatnonzero(np.concatenate([[True], ids[1:] != ids[:-1]]))
        return (
            ids[at],
            np.add.reduceat(cnt, at, axis=1),
            np.add.reduceat(s, at, axis=1),
            np.add.reduceat(sq, at, axis=1),
            np.minimum.reduceat(mn, at, axis=1),
            np.maximum.reduceat(mx, at, axis=1),
        )
    return ids, cnt, s, sq, mn, mx


class _File:
    """One bigWig being written: its file, its zoom spill file and its index entries."""

    def __init__(self, path: str, prefix: bytes, n_levels: int, spill: _Spill):
        self.path = path
        self.fh = open(path, "wb")  # noqa: SIM115 - closed by finish() / abandon()
        self.fh.write(prefix)  # header, zoom headers, summary (all written at the end), tree
        self.pos = len(prefix)
        self.spill = spill
        self.data_index: list[np.ndarray] = []
        self.zoom_index: list[list[np.ndarray]] = [[] for _ in range(n_levels)]
        self.zoom_held: list[list[np.ndarray]] = [[] for _ in range(n_levels)]
        self.n_records = [0] * n_levels
        self.n_sections = 0

    def add_data(self, parts: list[bytes], bounds: np.ndarray) -> None:
        """Append compressed sections; ``bounds`` ``(k, 3)``: chrom id, start, end."""
        sizes = np.fromiter(map(len, parts), np.uint64, len(parts))
        items = np.empty(len(parts), _LEAF_ITEM)
        items["c0"] = items["c1"] = bounds[:, 0]
        items["s0"], items["e1"] = bounds[:, 1], bounds[:, 2]
        items["size"] = sizes
        items["off"] = self.pos + np.cumsum(sizes) - sizes
        self.fh.write(b"".join(parts))
        self.pos += int(sizes.sum())
        self.n_sections += len(parts)
        self.data_index.append(items)

    def add_zoom(self, level: int, recs: np.ndarray, last: bool = False) -> None:
        """Add zoom records ``recs`` (``_RECORD``) of one level; compress and spill them in
        blocks of ``_RECORDS_PER_BLOCK`` of this file's own records (the rest waits for the
        next records, or for ``last``), so the blocks do not depend on when records come."""
        held = self.zoom_held[level]
        if len(recs):
            held.append(recs)
        n = sum(map(len, held))
        if not n or (n < _RECORDS_PER_BLOCK and not last):
            return
        recs = np.concatenate(held) if len(held) > 1 else held[0]
        keep = 0 if last else n % _RECORDS_PER_BLOCK
        self.zoom_held[level] = [recs[n - keep :].copy()] if keep else []
        recs = recs[: n - keep]
        parts, items = [], np.empty(-(-len(recs) // _RECORDS_PER_BLOCK), _LEAF_ITEM)
        for k, a in enumerate(range(0, len(recs), _RECORDS_PER_BLOCK)):
            r = recs[a : a + _RECORDS_PER_BLOCK]
            parts.append(compress(r.tobytes()))
            items[k] = (r["chrom"][0], r["start"][0], r["chrom"][-1], r["end"][-1], 0, 0)
        sizes = np.fromiter(map(len, parts), np.uint64, len(parts))
        items["size"] = sizes
        at = self.spill.append(b"".join(parts))
        items["off"] = at + np.cumsum(sizes) - sizes  # in the spill file, for now
        self.zoom_index[level].append(items)
        self.n_records[level] += len(recs)

    def finish(self, chrom_tree_at: int, data_at: int, reductions: Sequence[int], summary) -> None:
        """Write the indexes, the zoom levels and the end magic, then the header; close."""
        fh = self.fh
        data_index = np.concatenate(self.data_index) if self.data_index else np.empty(0, _LEAF_ITEM)
        index_at = self.pos
        fh.write(_rtree(data_index, index_at))
        zooms = []
        if self.n_sections:
            src = self.spill.reader()
            for level, red in enumerate(reductions):
                items = np.concatenate(self.zoom_index[level])
                zoom_at = fh.tell()
                fh.write(struct.pack("<I", self.n_records[level]))
                base = zoom_at + 4
                # copy the level's blocks from the spill file, in runs of adjacent blocks
                off, size = items["off"].astype(np.int64), items["size"].astype(np.int64)
                brk = np.flatnonzero(off[1:] != off[:-1] + size[:-1]) + 1
                firsts, ends = [0, *brk.tolist()], [*brk.tolist(), len(items)]
                for a, b in zip(firsts, ends, strict=True):
                    lo, n = int(off[a]), int(off[b - 1] + size[b - 1] - off[a])
                    while n:
                        chunk = os.pread(src, min(n, 1 << 24), lo)
                        if not chunk:
                            raise OSError("the zoom spill file is shorter than written")
                        fh.write(chunk)
                        lo, n = lo + len(chunk), n - len(chunk)
                items["off"] = base + np.cumsum(items["size"]) - items["size"]
                zoom_index_at = fh.tell()
                fh.write(_rtree(items, zoom_index_at))
                zooms.append((red, zoom_at, zoom_index_at))
        fh.write(struct.pack("<I", BIGWIG_MAGIC))
        bases, lo, hi, total, sq = summary
        if not bases:
            lo = hi = total = sq = 0.0
        summary_at = 64 + 24 * len(reductions)
        fh.seek(0)
        fh.write(
            struct.pack(
                "<IHHQQQHHQQIQ",
                BIGWIG_MAGIC,
                4,  # version
                len(zooms),
                chrom_tree_at,
                data_at,
                index_at,
                0,  # fieldCount
                0,  # definedFieldCount
                0,  # autoSqlOffset
                summary_at,
                _UNCOMPRESS_BUF,
                0,  # extensionOffset
            )
        )
        for red, zoom_at, zoom_index_at in zooms:
            fh.write(struct.pack("<IIQQ", red, 0, zoom_at, zoom_index_at))
        fh.seek(summary_at)
        fh.write(struct.pack("<Qdddd", int(bases), float(lo), float(hi), float(total), float(sq)))
        fh.seek(data_at)
        fh.write(struct.pack("<Q", self.n_sections))
        fh.flush()
        self.close_files()

    def close_files(self) -> None:
        with contextlib.suppress(OSError):
            self.fh.close()


class _Spill:
    """One anonymous temporary file (removed when closed, or when the process dies) that
    holds the compressed zoom blocks of every file of a set until each file is finished."""

    def __init__(self, folder: str):
        self.fh = tempfile.TemporaryFile(dir=folder or ".")  # noqa: SIM115 - see close()
        self.pos = 0

    def append(self, data: bytes) -> int:
        self.fh.write(data)
        self.pos += len(data)
        return self.pos - len(data)

    def reader(self) -> int:
        self.fh.flush()
        return self.fh.fileno()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.fh.close()


class _Held:
    """Bins of a set held back until a grid point (copies: the caller reuses its buffers),
    kept as the pieces that came (joined once, when written)."""

    def __init__(self, ci: int, start: int):
        self.ci, self.start, self.n = ci, start, 0
        self.values: list[np.ndarray] = []
        self.finite: list[np.ndarray] = []

    def add(self, values: np.ndarray, finite: np.ndarray) -> None:
        self.values.append(values.copy())
        self.finite.append(finite.copy())
        self.n += values.shape[1]

    def joined(self, values=None, finite=None) -> tuple[np.ndarray, np.ndarray]:
        """The held bins, then ``values`` / ``finite`` (not held) if given, as one block."""
        v = self.values + ([values] if values is not None else [])
        f = self.finite + ([finite] if finite is not None else [])
        if len(v) == 1:
            return v[0], f[0]
        return np.concatenate(v, axis=1), np.concatenate(f, axis=1)


class BigWigSet:
    """bigWig files of ``T`` tracks that share their chromosomes and bins, written together.

    ``write(chrom_idx, start, block, finite, n_full)`` adds a ``(T, n)`` float32 block (row i
    to file i) of bins of ``bin_size`` from ``start``; bins ``[0, n_full)`` are whole, bin
    ``n_full`` (if any) is the chromosome's last and partial; ``finite`` marks the bins with
    data. Blocks come in genome order (the caller checks it). :meth:`finish` finishes file
    ``i``; :meth:`flush` must come first (it closes the zoom records still open).
    """

    def __init__(self, paths: Sequence[str], chrom_sizes: Sequence[tuple[str, int]], bin_size: int):
        self.bin_size = int(bin_size)
        self.names = [str(c) for c, _ in chrom_sizes]
        self.sizes = [int(s) for _, s in chrom_sizes]
        self.reductions = zoom_reductions(self.bin_size, max(self.sizes))
        self.levels = [_Level(r) for r in self.reductions]
        self.chrom_tree_at = 64 + 24 * len(self.reductions) + 40
        tree = _chrom_tree(self.names, self.sizes, self.chrom_tree_at)
        self.data_at = self.chrom_tree_at + len(tree)
        prefix = bytes(self.chrom_tree_at) + tree + bytes(8)  # 8: the section count
        self.files: list[_File] = []
        self.spill = None
        try:
            self.spill = _Spill(os.path.dirname(str(paths[0])) if len(paths) else ".")
            for p in paths:
                self.files.append(_File(str(p), prefix, len(self.reductions), self.spill))
        except BaseException:
            self.abandon()
            raise
        self.T = T = len(self.files)
        # total summary of each file: bases covered, min, max, sum, sum of squares
        self.bases = np.zeros(T, np.int64)
        self.lo, self.hi = np.full(T, np.inf), np.full(T, -np.inf)
        self.total, self.sq = np.zeros(T), np.zeros(T)
        self._held: _Held | None = None  # bins not yet written
        self._flushed = False
        self._finished_files = 0

    # -- data --------------------------------------------------------------------------
    def write(self, ci: int, start: int, block: np.ndarray, finite: np.ndarray, n_full: int):
        """Add a block. Bins are written up to the last multiple of :data:`GRID` bins from
        the chromosome start that the block reaches (all of them when the chromosome ends in
        it); the rest (a copy) waits for the next block. A section or a zoom record never
        crosses such a point, so the files do not depend on where the blocks were cut."""
        bs, n = self.bin_size, block.shape[1]
        h = self._held
        if h is not None and (h.ci != ci or h.start + h.n * bs != start):
            self._release()  # a gap, or another chromosome: the held bins end a run
            h = None
        m = 0 if h is None else h.n
        s0 = start if h is None else h.start
        if n_full < n or start + n * bs >= self.sizes[ci]:  # the chromosome ends here
            if h is not None:
                block, finite = h.joined(block, finite)
            self._held = None
            self._process(ci, s0, block, finite, m + n_full)
            return
        head = GRID - (s0 // bs) % GRID  # bins from s0 to the next grid point
        if m + n < head:  # no grid point reached: hold the block
            if h is None:
                h = self._held = _Held(ci, start)
            h.add(block, finite)
            return
        j = head - m  # the block's bins up to that grid point
        if h is None:
            self._process(ci, start, block[:, :j], finite[:, :j], j)
        else:
            self._held = None
            self._process(ci, s0, *h.joined(block[:, :j], finite[:, :j]), head)
        k = j + (n - j) // GRID * GRID  # then whole grid cells
        if k > j:
            self._process(ci, start + j * bs, block[:, j:k], finite[:, j:k], k - j)
        if k < n:
            self._held = _Held(ci, start + k * bs)
            self._held.add(block[:, k:], finite[:, k:])

    def _release(self) -> None:
        """Write the bins held (their run ends: a gap, another chromosome, the end)."""
        h, self._held = self._held, None
        if h is not None:
            self._process(h.ci, h.start, *h.joined(), h.n)

    def _process(self, ci: int, start: int, block: np.ndarray, finite: np.ndarray, n_full: int):
        """Write bins ``[0, n)`` of a block: sections, the partial last bin, zoom records."""
        bs, size = self.bin_size, self.sizes[ci]
        n = block.shape[1]
        if n_full and finite[:, :n_full].all():
            self._sections(ci, start, block, 0, n_full, range(self.T))
        elif n_full:
            for i in range(self.T):
                for a, b in finite_runs(finite[i, :n_full]):
                    self._sections(ci, start, block[i : i + 1], a, b, [i])
        if n_full < n:  # the chromosome's partial last bin: a section of its own
            last = start + n_full * bs
            span = size - last
            head = _SECTION_HEAD.pack(ci, last, size, span, span, 3, 0, 1)
            bounds = np.array([[ci, last, size]], np.uint64)
            for i in np.flatnonzero(finite[:, n_full]):
                raw = head + block[i, n_full : n_full + 1].astype("<f4").tobytes()
                self.files[i].add_data([compress(raw)], bounds)
        self._summarise(ci, start, block, finite, n_full)

    def _sections(self, ci: int, start: int, rows: np.ndarray, a: int, b: int, which) -> None:
        """fixedStep sections of bins ``[a, b)`` of ``rows`` (one row per file of ``which``),
        cut at every :data:`ITEMS_PER_SECTION` bins from the chromosome start."""
        bs, k = self.bin_size, ITEMS_PER_SECTION
        cuts = _grid_cuts(start // bs, a, b, k)
        bounds = np.empty((len(cuts) - 1, 3), np.uint64)
        parts: list[list[bytes]] = [[] for _ in which]
        buf = np.empty((rows.shape[0], 24 + 4 * k), np.uint8)
        for j, (s, e) in enumerate(zip(cuts[:-1], cuts[1:], strict=True)):
            m = e - s
            s0 = start + s * bs
            bounds[j] = (ci, s0, s0 + m * bs)
            buf[:, :24] = np.frombuffer(
                _SECTION_HEAD.pack(ci, s0, s0 + m * bs, bs, bs, 3, 0, m), np.uint8
            )
            buf[:, 24 : 24 + 4 * m].view("<f4")[:] = rows[:, s : s + m]
            view = buf[:, : 24 + 4 * m]
            for r, out in enumerate(parts):
                out.append(compress(view[r]))
        for i, out in zip(which, parts, strict=True):
            self.files[i].add_data(out, bounds)

    # -- zoom levels and summary ----------------------------------------------------------
    def _summarise(self, ci, start, block, finite, n_full) -> None:
        """The level-1 zoom records of a block (and each file's total summary), in pieces
        cut on the :data:`GRID` (a record never spans two pieces)."""
        bs, r1 = self.bin_size, self.reductions[0]
        n = block.shape[1]
        cuts = _grid_cuts(start // bs, 0, n_full, GRID)
        pieces = [(a, b, bs) for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a]
        if n_full < n:
            pieces.append((n_full, n, self.sizes[ci] - (start + n_full * bs)))
        for a, b, w in pieces:
            v, f = block[:, a:b], finite[:, a:b]
            s0 = start + a * bs + np.arange(b - a, dtype=np.int64) * bs  # bin starts
            ids = s0 // r1
            split = ((s0 + w - 1) // r1) != ids  # bins across a record boundary
            allf = bool(f.all())
            vz = v if allf else np.where(f, v, np.float32(0))
            mn = v if allf else np.where(f, v, np.float32(np.inf))
            mx = v if allf else np.where(f, v, np.float32(-np.inf))
            if not split.any():  # every bin in one record: sum per record, then weigh
                at = np.flatnonzero(np.concatenate([[True], ids[1:] != ids[:-1]]))
                if allf:
                    per = np.diff(np.append(at, len(ids))) * float(w)
                    cnt = np.broadcast_to(per, (self.T, len(at)))
                else:
                    cnt = np.add.reduceat(f, at, axis=1, dtype=np.float64) * w
                g = (
                    ids[at],
                    np.array(cnt, np.float64),
                    # float32 sums of ~10 bins (zoom records hold float32), weighed in float64
                    np.add.reduceat(vz, at, axis=1).astype(np.float64) * w,
                    np.add.reduceat(np.square(vz), at, axis=1).astype(np.float64) * w,
                    np.minimum.reduceat(mn, at, axis=1),
                    np.maximum.reduceat(mx, at, axis=1),
                )
            else:  # the bases of a split bin go to the two records it covers
                rep = np.repeat(np.arange(b - a), 1 + split)
                second = np.zeros(len(rep), bool)
                second[np.flatnonzero(split) + np.arange(1, int(split.sum()) + 1)] = True
                ids = np.where(second, ids[rep] + 1, ids[rep])
                cut = ids[second] * r1  # the record boundary each split bin crosses
                wt = np.full(len(rep), float(w))
                wt[second] = s0[rep][second] + w - cut
                wt[np.flatnonzero(second) - 1] = cut - s0[rep][second]
                fz, vz, mn, mx = f[:, rep], vz[:, rep], mn[:, rep], mx[:, rep]
                g = _group(ids, fz * wt, vz * wt, np.square(vz, dtype=np.float64) * wt, mn, mx)
            self.bases += np.rint(g[1].sum(axis=1)).astype(np.int64)
            # sums in record order, one record after the other (np.cumsum): the same
            # roundings however the records were cut into pieces
            self.total = np.cumsum(np.column_stack([self.total, g[2]]), axis=1)[:, -1]
            self.sq = np.cumsum(np.column_stack([self.sq, g[3]]), axis=1)[:, -1]
            np.minimum(self.lo, g[4].min(axis=1), out=self.lo)
            np.maximum(self.hi, g[5].max(axis=1), out=self.hi)
            self._push(ci, *g)

    def _push(self, ci: int, ids, cnt, s, sq, mn, mx) -> None:
        """Level-1 records ``ids`` (sorted): merge with the open one, keep the last open,
        pass the finished ones on (to the level above and to the files)."""
        lv = self.levels[0]
        c = lv.carry
        if c is not None and c[0] == ci and c[1] == ids[0]:
            cnt, s, sq = cnt.copy(), s.copy(), sq.copy()
            mn, mx = mn.copy(), mx.copy()
            cnt[:, 0] += c[2]
            s[:, 0] += c[3]
            sq[:, 0] += c[4]
            np.minimum(mn[:, 0], c[5], out=mn[:, 0])
            np.maximum(mx[:, 0], c[6], out=mx[:, 0])
        elif c is not None:
            self._finished(0, c[0], np.array([c[1]]), *(x[:, None] for x in c[2:]))
        lv.carry = (ci, ids[-1], cnt[:, -1], s[:, -1], sq[:, -1], mn[:, -1], mx[:, -1])
        if len(ids) > 1:
            self._finished(
                0, ci, ids[:-1], cnt[:, :-1], s[:, :-1], sq[:, :-1], mn[:, :-1], mx[:, :-1]
            )

    def _finished(self, k, ci, ids, cnt, s, sq, mn, mx) -> None:
        lv = self.levels[k]
        lv.done.append((ci, ids, cnt, s, sq, mn, mx))
        lv.n_done += len(ids)
        if k + 1 < len(self.levels):
            self._up(k + 1, ci, ids, cnt, s, sq, mn, mx)
        if lv.n_done >= _RECORDS_PER_BLOCK:
            self._spill(k)

    def _up(self, k: int, ci: int, *kids) -> None:
        """Finished records of level ``k - 1`` into level ``k``: every parent whose children
        are all there is summed from them at once; the last parent's wait for more."""
        lv = self.levels[k]
        held, lv.kids = lv.kids, None
        if held is not None and held[0] != ci:
            self._finished(k, held[0], *_group(held[1] // 4, *held[2:]))
        elif held is not None:
            kids = [np.concatenate([x, y], axis=-1) for x, y in zip(held[1:], kids, strict=True)]
        parent = kids[0] // 4
        j = int(np.searchsorted(parent, parent[-1]))  # the first child of the last parent
        if j:
            self._finished(k, ci, *_group(parent[:j], *(x[..., :j] for x in kids[1:])))
        lv.kids = (ci, *(x[..., j:] for x in kids))

    def _spill(self, k: int) -> None:
        """Pass the finished records of level ``k`` to every file (which compresses them)."""
        lv = self.levels[k]
        if not lv.done:
            return
        red = lv.reduction
        chrom = np.concatenate([np.full(len(d[1]), d[0], np.uint32) for d in lv.done])
        ids = np.concatenate([d[1] for d in lv.done]).astype(np.int64)
        cnt, s, sq, mn, mx = (np.concatenate([d[j] for d in lv.done], axis=1) for j in range(2, 7))
        lv.done, lv.n_done = [], 0
        sizes = np.asarray(self.sizes, np.int64)[chrom]
        recs = np.empty(cnt.shape, _RECORD)
        recs["chrom"] = chrom
        recs["start"] = ids * red
        recs["end"] = np.minimum(ids * red + red, sizes)
        recs["valid"] = np.rint(cnt)
        recs["min"], recs["max"], recs["sum"], recs["sumsq"] = mn, mx, s, sq
        has = cnt > 0
        every = has.all()
        for i, fl in enumerate(self.files):
            fl.add_zoom(k, recs[i] if every else recs[i][has[i]])

    def flush(self) -> None:
        """Write the bins still held, close the open zoom records of every level, and
        compress what is left."""
        if self._flushed:
            return
        self._release()
        for k, lv in enumerate(self.levels):
            c, lv.carry = lv.carry, None
            if c is not None:
                self._finished(k, c[0], np.array([c[1]]), *(x[:, None] for x in c[2:]))
            kids, lv.kids = lv.kids, None
            if kids is not None:
                self._finished(k, kids[0], *_group(kids[1] // 4, *kids[2:]))
            self._spill(k)
            for fl in self.files:
                fl.add_zoom(k, recs=np.empty(0, _RECORD), last=True)
        self._flushed = True

    def finish(self, i: int) -> None:
        """Finish file ``i`` (after :meth:`flush`)."""
        summary = (self.bases[i], self.lo[i], self.hi[i], self.total[i], self.sq[i])
        self.files[i].finish(self.chrom_tree_at, self.data_at, self.reductions, summary)
        self._finished_files += 1
        if self._finished_files == self.T:
            self.spill.close()

    def abandon(self) -> None:
        for f in self.files:
            f.close_files()
        if self.spill is not None:
            self.spill.close()
