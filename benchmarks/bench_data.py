"""Dense-task data throughput: windows/s with 919 markers at paper-like peak density.

Builds a synthetic genome (regtracks simulate, 919 markers by default) and times, per window,
what a training step needs: the sequence fetch, the one-hot input and the (M, L) labels.

* numpy path: DenseDataset(dense_labels=True) -> (M, L) uint8 labels built in the worker;
* torch path: DenseDataset -> interval rows -> to_device() builds one-hot + labels on --device.

    python benchmarks/bench_data.py                      # CPU, 2 x 10 Mbp, 919 markers
    python benchmarks/bench_data.py --device cuda --workers 8 --batch 16
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from regtracks.config import DEFAULT_DATA, DEFAULT_SIM
from regtracks.data.datasets import DenseDataset, collate_dense, to_device
from regtracks.data.prepare import prepare
from regtracks.data.simulate import simulate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--markers", type=int, default=919)
    ap.add_argument("--chroms", type=int, default=2)
    ap.add_argument("--chrom-len", type=int, default=10_000_000)
    ap.add_argument("--window-len", type=int, default=25_000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--windows", type=int, default=200, help="windows timed per path")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--data", type=Path, help="reuse a simulated folder")
    args = ap.parse_args()

    tmp = None
    if args.data is None:
        tmp = tempfile.TemporaryDirectory()
        args.data = Path(tmp.name)
        t = time.perf_counter()
        cfg = replace(
            DEFAULT_SIM, n_chroms=args.chroms, chrom_len=args.chrom_len, n_markers=args.markers
        )
        simulate(args.data, cfg)
        dt = time.perf_counter() - t
        print(
            f"simulate: {args.chroms * args.chrom_len / 1e6:.0f} Mbp x {args.markers} markers in "
            f"{dt:.1f} s ({args.chroms * args.chrom_len / 1e6 / dt:.1f} Mbp/s)"
        )
    t = time.perf_counter()
    td = prepare(
        args.data / "genome.fa",
        args.data / "markers.tsv",
        cfg=replace(DEFAULT_DATA, window_len=args.window_len, split="random"),
    )
    print(
        f"prepare (read {td.n_markers} peak files, tile windows): {time.perf_counter() - t:.1f} s; "
        f"{len(td.samples)} windows"
    )
    dev = torch.device(args.device)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, device {dev}"
    )

    def run(dense_labels: bool) -> float:
        ds = DenseDataset(td.genome, td.index, td.samples, None, rc=True, dense_labels=dense_labels)
        dl = DataLoader(
            ds,
            batch_size=args.batch,
            shuffle=True,
            num_workers=args.workers,
            collate_fn=collate_dense,
            pin_memory=dev.type == "cuda",
            persistent_workers=False,
        )
        n = 0
        it = iter(dl)
        batch = next(it)  # start-up excluded
        x, y = to_device(batch, td.n_markers, dev)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for batch in it:
            x, y = to_device(batch, td.n_markers, dev)
            n += len(batch)
            if n >= args.windows:
                break
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return n / (time.perf_counter() - t0)

    for name, dense in (("numpy", True), ("torch", False)):
        rate = run(dense)
        print(
            f"{name} path: {rate:,.1f} windows/s ({rate * args.window_len / 1e6:.2f} Mbp/s, "
            f"{args.markers} markers, batch {args.batch}, {args.workers} workers)"
        )


if __name__ == "__main__":
    main()
