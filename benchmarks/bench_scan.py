"""Whole-chromosome prediction: scan speed, write time, memory, and the ratio to the write floor.

For a synthetic chromosome of ``--chrom-len`` bp (random sequence with assembly gaps) and a
dilated model with ``--markers`` outputs (random weights: speed does not depend on them), this
script measures

1. **scan**: the model over the chromosome, probabilities binned at ``--bin-size`` on the device,
   written to a memory-mapped ``.npy`` (no bigWig): scan bp/s;
2. **write floor**: those same arrays written as bigWigs by ``--writers`` processes with no model
   (:func:`pybigwig_floor.write_floor`);
3. **predict**: the real ``regtracks predict`` (scan overlapped with parallel bigWig writers), in
   a fresh process, with its peak RSS (parent and writers); at two chromosome lengths
   (``--chrom-len`` and half of it) to show that memory does not grow with the chromosome;

and prints the ratio predict / floor (goal <= 1.25) and the extrapolated time for chr1
(249 Mbp) x 919 markers.

    python benchmarks/bench_scan.py                                   # 50 Mbp, 919 markers
    python benchmarks/bench_scan.py --chrom-len 2000000 --device cpu  # what a 2-core CPU can do
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_genome(path: Path, length: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    seq = np.frombuffer(b"ACGT", dtype=np.uint8)[rng.integers(0, 4, size=length)].copy()
    for _ in range(max(1, length // 10_000_000)):  # a 50 kb gap per 10 Mbp
        s = int(rng.integers(0, max(1, length - 50_000)))
        seq[s : s + 50_000] = ord("N")
    from regtracks.data.genome import write_fasta_record

    with open(path, "wb") as fh:
        write_fasta_record(fh, "chr1", seq)


def make_checkpoint(path: Path, genome_path: Path, n_markers: int, hparams: dict) -> None:
    import torch

    from regtracks.checkpoint import base_checkpoint, save_checkpoint
    from regtracks.config import DEFAULT_DATA
    from regtracks.data.genome import Genome
    from regtracks.data.markers import Marker, MarkerSet
    from regtracks.models import get_model

    g = Genome(genome_path)
    cats = ["TFBS"] * (n_markers - 2 * (n_markers // 4)) + ["Histone", "DNase"] * (n_markers // 4)
    ms = MarkerSet([Marker(f"m{i}", c, "none.bed") for i, c in enumerate(sorted(cats))])
    torch.manual_seed(0)
    model = get_model("dilated", n_markers=n_markers, **hparams)
    ck = base_checkpoint(
        task="dense",
        model_name="dilated",
        hparams=model.hparams,
        model=model,
        markers=ms,
        genome=g,
        data_cfg=DEFAULT_DATA,
        exclude=None,
        split={"mode": "chrom"},
        train={},
    )
    ck["state_dict"] = model.state_dict()
    ck["metrics"] = {}
    save_checkpoint(path, ck)


def one_predict(args) -> dict:
    """Run predict once in this (fresh) process; report times and peak RSS."""
    from regtracks.inference.predict import predict

    t = time.perf_counter()
    res = predict(
        args.ckpt,
        args.hub,
        chroms=["chr1"],
        bin_size=args.bin_size,
        batch_size=args.batch,
        device=args.device,
        n_procs=args.writers,
        build=False,
        precision=args.precision,
    )
    wall = time.perf_counter() - t
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "wall": wall,
        "bases": res.bases,
        "parent_rss_mib": self_rss,
        "largest_writer_rss_mib": child_rss,
    }


def scan_only(ckpt: Path, genome_path: Path, out_npy: Path, args) -> tuple[float, tuple]:
    import torch

    from regtracks.checkpoint import load_checkpoint
    from regtracks.data.genome import Genome
    from regtracks.inference.scan import plan_scan, scan_chromosome
    from regtracks.runtime import autocast_dtype, resolve_device

    ck = load_checkpoint(ckpt)
    dev = resolve_device(args.device)
    model = ck.build_model(device=dev)
    g = Genome(genome_path)
    size = g.sizes["chr1"]
    plan = plan_scan(model.receptive_field, model.stride, bin_size=args.bin_size)
    nb = -(-size // args.bin_size)
    arr = np.lib.format.open_memmap(
        out_npy, mode="w+", dtype=np.float32, shape=(len(ck.raw["markers"]), nb)
    )
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for start, values in scan_chromosome(
        model,
        g,
        "chr1",
        plan=plan,
        n_markers=arr.shape[0],
        batch_size=args.batch,
        device=dev,
        amp=autocast_dtype(args.precision, dev),
    ):
        b = start // args.bin_size
        arr[:, b : b + values.shape[1]] = values
    arr.flush()
    return time.perf_counter() - t, (plan.window, plan.margin, plan.core)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--chrom-len", type=int, default=50_000_000)
    ap.add_argument("--markers", type=int, default=919)
    ap.add_argument("--bin-size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--writers", type=int, default=None, help="writer processes (default: cpus-1)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--small", action="store_true", help="tiny model (f1=f2=f3=16): I/O-bound runs")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--ckpt", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--hub", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one_predict(args)))
        return

    from pybigwig_floor import write_floor

    from regtracks.config import DEFAULT_BIGWIG

    writers = DEFAULT_BIGWIG.n_procs if args.writers is None else args.writers
    hp = {"f1": 16, "f2": 16, "f3": 16, "d_hidden": 16} if args.small else {}
    tmp = tempfile.TemporaryDirectory(dir=args.workdir)
    work = Path(tmp.name)
    import torch

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"CUDA {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}"
    )
    print(
        f"chromosome {args.chrom_len / 1e6:g} Mbp, {args.markers} markers, bin {args.bin_size} bp, "
        f"{writers} writer processes, model dilated {hp or '(paper size)'}"
    )
    results = {}
    for length in (args.chrom_len, args.chrom_len // 2):
        d = work / f"L{length}"
        d.mkdir()
        make_genome(d / "g.fa", length)
        make_checkpoint(d / "model.pt", d / "g.fa", args.markers, hp)
        cmd = [
            sys.executable,
            __file__,
            "--one",
            "--ckpt",
            str(d / "model.pt"),
            "--hub",
            str(d / "hub"),
            "--bin-size",
            str(args.bin_size),
            "--batch",
            str(args.batch),
            "--device",
            args.device,
            "--precision",
            args.precision,
            "--writers",
            str(writers),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results[length] = json.loads(out.stdout.strip().splitlines()[-1])
        if length == args.chrom_len:
            scan_s, plan = scan_only(d / "model.pt", d / "g.fa", d / "scan.npy", args)
            floor = write_floor(
                {"chr1": d / "scan.npy"},
                [("chr1", length)],
                bin_size=args.bin_size,
                n_procs=writers,
                out_dir=d / "floor",
            )
            results["scan_s"], results["floor"], results["plan"] = scan_s, floor, plan
    L = args.chrom_len
    full = results[L]
    floor = results["floor"]
    window, margin, core = results["plan"]
    print(f"scan window {window:,} bp (margin {margin:,}, core {core:,})")
    print(f"scan only:   {results['scan_s']:8.1f} s  ({L / results['scan_s'] / 1e6:.2f} Mbp/s)")
    mb = floor.n_bytes / 1e6
    print(
        f"write floor: {floor.seconds:8.1f} s  ({mb:,.0f} MB of bigWig, {floor.n_procs} processes)"
    )
    rate = L / full["wall"] / 1e6
    print(f"predict:     {full['wall']:8.1f} s  (scan + write overlapped; {rate:.2f} Mbp/s)")
    print(f"ratio predict / floor: {full['wall'] / floor.seconds:.2f}  (goal <= 1.25)")
    for length in (L, L // 2):
        r = results[length]
        print(
            f"peak RSS at {length / 1e6:g} Mbp: parent {r['parent_rss_mib']:,.0f} MiB, "
            f"largest writer {r['largest_writer_rss_mib']:,.0f} MiB"
        )
    per_mbp = full["wall"] / (L / 1e6)
    print(
        f"extrapolated chr1 (249 Mbp) x {args.markers} markers: {per_mbp * 249 / 60:.1f} min "
        "(goal on one GPU box: <= 2 min)"
    )


if __name__ == "__main__":
    main()
