"""Genome-browser files from a hub folder's ``manifest.json``, and checks of a hub.

A *hub folder* ``HUB/`` holds bigWig tracks (``HUB/tracks/*.bw``, written by ``predict`` and
``saliency``) and ``HUB/manifest.json``, which lists them with their provenance. This module

* reads, validates and merges the manifest (:func:`load_manifest`, :func:`update_manifest`):
  re-running a command adds or replaces tracks by name and never drops the tracks written by
  another command;
* writes the browser files from it (:func:`build_hub`):

  - a UCSC **track hub** (``hub.txt``, ``genomes.txt``, ``<genome>/trackDb.txt``) when the genome
    is one UCSC hosts (manifest ``genome.ucsc``, e.g. ``hg19``), else an **assembly hub**, which
    adds ``<genome>/<genome>.2bit``, ``<genome>/chrom.sizes`` and a genome stanza with
    ``twoBitPath``, ``chromSizes``, ``organism`` and ``defaultPos``; with ``one_file=True`` a
    single ``hub.txt`` with ``useOneFile on`` (UCSC accepts assembly hubs in that form too);
  - one composite track per marker category (TFBS, Histone, DNase, ...) with subGroups marker x
    cell type, and one composite "Saliency"; a category with more than
    :attr:`~regtracks.config.HubDefaults.facet_threshold` tracks becomes a *faceted composite*
    (``compositeTrack faceted`` + ``metaDataUrl`` + ``primaryKey``, UCSC's interface for
    composites of thousands of subtracks; its subtracks are named ``<composite>_<key>`` and
    carry no subGroups, as UCSC's faceted-composite documentation requires);
  - prediction tracks: ``type bigWig 0 1``, ``viewLimits 0:1``, ``autoScale off``,
    ``windowingFunction mean``, ``maxHeightPixels``; saliency tracks: ``type bigWig lo hi``
    with their own ``viewLimits`` and ``autoScale on``;
  - each track's provenance (checkpoint, its SHA-256, model, test PR-AUC, command, ...) in a
    ``metadata`` line and in its description page (``html``);
  - ``igv_session.xml`` for IGV desktop (one Resource and Track per bigWig, one autoscale group
    per category; genome = the UCSC id or the relative path of the 2bit) and ``igv.html``, an
    igv.js (3.x) page with the same tracks. igv.js does not read ``viewLimits`` /
    ``windowingFunction`` faithfully from hubs, so the page sets ``min``, ``max``,
    ``autoscale``, ``windowFunction`` itself: predictions 0-1 as in UCSC, saliency autoscaled
    per group;

* checks a hub (:func:`check_hub`, implemented in :mod:`regtracks.tracks.hubcheck`) as UCSC's
  ``hubCheck`` does for hub text, and its data files.

Coordinates are 0-based half-open inside the code; ``defaultPos`` and IGV loci are written
1-based inclusive, as browsers show them. Every file is written through a temporary name and a
rename. Templates are the text files of ``hub_templates/`` (``string.Template``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape as html_escape
from pathlib import Path
from string import Template
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

from regtracks._util import RegtracksError, atomic_path, natural_key, write_text_atomic
from regtracks.config import CATEGORIES, CATEGORY_COLORS, DEFAULT_HUB, HubDefaults
from regtracks.tracks.twobit import read_2bit_sizes  # re-exported: hub checks read 2bit headers

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_FORMAT",
    "load_manifest",
    "update_manifest",
    "build_hub",
    "check_hub",
    "HubBuild",
    "read_2bit_sizes",
]

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "regtracks-manifest/1"
KINDS = ("prediction", "saliency")
SALIENCY_COMPOSITE = "Saliency"
IGV_JS_NAME = "igv.min.js"
_SYMBOL = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_COLOR = re.compile(r"^\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*$")


# =============================================================================================
# manifest
# =============================================================================================
def _hub_path(hub_dir: str | os.PathLike) -> Path:
    path = Path(hub_dir).expanduser()
    if path.name == "hub.txt" or path.name == MANIFEST_NAME:
        path = path.parent
    return path


def _check_color(text: object, where: str) -> str:
    m = _COLOR.match(str(text))
    if not m or any(int(v) > 255 for v in m.groups()):
        raise RegtracksError(f"{where}: color {text!r} is not R,G,B with values 0-255")
    return ",".join(m.groups())


def _check_genome(genome: object, where: str) -> dict:
    if not isinstance(genome, dict):
        raise RegtracksError(f"{where}: 'genome' must be an object")
    name = genome.get("name")
    if not isinstance(name, str) or not name.strip():
        raise RegtracksError(f"{where}: genome.name is missing")
    sizes = genome.get("chrom_sizes")
    if not isinstance(sizes, list) or not sizes:
        raise RegtracksError(
            f"{where}: genome.chrom_sizes must be a non-empty list of [chrom, size]"
        )
    clean = []
    for i, item in enumerate(sizes):
        ok = isinstance(item, list | tuple) and len(item) == 2
        if not ok or not isinstance(item[0], str) or not isinstance(item[1], int) or item[1] <= 0:
            raise RegtracksError(f"{where}: genome.chrom_sizes[{i}] is not [chrom, size > 0]")
        clean.append([item[0], int(item[1])])
    if len({c for c, _ in clean}) != len(clean):
        raise RegtracksError(f"{where}: genome.chrom_sizes names a chromosome twice")
    for key in ("fasta", "ucsc"):
        if genome.get(key) is not None and not isinstance(genome.get(key), str):
            raise RegtracksError(f"{where}: genome.{key} must be a string or null")
    return {
        "name": name.strip(),
        "fasta": genome.get("fasta") or None,
        "ucsc": genome.get("ucsc") or None,
        "chrom_sizes": clean,
    }


def _check_track(track: object, where: str) -> dict:
    if not isinstance(track, dict):
        raise RegtracksError(f"{where}: a track must be an object")
    for key in ("name", "file", "kind", "marker", "category"):
        if not isinstance(track.get(key), str) or not track[key].strip():
            raise RegtracksError(f"{where}: track field {key!r} is missing or empty")
    name = track["name"]
    if track["kind"] not in KINDS:
        raise RegtracksError(
            f"{where}: track {name}: kind {track['kind']!r} is not one of {', '.join(KINDS)}"
        )
    file = Path(track["file"])
    if file.is_absolute() or ".." in file.parts:
        raise RegtracksError(
            f"{where}: track {name}: file {track['file']!r} must be a path inside the hub folder"
        )
    out = dict(track)
    if out.get("color") is not None:
        out["color"] = _check_color(out["color"], f"{where}: track {name}")
    if out.get("provenance") is not None and not isinstance(out["provenance"], dict):
        raise RegtracksError(f"{where}: track {name}: provenance must be an object")
    if out.get("chroms") is not None and not isinstance(out["chroms"], list):
        raise RegtracksError(f"{where}: track {name}: chroms must be a list")
    return out


def _check_manifest(data: object, where: str) -> dict:
    if not isinstance(data, dict):
        raise RegtracksError(f"{where}: not a regtracks manifest (expected a JSON object)")
    if data.get("format") != MANIFEST_FORMAT:
        raise RegtracksError(f"{where}: format {data.get('format')!r} is not {MANIFEST_FORMAT!r}")
    genome = _check_genome(data.get("genome"), where)
    tracks = data.get("tracks", [])
    if not isinstance(tracks, list):
        raise RegtracksError(f"{where}: 'tracks' must be a list")
    clean, seen = [], set()
    for i, t in enumerate(tracks):
        t = _check_track(t, f"{where}: tracks[{i}]")
        if t["name"] in seen:
            raise RegtracksError(f"{where}: track name {t['name']!r} appears twice")
        seen.add(t["name"])
        clean.append(t)
    hub = data.get("hub") or {}
    if not isinstance(hub, dict):
        raise RegtracksError(f"{where}: 'hub' must be an object")
    out = {"format": MANIFEST_FORMAT, "genome": genome, "tracks": clean}
    if hub:
        out["hub"] = hub
    return out


def load_manifest(hub_dir: str | os.PathLike) -> dict:
    """Read and validate ``HUB/manifest.json``.

    Parameters
    ----------
    hub_dir : str or Path
        The hub folder (or its ``manifest.json`` / ``hub.txt``).

    Returns
    -------
    dict
        ``{"format", "genome": {name, fasta, ucsc, chrom_sizes}, "tracks": [...], "hub"?}``.
        Track ``file`` paths are relative to the hub folder.

    Raises
    ------
    RegtracksError
        Missing or malformed manifest, naming the field at fault.
    """
    path = _hub_path(hub_dir) / MANIFEST_NAME
    if not path.is_file():
        raise RegtracksError(f"{path}: no manifest (write tracks with `regtracks predict` first)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RegtracksError(f"{path}: not valid JSON ({exc})") from None
    return _check_manifest(data, str(path))


def _write_manifest(hub_dir: Path, manifest: dict) -> None:
    write_text_atomic(hub_dir / MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")


def update_manifest(hub_dir: str | os.PathLike, genome_info: dict, tracks: Sequence[dict]) -> dict:
    """Add or replace tracks (by name) in ``HUB/manifest.json``; keep every other track.

    Parameters
    ----------
    hub_dir : str or Path
        The hub folder; created when missing.
    genome_info : dict
        ``{"name", "fasta", "ucsc", "chrom_sizes": [[chrom, size], ...]}``. A hub holds one
        genome: chromosome sizes that differ from the manifest's are an error. ``fasta`` and
        ``ucsc`` given here (not None) replace the recorded ones.
    tracks : sequence of dict
        Track records (``name, file, kind, marker, category`` required; ``cell_type, color,
        bin_size, chroms, description, provenance`` optional). A track whose name is already
        listed replaces it in place; new ones are appended.

    Returns
    -------
    dict
        The manifest as written (atomically).
    """
    hub = _hub_path(hub_dir)
    where = str(hub / MANIFEST_NAME)
    genome = _check_genome(genome_info, "genome_info")
    new_tracks = [_check_track(t, f"tracks[{i}]") for i, t in enumerate(tracks)]
    if (hub / MANIFEST_NAME).exists():
        manifest = load_manifest(hub)
        old = manifest["genome"]
        if old["chrom_sizes"] != genome["chrom_sizes"]:
            raise RegtracksError(
                f"{where}: the hub holds tracks of genome {old['name']!r} "
                f"({len(old['chrom_sizes'])} chromosomes) and these tracks are of "
                f"{genome['name']!r} with other chromosomes or sizes; use another output folder"
            )
        for key in ("fasta", "ucsc"):
            if genome[key] is not None:
                old[key] = genome[key]
    else:
        manifest = {"format": MANIFEST_FORMAT, "genome": genome, "tracks": []}
    index = {t["name"]: i for i, t in enumerate(manifest["tracks"])}
    for t in new_tracks:
        if t["name"] in index:
            manifest["tracks"][index[t["name"]]] = t
        else:
            index[t["name"]] = len(manifest["tracks"])
            manifest["tracks"].append(t)
    hub.mkdir(parents=True, exist_ok=True)
    _write_manifest(hub, manifest)
    return manifest


# =============================================================================================
# 2bit
# =============================================================================================
def _default_write_2bit(fasta: Path, out: Path) -> None:
    """Write ``fasta`` as a 2bit file with :func:`regtracks.tracks.twobit.write_2bit`."""
    from regtracks.data.genome import Genome
    from regtracks.tracks.twobit import write_2bit

    write_2bit(Genome(fasta), out)


# =============================================================================================
# building
# =============================================================================================
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


@dataclass
class _Track:
    rec: dict
    name: str  # UCSC track name
    composite: str
    color: str
    short_label: str
    long_label: str
    display: str  # IGV / igv.js name
    view_limits: tuple[float, float] | None = None
    on: bool = True
    meta_key: str = ""


def _symbol(text: str) -> str:
    """UCSC symbolic name: letters, digits, underscores, starting with a letter."""
    s = re.sub(r"[^A-Za-z0-9_]+", "_", str(text)).strip("_") or "x"
    return s if s[0].isalpha() else "t_" + s


def _unique(name: str, taken: set[str]) -> str:
    out, k = name, 2
    while out in taken:
        out, k = f"{name}_{k}", k + 1
    taken.add(out)
    return out


def _fit(text: str, limit: int, *, ellipsis: bool = True) -> str:
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    if ellipsis and limit > 6:
        return text[: limit - 3].rstrip(" ,;:(") + "..."
    return text[:limit].rstrip()


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _fmt_num(x: float) -> str:
    return f"{x:.4g}"


def _templates_dir() -> Path:
    here = Path(__file__).resolve().parent  # regtracks/tracks
    # a wheel holds regtracks/hub_templates; a source checkout has them at its top
    for cand in (here.parent / "hub_templates", here.parent.parent / "hub_templates"):
        if cand.is_dir():
            return cand
    raise RegtracksError(f"hub_templates not found beside {here} (broken installation)")


def _render(name: str, **values: str) -> str:
    text = (_templates_dir() / name).read_text()
    try:
        return Template(text).substitute(values)
    except (KeyError, ValueError) as exc:  # pragma: no cover - template bug
        raise RegtracksError(f"hub template {name}: {exc}") from None


def _stanza(items: Sequence[tuple[str, object]], indent: str = "") -> str:
    return "\n".join(f"{indent}{k} {v}" for k, v in items if v is not None and v != "") + "\n"


def _meta_value(v: object) -> str:
    s = str(v).replace('"', "'").replace("\n", " ")
    return f'"{s}"' if (not s or re.search(r"\s", s)) else s


def _signal_range(path: Path) -> tuple[float, float] | None:
    """(min, max) of a bigWig from its zoom summaries, widened to include 0."""
    import pyBigWig

    try:
        bw = pyBigWig.open(str(path))
    except (RuntimeError, OSError):
        bw = None
    if bw is None:
        raise RegtracksError(f"{path}: pyBigWig cannot open it as a bigWig")
    try:
        lo, hi = 0.0, 0.0
        for chrom in bw.chroms():
            vmin = bw.stats(chrom, type="min")[0]
            vmax = bw.stats(chrom, type="max")[0]
            if vmin is not None:
                lo = min(lo, vmin)
            if vmax is not None:
                hi = max(hi, vmax)
    finally:
        bw.close()
    if lo == hi:
        hi = lo + 1.0
    return lo, hi


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


def _group_name(category: str, taken: set[str]) -> str:
    return _unique(_symbol(category), taken)


def _plan_tracks(
    manifest: dict, hub: Path, cfg: HubDefaults
) -> tuple[list[tuple[str, str, list[_Track]]], list[_Track]]:
    """Group tracks into composites and compute names, labels, colours.

    Returns ``[(composite_name, category_label, tracks), ...]`` in display order and the flat
    track list in the same order.
    """
    tracks = manifest["tracks"]
    for t in tracks:
        f = hub / t["file"]
        if not f.is_file():
            raise RegtracksError(f"track {t['name']}: file {f} not found (listed in manifest.json)")
    cats = sorted(
        {t["category"] for t in tracks if t["kind"] == "prediction"},
        key=lambda c: (CATEGORIES.index(c) if c in CATEGORIES else len(CATEGORIES), c),
    )
    taken: set[str] = set()
    groups: list[tuple[str, str, list[dict]]] = []
    for cat in cats:
        members = [t for t in tracks if t["kind"] == "prediction" and t["category"] == cat]
        groups.append((_group_name(cat, taken), cat, members))
    sal = [t for t in tracks if t["kind"] == "saliency"]
    if sal:
        groups.append((_group_name(SALIENCY_COMPOSITE, taken), SALIENCY_COMPOSITE, sal))

    out, flat = [], []
    for comp, label, members in groups:
        members = sorted(
            members,
            key=lambda t: (
                natural_key(t["marker"]),
                natural_key(t.get("cell_type") or ""),
                natural_key(t["name"]),
            ),
        )
        faceted = len(members) > cfg.facet_threshold
        planned = []
        for i, t in enumerate(members):
            key = _symbol(t["name"])
            name = _unique(f"{comp}_{key}" if faceted else key, taken)
            marker, cell = t["marker"], t.get("cell_type") or ""
            prov = t.get("provenance") or {}
            model = prov.get("model") or ""
            desc = t.get("description") or ""
            if t["kind"] == "saliency":
                color = t.get("color") or cfg.saliency_color
                display = f"{marker} saliency" + (f" {cell}" if cell else "")
                short = f"{marker} sal {cell}".strip()
                long = f"{marker} saliency" + (f", {cell}" if cell else "")
                view = _signal_range(hub / t["file"])
            else:
                color = t.get("color") or CATEGORY_COLORS.get(t["category"], cfg.other_color)
                display = short = f"{marker} {cell}".strip()
                what = "" if marker == t["category"] else f" {t['category']}"
                long = f"{marker}{what} prediction" + (f", {cell}" if cell else "")
                view = None
            long += f" ({model})" if model else ""
            long += f": {desc}" if desc else ""
            tr = _Track(
                rec=t,
                name=name,
                composite=comp,
                color=color,
                short_label=_fit(short, cfg.short_label_max, ellipsis=False),
                long_label=_fit(long, cfg.long_label_max),
                display=display,
                view_limits=view,
                on=i < cfg.visible_per_composite,
                meta_key=name[len(comp) + 1 :] if faceted else key,
            )
            planned.append(tr)
        out.append((comp, label, planned))
        flat.extend(planned)
    return out, flat


def _metadata_line(t: _Track) -> str:
    rec, prov = t.rec, t.rec.get("provenance") or {}
    items = [
        ("marker", rec["marker"]),
        ("category", rec["category"]),
        ("cell_type", rec.get("cell_type")),
        ("kind", rec["kind"]),
        ("model", prov.get("model")),
        ("bin_size", rec.get("bin_size")),
        ("window_len", prov.get("window_len")),
        ("test_pr_auc", prov.get("test_pr_auc")),
        ("checkpoint_sha256", (prov.get("checkpoint_sha256") or "")[:16] or None),
        ("created", prov.get("created")),
        ("regtracks_version", prov.get("regtracks_version")),
    ]
    return " ".join(f"{k}={_meta_value(v)}" for k, v in items if v is not None and v != "")


def _subgroup_def(tag: str, title: str, values: Sequence[str]) -> str:
    uniq = sorted({_symbol(v) for v in values}, key=natural_key)
    return f"{tag} {title} " + " ".join(f"{v}={v}" for v in uniq)


def _trackdb(
    plan: list[tuple[str, str, list[_Track]]],
    *,
    prefix: str,
    html_prefix: str,
    meta_prefix: str,
    cfg: HubDefaults,
) -> tuple[str, dict[str, str]]:
    """trackDb text and the faceted composites' metadata files (name -> TSV text)."""
    parts, metadata = [], {}
    for comp, label, tracks in plan:
        saliency = label == SALIENCY_COMPOSITE
        faceted = len(tracks) > cfg.facet_threshold
        n = len(tracks)
        models = sorted({(t.rec.get("provenance") or {}).get("model") or "" for t in tracks} - {""})
        by = f" by {', '.join(models)}" if models else ""
        if saliency:
            long = f"Saliency (input x gradient) of regtracks models, {_count(n, 'track')}"
            head = [
                ("track", comp),
                ("compositeTrack", "faceted" if faceted else "on"),
                ("shortLabel", _fit(label, cfg.short_label_max, ellipsis=False)),
                ("longLabel", _fit(long, cfg.long_label_max)),
                ("type", "bigWig"),
                ("visibility", "full"),
                ("autoScale", "on"),
            ]
        else:
            long = f"{label} predicted{by}, {_count(n, 'track')} (probability 0-1)"
            head = [
                ("track", comp),
                ("compositeTrack", "faceted" if faceted else "on"),
                ("shortLabel", _fit(label, cfg.short_label_max, ellipsis=False)),
                ("longLabel", _fit(long, cfg.long_label_max)),
                ("type", "bigWig 0 1"),
                ("visibility", "full"),
                ("viewLimits", "0:1"),
                ("autoScale", "off"),
            ]
        head += [
            ("maxHeightPixels", cfg.max_height_pixels),
            ("windowingFunction", "mean"),
            ("color", tracks[0].color),
        ]
        if faceted:
            meta_name = f"{comp}.metadata.tsv"
            head += [("metaDataUrl", meta_prefix + meta_name), ("primaryKey", "name")]
            rows = ["name\tmarker\tcategory\tcell_type\tkind\tmodel\ttest_pr_auc\tdescription"]
            for t in tracks:
                prov = t.rec.get("provenance") or {}
                cells = [
                    t.meta_key,
                    t.rec["marker"],
                    t.rec["category"],
                    t.rec.get("cell_type") or "",
                    t.rec["kind"],
                    prov.get("model") or "",
                    "" if prov.get("test_pr_auc") is None else str(prov.get("test_pr_auc")),
                    t.rec.get("description") or "",
                ]
                rows.append("\t".join(" ".join(str(c).split()) for c in cells))
            metadata[meta_name] = "\n".join(rows) + "\n"
        else:
            head += [
                ("subGroup1", _subgroup_def("marker", "Marker", [t.rec["marker"] for t in tracks])),
                (
                    "subGroup2",
                    _subgroup_def(
                        "cell", "Cell_type", [t.rec.get("cell_type") or "none" for t in tracks]
                    ),
                ),
                ("dimensions", "dimX=cell dimY=marker"),
                ("sortOrder", "marker=+ cell=+"),
                ("dragAndDrop", "subTracks"),
            ]
        parts.append(_stanza(head))
        for t in tracks:
            if saliency:
                lo, hi = t.view_limits
                ttype = f"bigWig {_fmt_num(lo)} {_fmt_num(hi)}"
                extra = [("viewLimits", f"{_fmt_num(lo)}:{_fmt_num(hi)}"), ("autoScale", "on")]
            else:
                ttype, extra = "bigWig 0 1", []
            items = [
                ("track", t.name),
                ("parent", f"{comp} {'on' if t.on else 'off'}"),
                ("shortLabel", t.short_label),
                ("longLabel", t.long_label),
                ("type", ttype),
                ("bigDataUrl", prefix + quote(Path(t.rec["file"]).as_posix())),
            ]
            if not faceted:
                cell = _symbol(t.rec.get("cell_type") or "none")
                items.append(("subGroups", f"marker={_symbol(t.rec['marker'])} cell={cell}"))
            items += extra
            items += [
                ("color", t.color),
                ("metadata", _metadata_line(t)),
                ("html", f"{html_prefix}{t.name}.html"),
            ]
            parts.append(_stanza(items, indent="    "))
    return "\n".join(parts), metadata


def _track_html(t: _Track) -> str:
    rec, prov = t.rec, t.rec.get("provenance") or {}
    rows = [("track", t.name), ("marker", rec["marker"]), ("category", rec["category"])]
    rows += [("cell type", rec.get("cell_type")), ("kind", rec["kind"])]
    rows += [("bin size (bp)", rec.get("bin_size"))]
    if rec.get("chroms"):
        rows.append(("chromosomes", ", ".join(map(str, rec["chroms"]))))
    rows += [(k.replace("_", " "), v) for k, v in prov.items()]
    body = "\n".join(
        f"<tr><th align=left>{html_escape(str(k))}</th><td>{html_escape(str(v))}</td></tr>"
        for k, v in rows
        if v is not None and v != ""
    )
    if rec["kind"] == "saliency":
        note = "input-times-gradient saliency of the model's output for this marker."
    else:
        note = "the model's probability (0-1) that the marker is present, averaged per bin."
    return _render(
        "track.html",
        title=html_escape(t.long_label),
        summary=html_escape(rec.get("description") or t.display),
        rows=body,
        file=html_escape(Path(rec["file"]).as_posix()),
        values_note=note,
    )


def _genome_stanza(
    *, genome: str, kind: str, trackdb: str | None, organism: str, default_pos: str
) -> str:
    items: list[tuple[str, object]] = [("genome", genome), ("trackDb", trackdb)]
    if kind == "assembly":
        items += [
            ("twoBitPath", f"{genome}/{genome}.2bit"),
            ("chromSizes", f"{genome}/chrom.sizes"),
            ("organism", organism),
            ("description", f"{organism} (assembly hub written by regtracks)"),
            ("defaultPos", default_pos),
        ]
    return _stanza(items)


def _igv_color(rgb: str) -> str:
    return f"rgb({rgb})"


def _session_xml(
    flat: list[_Track], *, genome_attr: str, kind: str, locus: str, groups: dict[str, int]
) -> str:
    res, trk = [], []
    for t in flat:
        path = Path(t.rec["file"]).as_posix()
        desc = t.long_label
        res.append(
            f"        <Resource name={quoteattr(t.display)} path={quoteattr(path)}"
            f' type="bigwig" description={quoteattr(desc)}/>'
        )
        if t.view_limits is None:
            lo, hi = 0.0, 1.0
        else:
            lo, hi = t.view_limits
        trk.append(
            f'        <Track attributeKey={quoteattr(Path(path).name)} autoScale="true"'
            f' autoscaleGroup="{groups[t.composite]}"'
            ' clazz="org.broad.igv.track.DataSourceTrack"'
            f' color="{t.color}" fontSize="10" height="40" id={quoteattr(path)}'
            f' name={quoteattr(t.display)} renderer="BAR_CHART" visible="true"'
            ' windowFunction="mean">\n'
            f'            <DataRange baseline="0.0" drawBaseline="true" flipAxis="false"'
            f' maximum="{hi:g}" minimum="{lo:g}" type="LINEAR"/>\n'
            "        </Track>"
        )
    return _render(
        "igv_session.xml",
        genome=quoteattr(genome_attr),
        has_gene_track="true" if kind == "ucsc" else "false",
        locus=quoteattr(locus),
        next_group=str(max(groups.values(), default=0) + 1),
        resources="\n".join(res),
        tracks="\n".join(trk),
    )


def _json_script(obj: object) -> str:
    """JSON safe to embed in an HTML <script> element."""
    text = json.dumps(obj, indent=2)
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def _igv_html(
    flat: list[_Track], *, genome: str, kind: str, locus: str, igv_src: str, title: str
) -> str:
    if kind == "assembly":
        options: dict = {
            "reference": {
                "id": genome,
                "name": genome,
                "twoBitURL": f"{genome}/{genome}.2bit",
                "chromSizesURL": f"{genome}/chrom.sizes",
            },
            "loadDefaultGenomes": False,
        }
    else:
        options = {"genome": genome}
    options["locus"] = locus
    options["showSampleNames"] = False
    tracks = []
    for i, t in enumerate(flat, start=1):
        cfg: dict = {
            "name": t.display,
            "type": "wig",
            "format": "bigwig",
            "url": Path(t.rec["file"]).as_posix(),
            "color": _igv_color(t.color),
            "height": 40,
            "windowFunction": "mean",
            "order": i,
        }
        if t.view_limits is None:
            cfg.update(min=0, max=1, autoscale=False)
        else:
            cfg.update(autoscale=True, autoscaleGroup=t.composite)
        cfg["description"] = t.long_label
        tracks.append(cfg)
    summary = f"{_count(len(flat), 'track')} on {html_escape(genome)}"
    return _render(
        "igv.html",
        title=html_escape(title),
        summary=summary,
        igv_src=html_escape(igv_src, quote=True),
        igv_src_json=json.dumps(igv_src),
        options=_json_script(options),
        tracks=_json_script(tracks),
    )


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
        gdir.mkdir(parents=True, exist_ok=True)
        writer = write_2bit or _default_write_2bit
        tmp = gdir / f".{twobit.name}.tmp.2bit"
        try:
            writer(fasta_path, tmp)
            got = read_2bit_sizes(tmp)
            if got != want:
                raise RegtracksError(
                    f"{fasta_path}: its sequences ({len(got)}) differ from the manifest's "
                    f"chrom_sizes ({len(want)}); is it the genome the tracks were made on?"
                )
            os.replace(tmp, twobit)
        finally:
            if tmp.exists():
                tmp.unlink()
        written.append(twobit)
    sizes_txt = "".join(f"{c}\t{s}\n" for c, s in want)
    cs = gdir / "chrom.sizes"
    if not cs.is_file() or cs.read_text() != sizes_txt:
        write_text_atomic(cs, sizes_txt)
    written.append(cs)
    return written


def _default_pos(
    flat: list[_Track], hub: Path, sizes: list[list], cfg: HubDefaults
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
        A local ``igv.min.js`` (igv.js 3.x) to copy into the hub, so that ``igv.html`` works
        offline. Without it a copy left by an earlier build is used, else igv.js's CDN.
    genome : path, optional
        Genome FASTA for the assembly hub's 2bit (recorded in the manifest).
    genome_name : str, optional
        A UCSC-hosted assembly (``hg19``, ``hg38``, ``mm10``, ...): write a plain track hub on it
        instead of an assembly hub (recorded in the manifest).
    email : str, optional
        Contact e-mail of ``hub.txt`` (recorded in the manifest).
    write_2bit : callable, optional
        ``write_2bit(fasta_path, out_path)``; default :func:`regtracks.tracks.twobit.write_2bit`.
        The result is read back and compared with the manifest's chromosome sizes.
    cfg : HubDefaults
        Label limits, facet threshold, colours, ...

    Returns
    -------
    HubBuild
    """
    hub = _hub_path(hub_dir)
    manifest = load_manifest(hub)
    if igv_js is not None:
        src = Path(igv_js).expanduser()
        if not src.is_file():
            raise RegtracksError(f"--igv-js {igv_js}: file not found")
        if b"createBrowser" not in src.read_bytes():
            raise RegtracksError(f"--igv-js {igv_js}: does not look like igv.js (no createBrowser)")
    if email is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+", email):
        raise RegtracksError(f"--email {email!r} is not an e-mail address")
    opts = dict(manifest.get("hub") or {})
    changed = False
    if genome is not None:
        gpath = Path(genome).expanduser().resolve()
        if not gpath.is_file():
            raise RegtracksError(f"{genome}: genome FASTA not found")
        manifest["genome"]["fasta"] = str(gpath)
        changed = True
    if genome_name is not None:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]*", genome_name):
            raise RegtracksError(f"--genome-name {genome_name!r} is not a UCSC assembly name")
        manifest["genome"]["ucsc"] = genome_name
        changed = True
    for key, val in (("one_file", one_file), ("email", email)):
        if val is not None and opts.get(key) != val:
            opts[key] = val
            changed = True
    if opts:
        manifest["hub"] = opts
    if changed:
        _write_manifest(hub, manifest)
    if not manifest["tracks"]:
        raise RegtracksError(f"{hub / MANIFEST_NAME}: lists no tracks; nothing to show")
    one = bool(opts.get("one_file", False))
    mail = str(opts.get("email") or cfg.email)

    g = manifest["genome"]
    kind = "ucsc" if g["ucsc"] else "assembly"
    gname = g["ucsc"] if kind == "ucsc" else _symbol(g["name"])
    plan, flat = _plan_tracks(manifest, hub, cfg)
    chrom, start, end = _default_pos(flat, hub, g["chrom_sizes"], cfg)
    default_pos = f"{chrom}:{start + 1}-{end}"

    files: list[Path] = []
    if kind == "assembly":
        files += _ensure_twobit(hub, gname, g["chrom_sizes"], g["fasta"], write_2bit)

    gdir = hub / gname
    prefix = "" if one else "../"
    html_prefix = f"{gname}/html/" if one else "html/"
    meta_prefix = f"{gname}/" if one else ""
    trackdb, metadata = _trackdb(
        plan, prefix=prefix, html_prefix=html_prefix, meta_prefix=meta_prefix, cfg=cfg
    )
    hub_name = _symbol(f"regtracks_{g['name']}")
    n = len(flat)
    kinds = sorted({t.rec["kind"] for t in flat}, key=KINDS.index)
    hub_long = f"regtracks {' and '.join(k for k in kinds)} tracks on {g['name']}"
    stanza = _genome_stanza(
        genome=gname,
        kind=kind,
        trackdb=None if one else f"{gname}/trackDb.txt",
        organism=g["name"],
        default_pos=default_pos,
    )
    layout = "useOneFile on" if one else "genomesFile genomes.txt"
    hub_txt = _render(
        "hub.txt",
        hub=hub_name,
        short_label=_fit(f"regtracks {g['name']}", cfg.short_label_max, ellipsis=False),
        long_label=_fit(hub_long, cfg.hub_long_label_max),
        layout=layout,
        email=mail,
        description_url="hub.html",
    )
    if one:
        hub_txt += "\n" + stanza + "\n" + trackdb
    _write_text(hub / "hub.txt", hub_txt)
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
        _write_text(html_dir / f"{t.name}.html", _track_html(t))
        files.append(html_dir / f"{t.name}.html")
    summary = f"{_count(n, 'track')} in {_count(len(plan), 'composite')} on {g['name']}"
    _write_text(hub / "hub.html", _render("hub.html", title=html_escape(hub_long), summary=summary))
    files.append(hub / "hub.html")

    # IGV desktop session and igv.js page
    groups = {comp: i for i, (comp, _, _) in enumerate(plan, start=1)}
    genome_attr = gname if kind == "ucsc" else f"{gname}/{gname}.2bit"
    _write_text(
        hub / "igv_session.xml",
        _session_xml(flat, genome_attr=genome_attr, kind=kind, locus=default_pos, groups=groups),
    )
    files.append(hub / "igv_session.xml")
    local_js = hub / IGV_JS_NAME
    if igv_js is not None:
        src = Path(igv_js).expanduser()
        if src.resolve() != local_js.resolve():
            with atomic_path(local_js) as tmp:
                shutil.copyfile(src, tmp)
        files.append(local_js)
    igv_src = IGV_JS_NAME if local_js.is_file() else cfg.igv_js_url
    _write_text(
        hub / "igv.html",
        _igv_html(
            flat, genome=gname, kind=kind, locus=default_pos, igv_src=igv_src, title=hub_long
        ),
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


def check_hub(hub_dir: str | os.PathLike, *, cfg: HubDefaults = DEFAULT_HUB):
    """Check a hub; see :func:`regtracks.tracks.hubcheck.check_hub`."""
    from regtracks.tracks.hubcheck import check_hub as _check

    return _check(hub_dir, cfg=cfg)
