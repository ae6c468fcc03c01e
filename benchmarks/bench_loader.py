"""Loader throughput: samples/s of regtracks' training loader vs a plain numpy one (and Selene).

Builds a synthetic genome (regtracks simulate, 4 markers by default), prepares the sequence task
(1000 bp inputs around 200 bp bins) and times, per sample, what a training step needs on the
CPU: the input (one-hot ``(4, 1000)`` float32) and the ``(M,)`` labels, with the training
augmentation (reverse complement coin, a jitter of a quarter bin).

* ``regtracks``: :func:`regtracks.training.loaders.make_dataset` / ``make_loader`` (the training
  split, its :class:`EpochSampler`) and :func:`regtracks.data.datasets.to_device`, as ``train``
  runs them;
* ``numpy``: the same sampling written plainly: the genome's codes decoded into one numpy array
  before the workers fork, a per-item ``__getitem__`` (slice, a per-worker generator for the coin
  and the jitter, complement by table, one-hot by ``eye`` indexing, labels from the same CSR
  arrays) and torch's default collate;
* ``numpy-batched``: the same, a whole batch per call (one gather, ``eye`` indexing);
* ``selene`` (where ``selene_sdk`` 0.6.0 imports): what Selene's ``IntervalsSampler._retrieve``
  does per sample, on the same bins: ``GenomicFeatures.get_feature_data`` over the bin (peaks
  from a tabix-indexed BED written from the peak files, threshold = the min overlap) and
  ``Genome.get_encoding_from_coords`` over the input on a random strand, in a Dataset with the
  same DataLoader. Its labels are first compared with regtracks' for every sample, cell for
  cell (``--check-labels``, on by default with selene).

Each path runs ``--repeats`` times, alternating (the machine may be shared), over
``--samples`` samples after a warm-up batch; printed: the median samples/s (wall) and CPU
microseconds a sample (main process and workers together, from ``/proc``: less sensitive to
other load on a shared machine) and those of the main process alone (what a CPU training step
waits for), and the ratios.

    OMP_NUM_THREADS=1 python benchmarks/bench_loader.py                 # 4 markers
    OMP_NUM_THREADS=1 python benchmarks/bench_loader.py --markers 919
    OMP_NUM_THREADS=1 python benchmarks/bench_loader.py --paths regtracks,selene   # selene_sdk
    OMP_NUM_THREADS=1 python benchmarks/bench_loader.py --task dense --markers 919 --batch 8 \
        --samples 200        # dense task: (8, 919, 25000) uint8 labels a batch
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from regtracks.config import DEFAULT_DATA, DEFAULT_SIM
from regtracks.data.prepare import prepare
from regtracks.data.simulate import simulate
from regtracks.runtime import DistEnv

_COMP = np.array([0, 4, 3, 2, 1], dtype=np.uint8)
_EYE = np.eye(5, dtype=np.float32)[:, 1:]


class NumpySequence(Dataset):
    """The sequence task's training sampling in plain numpy (the baseline)."""

    def __init__(self, td, split: str, shift: int, seed: int = 0):
        g, s = td.genome, td.samples
        self.ids = s.indices(split)
        chroms = s.chroms
        off = np.cumsum([0] + [g.sizes[c] for c in chroms])
        self.codes = np.concatenate([g.fetch(c, 0, g.sizes[c]) for c in chroms])
        start = s.start[self.ids]
        size = np.array([g.sizes[c] for c in chroms])[s.chrom_idx[self.ids]]
        self.lo = -np.minimum(shift, start)
        self.hi = np.minimum(shift, np.maximum(size - start - s.length, 0))
        self.base = off[s.chrom_idx[self.ids]] + start
        self.L, self.m = s.length, td.n_markers
        self.indptr, self.markers = s.label_indptr, s.label_markers
        self.seed, self.rng = seed, None

    def __len__(self) -> int:
        return self.ids.size

    def __getitem__(self, i: int):
        if self.rng is None:
            info = torch.utils.data.get_worker_info()
            self.rng = np.random.default_rng((self.seed, 0 if info is None else info.id))
        d = int(self.rng.integers(self.lo[i], self.hi[i] + 1))
        s = int(self.base[i]) + d
        c = self.codes[s : s + self.L]
        if self.rng.random() < 0.5:
            c = _COMP[c[::-1]]
        x = np.ascontiguousarray(_EYE[c].T)
        sid = int(self.ids[i])
        y = np.zeros(self.m, dtype=np.uint8)
        y[self.markers[self.indptr[sid] : self.indptr[sid + 1]]] = 1
        return torch.from_numpy(x), torch.from_numpy(y)


class NumpyBatched(NumpySequence):
    """The same, a whole batch per call: one gather, the coins of a batch at once, one-hot by
    ``eye`` indexing (a DataLoader with a ``BatchSampler`` as its sampler and no batching)."""

    def __getitem__(self, idx):
        idx = np.asarray(idx)
        if self.rng is None:
            info = torch.utils.data.get_worker_info()
            self.rng = np.random.default_rng((self.seed, 0 if info is None else info.id))
        d = self.rng.integers(self.lo[idx], self.hi[idx] + 1)
        pos = (self.base[idx] + d)[:, None] + np.arange(self.L)
        flip = self.rng.random(idx.size) < 0.5
        pos[flip] = pos[flip, ::-1]
        c = self.codes[pos]
        c[flip] = _COMP[c[flip]]
        x = np.ascontiguousarray(_EYE[c].transpose(0, 2, 1))
        sid = self.ids[idx]
        y = np.zeros((idx.size, self.m), dtype=np.uint8)
        cnt = self.indptr[sid + 1] - self.indptr[sid]
        rows = np.repeat(np.arange(idx.size), cnt)
        take = np.repeat(self.indptr[sid], cnt) + (
            np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        )
        y[rows, self.markers[take]] = 1
        return torch.from_numpy(x), torch.from_numpy(y)


class SeleneSequence(Dataset):
    """Selene 0.6.0's per-sample retrieval (``IntervalsSampler._retrieve``) on the same bins."""

    def __init__(self, td, split: str, fasta: Path, bed: Path, features: list[str]):
        from selene_sdk.sequences import Genome as SeleneGenome
        from selene_sdk.targets import GenomicFeatures

        self.genome = SeleneGenome(str(fasta))
        self.target = GenomicFeatures(
            str(bed), features, feature_thresholds=float(td.cfg.min_overlap)
        )
        s = td.samples
        self.ids = s.indices(split)
        self.s = s
        self.flank = (td.cfg.seq_len - td.cfg.bin_size) // 2
        self.bin = td.cfg.bin_size

    def __len__(self) -> int:
        return self.ids.size

    def labels(self, sid: int) -> np.ndarray:
        chrom, start, _ = self.s.region(sid)
        b = start + self.flank
        return self.target.get_feature_data(chrom, b, b + self.bin)

    def __getitem__(self, i: int):
        import random

        sid = int(self.ids[i])
        chrom, start, end = self.s.region(sid)
        y = self.labels(sid)
        strand = "+-"[random.randint(0, 1)]
        x = self.genome.get_encoding_from_coords(chrom, start, end, strand)
        return torch.from_numpy(np.ascontiguousarray(x.T)), torch.from_numpy(y)


def selene_bed(td, out: Path) -> tuple[Path, list[str]]:
    """All markers' peaks as Selene reads them: ``chrom start end marker``, bgzip + tabix."""
    import gzip

    import pysam

    rows = []
    for m in td.markers:
        name, p = m.name, td.markers.peak_path(m)
        opener = gzip.open if p.suffix == ".gz" else open
        with opener(p, "rt") as fh:
            for line in fh:
                f = line.split("\t")
                if len(f) >= 3 and not line.startswith(("#", "track", "browser")):
                    rows.append((f[0], int(f[1]), int(f[2]), name))
    rows.sort()
    plain = out / "selene_targets.bed"
    plain.write_text("".join(f"{c}\t{s}\t{e}\t{m}\n" for c, s, e, m in rows))
    gz = pysam.tabix_index(str(plain), preset="bed", force=True)
    return Path(gz), list(td.markers.names)


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of processes so far (from /proc; 0 where unreadable)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(f[11]) + int(f[12])) / tick
    return total


def time_loader(loader, n_samples: int, step) -> tuple[float, float, float]:
    """Samples/s (wall), CPU microseconds per sample (main process + workers) and of the main
    process alone (what a CPU training step waits for) over ``n_samples`` after the first batch
    (start-up excluded)."""
    it = iter(loader)
    step(next(it))
    pids = [w.pid for w in getattr(it, "_workers", [])]
    n, t0, m0 = 0, time.perf_counter(), time.process_time()
    c0 = m0 + _cpu_seconds(pids)
    for batch in it:
        n += step(batch)
        if n >= n_samples:
            break
    wall, main = time.perf_counter() - t0, time.process_time()
    cpu = main + _cpu_seconds(pids) - c0
    del it
    return n / wall, cpu / n * 1e6, (main - m0) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--markers", type=int, default=4)
    ap.add_argument("--chroms", type=int, default=2)
    ap.add_argument("--chrom-len", type=int, default=10_000_000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--samples", type=int, default=15_000, help="samples timed per run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--paths",
        default="regtracks,numpy,numpy-batched",
        help="comma list of regtracks, numpy, numpy-batched, selene",
    )
    ap.add_argument("--selene-samples", type=int, default=3_000, help="samples timed (selene)")
    ap.add_argument(
        "--check-labels",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with selene: compare its labels with regtracks' for every sample first",
    )
    ap.add_argument("--data", type=Path, help="reuse a simulated folder")
    ap.add_argument(
        "--task",
        default="sequence",
        choices=["sequence", "dense"],
        help="dense: regtracks' loader alone, uint8 (N, M, L) labels as the loss takes them",
    )
    ap.add_argument("--window-len", type=int, default=25_000, help="dense task window")
    args = ap.parse_args()
    if args.task == "dense" and args.paths == ap.get_default("paths"):
        args.paths = "regtracks"

    from regtracks.data.datasets import to_device
    from regtracks.training import loaders
    from regtracks.training.loaders import EpochSampler, make_dataset, make_loader

    tmp = None
    if args.data is None:
        tmp = tempfile.TemporaryDirectory()
        args.data = Path(tmp.name)
    if not (args.data / "genome.fa").exists():
        cfg = replace(
            DEFAULT_SIM, n_chroms=args.chroms, chrom_len=args.chrom_len, n_markers=args.markers
        )
        simulate(args.data, cfg)
    td = prepare(
        args.data / "genome.fa",
        args.data / "markers.tsv",
        task=args.task,
        cfg=replace(DEFAULT_DATA, split="random", window_len=args.window_len),
    )
    # train's default shift: a quarter bin (sequence task), half a window (dense task)
    shift = td.cfg.bin_size // 4 if args.task == "sequence" else td.samples.length // 2
    dev = torch.device("cpu")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"
    )
    print(
        f"{args.task} task: {len(td.samples)} samples ({td.samples.length} bp), {td.n_markers} "
        f"markers, batch {args.batch}, {args.workers} workers, rc + shift {shift} bp"
    )

    def regtracks_rate() -> tuple[float, float, float]:
        ds, collate = make_dataset(td, "train", rc=True, seed=0, shift=shift)
        sampler = EpochSampler(len(ds), batch_size=args.batch, seed=0, dist=DistEnv())
        kw = {"batch_size": args.batch, "workers": args.workers, "device": dev}
        try:  # the training loader: labels in the dtype the loss takes (uint8 since issue 12)
            dl = make_loader(ds, sampler, collate, label_dtype=torch.uint8, **kw)
        except TypeError:  # before issue 12: no label_dtype
            dl = make_loader(ds, sampler, collate, **kw)

        def step(batch):
            x, y = to_device(batch, td.n_markers, dev)
            float(y.sum(dtype=torch.float32))  # read once, as the loss does
            return x.shape[0]

        try:
            return time_loader(dl, args.samples, step)
        finally:
            close = getattr(loaders, "close_loader", None)  # persistent workers (new code)
            if close is not None:
                close(dl)

    def numpy_rate() -> tuple[float, float, float]:
        ds = NumpySequence(td, "train", shift)
        dl = DataLoader(
            ds,
            batch_size=args.batch,
            shuffle=True,
            num_workers=args.workers,
            generator=torch.Generator().manual_seed(0),
            prefetch_factor=4 if args.workers else None,
        )
        return time_loader(dl, args.samples, lambda b: b[0].shape[0])

    def numpy_batched_rate() -> tuple[float, float, float]:
        from torch.utils.data import BatchSampler, RandomSampler

        ds = NumpyBatched(td, "train", shift)
        g = torch.Generator().manual_seed(0)
        dl = DataLoader(
            ds,
            batch_size=None,
            sampler=BatchSampler(RandomSampler(ds, generator=g), args.batch, drop_last=True),
            num_workers=args.workers,
            generator=torch.Generator().manual_seed(0),
            prefetch_factor=4 if args.workers else None,
        )
        return time_loader(dl, args.samples, lambda b: b[0].shape[0])

    selene = None
    if "selene" in args.paths.split(","):
        bed, features = selene_bed(td, Path(tempfile.mkdtemp()))
        # Selene opens its files on first use: a fresh object for the timed workers, as a
        # handle used before the fork would be shared by them
        selene = SeleneSequence(td, "train", args.data / "genome.fa", bed, features)
        if args.check_labels:
            check = SeleneSequence(td, "train", args.data / "genome.fa", bed, features)
            t = time.perf_counter()
            n, bad = 0, 0
            for sid in range(len(td.samples)):
                want = td.samples.labels(sid, td.n_markers)
                bad += int((check.labels(sid).astype(np.uint8) != want).any())
                n += 1
            del check
            print(
                f"labels vs Selene: {n - bad:,} of {n:,} samples identical in every cell "
                f"({time.perf_counter() - t:.1f} s)"
            )

    def selene_rate() -> tuple[float, float, float]:
        dl = DataLoader(
            selene,
            batch_size=args.batch,
            shuffle=True,
            num_workers=args.workers,
            generator=torch.Generator().manual_seed(0),
            prefetch_factor=4 if args.workers else None,
        )
        return time_loader(dl, args.selene_samples, lambda b: b[0].shape[0])

    paths = {
        "regtracks": regtracks_rate,
        "numpy": numpy_rate,
        "numpy-batched": numpy_batched_rate,
        "selene": selene_rate,
    }
    names = [p for p in args.paths.split(",") if p]
    rates: dict[str, list[float]] = {p: [] for p in names}
    cpus: dict[str, list[float]] = {p: [] for p in names}
    mains: dict[str, list[float]] = {p: [] for p in names}
    for r in range(args.repeats):
        for p in names if r % 2 == 0 else names[::-1]:
            rate, cpu, main_cpu = paths[p]()
            rates[p].append(rate)
            cpus[p].append(cpu)
            mains[p].append(main_cpu)
            print(
                f"  run {r + 1} {p}: {rate:,.0f} samples/s, {cpu:.1f} CPU us/sample, "
                f"{main_cpu:.1f} in the main process",
                flush=True,
            )
    med = {p: statistics.median(v) for p, v in rates.items()}
    cpu = {p: statistics.median(v) for p, v in cpus.items()}
    main_med = {p: statistics.median(v) for p, v in mains.items()}
    for p in names:
        print(
            f"{p}: {med[p]:,.0f} samples/s, {cpu[p]:.1f} CPU us/sample (main + workers), "
            f"{main_med[p]:.1f} in the main process (medians of {args.repeats})"
        )
    for base in ("numpy", "numpy-batched", "selene"):
        if "regtracks" in med and base in med:
            print(
                f"regtracks / {base}: {med['regtracks'] / med[base]:.2f}x samples/s, "
                f"{cpu[base] / cpu['regtracks']:.2f}x less CPU a sample"
            )


if __name__ == "__main__":
    main()
