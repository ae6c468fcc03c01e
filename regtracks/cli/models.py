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

    --task lists one task's models; --n-markers sets the outputs M of the parameter counts.
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
    for col in ("name", "task", "layers", "type", "params", "receptive field", "source"):
        t.add_column(col, justify="right" if col in ("layers", "params") else "left")
    for i in infos:
        rf = "whole input" if i.receptive_field is None else f"{i.receptive_field:,} bp"
        layers = "" if i.layers is None else str(i.layers)
        t.add_row(i.name, i.task, layers, i.kind, f"{i.params:,}", rf, i.source)
    stdout().print(t)
