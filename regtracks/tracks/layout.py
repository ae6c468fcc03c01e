"""Lays out a manifest's tracks for the browsers: composites, order, names, labels, colours.

:func:`plan_tracks` groups the tracks into one composite per marker category (TFBS, Histone,
DNase, ...; in :data:`regtracks.config.CATEGORIES` order) and one composite "Saliency", sorts
each composite by marker, cell type and name, and gives every track a UCSC name (a symbol,
unique in the hub; ``<composite>_<key>`` in a composite of more than
:attr:`~regtracks.config.HubDefaults.facet_threshold` tracks, which the UCSC writer makes a
faceted composite), labels fitted to UCSC's limits, a colour, an IGV name and, for saliency,
the value range read from the bigWig. The UCSC writer (:mod:`regtracks.tracks.trackdb`) and the
IGV writer (:mod:`regtracks.tracks.igv`) both show this plan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from regtracks._util import RegtracksError, natural_key
from regtracks.config import CATEGORIES, CATEGORY_COLORS, HubDefaults

__all__ = [
    "SALIENCY_COMPOSITE",
    "PEAKS_COMPOSITE",
    "Track",
    "plan_tracks",
    "symbol",
    "fit",
    "count",
    "split_note",
    "score_note",
]

SALIENCY_COMPOSITE = "Saliency"
PEAKS_COMPOSITE = "Observed peaks"


@dataclass
class Track:
    """One track as the browsers show it; ``rec`` is its manifest record."""

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


def symbol(text: str) -> str:
    """UCSC symbolic name: letters, digits, underscores, starting with a letter."""
    s = re.sub(r"[^A-Za-z0-9_]+", "_", str(text)).strip("_") or "x"
    return s if s[0].isalpha() else "t_" + s


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or ``name_2``, ``name_3``, ... when taken; the result is added to ``taken``."""
    out, k = name, 2
    while out in taken:
        out, k = f"{name}_{k}", k + 1
    taken.add(out)
    return out


_SPLIT_ORDER = ("test", "valid", "train", "unused")


def split_note(rec: dict) -> str:
    """Which training split the chromosomes of a track belong to, for its labels.

    ``chr3 test``, ``chr1 train, chr3 test``, ``4 train chroms``; ``random split, windows of
    every split on each chromosome``; ``""`` when the manifest record has no ``split``.
    """
    split = rec.get("split") or {}
    if not isinstance(split, dict) or not split:
        return ""
    if all(v == "random" for v in split.values()):
        return "random split, training windows on every chromosome"
    parts = []
    for part in _SPLIT_ORDER:
        cs = [c for c, v in split.items() if v == part]
        if cs:
            shown = ",".join(cs) if len(cs) <= 2 else f"{len(cs)} {part} chroms"
            parts.append(shown if len(cs) > 2 else f"{shown} {part}")
    return ", ".join(parts)


def score_note(rec: dict) -> str:
    """``test PR-AUC 0.79 (chance 0.05)`` from the track's provenance (``""`` without one)."""
    prov = rec.get("provenance") or {}
    auc, chance = prov.get("test_pr_auc"), prov.get("test_chance")
    if not isinstance(auc, int | float):
        return ""
    text = f"test PR-AUC {auc:.2f}"
    if isinstance(chance, int | float):
        text += f" (chance {chance:.2f})" if chance >= 0.005 else f" (chance {chance:.3f})"
    return text


def fit(text: str, limit: int, *, ellipsis: bool = True) -> str:
    """``text`` on one line, cut to ``limit`` characters (ending in ``...`` when ``ellipsis``)."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    if ellipsis and limit > 6:
        return text[: limit - 3].rstrip(" ,;:(") + "..."
    return text[:limit].rstrip()


def count(n: int, noun: str) -> str:
    """``"1 track"``, ``"2 tracks"``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


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


def _group_name(category: str, taken: set[str]) -> str:
    return _unique(symbol(category), taken)


def plan_tracks(
    manifest: dict, hub: Path, cfg: HubDefaults
) -> tuple[list[tuple[str, str, list[Track]]], list[Track]]:
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
    peaks = [t for t in tracks if t["kind"] == "peaks"]
    if peaks:  # beside the predictions: what the model was trained and tested on
        groups.append((_group_name(PEAKS_COMPOSITE, taken), PEAKS_COMPOSITE, peaks))
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
            key = symbol(t["name"])
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
            elif t["kind"] == "peaks":
                color = t.get("color") or CATEGORY_COLORS.get(t["category"], cfg.other_color)
                display = f"{marker} peaks" + (f" {cell}" if cell else "")
                short = f"{marker} pk {cell}".strip()
                long = f"{marker} observed peaks" + (f", {cell}" if cell else "")
                n = t.get("n_intervals")
                long += f" ({n:,}, the labels)" if isinstance(n, int) else " (the labels)"
                model = ""
                view = None
            else:
                color = t.get("color") or CATEGORY_COLORS.get(t["category"], cfg.other_color)
                display = short = f"{marker} {cell}".strip()
                # the category is the composite's label
                long = marker + (f", {cell}" if cell else "")
                view = None
            long += f" ({model})" if model else ""
            # what a user must know to trust the track: seen in training or not, and how well
            # the model does on held-out data against a model that knows nothing
            # (the labels are cut at 76 characters: these go before the description)
            honest = "; ".join(x for x in (score_note(t), split_note(t)) if x)
            long += f": {honest}" if honest else ""
            long += f"{'; ' if honest else ': '}{desc}" if desc else ""
            tr = Track(
                rec=t,
                name=name,
                composite=comp,
                color=color,
                short_label=fit(short, cfg.short_label_max, ellipsis=False),
                long_label=fit(long, cfg.long_label_max),
                display=display,
                view_limits=view,
                on=i < cfg.visible_per_composite,
                meta_key=name[len(comp) + 1 :] if faceted else key,
            )
            planned.append(tr)
        out.append((comp, label, planned))
        flat.extend(planned)
    return out, flat
