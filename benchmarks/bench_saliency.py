"""Saliency and variant scoring speed with a paper-size dilated model (random weights).

For a synthetic chromosome of ``--chrom-len`` bp and a ``dilated`` model with ``--markers``
outputs, this script times

1. ``regtracks saliency`` over a ``--region-len`` region for ``--explain`` markers (one forward
   and backward pass per window and marker): saliency bp/s per marker, peak RSS;
2. ``regtracks variants`` on ``--variants`` random SNVs, every marker scored: variants/s.

    python benchmarks/bench_saliency.py --device cpu                  # what a 2-core CPU does
    python benchmarks/bench_saliency.py --device cuda --region-len 10000000 --variants 20000
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_scan import make_checkpoint, make_genome  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chrom-len", type=int, default=3_000_000)
    ap.add_argument("--region-len", type=int, default=500_000)
    ap.add_argument("--markers", type=int, default=919)
    ap.add_argument("--explain", type=int, default=1, help="markers explained by saliency")
    ap.add_argument("--variants", type=int, default=200)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch", type=int, default=2)
    args = ap.parse_args()

    import torch

    from regtracks.inference.saliency import saliency
    from regtracks.inference.variants import score_variants

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_genome(tmp / "g.fa", args.chrom_len)
        make_checkpoint(tmp / "m.pt", tmp / "g.fa", args.markers, {})
        start = (args.chrom_len - args.region_len) // 2
        names = [f"m{i}" for i in range(args.explain)]
        t = time.perf_counter()
        res = saliency(
            tmp / "m.pt", tmp / "hub", region=f"chr1:{start + 1}-{start + args.region_len}",
            markers=names, device=args.device, batch_size=args.batch, build=False,
        )  # fmt: skip
        sal_s = time.perf_counter() - t
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        # random SNVs away from the ends, REF read from the genome
        from regtracks.data.genome import Genome

        g = Genome(tmp / "g.fa")
        rng = np.random.default_rng(0)
        pos = np.sort(rng.integers(20_000, args.chrom_len - 20_000, size=args.variants))
        lines = ["##fileformat=VCFv4.2", "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
        for p in pos.tolist():
            ref = g.fetch_text("chr1", p, p + 1).upper()
            if ref in "ACGT":
                alt = "ACGT"[("ACGT".index(ref) + 1) % 4]
                lines.append(f"chr1\t{p + 1}\t.\t{ref}\t{alt}\t.\t.\t.")
        (tmp / "v.vcf").write_text("\n".join(lines) + "\n")
        t = time.perf_counter()
        vr = score_variants(
            tmp / "m.pt", tmp / "v.vcf", tmp / "s.tsv", device=args.device, batch_size=8
        )
        var_s = time.perf_counter() - t
    dev = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, device {dev}")
    print(
        f"saliency: {args.region_len:,} bp region (tracks cover {res.bases:,} bp) x "
        f"{args.explain} marker(s), model with {args.markers} outputs: {sal_s:.1f} s, "
        f"{res.bases * args.explain / sal_s / 1e3:,.1f} kbp/s per marker; peak RSS {rss:,.0f} MiB"
    )
    print(
        f"variants: {vr.variants} SNVs x {args.markers} markers: {var_s:.1f} s, "
        f"{vr.variants / var_s:,.1f} variants/s ({vr.rows:,} rows)"
    )


if __name__ == "__main__":
    main()
