"""The demo's training configuration against cheaper ones: learning curves per category.

``regtracks demo`` must finish in about four minutes on two cores, and training is most of it.
Each candidate here is the demo's training stage (:data:`regtracks.config.DEFAULT_DEMO` with
some fields changed: model width, steps, batch, learning rate) on the demo's own genome, run
with the library's :func:`regtracks.training.train.train` exactly as the demo calls it, but
validated every ``--eval-every`` steps so that the curve is seen; then the test split is
evaluated on the best checkpoint, as the demo does. A simple reference runs beside them: the
plain base-resolution CNN with batch norm of ``ablate_learning.py`` (``ref_cnn``).

Runs go in parallel processes of one thread each (``OMP_NUM_THREADS=1``; loader in the main
process), so that their seconds compare: a candidate's "s/step" is its training seconds (steps
only, as ``metrics.jsonl`` records them) over its steps, under the same load as the others.

    OMP_NUM_THREADS=1 python benchmarks/ablate_demo.py --out abl_demo --parallel 2
    python benchmarks/ablate_demo.py --list

prints a Markdown table (validation PR-AUC per category at each evaluation, test PR-AUC per
category of the best checkpoint, seconds per step) and writes ``OUT/table.json``; a finished
candidate is not run again.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

# name: DemoConfig fields to change (``hparams`` replace the demo's)
PAPER_WIDTH = {"f1": 128, "f2": 240, "f3": 50, "d_hidden": 125}  # the dilated model's defaults
NARROW = {"f1": 64, "f2": 120, "d_hidden": 64}  # the demo's since issue 15
CANDIDATES: dict[str, dict] = {
    "dilated defaults (f1 128, f2 240, f3 50, d_hidden 125): the demo before": {
        "hparams": PAPER_WIDTH
    },
    "f1 64, f2 120, d_hidden 64 (the demo now)": {"hparams": NARROW},
    "f2 120": {"hparams": {**PAPER_WIDTH, "f2": 120}},
    "f1 64, f2 120, d_hidden 64, lr 5e-3": {"hparams": NARROW, "lr": 5e-3},
    "dilated defaults, batch 4": {"hparams": PAPER_WIDTH, "batch_size": 4},
    "ref_cnn (conv 19 x 64 + BN, pool 10, conv 9 + BN, pool 301), lr 1e-2": {
        "model": "ref_cnn",
        "lr": 1e-2,
    },
}


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")[:60]


def run_one(job: tuple) -> dict:
    """Train and evaluate one candidate in a worker process; returns its row."""
    name, change, sim, out, steps, eval_every, max_eval_batches = job
    import torch

    torch.set_num_threads(1)
    from ablate_learning import register_reference

    register_reference()
    from regtracks.config import DEFAULT_DATA, DEFAULT_DEMO, DEFAULT_TRAIN
    from regtracks.data.prepare import positive_fraction, prepare
    from regtracks.training.evaluate import evaluate
    from regtracks.training.metrics import category_means
    from regtracks.training.train import train

    change = dict(change)
    hp = dict(change.pop("hparams", DEFAULT_DEMO.hparams))
    if change.get("model", DEFAULT_DEMO.model) != DEFAULT_DEMO.model:
        hp = {}
    cfg = replace(DEFAULT_DEMO, hparams=hp, max_steps=steps, **change)
    sim = Path(sim)
    run_dir = Path(out) / _slug(name)
    data_cfg = replace(DEFAULT_DATA, window_len=cfg.window_len)
    td = prepare(sim / "genome.fa", sim / "markers.tsv", cfg=data_cfg)
    # the demo's TrainConfig (regtracks.demo.demo), validated more often, loader in-process
    tc = replace(
        DEFAULT_TRAIN,
        model=cfg.model,
        hparams=dict(cfg.hparams),
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        lr_decay=cfg.lr_decay,
        max_steps=cfg.max_steps,
        epochs=0,
        eval_every=eval_every,
        max_eval_batches=max_eval_batches,
        workers=0,
        device="cpu",
        patience=0,
    )
    if not (run_dir / "evaluate" / "test" / "report.json").is_file():
        train(sim / "genome.fa", sim / "markers.tsv", run_dir, tc, task_data=td, overwrite=True)
        report = evaluate(run_dir, split="test", task_data=td, device="cpu", workers=0)
    else:
        report = json.loads((run_dir / "evaluate" / "test" / "report.json").read_text())
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    valid = [e for e in events if e.get("event") == "valid"]
    n_params = sum(
        v.numel() for v in torch.load(run_dir / "best.pt", weights_only=True)["state_dict"].values()
    )
    chance = category_means(positive_fraction(td, "valid"), td.markers.categories)
    return {
        "name": name,
        "change": {**change, "hparams": hp},
        "run": str(run_dir),
        "params": n_params,
        "steps": steps,
        "valid": [
            {"step": v["step"], "seconds": v["seconds"], "pr_auc": v["pr_auc"]} for v in valid
        ],
        "valid_chance": chance,
        "test_categories": {c: v["pr_auc"] for c, v in report["categories"].items()},
        "test_chance": {c: v["mean_positive_rate"] for c, v in report["categories"].items()},
    }


CATS = ("TFBS", "Histone", "DNase")


def table(rows: list[dict]) -> str:
    steps = sorted({v["step"] for r in rows for v in r["valid"]})
    head = ["candidate", "params", "s/step"]
    head += [f"valid @{s}" for s in steps] + ["test (best ckpt)"]
    lines = [
        "Validation and test PR-AUC as TFBS / Histone / DNase",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in rows:
        last = r["valid"][-1]
        at = {v["step"]: v for v in r["valid"]}
        cells = [r["name"], f"{r['params']:,}", f"{last['seconds'] / last['step']:.3f}"]
        for s in steps:
            v = at.get(s)
            cells.append(" / ".join(f"{v['pr_auc'].get(c, 0):.3f}" for c in CATS) if v else "-")
        cells.append(" / ".join(f"{r['test_categories'].get(c, 0):.3f}" for c in CATS))
        lines.append("| " + " | ".join(cells) + " |")
    ch = rows[0]["valid_chance"] if rows else {}
    lines += ["", "validation chance: " + " / ".join(f"{ch.get(c, 0):.3f}" for c in CATS)]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sim", help="the demo's genome (made with the demo's SimConfig if absent)")
    ap.add_argument("--out", default="ablate_demo")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--max-eval-batches", type=int, default=8)
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--only", help="candidate numbers of --list, comma-separated (default: all)")
    ap.add_argument("--list", action="store_true", help="print the candidates and exit")
    args = ap.parse_args()
    names = list(CANDIDATES)
    if args.list:
        for i, n in enumerate(names):
            print(f"{i}. {n}: {CANDIDATES[n]}")
        return
    if args.only:
        try:
            names = [names[int(i)] for i in args.only.split(",")]
        except (ValueError, IndexError):
            sys.exit(f"--only takes numbers from 0 to {len(names) - 1} (see --list)")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = Path(args.out)
    sim = Path(args.sim) if args.sim else out / "sim"
    if not (sim / "markers.tsv").is_file():
        from regtracks.config import DEFAULT_DEMO
        from regtracks.data.simulate import simulate

        simulate(sim, DEFAULT_DEMO.sim)
    jobs = [
        (n, CANDIDATES[n], str(sim), str(out), args.steps, args.eval_every, args.max_eval_batches)
        for n in names
    ]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.parallel) as pool:
        rows = list(pool.map(run_one, jobs))
    done = out / "table.json"
    old = json.loads(done.read_text()) if done.is_file() else []
    keep = [r for r in old if r["name"] not in {r["name"] for r in rows}]
    done.write_text(json.dumps(keep + rows, indent=1))
    print(table(rows))
    print(
        f"\n{len(rows)} runs of {args.steps} steps, {time.perf_counter() - t0:.0f} s wall with "
        f"{args.parallel} processes of one thread"
    )


if __name__ == "__main__":
    main()
