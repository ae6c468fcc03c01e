"""Forward + backward throughput and peak memory of every dense model (paper size by default).

Each model runs in its own subprocess (so the CPU peak-RSS figure belongs to that model alone):
build the model with ``--n-markers`` outputs, make a random one-hot batch ``(batch, 4, length)``
and random 0/1 labels ``(batch, M, length)``, then time ``repeats`` training steps without the
optimizer update: forward, binary cross-entropy over every loss output (three for the ID-CNN),
backward. One untimed warm-up step comes first.

* bp/s = ``batch * length * repeats / seconds``;
* CPU memory: peak resident set size of the process during the steps minus the resident size
  after setup (model, input and labels already allocated): what the step itself needs;
* CUDA memory: ``torch.cuda.max_memory_allocated`` over the steps (model, batch, activations,
  gradients: everything), with bf16 autocast unless ``--no-amp``.

Examples::

    python benchmarks/bench_models.py                          # CPU, L = 25,000, batch 8
    python benchmarks/bench_models.py --length 5000 --batch 2  # a quick look
    python benchmarks/bench_models.py --device cuda --repeats 10
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

DENSE = ["cnn1", "cnn3", "cnn7", "idcnn", "bilstm", "dilated"]


def _rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _maxrss_mib() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024 / 1024 if sys.platform == "darwin" else r / 1024


def worker(args: argparse.Namespace) -> dict:
    import torch
    import torch.nn.functional as F

    from regtracks.models import count_params, get_model, loss_outputs, random_one_hot

    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    model = get_model(args.model, n_markers=args.n_markers).to(dev).train()
    gen = torch.Generator().manual_seed(0)
    x = random_one_hot(args.batch, args.length, generator=gen).to(dev)
    y = (torch.rand(args.batch, args.n_markers, args.length, generator=gen) < 0.02).float().to(dev)
    amp = args.device == "cuda" and not args.no_amp

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            outs = loss_outputs(model, x)
            loss = sum(F.binary_cross_entropy_with_logits(o.float(), y) for o in outs) / len(outs)
        loss.backward()
        model.zero_grad(set_to_none=True)

    base = _rss_mib()  # model, input and labels are allocated; the steps add the rest
    step()  # warm-up (cuDNN autotuning, allocator)
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(args.repeats):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    secs = time.perf_counter() - t0
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = _maxrss_mib() - base
    return {
        "model": args.model,
        "params": count_params(model),
        "device": args.device,
        "amp": "bf16" if amp else "fp32",
        "batch": args.batch,
        "length": args.length,
        "seconds_per_step": secs / args.repeats,
        "bp_per_s": args.batch * args.length * args.repeats / secs,
        "peak_mib": peak,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--length", type=int, default=25_000)
    p.add_argument("--n-markers", type=int, default=919)
    p.add_argument("--repeats", type=int, default=1, help="timed steps per model (after 1 warm-up)")
    p.add_argument("--models", default=",".join(DENSE), help="comma-separated model names")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's choice)")
    p.add_argument("--no-amp", action="store_true", help="CUDA: fp32 instead of bf16 autocast")
    p.add_argument("--json", action="store_true", help="print one JSON object per model")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        args.model = args.worker
        print(json.dumps(worker(args)))
        return

    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            sys.exit("--device cuda: no CUDA device is available")

    mem = "peak MiB (allocated)" if args.device == "cuda" else "peak MiB (RSS above setup)"
    if not args.json:
        print(
            f"# dense models, forward+backward, batch {args.batch}, L = {args.length:,}, "
            f"M = {args.n_markers}, device {args.device}, {args.repeats} timed step(s)"
        )
        print(f"{'model':<8} {'params':>9} {'amp':>5} {'s/step':>8} {'bp/s':>10} {mem:>27}")
    for name in args.models.split(","):
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", name]
        for opt in ("device", "batch", "length", "n_markers", "repeats", "threads"):
            cmd += [f"--{opt.replace('_', '-')}", str(getattr(args, opt))]
        if args.no_amp:
            cmd.append("--no-amp")
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            print(f"{name:<8} failed: {res.stderr.strip().splitlines()[-1:]}", flush=True)
            continue
        r = json.loads(res.stdout.strip().splitlines()[-1])
        if args.json:
            print(json.dumps(r), flush=True)
        else:
            print(
                f"{name:<8} {r['params']:>9,} {r['amp']:>5} {r['seconds_per_step']:>8.2f} "
                f"{r['bp_per_s']:>10,.0f} {r['peak_mib']:>27,.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
