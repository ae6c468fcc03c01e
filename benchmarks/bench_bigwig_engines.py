"""bigWig writer engines side by side: pyBigWig, pybigtools and figwig on the same arrays.

Issue 12, item 1. Two cases:

* ``tracks``: T tracks (default 919) x one chromosome of L Mbp (default 5) at 128 bp, the
  shape of ``regtracks predict`` with a 919-output model; written by 1 and by 2 processes (the
  tracks split into contiguous groups, one group a process, as ``BigWigWriter`` splits them);
* ``base``: one track at 1 bp over L Mbp (default 50), the shape of a base-level track
  (saliency); one process.

Each engine writes the same float32 arrays straight from memory (each process first loads
its rows, then all start together behind a barrier): its own floor. Values are a smooth
wave plus noise through a sigmoid (like predictions), with an assembly gap (NaN) in every track,
a per-track hole, a partial last bin and a chromosome without data. Wall time is from the
barrier to the last file closed; CPU time is user + system of every writing process (threads
included: pybigtools runs a thread pool per file) over the same span. Repeats alternate the
engines (A B C A B C ...) so that a change in the machine's load falls on all of them; the
median of ``--repeats`` (3) is reported.

With ``--writer`` the same arrays also go through :class:`regtracks.tracks.bigwig.BigWigWriter`
with each of its engines (shared-memory buffer, writer processes, checks and renames): the
cost of the writer over its engine's floor.

After the timed runs each engine's files are checked (not timed), on the first, a middle and
the last track: zoom levels in the header; every value read back by pyBigWig and by pybigtools
(and by pybbi, UCSC's library, when installed) equal to the float32 written; the NaN gaps
absent from the file (no interval there, no NaN anywhere, finite header sums, bases covered =
finite bases written); every chromosome of the header with its size.

    python benchmarks/bench_bigwig_engines.py                 # full sizes (about 15 min on 2 cores)
    python benchmarks/bench_bigwig_engines.py --quick         # 92 tracks x 2 Mbp, 1 x 5 Mbp
    python benchmarks/bench_bigwig_engines.py --engines pybigwig,figwig --json out.json

figwig is optional (``pip install "figwig[fast]"``: numba, and libdeflate through
``deflate``); without it its rows say "not installed".
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import itertools
import json
import os
import platform
import queue
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ENGINES = ("pybigwig", "pybigtools", "figwig", "native")
CHUNK = 1 << 16  # items handed to pybigtools' iterator per Python list (bounded memory)


# ---------------------------------------------------------------------------------------------
# data
def make_case(n_tracks: int, mbp: float, bin_size: int, seed: int = 0):
    """``(chrom_sizes, {chrom: (T, n_bins) float32})``: a prediction-like signal in (0, 1)
    with NaN gaps."""
    size = int(mbp * 1_000_000) + (bin_size // 2 if bin_size > 1 else 0)  # partial last bin
    n_bins = -(-size // bin_size)
    rng = np.random.default_rng(seed)
    v = np.empty((n_tracks, n_bins), np.float32)
    step = 1 << 22
    for i in range(n_tracks):  # a slow wave per track plus noise, through a sigmoid
        period, phase = rng.uniform(50, 500), rng.uniform(0, 2 * np.pi)
        for a in range(0, n_bins, step):  # bounded temporaries for the 50 Mbp track
            x = np.arange(a, min(n_bins, a + step), dtype=np.float64)
            z = 2 * np.sin(x / period + phase) + rng.normal(0, 0.3, len(x))
            v[i, a : a + len(x)] = 1 / (1 + np.exp(-z))
    g0 = n_bins // 5
    v[:, g0 : g0 + max(1, n_bins // 100)] = np.nan  # an assembly gap in every track
    v[np.arange(n_tracks), (np.arange(n_tracks) * 7919) % n_bins] = np.nan  # a hole each
    v[:, n_bins // 2] = np.inf  # no data either (the writer leaves non-finite bins out)
    chrom_sizes = [("chr1", size), ("chrM", 16_569)]  # chrM: in the header, no data
    return chrom_sizes, {"chr1": v}


# ---------------------------------------------------------------------------------------------
# the engines, straight from memory (one process's group of tracks)
def _runs(finite: np.ndarray):
    d = np.diff(finite.astype(np.int8), prepend=0, append=0)
    return zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist(), strict=True)


def write_pybigwig(paths, chrom_sizes, blocks, bin_size):
    from pybigwig_floor import write_engine  # the writer's own per-process code, alone

    write_engine("pybigwig", paths, chrom_sizes, blocks, bin_size)


def write_native(paths, chrom_sizes, blocks, bin_size):
    from pybigwig_floor import write_engine

    write_engine("native", paths, chrom_sizes, blocks, bin_size)


def _pybigtools_items(row: np.ndarray, chrom: str, size: int, bin_size: int):
    """(chrom, start, end, value) of the finite bins of one row, as Python int and float
    (pybigtools refuses numpy scalars), built CHUNK bins at a time."""
    finite = np.isfinite(row)
    for a, b in _runs(finite):
        for c in range(a, b, CHUNK):
            d = min(b, c + CHUNK)
            j = np.arange(c, d, dtype=np.int64)
            starts = j * bin_size
            ends = np.minimum(starts + bin_size, size)
            yield from zip(
                itertools.repeat(chrom), starts.tolist(), ends.tolist(), row[c:d].tolist()
            )


def write_pybigtools(paths, chrom_sizes, blocks, bin_size):
    import pybigtools

    sizes = dict(chrom_sizes)
    for i, p in enumerate(paths):
        items = itertools.chain.from_iterable(
            _pybigtools_items(block[i], chrom, sizes[chrom], bin_size) for chrom, block in blocks
        )
        pybigtools.open(p, "w").write(sizes, items)  # errors are printed, not raised


def write_figwig(paths, chrom_sizes, blocks, bin_size):
    import figwig

    sizes = dict(chrom_sizes)
    for i, p in enumerate(paths):
        with figwig.BigWigWriter(p, chrom_sizes, n_jobs=1) as w:
            for chrom, block in blocks:
                row = block[i]
                if bin_size == 1:  # per-base windows: fixedStep sections, NaN not written
                    w.write(chrom, np.array([0]), np.where(np.isinf(row), np.nan, row)[None],
                            missing=np.nan)  # fmt: skip
                    continue
                j = np.flatnonzero(np.isfinite(row))
                starts = j * bin_size
                w.write(chrom, starts, row[j], ends=np.minimum(starts + bin_size, sizes[chrom]),
                        missing=np.nan)  # fmt: skip


WRITERS = {
    "pybigwig": write_pybigwig,
    "pybigtools": write_pybigtools,
    "figwig": write_figwig,
    "native": write_native,
}


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    return r.ru_utime + r.ru_stime


def _floor_main(engine, lo, hi, npy, chrom_sizes, bin_size, out_dir, barrier, outbox):
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        blocks = [(c, np.array(np.load(p, mmap_mode="r")[lo:hi], np.float32)) for c, p in npy]
        paths = [os.path.join(out_dir, f"track{i}.bw") for i in range(lo, hi)]
        if engine == "figwig":  # load numba's cached kernels before the clock starts
            import figwig  # noqa: F401
        barrier.wait()
        t0, c0 = time.monotonic(), _cpu()
        WRITERS[engine](paths, chrom_sizes, blocks, bin_size)
        outbox.put(("ok", t0, time.monotonic(), _cpu() - c0))
    except BaseException as exc:
        with contextlib.suppress(Exception):
            barrier.abort()
        outbox.put(("error", f"{type(exc).__name__}: {exc}"))


def run_floor(engine, npy, n_tracks, chrom_sizes, bin_size, n_procs, out_dir):
    """One timed run: ``(wall_s, cpu_s)``."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    n_procs = min(n_procs, n_tracks)
    barrier, outbox = ctx.Barrier(n_procs), ctx.Queue()
    bounds = np.linspace(0, n_tracks, n_procs + 1).round().astype(int)
    procs = [
        ctx.Process(
            target=_floor_main,
            args=(
                engine,
                int(bounds[w]),
                int(bounds[w + 1]),
                npy,
                chrom_sizes,
                bin_size,
                str(out_dir),
                barrier,
                outbox,
            ),
            daemon=True,
        )  # fmt: skip
        for w in range(n_procs)
    ]
    for p in procs:
        p.start()
    results = []
    while len(results) < n_procs:
        try:
            results.append(outbox.get(timeout=1.0))
        except queue.Empty:
            if any(not p.is_alive() and p.exitcode != 0 for p in procs):
                raise RuntimeError(f"{engine}: a writer process died") from None
    for p in procs:
        p.join()
    errors = [r[1] for r in results if r[0] == "error"]
    if errors:
        raise RuntimeError(f"{engine}: {errors[0]}")
    wall = max(r[2] for r in results) - min(r[1] for r in results)
    return wall, sum(r[3] for r in results)


def run_writer(engine, arrays, n_tracks, chrom_sizes, bin_size, n_procs, out_dir):
    """The same arrays through ``BigWigWriter(engine=...)``: ``(wall_s, cpu_s)`` of this
    process and its writer processes (children's CPU from ``RUSAGE_CHILDREN``)."""
    from regtracks.tracks.bigwig import BigWigWriter

    paths = [Path(out_dir) / f"track{i}.bw" for i in range(n_tracks)]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0, c0 = time.monotonic(), _cpu()
    with BigWigWriter(paths, chrom_sizes, bin_size=bin_size, n_procs=n_procs,
                      engine=engine) as w:  # fmt: skip
        step = 1 << 14  # blocks of the size a scan hands over
        for chrom, a in arrays.items():
            for j in range(0, a.shape[1], step):
                w.add(chrom, j * bin_size, a[:, j : j + step])
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    children = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    return time.monotonic() - t0, _cpu() - c0 + children


# ---------------------------------------------------------------------------------------------
# checks (not timed)
def check_files(engine, out_dir, chrom_sizes, arrays, bin_size) -> dict:
    """Zoom levels, values, gaps and headers of three tracks, in every reader at hand."""
    import pybigtools
    import pyBigWig

    from regtracks.tracks.bigwig import zoom_levels

    n_tracks = next(iter(arrays.values())).shape[0]
    sizes = dict(chrom_sizes)
    out = {"zoom_levels": None, "pyBigWig": True, "pybigtools": True, "gaps_absent": True,
           "header": True, "bbi": None, "bytes": 0, "problems": []}  # fmt: skip
    out["bytes"] = sum(os.path.getsize(Path(out_dir) / f"track{i}.bw") for i in range(n_tracks))

    def bad(key, what):
        out[key] = False
        out["problems"].append(what)

    bbi = importlib.util.find_spec("bbi") is not None and __import__("bbi")
    if bbi:
        out["bbi"] = True
    for i in sorted({0, n_tracks // 2, n_tracks - 1}):
        p = str(Path(out_dir) / f"track{i}.bw")
        z = zoom_levels(p)
        out["zoom_levels"] = z if out["zoom_levels"] is None else min(out["zoom_levels"], z)
        if z < 1:
            bad("zoom_levels_ok", f"track{i}: no zoom levels")
        bw = pyBigWig.open(p)
        rd = pybigtools.open(p)
        try:
            header = bw.chroms()
            if header != sizes:
                out["header"] = False
                out["problems"].append(f"track{i}: header {header} (written: {sizes})")
            h = bw.header()
            if not np.isfinite([h["sumData"], h["sumSquared"]]).all():
                bad("gaps_absent", f"track{i}: NaN in the header sums")
            covered = 0
            for chrom, a in arrays.items():
                size = sizes[chrom]
                row = a[i]
                want = np.repeat(row.astype(np.float64), bin_size)[:size]
                want[~np.isfinite(want)] = np.nan
                covered += int(np.isfinite(want).sum())
                got = bw.values(chrom, 0, size, numpy=True).astype(np.float64)
                if not np.array_equal(got, want, equal_nan=True):
                    bad("pyBigWig", f"track{i}: pyBigWig reads other values")
                got = rd.values(chrom, 0, size, fillna=None)
                if not np.array_equal(got, want, equal_nan=True):
                    bad("pybigtools", f"track{i}: pybigtools reads other values")
                if bbi:
                    got = bbi.fetch(p, chrom, 0, size, missing=np.nan)
                    if not np.array_equal(got, want, equal_nan=True):
                        out["bbi"] = False
                        out["problems"].append(f"track{i}: pybbi reads other values")
                nan = np.flatnonzero(~np.isfinite(row))
                g = nan[0]  # the gap of every track: no interval in it
                gend = g + 1
                while gend < len(row) and not np.isfinite(row[gend]):
                    gend += 1
                if bw.intervals(chrom, int(g * bin_size), int(gend * bin_size)) is not None:
                    bad("gaps_absent", f"track{i}: an interval in the NaN gap")
                for *_, v in bw.intervals(chrom, 0, min(size, 2_000_000)) or ():
                    if not np.isfinite(v):
                        bad("gaps_absent", f"track{i}: a non-finite value written")
                        break
            for chrom in sizes:
                if chrom not in arrays and chrom in header and bw.intervals(chrom) is not None:
                    bad("gaps_absent", f"track{i}: data in {chrom}")
            if h["nBasesCovered"] != covered:
                bad("gaps_absent", f"track{i}: {h['nBasesCovered']} bases covered, not {covered}")
        finally:
            bw.close()
            rd.close()
    return out


# ---------------------------------------------------------------------------------------------
def available(engine: str) -> bool:
    mod = {"pybigwig": "pyBigWig", "pybigtools": "pybigtools", "figwig": "figwig",
           "native": "numpy"}[engine]  # fmt: skip
    return importlib.util.find_spec(mod) is not None


def bench_case(label, chrom_sizes, arrays, bin_size, engines, procs, repeats, work, writer):
    n_tracks = next(iter(arrays.values())).shape[0]
    npy = []
    for chrom, a in arrays.items():
        p = work / f"{label}-{chrom}.npy"
        np.save(p, a)
        npy.append((chrom, str(p)))
    rows = []
    modes = [("floor", e) for e in engines] + ([("writer", e) for e in writer] if writer else [])
    for n_procs in procs:
        if n_procs > n_tracks:
            continue
        times = {m: [] for m in modes}
        for rep in range(repeats):
            for mode, engine in modes:
                out = work / f"{label}-{mode}-{engine}-p{n_procs}"
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                if mode == "floor":
                    t = run_floor(engine, npy, n_tracks, chrom_sizes, bin_size, n_procs, out)
                else:
                    t = run_writer(engine, arrays, n_tracks, chrom_sizes, bin_size, n_procs, out)
                times[(mode, engine)].append(t)
                print(f"  {label} {mode:6s} {engine:10s} procs={n_procs} rep {rep + 1}: "
                      f"wall {t[0]:7.2f} s  cpu {t[1]:7.2f} s", flush=True)  # fmt: skip
        for mode, engine in modes:
            out = work / f"{label}-{mode}-{engine}-p{n_procs}"
            checks = check_files(engine, out, chrom_sizes, arrays, bin_size)
            ts = times[(mode, engine)]
            rows.append({
                "case": label, "mode": mode, "engine": engine, "n_procs": n_procs,
                "n_tracks": n_tracks, "bin_size": bin_size,
                "bp_per_track": sum(s for c, s in chrom_sizes if c in arrays),
                "wall_s": statistics.median(t[0] for t in ts),
                "cpu_s": statistics.median(t[1] for t in ts),
                "walls": [round(t[0], 3) for t in ts], "cpus": [round(t[1], 3) for t in ts],
                **checks,
            })  # fmt: skip
            shutil.rmtree(out, ignore_errors=True)
    return rows


def table(rows) -> str:
    lines = [
        "| case | engine | procs | wall s | CPU s | MB | zooms | pyBigWig | pybigtools | pybbi "
        "| gaps absent | header |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    yes = {True: "yes", False: "**no**", None: "-"}
    for r in rows:
        eng = r["engine"] if r["mode"] == "floor" else f"BigWigWriter({r['engine']})"
        case = f"{r['n_tracks']} x {round(r['bp_per_track'] / 1e6, 2):g} Mbp @ {r['bin_size']} bp"
        lines.append(
            f"| {case} | {eng} | {r['n_procs']} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} "
            f"| {r['bytes'] / 2**20:.1f} | {r['zoom_levels']} | {yes[r['pyBigWig']]} "
            f"| {yes[r['pybigtools']]} | {yes[r['bbi']]} | {yes[r['gaps_absent']]} "
            f"| {'all' if r['header'] else 'with data only'} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--writer", default="", help="also time BigWigWriter with these engines")
    ap.add_argument("--tracks", type=int, default=919)
    ap.add_argument("--mbp", type=float, default=5.0, help="chromosome length, tracks case")
    ap.add_argument("--base-mbp", type=float, default=50.0, help="length of the 1 bp track")
    ap.add_argument("--bin-size", type=int, default=128)
    ap.add_argument("--procs", default="1,2", help="process counts of the tracks case")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cases", default="tracks,base")
    ap.add_argument("--quick", action="store_true", help="92 tracks x 2 Mbp; 1 x 5 Mbp")
    ap.add_argument("--json", type=Path, help="write the rows here")
    ap.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    args = ap.parse_args(argv)
    if args.quick:
        args.tracks, args.mbp, args.base_mbp = 92, 2.0, 5.0
    engines = [e for e in args.engines.split(",") if e]
    missing = [e for e in engines if not available(e)]
    for e in missing:
        print(f"{e}: not installed; skipped", flush=True)
    engines = [e for e in engines if e not in missing]
    writer = [e for e in args.writer.split(",") if e]
    procs = [int(p) for p in args.procs.split(",")]
    work = Path(tempfile.mkdtemp(prefix="regtracks-engines-", dir=args.work))
    versions = {}
    for mod in ("pyBigWig", "pybigtools", "figwig", "numba", "deflate"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions[mod] = version(mod)
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {versions}", flush=True)
    rows = []
    try:
        cases = args.cases.split(",")
        if "tracks" in cases:
            cs, arrays = make_case(args.tracks, args.mbp, args.bin_size)
            rows += bench_case("tracks", cs, arrays, args.bin_size, engines, procs,
                               args.repeats, work, writer)  # fmt: skip
            del arrays
        if "base" in cases:
            cs, arrays = make_case(1, args.base_mbp, 1, seed=1)
            rows += bench_case("base", cs, arrays, 1, engines, [1], args.repeats, work, writer)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps({"versions": versions, "cpus": os.cpu_count(),
                                         "rows": rows}, indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
