"""Composes the UCSC hub's text: ``hub.txt``, ``genomes.txt``, ``trackDb.txt``, html pages.

From the plan of :func:`regtracks.tracks.layout.plan_tracks`:

* a UCSC **track hub** (``hub.txt``, ``genomes.txt``, ``<genome>/trackDb.txt``) when the genome
  is one UCSC hosts (manifest ``genome.ucsc``, e.g. ``hg19``), else an **assembly hub**, whose
  genome stanza adds ``twoBitPath``, ``chromSizes``, ``organism`` and ``defaultPos``; or a
  single ``hub.txt`` with ``useOneFile on`` (UCSC accepts assembly hubs in that form too);
* one composite track per marker category with subGroups marker x cell type, and one composite
  "Saliency"; a category with more than :attr:`~regtracks.config.HubDefaults.facet_threshold`
  tracks becomes a *faceted composite* (``compositeTrack faceted`` + ``metaDataUrl`` +
  ``primaryKey``, UCSC's interface for composites of thousands of subtracks; its subtracks
  carry no subGroups, as UCSC's faceted-composite documentation requires) with its metadata
  table (``<composite>.metadata.tsv``);
* prediction tracks: ``type bigWig 0 1``, ``viewLimits 0:1``, ``autoScale off``,
  ``windowingFunction mean``, ``maxHeightPixels``; saliency tracks: ``type bigWig lo hi``
  with their own ``viewLimits`` and ``autoScale on``;
* each track's provenance (checkpoint, its SHA-256, model, test PR-AUC, command, ...) in a
  ``metadata`` line and in its description page (``html``), and the hub's page ``hub.html``.

Templates are the text files of ``hub_templates/`` (``string.Template``), found by
:func:`templates_dir` and filled by :func:`render` (the IGV writer uses them too).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import escape as html_escape
from pathlib import Path
from string import Template
from urllib.parse import quote

from regtracks._util import RegtracksError, natural_key
from regtracks.config import HubDefaults
from regtracks.tracks.layout import (
    PEAKS_COMPOSITE,
    SALIENCY_COMPOSITE,
    Track,
    count,
    fit,
    score_note,
    split_note,
    symbol,
)

__all__ = [
    "templates_dir",
    "render",
    "hub_txt",
    "genome_stanza",
    "trackdb_text",
    "track_html",
    "hub_html",
]


def _fmt_num(x: float) -> str:
    return f"{x:.4g}"


def templates_dir() -> Path:
    """The folder of the hub templates: ``regtracks/hub_templates`` or the checkout's own."""
    here = Path(__file__).resolve().parent  # regtracks/tracks
    # a wheel holds regtracks/hub_templates; a source checkout has them at its top
    for cand in (here.parent / "hub_templates", here.parent.parent / "hub_templates"):
        if cand.is_dir():
            return cand
    raise RegtracksError(f"hub_templates not found beside {here} (broken installation)")


def render(name: str, **values: str) -> str:
    """The template ``name`` of :func:`templates_dir` with its ``$placeholders`` filled."""
    text = (templates_dir() / name).read_text()
    try:
        return Template(text).substitute(values)
    except (KeyError, ValueError) as exc:  # pragma: no cover - template bug
        raise RegtracksError(f"hub template {name}: {exc}") from None


def _stanza(items: Sequence[tuple[str, object]], indent: str = "") -> str:
    return "\n".join(f"{indent}{k} {v}" for k, v in items if v is not None and v != "") + "\n"


def _meta_value(v: object) -> str:
    s = str(v).replace('"', "'").replace("\n", " ")
    return f'"{s}"' if (not s or re.search(r"\s", s)) else s


def _metadata_line(t: Track) -> str:
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
        ("test_chance", prov.get("test_chance")),
        ("split", split_note(rec) or None),
        ("checkpoint_sha256", (prov.get("checkpoint_sha256") or "")[:16] or None),
        ("created", prov.get("created")),
        ("regtracks_version", prov.get("regtracks_version")),
    ]
    return " ".join(f"{k}={_meta_value(v)}" for k, v in items if v is not None and v != "")


def _subgroup_def(tag: str, title: str, values: Sequence[str]) -> str:
    uniq = sorted({symbol(v) for v in values}, key=natural_key)
    return f"{tag} {title} " + " ".join(f"{v}={v}" for v in uniq)


def trackdb_text(
    plan: list[tuple[str, str, list[Track]]],
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
        peaks = label == PEAKS_COMPOSITE
        faceted = len(tracks) > cfg.facet_threshold
        n = len(tracks)
        models = sorted({(t.rec.get("provenance") or {}).get("model") or "" for t in tracks} - {""})
        by = f" by {', '.join(models)}" if models else ""
        if peaks:
            long = f"Observed peaks (the training and test labels), {count(n, 'track')}"
            head = [
                ("track", comp),
                ("compositeTrack", "faceted" if faceted else "on"),
                ("shortLabel", fit("Peaks", cfg.short_label_max, ellipsis=False)),
                ("longLabel", fit(long, cfg.long_label_max)),
                ("type", "bigBed 4"),
                ("visibility", "dense"),
            ]
        elif saliency:
            long = f"Saliency (input x gradient) of regtracks models, {count(n, 'track')}"
            head = [
                ("track", comp),
                ("compositeTrack", "faceted" if faceted else "on"),
                ("shortLabel", fit(label, cfg.short_label_max, ellipsis=False)),
                ("longLabel", fit(long, cfg.long_label_max)),
                ("type", "bigWig"),
                ("visibility", "full"),
                ("autoScale", "on"),
            ]
        else:
            long = f"{label} predicted{by}, {count(n, 'track')} (probability 0-1)"
            head = [
                ("track", comp),
                ("compositeTrack", "faceted" if faceted else "on"),
                ("shortLabel", fit(label, cfg.short_label_max, ellipsis=False)),
                ("longLabel", fit(long, cfg.long_label_max)),
                ("type", "bigWig 0 1"),
                ("visibility", "full"),
                ("viewLimits", "0:1"),
                ("autoScale", "off"),
            ]
        if not peaks:
            head += [
                ("maxHeightPixels", cfg.max_height_pixels),
                ("windowingFunction", "mean"),
            ]
        head.append(("color", tracks[0].color))
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
            if peaks:
                ttype, extra = "bigBed 4", []
            elif saliency:
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
                cell = symbol(t.rec.get("cell_type") or "none")
                items.append(("subGroups", f"marker={symbol(t.rec['marker'])} cell={cell}"))
            items += extra
            items += [
                ("color", t.color),
                ("metadata", _metadata_line(t)),
                ("html", f"{html_prefix}{t.name}.html"),
            ]
            parts.append(_stanza(items, indent="    "))
    return "\n".join(parts), metadata


def track_html(t: Track) -> str:
    """A track's description page (its ``html`` setting): what it shows and its provenance."""
    rec, prov = t.rec, t.rec.get("provenance") or {}
    rows = [("track", t.name), ("marker", rec["marker"]), ("category", rec["category"])]
    rows += [("cell type", rec.get("cell_type")), ("kind", rec["kind"])]
    rows += [("bin size (bp)", rec.get("bin_size"))]
    if rec.get("chroms"):
        split = rec.get("split") or {}
        rows.append(
            (
                "chromosomes (training split)",
                ", ".join(f"{c} ({split[c]})" if c in split else str(c) for c in rec["chroms"]),
            )
        )
    if score_note(rec):
        rows.append(("how good", score_note(rec)))
    rows += [(k.replace("_", " "), v) for k, v in prov.items()]
    body = "\n".join(
        f"<tr><th align=left>{html_escape(str(k))}</th><td>{html_escape(str(v))}</td></tr>"
        for k, v in rows
        if v is not None and v != ""
    )
    if rec["kind"] == "peaks":
        note = (
            "the marker's peaks from its peak file, merged and clipped to the chromosomes: the "
            "intervals the model's labels are made of (training and test chromosomes alike)."
        )
    elif rec["kind"] == "saliency":
        note = "input-times-gradient saliency of the model's output for this marker."
    else:
        note = "the model's probability (0-1) that the marker is present, averaged per bin."
    return render(
        "track.html",
        title=html_escape(t.long_label),
        summary=html_escape(rec.get("description") or t.display),
        rows=body,
        file=html_escape(Path(rec["file"]).as_posix()),
        values_note=note,
    )


def genome_stanza(
    *, genome: str, kind: str, trackdb: str | None, organism: str, default_pos: str
) -> str:
    """The genome stanza (``genomes.txt``); an assembly hub's names its 2bit and chrom.sizes."""
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


def hub_txt(
    genome_name: str,
    long_label: str,
    *,
    email: str,
    cfg: HubDefaults,
    one_file: tuple[str, str] | None = None,
) -> str:
    """``hub.txt``: the hub stanza, then with ``one_file=(genome_stanza, trackdb)`` both of them
    (``useOneFile on``), else a pointer to ``genomes.txt``."""
    text = render(
        "hub.txt",
        hub=symbol(f"regtracks_{genome_name}"),
        short_label=fit(f"regtracks {genome_name}", cfg.short_label_max, ellipsis=False),
        long_label=fit(long_label, cfg.hub_long_label_max),
        layout="useOneFile on" if one_file is not None else "genomesFile genomes.txt",
        email=email,
        description_url="hub.html",
    )
    if one_file is not None:
        stanza, trackdb = one_file
        text += "\n" + stanza + "\n" + trackdb
    return text


def hub_html(*, title: str, n_tracks: int, n_composites: int, genome_name: str) -> str:
    """``hub.html``, the hub's ``descriptionUrl`` page."""
    summary = f"{count(n_tracks, 'track')} in {count(n_composites, 'composite')} on {genome_name}"
    return render("hub.html", title=html_escape(title), summary=summary)
