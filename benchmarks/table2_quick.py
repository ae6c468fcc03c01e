"""Table 2's long-range claim, decided on a 2-core machine: does the dilated model use context?

A generated genome where two TFBS markers follow a long-range rule (a peak on a site of motif X
only when a site of motif Y lies 1-5 kb away) and two a local one (a peak on every site), plus
a broad histone mark and a DNase union. Every dense model of Table 2 is trained with the same
budget (steps of 4 x 25 kb windows, regtracks' default training and each model's default
architecture at reduced widths, so that each reaches its plateau in well under 30 minutes on
one CPU thread), evaluated on the held-out test chromosome, and compared with two oracles
(``benchmarks/sim_oracle.py``): ``local`` ranks bases by the distance to the nearest site of
X — the best any model can do from X alone —, ``rule`` by the distance to the nearest X site
with a partner — what a model that has learnt the rule can reach.

The claim is decided by four checks, printed with the tables:

1. distal markers: ``dilated`` >= ``cnn7`` + 0.05 test PR-AUC;
2. distal markers: ``dilated`` >= the local oracle + 0.1 (only a model using the partner site
   can get there);
3. local markers: ``dilated`` within 0.02 of ``cnn7``;
4. local markers: ``cnn1`` < ``cnn3`` < ``cnn7`` (context matters for a 200-400 bp peak).

``bilstm`` and ``idcnn`` are reported. Runs go ``--parallel`` processes of one thread each;
finished runs are kept (run again to add models or to print the tables).

    OMP_NUM_THREADS=1 python benchmarks/table2_quick.py --out quick --parallel 2
    # on a real background with real motifs (see README, "simulate"):
    OMP_NUM_THREADS=1 python benchmarks/table2_quick.py --out quick-yeast --parallel 2 \\
        --genome sacCer3.fa --motifs motifs.jaspar
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

MODELS = ["cnn1", "cnn3", "cnn7", "idcnn", "bilstm", "dilated"]
# reduced widths (the architectures, strides, rates and pooling stay the defaults)
WIDTHS = {
    "*": {"f1": 64, "f2": 64, "f3": 32, "d_hidden": 32},
    "idcnn": {"f1": 32, "f2": 64, "f3": 32, "d_hidden": 32},
    "bilstm": {"f1": 64, "f2": 32, "f3": 32, "d_hidden": 32},
}
SIM = {"n_chroms": 6, "chrom_len": 2_000_000, "n_markers": 6, "site_density": 30.0}


def _simulate(out: Path, genome: str | None, motifs: str | None, seed: int) -> Path:
    from regtracks.config import SimConfig
    from regtracks.data.simulate import simulate

    sim = out / "sim"
    if not (sim / "simulation.json").is_file():
        cfg = SimConfig(seed=seed, **SIM)
        if genome is not None:  # the real chromosomes as they are, the markers and density
            cfg = replace(cfg, n_chroms=0, chrom_len=0)
        simulate(sim, cfg, genome=genome, motifs=motifs)
    return sim


def _run(job: tuple) -> None:
    """``benchmark`` of some models (trains what is not finished, writes the table of them)."""
    models, sim, out, steps, eval_every, lr_decay = job
    import torch

    torch.set_num_threads(1)
    from regtracks.config import DEFAULT_TRAIN
    from regtracks.training.benchmark import benchmark

    cfg = replace(
        DEFAULT_TRAIN,
        batch_size=4,
        epochs=0,
        max_steps=steps,
        eval_every=eval_every,
        lr_decay=lr_decay,
        patience=0,
        workers=0,
        device="cpu",
    )
    benchmark(
        Path(sim) / "genome.fa",
        Path(sim) / "markers.tsv",
        out,
        task="dense",
        models=list(models),
        train_cfg=cfg,
        hparams=WIDTHS,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="table2-quick")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--genome", help="a real FASTA as background (simulate --genome)")
    ap.add_argument("--motifs", help="JASPAR / MEME motifs (simulate --motifs)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr-decay", default="cosine", help="cosine (the default) or none")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from sim_oracle import oracles

    from regtracks.data.prepare import prepare

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    sim = _simulate(out, args.genome, args.motifs, args.seed)
    models = [m.strip() for m in args.models.split(",")]
    jobs = [([m], str(sim), str(out), args.steps, args.eval_every, args.lr_decay) for m in models]
    with ProcessPoolExecutor(max_workers=args.parallel) as pool:
        list(pool.map(_run, jobs))
    # every run is finished: one more call evaluates them all and writes the whole table
    _run((models, str(sim), str(out), args.steps, args.eval_every, args.lr_decay))
    table = json.loads((out / "table.json").read_text())
    by_model = {r["model"]: r for r in table["rows"]}
    td = prepare(sim / "genome.fa", sim / "markers.tsv")
    test_chrom = td.samples.split_info.chroms["test"][0]
    print((out / "table.md").read_text())
    _verdict(by_model, sim, test_chrom, oracles)
    print(f"\nwall {time.perf_counter() - t0:.0f} s with {args.parallel} processes")


def _marker_test(row: dict) -> dict[str, float]:
    report = json.loads((Path(row["run"]) / "evaluate" / "test" / "report.json").read_text())
    return {m["name"]: m["pr_auc"] for m in report["markers"]}


def _verdict(by_model: dict, sim: Path, test_chrom: str, oracles) -> None:
    info = json.loads((sim / "simulation.json").read_text())
    ceil = {r["name"]: r for r in oracles(str(sim), test_chrom)}
    per = {m: _marker_test(r) for m, r in by_model.items()}
    rules = {m["name"]: m["rule"] for m in info["markers"]}
    local = [n for n, r in rules.items() if r == "local"]
    distal = [n for n, r in rules.items() if r == "distal"]

    def mean(model: str, names: list[str]) -> float:
        return sum(per[model][n] for n in names) / len(names)

    print(f"\nTest chromosome {test_chrom}: test PR-AUC per TFBS marker and the oracles")
    head = ["marker", "rule", "local oracle", "rule oracle"] + list(per)
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for n in local + distal:
        c = ceil[n]
        rule = "-" if c["rule_oracle"] is None else f"{c['rule_oracle']:.3f}"
        vals = " | ".join(f"{per[m][n]:.3f}" for m in per)
        print(f"| {n} | {rules[n]} | {c['local']:.3f} | {rule} | {vals} |")
    if not {"dilated", "cnn7"} <= set(per):
        return
    d_dist, c_dist = mean("dilated", distal), mean("cnn7", distal)
    oracle_local = sum(ceil[n]["local"] for n in distal) / len(distal)
    d_loc, c_loc = mean("dilated", local), mean("cnn7", local)
    checks = [
        (f"distal: dilated {d_dist:.3f} >= cnn7 {c_dist:.3f} + 0.05", d_dist >= c_dist + 0.05),
        (
            f"distal: dilated {d_dist:.3f} >= local oracle {oracle_local:.3f} + 0.1",
            d_dist >= oracle_local + 0.1,
        ),
        (f"local: |dilated {d_loc:.3f} - cnn7 {c_loc:.3f}| <= 0.02", abs(d_loc - c_loc) <= 0.02),
    ]
    if {"cnn1", "cnn3"} <= set(per):
        a, b = mean("cnn1", local), mean("cnn3", local)
        checks.append((f"local: cnn1 {a:.3f} < cnn3 {b:.3f} < cnn7 {c_loc:.3f}", a < b < c_loc))
    print()
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")


if __name__ == "__main__":
    main()
