"""Variant scoring speed and memory: shared windows against one window per allele.

A synthetic chromosome, a ``dilated`` model with ``--markers`` outputs (default 919, random
weights: speed does not depend on them), and SNVs one per ``--spacing`` bp (1 kb). Each
configuration runs ``score_variants`` in a fresh process (so that its peak RSS is its own), on
``--threads`` CPU threads (default 1), and prints variants/s and peak RSS:

* ``per-allele``: ``share_windows=False``, the earlier path (a reference and an alternative
  window of ~22.6 kb per allele), on ``--old-count`` variants (it is slow);
* ``shared``: one reference pass per cluster, the alternative alleles recomputed from it, at
  each of ``--counts`` (peak RSS should not grow with the count: rows are streamed).

    python benchmarks/bench_variants.py                                  # 10k and 100k, 1 thread
    python benchmarks/bench_variants.py --counts 2000,20000 --old-count 100   # a busy 2-core box
    python benchmarks/bench_variants.py --model cnn7 --format long
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def make_genome(path: Path, length: int, seed: int = 0) -> None:
    """One chromosome of random A/C/G/T (no gaps: every SNV is scored)."""
    from regtracks.data.genome import write_fasta_record

    rng = np.random.default_rng(seed)
    seq = np.frombuffer(b"ACGT", dtype=np.uint8)[rng.integers(0, 4, size=length)].copy()
    with open(path, "wb") as fh:
        write_fasta_record(fh, "chr1", seq)


def make_checkpoint(path: Path, genome: Path, n_markers: int, model: str, hparams: dict) -> None:
    import torch

    from regtracks.checkpoint import base_checkpoint, save_checkpoint
    from regtracks.config import DEFAULT_DATA
    from regtracks.data.genome import Genome
    from regtracks.data.markers import Marker, MarkerSet
    from regtracks.models import get_model

    g = Genome(genome)
    cats = ["TFBS"] * (n_markers - 2 * (n_markers // 4)) + ["Histone", "DNase"] * (n_markers // 4)
    ms = MarkerSet([Marker(f"m{i}", c, "none.bed") for i, c in enumerate(sorted(cats))])
    torch.manual_seed(0)
    net = get_model(model, n_markers=n_markers, **hparams)
    ck = base_checkpoint(
        task="dense", model_name=model, hparams=net.hparams, model=net, markers=ms, genome=g,
        data_cfg=DEFAULT_DATA, exclude=None, split={"mode": "chrom"}, train={},
    )  # fmt: skip
    ck["state_dict"] = net.state_dict()
    ck["metrics"] = {}
    save_checkpoint(path, ck)


def make_vcf(path: Path, genome: Path, n: int, spacing: int, start: int) -> None:
    """``n`` SNVs at ``start + i * spacing`` (+ a jitter), REF read from the genome."""
    from regtracks.data.genome import Genome

    g = Genome(genome)
    rng = np.random.default_rng(1)
    pos = start + np.arange(n) * spacing + rng.integers(0, spacing // 2, size=n)
    with open(path, "w") as fh:
        fh.write("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
        for i, p in enumerate(pos.tolist()):
            ref = g.fetch_text("chr1", p, p + 1).upper()
            alt = "ACGT"[("ACGT".index(ref) + 1 + i % 3) % 4]
            fh.write(f"chr1\t{p + 1}\tv{i}\t{ref}\t{alt}\t.\t.\t.\n")


def rss_anon_mib() -> float:
    """This process's anonymous resident memory (heap, not file pages such as the genome's
    memory-mapped codes), from /proc (0 where there is none)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def child(args) -> None:
    """One scoring run in this (fresh) process; prints a JSON line."""
    import torch

    torch.set_num_threads(args.threads)
    from regtracks.inference.variants import score_variants

    anon = [0.0]

    def sample(done, total, label):  # the largest anonymous (heap) RSS seen while scoring
        anon[0] = max(anon[0], rss_anon_mib())

    t, cpu0 = time.perf_counter(), time.process_time()
    res = score_variants(
        args.ckpt, args.vcf, args.out, device=args.device, fmt=args.format,
        share_windows=args.mode == "shared", batch_size=args.batch, progress=sample,
    )  # fmt: skip
    wall = time.perf_counter() - t
    use = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"variants": res.variants, "wall": wall, "rss_mib": use.ru_maxrss / 1024,
                      "cpu": time.process_time() - cpu0, "anon_mib": anon[0],
                      "out_mib": Path(args.out).stat().st_size / 2**20}))  # fmt: skip


def run_child(args, tmp: Path, mode: str, n: int) -> dict:
    vcf = tmp / f"v{n}.vcf"
    make_vcf(vcf, tmp / "g.fa", n, args.spacing, 30_000)
    cmd = [
        sys.executable, __file__, "--child", "--ckpt", str(tmp / "m.pt"), "--vcf", str(vcf),
        "--out", str(tmp / f"s_{mode}_{n}.{'h5' if args.format == 'h5' else 'tsv'}"),
        "--mode", mode, "--threads", str(args.threads), "--device", args.device,
        "--format", args.format, "--batch", str(args.batch),
    ]  # fmt: skip
    env = {"OMP_NUM_THREADS": str(args.threads), "PATH": "/usr/bin:/bin"}
    import os

    env = {**os.environ, **env}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode:
        raise SystemExit(r.stderr)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    (tmp / f"s_{mode}_{n}.tsv").unlink(missing_ok=True)
    (tmp / f"s_{mode}_{n}.h5").unlink(missing_ok=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", default="10000,100000", help="variant counts, shared path")
    ap.add_argument("--old-count", type=int, default=200, help="variants, per-allele path")
    ap.add_argument("--spacing", type=int, default=1000, help="bp between variants")
    ap.add_argument("--markers", type=int, default=919)
    ap.add_argument("--model", default="dilated")
    ap.add_argument("--hparam", action="append", default=[], help="key=value (model)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--format", default="wide", choices=["wide", "long", "h5"])
    ap.add_argument("--batch", type=int, default=8)
    # the child's options
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--ckpt", help=argparse.SUPPRESS)
    ap.add_argument("--vcf", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    counts = [int(c) for c in args.counts.split(",")]
    hp = {}
    for kv in args.hparam:
        k, v = kv.split("=", 1)
        hp[k] = int(v) if v.lstrip("-").isdigit() else v
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_genome(tmp / "g.fa", max(counts + [args.old_count]) * args.spacing + 60_000)
        make_checkpoint(tmp / "m.pt", tmp / "g.fa", args.markers, args.model, hp)
        rows = []
        if args.old_count:
            rows.append(("per-allele", args.old_count, run_child(args, tmp, "old", args.old_count)))
        for n in counts:
            rows.append(("shared", n, run_child(args, tmp, "shared", n)))
    import torch

    print(
        f"machine: {platform.machine()}, {args.threads} torch thread(s), device {args.device}, "
        f"torch {torch.__version__}; model {args.model} {hp or ''}with {args.markers} markers; "
        f"SNVs 1 per {args.spacing:,} bp; --format {args.format}"
    )
    # variants per CPU second: what one thread does, even on a machine busy with other work
    # peak RSS counts the genome's memory-mapped pages the variants touched; heap: the largest
    # anonymous RSS sampled while scoring (what rows held in memory would grow)
    print(f"{'path':<11} {'variants':>9} {'wall s':>8} {'CPU s':>8} {'variants/s':>11} "
          f"{'per CPU s':>10} {'peak RSS':>10} {'heap':>10} {'output':>10}")  # fmt: skip
    for mode, n, r in rows:
        print(
            f"{mode:<11} {n:>9,} {r['wall']:>8.1f} {r['cpu']:>8.1f} "
            f"{r['variants'] / r['wall']:>11,.1f} {r['variants'] / r['cpu']:>10,.1f} "
            f"{r['rss_mib']:>6,.0f} MiB {r['anon_mib']:>6,.0f} MiB {r['out_mib']:>6,.1f} MiB"
        )
    old = [r for m, _, r in rows if m == "per-allele"]
    new = [r for m, _, r in rows if m == "shared"]
    if old and new:
        for key, what in (("wall", "variants/s"), ("cpu", "variants per CPU second")):
            speed = (new[-1]["variants"] / new[-1][key]) / (old[0]["variants"] / old[0][key])
            print(f"shared / per-allele, {what}: {speed:,.1f}x")


if __name__ == "__main__":
    main()
