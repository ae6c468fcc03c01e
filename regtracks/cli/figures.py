"""``regtracks figure2`` and ``receptive-field``: where trained models look in their input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from regtracks.cli.common import command, info, progress_bar, stdout, use_threads, warn
from regtracks.cli.options import (
    CheckpointOpt,
    DeviceOpt,
    EvalSplitOpt,
    JsonOpt,
    MarkerOpt,
    MarkerOptions,
    ModelOptions,
    PlotOpt,
    RecordedGenomeOpt,
    RegionOpt,
    SamplesOpt,
    SeedOpt,
    TargetOpt,
    ThreadsOpt,
    batch_size_option,
    names,
    out_option,
)
from regtracks.config import DEFAULT_RUNTIME, DEFAULT_SALIENCY

app = typer.Typer()

RunsArg = Annotated[
    list[Path], typer.Argument(help="Run folders (or checkpoint files): one panel each.")
]


# --- figure2 -----------------------------------------------------------------------------------
@command(app, "figure2")
def figure2(
    runs: RunsArg,
    region: RegionOpt,
    marker: MarkerOpt,
    out: Annotated[Path, out_option("PNG to write: one panel per run.")],
    target: TargetOpt = None,
    genome: RecordedGenomeOpt = None,
    checkpoint: CheckpointOpt = DEFAULT_RUNTIME.checkpoint,
    device: DeviceOpt = DEFAULT_RUNTIME.device,
    threads: ThreadsOpt = DEFAULT_RUNTIME.threads,
    batch_size: Annotated[
        int, batch_size_option("Windows per forward and backward pass.")
    ] = DEFAULT_SALIENCY.batch_size,
):
    """The paper's Figure 2 for any runs: one panel per model over a region, for one marker.

    Blue: the output positions back-propagated from (its positive labels by default, the
    paper's "error of 1 from every positive output"); black: the input-gradient norm per base.
    Each panel names the model and its nominal receptive field; the panels share both axes.
    """
    from regtracks.inference.figures import figure2 as run_figure2

    chosen = list(names(marker) or [])
    if len(chosen) != 1:
        got = "none" if not chosen else ", ".join(chosen)
        raise typer.BadParameter(f"name one marker (got {got})", param_hint="--marker")
    use_threads(threads, device, workers=0, writers=0)
    with progress_bar("figure2") as update:
        res = run_figure2(
            runs,
            out,
            region=region,
            marker=chosen[0],
            target=target,
            genome=genome,
            which=checkpoint,
            device=device,
            batch_size=batch_size,
            progress=update,
        )
    for note in res.notes:
        warn(note)
    for p in res.panels:
        if p.n_targets == 0:
            warn(f"{Path(p.run).name}: no output of {p.marker} predicted positive in the region")
    p = res.panels[0]
    info(
        f"wrote Figure 2 ({len(res.panels)} panel(s), {p.marker} on "
        f"{p.chrom}:{p.start + 1:,}-{p.end:,}, --target {p.target}, {res.seconds:.1f} s) to "
        f"{res.out}"
    )


# --- receptive-field ---------------------------------------------------------------------------
@command(app, "receptive-field")
def receptive_field(
    model: ModelOptions,
    select: MarkerOptions = MarkerOptions(),
    # the defaults are regtracks.inference.fields.DEFAULT_FIELD_* (written out here, so that
    # `regtracks --help` imports no numpy; tests/test_fields.py checks they agree)
    samples: SamplesOpt = 64,
    split: EvalSplitOpt = "test",
    seed: SeedOpt = 0,
    batch_size: Annotated[int, batch_size_option("Sampled positions per backward pass.")] = 4,
    as_json: JsonOpt = False,
    plot: PlotOpt = None,
):
    """The receptive field a model really uses: gradient mass against distance, 50 % / 90 %.

    The input-gradient magnitude as a function of the distance between input and output
    position, and the distances holding 50 % and 90 % of its mass. Output positions are drawn
    (with --seed) from the windows of --split, each with a random marker (of --marker /
    --category); "extent" is the farthest distance with any gradient, "nominal" the model's
    declared receptive field and its half-width.
    """
    from regtracks.inference.fields import receptive_field, write_field_plot

    if plot is not None:
        from regtracks._util import check_output_file
        from regtracks.inference.figures import require_matplotlib

        require_matplotlib("--plot")
        check_output_file(plot, "--plot")
    model.use_threads()
    with progress_bar("gradients") as update:
        res = receptive_field(
            model.run,
            samples=samples,
            split=split,
            seed=seed,
            **select.kwargs(),
            genome=model.genome,
            which=model.checkpoint,
            device=model.device,
            batch_size=batch_size,
            progress=update,
        )
    if plot is not None:
        write_field_plot([res], plot)
    if as_json:
        typer.echo(json.dumps(res.as_dict(), indent=2))
    else:
        print_field(res)
    if plot is not None:
        info(f"wrote the curve to {plot}")


def _bp(v: int | None) -> str:
    return "-" if v is None else f"{v:,} bp"


def print_field(res) -> None:
    from rich.table import Table

    rf = "whole input" if res.receptive_field is None else f"{res.receptive_field:,} bp"
    t = Table(
        title=f"{res.model}: empirical receptive field ({res.samples} output positions of the "
        f"{res.split} split, seed {res.seed})",
        caption="50 % / 90 %: distances from the output holding that share of the gradient "
        "mass; extent: the farthest with any",
    )
    for col in ("model", "nominal", "half-width", "50 %", "90 %", "extent", "measured to"):
        t.add_column(col, justify="left" if col == "model" else "right")
    t.add_row(res.model, rf, _bp(res.half_width), _bp(res.d50), _bp(res.d90), _bp(res.extent),
              _bp(res.max_distance))  # fmt: skip
    stdout().print(t)
