"""Reads, validates and updates a hub folder's ``manifest.json``, the list of its tracks.

A *hub folder* ``HUB/`` holds bigWig tracks (``HUB/tracks/*.bw``, written by ``predict`` and
``saliency``) and ``HUB/manifest.json``, which lists them with their provenance:
:func:`load_manifest` reads and validates it, naming the field at fault; :func:`update_manifest`
adds or replaces tracks by name, so that re-running a command never drops the tracks written by
another command. The browser files are written from it by :func:`regtracks.tracks.hub.build_hub`
and checked by :func:`regtracks.tracks.hubcheck.check_hub`. The manifest is written through a
temporary name and a rename.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

from regtracks._util import RegtracksError, make_folder, write_text_atomic

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_FORMAT",
    "KINDS",
    "hub_path",
    "load_manifest",
    "write_manifest",
    "update_manifest",
]

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "regtracks-manifest/1"
KINDS = ("prediction", "peaks", "saliency")
_COLOR = re.compile(r"^\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*$")


def hub_path(hub_dir: str | os.PathLike) -> Path:
    """The hub folder of ``hub_dir``, which may also name its ``hub.txt`` or ``manifest.json``."""
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
    path = hub_path(hub_dir) / MANIFEST_NAME
    if not path.is_file():
        raise RegtracksError(f"{path}: no manifest (write tracks with `regtracks predict` first)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RegtracksError(f"{path}: not valid JSON ({exc})") from None
    return _check_manifest(data, str(path))


def write_manifest(hub_dir: Path, manifest: dict) -> None:
    """Write ``manifest`` (already validated) as ``hub_dir/manifest.json``, atomically."""
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
    hub = hub_path(hub_dir)
    genome = _check_genome(genome_info, "genome_info")
    new_tracks = [_check_track(t, f"tracks[{i}]") for i, t in enumerate(tracks)]
    if (hub / MANIFEST_NAME).exists():
        manifest = check_hub_genome(hub, genome["chrom_sizes"], genome["name"])
        old = manifest["genome"]
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
    make_folder(hub)
    write_manifest(hub, manifest)
    return manifest


def check_hub_genome(hub_dir: str | os.PathLike, chrom_sizes, name: str) -> dict | None:
    """Check that the hub in ``hub_dir`` (if any) holds tracks of the genome with
    ``chrom_sizes`` (the check to make before scanning into it); returns its manifest (None
    when there is none yet).

    Raises
    ------
    RegtracksError
        "HUB/manifest.json: the hub holds tracks of genome 'x' (n chromosomes) and these
        tracks are of 'y' with other chromosomes or sizes; use another output folder".
    """
    hub = hub_path(hub_dir)
    if not (hub / MANIFEST_NAME).is_file():
        return None
    manifest = load_manifest(hub)
    old = manifest["genome"]
    if old["chrom_sizes"] != [[str(c), int(s)] for c, s in chrom_sizes]:
        raise RegtracksError(
            f"{hub / MANIFEST_NAME}: the hub holds tracks of genome {old['name']!r} "
            f"({len(old['chrom_sizes'])} chromosomes) and these tracks are of {name!r} with "
            "other chromosomes or sizes; use another output folder"
        )
    return manifest
