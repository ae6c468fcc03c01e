"""``regtracks models``: the model zoo (plugins too)."""

from __future__ import annotations

import json

import typer

from regtracks.cli.common import command, stdout, warn
from regtracks.cli.options import JsonOpt, NMarkersOpt, TaskOpt
from regtracks.config import DEFAULT_MODELS

app = typer.Typer()


@command(app, "models")
def models_list(
    task: TaskOpt = None,
    n_markers: NMarkersOpt = DEFAULT_MODELS.n_markers,
    as_json: JsonOpt = False,
):
    """List the models: task, layers, type, parameters, receptive field, source (plugins too).

    "paper preset" counts the published architecture (--hparam preset=paper; "=": the default
    is it), "paper" the count Tables 1 and 2 print. --task lists one task's models;
    --n-markers sets the outputs M of the parameter counts.
    """
    import warnings

    from regtracks.models import describe_models

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        infos = describe_models(task, n_markers=n_markers)
    for w in caught:
        warn(str(w.message))
    if as_json:
        typer.echo(json.dumps([i.as_dict() for i in infos], indent=2))
        return
    print_models(infos, n_markers)


def print_models(infos, n_markers: int) -> None:
    from rich.table import Table

    t = Table(title=f"models (parameters for {n_markers:,} markers)")
    cols = ("name", "task", "layers", "type", "params", "paper preset", "paper", "receptive field",
            "source")  # fmt: skip
    for col in cols:
        right = col in ("layers", "params", "paper preset", "paper")
        t.add_column(col, justify="right" if right else "left")
    for i in infos:
        rf = "whole input" if i.receptive_field is None else f"{i.receptive_field:,} bp"
        layers = "" if i.layers is None else str(i.layers)
        preset = i.preset_params.get("paper")
        preset = (
            "=" if preset is None and i.paper_params else ("" if preset is None else f"{preset:,}")
        )
        paper = "" if i.paper_params is None else f"{i.paper_params:,}"
        t.add_row(i.name, i.task, layers, i.kind, f"{i.params:,}", preset, paper, rf, i.source)
    stdout().print(t)
