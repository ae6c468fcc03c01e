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
4. **forward alone**: the model on the same number of windows in the same batches (one-hot
   inputs built beforehand, nothing fetched, binned or copied back), in a fresh process with its
   peak RSS: ``model(x)`` over whole windows, and ``model.forward_slice(x, margin, margin + core)``
   (the kept cores only, what the scan runs, in the scan's passes on the CPU) where the model
   has it;

and prints the ratio predict / floor (goal <= 1.25), the ratio scan / forward alone (goal
<= 1.15), and the extrapolated time for chr1 (249 Mbp) x 919 markers. The scan and the forwards
run in fresh processes, so each peak RSS is its own.

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
        bigwig_engine=args.engine,
    )
    wall = time.perf_counter() - t
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "wall": wall,
        "bases": res.bases,
        "parent_rss_mib": me.ru_maxrss / 1024,
        "largest_writer_rss_mib": kids.ru_maxrss / 1024,
        "cpu_s": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,  # writers included
    }


def _usage() -> dict:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"user_s": ru.ru_utime, "sys_s": ru.ru_stime, "rss_mib": ru.ru_maxrss / 1024}


def _load(args):
    from regtracks.checkpoint import load_checkpoint
    from regtracks.data.genome import Genome
    from regtracks.inference.scan import plan_scan
    from regtracks.runtime import autocast_dtype, resolve_device

    ck = load_checkpoint(args.ckpt)
    dev = resolve_device(args.device)
    model = ck.build_model(device=dev)
    g = Genome(args.genome)
    plan = plan_scan(model.receptive_field, model.stride, bin_size=args.bin_size)
    return ck, dev, model, g, plan, autocast_dtype(args.precision, dev)


def scan_only(args) -> dict:
    """The scan into a memory-mapped ``.npy``, in this (fresh) process."""
    import torch

    from regtracks.inference.scan import scan_chromosome

    ck, dev, model, g, plan, amp = _load(args)
    size = g.sizes["chr1"]
    nb = -(-size // args.bin_size)
    arr = np.lib.format.open_memmap(
        args.npy, mode="w+", dtype=np.float32, shape=(len(ck.raw["markers"]), nb)
    )
    if dev.type == "cuda":
        torch.cuda.synchronize()
    u0 = _usage()
    t = time.perf_counter()
    for start, values in scan_chromosome(
        model,
        g,
        "chr1",
        plan=plan,
        n_markers=arr.shape[0],
        batch_size=args.batch,
        device=dev,
        amp=amp,
    ):
        b = start // args.bin_size
        arr[:, b : b + values.shape[1]] = values
    arr.flush()
    wall = time.perf_counter() - t
    u1 = _usage()
    return {
        "wall": wall,
        "user_s": u1["user_s"] - u0["user_s"],
        "sys_s": u1["sys_s"] - u0["sys_s"],
        "rss_mib": u1["rss_mib"],
        "plan": (plan.window, plan.margin, plan.core),
    }


def forward_only(args) -> dict:
    """The model alone on the windows the scan runs, in the same batches (fresh process).

    The windows whose core lies wholly in an assembly gap are left out, as the scan leaves
    them out; the inputs are one batch of one-hot windows built beforehand (speed does not
    depend on the sequence), so nothing is fetched, binned or copied back.
    """
    import torch

    from regtracks.data.datasets import one_hot_torch
    from regtracks.inference.scan import _inside_gap, gap_mask

    ck, dev, model, g, plan, amp = _load(args)
    size = g.sizes["chr1"]
    gs, ge = gap_mask(g, "chr1")
    c0 = np.arange(0, size, plan.core, dtype=np.int64)
    live = ~_inside_gap(gs, ge, c0, np.minimum(c0 + plan.core, size))
    counts = [int(live[i : i + args.batch].sum()) for i in range(0, c0.size, args.batch)]
    codes = np.stack(
        [g.fetch("chr1", s - plan.margin, s - plan.margin + plan.window) for s in c0[: args.batch]]
    )
    x = one_hot_torch(torch.from_numpy(codes).to(dev))
    m0, m1 = plan.margin, plan.margin + plan.core
    n_out = len(ck.raw["markers"])
    passes = args.batch  # windows per forward pass
    if args.stage == "forward-slice":
        from regtracks.inference import scan

        fwd = lambda xb: model.forward_slice(xb, m0, m1)  # noqa: E731
        budget = getattr(scan, "_CPU_PASS_BYTES", None)  # the scan's own passes on the CPU
        if budget is not None and dev.type != "cuda":
            passes = max(1, min(args.batch, budget // (4 * n_out * plan.core)))
    else:
        fwd = model
    dtype = amp or torch.float32
    if dev.type == "cuda":
        torch.cuda.synchronize()
    u0 = _usage()
    t = time.perf_counter()
    with torch.inference_mode(), torch.autocast(dev.type, dtype=dtype, enabled=amp is not None):
        for n in counts:
            for a in range(0, n, passes):
                y = fwd(x[a : min(n, a + passes)])
                del y
    if dev.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - t
    u1 = _usage()
    return {
        "wall": wall,
        "user_s": u1["user_s"] - u0["user_s"],
        "sys_s": u1["sys_s"] - u0["sys_s"],
        "rss_mib": u1["rss_mib"],
        "windows": int(sum(counts)),
        "per_pass": passes,
    }


def _fresh(stage: str, d: Path, args, writers: int) -> dict:
    """Run one stage in a fresh process; return its JSON report."""
    cmd = [
        sys.executable,
        __file__,
        "--stage",
        stage,
        "--ckpt",
        str(d / "model.pt"),
        "--hub",
        str(d / "hub"),
        "--genome",
        str(d / "g.fa"),
        "--npy",
        str(d / "scan.npy"),
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
        "--engine",
        args.engine,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"stage {stage} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


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
    ap.add_argument(
        "--engine", default="native", help="bigWig engine of predict and the floor (native)"
    )
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # = --stage predict
    ap.add_argument(
        "--stage", choices=["predict", "scan", "forward", "forward-slice"], help=argparse.SUPPRESS
    )
    ap.add_argument("--ckpt", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--hub", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--genome", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--npy", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    stage = "predict" if args.one else args.stage
    if stage is not None:
        run = {"predict": one_predict, "scan": scan_only}.get(stage, forward_only)
        print(json.dumps(run(args)))
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
        f"CUDA {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(
        f"chromosome {args.chrom_len / 1e6:g} Mbp, {args.markers} markers, bin {args.bin_size} bp, "
        f"batch {args.batch}, {writers} writer processes, model dilated {hp or '(paper size)'}"
    )
    results = {}
    for length in (args.chrom_len, args.chrom_len // 2):
        d = work / f"L{length}"
        d.mkdir()
        make_genome(d / "g.fa", length)
        make_checkpoint(d / "model.pt", d / "g.fa", args.markers, hp)
        results[length] = _fresh("predict", d, args, writers)
        if length == args.chrom_len:
            results["scan"] = _fresh("scan", d, args, writers)
            results["forward"] = _fresh("forward", d, args, writers)
            from regtracks.models import get_model

            if hasattr(get_model("dilated", n_markers=2, **hp), "forward_slice"):
                results["forward-slice"] = _fresh("forward-slice", d, args, writers)
            floor = write_floor(
                {"chr1": d / "scan.npy"},
                [("chr1", length)],
                bin_size=args.bin_size,
                n_procs=writers,
                out_dir=d / "floor",
                engine=args.engine,
            )
            results["floor"] = floor
    L = args.chrom_len
    full = results[L]
    floor = results["floor"]
    scan = results["scan"]
    window, margin, core = scan["plan"]
    print(f"scan window {window:,} bp (margin {margin:,}, core {core:,})")

    def line(label, r):
        return (
            f"{label:<22}{r['wall']:8.1f} s  (user {r['user_s']:.1f} s, sys {r['sys_s']:.1f} s; "
            f"peak RSS {r['rss_mib']:,.0f} MiB)"
        )

    print(line("scan only:", scan) + f"  {L / scan['wall'] / 1e6:.2f} Mbp/s")
    fwd = results["forward"]

    def ratio(a, b):
        cpu = (a["user_s"] + a["sys_s"]) / (b["user_s"] + b["sys_s"])
        return f"{a['wall'] / b['wall']:.2f} wall, {cpu:.2f} CPU"

    print(
        line("forward alone, model:", fwd) + f"  {fwd['windows']} windows, {fwd['per_pass']} a pass"
    )
    print(f"ratio scan / model(x) alone: {ratio(scan, fwd)}  (goal <= 1.15)")
    if "forward-slice" in results:
        fs = results["forward-slice"]
        print(line("forward_slice alone:", fs) + f"  {fs['per_pass']} windows a pass")
        print(f"ratio scan / forward_slice alone: {ratio(scan, fs)}")
    mb = floor.n_bytes / 1e6
    print(
        f"write floor: {floor.seconds:8.1f} s  ({mb:,.0f} MB of bigWig, {floor.n_procs} processes)"
    )
    rate = L / full["wall"] / 1e6
    print(
        f"predict:     {full['wall']:8.1f} s  (scan + write overlapped; {rate:.2f} Mbp/s; "
        f"CPU {full['cpu_s']:.1f} s with the writers; engine {args.engine})"
    )
    print(f"ratio predict / floor: {full['wall'] / floor.seconds:.2f}  (goal <= 1.25)")
    for length in (L, L // 2):
        r = results[length]
        print(
            f"peak RSS of predict at {length / 1e6:g} Mbp: parent {r['parent_rss_mib']:,.0f} MiB, "
            f"largest writer {r['largest_writer_rss_mib']:,.0f} MiB (goal for the parent <= 1.2 GB)"
        )
    per_mbp = full["wall"] / (L / 1e6)
    print(
        f"extrapolated chr1 (249 Mbp) x {args.markers} markers: {per_mbp * 249 / 60:.1f} min "
        "(goal on one GPU box: <= 2 min)"
    )
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
