"""``regtracks hub build`` / ``hub check`` and ``regtracks serve``: a hub's browser files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from regtracks.cli.common import Group, command, fail, info, stderr
from regtracks.cli.options import (
    EmailOpt,
    GenomeNameOpt,
    HostOpt,
    HubArg,
    IgvJsOpt,
    MaxConnectionsOpt,
    OneFileOpt,
    PeaksOpt,
    PortOpt,
    TimeoutOpt,
    VerboseOpt,
    genome_option,
)
from regtracks.config import DEFAULT_SERVE

app = typer.Typer()
hub_app = typer.Typer(
    cls=Group,
    help="Browser files of a hub folder: UCSC track hub, IGV session, igv.js page.",
    no_args_is_help=True,
)
app.add_typer(hub_app, name="hub")


# --- serve -------------------------------------------------------------------------------------
@command(app)
def serve(
    hub: HubArg,
    port: PortOpt = DEFAULT_SERVE.port,
    host: HostOpt = DEFAULT_SERVE.host,
    verbose: VerboseOpt = False,
    timeout: TimeoutOpt = DEFAULT_SERVE.timeout,
    max_connections: MaxConnectionsOpt = DEFAULT_SERVE.max_workers,
):
    """Serve a hub folder over HTTP with Range requests and CORS (UCSC, IGV, igv.js).

    Prints the URLs to open (the igv.js page first, then hub.txt for UCSC), then serves until
    Ctrl-C.
    """
    import math

    from regtracks.tracks.serve import serve as run

    if max_connections < 1:
        fail(f"--max-connections must be at least 1, got {max_connections}")
    if not (timeout > 0 and math.isfinite(timeout)):
        fail(f"--timeout must be a positive number of seconds, got {timeout}")

    def ready(where):
        if where.igv_url:
            typer.echo(f"igv.js page, open in a web browser: {where.igv_url}")
        if where.hub_url:
            typer.echo(f"track hub, for UCSC's My Hubs:      {where.hub_url}")
        info(f"serving {hub} at {where.base_url}")
        if not (where.hub_url or where.igv_url):
            info("[yellow]note:[/yellow] no hub.txt or igv.html in this folder")
        if where.host in ("0.0.0.0", "::"):
            info("listening on every interface: from elsewhere use this machine's address")
        info("UCSC needs the server reachable from the internet; IGV and igv.js work locally")
        info("press Ctrl-C to stop")

    run(
        hub,
        host=host,
        port=port,
        log=info if verbose else None,
        on_ready=ready,
        timeout=timeout,
        max_workers=max_connections,
        max_waiting=max(max_connections, DEFAULT_SERVE.max_waiting),
    )
    info("stopped")


# --- hub build / check -------------------------------------------------------------------------
@command(hub_app, "build")
def hub_build(
    hub: HubArg,
    one_file: OneFileOpt = None,
    igv_js: IgvJsOpt = None,
    genome_name: GenomeNameOpt = None,
    genome: Annotated[Path, genome_option("Genome FASTA for the assembly hub's 2bit.")] = None,
    email: EmailOpt = None,
    peaks: PeaksOpt = None,
):
    """Write hub.txt, genomes.txt, trackDb.txt, igv_session.xml and igv.html from manifest.json.

    igv.html loads igv.js from the hub folder, so it works offline: --igv-js FILE, else the
    hub's copy, else the igv.js bundled with regtracks (or an installed npm igv); only when
    none is found does it load igv.js from its CDN (and needs the network).
    """
    from regtracks.tracks.hub import build_hub
    from regtracks.tracks.igv import IGV_JS_NAME

    res = build_hub(
        hub,
        one_file=one_file,
        igv_js=igv_js,
        genome=genome,
        genome_name=genome_name,
        email=email,
        peaks=peaks,
    )
    comps = ", ".join(f"{c} {n}" for c, n in res.composites.items())
    what = "assembly hub" if res.kind == "assembly" else f"track hub on UCSC's {res.genome}"
    faceted = f"; faceted: {', '.join(res.faceted)}" if res.faceted else ""
    info(
        f"wrote {what} in {res.hub_dir}: {res.n_tracks} tracks ({comps}{faceted}), "
        f"igv_session.xml, igv.html; first view {res.default_pos}"
    )
    if (res.hub_dir / IGV_JS_NAME).is_file():
        info(
            f"igv.html works offline ({IGV_JS_NAME} is in the hub); open it: regtracks serve {hub}"
        )
    else:
        info(
            "[yellow]note:[/yellow] no local igv.js found: igv.html loads igv.js from its CDN "
            "and needs the network (--igv-js FILE for an offline page)"
        )


@command(hub_app, "check")
def hub_check(hub: HubArg):
    """Check a hub as UCSC's hubCheck does, and its bigWigs: one line per problem, exit 1."""
    from regtracks.tracks.hubcheck import check_hub

    res = check_hub(hub)
    for line in res.problems:
        typer.echo(line)
    if res.problems:
        n = len(res.problems)
        stderr().print(f"[bold red]{n} problem{'s' if n != 1 else ''}[/bold red] in {res.hub_file}")
        raise typer.Exit(1)
    typer.echo(
        f"OK {res.hub_file}: genome {', '.join(res.genomes)}, {res.n_tracks} track stanzas, "
        f"{res.n_files} data files checked"
    )
