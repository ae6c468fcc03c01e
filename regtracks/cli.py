"""The ``regtracks`` command line: parse options, call the library, show progress.

Thin on purpose: every command is option handling plus one library call. Library modules are
imported inside the commands, so ``regtracks --help`` does not import torch. A
:class:`~regtracks._util.RegtracksError` (bad input) becomes one red line on stderr and exit
code 1; usage errors exit 2.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from regtracks import __version__
from regtracks.config import (
    DEFAULT_DATA,
    DEFAULT_SALIENCY,
    DEFAULT_SCAN,
    DEFAULT_SERVE,
    DEFAULT_SIM,
    DEFAULT_TRAIN,
    DEFAULT_VARIANTS,
)

app = typer.Typer(
    name="regtracks",
    help="Long-context DNA models of regulatory markers: FASTA + peak files -> models -> "
    "genome-browser tracks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
data_app = typer.Typer(help="Inspect the data of a task.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def _stderr():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def _stdout():
    from rich.console import Console

    return Console(highlight=False)


def _fail(msg: str, code: int = 1):
    _stderr().print(f"[bold red]error:[/bold red] {msg}", soft_wrap=True)
    raise typer.Exit(code)


def _info(msg: str) -> None:
    _stderr().print(msg, soft_wrap=True)


def handle_errors(fn):
    """Turn user errors into one line and exit 1; Ctrl-C into exit 130."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from regtracks._util import RegtracksError

        try:
            return fn(*args, **kwargs)
        except RegtracksError as exc:
            _fail(str(exc))
        except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
            where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
            _fail(f"{exc.strerror or exc}{where}")
        except KeyboardInterrupt:
            _stderr().print("[yellow]interrupted[/yellow]")
            raise typer.Exit(130) from None

    return wrapper


@contextlib.contextmanager
def _progress(description: str, *, unit: str = ""):
    """A rich progress bar on stderr; yields ``update(done, total, label)``."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = _stderr()
    if not console.is_terminal:  # logs and pipes: no bar, no stray blank line
        yield lambda done, total, label="": None
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[label]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=None, label="")

        def update(done, total, label=""):
            bar.update(task, completed=done, total=total, label=str(label))

        yield update


def _version(value: bool):
    if value:
        typer.echo(f"regtracks {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
):
    """regtracks: from a genome FASTA and peak files to models and browser tracks."""


# ---------------------------------------------------------------------------------------------
# data options shared by data summary / train / benchmark
GenomeOpt = Annotated[Path, typer.Option("--genome", "-g", help="Genome FASTA (plain or bgzip).")]
MarkersOpt = Annotated[
    Path, typer.Option("--markers", "-m", help="Marker manifest TSV (name, category, path).")
]
TaskOpt = Annotated[
    str, typer.Option("--task", help="dense (25 kb, per base) or sequence (1000 bp).")
]
WindowLenOpt = Annotated[int, typer.Option("--window-len", help="Dense task window length (bp).")]
MaxNOpt = Annotated[
    float, typer.Option("--max-n", help="Drop inputs with more than this fraction of N.")
]
ExcludeOpt = Annotated[
    Path | None,
    typer.Option("--exclude", help="BED of excluded regions; windows >10% covered are dropped."),
]
SplitOpt = Annotated[
    str, typer.Option("--split", help="chrom (hold out chromosomes) or random (80/10/10).")
]
ValidChromsOpt = Annotated[
    str | None, typer.Option("--valid-chroms", help="Comma-separated validation chromosomes.")
]
TestChromsOpt = Annotated[
    str | None, typer.Option("--test-chroms", help="Comma-separated test chromosomes.")
]
ChromsOpt = Annotated[
    str | None, typer.Option("--chroms", help="Use only these chromosomes (comma-separated).")
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the random split and sampling.")]


def _csv(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    items = tuple(t.strip() for t in text.split(",") if t.strip())
    return items or None


def data_config(
    *,
    window_len: int = DEFAULT_DATA.window_len,
    max_n: float = DEFAULT_DATA.max_n,
    split: str = DEFAULT_DATA.split,
    valid_chroms: str | None = None,
    test_chroms: str | None = None,
    chroms: str | None = None,
    seed: int = DEFAULT_DATA.seed,
):
    """Build a DataConfig from command-line values (validated by the library)."""
    from dataclasses import replace

    return replace(
        DEFAULT_DATA,
        window_len=window_len,
        max_n=max_n,
        split=split,
        valid_chroms=_csv(valid_chroms),
        test_chroms=_csv(test_chroms),
        chroms=_csv(chroms),
        seed=seed,
    )


def prepare_task(genome, markers, task, cfg, exclude):
    """Library :func:`regtracks.data.prepare.prepare` with a progress bar and the one-line reports."""
    from regtracks.data.prepare import prepare

    with _progress("reading peaks") as update:
        td = prepare(genome, markers, task=task, cfg=cfg, exclude=exclude, progress=update)
    miss = td.intervals.missing_summary()
    if miss:
        _info(f"[yellow]note:[/yellow] {miss}")
    if td.samples.split_info.mode == "chrom" and td.samples.split_info.auto:
        _info(
            "[yellow]note:[/yellow] chr7/chr8/chr9 not all in the genome; "
            + td.samples.split_info.describe()
        )
    return td


# ---------------------------------------------------------------------------------------------
@app.command()
@handle_errors
def simulate(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    seed: Annotated[int, typer.Option(help="Random seed.")] = DEFAULT_SIM.seed,
    chroms: Annotated[
        int, typer.Option("--chroms", help="Number of chromosomes.")
    ] = DEFAULT_SIM.n_chroms,
    chrom_len: Annotated[
        int, typer.Option("--chrom-len", help="Length of each chromosome (bp).")
    ] = DEFAULT_SIM.chrom_len,
    markers: Annotated[
        int, typer.Option("--markers", help="Number of markers (919 in the paper).")
    ] = DEFAULT_SIM.n_markers,
    site_density: Annotated[
        float, typer.Option("--site-density", help="Planted sites per Mbp of each motif.")
    ] = DEFAULT_SIM.site_density,
    genome: Annotated[
        Path | None,
        typer.Option(
            "--genome",
            help="Real FASTA (plain or bgzip) as the background instead of random DNA; names, "
            "case and N runs are kept. --chroms / --chrom-len, when given, keep the first N "
            "chromosomes / crop them.",
        ),
    ] = None,
    motifs: Annotated[
        str | None,
        typer.Option(
            "--motifs",
            help="JASPAR (.jaspar, .pfm) or MEME file: plant sites sampled from these PWMs "
            "instead of the consensus library (examples/jaspar_motifs.py writes one).",
        ),
    ] = None,
):
    """Write a synthetic genome with known rules (FASTA, peaks, markers.tsv, truth.bed)."""
    from dataclasses import replace

    from regtracks.data.simulate import simulate as run

    cfg = replace(
        DEFAULT_SIM,
        seed=seed,
        n_chroms=chroms,
        chrom_len=chrom_len,
        n_markers=markers,
        site_density=site_density,
    )
    if genome is not None:  # a real genome: all of it unless --chroms / --chrom-len are given
        given = {
            k for k in ("chroms", "chrom_len") if ctx.get_parameter_source(k).name != "DEFAULT"
        }
        cfg = replace(
            cfg,
            n_chroms=chroms if "chroms" in given else 0,
            chrom_len=chrom_len if "chrom_len" in given else 0,
        )
    with _progress("simulating") as update:
        res = run(
            out,
            cfg,
            genome=genome,
            motifs=motifs,
            progress=lambda d, t, c: update(d // 1000, t // 1000, f"{c} (kbp)"),
        )
    _info(
        f"wrote {res.genome} ({res.n_bases:,} bp, {len(res.chroms)} chromosomes), "
        f"{len(res.n_peaks)} markers in {res.markers}, {res.n_sites:,} planted sites in {res.truth}"
    )


@data_app.command("summary")
@handle_errors
def data_summary(
    genome: GenomeOpt,
    markers: MarkersOpt,
    task: TaskOpt = "dense",
    window_len: WindowLenOpt = DEFAULT_DATA.window_len,
    max_n: MaxNOpt = DEFAULT_DATA.max_n,
    exclude: ExcludeOpt = None,
    split: SplitOpt = DEFAULT_DATA.split,
    valid_chroms: ValidChromsOpt = None,
    test_chroms: TestChromsOpt = None,
    chroms: ChromsOpt = None,
    seed: SeedOpt = DEFAULT_DATA.seed,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
):
    """Windows kept and dropped, splits, and per-marker peaks and coverage."""
    from regtracks.data.prepare import summarize

    cfg = data_config(
        window_len=window_len,
        max_n=max_n,
        split=split,
        valid_chroms=valid_chroms,
        test_chroms=test_chroms,
        chroms=chroms,
        seed=seed,
    )
    td = prepare_task(genome, markers, task, cfg, exclude)
    summary = summarize(td)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    _print_summary(summary)


def _print_summary(s: dict) -> None:
    from rich.table import Table

    con = _stdout()
    g = s["genome"]
    unit = "windows" if s["task"] == "dense" else "inputs"
    con.print(
        f"[bold]{g['name']}[/bold]: {g['chromosomes']} chromosomes, {g['length']:,} bp; "
        f"task [bold]{s['task']}[/bold], {s['window_len']:,} bp {unit}"
    )
    dropped = ", ".join(f"{k} {v:,}" for k, v in s["windows_dropped"].items())
    con.print(
        f"{unit}: {s['windows_total']:,} candidates, {s['windows_kept']:,} kept "
        f"(dropped: {dropped})"
    )
    t = Table(title="splits")
    t.add_column("split")
    t.add_column(unit, justify="right")
    t.add_column("chromosomes")
    for name, v in s["splits"].items():
        chroms = ", ".join(v["chromosomes"])
        if s["split_mode"] == "random":
            chroms = "(random)"
        t.add_row(name, f"{v['windows']:,}", chroms)
    con.print(t)
    t = Table(title="markers")
    for col in ("name", "category", "peaks", "intervals", "covered bp", "positive %"):
        t.add_column(col, justify="left" if col in ("name", "category") else "right")
    for m in s["markers"]:
        t.add_row(
            m["name"],
            m["category"],
            f"{m['peaks']:,}",
            f"{m['intervals']:,}",
            f"{m['covered_bp']:,}",
            f"{100 * m['positive_fraction']:.3f}",
        )
    con.print(t)


# --- training ---------------------------------------------------------------------------------
def _hparams(items: list[str] | None) -> dict:
    """``key=value`` strings -> dict of strings (the model registry converts the types)."""
    out: dict = {}
    for item in items or []:
        if "=" not in item:
            _fail(f"--hparam {item!r} is not key=value", 2)
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


class _TrainView:
    """Rich progress for training events."""

    def __init__(self):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=_stderr(),
        )
        self.task = None
        self.loss = float("nan")
        self.rate = 0.0
        self.best = None

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        self.bar.__exit__(*exc)

    def _info(self) -> str:
        best = "-" if self.best is None else f"{self.best:.4f}"
        return f"loss {self.loss:.4f}  {self.rate / 1e3:,.1f} kbp/s  best PR-AUC {best}"

    def __call__(self, ev: dict) -> None:
        kind = ev["event"]
        if kind == "start":
            self.task = self.bar.add_task("train", total=ev["total"], completed=ev["step"], info="")
            self.bar.console.print(
                f"training on {ev['device']} ({ev['precision']}, {ev['world']} process(es)): "
                f"{ev['train']:,} train / {ev['valid']:,} valid windows, "
                f"{ev['steps_per_epoch']:,} steps per epoch"
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
                self.bar.console.print(
                    f"step {ev['step']:,} (epoch {ev['epoch']}): valid PR-AUC {cats}{mark}"
                )
            self.bar.update(self.task, completed=ev["step"], info=self._info())


@app.command()
@handle_errors
def train(
    genome: GenomeOpt,
    markers: MarkersOpt,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Run folder (best.pt, last.pt, metrics.jsonl).")
    ],
    task: TaskOpt = DEFAULT_TRAIN.task,
    model: Annotated[
        str, typer.Option("--model", help="Model name (see `regtracks models`).")
    ] = DEFAULT_TRAIN.model,
    hparam: Annotated[
        list[str] | None,
        typer.Option("--hparam", help="Model hyperparameter key=value (repeatable)."),
    ] = None,
    epochs: Annotated[
        int, typer.Option(help="Passes over the training windows.")
    ] = DEFAULT_TRAIN.epochs,
    max_steps: Annotated[
        int, typer.Option("--max-steps", help="Stop after this many steps (0: no limit).")
    ] = DEFAULT_TRAIN.max_steps,
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Windows per step and process.")
    ] = DEFAULT_TRAIN.batch_size,
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate.")] = DEFAULT_TRAIN.lr,
    pos_weight: Annotated[
        float, typer.Option("--pos-weight", help="Weight of positive labels in the loss.")
    ] = DEFAULT_TRAIN.pos_weight,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = DEFAULT_TRAIN.device,
    precision: Annotated[
        str, typer.Option(help="auto (bf16 on CUDA), fp32 or bf16.")
    ] = DEFAULT_TRAIN.precision,
    workers: Annotated[
        int, typer.Option(help="DataLoader worker processes.")
    ] = DEFAULT_TRAIN.workers,
    seed: Annotated[
        int, typer.Option(help="Seed of weights, batch order, augmentation and split.")
    ] = DEFAULT_TRAIN.seed,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --out from last.pt.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Start again in a folder that holds a run.")
    ] = False,
    patience: Annotated[
        int, typer.Option(help="Stop after this many validations without improvement (0: never).")
    ] = DEFAULT_TRAIN.patience,
    eval_every: Annotated[
        int, typer.Option("--eval-every", help="Validate every N steps (0: each epoch).")
    ] = DEFAULT_TRAIN.eval_every,
    max_eval_batches: Annotated[
        int, typer.Option("--max-eval-batches", help="Validate on at most N batches (0: all).")
    ] = DEFAULT_TRAIN.max_eval_batches,
    rc: Annotated[
        bool, typer.Option("--rc/--no-rc", help="Reverse-complement augmentation.")
    ] = DEFAULT_TRAIN.rc,
    window_len: WindowLenOpt = DEFAULT_DATA.window_len,
    max_n: MaxNOpt = DEFAULT_DATA.max_n,
    exclude: ExcludeOpt = None,
    split: SplitOpt = DEFAULT_DATA.split,
    valid_chroms: ValidChromsOpt = None,
    test_chroms: TestChromsOpt = None,
    chroms: ChromsOpt = None,
):
    """Train one model of either task; resumable, on CPU, GPU or many GPUs (torchrun)."""
    from dataclasses import replace

    from regtracks.runtime import DistEnv
    from regtracks.training.train import train as run

    data_cfg = data_config(
        window_len=window_len,
        max_n=max_n,
        split=split,
        valid_chroms=valid_chroms,
        test_chroms=test_chroms,
        chroms=chroms,
        seed=seed,
    )
    cfg = replace(
        DEFAULT_TRAIN,
        task=task,
        model=model,
        hparams=_hparams(hparam),
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        lr=lr,
        pos_weight=pos_weight,
        device=device,
        precision=precision,
        workers=workers,
        seed=seed,
        patience=patience,
        rc=rc,
        eval_every=eval_every,
        max_eval_batches=max_eval_batches,
    )
    main_rank = DistEnv.from_env().is_main
    td = prepare_task(genome, markers, task, data_cfg, exclude) if main_rank else None
    if td is None:
        from regtracks.data.prepare import prepare

        td = prepare(genome, markers, task=task, cfg=data_cfg, exclude=exclude)
    if main_rank:
        with _TrainView() as view:
            res = run(
                genome,
                markers,
                out,
                cfg,
                data_cfg=data_cfg,
                exclude=exclude,
                resume=resume,
                overwrite=overwrite,
                task_data=td,
                progress=view,
            )
    else:
        res = run(
            genome,
            markers,
            out,
            cfg,
            data_cfg=data_cfg,
            exclude=exclude,
            resume=resume,
            overwrite=overwrite,
            task_data=td,
        )
    if not main_rank:
        return
    best = "-" if res.best is None else f"{res.best:.4f}"
    _info(
        f"{res.status} at step {res.step:,} (epoch {res.epoch}); best valid mean PR-AUC {best} "
        f"at step {res.best_step}; run in {res.run_dir}"
    )
    if res.status == "interrupted":
        _info(f"resume with: regtracks train ... --out {res.run_dir} --resume")
        raise typer.Exit(130)


@app.command()
@handle_errors
def evaluate(
    run: Annotated[Path, typer.Argument(help="Run folder (or checkpoint file).")],
    split: Annotated[str, typer.Option(help="valid or test.")] = "test",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Report folder (default RUN/evaluate/SPLIT).")
    ] = None,
    genome: Annotated[
        Path | None,
        typer.Option(
            "--genome", "-g", help="Genome FASTA (default: the one recorded in the checkpoint)."
        ),
    ] = None,
    checkpoint: Annotated[str, typer.Option("--checkpoint", help="best or last.")] = "best",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = DEFAULT_TRAIN.device,
    precision: Annotated[
        str, typer.Option(help="auto (bf16 on CUDA), fp32 or bf16.")
    ] = DEFAULT_TRAIN.precision,
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Windows per forward pass.")
    ] = DEFAULT_TRAIN.batch_size,
    workers: Annotated[
        int, typer.Option(help="DataLoader worker processes.")
    ] = DEFAULT_TRAIN.workers,
    as_json: Annotated[bool, typer.Option("--json", help="Print report.json to stdout.")] = False,
):
    """PR-AUC and ROC-AUC per marker and per category over every position of a split."""
    from regtracks.training.evaluate import evaluate as run_eval
    from regtracks.training.evaluate import report_dir

    with _progress(f"evaluating {split}") as update:
        report = run_eval(
            run,
            split=split,
            genome=genome,
            which=checkpoint,
            out_dir=out,
            device=device,
            precision=precision,
            batch_size=batch_size,
            workers=workers,
            progress=update,
        )
    where = out or report_dir(run, split)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        _info(f"report in {where}")
        return
    _print_report(report)
    _info(f"report in {where} (report.json, report.md, PR curves)")


def _print_report(report: dict) -> None:
    from rich.table import Table

    con = _stdout()
    t = Table(title=f"{report.get('model', '')} on {report['split']}: mean per category")
    for col in ("category", "markers", "PR-AUC", "ROC-AUC"):
        t.add_column(col, justify="left" if col == "category" else "right")
    for cat, v in report["categories"].items():
        n = sum(1 for m in report["markers"] if m["category"] == cat)
        fmt = lambda x: "-" if x is None else f"{x:.3f}"  # noqa: E731
        t.add_row(cat, str(n), fmt(v.get("pr_auc")), fmt(v.get("roc_auc")))
    con.print(t)
    t = Table(title="per marker (chance PR-AUC = positive rate)")
    for col in ("marker", "category", "PR-AUC", "chance", "ROC-AUC"):
        t.add_column(col, justify="left" if col in ("marker", "category") else "right")
    for m in report["markers"][:50]:
        fmt = lambda x: "-" if x is None else f"{x:.3f}"  # noqa: E731
        rate = m.get("positive_rate")
        t.add_row(
            m["name"],
            m["category"],
            fmt(m["pr_auc"]),
            "-" if rate is None else f"{rate:.4f}",
            fmt(m["roc_auc"]),
        )
    if len(report["markers"]) > 50:
        t.caption = f"first 50 of {len(report['markers'])} markers; all in report.md"
    con.print(t)


# --- predict -----------------------------------------------------------------------------------
@app.command()
@handle_errors
def predict(
    run: Annotated[Path, typer.Argument(help="Run folder (or checkpoint) of a dense-task model.")],
    chrom: Annotated[
        list[str],
        typer.Option("--chrom", "-c", help="Chromosome to predict (repeatable), or 'all'."),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Hub folder: tracks/*.bw, manifest.json, hub files.")
    ],
    genome: Annotated[
        Path | None,
        typer.Option(
            "--genome", "-g", help="Genome FASTA (default: the one recorded in the checkpoint)."
        ),
    ] = None,
    markers: Annotated[
        str | None, typer.Option("--markers", help="Comma-separated marker names (default: all).")
    ] = None,
    category: Annotated[
        str | None, typer.Option("--category", help="Only this category: TFBS, Histone or DNase.")
    ] = None,
    bin_size: Annotated[
        int, typer.Option("--bin-size", help="Track resolution in bp (1 allowed).")
    ] = DEFAULT_SCAN.bin_size,
    window_len: Annotated[
        int | None,
        typer.Option(
            "--window-len", help="Model input length (default: from the receptive field)."
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Windows per forward pass.")
    ] = DEFAULT_SCAN.batch_size,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = DEFAULT_TRAIN.device,
    precision: Annotated[
        str, typer.Option(help="auto (bf16 on CUDA), fp32 or bf16.")
    ] = DEFAULT_TRAIN.precision,
    rc_average: Annotated[
        bool, typer.Option("--rc-average", help="Average with the reverse-complement prediction.")
    ] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Keep tracks already complete from this checkpoint.")
    ] = False,
    writers: Annotated[
        int | None, typer.Option("--writers", help="bigWig writer processes (0: in this process).")
    ] = None,
    checkpoint: Annotated[str, typer.Option("--checkpoint", help="best or last.")] = "best",
    genome_name: Annotated[
        str | None,
        typer.Option(
            "--genome-name",
            help="UCSC assembly (hg19, hg38, mm10, ...): plain hub instead of an assembly hub.",
        ),
    ] = None,
    one_file: Annotated[
        bool | None,
        typer.Option("--one-file/--multi-file", help="Write a single-file (useOneFile on) hub."),
    ] = None,
    no_hub: Annotated[
        bool, typer.Option("--no-hub", help="Write tracks and manifest.json only.")
    ] = False,
):
    """Scan whole chromosomes into one bigWig per marker, plus a UCSC / IGV hub."""
    from regtracks.inference.predict import predict as run_predict

    opts = {}
    if genome_name is not None:
        opts["genome_name"] = genome_name
    if one_file is not None:
        opts["one_file"] = one_file
    with _progress("predicting") as update:
        res = run_predict(
            run,
            out,
            chroms=chrom,
            genome=genome,
            markers=list(_csv(markers) or []) or None,
            category=category,
            bin_size=bin_size,
            window_len=window_len,
            batch_size=batch_size,
            device=device,
            precision=precision,
            rc_average=rc_average,
            resume=resume,
            which=checkpoint,
            n_procs=writers,
            build=not no_hub,
            hub_options=opts,
            progress=lambda d, t, c: update(d // 1000, t // 1000, f"{c} (kbp)"),
        )
    if res.skipped:
        _info(f"kept {len(res.skipped)} complete track(s) from an earlier run (--resume)")
    if res.tracks:
        rate = res.bases / max(res.total_seconds, 1e-9)
        _info(
            f"wrote {len(res.tracks)} track(s) over {len(res.chroms)} chromosome(s) "
            f"({res.bases:,} bp, {rate / 1e3:,.0f} kbp/s) at {bin_size} bp to {Path(out) / 'tracks'}"
        )
    if not res.exact:
        _info(
            "[yellow]note:[/yellow] this model sees the whole window (no finite receptive field): "
            "stitched windows approximate one long input"
        )
    if res.hub is not None:
        _hub_hint(Path(out))


# --- saliency ----------------------------------------------------------------------------------
@app.command()
@handle_errors
def saliency(
    run: Annotated[Path, typer.Argument(help="Run folder (or checkpoint) of a dense-task model.")],
    region: Annotated[
        str,
        typer.Option(
            "--region", "-r", help="chr1:1,000,001-1,100,000 (1-based, inclusive) or a chromosome."
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Hub folder: tracks/sal_*.bw, manifest.json, hub.")
    ],
    marker: Annotated[
        list[str] | None,
        typer.Option("--marker", "-m", help="Marker to explain (repeatable; default: all)."),
    ] = None,
    category: Annotated[
        str | None, typer.Option("--category", help="Only this category: TFBS, Histone or DNase.")
    ] = None,
    reduce: Annotated[
        str,
        typer.Option(
            "--reduce", help="grad_x_input (gradient at the base present) or norm (paper Fig. 2)."
        ),
    ] = "grad_x_input",
    genome: Annotated[
        Path | None,
        typer.Option(
            "--genome", "-g", help="Genome FASTA (default: the one recorded in the checkpoint)."
        ),
    ] = None,
    bin_size: Annotated[
        int, typer.Option("--bin-size", help="Track resolution in bp (mean per bin).")
    ] = DEFAULT_SALIENCY.bin_size,
    window_len: Annotated[
        int | None,
        typer.Option(
            "--window-len", help="Model input length (default: from the receptive field)."
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Windows per forward and backward pass.")
    ] = DEFAULT_SALIENCY.batch_size,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = DEFAULT_TRAIN.device,
    precision: Annotated[str, typer.Option(help="fp32, bf16 or auto.")] = "fp32",
    checkpoint: Annotated[str, typer.Option("--checkpoint", help="best or last.")] = "best",
    no_hub: Annotated[
        bool, typer.Option("--no-hub", help="Write tracks and manifest.json only.")
    ] = False,
):
    """Gradient saliency of markers over a region (the paper's Figure 2) as bigWig tracks."""
    from regtracks.inference.saliency import saliency as run_saliency

    with _progress("saliency") as update:
        res = run_saliency(
            run,
            out,
            region=region,
            genome=genome,
            markers=[n for m in marker or [] for n in (_csv(m) or ())] or None,
            category=category,
            reduce=reduce,
            bin_size=bin_size,
            window_len=window_len,
            batch_size=batch_size,
            device=device,
            precision=precision,
            which=checkpoint,
            build=not no_hub,
            progress=lambda d, t, c: update(d // 1000, max(t // 1000, 1), f"{c} (kbp)"),
        )
    s, e = res.span
    _info(
        f"wrote {len(res.tracks)} saliency track(s) for {res.chrom}:{res.start + 1:,}-{res.end:,} "
        f"(tracks cover {res.chrom}:{s + 1:,}-{e:,}, {res.seconds:.1f} s) to {Path(out) / 'tracks'}"
    )
    if not res.exact:
        _info(
            "[yellow]note:[/yellow] this model sees the whole window (no finite receptive field): "
            "stitched gradients approximate one long input"
        )
    if res.hub is not None:
        _hub_hint(Path(out))


# --- variants ----------------------------------------------------------------------------------
@app.command()
@handle_errors
def variants(
    run: Annotated[Path, typer.Argument(help="Run folder (or checkpoint) of a dense-task model.")],
    vcf: Annotated[Path, typer.Option("--vcf", help="VCF (plain or gzip); REF must match.")],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="TSV: one row per allele and marker (see the docs)."),
    ],
    marker: Annotated[
        list[str] | None,
        typer.Option("--marker", "-m", help="Marker to score (repeatable; default: all)."),
    ] = None,
    category: Annotated[
        str | None, typer.Option("--category", help="Only this category: TFBS, Histone or DNase.")
    ] = None,
    radius: Annotated[
        int, typer.Option("--radius", help="Bases scored on each side of a variant.")
    ] = DEFAULT_VARIANTS.radius,
    genome: Annotated[
        Path | None,
        typer.Option(
            "--genome", "-g", help="Genome FASTA (default: the one recorded in the checkpoint)."
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Variants per forward pass.")
    ] = DEFAULT_VARIANTS.batch_size,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = DEFAULT_TRAIN.device,
    precision: Annotated[
        str, typer.Option(help="auto (bf16 on CUDA), fp32 or bf16.")
    ] = DEFAULT_TRAIN.precision,
    checkpoint: Annotated[str, typer.Option("--checkpoint", help="best or last.")] = "best",
):
    """Score variants: each marker's predicted probability around REF and ALT, and the change."""
    from regtracks.inference.variants import score_variants

    with _progress("scoring") as update:
        res = score_variants(
            run,
            vcf,
            out,
            genome=genome,
            markers=[n for m in marker or [] for n in (_csv(m) or ())] or None,
            category=category,
            radius=radius,
            batch_size=batch_size,
            device=device,
            precision=precision,
            which=checkpoint,
            progress=update,
        )
    note = f"; skipped {res.skipped} symbolic allele(s)" if res.skipped else ""
    _info(
        f"scored {res.variants:,} allele(s) ({res.rows:,} rows, {res.seconds:.1f} s) to {out}{note}"
    )


def _hub_hint(hub: Path) -> None:
    _info(f"hub: {hub / 'hub.txt'}; IGV desktop: File > Open Session > {hub / 'igv_session.xml'}")
    _info(f"browse it: regtracks serve {hub}   (then open the igv.html URL it prints)")


# --- benchmark ---------------------------------------------------------------------------------
@app.command()
@handle_errors
def benchmark(
    genome: GenomeOpt,
    markers: MarkersOpt,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Benchmark folder (runs/, table.md, table.json).")
    ],
    task: TaskOpt = "dense",
    models: Annotated[
        str, typer.Option("--models", help="'all' or comma-separated model names.")
    ] = "all",
    grid: Annotated[
        str,
        typer.Option(
            "--grid", help="none, small or paper (Tables 3/4): keep the best on validation."
        ),
    ] = "none",
    hparam: Annotated[
        list[str] | None,
        typer.Option(
            "--hparam",
            help="[model:]key=value, fixed for that model (or every model that has key).",
        ),
    ] = None,
    epochs: Annotated[
        int, typer.Option(help="Passes over the training windows per model.")
    ] = DEFAULT_TRAIN.epochs,
    max_steps: Annotated[
        int, typer.Option("--max-steps", help="Steps per model (0: no limit).")
    ] = DEFAULT_TRAIN.max_steps,
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Windows per step.")
    ] = DEFAULT_TRAIN.batch_size,
    lr: Annotated[
        float, typer.Option("--lr", help="Adam learning rate (unless the grid sets it).")
    ] = DEFAULT_TRAIN.lr,
    patience: Annotated[
        int, typer.Option(help="Early stopping patience (validations).")
    ] = DEFAULT_TRAIN.patience,
    eval_every: Annotated[
        int, typer.Option("--eval-every", help="Validate every N steps (0: each epoch).")
    ] = DEFAULT_TRAIN.eval_every,
    max_eval_batches: Annotated[
        int,
        typer.Option(
            "--max-eval-batches", help="Validate on at most N batches during training (0: all)."
        ),
    ] = DEFAULT_TRAIN.max_eval_batches,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = DEFAULT_TRAIN.device,
    precision: Annotated[
        str, typer.Option(help="auto (bf16 on CUDA), fp32 or bf16.")
    ] = DEFAULT_TRAIN.precision,
    workers: Annotated[
        int, typer.Option(help="DataLoader worker processes.")
    ] = DEFAULT_TRAIN.workers,
    seed: SeedOpt = DEFAULT_TRAIN.seed,
    window_len: WindowLenOpt = DEFAULT_DATA.window_len,
    max_n: MaxNOpt = DEFAULT_DATA.max_n,
    exclude: ExcludeOpt = None,
    split: SplitOpt = DEFAULT_DATA.split,
    valid_chroms: ValidChromsOpt = None,
    test_chroms: TestChromsOpt = None,
    chroms: ChromsOpt = None,
):
    """Train and evaluate every model of a task: the paper's Table 1 / Table 2."""
    from dataclasses import replace

    from regtracks.training.benchmark import benchmark as run_bench

    per_model: dict[str, dict] = {}
    for item in hparam or []:
        key = item.split("=", 1)[0]
        target, kv = item.split(":", 1) if ":" in key else ("*", item)
        per_model.setdefault(target, {}).update(_hparams([kv]))

    data_cfg = data_config(
        window_len=window_len,
        max_n=max_n,
        split=split,
        valid_chroms=valid_chroms,
        test_chroms=test_chroms,
        chroms=chroms,
        seed=seed,
    )
    cfg = replace(
        DEFAULT_TRAIN,
        task=task,
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        lr=lr,
        patience=patience,
        eval_every=eval_every,
        max_eval_batches=max_eval_batches,
        device=device,
        precision=precision,
        workers=workers,
        seed=seed,
    )
    names = None if models == "all" else list(_csv(models) or [])

    class View(_TrainView):
        """Training progress, one bar per configuration."""

        def __call__(self, ev):
            kind = ev["event"]
            if kind == "model":
                self.bar.console.print(
                    f"[bold]{ev['model']}[/bold]: {ev['configs']} configuration(s)"
                )
            elif kind in ("skip", "config"):
                done = ": finished earlier, kept" if kind == "skip" else ""
                self.bar.console.print(f"  {ev['run']}{done}")
            else:
                if kind == "start" and self.task is not None:
                    self.bar.remove_task(self.task)
                    self.best = None
                super().__call__(ev)

    with View() as view:
        res = run_bench(
            genome,
            markers,
            out,
            task=task,
            models=names,
            grid=grid,
            train_cfg=cfg,
            data_cfg=data_cfg,
            hparams=per_model,
            exclude=exclude,
            progress=view,
        )
    typer.echo(res.table_md.read_text())
    _info(f"tables: {res.table_md}, {res.table_json}")


# --- demo --------------------------------------------------------------------------------------
@app.command()
@handle_errors
def demo(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Demo folder (sim/, run/, hub/).")
    ] = Path("demo"),
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = DEFAULT_TRAIN.device,
    steps: Annotated[
        int | None,
        typer.Option("--steps", help="Training steps (default: a few minutes on 2 CPU cores)."),
    ] = None,
    igv_js: Annotated[
        Path | None, typer.Option("--igv-js", help="Local igv.min.js for an offline igv.html.")
    ] = None,
):
    """Simulate, train, evaluate, predict and write a hub: the whole pipeline, in minutes.

    Runs on the built-in synthetic genome: DIR/sim (genome), DIR/run (the dilated model and
    its test report), DIR/hub (tracks, UCSC hub, IGV session, igv.html).
    """
    from dataclasses import replace

    from regtracks.config import DEFAULT_DEMO
    from regtracks.demo import demo as run_demo

    cfg = DEFAULT_DEMO if steps is None else replace(DEFAULT_DEMO, max_steps=steps)
    names = {
        "simulate": "1/6 simulate",
        "train": "2/6 train",
        "evaluate": "3/6 evaluate",
        "predict": "4/6 predict",
        "saliency": "5/6 saliency",
        "variants": "6/6 variants",
    }

    class View(_TrainView):
        def __call__(self, ev):
            kind = ev["event"]
            if kind == "stage":
                kept = " (done earlier, kept)" if ev.get("kept") else ""
                self.bar.console.print(f"[bold]{names[ev['stage']]}[/bold] -> {ev['path']}{kept}")
                if ev["stage"] == "predict":
                    self.task_p = self.bar.add_task("predict", total=None, info="")
            elif kind == "predict":
                self.bar.update(
                    self.task_p,
                    completed=ev["done"] // 1000,
                    total=ev["total"] // 1000,
                    info=f"{ev['chrom']} (kbp)",
                )
            else:
                super().__call__(ev)

    with View() as view:
        view.task_p = None
        res = run_demo(out, cfg, device=device, igv_js=igv_js, progress=view)
    cats = res.report["categories"]
    line = ", ".join(
        f"{c} {v['pr_auc']:.3f} (chance {v['mean_positive_rate']:.3f})"
        for c, v in cats.items()
        if v.get("pr_auc") is not None
    )
    _info(f"test PR-AUC by category: {line}")
    _info(f"report: {res.run / 'evaluate' / 'test' / 'report.md'}")
    sal = res.saliency
    _info(
        f"saliency of {res.saliency_marker} around a planted site with a distal partner: "
        f"{sal.chrom}:{sal.start + 1:,}-{sal.end:,} (track sal_{res.saliency_marker})"
    )
    v = res.variants
    _info(
        f"variants: {v['alleles']} knock-outs of planted TFBS sites change their own marker's "
        f"probability by {v['own_mean_diff']:+.4f} on average, the other TFBS markers' by "
        f"{v['other_mean_diff']:+.4f} ({v['tsv']})"
    )
    _hub_hint(res.hub)


# --- models ---
def _models_defaults():
    from regtracks.config import DEFAULT_MODELS

    return DEFAULT_MODELS


@app.command("models")
@handle_errors
def models_list(
    task: Annotated[
        str | None, typer.Option("--task", help="Only this task's models: dense or sequence.")
    ] = None,
    n_markers: Annotated[
        int, typer.Option("--n-markers", help="Outputs M for the parameter counts (paper: 919).")
    ] = _models_defaults().n_markers,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON list instead of a table.")
    ] = False,
):
    """List the models: task, layers, type, parameters, receptive field, source (plugins too)."""
    import warnings

    from regtracks.models import describe_models

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        infos = describe_models(task, n_markers=n_markers)
    for w in caught:
        _info(f"[yellow]warning:[/yellow] {w.message}")
    if as_json:
        typer.echo(json.dumps([i.as_dict() for i in infos], indent=2))
        return
    _print_models(infos, n_markers)


def _print_models(infos, n_markers: int) -> None:
    from rich.table import Table

    t = Table(title=f"models (parameters for {n_markers:,} markers)")
    for col in ("name", "task", "layers", "type", "params", "receptive field", "source"):
        t.add_column(col, justify="right" if col in ("layers", "params") else "left")
    for i in infos:
        rf = "whole input" if i.receptive_field is None else f"{i.receptive_field:,} bp"
        layers = "" if i.layers is None else str(i.layers)
        t.add_row(i.name, i.task, layers, i.kind, f"{i.params:,}", rf, i.source)
    _stdout().print(t)


# --- tracks: hub serving ---
@app.command()
@handle_errors
def serve(
    hub: Annotated[Path, typer.Argument(help="Hub folder (holds hub.txt and/or igv.html).")],
    port: Annotated[
        int, typer.Option("--port", "-p", help="Port; 0 picks a free one.")
    ] = DEFAULT_SERVE.port,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on; 0.0.0.0 = every interface.")
    ] = DEFAULT_SERVE.host,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every request.")] = False,
):
    """Serve a hub folder over HTTP with Range requests and CORS (UCSC, IGV, igv.js).

    Prints the URLs to open, then serves until Ctrl-C.
    """
    from regtracks.tracks.serve import serve as run

    def ready(info):
        typer.echo(f"serving {hub} at {info.base_url}")
        if info.hub_url:
            typer.echo(f"track hub:  {info.hub_url}")
        if info.igv_url:
            typer.echo(f"igv.js page: {info.igv_url}")
        if not (info.hub_url or info.igv_url):
            _info("[yellow]note:[/yellow] no hub.txt or igv.html in this folder")
        if info.host in ("0.0.0.0", "::"):
            _info("listening on every interface: from elsewhere use this machine's address")
        _info("UCSC needs the server reachable from the internet; IGV and igv.js work locally")
        _info("press Ctrl-C to stop")

    run(hub, host=host, port=port, log=_info if verbose else None, on_ready=ready)
    _info("stopped")


# --- hub: UCSC track hub / assembly hub, IGV session, igv.js page ---------------------------
hub_app = typer.Typer(
    help="Browser files of a hub folder: UCSC track hub, IGV session, igv.js page.",
    no_args_is_help=True,
)
app.add_typer(hub_app, name="hub")
HubArg = Annotated[
    Path, typer.Argument(help="Hub folder (holding manifest.json, or hub.txt for check).")
]


@hub_app.command("build")
@handle_errors
def hub_build(
    hub: HubArg,
    one_file: Annotated[
        bool | None,
        typer.Option(
            "--one-file/--multi-file",
            help="One hub.txt with 'useOneFile on', or hub.txt + genomes.txt + trackDb.txt "
            "(default: as last built, else multi-file).",
        ),
    ] = None,
    igv_js: Annotated[
        Path | None,
        typer.Option("--igv-js", help="Local igv.min.js (igv.js 3.x) to embed for offline use."),
    ] = None,
    genome_name: Annotated[
        str | None,
        typer.Option(
            "--genome-name",
            help="A UCSC-hosted assembly (hg19, hg38, mm10, ...): plain hub, no 2bit.",
        ),
    ] = None,
    genome: Annotated[
        Path | None,
        typer.Option("--genome", "-g", help="Genome FASTA for the assembly hub's 2bit."),
    ] = None,
    email: Annotated[
        str | None, typer.Option("--email", help="Contact e-mail of hub.txt (UCSC needs one).")
    ] = None,
):
    """Write hub.txt, genomes.txt, trackDb.txt, igv_session.xml and igv.html from manifest.json."""
    from regtracks.tracks.hub import build_hub

    res = build_hub(
        hub, one_file=one_file, igv_js=igv_js, genome=genome, genome_name=genome_name, email=email
    )
    comps = ", ".join(f"{c} {n}" for c, n in res.composites.items())
    what = "assembly hub" if res.kind == "assembly" else f"track hub on UCSC's {res.genome}"
    faceted = f"; faceted: {', '.join(res.faceted)}" if res.faceted else ""
    _info(
        f"wrote {what} in {res.hub_dir}: {res.n_tracks} tracks ({comps}{faceted}), "
        f"igv_session.xml, igv.html; first view {res.default_pos}"
    )


@hub_app.command("check")
@handle_errors
def hub_check(hub: HubArg):
    """Check a hub as UCSC's hubCheck does, and its bigWigs: one line per problem, exit 1."""
    from regtracks.tracks.hubcheck import check_hub

    res = check_hub(hub)
    for line in res.problems:
        typer.echo(line)
    if res.problems:
        n = len(res.problems)
        _stderr().print(
            f"[bold red]{n} problem{'s' if n != 1 else ''}[/bold red] in {res.hub_file}"
        )
        raise typer.Exit(1)
    typer.echo(
        f"OK {res.hub_file}: genome {', '.join(res.genomes)}, {res.n_tracks} track stanzas, "
        f"{res.n_files} data files checked"
    )


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
