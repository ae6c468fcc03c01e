"""The ``regtracks`` command line: parse options, call the library, show the result.

Thin on purpose: every command is option handling, one library call and the rich view of its
result; the work itself lives in the stage it belongs to. Library modules are imported inside
the commands, so ``regtracks --help`` does not import torch. A
:class:`~regtracks._util.RegtracksError` (bad input) becomes one red line on stderr and exit
code 1; usage errors exit 2.

One file per command group::

    options.py    every option, declared once (spelling, short name, type, help)
    common.py     consoles, one-line errors, progress bars, command classes, renamed options
    data.py       simulate, data summary
    models.py     models
    training.py   train, evaluate, benchmark
    inference.py  predict, saliency, variants
    figures.py    figure2, receptive-field
    tracks.py     hub build, hub check, serve
    demo.py       demo
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from regtracks import __version__
from regtracks.cli import data, demo, figures, inference, models, tracks, training
from regtracks.cli.common import Group

__all__ = ["app", "main"]

app = typer.Typer(
    cls=Group,
    name="regtracks",
    help="Long-context DNA models of regulatory markers: FASTA + peak files -> models -> "
    "genome-browser tracks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


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


# the order of `regtracks --help`: the data flow, then the groups
for group in (data, training, inference, figures, demo, models, tracks):
    app.add_typer(group.app)


def main() -> None:
    """Console-script entry point.

    Sets ``OMP_WAIT_POLICY=PASSIVE`` (unless set) before any command imports torch: OpenMP's
    threads then sleep while they wait instead of spinning, which on a shared machine made
    torch's threads 2-3x slower (:func:`regtracks.runtime.plan_threads`). And
    ``THP_MEM_ALLOC_ENABLE=1`` (unless set): torch's CPU allocator asks for transparent huge
    pages for its large buffers, which spares the kernel faulting in a window's outputs 4 kB at
    a time (the demo's predict 25-26 s -> 16-17 s wall, system time 10 s -> 3.5 s, peak RSS
    +6 %; training steps 6 % faster; BENCHMARKS.md, "Threads").
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
