"""Many bigWig tracks written in parallel (our own writer, pyBigWig, figwig), atomically, in
bounded memory.

Contract
--------
One bigWig file per track (marker). The caller hands the writer binned values for **all**
tracks at once::

    with BigWigWriter(paths, genome.chrom_sizes, bin_size=128) as writer:
        for chrom, start, values in blocks:          # values: (T, n_bins) float32
            writer.add(chrom, start, values)

Bin ``j`` of a block covers ``[start + j*bin_size, start + (j+1)*bin_size)`` (0-based,
half-open), clipped to the chromosome end: the last bin of a chromosome may be partial and is
written with a shorter span, so no entry passes the chromosome end. Non-finite values (NaN,
and +-inf) mark bins with no data (runs of N): they are left out of the file, never written as
NaN, which would break the statistics of the header and the zoom levels. Blocks come in genome
order: chromosomes in the order of ``chrom_sizes`` (the header order), increasing ``start``,
no overlaps; gaps between blocks simply carry no data.

Files
-----
Every file's header lists every chromosome of ``chrom_sizes`` in that order; zoom levels are
left at the engine's default (``maxZooms=0`` makes files IGV cannot read). With regtracks' own
writer (``engine="native"``, the default; :mod:`regtracks.tracks.bbi`) and with pyBigWig
(``engine="pybigwig"``, the fallback) finite runs are written as fixedStep sections with
``span = step = bin_size``; with figwig (``engine="figwig"``, an optional package: numba and
libdeflate) as per-base fixedStep sections at 1 bp and as one bedGraph interval per bin at
wider bins. All read back the same values in pyBigWig, pybigtools, UCSC's library and igv.js.
``benchmarks/bench_bigwig_engines.py`` measures the engines on the same arrays: for 919 tracks
x 5 Mbp at 128 bp the native writer takes 4x less CPU than pyBigWig for files of the same
size (its zoom levels are summarised as the blocks arrive, for all tracks at once, and its
blocks go through libdeflate). The native writer cuts sections and zoom records on a grid
from the chromosome start, holding back the bins of a block past its last grid point, so its
bytes do not depend on how the blocks were cut (by the writer's slots, by torchrun's ranks);
with pyBigWig they do not either. Whatever the
engine, each file is checked after it is finished (:func:`check_bigwig`: libraries print some
write errors instead of raising them) and a block is refused before it is written when the
disk may not hold it (libBigWig does not survive a full disk). Each file is written
under a hidden temporary name beside its final path (``.<name>.XXXX.tmp.bw``) and renamed
when :meth:`BigWigWriter.close` has finished **all** files; an exception, :meth:`abort` or a
killed run leaves no file under a final name (temporaries of a killed run are removed by the
next writer of the same paths).

With the pybigwig engine, ``close()`` is quadratic in the number of chromosomes of the header
(measured per file: +0.06 s for 5,000 sequences, +0.9 s for 20,000, +3.5 s for 40,000): for
assemblies of tens of thousands of scaffolds pass only the chromosomes that get data as
``chrom_sizes`` (browsers do not need the others), or use the native engine (a sorted
multi-level chromosome tree, as UCSC writes one).

Resume granularity is the whole track file: a bigWig cannot be appended to once it is
closed, so a run that stops before ``close()`` redoes every unfinished track from the start,
and a resumed run skips the tracks whose final file :func:`is_complete` accepts (pass only the
remaining paths, and ``rows`` to pick their values out of the full array).

Processes and memory
--------------------
With ``n_procs > 0`` the tracks are split into ``n_procs`` contiguous groups, one writer
process each (``spawn`` by default: safe when the parent holds torch/CUDA state). Each process
owns the open files of its group. ``add`` copies the block into a slot of one
shared-memory buffer (``n_slots`` slots of ``buffer_mb / n_slots`` MiB; large blocks are cut to
fit) and returns at once, so the caller goes on scanning while the processes write; when every
slot is still in use, ``add`` waits (back-pressure). The parent therefore holds
``buffer_mb`` MiB whatever the chromosome length. Each native writer holds its group's bins
past the last grid point (at most 5,120 bins a track, 20 KiB) and 40 bytes a block of index;
its zoom blocks wait in one anonymous temporary file beside the outputs. A pyBigWig writer
holds about 100 KiB per open file while writing and, while closing a file, the zoom data of
that one file (about ``chrom_len / bin_size * 3`` bytes at most); figwig up to ~640 KiB a
file, the items it gathers before compressing them.

An engine's write floor (the same arrays written by the same number of processes straight from
memory, without the scanner and without the transfer) is a benchmark tool:
``benchmarks/pybigwig_floor.py`` (``write_floor(engine=)``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import queue
import shutil
import struct
import tempfile
import time
import traceback
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from regtracks._util import LOW_SPACE_BYTES, RegtracksError, fsync_dir, fsync_file, write_cause
from regtracks.config import DEFAULT_BIGWIG
from regtracks.tracks.bbi import _CHROM_TREE_MAGIC, _RTREE_MAGIC, BIGWIG_MAGIC, BigWigSet
from regtracks.tracks.bbi import finite_runs as _finite_runs

__all__ = [
    "BigWigWriter",
    "write_bigwig",
    "is_complete",
    "read_bins",
    "zoom_levels",
    "check_bigwig",
    "BIGWIG_MAGIC",
    "ENGINES",
    "check_engine",
]

_TMP_SUFFIX = ".tmp.bw"
_DATA_BYTES_PER_BIN = 4
"""Disk bytes a bin may take in the data section (random float32 values compress to ~3.6 B;
predictions, smoother, to less): a block needs this much room before libBigWig writes it."""
_CLOSE_BYTES_PER_BYTE = 0.6
"""Room needed to finish a file (zoom levels and indexes: ~0.45x its data, measured) per byte
written so far."""
_POLL_S = 0.5  # how often a waiting process checks that its peers are still alive


# ---------------------------------------------------------------------------------------------
# the engines (run in writer processes, or in the caller with n_procs=0)
def _raise_open_file_limit(needed: int) -> None:
    """Raise the soft limit on open files to ``needed`` when the hard limit allows it."""
    try:
        import resource
    except ImportError:  # not on Unix
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        new = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


ENGINES = ("native", "pybigwig", "figwig")
"""The libraries :class:`BigWigWriter` can write with (``engine=``; ``--bigwig-engine``)."""

_FIGWIG_BATCH_ITEMS = 1 << 15
"""Items a figwig file gathers before it compresses them (figwig's own default, 2**20, would
hold about 20 MiB per file at wide bins: 18 GiB for 919 tracks)."""


def check_engine(engine: str | None) -> str:
    """The engine named (default ``DEFAULT_BIGWIG.engine``), checked: one of :data:`ENGINES`,
    and its package importable. Raise :class:`RegtracksError` in one line otherwise."""
    name = DEFAULT_BIGWIG.engine if engine is None else str(engine).strip().lower()
    if name not in ENGINES:
        raise RegtracksError(
            f"bigWig engine (--bigwig-engine) must be one of {', '.join(ENGINES)}, got {engine!r}"
        )
    if name == "figwig" and importlib.util.find_spec("figwig") is None:
        raise RegtracksError(
            'bigWig engine figwig needs the figwig package (pip install "figwig[fast]"); '
            "or use --bigwig-engine native (the default)"
        )
    return name


class _Tracks:
    """Open files of some tracks, written by one engine; writes blocks of their rows.

    Subclasses open ``handles`` (one per path, in order) and write one row each; this class
    holds what every engine shares: the disk-space guard (before the library writes) and the
    count of bases written per track (checked in the file's header when it is finished)."""

    bytes_per_bin = _DATA_BYTES_PER_BIN
    checked = True
    """Check each file and flush it to disk as it is finished (off: an engine's bare floor)."""

    def __init__(
        self,
        tmp_paths: Sequence[str],
        chrom_sizes: Sequence[tuple[str, int]],
        *,
        bin_size: int,
        names: Sequence[str] | None = None,
    ):
        _raise_open_file_limit(len(tmp_paths) + 64)
        self.bin_size = int(bin_size)
        self.chroms = [c for c, _ in chrom_sizes]
        self.sizes = [int(s) for _, s in chrom_sizes]
        self.header = [(c, int(s)) for c, s in chrom_sizes]
        self.paths = [str(p) for p in tmp_paths]
        self.names = [str(p) for p in names] if names is not None else self.paths  # in errors
        self.handles: list = []  # one per file not yet finished: its close() finishes it
        self.bases = [0] * len(tmp_paths)  # bases covered per track: checked in the file
        self._open_all()

    def _open_all(self) -> None:
        for p, shown in zip(self.paths, self.names, strict=True):
            try:
                self.handles.append(self._open(p))
            except (RuntimeError, OSError, ValueError, TypeError) as exc:
                raise RegtracksError(
                    f"{shown}: cannot write the bigWig ({write_cause(p, exc)})"
                ) from None

    def _open(self, path: str):
        raise NotImplementedError

    def _room(self, i: int, need: int) -> None:
        """Refuse a write that may not fit on the disk of track ``i``: libBigWig does not
        survive a full disk (it corrupts its memory and aborts the process), so the check
        comes before any engine writes."""
        folder = os.path.dirname(self.paths[i]) or "."
        try:
            free = shutil.disk_usage(folder).free
        except OSError:
            return
        if free < need + LOW_SPACE_BYTES:
            raise RegtracksError(
                f"{self.names[i]}: cannot write the bigWig (no space left on device: "
                f"{free:,} bytes free)"
            )

    def write(self, chrom_idx: int, start: int, block: np.ndarray) -> None:
        """Add ``block`` ``(t, n_bins)`` float32, row i to track i, bins from ``start``."""
        size, bs = self.sizes[chrom_idx], self.bin_size
        if self.handles:  # the tracks share a folder: the block's data bytes, compressed
            self._room(0, self.bytes_per_bin * block.size)
        n = block.shape[1]
        # bins [0, n_full) are whole; bin n_full (the chromosome's last) may be partial
        n_full = n if start + n * bs <= size else n - 1
        finite = np.isfinite(block)
        covered = finite[:, :n_full].sum(axis=1) * bs
        if n_full < n:
            covered += finite[:, n_full] * (size - (start + n_full * bs))
        self._write_block(chrom_idx, start, block, finite, n_full, covered)

    def _write_block(self, chrom_idx, start, block, finite, n_full, covered) -> None:
        """Write every row (one engine call a row, unless the engine writes blocks)."""
        for i in range(len(self.handles)):
            self.bases[i] += int(covered[i])
            try:
                self._write_row(i, chrom_idx, start, block[i], finite[i], n_full)
            except (RuntimeError, OSError, ValueError, TypeError) as exc:
                cause = write_cause(self.paths[i], exc)
                raise RegtracksError(f"{self.names[i]}: cannot write ({cause})") from None

    def _write_row(self, i, chrom_idx, start, row, finite, n_full) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Finish every file (the engine builds the zoom levels and the index here)."""
        k = len(self.paths) - len(self.handles)
        while self.handles:
            with contextlib.suppress(OSError):  # zoom levels and index: ~0.45x the data
                self._room(k, int(os.path.getsize(self.paths[k]) * _CLOSE_BYTES_PER_BYTE))
            # flushed to disk and checked (libraries print some write errors instead of
            # raising them: a full disk left pyBigWig's 4 KiB header-only files) here, in the
            # writer process, while the other processes still write: not one by one after
            try:
                self.handles.pop(0).close()
                if self.checked:
                    fsync_file(self.paths[k])
            except (RuntimeError, OSError, ValueError, TypeError) as exc:
                cause = write_cause(self.paths[k], exc)
                raise RegtracksError(f"{self.names[k]}: cannot finish ({cause})") from None
            if self.checked:
                check_bigwig(self.paths[k], self.header, bases=self.bases[k], name=self.names[k])
            k += 1

    def abandon(self) -> None:
        """Drop the files without finishing them (the caller removes them)."""
        self.handles.clear()


class _TrackSet(_Tracks):
    """pyBigWig (libBigWig): fixedStep entries with ``span = step = bin_size``."""

    def _open(self, path: str):
        import pyBigWig

        bw = pyBigWig.open(path, "w")
        if bw is None:
            raise RuntimeError("pyBigWig.open returned None")
        # maxZooms left at its default: IGV needs zoom levels
        bw.addHeader(self.header)
        return bw

    def _write_row(self, i, chrom_idx, start, row, finite, n_full) -> None:
        bw, chrom, bs = self.handles[i], self.chroms[chrom_idx], self.bin_size
        n = len(row)
        last_start = start + n_full * bs
        last_span = self.sizes[chrom_idx] - last_start
        runs = [(0, n)] if finite.all() else _finite_runs(finite)
        for a, b in runs:
            b_full = min(b, n_full)
            if b_full > a:
                bw.addEntries(chrom, start + a * bs, values=row[a:b_full], span=bs, step=bs)
            if b > n_full:
                bw.addEntries(
                    chrom, last_start, values=row[n_full:b], span=last_span, step=last_span
                )


class _FigwigTracks(_Tracks):
    """figwig: per-base fixedStep windows at 1 bp; one bedGraph interval per finite bin at
    wider bins (figwig has no span). Its traps: non-finite bins are left out here (figwig
    refuses infinities); ``missing=nan`` (its default, 0, would leave every 0 out); figwig
    keeps views of the arrays it is given until it compresses them, so every row it gets is
    a copy (the shared buffer's slots are reused); one thread per file (``n_jobs=1``: the
    writer's processes are the parallelism); and its batch is capped (bounded memory). The
    first use in a new environment compiles its numba kernels (15-30 s each, cached beside
    the package; set ``NUMBA_CACHE_DIR`` where that folder is read-only)."""

    def __init__(self, tmp_paths, chrom_sizes, *, bin_size: int, names=None):
        # room a bin needs before compression: a bedGraph item is 12 bytes, a fixedStep one 4
        self.bytes_per_bin = _DATA_BYTES_PER_BIN * (3 if bin_size > 1 else 1)
        super().__init__(tmp_paths, chrom_sizes, bin_size=bin_size, names=names)

    def _open(self, path: str):
        import figwig

        w = figwig.BigWigWriter(path, self.header, n_jobs=1)  # zooms=10, level 6
        if hasattr(w, "_batch_items"):  # bounded memory per file (figwig 0.2)
            w._batch_items = min(w._batch_items, _FIGWIG_BATCH_ITEMS)
        return w

    def _write_row(self, i, chrom_idx, start, row, finite, n_full) -> None:
        w, chrom, bs = self.handles[i], self.chroms[chrom_idx], self.bin_size
        if bs == 1:
            values = np.where(finite, row, np.float32(np.nan))[None]  # a copy
            w.write(chrom, np.array([start], np.int64), values, missing=np.nan)
            return
        j = np.flatnonzero(finite)
        if not len(j):
            return
        starts = start + j * bs
        ends = np.minimum(starts + bs, self.sizes[chrom_idx])
        w.write(chrom, starts, row[j], ends=ends, missing=np.nan)  # row[j]: a copy

    def abandon(self) -> None:
        """Close the files without finishing them (the caller removes them)."""
        while self.handles:
            w = self.handles.pop()
            with contextlib.suppress(Exception):
                getattr(w, "_abandon", w.close)()


class _NativeTracks(_Tracks):
    """regtracks' own writer (:mod:`regtracks.tracks.bbi`): the tracks of a group written
    together, numpy and libdeflate; fixedStep sections as pyBigWig writes them."""

    class _Finish:  # a handle: close() finishes file i of the set
        def __init__(self, tracks: BigWigSet, i: int):
            self.tracks, self.i = tracks, i

        def close(self) -> None:
            self.tracks.finish(self.i)

    @contextlib.contextmanager
    def _failing(self, what: str):
        """An OSError of the set (its files share a folder) as one line naming the first."""
        try:
            yield
        except OSError as exc:
            cause = write_cause(self.paths[0], exc)
            raise RegtracksError(f"{self.names[0]}: {what} ({cause})") from None

    def _open_all(self) -> None:
        with self._failing("cannot write the bigWig"):
            self.set = BigWigSet(self.paths, self.header, self.bin_size)
        self.handles = [self._Finish(self.set, i) for i in range(len(self.paths))]

    def _write_block(self, chrom_idx, start, block, finite, n_full, covered) -> None:
        with self._failing("cannot write"):
            self.set.write(chrom_idx, start, block, finite, n_full)
        for i, c in enumerate(covered.tolist()):
            self.bases[i] += c

    def close(self) -> None:
        with self._failing("cannot finish"):
            self.set.flush()  # the zoom records still open, of every file
        super().close()

    def abandon(self) -> None:
        self.set.abandon()
        super().abandon()


_ENGINE_TRACKS = {"pybigwig": _TrackSet, "figwig": _FigwigTracks, "native": _NativeTracks}


def _track_set(engine: str, tmp_paths, chrom_sizes, *, bin_size: int, names=None) -> _Tracks:
    return _ENGINE_TRACKS[engine](tmp_paths, chrom_sizes, bin_size=bin_size, names=names)


# ---------------------------------------------------------------------------------------------
# writer processes
def _parent_alive() -> bool:
    import multiprocessing as mp

    parent = mp.parent_process()
    return parent is None or parent.is_alive()


def _describe(exc: BaseException) -> str:
    lines = traceback.format_exception_only(type(exc), exc)
    return lines[-1].strip() if lines else type(exc).__name__


def _worker_main(
    wid: int,
    lo: int,
    hi: int,
    tmp_paths: list[str],
    chrom_sizes: list,
    bin_size: int,
    shm_name: str,
    shape: tuple[int, int, int],
    inbox,
    outbox,
    names: list[str] | None = None,
    engine: str = "native",
):
    """Writer process: own tracks ``[lo, hi)``; write the blocks the parent posts in slots."""
    import signal
    from multiprocessing import shared_memory

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    shm = arr = None
    try:
        shm = shared_memory.SharedMemory(name=shm_name)
        arr = np.ndarray(shape, dtype=np.float32, buffer=shm.buf)
        tracks = _track_set(engine, tmp_paths, chrom_sizes, bin_size=bin_size, names=names)
        while True:
            try:
                msg = inbox.get(timeout=_POLL_S)
            except queue.Empty:
                if not _parent_alive():
                    os._exit(1)  # orphaned: leave the temporaries, the next writer removes them
                continue
            if msg[0] == "block":
                _, slot, chrom_idx, start, n = msg
                tracks.write(chrom_idx, start, arr[slot, lo:hi, :n])
                outbox.put(("done", wid, slot))
            elif msg[0] == "close":
                tracks.close()  # finished, checked and flushed, file by file
                outbox.put(("closed", wid))
                break
            else:  # abort: drop everything now; the parent removes the temporaries
                os._exit(0)
    except BaseException as exc:  # report anything, then die without finishing the files
        what = f"RegtracksError: {exc}" if isinstance(exc, RegtracksError) else _describe(exc)
        outbox.put(("error", wid, what, traceback.format_exc()))
        outbox.close()
        outbox.join_thread()
        os._exit(1)
    finally:
        arr = None
        if shm is not None:
            with contextlib.suppress(BufferError):
                shm.close()


def _remove_stale_temps(paths: Sequence[Path]) -> None:
    """Remove temporaries of ``paths`` left by a killed run (``.<name>.XXXXXXXX.tmp.bw``,
    the Xs from :func:`tempfile.mkstemp`: no dot among them). Each folder is listed once
    (one listing per path was quadratic: 0.25 s for 919 tracks)."""
    by_folder: dict[Path, set[str]] = {}
    for p in paths:
        by_folder.setdefault(p.parent, set()).add(p.name)
    for folder, names in by_folder.items():
        try:
            entries = os.listdir(folder)
        except OSError:
            continue
        for e in entries:
            if e.startswith(".") and e.endswith(_TMP_SUFFIX) and len(e) > len(_TMP_SUFFIX) + 1:
                stem = e[1 : -len(_TMP_SUFFIX)].rpartition(".")[0]
                if stem in names:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(folder / e)


def _make_temp(path: Path) -> Path:
    """An empty hidden temporary file beside ``path``, with the usual file mode."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_TMP_SUFFIX, dir=path.parent)
    except OSError as exc:
        raise RegtracksError(f"{path}: cannot write ({write_cause(path, exc)})") from None
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return Path(tmp)


def _check_chrom_sizes(chrom_sizes) -> list[tuple[str, int]]:
    out, seen = [], set()
    for item in chrom_sizes:
        try:
            c, s = item
            s = int(s)
        except (TypeError, ValueError):
            raise RegtracksError(f"chrom_sizes entry {item!r} is not (name, size)") from None
        c = str(c)
        if not c or s <= 0:
            raise RegtracksError(f"chrom_sizes entry {item!r}: empty name or size <= 0")
        if c in seen:
            raise RegtracksError(f"chrom_sizes: chromosome {c!r} listed twice")
        seen.add(c)
        out.append((c, s))
    if not out:
        raise RegtracksError("chrom_sizes is empty")
    return out


# ---------------------------------------------------------------------------------------------
class BigWigWriter:
    """Write ``T`` bigWig tracks from ``(T, n_bins)`` blocks, in parallel processes.

    Coordinates are 0-based, half-open. See the module docstring for the file layout, the
    temporary names and the memory bound.

    Parameters
    ----------
    paths : sequence of str or Path, length T
        Final file of each track (parent folders are created). Must be distinct.
    chrom_sizes : sequence of (str, int)
        Every chromosome of the genome, in genome order (``Genome.chrom_sizes``): the header
        of every file, and the order in which blocks must come.
    bin_size : int
        Width of a bin in bp (the fixedStep span and step).
    n_procs : int, optional
        Writer processes (default ``DEFAULT_BIGWIG.n_procs``: CPUs - 1, 1..16); ``0`` writes in
        the calling process (tests, small runs). Never more than T are started.
    rows : sequence of int, optional, length T
        Track i takes row ``rows[i]`` of each block passed to :meth:`add` (so a resumed run
        can pass the full ``(M, n_bins)`` array of all markers and write only some). Default:
        row i.
    buffer_mb : float, optional
        Shared-memory buffer between the caller and the writer processes, MiB
        (default ``DEFAULT_BIGWIG.buffer_mb``). A slot holds
        ``buffer_mb / n_slots / (4 T)`` bins (at least 1); bigger blocks are cut.
    n_slots : int, optional
        Blocks in flight (default ``DEFAULT_BIGWIG.n_slots``).
    start_method : str, optional
        ``multiprocessing`` start method (default ``spawn``).
    engine : {"native", "pybigwig", "figwig"}, optional
        What writes the files (default ``DEFAULT_BIGWIG.engine``, ``native``: regtracks' own
        writer; see the module docstring). figwig is an optional package.

    Raises
    ------
    RegtracksError
        Bad arguments, an unknown engine or one not installed, files that cannot be created, a
        writer process that fails.

    Examples
    --------
    >>> with BigWigWriter(["a.bw", "b.bw"], [("chr1", 1000)], bin_size=100, n_procs=0) as w:
    ...     w.add("chr1", 0, np.zeros((2, 10), np.float32))
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike],
        chrom_sizes: Sequence[tuple[str, int]],
        *,
        bin_size: int,
        n_procs: int | None = None,
        rows: Sequence[int] | None = None,
        buffer_mb: float | None = None,
        n_slots: int | None = None,
        start_method: str | None = None,
        engine: str | None = None,
    ):
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise RegtracksError("BigWigWriter: no output paths")
        resolved = [p.expanduser().resolve() for p in self.paths]
        if len(set(resolved)) != len(resolved):
            raise RegtracksError("BigWigWriter: the same output path is given twice")
        self.chrom_sizes = _check_chrom_sizes(chrom_sizes)
        self.bin_size = int(bin_size)
        if self.bin_size <= 0:
            raise RegtracksError(f"bin_size must be positive, got {bin_size}")
        self.engine = check_engine(engine)
        self.n_tracks = len(self.paths)
        if rows is None:
            self.rows = None
        else:
            self.rows = np.asarray(rows, dtype=np.int64)
            if self.rows.shape != (self.n_tracks,) or (self.rows < 0).any():
                raise RegtracksError(
                    f"rows must hold {self.n_tracks} non-negative row indices, got {rows!r}"
                )
        n_procs = DEFAULT_BIGWIG.n_procs if n_procs is None else int(n_procs)
        if n_procs < 0:
            raise RegtracksError(f"n_procs must be >= 0, got {n_procs}")
        self.n_procs = min(n_procs, self.n_tracks)
        self._chrom_idx = {c: i for i, (c, _) in enumerate(self.chrom_sizes)}
        self._last: tuple[int, int] = (-1, 0)  # (chrom index, end of the last block)
        self._state = "open"
        self.bytes_written = 0
        self._procs: list = []
        self._shm = None
        self._slots = None
        self._tmp: list[Path] = []
        try:
            _remove_stale_temps(self.paths)
            for p in self.paths:
                self._tmp.append(_make_temp(p))
            if self.n_procs == 0:
                self._local = _track_set(
                    self.engine,
                    [str(t) for t in self._tmp],
                    self.chrom_sizes,
                    bin_size=self.bin_size,
                    names=[str(p) for p in self.paths],
                )
            else:
                self._start(buffer_mb, n_slots, start_method)
        except BaseException:
            self.abort()
            raise

    # -- process pool --------------------------------------------------------------------
    def _start(self, buffer_mb, n_slots, start_method) -> None:
        import multiprocessing as mp
        from multiprocessing import shared_memory

        buffer_mb = DEFAULT_BIGWIG.buffer_mb if buffer_mb is None else float(buffer_mb)
        n_slots = DEFAULT_BIGWIG.n_slots if n_slots is None else int(n_slots)
        if buffer_mb <= 0 or n_slots <= 0:
            raise RegtracksError(f"buffer_mb and n_slots must be positive ({buffer_mb}, {n_slots})")
        max_bins = max(-(-s // self.bin_size) for _, s in self.chrom_sizes)
        self.slot_bins = int(
            max(1, min(max_bins, int(buffer_mb * 2**20) // (n_slots * 4 * self.n_tracks)))
        )
        shape = (n_slots, self.n_tracks, self.slot_bins)
        self._shm = shared_memory.SharedMemory(create=True, size=4 * int(np.prod(shape)))
        self._slots = np.ndarray(shape, dtype=np.float32, buffer=self._shm.buf)
        self._free = list(range(n_slots))
        self._pending = [0] * n_slots  # workers still reading each slot
        ctx = mp.get_context(start_method or DEFAULT_BIGWIG.start_method)
        self._outbox = ctx.Queue()
        self._inboxes = []
        bounds = np.linspace(0, self.n_tracks, self.n_procs + 1).round().astype(int)
        for wid in range(self.n_procs):
            lo, hi = int(bounds[wid]), int(bounds[wid + 1])
            inbox = ctx.Queue()
            proc = ctx.Process(
                target=_worker_main,
                args=(
                    wid,
                    lo,
                    hi,
                    [str(t) for t in self._tmp[lo:hi]],
                    self.chrom_sizes,
                    self.bin_size,
                    self._shm.name,
                    shape,
                    inbox,
                    self._outbox,
                    [str(p) for p in self.paths[lo:hi]],
                    self.engine,
                ),
                name=f"regtracks-bigwig-{wid}",
                daemon=True,
            )
            proc.start()
            self._inboxes.append(inbox)
            self._procs.append(proc)

    def _handle(self, msg) -> str:
        """Book one message from the workers; raise if it reports a failure."""
        if msg[0] == "done":
            slot = msg[2]
            self._pending[slot] -= 1
            if self._pending[slot] == 0:
                self._free.append(slot)
        elif msg[0] == "error":
            what = msg[2]
            if what.startswith("RegtracksError: "):  # it names its file and cause
                what = what.removeprefix("RegtracksError: ")
                raise RegtracksError(what)
            raise RegtracksError(f"bigWig writer process {msg[1]} failed: {what}")
        return msg[0]

    def _wait(self) -> str:
        """Wait for one message from the workers; raise if one died without a word."""
        while True:
            try:
                return self._handle(self._outbox.get(timeout=_POLL_S))
            except queue.Empty:
                for wid, proc in enumerate(self._procs):
                    if not proc.is_alive() and proc.exitcode not in (0, None):
                        # it may have reported its error just before dying
                        with contextlib.suppress(queue.Empty):
                            while True:
                                self._handle(self._outbox.get(timeout=_POLL_S))
                        cause = write_cause(self.paths[0]) or "out of memory or disk space?"
                        raise RegtracksError(
                            f"bigWig writer process {wid} died (exit code {proc.exitcode}; "
                            f"{cause}) writing {self.paths[0].parent}"
                        ) from None

    def _acquire(self) -> int:
        while not self._free:
            self._wait()
        return self._free.pop(0)

    # -- public API ----------------------------------------------------------------------
    def add(self, chrom: str, start: int, values: np.ndarray) -> None:
        """Queue one block of values for every track.

        Parameters
        ----------
        chrom : str
            Chromosome (a name of ``chrom_sizes``); blocks come in that order.
        start : int
            0-based start of the first bin; at or after the end of the previous block of the
            same chromosome.
        values : (T, n_bins) or, with ``rows``, (M, n_bins) array of float
            Values of the bins ``[start + j*bin_size, start + (j+1)*bin_size)``; cast to
            float32. NaN (or inf) = no data. Every bin must start inside the chromosome; the
            last one may pass its end and is clipped. The array may be reused by the caller
            as soon as ``add`` returns (it is copied).

        Raises
        ------
        RegtracksError
            Unknown chromosome, block out of genome order or past the chromosome end, wrong
            shape, writer closed: the block is not written and the writer stays usable. A
            writer process that failed: the writer is aborted (temporaries removed).
        """
        if self._state != "open":
            raise RegtracksError(f"BigWigWriter.add after the writer was {self._state}")
        values = np.asarray(values)
        if values.ndim != 2 or not (
            np.issubdtype(values.dtype, np.floating) or np.issubdtype(values.dtype, np.integer)
        ):
            raise RegtracksError(
                f"values must be a 2-D (tracks, bins) numeric array, got shape {values.shape} "
                f"dtype {values.dtype}"
            )
        need = self.n_tracks if self.rows is None else int(self.rows.max()) + 1
        if (self.rows is None and values.shape[0] != need) or values.shape[0] < need:
            raise RegtracksError(
                f"values has {values.shape[0]} rows; the writer needs "
                f"{'exactly' if self.rows is None else 'at least'} {need}"
            )
        n = values.shape[1]
        if n == 0:
            return
        ci = self._chrom_idx.get(chrom)
        if ci is None:
            raise RegtracksError(f"chromosome {chrom!r} is not in the bigWig header")
        size = self.chrom_sizes[ci][1]
        start = int(start)
        last_bin_start = start + (n - 1) * self.bin_size
        if start < 0 or last_bin_start >= size:
            raise RegtracksError(
                f"block {chrom}:{start}-{start + n * self.bin_size} ({n} bins of "
                f"{self.bin_size} bp) has bins outside {chrom} (0-{size})"
            )
        prev_ci, prev_end = self._last
        if ci < prev_ci or (ci == prev_ci and start < prev_end):
            prev = self.chrom_sizes[prev_ci][0]
            raise RegtracksError(
                f"block {chrom}:{start} comes before the end of the previous block "
                f"({prev}:{prev_end}); add blocks in genome order (header order, increasing "
                "start, no overlaps)"
            )
        self._last = (ci, min(size, start + n * self.bin_size))
        try:
            if self.n_procs == 0:
                block = values if self.rows is None else values[self.rows]
                self._local.write(ci, start, np.ascontiguousarray(block, dtype=np.float32))
                return
            for j0 in range(0, n, self.slot_bins):
                m = min(self.slot_bins, n - j0)
                slot = self._acquire()
                dst = self._slots[slot, :, :m]
                if self.rows is None:
                    np.copyto(dst, values[:, j0 : j0 + m], casting="unsafe")
                else:
                    for k, r in enumerate(self.rows):
                        dst[k] = values[r, j0 : j0 + m]
                self._pending[slot] = self.n_procs
                msg = ("block", slot, ci, start + j0 * self.bin_size, m)
                for inbox in self._inboxes:
                    inbox.put(msg)
        except BaseException:
            self.abort()
            raise

    def close(self) -> list[Path]:
        """Finish every file and rename it to its final path; return the final paths.

        Waits for the writer processes (they build each file's zoom levels and index now).
        On any failure every temporary is removed, no final file appears, and the error is
        raised. Calling ``close`` again is a no-op.
        """
        if self._state == "closed":
            return list(self.paths)
        if self._state != "open":
            raise RegtracksError(f"BigWigWriter.close after the writer was {self._state}")
        try:
            # every file is finished, checked and flushed to disk (by its writer process)
            # before the first is renamed: a failure leaves every earlier file in place
            if self.n_procs == 0:
                self._local.close()
            else:
                for inbox in self._inboxes:
                    inbox.put(("close",))
                closed = 0
                while closed < self.n_procs:
                    if self._wait() == "closed":
                        closed += 1
                for proc in self._procs:
                    proc.join()
                self._release()
            for tmp, path in zip(self._tmp, self.paths, strict=True):
                self.bytes_written += tmp.stat().st_size
                os.replace(tmp, path)
            for folder in dict.fromkeys(p.parent for p in self.paths):
                fsync_dir(folder)
        except BaseException:
            self.abort()
            raise
        self._state = "closed"
        return list(self.paths)

    def abort(self) -> None:
        """Stop the writers and remove every temporary; no final file appears. Idempotent."""
        if self._state == "closed":
            return
        self._state = "aborted"
        for inbox in getattr(self, "_inboxes", []):
            with contextlib.suppress(Exception):
                inbox.put(("abort",))
        deadline = time.monotonic() + 5.0
        for proc in self._procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.terminate()
                proc.join(1.0)
        local = getattr(self, "_local", None)
        if local is not None:
            local.abandon()  # dropped, not finished: the files are removed below
        self._release()
        for tmp in self._tmp:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def _release(self) -> None:
        self._slots = None
        if self._shm is not None:
            with contextlib.suppress(Exception):
                self._shm.close()
            with contextlib.suppress(FileNotFoundError):
                self._shm.unlink()
            self._shm = None
        for q in [*getattr(self, "_inboxes", []), *([self._outbox] if self._procs else [])]:
            with contextlib.suppress(Exception):
                q.close()
                q.cancel_join_thread()
        self._procs = []
        self._inboxes = []

    def __enter__(self) -> BigWigWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self):
        if getattr(self, "_state", "closed") == "open":
            with contextlib.suppress(Exception):
                self.abort()


def write_bigwig(
    path: str | os.PathLike,
    chrom_sizes: Sequence[tuple[str, int]],
    blocks: Iterable[tuple[str, int, np.ndarray]],
    *,
    bin_size: int,
    engine: str | None = None,
) -> Path:
    """Write one track in the calling process, atomically.

    Parameters
    ----------
    path : str or Path
        Output bigWig.
    chrom_sizes : sequence of (str, int)
        Header, in genome order.
    blocks : iterable of (chrom, start, values)
        ``values`` ``(n_bins,)`` float, bins of ``bin_size`` from ``start`` (0-based); NaN = no
        data; in genome order (see :class:`BigWigWriter`).
    bin_size : int
        Bin width in bp.
    engine : {"native", "pybigwig", "figwig"}, optional
        As for :class:`BigWigWriter`.

    Returns
    -------
    Path of the finished file.
    """
    with BigWigWriter([path], chrom_sizes, bin_size=bin_size, n_procs=0, engine=engine) as writer:
        for chrom, start, values in blocks:
            writer.add(chrom, start, np.asarray(values, dtype=np.float32).reshape(1, -1))
    return Path(path)


def read_bins(
    path: str | os.PathLike, chrom: str, start: int, n_bins: int, *, bin_size: int
) -> np.ndarray:
    """The values of ``n_bins`` bins of ``bin_size`` from ``start`` of a track this module wrote.

    The inverse of :meth:`BigWigWriter.add`: bins with no entry (left out as non-finite when
    written) come back as NaN, so a block read here and added to a writer writes the same
    entries. Entries must be aligned on the bins (true of every file written with this
    ``bin_size`` from bin-aligned starts, as ``predict`` writes).
    """
    import pyBigWig

    out = np.full(n_bins, np.nan, dtype=np.float32)
    bw = pyBigWig.open(str(path))
    if bw is None:
        raise RegtracksError(f"{path}: not a readable bigWig")
    try:
        size = bw.chroms(chrom)
        end = min(start + n_bins * bin_size, size or 0)
        ivs = bw.intervals(chrom, start, end) if size and end > start else None
    finally:
        bw.close()
    for s, e, v in ivs or ():
        j = (s - start) // bin_size
        if (s - start) % bin_size or e - s > bin_size or not 0 <= j < n_bins:
            raise RegtracksError(
                f"{path}: entry {chrom}:{s}-{e} is not one bin of {bin_size} bp; "
                "the track was not written with this bin size"
            )
        out[j] = v
    return out


# ---------------------------------------------------------------------------------------------
def zoom_levels(path: str | os.PathLike) -> int:
    """Number of zoom levels in a bigWig's header (uint16 at byte 6); -1 if not a bigWig."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    if len(head) < 8 or struct.unpack("<I", head[:4])[0] != BIGWIG_MAGIC:
        return -1
    return struct.unpack("<H", head[6:8])[0]


def check_bigwig(
    path: str | os.PathLike,
    chrom_sizes: Sequence[tuple[str, int]],
    *,
    bases: int | None = None,
    name: str | os.PathLike | None = None,
) -> None:
    """Check that a bigWig was written whole; raise naming ``name`` (default ``path``) if not.

    Reads the fixed header and follows every offset it holds: the chromosome tree, the data
    index and each zoom level's index must lie inside the file and start with their magic
    numbers, the data must end inside the file, the file must end with the magic number (as
    every bbi writer ends it), the header must list ``chrom_sizes``, and, with
    data, there must be zoom levels (IGV needs them) and the total summary must count
    ``bases`` covered bases (the sum of the spans written). A few hundred bytes are read,
    whatever the file's size.

    Raises
    ------
    RegtracksError
        "<name>: the bigWig written is incomplete (<what>; <cause>)", the cause being "no space
        left on device" when the disk is (nearly) full.
    """
    path = Path(path)
    shown = Path(name) if name is not None else path

    def bad(what: str):
        cause = write_cause(path)
        raise RegtracksError(
            f"{shown}: the bigWig written is incomplete ({what}{'; ' + cause if cause else ''})"
        )

    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:

            def at(offset: int, n: int) -> bytes:
                if offset < 0 or offset + n > size:
                    bad(f"offset {offset} + {n} past the end of the {size}-byte file")
                fh.seek(offset)
                return fh.read(n)

            head = at(0, 64)
            magic, _version, n_zooms, chrom_tree, data_off, index_off = struct.unpack(
                "<IHHQQQ", head[:32]
            )
            summary_off = struct.unpack("<Q", head[44:52])[0]
            if magic != BIGWIG_MAGIC:
                bad("no bigWig magic number")
            if struct.unpack("<I", at(chrom_tree, 4))[0] != _CHROM_TREE_MAGIC:
                bad("no chromosome tree")
            n_blocks = struct.unpack("<Q", at(data_off, 8))[0]
            rtree = at(index_off, 48)
            if struct.unpack("<I", rtree[:4])[0] != _RTREE_MAGIC:
                bad("no data index")
            if struct.unpack("<Q", rtree[32:40])[0] > size:
                bad("data past the end of the file")
            zooms = at(64, 24 * n_zooms) if n_zooms else b""
            for z in range(n_zooms):
                z_index = struct.unpack("<Q", zooms[24 * z + 16 : 24 * z + 24])[0]
                if struct.unpack("<I", at(z_index, 4))[0] != _RTREE_MAGIC:
                    bad(f"zoom level {z + 1} has no index")
            covered = struct.unpack("<Q", at(summary_off, 8))[0] if summary_off else 0
            if struct.unpack("<I", at(size - 4, 4))[0] != BIGWIG_MAGIC:
                bad("no end signature: the file stops before its end")
    except OSError as exc:
        raise RegtracksError(f"{shown}: cannot read the bigWig written ({exc.strerror})") from None
    if bases is not None and covered != bases:
        bad(f"{covered} bases covered where {bases} were written")
    if (covered or n_blocks) and n_zooms < 1:
        bad("data but no zoom levels")
    import pyBigWig

    try:
        bw = pyBigWig.open(str(path))
    except (RuntimeError, OSError):
        bw = None
    if bw is None:
        bad("pyBigWig cannot open it")
    try:
        got = list(bw.chroms().items())
    finally:
        bw.close()
    if got != [(str(c), int(s)) for c, s in chrom_sizes]:
        bad(f"its header lists {len(got)} chromosomes, not the {len(chrom_sizes)} written")


def is_complete(path: str | os.PathLike, chrom_sizes: Sequence[tuple[str, int]]) -> bool:
    """True if ``path`` is a finished bigWig whose header is exactly ``chrom_sizes``.

    The resume test of whole-chromosome prediction: the writer only ever gives a file its
    final name once it is complete, so a readable bigWig with the right chromosomes, in the
    right order and sizes, with zoom levels, is a finished track. A missing, foreign,
    truncated or other-genome file is not.
    """
    path = Path(path)
    if not path.is_file() or zoom_levels(path) < 1:
        return False  # (a file with no data at all has no zoom levels either: redo it)
    import pyBigWig

    try:
        bw = pyBigWig.open(str(path))
    except (RuntimeError, OSError):
        return False
    if bw is None:
        return False
    try:
        if not bw.isBigWig():
            return False
        want = [(str(c), int(s)) for c, s in chrom_sizes]
        return list(bw.chroms().items()) == want
    except RuntimeError:
        return False
    finally:
        bw.close()
