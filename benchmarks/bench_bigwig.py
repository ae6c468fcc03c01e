"""bigWig writing benchmark (issue 5): the parallel writer against the pyBigWig write floor.

For T tracks (default 919, the paper's markers) over one synthetic chromosome binned at
``--bin-size`` (default 128 bp), with random float32 values (the worst case for zlib; model
probabilities compress a little better) and a few assembly gaps (NaN in every track):

1. **floor**: :func:`pybigwig_floor.write_floor`: each of ``n`` processes holds its tracks'
   whole-chromosome arrays in memory and writes them with pyBigWig; nothing else.
2. **writer**: :class:`regtracks.tracks.bigwig.BigWigWriter` with ``n`` processes, the
parent feeding
   the same arrays block by block (``--block-bins`` bins, as a scan would) from a memory map:
   what the writer adds to the floor (copy into shared memory, queues, back-pressure).
   ``ratio = writer / floor``, in wall time and in CPU time (parent + writers; the floor's
   loading of its arrays counts against it, a little): on a shared machine the CPU ratio is
   the steadier number.
3. **memory**: the writer run in a fresh process at two chromosome lengths, the parent making
   each block from a seeded generator (a stand-in for the model, no whole-chromosome array
   anywhere): the parent's peak RSS (VmHWM) and the largest writer's (``getrusage`` of the
   children) should not grow with the length.

Run ``python benchmarks/bench_bigwig.py`` (a minute or two on 2 CPU cores); on a big box
``--chrom-len 249000000 --procs 8,15`` is issue 5's chr1 case.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from pybigwig_floor import write_floor

from regtracks.config import DEFAULT_BIGWIG
from regtracks.tracks.bigwig import BigWigWriter


def gap_bins(n_bins: int) -> list[tuple[int, int]]:
    """A few gaps: 50 kb-ish runs of NaN at fixed fractions of the chromosome."""
    width = max(1, n_bins // 400)
    return [(int(n_bins * f), int(n_bins * f) + width) for f in (0.0, 0.31, 0.62, 0.9)]


def make_block(seed: int, n_tracks: int, j0: int, j1: int, n_bins: int) -> np.ndarray:
    """Bins ``[j0, j1)`` of every track, the same whatever the block size."""
    out = np.empty((n_tracks, j1 - j0), dtype=np.float32)
    step = 4096  # generated in fixed pieces so that any blocking gives the same values
    for a in range(j0 - j0 % step, j1, step):
        rng = np.random.default_rng([seed, a])
        piece = rng.random((n_tracks, step), dtype=np.float32)
        lo, hi = max(a, j0), min(a + step, j1)
        out[:, lo - j0 : hi - j0] = piece[:, lo - a : hi - a]
    for g0, g1 in gap_bins(n_bins):
        lo, hi = max(g0, j0), min(g1, j1)
        if hi > lo:
            out[:, lo - j0 : hi - j0] = np.nan
    return out


def write_npy(path: Path, seed: int, n_tracks: int, n_bins: int, block_bins: int) -> None:
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n_tracks, n_bins))
    for j0 in range(0, n_bins, block_bins):
        j1 = min(n_bins, j0 + block_bins)
        arr[:, j0:j1] = make_block(seed, n_tracks, j0, j1, n_bins)
    arr.flush()
    del arr


def run_writer(
    out: Path, chrom_sizes, source, *, n_tracks, bin_size, n_procs, block_bins, buffer_mb=None
):
    """Feed the writer block by block; ``source(j0, j1)`` makes the block. Returns seconds."""
    ((chrom, size),) = chrom_sizes
    n_bins = -(-size // bin_size)
    paths = [out / f"track{i}.bw" for i in range(n_tracks)]
    t0 = time.perf_counter()
    with BigWigWriter(
        paths, chrom_sizes, bin_size=bin_size, n_procs=n_procs, buffer_mb=buffer_mb
    ) as writer:
        for j0 in range(0, n_bins, block_bins):
            j1 = min(n_bins, j0 + block_bins)
            writer.add(chrom, j0 * bin_size, source(j0, j1))
    return time.perf_counter() - t0, writer.bytes_written


def cpu_seconds() -> float:
    """User + system CPU time of this process and of its finished children."""
    a = resource.getrusage(resource.RUSAGE_SELF)
    b = resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def peak_rss_mb() -> float:
    """Peak RSS of this process: VmHWM on Linux (``ru_maxrss`` survives ``exec`` there, so it
    would report the launching process's peak), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def mem_run(args) -> None:
    """One writer run in this (fresh) process; prints JSON with peak RSS in MiB."""
    size = args.chrom_len
    n_bins = -(-size // args.bin_size)
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        secs, nbytes = run_writer(
            Path(tmp), [("chrS", size)],
            lambda j0, j1: make_block(args.seed, args.tracks, j0, j1, n_bins),
            n_tracks=args.tracks, bin_size=args.bin_size, n_procs=args.mem_procs,
            block_bins=args.block_bins, buffer_mb=args.mem_buffer_mb,
        )  # fmt: skip
    self_mb = peak_rss_mb()
    child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        json.dumps({"seconds": secs, "bytes": nbytes, "parent_mb": self_mb, "worker_mb": child_mb})
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tracks", type=int, default=919, help="tracks (markers)")
    ap.add_argument("--chrom-len", type=int, default=5_000_000, help="chromosome length, bp")
    ap.add_argument("--bin-size", type=int, default=128)
    ap.add_argument(
        "--procs", default="1,2", help="comma-separated writer process counts (empty: skip)"
    )
    ap.add_argument("--block-bins", type=int, default=8192, help="bins a block, as a scan adds")
    ap.add_argument(
        "--mem-lengths", default="2500000,10000000", help="two chromosome lengths for the RSS check"
    )
    ap.add_argument("--mem-procs", type=int, default=1, help="writer processes in the RSS check")
    ap.add_argument(
        "--mem-buffer-mb", type=float, default=64,
        help="writer buffer in the RSS check (small, so that both lengths fill it)",
    )  # fmt: skip
    ap.add_argument("--skip-mem", action="store_true", help="skip the memory check")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tmp", default=None, help="folder for the temporary files")
    ap.add_argument("--_mem-run", dest="mem_run", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mem_run:
        mem_run(args)
        return

    size, bs, T = args.chrom_len, args.bin_size, args.tracks
    n_bins = -(-size // bs)
    procs = [int(p) for p in args.procs.split(",") if p.strip()]
    print(
        f"bigWig writing: {T} tracks x {size / 1e6:g} Mbp at {bs} bp ({n_bins:,} bins, "
        f"{T * n_bins * 4 / 2**30:.2f} GiB float32); {os.cpu_count()} CPUs; "
        f"buffer {DEFAULT_BIGWIG.buffer_mb} MiB in {DEFAULT_BIGWIG.n_slots} slots"
    )
    chrom_sizes = [("chrS", size)]
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        tmp = Path(tmp)
        npy = tmp / "values.npy"
        t = time.perf_counter()
        write_npy(npy, args.seed, T, n_bins, args.block_bins)
        print(f"  synthetic values written to a .npy in {time.perf_counter() - t:.1f} s")
        arr = np.load(npy, mmap_mode="r")
        print(
            f"  {'procs':>5} {'floor s':>8} {'writer s':>9} {'ratio':>6}   "
            f"{'floor cpu s':>11} {'writer cpu s':>12} {'ratio':>6} {'MB written':>11}"
        )
        for n in procs:
            c0 = cpu_seconds()
            floor = write_floor(
                {"chrS": npy}, chrom_sizes, bin_size=bs, n_procs=n, out_dir=tmp / "floor"
            )
            c1 = cpu_seconds()
            out = tmp / f"w{n}"
            secs, nbytes = run_writer(
                out, chrom_sizes, lambda j0, j1, a=arr: a[:, j0:j1],
                n_tracks=T, bin_size=bs, n_procs=n, block_bins=args.block_bins,
            )  # fmt: skip
            c2 = cpu_seconds()
            f_cpu, w_cpu = c1 - c0, c2 - c1
            print(
                f"  {n:>5} {floor.seconds:>8.1f} {secs:>9.1f} {secs / floor.seconds:>6.2f}   "
                f"{f_cpu:>11.1f} {w_cpu:>12.1f} {w_cpu / f_cpu:>6.2f} {nbytes / 1e6:>11.0f}"
            )
            for d in (out, tmp / "floor"):
                for f in d.iterdir():
                    f.unlink()
        arr = None  # unmap before the folder goes
    if args.skip_mem:
        return
    print(
        f"  peak RSS, writer with {args.mem_procs} process(es) and a {args.mem_buffer_mb:g} MiB "
        "buffer, blocks generated on the fly:"
    )
    for length in (int(float(x)) for x in args.mem_lengths.split(",")):
        cmd = [sys.executable, __file__, "--_mem-run", "--chrom-len", str(length)]
        cmd += ["--tracks", str(T), "--bin-size", str(bs), "--block-bins", str(args.block_bins)]
        cmd += ["--mem-procs", str(args.mem_procs), "--seed", str(args.seed)]
        cmd += ["--mem-buffer-mb", str(args.mem_buffer_mb)]
        if args.tmp:
            cmd += ["--tmp", args.tmp]
        res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        print(
            f"  {length / 1e6:>6g} Mbp: parent {res['parent_mb']:.0f} MiB, largest writer "
            f"{res['worker_mb']:.0f} MiB, {res['seconds']:.1f} s, {res['bytes'] / 1e6:.0f} MB"
        )


if __name__ == "__main__":
    main()
