"""Training throughput of the dilated model with 919 markers: bp/s and how busy the device is.

Runs the real training loop (:func:`regtracks.training.train.train`: DataLoader workers, labels
built on the device, bf16 autocast on CUDA) on a synthetic genome with ``--markers`` markers and
reports

* training throughput in bp/s (from ``metrics.jsonl``, first interval excluded as warm-up);
* the fraction of wall time the loop waited for the data pipeline (``data_wait``);
* on CUDA, the GPU utilisation sampled every 50 ms (``torch.cuda.utilization``, which needs
  pynvml: ``pip install nvidia-ml-py``, or the ``gpu`` extra) during the timed steps, and the
  peak GPU memory; without pynvml the script stops at once with one line (it never reports
  another figure in its place);
* the time one epoch of a paper-size training set would take (75,000 windows of 25 kb).

    python benchmarks/bench_train.py --device cuda --batch 16 --workers 8 --steps 200
    python benchmarks/bench_train.py --device cuda --batch 16 --workers 8 --steps 60 --compile
    python benchmarks/bench_train.py --device cpu --batch 2 --steps 6        # CPU sandbox
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--markers", type=int, default=919)
    ap.add_argument("--chroms", type=int, default=4)
    ap.add_argument("--chrom-len", type=int, default=5_000_000)
    ap.add_argument("--window-len", type=int, default=25_000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--log-every", type=int, default=5)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--data", type=Path, help="reuse a simulated folder")
    args = ap.parse_args()

    import torch

    from regtracks.config import DEFAULT_DATA, DEFAULT_SIM, DEFAULT_TRAIN
    from regtracks.data.simulate import simulate
    from regtracks.training.train import train

    tmp = tempfile.TemporaryDirectory()
    data = args.data
    if data is None:
        data = Path(tmp.name) / "sim"
        cfg = replace(
            DEFAULT_SIM, n_chroms=args.chroms, chrom_len=args.chrom_len, n_markers=args.markers
        )
        simulate(data, cfg)
    dev = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    dev = "cpu" if dev == "auto" else dev
    if dev.startswith("cuda"):
        require_gpu_busy()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}")
    print(f"GPU: {gpu}")
    cfg = replace(
        DEFAULT_TRAIN,
        model="dilated",
        batch_size=args.batch,
        workers=args.workers,
        max_steps=args.steps,
        epochs=0,
        eval_every=10**9,
        checkpoint_every=0,
        log_every=args.log_every,
        device=dev,
        precision=args.precision,
        patience=0,
        compile=args.compile,
    )
    samples: list[float] = []
    failed: list[BaseException] = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            try:
                samples.append(torch.cuda.utilization())
            except Exception as exc:  # said at the end: no figure in its place
                failed.append(exc)
                return
            time.sleep(0.05)

    run = Path(tmp.name) / "run"
    started = {}

    def progress(ev):
        if ev["event"] == "start":
            started["precision"] = ev["precision"]
        if ev["event"] == "train" and "t" not in started and dev.startswith("cuda"):
            started["t"] = time.perf_counter()
            torch.cuda.reset_peak_memory_stats()
            threading.Thread(target=sample, daemon=True).start()

    t0 = time.perf_counter()
    train(
        data / "genome.fa",
        data / "markers.tsv",
        run,
        cfg,
        data_cfg=replace(DEFAULT_DATA, window_len=args.window_len, split="random"),
        on_event=progress,
    )
    stop.set()
    wall = time.perf_counter() - t0
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in recs if r["event"] == "train"][1:]  # first interval: warm-up
    if not steps:
        raise SystemExit("too few steps to time: raise --steps")
    bps = sum(r["bp_per_s"] for r in steps) / len(steps)
    wait = sum(r["data_wait"] for r in steps) / len(steps)
    compiled = ", compiled" if args.compile else ""
    print(
        f"dilated, {args.markers} markers, window {args.window_len:,} bp, batch {args.batch}, "
        f"{args.workers} workers, device {dev} ({started.get('precision', args.precision)}"
        f"{compiled}); {args.steps} steps in {wall:.0f} s"
    )
    print(f"training throughput: {bps / 1e3:,.1f} kbp/s ({bps / args.window_len:,.2f} windows/s)")
    print(f"steps/s: {bps / (args.window_len * args.batch):,.2f}")
    print(f"data wait: {100 * wait:.1f} % of the loop's time")
    if dev.startswith("cuda"):
        if failed or not samples:
            why = f"{type(failed[0]).__name__}: {failed[0]}" if failed else "no sample taken"
            raise SystemExit(f"error: GPU busy not measured ({why})")
        busy = sum(samples) / len(samples)
        print(f"GPU busy (utilisation sampled every 50 ms, {len(samples)} samples): {busy:.0f} %")
        peak = torch.cuda.max_memory_allocated() / 2**30
        print(f"peak GPU memory allocated (timed steps): {peak:,.1f} GiB")
    else:
        print(f"CPU run: no GPU figure; loop busy (1 - data wait): {100 * (1 - wait):.0f} %")
    epoch = 75_000 * 25_000 / bps
    print(
        f"one paper-size epoch (75,000 x 25 kb windows): {epoch:,.0f} s (goal on one H100: <= 60 s)"
    )


def require_gpu_busy() -> None:
    """Stop with one line unless CUDA and pynvml are there (the GPU-busy figure needs both)."""
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("error: --device cuda, but CUDA is not available on this machine")
    try:
        import pynvml  # noqa: F401  (nvidia-ml-py; torch.cuda.utilization reads it)
    except ImportError:
        raise SystemExit(
            "error: the GPU-busy figure needs pynvml: pip install nvidia-ml-py "
            "(or pip install 'regtracks[gpu]')"
        ) from None
    try:
        torch.cuda.utilization()
    except Exception as exc:
        raise SystemExit(f"error: GPU busy cannot be read ({type(exc).__name__}: {exc})") from None


if __name__ == "__main__":
    main()
