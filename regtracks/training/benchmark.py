"""Train and evaluate every model of a task: the paper's Table 1 / Table 2 on any genome.

``benchmark(genome, markers, out_dir, task="dense")`` trains each model (optionally over a
hyperparameter grid, keeping the configuration with the best validation mean PR-AUC, as the
paper did), evaluates the kept one on the validation and test splits, and writes::

    DIR/table.md, DIR/table.json     Model, Layers, Type, Params, valid/test PR-AUC per category
                                     (and per rule, for markers whose description names one)
    DIR/runs/<model>/<config>/       a run folder per configuration (best.pt, last.pt, ...)

Resumable: a configuration whose run finished (``done.json``) is not trained again; an
interrupted one resumes from its ``last.pt``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

from regtracks._util import RegtracksError, check_output_folder, renamed_keyword, write_text_atomic
from regtracks.config import (
    CATEGORIES,
    DEFAULT_DATA,
    DEFAULT_EVAL,
    DEFAULT_TRAIN,
    DataConfig,
    TrainConfig,
)

__all__ = ["benchmark", "GRIDS", "grid_configs", "BenchmarkResult"]

# The hyperparameters of the paper's Tables 3 (sequence task) and 4 (dense task). ``lr`` is the
# optimiser's; the others are model keyword arguments, applied where a model has them.
# Batch-norm decay {.9, .99} is PyTorch momentum {0.1, 0.01}.
GRIDS: dict[str, dict[str, dict[str, list]]] = {
    "none": {"dense": {}, "sequence": {}},
    "small": {
        "dense": {"lr": [1e-3, 3e-3], "dropout": [0.1, 0.01]},
        "sequence": {"lr": [1e-3, 3e-3], "dropout": [0.1, 0.01]},
    },
    "paper": {
        "dense": {
            "lr": [1e-3, 1e-2, 1e-1],
            "bn_momentum": [0.1, 0.01],
            "dropout": [0.1, 0.01],
            "f1": [64, 128],
            "f2": [120, 240],
            "f3": [50, 128],
            "d_hidden": [125, 200],
        },
        "sequence": {
            "lr": [1e-4, 1e-3, 1e-2, 1e-1],
            "bn_momentum": [0.1, 0.01],
            "dropout": [0.1, 0.01],
            "kernel_width": [4, 8, 12],
            "f1": [120, 240, 360],
            "f2": [120, 240, 360],
            "f3": [120, 240, 360],
            "d_hidden": [500, 919, 1500],
        },
    },
}
# Table 4's Bi-LSTM column: f1 fixed at 128, f2 = LSTM state, stride of the first convolution
_PAPER_LSTM = {
    "lr": [1e-3, 1e-2, 1e-1],
    "bn_momentum": [0.1, 0.01],
    "dropout": [0.1, 0.01],
    "f2": [20, 40, 80],
    "f3": [50, 128],
    "stride": [10, 20, 50, 100],
    "d_hidden": [64, 125, 200],
}
RULES = ("local", "distal", "broad", "union")


def grid_configs(model: str, task: str, grid: str) -> list[dict]:
    """Every configuration of ``grid`` for ``model`` (keys it lacks are dropped).

    Returns
    -------
    list of dict
        ``{"lr": ..., <hparam>: ...}``; ``[{}]`` for ``grid="none"``.
    """
    from regtracks.models import model_hparams

    if grid not in GRIDS:
        raise RegtracksError(f"--grid must be none, small or paper, got {grid!r}")
    spec = _PAPER_LSTM if (grid == "paper" and model == "bilstm") else GRIDS[grid][task]
    valid = set(model_hparams(model)) | {"lr"}
    keys = [k for k in spec if k in valid]
    return [
        dict(zip(keys, vals, strict=True)) for vals in itertools.product(*(spec[k] for k in keys))
    ]


def _config_id(cfg: dict) -> str:
    if not cfg:
        return "default"
    text = json.dumps(cfg, sort_keys=True)
    short = ",".join(f"{k}={v}" for k, v in sorted(cfg.items()))
    return short if len(short) <= 60 else hashlib.sha1(text.encode()).hexdigest()[:12]


@dataclass
class BenchmarkResult:
    """The table rows and where everything was written."""

    out_dir: Path
    rows: list[dict]
    table_md: Path
    table_json: Path


def _rule_of(description: str) -> str | None:
    head = (description or "").split(":", 1)[0].strip().lower()
    return head if head in RULES else None


def _rule_means(report: dict, rules: dict[str, str]) -> dict[str, float | None]:
    out = {}
    for rule in RULES:
        v = [m["pr_auc"] for m in report["markers"] if rules.get(m["name"]) == rule]
        v = [x for x in v if x is not None]
        out[rule] = sum(v) / len(v) if v else None
    return out


def benchmark(
    genome,
    markers,
    out_dir: str | os.PathLike,
    *,
    task: str = DEFAULT_TRAIN.task,
    models: list[str] | None = None,
    grid: str = DEFAULT_EVAL.grid,
    train_cfg: TrainConfig = DEFAULT_TRAIN,
    data_cfg: DataConfig = DEFAULT_DATA,
    hparams: dict[str, dict] | None = None,
    exclude: str | os.PathLike | None = None,
    strict: bool = False,
    on_event=None,
    progress=None,
) -> BenchmarkResult:
    """Train and evaluate every model of ``task``; write ``table.md`` and ``table.json``.

    Parameters
    ----------
    genome, markers : path
        Genome FASTA and marker manifest.
    out_dir : path
        Benchmark folder (runs, tables).
    task : {"dense", "sequence"}
    models : list of str, optional
        Models to run (default: every registered model of the task).
    grid : {"none", "small", "paper"}
        Hyperparameter search (Tables 3 and 4 for ``paper``); the configuration with the best
        validation mean PR-AUC is kept.
    train_cfg, data_cfg : TrainConfig, DataConfig
        Shared training and data options.
    hparams : dict model -> dict, optional
        Fixed hyperparameters per model (``"*"`` applies to every model that has the key);
        values may be strings (converted to the defaults' types).
    exclude : path, optional
        BED of excluded regions.
    strict : bool
        Refuse peak intervals past a chromosome's end (default: clip them).
    on_event : callable, optional
        ``on_event(event: dict)``: ``model`` / ``config`` / ``skip`` events and the training
        events of :func:`regtracks.training.train.train`.
    progress : callable, optional
        Deprecated name of ``on_event`` (``DeprecationWarning``); removed in the next release.
    """
    on_event = renamed_keyword(
        on_event, progress, caller="benchmark", new="on_event", old="progress"
    )
    from regtracks.data.prepare import prepare
    from regtracks.models import (
        coerce_hparams,
        count_params,
        get_model,
        list_models,
        model_hparams,
        model_info,
    )
    from regtracks.training.evaluate import evaluate
    from regtracks.training.train import train

    available = list_models(task)
    models = models or available
    unknown = [m for m in models if m not in available]
    if unknown:
        raise RegtracksError(
            f"unknown {task}-task model(s) {', '.join(unknown)}; "
            f"{task} models: {', '.join(available)}"
        )
    hparams = hparams or {}
    out = check_output_folder(out_dir, "benchmark folder")
    td = prepare(genome, markers, task=task, cfg=data_cfg, exclude=exclude, strict=strict)
    rules = {m.name: r for m in td.markers if (r := _rule_of(m.description))}
    rows = []

    def evaluate_on(run_dir: Path, split: str) -> dict:
        return evaluate(
            run_dir,
            split=split,
            genome=td.genome,
            device=train_cfg.device,
            precision=train_cfg.precision,
            batch_size=train_cfg.batch_size,
            workers=train_cfg.workers,
            task_data=td,
        )

    for name in models:
        fixed = {k: v for k, v in hparams.get("*", {}).items() if k in model_hparams(name)}
        fixed = coerce_hparams(name, {**fixed, **hparams.get(name, {})})
        configs = grid_configs(name, task, grid)
        if on_event:
            on_event({"event": "model", "model": name, "configs": len(configs)})
        best = None
        for conf in configs:
            hp = {**fixed, **{k: v for k, v in conf.items() if k != "lr"}}
            cfg = replace(
                train_cfg, task=task, model=name, hparams=hp, lr=conf.get("lr", train_cfg.lr)
            )
            run_dir = out / "runs" / name / _config_id({**conf, **fixed})
            done = run_dir / "done.json"
            if done.is_file():
                rec = json.loads(done.read_text())
                if on_event:
                    on_event({"event": "skip", "model": name, "run": str(run_dir)})
            else:
                if on_event:
                    on_event(
                        {"event": "config", "model": name, "run": str(run_dir), "config": conf}
                    )
                res = train(
                    None,
                    None,
                    run_dir,
                    cfg,
                    data_cfg=data_cfg,
                    task_data=td,
                    resume=(run_dir / "last.pt").is_file(),
                    on_event=on_event,
                )
                if res.status == "interrupted":
                    raise KeyboardInterrupt
                valid = evaluate_on(run_dir, "valid")
                rec = {
                    "config": conf,
                    "hparams": hp,
                    "lr": cfg.lr,
                    "status": res.status,
                    "steps": res.step,
                    "valid": _summary(valid),
                }
                write_text_atomic(done, json.dumps(rec, indent=1) + "\n")
            score = rec["valid"]["mean"]
            if best is None or (score is not None and (best[0] is None or score > best[0])):
                best = (score, run_dir, rec)
        _, run_dir, rec = best
        test = evaluate_on(run_dir, "test")
        info = model_info(name, n_markers=td.n_markers)
        import torch

        with torch.device("meta"):
            built = get_model(name, n_markers=td.n_markers, **rec["hparams"])
        params = count_params(built)
        valid_rep = json.loads((run_dir / "evaluate" / "valid" / "report.json").read_text())
        rows.append(
            {
                "model": name,
                "layers": getattr(built, "n_layers", info.layers),
                "type": info.kind,
                "params": params,
                "paper_params": info.paper_params,
                "receptive_field": info.receptive_field,
                "config": rec["config"],
                "hparams": rec["hparams"],
                "lr": rec["lr"],
                "steps": rec["steps"],
                "run": str(run_dir),
                "valid": _summary(valid_rep),
                "test": _summary(test),
                "valid_by_rule": _rule_means(valid_rep, rules) if rules else None,
                "test_by_rule": _rule_means(test, rules) if rules else None,
            }
        )
        _write_tables(out, rows, task, grid, td, train_cfg, rules)
    md, js = _write_tables(out, rows, task, grid, td, train_cfg, rules)
    return BenchmarkResult(out_dir=out, rows=rows, table_md=md, table_json=js)


def _summary(report: dict) -> dict:
    cats = {c: report["categories"][c]["pr_auc"] for c in CATEGORIES}
    vals = [m["pr_auc"] for m in report["markers"] if m["pr_auc"] is not None]
    cats["mean"] = sum(vals) / len(vals) if vals else None
    return cats


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def _write_tables(out: Path, rows, task, grid, td, train_cfg, rules) -> tuple[Path, Path]:
    title = "Dataset 2: dense labelling" if task == "dense" else "Dataset 1: sequence prediction"
    head = [
        "Model",
        "Layers",
        "Type",
        "Params",
        "Valid TFBS",
        "Valid Hist",
        "Valid DNase",
        "Test TFBS",
        "Test Hist",
        "Test DNase",
    ]
    lines = [
        f"# {title} ({td.genome.name}, {td.n_markers} markers, grid {grid})",
        "",
        "PR-AUC (average precision) per category: mean over the markers of each category, every "
        "position of the split.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in rows:
        v, t = r["valid"], r["test"]
        lines.append(
            f"| {r['model']} | {r['layers'] or '-'} | {r['type'] or '-'} | {r['params']:,} | "
            f"{_fmt(v['TFBS'])} | {_fmt(v['Histone'])} | {_fmt(v['DNase'])} | "
            f"{_fmt(t['TFBS'])} | {_fmt(t['Histone'])} | {_fmt(t['DNase'])} |"
        )
    if rules:
        present = [r for r in RULES if r in set(rules.values())]
        lines += ["", "Test PR-AUC by the rule the markers follow (synthetic genome):", ""]
        lines.append("| Model | " + " | ".join(present) + " |")
        lines.append("|---|" + "---|" * len(present))
        for r in rows:
            lines.append(
                f"| {r['model']} | "
                + " | ".join(_fmt(r["test_by_rule"][k]) for k in present)
                + " |"
            )
    lines += [
        "",
        "Training: "
        + ", ".join(f"{r['model']} {r['steps']} steps (lr {r['lr']:g})" for r in rows)
        + ".",
    ]
    md = out / "table.md"
    js = out / "table.json"
    write_text_atomic(md, "\n".join(lines) + "\n")
    write_text_atomic(
        js,
        json.dumps(
            {
                "task": task,
                "grid": grid,
                "genome": td.genome.name,
                "n_markers": td.n_markers,
                "rows": rows,
            },
            indent=1,
        )
        + "\n",
    )
    return md, js
