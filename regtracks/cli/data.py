"""``regtracks simulate`` and ``regtracks data summary``: make a genome, look at a task's data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from regtracks.cli.common import Group, command, in_kbp, info, progress_bar, stdout
from regtracks.cli.options import (
    BroadDensityOpt,
    ChromLenOpt,
    DataOptions,
    DistalMaxOpt,
    DistalMinOpt,
    JsonOpt,
    MotifsOpt,
    NChromsOpt,
    NMarkersOpt,
    SeedOpt,
    SiteDensityOpt,
    genome_option,
    out_option,
)
from regtracks.config import DEFAULT_DATA, DEFAULT_SIM

app = typer.Typer()
data_app = typer.Typer(cls=Group, help="Inspect the data of a task.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def prepare_task(data: DataOptions, seed: int, *, show: bool = True):
    """:func:`regtracks.data.prepare.prepare` of the data options, with a progress bar and its
    one-line notes (``show=False``: neither, as on the other ranks of a torchrun);
    ``--strict`` refuses intervals past a chromosome's end instead of clipping them."""
    from rich.markup import escape

    from regtracks.data.prepare import clipped_notes, prepare

    kw = dict(task=data.task, cfg=data.config(seed), exclude=data.exclude, strict=data.strict)
    if not show:
        return prepare(data.genome, data.markers, **kw)
    with progress_bar("reading peaks") as update:
        td = prepare(data.genome, data.markers, **kw, progress=update)
    miss = td.intervals.missing_summary()
    if miss:
        info(f"[yellow]note:[/yellow] {miss}")
    for note in clipped_notes(td):
        info(f"[yellow]note:[/yellow] {escape(note)}")
    if td.samples.split_info.mode == "chrom" and td.samples.split_info.auto:
        info(
            "[yellow]note:[/yellow] chr7/chr8/chr9 not all in the genome; "
            + td.samples.split_info.describe()
        )
    return td


# --- simulate --------------------------------------------------------------------------------
@command(app, renamed={"--chroms": "--n-chroms", "--markers": "--n-markers"})
def simulate(
    ctx: typer.Context,
    out: Annotated[Path, out_option("Output folder: genome.fa, markers.tsv, peaks/, truth.bed.")],
    seed: SeedOpt = DEFAULT_SIM.seed,
    n_chroms: NChromsOpt = DEFAULT_SIM.n_chroms,
    chrom_len: ChromLenOpt = DEFAULT_SIM.chrom_len,
    n_markers: NMarkersOpt = DEFAULT_SIM.n_markers,
    site_density: SiteDensityOpt = DEFAULT_SIM.site_density,
    broad_density: BroadDensityOpt = DEFAULT_SIM.broad_density,
    distal_min: DistalMinOpt = DEFAULT_SIM.distal_min,
    distal_max: DistalMaxOpt = DEFAULT_SIM.distal_max,
    genome: Annotated[
        Path,
        genome_option(
            "Real FASTA (plain or bgzip) as the background instead of random DNA; names, case "
            "and N runs are kept, all of its chromosomes, whole, unless --n-chroms / "
            "--chrom-len are given."
        ),
    ] = None,
    motifs: MotifsOpt = None,
):
    """Write a synthetic genome with known rules (FASTA, peaks, markers.tsv, truth.bed)."""
    from regtracks.data.simulate import sim_config
    from regtracks.data.simulate import simulate as run

    values = dict(
        seed=seed,
        n_chroms=n_chroms,
        chrom_len=chrom_len,
        n_markers=n_markers,
        site_density=site_density,
        broad_density=broad_density,
        distal_min=distal_min,
        distal_max=distal_max,
    )
    given = {k: v for k, v in values.items() if ctx.get_parameter_source(k).name != "DEFAULT"}
    cfg = sim_config(real_genome=genome is not None, **given)
    with progress_bar("simulating") as update:
        res = run(out, cfg, genome=genome, motifs=motifs, progress=in_kbp(update))
    info(
        f"wrote {res.genome} ({res.n_bases:,} bp, {len(res.chroms)} chromosomes), "
        f"{len(res.n_peaks)} markers in {res.markers}, {res.n_sites:,} planted sites in {res.truth}"
    )


# --- data summary ------------------------------------------------------------------------------
@command(data_app, "summary")
def data_summary(
    data: DataOptions,
    seed: SeedOpt = DEFAULT_DATA.seed,
    as_json: JsonOpt = False,
):
    """Windows kept and dropped, splits, and per-marker peaks and coverage."""
    from regtracks.data.prepare import summarize

    summary = summarize(prepare_task(data, seed))
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    print_summary(summary)


def print_summary(s: dict) -> None:
    from rich.table import Table

    con = stdout()
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
    clipped = any(m.get("clipped") for m in s["markers"])
    cols = ["name", "category", "peaks", "intervals", "covered bp", "positive %"]
    for col in cols + (["clipped"] if clipped else []):
        t.add_column(col, justify="left" if col in ("name", "category") else "right")
    for m in s["markers"]:
        row = [
            m["name"],
            m["category"],
            f"{m['peaks']:,}",
            f"{m['intervals']:,}",
            f"{m['covered_bp']:,}",
            f"{100 * m['positive_fraction']:.3f}",
        ]
        t.add_row(*row, *([f"{m.get('clipped', 0):,}"] if clipped else []))
    con.print(t)
