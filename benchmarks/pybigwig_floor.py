"""The write floor: the time any writer of these arrays with this many processes needs.

:func:`write_floor` writes the same arrays with the same number of processes as
:class:`regtracks.tracks.bigwig.BigWigWriter`, straight from memory, without the scanner and
without the transfer: the denominator of issue 5's "whole run / write floor" ratio
(``benchmarks/bench_bigwig.py``, ``benchmarks/bench_scan.py``). A benchmark tool, not part of
the package: it shares the writer's per-process code (``_ENGINE_TRACKS``: the writer's
default engine, or another of its engines with ``engine=``) so that both write the same
bytes. Import it with ``benchmarks/`` on ``sys.path`` (a script run from ``benchmarks/`` has
it there); spawned processes inherit that path.
"""

from __future__ import annotations

import contextlib
import os
import queue
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from regtracks._util import RegtracksError
from regtracks.config import DEFAULT_BIGWIG
from regtracks.tracks.bigwig import (
    _ENGINE_TRACKS,
    _POLL_S,
    _check_chrom_sizes,
    _describe,
    check_engine,
)

__all__ = ["write_floor", "write_engine", "WriteFloor"]


@dataclass(frozen=True)
class WriteFloor:
    """Result of :func:`write_floor`.

    Attributes
    ----------
    seconds : float
        Wall time from the moment every process holds its rows in memory to the moment the
        last file is closed.
    n_bytes : int
        Bytes of the bigWig files written.
    n_procs : int
        Processes used.
    """

    seconds: float
    n_bytes: int
    n_procs: int


def write_engine(engine: str, paths, chrom_sizes, blocks, bin_size: int) -> None:
    """Write whole-chromosome ``blocks`` (``[(chrom, (t, n) float32)]``, from bin 0) into
    ``paths`` with the writer's own per-process code of ``engine`` alone: no check, no fsync."""
    tracks = _ENGINE_TRACKS[engine](paths, chrom_sizes, bin_size=bin_size)
    tracks.checked = False
    idx = {c: i for i, (c, _) in enumerate(chrom_sizes)}
    for chrom, block in blocks:
        tracks.write(idx[chrom], 0, block)
    tracks.close()


def _floor_main(lo, hi, npy, chrom_sizes, bin_size, out_dir, barrier, outbox, engine):
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        blocks = []
        for chrom, p in npy:
            arr = np.load(p, mmap_mode="r")
            blocks.append((chrom, np.array(arr[lo:hi], dtype=np.float32)))  # into memory
        barrier.wait()
        t0 = time.monotonic()
        paths = [os.path.join(out_dir, f"track{i}.bw") for i in range(lo, hi)]
        write_engine(engine, paths, chrom_sizes, blocks, bin_size)
        outbox.put(("ok", t0, time.monotonic(), sum(os.path.getsize(p) for p in paths)))
    except BaseException as exc:
        with contextlib.suppress(Exception):
            barrier.abort()
        outbox.put(("error", _describe(exc)))


def write_floor(
    arrays: Mapping[str, str | os.PathLike | np.ndarray],
    chrom_sizes: Sequence[tuple[str, int]],
    *,
    bin_size: int,
    n_procs: int | None = None,
    out_dir: str | os.PathLike | None = None,
    start_method: str | None = None,
    engine: str | None = None,
) -> WriteFloor:
    """Time the parallel write floor of whole-chromosome tracks.

    The same track split as :class:`BigWigWriter` (``n_procs`` contiguous groups); each
    process first loads its rows of every array into memory, then all start together and
    write their files with the same code as the writer. No scanning, no transfer: the time
    any writer of these arrays with this many processes needs at least.

    Parameters
    ----------
    arrays : mapping chrom -> (T, ceil(chrom_size / bin_size)) float32 array or ``.npy`` path
        Whole-chromosome values from bin 0, in genome order (NaN = no data). Pass ``.npy``
        paths for big arrays (they are memory-mapped; arrays are saved to ``out_dir`` first).
    chrom_sizes : sequence of (str, int)
        Header, in genome order.
    bin_size : int
        Bin width in bp.
    n_procs : int, optional
        Processes (default ``DEFAULT_BIGWIG.n_procs``; at least 1).
    out_dir : str or Path, optional
        Where the throw-away files go (default: a temporary folder, removed afterwards).
    start_method : str, optional
        ``multiprocessing`` start method (default ``spawn``).
    engine : str, optional
        The writer's engine whose floor this is (default ``DEFAULT_BIGWIG.engine``).

    Returns
    -------
    WriteFloor
    """
    import multiprocessing as mp
    import shutil

    chrom_sizes = _check_chrom_sizes(chrom_sizes)
    engine = check_engine(engine)
    n_procs = max(1, DEFAULT_BIGWIG.n_procs if n_procs is None else int(n_procs))
    own_dir = out_dir is None
    work = Path(tempfile.mkdtemp(prefix="regtracks-floor-")) if own_dir else Path(out_dir)
    work.mkdir(parents=True, exist_ok=True)
    try:
        npy, n_tracks = [], None
        for chrom, a in arrays.items():
            if isinstance(a, np.ndarray):
                p = work / f"{chrom}.npy"
                np.save(p, a.astype(np.float32, copy=False))
                a = p
            shape = np.load(a, mmap_mode="r").shape
            if n_tracks is not None and shape[0] != n_tracks:
                raise RegtracksError(f"write_floor: {chrom} has {shape[0]} tracks, not {n_tracks}")
            n_tracks = shape[0]
            npy.append((chrom, str(a)))
        if n_tracks is None:
            raise RegtracksError("write_floor: no arrays")
        n_procs = min(n_procs, n_tracks)
        ctx = mp.get_context(start_method or DEFAULT_BIGWIG.start_method)
        barrier, outbox = ctx.Barrier(n_procs), ctx.Queue()
        bounds = np.linspace(0, n_tracks, n_procs + 1).round().astype(int)
        procs = [
            ctx.Process(
                target=_floor_main,
                args=(
                    int(bounds[w]),
                    int(bounds[w + 1]),
                    npy,
                    chrom_sizes,
                    bin_size,
                    str(work),
                    barrier,
                    outbox,
                    engine,
                ),
                daemon=True,
            )
            for w in range(n_procs)
        ]
        for p in procs:
            p.start()
        results = []
        while len(results) < n_procs:
            try:
                results.append(outbox.get(timeout=_POLL_S))
            except queue.Empty:
                if any(not p.is_alive() and p.exitcode != 0 for p in procs):
                    barrier.abort()
                    raise RegtracksError("write_floor: a writer process died") from None
        for p in procs:
            p.join()
        errors = [r[1] for r in results if r[0] == "error"]
        if errors:
            raise RegtracksError(f"write_floor failed: {errors[0]}")
        t0 = min(r[1] for r in results)
        t1 = max(r[2] for r in results)
        return WriteFloor(seconds=t1 - t0, n_bytes=sum(r[3] for r in results), n_procs=n_procs)
    finally:
        if own_dir:
            shutil.rmtree(work, ignore_errors=True)
