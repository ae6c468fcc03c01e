"""``regtracks train``, ``evaluate`` and ``benchmark``: models trained and scored."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Annotated

import typer

from regtracks.cli.common import (
    command,
    fail,
    info,
    plural,
    progress_bar,
    rich_progress,
    stdout,
    warn,
)
from regtracks.cli.data import prepare_task
from regtracks.cli.options import (
    DataOptions,
    EvalSplitOpt,
    GridOpt,
    JsonOpt,
    ModelOpt,
    ModelOptions,
    ModelsOpt,
    OverwriteOpt,
    PosWeightOpt,
    PrecisionOpt,
    RcOpt,
    RunDataOptions,
    SeedOpt,
    TensorBoardOpt,
    TrainOptions,
    WorkersOpt,
    batch_size_option,
    hparam_option,
    hparams,
    hparams_per_model,
    names,
    out_option,
    resume_option,
)
from regtracks.config import DEFAULT_EVAL, DEFAULT_RUNTIME, DEFAULT_TRAIN

app = typer.Typer()


class TrainView:
    """Rich progress for the training events (``start``, ``train``, ``valid``)."""

    def __init__(self):
        self.bar = rich_progress("info")
        self.task = None
        self.loss = float("nan")
        self.rate = 0.0
        self.best = None

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        self.bar.__exit__(*exc)

    def print(self, text: str) -> None:
        self.bar.console.print(text)

    def _info(self) -> str:
        best = "-" if self.best is None else f"{self.best:.4f}"
        return f"loss {self.loss:.4f}  {self.rate / 1e3:,.1f} kbp/s  best PR-AUC {best}"

    def __call__(self, ev: dict) -> None:
        kind = ev["event"]
        if kind == "warning":
            self.print(f"[yellow]warning:[/yellow] {ev['message']}")
        elif kind == "start":
            step = ev["step"]  # a resumed run's pace counts from the step it resumes at
            self.task = self.bar.add_task(
                "train", total=ev["total"], completed=step, done_before=step, info=""
            )
            self.print(
                f"training on {ev['device']} ({ev['precision']}, "
                f"{plural(ev['world'], 'process', 'processes')}): {ev['train']:,} train / "
                f"{plural(ev['valid'], 'valid window')}, "
                f"{plural(ev['steps_per_epoch'], 'step')} per epoch"
            )
        elif kind == "train":
            self.loss, self.rate = ev["loss"], ev["bp_per_s"]
            self.bar.update(self.task, completed=ev["step"], info=self._info())
        elif kind == "valid":
            pr = ev.get("pr_auc")
            if pr:
                if ev.get("best"):
                    self.best = pr["mean"]
                cats = "  ".join(
                    f"{c} {pr[c]:.3f}"
                    for c in ("TFBS", "Histone", "DNase")
                    if pr.get(c) is not None
                )
                mark = " [green](best)[/green]" if ev.get("best") else ""
                self.print(f"step {ev['step']:,} (epoch {ev['epoch']}): valid PR-AUC {cats}{mark}")
            self.bar.update(self.task, completed=ev["step"], info=self._info())


class BenchmarkView(TrainView):
    """Training progress, one bar per configuration."""

    def __call__(self, ev: dict) -> None:
        kind = ev["event"]
        if kind == "model":
            self.print(f"[bold]{ev['model']}[/bold]: {ev['configs']} configuration(s)")
        elif kind in ("skip", "config"):
            done = ": finished earlier, kept" if kind == "skip" else ""
            self.print(f"  {ev['run']}{done}")
        else:
            if kind == "start" and self.task is not None:
                self.bar.remove_task(self.task)
                self.best = None
            super().__call__(ev)


# --- train -------------------------------------------------------------------------------------
RUN_OPTIONS = "options.json"
"""The file of a run folder that records the options the run was started with."""
RUN_OPTIONS_FORMAT = "regtracks-train-options/1"
# what --resume RUN lets change: where the run ends, what it runs on and how fast, and where its
# genome and markers are now (the library checks they are the run's: chromosome sizes, the
# marker table); --hparam given again is checked against the run's by the library
RESUME_MAY_CHANGE = (
    "epochs",
    "max_steps",
    "patience",
    "device",
    "workers",
    "compile",
    "threads",
    "tensorboard",
    "genome",
    "markers",
)
_NOT_RECORDED = ("out", "resume", "overwrite")  # the run itself, and how this call treats it
_PATHS = ("genome", "markers", "exclude", "tensorboard")
_NAME_LISTS = ("valid_chroms", "test_chroms", "chroms")


def _recorded(name: str, value):
    """An option's value as options.json records it: absolute paths, flat name lists."""
    if value is None:
        return None
    if name in _PATHS:
        return str(Path(value).expanduser().resolve())
    if name in _NAME_LISTS:
        return list(names(value) or []) or None
    if name == "hparam":  # one key=value a key, the last given winning
        return [f"{k}={v}" for k, v in hparams(value).items()] or None
    return list(value) if isinstance(value, (list, tuple)) else value


def _given(ctx: typer.Context, name: str) -> bool:
    src = ctx.get_parameter_source(name)
    return src is not None and src.name not in ("DEFAULT", "DEFAULT_MAP")


def _opt(ctx: typer.Context, name: str) -> str:
    """The option of parameter ``name``, as spelled (``--max-steps``)."""
    return next(p.opts[0] for p in ctx.command.params if p.name == name)


def _spelled(ctx: typer.Context, name: str, value) -> str:
    """``--lr 0.01``, ``--no-rc``, ``no --exclude``: an option as it would be typed."""
    [p] = [p for p in ctx.command.params if p.name == name]
    if p.is_flag:
        return p.opts[0] if value or not p.secondary_opts else p.secondary_opts[0]
    if value is None:
        return f"no {p.opts[0]}"
    shown = ",".join(map(str, value)) if isinstance(value, list) else value
    return f"{p.opts[0]} {shown}"


def read_run_options(run: Path) -> dict | None:
    """The options recorded in ``run/options.json`` (None: there is none)."""
    from regtracks._util import RegtracksError

    path = run / RUN_OPTIONS
    if not path.is_file():
        return None
    try:
        rec = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RegtracksError(f"{path}: not readable ({exc})") from None
    if not isinstance(rec, dict) or rec.get("format") != RUN_OPTIONS_FORMAT:
        raise RegtracksError(f"{path}: not a regtracks options file ({RUN_OPTIONS_FORMAT})")
    if not isinstance(rec.get("options"), dict):
        raise RegtracksError(f"{path}: damaged (no 'options')")
    return rec["options"]


def write_run_options(run: Path, values: dict) -> None:
    """Record the options of a run in ``run/options.json`` (atomically)."""
    from regtracks import __version__
    from regtracks._util import write_text_atomic

    options = {k: _recorded(k, v) for k, v in values.items() if k not in _NOT_RECORDED}
    rec = {"format": RUN_OPTIONS_FORMAT, "regtracks_version": __version__, "options": options}
    write_text_atomic(run / RUN_OPTIONS, json.dumps(rec, indent=2) + "\n")


def resumed_options(ctx: typer.Context, values: dict) -> tuple[dict, dict[str, str]]:
    """The options of the run in ``values["out"]`` (its options.json), and those of
    ``values`` given on the command line where they may change (:data:`RESUME_MAY_CHANGE`);
    returns them and the changes (option name -> as typed). Any other option that differs
    from the run's is refused with one line naming it. A run without options.json (older
    regtracks, benchmark) resumes with the options of ``values``, as before, when they name
    its genome and markers.
    """
    from regtracks._util import RegtracksError

    run = values["out"]
    if run is None:
        fail("--resume needs the run: --resume RUN", 2)
    if not (run / "last.pt").is_file():
        raise RegtracksError(f"{run}: nothing to resume (no last.pt)")
    stored = read_run_options(run)
    if stored is None:
        if values["genome"] is None or values["markers"] is None:
            raise RegtracksError(
                f"{run} has no {RUN_OPTIONS} (started before runs recorded their options, or "
                "by benchmark): resume it with the options it was started with: regtracks "
                f"train -g GENOME -m MARKERS --out {run} ... --resume"
            )
        return values, {}
    merged, changed = dict(values), {}
    may = ", ".join(_opt(ctx, k) for k in RESUME_MAY_CHANGE)
    for name, value in values.items():
        if name in _NOT_RECORDED:
            continue
        was = stored.get(name, _recorded(name, value))  # an option newer than the run: as given
        if not _given(ctx, name):
            merged[name] = Path(was) if name in _PATHS and was is not None else was
        elif name == "hparam":
            merged[name] = _recorded(name, [*(was or []), *(value or [])])
        elif _recorded(name, value) != was:
            if name not in RESUME_MAY_CHANGE:
                raise RegtracksError(
                    f"--resume: {_spelled(ctx, name, value)} differs from the run's "
                    f"{_spelled(ctx, name, was)}; beside --resume RUN only {may} may change"
                )
            changed[name] = _spelled(ctx, name, value)
    return merged, changed


@command(app, flag_values={"--resume": "--out"})
def train(
    ctx: typer.Context,
    data: RunDataOptions,
    out: Annotated[
        Path,
        out_option(
            "Run folder (best.pt, last.pt, metrics.jsonl, options.json); needed unless --resume "
            "RUN."
        ),
    ] = None,
    model: ModelOpt = DEFAULT_TRAIN.model,
    hparam: Annotated[
        list[str], hparam_option("Model hyperparameter key=value (repeatable).")
    ] = None,
    training: TrainOptions = TrainOptions(),
    pos_weight: PosWeightOpt = DEFAULT_TRAIN.pos_weight,
    rc: RcOpt = DEFAULT_TRAIN.rc,
    seed: SeedOpt = DEFAULT_TRAIN.seed,
    resume: Annotated[
        bool,
        resume_option(
            "Continue RUN from its last.pt with the options it was started with "
            "(RUN/options.json; --out RUN --resume is the same). Beside it --epochs, "
            "--max-steps, --patience, --device, --workers, --compile, --threads and "
            "--tensorboard may change, --genome/--markers may name moved files; any other "
            "option must be the run's.",
            metavar="[RUN]",
        ),
    ] = False,
    overwrite: OverwriteOpt = False,
    tensorboard: TensorBoardOpt = None,
):
    """Train one model of either task; resumable, on CPU, GPU or many GPUs (torchrun)."""
    from dataclasses import fields

    from regtracks.runtime import DistEnv
    from regtracks.training.train import train as run

    main_rank = DistEnv.from_env().is_main  # with torchrun, rank 0 alone shows and tells
    values = {p.name: ctx.params[p.name] for p in ctx.command.params if p.name in ctx.params}
    if resume:
        values, changed = resumed_options(ctx, values)
        note = f"; changed: {', '.join(changed.values())}" if changed else ""
        if main_rank:
            info(f"resuming {out} with the options it was started with{note}")
        if main_rank and values["lr_decay"] == "cosine" and {"epochs", "max_steps"} & set(changed):
            warn(
                "the cosine learning-rate schedule stretches to the new end: from here on the "
                "learning rate is not that of a run started with these options (with "
                "--lr-decay none a run extends exactly)"
            )
    else:
        for name in ("genome", "markers", "out"):
            if values[name] is None:
                fail(f"missing {_opt(ctx, name)}: needed to start a run", 2)
    data = RunDataOptions(**{f.name: values[f.name] for f in fields(RunDataOptions)})
    training = TrainOptions(**{f.name: values[f.name] for f in fields(TrainOptions)})
    tensorboard = values["tensorboard"]
    cfg = training.config(
        task=data.task,
        model=values["model"],
        hparams=hparams(values["hparam"]),
        pos_weight=values["pos_weight"],
        rc=values["rc"],
        seed=values["seed"],
        tensorboard=None if tensorboard is None else str(tensorboard),
    )
    training.use_threads()
    td = prepare_task(data, values["seed"], show=main_rank)

    def on_event(ev: dict) -> None:
        if ev["event"] == "start":  # the folder is the run's now: record how it was started
            write_run_options(out, values)
        if view is not None:
            view(ev)

    with TrainView() if main_rank else contextlib.nullcontext() as view:
        res = run(
            data.genome,
            data.markers,
            out,
            cfg,
            data_cfg=td.cfg,
            exclude=data.exclude,
            resume=resume,
            overwrite=overwrite,
            task_data=td,
            on_event=on_event,
        )
    if not main_rank:
        return
    best = "-" if res.best is None else f"{res.best:.4f}"
    info(
        f"{res.status} at step {res.step:,} (epoch {res.epoch}); best valid mean PR-AUC {best} "
        f"at step {res.best_step}; run in {res.run_dir}"
    )
    if res.status == "interrupted":
        info(f"resume with: regtracks train --resume {res.run_dir}")
        raise typer.Exit(130)


# --- evaluate ----------------------------------------------------------------------------------
@command(app)
def evaluate(
    model: ModelOptions,
    split: EvalSplitOpt = DEFAULT_EVAL.split,
    out: Annotated[Path, out_option("Report folder (default RUN/evaluate/SPLIT).")] = None,
    precision: PrecisionOpt = DEFAULT_RUNTIME.precision,
    batch_size: Annotated[
        int, batch_size_option("Windows per forward pass.")
    ] = DEFAULT_EVAL.batch_size,
    workers: WorkersOpt = DEFAULT_EVAL.workers,
    as_json: JsonOpt = False,
):
    """PR-AUC and ROC-AUC per marker and per category over every position of a split."""
    from regtracks.training.evaluate import evaluate as run_eval
    from regtracks.training.evaluate import report_dir

    model.use_threads(workers=workers)
    with progress_bar(f"evaluating {split}") as update:
        report = run_eval(
            model.run,
            split=split,
            out_dir=out,
            **model.kwargs(),
            precision=precision,
            batch_size=batch_size,
            workers=workers,
            progress=update,
        )
    where = out or report_dir(model.run, split)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        info(f"report in {where}")
        return
    print_report(report)
    warn_at_chance(report)
    info(f"report in {where} (report.json, report.md, PR curves)")


def warn_at_chance(report: dict) -> None:
    """One warning line naming the markers of a report that are at chance."""
    flat = [m["name"] for m in report["markers"] if m.get("at_chance")]
    if flat:
        shown = ", ".join(flat[:10]) + (f" and {len(flat) - 10} more" if len(flat) > 10 else "")
        warn(
            f"{len(flat)} of {len(report['markers'])} markers are at chance on "
            f"{report['split']} (ROC-AUC < 0.55 or PR-AUC < 1.1 x positive rate): {shown}; "
            "their tracks carry no signal"
        )


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def print_report(report: dict) -> None:
    from rich.table import Table

    con = stdout()
    t = Table(title=f"{report.get('model', '')} on {report['split']}: mean per category")
    for col in ("category", "markers", "PR-AUC", "ROC-AUC"):
        t.add_column(col, justify="left" if col == "category" else "right")
    for cat, v in report["categories"].items():
        n = sum(1 for m in report["markers"] if m["category"] == cat)
        t.add_row(cat, str(n), _fmt(v.get("pr_auc")), _fmt(v.get("roc_auc")))
    con.print(t)
    t = Table(title="per marker (chance PR-AUC = positive rate)")
    for col in ("marker", "category", "PR-AUC", "chance", "ROC-AUC", ""):
        t.add_column(col, justify="left" if col in ("marker", "category", "") else "right")
    for m in report["markers"][:50]:
        rate = m.get("positive_rate")
        t.add_row(
            m["name"],
            m["category"],
            _fmt(m["pr_auc"]),
            "-" if rate is None else f"{rate:.4f}",
            _fmt(m["roc_auc"]),
            "[yellow]at chance[/yellow]" if m.get("at_chance") else "",
        )
    if len(report["markers"]) > 50:
        t.caption = f"first 50 of {len(report['markers'])} markers; all in report.md"
    con.print(t)


# --- benchmark ---------------------------------------------------------------------------------
@command(app)
def benchmark(
    data: DataOptions,
    out: Annotated[Path, out_option("Benchmark folder (runs/, table.md, table.json).")],
    models: ModelsOpt = "all",
    grid: GridOpt = DEFAULT_EVAL.grid,
    hparam: Annotated[
        list[str],
        hparam_option(
            "[model:]key=value, fixed for that model (or every model that has key); repeatable."
        ),
    ] = None,
    training: TrainOptions = TrainOptions(),
    seed: SeedOpt = DEFAULT_TRAIN.seed,
):
    """Train and evaluate every model of a task: the paper's Table 1 / Table 2.

    --epochs and --max-steps are per model; --lr holds unless the grid sets it.
    """
    from regtracks.training.benchmark import benchmark as run_bench

    training.use_threads()
    with BenchmarkView() as view:
        res = run_bench(
            data.genome,
            data.markers,
            out,
            task=data.task,
            models=None if models == "all" else list(names(models) or []),
            grid=grid,
            train_cfg=training.config(task=data.task, seed=seed),
            data_cfg=data.config(seed),
            hparams=hparams_per_model(hparam),
            exclude=data.exclude,
            strict=data.strict,
            on_event=view,
        )
    typer.echo(res.table_md.read_text())
    info(f"tables: {res.table_md}, {res.table_json}")
