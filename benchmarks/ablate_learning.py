"""Why the models learnt slowly, and what fixes it: an ablation with the real training loop.

Each candidate is one ``regtracks train`` run (the library's :func:`regtracks.training.train.
train`: same sampler, augmentation, loss, optimizer and validation as the command line) on a
generated genome, with the same bases per step (4 x 25 kb windows) and the same number of
steps; each run's test PR-AUC is that of its best validation checkpoint. Runs go in parallel
processes of one thread each (``OMP_NUM_THREADS=1``), so on a 2-core machine ``--parallel 2``
is the fair setting; times are training seconds (optimizer steps only, as ``metrics.jsonl``
records them).

The candidates (``--list`` prints them numbered; ``--only 0,3`` runs some): the paper's
models as published (``paper``), then the fixes one at a time and together, and a simple
reference — the plain base-resolution CNN of the issue (conv 19 bp x 64, max pool 10, conv 9,
max pool +-150 bp, 1x1 output), registered here as ``ref_cnn``.

    regtracks simulate --out g4 --n-chroms 4 --chrom-len 2000000 --n-markers 4
    OMP_NUM_THREADS=1 python benchmarks/ablate_learning.py g4 --out abl --steps 500 --parallel 2

prints a Markdown table (steps to reach a validation PR-AUC of 0.3 per category, validation
PR-AUC per category at the best checkpoint, its test PR-AUC per marker, training seconds) and
writes ``abl/table.json``.
Every run folder has ``metrics.jsonl`` and ``curves.png``; a finished run is not run again.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

PAPER = {"preset": "paper"}
FIXED = {}  # the defaults: stem, rates 1-81, residual, pooling
# "defaults" below: the training defaults of the ablation, before the cosine decay (which the
# "+ cosine lr decay" row measured and made the default), i.e. a constant learning rate
CONST = {"lr_decay": "none"}
CANDIDATES: dict[str, dict] = {
    # name: model, hyperparameters, training options
    "dilated paper, lr 1e-3 (the paper's code)": {
        "model": "dilated",
        "hparams": PAPER,
        "train": {"lr": 1e-3, "shift": 0, "marker_weighting": "none", **CONST},
    },
    "cnn7 paper, lr 1e-3": {
        "model": "cnn7",
        "hparams": PAPER,
        "train": {"lr": 1e-3, "shift": 0, "marker_weighting": "none", **CONST},
    },
    "dilated rates 1-81 + residual, lr 3e-3 (the old demo)": {
        "model": "dilated",
        "hparams": {**PAPER, "dilations": "1,3,9,27,81", "residual": True},
        "train": {"lr": 3e-3, "shift": 0, "marker_weighting": "none", **CONST},
    },
    "+ motif stem": {
        "model": "dilated",
        "hparams": {**PAPER, "dilations": "1,3,9,27,81", "residual": True, "stem_width": 15},
        "train": {"lr": 3e-3, "shift": 0, "marker_weighting": "none", **CONST},
    },
    "+ motif stem + shift": {
        "model": "dilated",
        "hparams": {**PAPER, "dilations": "1,3,9,27,81", "residual": True, "stem_width": 15},
        "train": {"lr": 3e-3, "marker_weighting": "none", **CONST},
    },
    "+ motif stem + shift + pool 11 (= defaults, plain mean loss)": {
        "model": "dilated",
        "hparams": {
            **PAPER,
            "dilations": "1,3,9,27,81",
            "residual": True,
            "stem_width": 15,
            "pool": 11,
        },
        "train": {"lr": 3e-3, "marker_weighting": "none", **CONST},
    },
    "defaults without shift": {
        "model": "dilated",
        "hparams": FIXED,
        "train": {"shift": 0, **CONST},
    },
    "defaults with the paper's stem": {
        "model": "dilated",
        "hparams": {"stem_width": 0},
        "train": CONST,
    },
    "defaults without pooling": {"model": "dilated", "hparams": {"pool": 0}, "train": CONST},
    "defaults, lr 1e-3": {"model": "dilated", "hparams": FIXED, "train": {"lr": 1e-3, **CONST}},
    "defaults (dilated)": {"model": "dilated", "hparams": FIXED, "train": CONST},
    "defaults (cnn7)": {"model": "cnn7", "hparams": FIXED, "train": CONST},
    "defaults + cosine lr decay": {
        "model": "dilated",
        "hparams": FIXED,
        "train": {"lr_decay": "cosine"},
    },
    "reference CNN, lr 1e-2": {
        "model": "ref_cnn",
        "hparams": {},
        "train": {"lr": 1e-2, "shift": 0, "marker_weighting": "none", **CONST},
    },
}


def register_reference() -> None:
    """``ref_cnn``: the plain base-resolution CNN of the issue, as a regtracks model."""
    from torch import nn

    from regtracks.models import register_model
    from regtracks.models.dense import SamePool1d
    from regtracks.models.layers import DenseModel, SameConv1d

    class RefCNN(DenseModel):
        def __init__(self, n_markers: int, f: int = 64):
            super().__init__(n_markers)
            self.net = nn.Sequential(
                SameConv1d(4, f, 19),
                nn.BatchNorm1d(f),
                nn.ReLU(),
                SamePool1d(10),
                SameConv1d(f, f, 9),
                nn.BatchNorm1d(f),
                nn.ReLU(),
                SamePool1d(301),
                nn.Conv1d(f, n_markers, 1),
            )
            self.receptive_field = 19 + 9 + 9 + 300 - 1
            self.stride = 1

        def forward(self, x):
            return self.net(x)

    if "ref_cnn" not in _registered():
        register_model("ref_cnn", task="dense", kind="CNN")(
            lambda *, n_markers, f=64: RefCNN(n_markers, f)
        )


def _registered() -> list[str]:
    from regtracks.models.registry import _REGISTRY

    return list(_REGISTRY)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")[:60]


def run_one(job: tuple) -> dict:
    """Train and evaluate one candidate (in a worker process); returns its row."""
    name, spec, genome, out, steps, eval_every, seed = job
    import torch

    torch.set_num_threads(1)
    register_reference()
    from regtracks.config import DEFAULT_DATA, DEFAULT_TRAIN
    from regtracks.data.prepare import positive_fraction, prepare
    from regtracks.training.evaluate import evaluate
    from regtracks.training.metrics import category_means
    from regtracks.training.train import train

    run_dir = Path(out) / _slug(name)
    g = Path(genome)
    data_cfg = replace(DEFAULT_DATA, window_len=25_000)
    td = prepare(g / "genome.fa", g / "markers.tsv", cfg=data_cfg)
    cfg = replace(
        DEFAULT_TRAIN,
        model=spec["model"],
        hparams=dict(spec["hparams"]),
        batch_size=4,
        epochs=0,
        max_steps=steps,
        eval_every=eval_every,
        patience=0,
        workers=0,
        seed=seed,
        device="cpu",
        **spec["train"],
    )
    if not (run_dir / "evaluate" / "test" / "report.json").is_file():
        train(g / "genome.fa", g / "markers.tsv", run_dir, cfg, task_data=td, overwrite=True)
        report = evaluate(run_dir, split="test", task_data=td, device="cpu", workers=0)
    else:
        report = json.loads((run_dir / "evaluate" / "test" / "report.json").read_text())
    valid = [
        json.loads(line)
        for line in (run_dir / "metrics.jsonl").read_text().splitlines()
        if '"valid"' in line
    ]
    chance = category_means(positive_fraction(td, "valid"), td.markers.categories)
    return {
        "name": name,
        "model": spec["model"],
        "hparams": spec["hparams"],
        "train": spec["train"],
        "run": str(run_dir),
        "valid": [
            {"step": v["step"], "seconds": v.get("seconds"), "pr_auc": v.get("pr_auc")}
            for v in valid
        ],
        "valid_chance": chance,
        "test": {m["name"]: m["pr_auc"] for m in report["markers"]},
        "test_categories": {c: v["pr_auc"] for c, v in report["categories"].items()},
    }


def steps_to(row: dict, cat: str, level: float) -> str:
    for v in row["valid"]:
        p = (v["pr_auc"] or {}).get(cat)
        if p is not None and p >= level:
            return str(v["step"])
    return "-"


def table(rows: list[dict], level: float) -> str:
    cats = [
        c
        for c in ("TFBS", "Histone", "DNase")
        if any(r["valid_chance"].get(c) is not None for r in rows)
    ]
    markers = list(rows[0]["test"]) if rows else []
    head = (
        ["candidate"]
        + [f"steps to {level:g} {c}" for c in cats]
        + [f"best valid {c}" for c in cats]
        + [f"test {m}" for m in markers]
        + ["seconds"]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        last = r["valid"][-1] if r["valid"] else {"pr_auc": {}, "seconds": None}
        # the validation the test checkpoint (best.pt, best mean PR-AUC) comes from
        best = max(r["valid"], key=lambda v: (v["pr_auc"] or {}).get("mean") or 0, default=last)
        cells = [r["name"]]
        cells += [steps_to(r, c, level) for c in cats]
        cells += [f"{(best['pr_auc'] or {}).get(c) or 0:.3f}" for c in cats]
        cells += [f"{r['test'][m]:.3f}" if r["test"][m] is not None else "-" for m in markers]
        cells += [f"{last['seconds']:.0f}" if last.get("seconds") else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    chance = rows[0]["valid_chance"] if rows else {}
    lines.append("")
    lines.append(
        "chance (validation mean positive rate): "
        + ", ".join(f"{c} {chance[c]:.4f}" for c in cats if c in chance)
    )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("genome", nargs="?", help="a regtracks simulate folder")
    ap.add_argument("--out", default="ablation")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", help="candidate numbers of --list, comma-separated (default: all)")
    ap.add_argument("--level", type=float, default=0.3, help="PR-AUC for 'steps to'")
    ap.add_argument("--list", action="store_true", help="print the candidates and exit")
    args = ap.parse_args()
    if args.list or not args.genome:
        for i, (name, spec) in enumerate(CANDIDATES.items()):
            print(f"{i}. {name}: --model {spec['model']} hparams {spec['hparams']} {spec['train']}")
        return
    names = list(CANDIDATES)
    if args.only:
        try:
            names = [names[int(i)] for i in args.only.split(",")]
        except (ValueError, IndexError):
            sys.exit(f"--only takes numbers from 0 to {len(names) - 1} (see --list)")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    jobs = [
        (n, CANDIDATES[n], args.genome, args.out, args.steps, args.eval_every, args.seed)
        for n in names
    ]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.parallel) as pool:
        rows = list(pool.map(run_one, jobs))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "table.json").write_text(json.dumps(rows, indent=1))
    print(table(rows, args.level))
    print(
        f"\n{len(rows)} runs, {args.steps} steps of 4 x 25 kb each, "
        f"{time.perf_counter() - t0:.0f} s wall with {args.parallel} processes"
    )


if __name__ == "__main__":
    main()
