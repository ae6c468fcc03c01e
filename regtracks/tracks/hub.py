"""Builds a hub folder's genome-browser files from its ``manifest.json`` (the driver).

:func:`build_hub` reads the manifest (:mod:`regtracks.tracks.manifest`), records the options
given (genome FASTA or UCSC id, one file, e-mail), lays the tracks out
(:mod:`regtracks.tracks.layout`), writes an assembly hub's ``<genome>/<genome>.2bit`` and
``chrom.sizes`` when they are missing or stale, picks the first view (``defaultPos``: the start
of the first chromosome with data), and writes

* the UCSC hub composed by :mod:`regtracks.tracks.trackdb`: ``hub.txt``, ``genomes.txt``,
  ``<genome>/trackDb.txt`` (or one ``hub.txt`` with ``useOneFile on``), faceted composites'
  metadata tables, the tracks' description pages and ``hub.html``;
* the IGV files composed by :mod:`regtracks.tracks.igv`: ``igv_session.xml`` and ``igv.html``
  (with a copy of a local ``igv.min.js``: the bundled igv.js unless ``igv_js`` names one).

Files of the other layout and stale pages of removed tracks are deleted. Coordinates are
0-based half-open inside the code; ``defaultPos`` and IGV loci are written 1-based inclusive,
as browsers show them. Every file is written through a temporary name and a rename; a file that
already holds the same text is left untouched. A hub is checked by
:func:`regtracks.tracks.hubcheck.check_hub`.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from regtracks._util import (
    RegtracksError,
    atomic_path,
    folder_lock,
    remove_stale_temps,
    write_text_atomic,
)
from regtracks.config import DEFAULT_HUB, HubDefaults
from regtracks.tracks.igv import IGV_JS_NAME, find_igv_js, igv_cdn_url, igv_html, session_xml
from regtracks.tracks.layout import Track, plan_tracks, symbol
from regtracks.tracks.manifest import KINDS, MANIFEST_NAME, hub_path, load_manifest, write_manifest
from regtracks.tracks.trackdb import genome_stanza, hub_html, hub_txt, track_html, trackdb_text
from regtracks.tracks.twobit import read_2bit_sizes

__all__ = ["build_hub", "HubBuild"]


@dataclass(frozen=True)
class HubBuild:
    """What :func:`build_hub` wrote.

    Attributes
    ----------
    hub_dir : Path
    kind : str
        ``"assembly"`` (own 2bit) or ``"ucsc"`` (a genome UCSC hosts).
    genome : str
        Genome name in the hub (UCSC id or the assembly hub's name).
    n_tracks : int
    composites : dict
        Composite name -> number of subtracks.
    faceted : tuple of str
        Composites written as faceted composites.
    files : tuple of Path
        Every file written, hub text first.
    default_pos : str
        The first view, 1-based (``chr1:1-100000``).
    """

    hub_dir: Path
    kind: str
    genome: str
    n_tracks: int
    composites: dict
    faceted: tuple[str, ...]
    files: tuple[Path, ...]
    default_pos: str


def _default_write_2bit(fasta: Path, out: Path) -> None:
    """Write ``fasta`` as a 2bit file with :func:`regtracks.tracks.twobit.write_2bit`."""
    from regtracks.data.genome import Genome
    from regtracks.tracks.twobit import write_2bit

    write_2bit(Genome(fasta), out)


def _first_data(path: Path, sizes: dict[str, int], chroms: Sequence[str]) -> tuple[str, int] | None:
    """First (chrom, start) with data in a bigWig, from its zoom-level coverage."""
    import pyBigWig

    try:
        bw = pyBigWig.open(str(path))
    except (RuntimeError, OSError):
        return None
    if bw is None:
        return None
    try:
        have = bw.chroms()
        for chrom in chroms:
            if chrom not in have:
                continue
            size = have[chrom]
            n = max(1, min(1000, size // 128))
            cov = bw.stats(chrom, 0, size, nBins=n, type="coverage")
            for i, c in enumerate(cov):
                if c:
                    return chrom, (size * i) // n
    finally:
        bw.close()
    return None


def _write_text(path: Path, text: str) -> None:
    """Write through a temporary file; leave a file that already holds ``text`` untouched."""
    try:
        if path.is_file() and path.read_text() == text:
            return
    except (OSError, UnicodeDecodeError):
        pass
    write_text_atomic(path, text)


def _ensure_twobit(
    hub: Path,
    genome: str,
    sizes: list[list],
    fasta: str | None,
    write_2bit: Callable[[Path, Path], None] | None,
) -> list[Path]:
    """Write (or keep, when current) ``<genome>/<genome>.2bit`` and ``chrom.sizes``."""
    gdir = hub / genome
    twobit = gdir / f"{genome}.2bit"
    want = [(c, int(s)) for c, s in sizes]
    fasta_path = Path(fasta).expanduser() if fasta else None
    current = False
    if twobit.is_file():
        try:
            current = read_2bit_sizes(twobit) == want
        except RegtracksError:
            current = False
        if current and fasta_path is not None and fasta_path.is_file():
            current = twobit.stat().st_mtime >= fasta_path.stat().st_mtime
    written = []
    if not current:
        if fasta_path is None or not fasta_path.is_file():
            shown = fasta_path if fasta_path is not None else "none recorded"
            raise RegtracksError(
                f"the assembly hub needs the genome FASTA to write {twobit.name} "
                f"(manifest genome.fasta: {shown}); pass --genome FASTA, or --genome-name "
                "for a genome UCSC hosts"
            )
        writer = write_2bit or _default_write_2bit

        def check(tmp: Path) -> None:
            got = read_2bit_sizes(tmp)
            if got != want:
                raise RegtracksError(
                    f"{fasta_path}: its sequences ({len(got)}) differ from the manifest's "
                    f"chrom_sizes ({len(want)}); is it the genome the tracks were made on?"
                )

        with atomic_path(twobit, check=check) as tmp:
            writer(fasta_path, tmp)
        written.append(twobit)
    sizes_txt = "".join(f"{c}\t{s}\n" for c, s in want)
    cs = gdir / "chrom.sizes"
    if not cs.is_file() or cs.read_text() != sizes_txt:
        write_text_atomic(cs, sizes_txt)
    written.append(cs)
    return written


def _default_pos(
    flat: list[Track], hub: Path, sizes: list[list], cfg: HubDefaults
) -> tuple[str, int, int]:
    """0-based half-open first view on the first chromosome with data."""
    order = [c for c, _ in sizes]
    size = {c: int(s) for c, s in sizes}
    preds = [t for t in flat if t.rec["kind"] == "prediction"] or flat
    listed = [c for c in order if any(c in (t.rec.get("chroms") or []) for t in preds)]
    found = None
    for t in preds[:1] + [t for t in flat if t.rec["kind"] == "saliency"][:1]:
        found = _first_data(hub / t.rec["file"], size, listed or order)
        if found:
            break
    if found is None:
        chrom = listed[0] if listed else order[0]
        start = 0
    else:
        chrom, start = found
    end = min(size.get(chrom, start + cfg.default_view_bp), start + cfg.default_view_bp)
    if end - start < cfg.default_view_bp:
        start = max(0, end - cfg.default_view_bp)
    return chrom, start, end


def build_hub(
    hub_dir: str | os.PathLike,
    *,
    one_file: bool | None = None,
    igv_js: str | os.PathLike | None = None,
    genome: str | os.PathLike | None = None,
    genome_name: str | None = None,
    email: str | None = None,
    peaks: bool | None = None,
    write_2bit: Callable[[Path, Path], None] | None = None,
    cfg: HubDefaults = DEFAULT_HUB,
) -> HubBuild:
    """Write the UCSC hub, ``igv_session.xml`` and ``igv.html`` of a hub folder.

    Parameters
    ----------
    hub_dir : str or Path
        Hub folder holding ``manifest.json`` and the bigWigs it lists.
    one_file : bool, optional
        Write a single ``hub.txt`` with ``useOneFile on``. ``None``: as last recorded in the
        manifest (default: three files). The files of the other layout are removed.
    igv_js : path, optional
        A local ``igv.min.js`` (igv.js 3.x) to copy into the hub for ``igv.html``. Without it
        the hub's copy from an earlier build is kept, else the igv.js bundled with regtracks
        (or an installed npm ``igv``, :func:`regtracks.tracks.igv.find_igv_js`) is copied, so
        that the page works offline; only with none of these it loads igv.js's CDN.
    genome : path, optional
        Genome FASTA for the assembly hub's 2bit (recorded in the manifest).
    genome_name : str, optional
        A UCSC-hosted assembly (``hg19``, ``hg38``, ``mm10``, ...): write a plain track hub on it
        instead of an assembly hub (recorded in the manifest).
    email : str, optional
        Contact e-mail of ``hub.txt`` (recorded in the manifest).
    peaks : bool, optional
        Show the observed-peak tracks (kind ``peaks``) of the manifest. ``None``: as last
        recorded in the manifest (default: yes).
    write_2bit : callable, optional
        ``write_2bit(fasta_path, out_path)``; default :func:`regtracks.tracks.twobit.write_2bit`.
        The result is read back and compared with the manifest's chromosome sizes.
    cfg : HubDefaults
        Label limits, facet threshold, colours, ...

    Returns
    -------
    HubBuild
    """
    hub = hub_path(hub_dir)
    with folder_lock(hub, "regtracks hub build"):
        remove_stale_temps(hub)
        return _build_hub_locked(
            hub, one_file=one_file, igv_js=igv_js, genome=genome, genome_name=genome_name,
            email=email, peaks=peaks, write_2bit=write_2bit, cfg=cfg,
        )  # fmt: skip


def check_hub_options(
    *,
    igv_js: str | os.PathLike | None = None,
    genome: str | os.PathLike | None = None,
    genome_name: str | None = None,
    email: str | None = None,
    **_ignored,
) -> None:
    """The checks of :func:`build_hub`'s options that need no hub: ``predict`` makes them
    before it scans, so that a bad ``--genome-name`` or ``--email`` does not fail after the
    long work.

    Raises
    ------
    RegtracksError
        Naming the option and its value.
    """
    if igv_js is not None:
        src = Path(igv_js).expanduser()
        if not src.is_file():
            raise RegtracksError(f"--igv-js {igv_js}: file not found")
        if b"createBrowser" not in src.read_bytes():
            raise RegtracksError(f"--igv-js {igv_js}: does not look like igv.js (no createBrowser)")
    if email is not None and not re.fullmatch(r"[^@\s\"<>]+@[^@\s\"<>]+\.[^@\s\"<>]+", email):
        raise RegtracksError(f"--email {email!r} is not an e-mail address")
    if genome is not None and not Path(genome).expanduser().is_file():
        raise RegtracksError(f"{genome}: genome FASTA not found")
    if genome_name is not None and not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]*", genome_name):
        raise RegtracksError(
            f"--genome-name {genome_name!r} is not a UCSC assembly name (letters, digits, "
            "'_', '.', '-', starting with a letter: hg19, hg38, mm10, ...)"
        )


def _fasta_sizes(path: Path) -> list[list]:
    """``[[name, size], ...]`` of a FASTA, in file order (from its index, built if missing)."""
    from regtracks.data.genome import Genome

    return [[c, int(n)] for c, n in Genome(path).chrom_sizes]


def _build_hub_locked(
    hub: Path, *, one_file, igv_js, genome, genome_name, email, peaks, write_2bit, cfg
) -> HubBuild:
    """The body of :func:`build_hub`, run while holding the hub folder's lock."""
    check_hub_options(igv_js=igv_js, genome=genome, genome_name=genome_name, email=email)
    manifest = load_manifest(hub)
    opts = dict(manifest.get("hub") or {})
    changed = False
    if genome is not None:
        gpath = Path(genome).expanduser().resolve()
        got = _fasta_sizes(gpath)
        want = [[str(c), int(n)] for c, n in manifest["genome"]["chrom_sizes"]]
        if got != want:
            raise RegtracksError(
                f"--genome {genome}: its sequences ({len(got)}) are not the chromosomes and "
                f"sizes the tracks of {hub / MANIFEST_NAME} were made on ({len(want)}, genome "
                f"{manifest['genome']['name']!r})"
            )
        manifest["genome"]["fasta"] = str(gpath)
        changed = True
    if genome_name is not None:
        manifest["genome"]["ucsc"] = genome_name
        changed = True
    for key, val in (("one_file", one_file), ("email", email), ("peaks", peaks)):
        if val is not None and opts.get(key) != val:
            opts[key] = val
            changed = True
    if opts:
        manifest["hub"] = opts
    if changed:
        write_manifest(hub, manifest)
    if not manifest["tracks"]:
        raise RegtracksError(f"{hub / MANIFEST_NAME}: lists no tracks; nothing to show")
    one = bool(opts.get("one_file", False))
    mail = str(opts.get("email") or cfg.email)

    g = manifest["genome"]
    kind = "ucsc" if g["ucsc"] else "assembly"
    gname = g["ucsc"] if kind == "ucsc" else symbol(g["name"])
    if opts.get("peaks") is False:
        manifest = {**manifest, "tracks": [t for t in manifest["tracks"] if t["kind"] != "peaks"]}
    plan, flat = plan_tracks(manifest, hub, cfg)
    chrom, start, end = _default_pos(flat, hub, g["chrom_sizes"], cfg)
    default_pos = f"{chrom}:{start + 1}-{end}"

    files: list[Path] = []
    if kind == "assembly":
        files += _ensure_twobit(hub, gname, g["chrom_sizes"], g["fasta"], write_2bit)

    gdir = hub / gname
    prefix = "" if one else "../"
    html_prefix = f"{gname}/html/" if one else "html/"
    meta_prefix = f"{gname}/" if one else ""
    trackdb, metadata = trackdb_text(
        plan, prefix=prefix, html_prefix=html_prefix, meta_prefix=meta_prefix, cfg=cfg
    )
    n = len(flat)
    kinds = sorted({t.rec["kind"] for t in flat}, key=KINDS.index)
    hub_long = f"regtracks {' and '.join(k for k in kinds)} tracks on {g['name']}"
    stanza = genome_stanza(
        genome=gname,
        kind=kind,
        trackdb=None if one else f"{gname}/trackDb.txt",
        organism=g["name"],
        default_pos=default_pos,
    )
    hub_text = hub_txt(
        g["name"], hub_long, email=mail, cfg=cfg, one_file=(stanza, trackdb) if one else None
    )
    _write_text(hub / "hub.txt", hub_text)
    files.append(hub / "hub.txt")
    if one:
        for stale in (hub / "genomes.txt", gdir / "trackDb.txt"):
            stale.unlink(missing_ok=True)
    else:
        _write_text(hub / "genomes.txt", stanza)
        _write_text(gdir / "trackDb.txt", trackdb)
        files += [hub / "genomes.txt", gdir / "trackDb.txt"]
    # faceted composites' metadata, and the description pages; stale ones of ours go
    for old in gdir.glob("*.metadata.tsv"):
        if old.name not in metadata:
            old.unlink()
    for name, text in metadata.items():
        _write_text(gdir / name, text)
        files.append(gdir / name)
    html_dir = gdir / "html"
    wanted = {f"{t.name}.html" for t in flat}
    if html_dir.is_dir():
        for old in html_dir.glob("*.html"):
            if old.name not in wanted:
                old.unlink()
    for t in flat:
        _write_text(html_dir / f"{t.name}.html", track_html(t))
        files.append(html_dir / f"{t.name}.html")
    _write_text(
        hub / "hub.html",
        hub_html(title=hub_long, n_tracks=n, n_composites=len(plan), genome_name=g["name"]),
    )
    files.append(hub / "hub.html")

    # IGV desktop session and igv.js page
    groups = {comp: i for i, (comp, _, _) in enumerate(plan, start=1)}
    genome_attr = gname if kind == "ucsc" else f"{gname}/{gname}.2bit"
    _write_text(
        hub / "igv_session.xml",
        session_xml(flat, genome_attr=genome_attr, kind=kind, locus=default_pos, groups=groups),
    )
    files.append(hub / "igv_session.xml")
    # igv.js: --igv-js, else the hub's copy, else the bundled one or an npm igv, else the CDN
    local_js = hub / IGV_JS_NAME
    if igv_js is not None:
        src: Path | None = Path(igv_js).expanduser()
    elif local_js.is_file():
        src = None
    else:
        found = find_igv_js()
        src = found[0] if found is not None else None
    if src is not None and src.resolve() != local_js.resolve():
        with atomic_path(local_js) as tmp:
            shutil.copyfile(src, tmp)
    if local_js.is_file():
        files.append(local_js)
    igv_src = IGV_JS_NAME if local_js.is_file() else igv_cdn_url(cfg)
    _write_text(
        hub / "igv.html",
        igv_html(flat, genome=gname, kind=kind, locus=default_pos, igv_src=igv_src, title=hub_long),
    )
    files.append(hub / "igv.html")
    faceted = tuple(c for c, _, ts in plan if len(ts) > cfg.facet_threshold)
    return HubBuild(
        hub_dir=hub,
        kind=kind,
        genome=gname,
        n_tracks=n,
        composites={c: len(ts) for c, _, ts in plan},
        faceted=faceted,
        files=tuple(files),
        default_pos=default_pos,
    )
