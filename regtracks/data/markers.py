"""Markers: a manifest TSV naming peak files, and their intervals per chromosome.

Manifest: a header line, then one marker per line. Required columns ``name``, ``category``
(``TFBS``, ``Histone`` or ``DNase``, any case) and ``path`` (relative to the manifest's folder);
optional ``cell_type``, ``color`` (``R,G,B``, values 0-255) and ``description``. Every field
is checked when the manifest is read (:meth:`MarkerSet.from_tsv`), before any peak file is:
names unique, with a letter or digit, no control character, at most 200 bytes and no two of
them making one track file name (``pred_NAME.bw``); categories known; colours ``R,G,B``; peak
files there. Errors name the manifest and the line.

Peak files: BED3+, narrowPeak, broadPeak; UTF-8 text, plain or gzip (bgzip too); ``track``,
``browser`` and ``#`` lines are skipped. Intervals are 0-based half-open and are merged and
sorted per chromosome. Chromosomes the genome lacks are counted, not fatal. Read with a genome,
intervals running past a chromosome's end are clipped to it (dropped when they start past it)
and counted per file, or refused with ``strict`` (naming the file, line and chromosome).
"""

from __future__ import annotations

import functools
import os
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from regtracks._util import RegtracksError, merge_intervals, open_text
from regtracks.config import CATEGORIES

__all__ = ["Marker", "MarkerSet", "PeakFile", "read_peaks", "read_bed_intervals"]

_REQUIRED = ("name", "category", "path")
_OPTIONAL = ("cell_type", "color", "description")
_CATEGORY_BY_LOWER = {c.lower(): c for c in CATEGORIES}


@dataclass(frozen=True)
class Marker:
    """One regulatory marker: a name, a category and the peak file that locates it."""

    name: str
    category: str
    path: str
    cell_type: str = ""
    color: str = ""
    description: str = ""


@dataclass
class PeakFile:
    """Intervals read from one peak file.

    Attributes
    ----------
    intervals : dict chrom -> (starts, ends)
        Merged, sorted int64 arrays, keyed by the file's own chromosome names.
    n_peaks : int
        Data lines read (before merging, clipping or dropping).
    n_clipped : int
        Intervals that ran past their chromosome's end (read with a genome): cut at the end,
        or dropped when they start at or past it (``n_past_end`` of them).
    """

    path: Path
    intervals: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    n_peaks: int = 0
    peaks_per_chrom: dict[str, int] = field(default_factory=dict)
    n_clipped: int = 0
    n_past_end: int = 0

    def on_genome(self, genome) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Merged intervals keyed by the genome's chromosome names (``1`` and ``chr1``
        together); chromosomes the genome lacks are dropped."""
        by_chrom: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        for c, (s, e) in self.intervals.items():
            name = genome.resolve(c)
            if name is not None:
                by_chrom.setdefault(name, []).append((s, e))
        return {
            c: merge_intervals(
                np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
            )
            for c, parts in by_chrom.items()
        }

    def clipped_note(self) -> str | None:
        """ "N intervals clipped at chromosome ends in FILE (K past the end, dropped)", or None."""
        if not self.n_clipped:
            return None
        past = f" ({self.n_past_end:,} wholly past the end, dropped)" if self.n_past_end else ""
        n = self.n_clipped
        return (
            f"{n:,} interval{'' if n == 1 else 's'} clipped at chromosome ends in {self.path}{past}"
        )


def read_peaks(
    path: str | os.PathLike, *, merge: bool = True, genome=None, strict: bool = False
) -> PeakFile:
    """Read a BED3+/narrowPeak/broadPeak file (plain or gzip).

    Parameters
    ----------
    path : str or Path
        The peak file.
    merge : bool
        Merge overlapping and touching intervals per chromosome (default True).
    genome : Genome, optional
        Check the intervals against its chromosome sizes: an interval ending past its
        chromosome's end is cut at the end (dropped when it starts there or later) and counted
        in ``n_clipped``; chromosomes the genome lacks are kept as they are.
    strict : bool
        With ``genome``: refuse such an interval instead (default False: clip).

    Raises
    ------
    RegtracksError
        Missing file; a line with fewer than 3 columns, non-integer coordinates, a negative
        start or ``end <= start``; with ``strict``, an interval past its chromosome's end;
        text that is not UTF-8, a corrupt or truncated gzip (the message names the file and
        line number).
    """
    path = Path(path)
    if not path.is_file():
        raise RegtracksError(f"{path}: peak file not found")
    chrom_s: dict[str, list[int]] = {}
    chrom_e: dict[str, list[int]] = {}
    size_of: dict[str, int | None] = {}  # the file's chromosome -> its genome size
    n = clipped = past = 0
    try:
        with open_text(path) as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip() or line.startswith(("#", "track", "browser")):
                    continue
                f = line.split("\t", 3) if "\t" in line else line.split(None, 3)
                if len(f) < 3:
                    raise RegtracksError(
                        f"{path}:{lineno}: expected at least 3 columns (chrom, start, end)"
                    )
                try:
                    s, e = int(f[1]), int(f[2])
                except ValueError:
                    raise RegtracksError(
                        f"{path}:{lineno}: start/end are not integers: {f[1].strip()!r}, "
                        f"{f[2].strip()!r}"
                    ) from None
                if s < 0 or e <= s:
                    raise RegtracksError(
                        f"{path}:{lineno}: bad interval {f[0]}:{s}-{e} (need 0 <= start < end)"
                    )
                c = f[0]
                n += 1
                if genome is not None:
                    if c not in size_of:
                        name = genome.resolve(c)
                        size_of[c] = None if name is None else genome.sizes[name]
                    size = size_of[c]
                    if size is not None and e > size:
                        if strict:
                            raise RegtracksError(
                                f"{path}:{lineno}: interval {c}:{s}-{e} "
                                f"{'starts' if s >= size else 'ends'} past the end of {c} "
                                f"({size:,} bp in {genome.path.name}); --strict refuses it"
                            )
                        clipped += 1
                        if s >= size:
                            past += 1
                            continue
                        e = size
                if c not in chrom_s:
                    chrom_s[c] = []
                    chrom_e[c] = []
                chrom_s[c].append(s)
                chrom_e[c].append(e)
    except (OSError, EOFError) as exc:
        raise RegtracksError(f"{path}: cannot read ({exc})") from None
    out = PeakFile(path=path, n_peaks=n, n_clipped=clipped, n_past_end=past)
    for c in chrom_s:
        s = np.asarray(chrom_s[c], dtype=np.int64)
        e = np.asarray(chrom_e[c], dtype=np.int64)
        out.peaks_per_chrom[c] = int(s.size)
        out.intervals[c] = merge_intervals(s, e) if merge else (s, e)
    return out


def read_bed_intervals(
    path: str | os.PathLike, genome, *, strict: bool = False
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Merged intervals of a BED file keyed by the genome's chromosome names, clipped to the
    chromosomes (``strict``: an interval past a chromosome's end is refused instead).

    Chromosomes the genome lacks are dropped (used for ``--exclude`` blacklists).
    """
    return read_peaks(path, genome=genome, strict=strict).on_genome(genome)


_COLOR = re.compile(r"^\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*$")  # as hubs check
_NAME_BYTES = 200  # a marker name makes track file names (pred_NAME.bw, sal_NAME_chr1_....bw)


def _normal_color(text: str) -> str | None:
    """``R,G,B`` (values 0-255, spaces dropped), or None when ``text`` is not one."""
    m = _COLOR.match(text)
    if not m or any(int(v) > 255 for v in m.groups()):
        return None
    return ",".join(str(int(v)) for v in m.groups())


def _track_file(name: str) -> str:
    """The marker's prediction track file, as ``regtracks.inference.session.track_name`` spells
    it."""
    return "pred_" + "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in name) + ".bw"


def _track_key(name: str) -> str:
    """:func:`_track_file` case folded: markers with one key would share a file on some disks."""
    return _track_file(name).casefold()


def _marker_problem(m: Marker, keys: dict[str, str]) -> str | None:
    """What is wrong with marker ``m`` (None: nothing); ``keys`` maps the track keys of the
    markers before it to their names, and gets ``m``'s."""
    name = m.name
    if not name.strip():
        return "empty marker name"
    if not name.isprintable():
        return f"marker name {name!r} holds a control character"
    if not any(ch.isalnum() for ch in name):
        return f"marker name {name!r} has no letter or digit"
    if len(name.encode()) > _NAME_BYTES:
        return (
            f"marker name {name[:24]!r}... is longer than {_NAME_BYTES} bytes (it names the "
            "track files)"
        )
    key = _track_key(name)
    if key in keys:
        first = keys[key]
        if first == name:
            return f"duplicate marker name {name!r}"
        a, b = _track_file(first), _track_file(name)
        same = f"the same track file name ({a})" if a == b else f"track file names {a}, {b}"
        return (
            f"marker names {first!r} and {name!r} give {same}"
            + (" that differ only in case" if a != b else "")
            + "; rename one"
        )
    keys[key] = name
    if m.category not in CATEGORIES:
        return (
            f"marker {name!r}: unknown category {m.category!r} "
            f"(expected one of {', '.join(CATEGORIES)})"
        )
    if m.color and _normal_color(m.color) is None:
        return f"marker {name!r}: color {m.color!r} is not R,G,B with values 0-255 (e.g. 0,90,200)"
    for fname in ("path", "cell_type", "description"):
        if not str(getattr(m, fname)).isprintable():
            return f"marker {name!r}: {fname} holds a control character"
    return None


class MarkerSet:
    """An ordered list of markers; index ``i`` is output channel ``i`` of every model.

    Parameters
    ----------
    markers : list of Marker
        Markers in output order; names must be unique.
    root : Path, optional
        Folder that relative ``path`` entries are resolved against (the manifest's folder).
    """

    def __init__(self, markers: list[Marker], *, root: str | os.PathLike | None = None):
        if not markers:
            raise RegtracksError("the marker list is empty")
        seen: dict[str, str] = {}  # track-file key -> name
        for m in markers:
            problem = _marker_problem(m, seen)
            if problem:
                raise RegtracksError(problem)
        self.markers = list(markers)
        self.root = Path(root) if root is not None else None

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_tsv(cls, path: str | os.PathLike) -> MarkerSet:
        """Read a manifest TSV (see the module docstring) and check every field.

        Raises
        ------
        RegtracksError
            Missing manifest, text that is not UTF-8, a missing or repeated column, unknown
            category, an empty, repeated or unusable name (no letter or digit, a control
            character, over 200 bytes, or the same track file name as another marker's), a
            colour that is not ``R,G,B`` with values 0-255, a peak file that is not there,
            an empty manifest (messages name the file and line).
        """
        path = Path(path)
        if not path.is_file():
            raise RegtracksError(f"{path}: marker manifest not found")
        try:
            with open_text(path) as fh:
                lines = [
                    (i, ln.rstrip("\r\n"))
                    for i, ln in enumerate(fh, start=1)
                    if ln.strip() and not ln.startswith("#")
                ]
        except OSError as exc:
            raise RegtracksError(f"{path}: cannot read ({exc})") from None
        if not lines:
            raise RegtracksError(f"{path}: manifest is empty (no header line)")
        header = [h.strip().lower() for h in lines[0][1].split("\t")]
        missing = [c for c in _REQUIRED if c not in header]
        if missing:
            raise RegtracksError(
                f"{path}:{lines[0][0]}: manifest header lacks required column(s) "
                f"{', '.join(missing)} (needs name, category, path; tab-separated)"
            )
        twice = [h for h in (*_REQUIRED, *_OPTIONAL) if header.count(h) > 1]
        if twice:
            raise RegtracksError(
                f"{path}:{lines[0][0]}: manifest header names column {twice[0]!r} twice"
            )
        col = {h: i for i, h in enumerate(header)}
        root = path.parent.resolve()
        markers: list[Marker] = []
        line_of: dict[str, int] = {}
        keys: dict[str, str] = {}
        for lineno, ln in lines[1:]:
            f = ln.split("\t")
            if len(f) < len(header):
                f += [""] * (len(header) - len(f))
            rec = {k: f[col[k]].strip() for k in (*_REQUIRED, *_OPTIONAL) if k in col}
            where = f"{path}:{lineno}"
            if not rec["name"]:
                raise RegtracksError(f"{where}: empty marker name")
            if not rec["path"]:
                raise RegtracksError(f"{where}: marker {rec['name']!r} has no path")
            cat = _CATEGORY_BY_LOWER.get(rec["category"].lower())
            if cat is None:
                raise RegtracksError(
                    f"{where}: unknown category {rec['category']!r} for marker "
                    f"{rec['name']!r} (expected TFBS, Histone or DNase)"
                )
            if rec["name"] in line_of:
                raise RegtracksError(
                    f"{where}: duplicate marker name {rec['name']!r} "
                    f"(first on line {line_of[rec['name']]})"
                )
            rec["category"] = cat
            if rec.get("color"):
                rec["color"] = _normal_color(rec["color"]) or rec["color"]
            marker = Marker(**rec)
            problem = _marker_problem(marker, keys)
            if problem:
                other = line_of.get(keys.get(_track_key(marker.name), ""), None)
                also = f" (line {other})" if other and "track file" in problem else ""
                raise RegtracksError(f"{where}: {problem}{also}")
            peaks = Path(marker.path).expanduser()
            peaks = peaks if peaks.is_absolute() else root / peaks
            if not peaks.is_file():
                what = "is a folder" if peaks.is_dir() else "not found"
                raise RegtracksError(
                    f"{where}: peak file of marker {marker.name!r} {what}: {marker.path}"
                    + (f" ({peaks})" if str(peaks) != marker.path else "")
                )
            line_of[rec["name"]] = lineno
            markers.append(marker)
        if not markers:
            raise RegtracksError(f"{path}: manifest lists no markers")
        return cls(markers, root=root)

    @classmethod
    def from_records(cls, records: list[dict]) -> MarkerSet:
        """Rebuild from :meth:`to_records` (as stored in checkpoints)."""
        return cls([Marker(**r) for r in records])

    def to_records(self) -> list[dict]:
        """Plain dicts (JSON- and checkpoint-safe)."""
        return [asdict(m) for m in self.markers]

    # -- access ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.markers)

    def __iter__(self):
        return iter(self.markers)

    def __getitem__(self, i: int) -> Marker:
        return self.markers[i]

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.markers]

    @property
    def categories(self) -> list[str]:
        return [m.category for m in self.markers]

    def index_of(self, name: str) -> int:
        for i, m in enumerate(self.markers):
            if m.name == name:
                return i
        raise RegtracksError(f"unknown marker {name!r}; known: {', '.join(self.names[:20])}")

    def select(self, *, names: list[str] | None = None, category: str | None = None) -> list[int]:
        """Indices of the markers named, or of one category (all when both are None)."""
        if names:
            return [self.index_of(n) for n in names]
        if category:
            cat = _CATEGORY_BY_LOWER.get(category.lower())
            if cat is None:
                raise RegtracksError(
                    f"unknown category {category!r} (expected TFBS, Histone or DNase)"
                )
            idx = [i for i, m in enumerate(self.markers) if m.category == cat]
            if not idx:
                raise RegtracksError(f"no marker of category {cat}")
            return idx
        return list(range(len(self.markers)))

    def peak_path(self, marker: Marker) -> Path:
        p = Path(marker.path).expanduser()
        if not p.is_absolute() and self.root is not None:
            p = self.root / p
        return p

    def check_files(self) -> None:
        """Raise on the first peak file that does not exist."""
        for m in self.markers:
            p = self.peak_path(m)
            if not p.is_file():
                raise RegtracksError(f"{p}: peak file of marker {m.name!r} not found")

    def read(
        self, genome, *, workers: int | None = None, progress=None, strict: bool = False
    ) -> MarkerIntervals:
        """Read every peak file and map its chromosomes onto ``genome``.

        Parameters
        ----------
        genome : Genome
            Chromosome names are reconciled with :meth:`Genome.resolve` (``1`` vs ``chr1``).
            Intervals past a chromosome's end are clipped to it and counted
            (:attr:`MarkerIntervals.clipped_by_marker`).
        strict : bool
            Refuse an interval past its chromosome's end instead, naming the file and line.
        workers : int, optional
            Processes parsing files (default: up to 8 when there are 32 files or more, else 1).
        progress : callable, optional
            Called as ``progress(i, n, marker_name)`` after each file.
        """
        self.check_files()
        per_marker: list[dict[str, tuple[np.ndarray, np.ndarray]]] = []
        n_peaks: list[int] = []
        missing: Counter[str] = Counter()
        missing_by_marker: list[int] = []
        clipped: list[int] = []
        past_end: list[int] = []
        paths = [self.peak_path(m) for m in self.markers]
        reader = functools.partial(_read_unmerged, genome=genome, strict=strict)
        if workers is None:
            workers = min(8, os.cpu_count() or 1) if len(paths) >= 32 else 1
        if workers > 1:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"))
            files = pool.map(reader, paths, chunksize=4)
        else:
            pool = None
            files = map(reader, paths)
        try:
            for i, (m, pf) in enumerate(zip(self.markers, files, strict=True)):
                self._add(genome, pf, per_marker, n_peaks, missing, missing_by_marker)
                clipped.append(pf.n_clipped)
                past_end.append(pf.n_past_end)
                if progress is not None:
                    progress(i + 1, len(self.markers), m.name)
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        return MarkerIntervals(
            markers=self,
            chrom_sizes=dict(genome.sizes),
            per_marker=per_marker,
            n_peaks=n_peaks,
            missing_chroms=dict(missing),
            missing_by_marker=missing_by_marker,
            clipped_by_marker=clipped,
            past_end_by_marker=past_end,
        )

    @staticmethod
    def _add(genome, pf: PeakFile, per_marker, n_peaks, missing, missing_by_marker) -> None:
        """Map one file's chromosomes onto the genome and merge (``1`` and ``chr1`` together)."""
        merged: dict[str, list] = {}
        lost = 0
        for c, (s, e) in pf.intervals.items():
            name = genome.resolve(c)
            if name is None:
                missing[c] += pf.peaks_per_chrom[c]
                lost += pf.peaks_per_chrom[c]
                continue
            merged.setdefault(name, []).append((s, e))
        per_marker.append(
            {
                c: merge_intervals(
                    np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
                )
                for c, parts in merged.items()
            }
        )
        n_peaks.append(pf.n_peaks)
        missing_by_marker.append(lost)


def _read_unmerged(path: Path, genome=None, strict: bool = False) -> PeakFile:
    return read_peaks(path, merge=False, genome=genome, strict=strict)


@dataclass
class MarkerIntervals:
    """Merged intervals of every marker, keyed by the genome's chromosome names.

    Attributes
    ----------
    per_marker : list of dict chrom -> (starts, ends)
        ``per_marker[i]`` are marker ``i``'s merged, sorted intervals (int64).
    n_peaks : list of int
        Peak lines read per marker (before merging, including dropped chromosomes).
    missing_chroms : dict chrom -> int
        Peaks on chromosomes the genome lacks, over all markers (skipped).
    clipped_by_marker : list of int
        Peaks per marker that ran past their chromosome's end: clipped to it, or dropped when
        wholly past it (``past_end_by_marker`` of them).
    """

    markers: MarkerSet
    chrom_sizes: dict[str, int]
    per_marker: list[dict[str, tuple[np.ndarray, np.ndarray]]]
    n_peaks: list[int]
    missing_chroms: dict[str, int]
    missing_by_marker: list[int]
    clipped_by_marker: list[int] = field(default_factory=list)
    past_end_by_marker: list[int] = field(default_factory=list)

    @property
    def n_markers(self) -> int:
        return len(self.per_marker)

    def n_intervals(self, i: int) -> int:
        return int(sum(s.size for s, _ in self.per_marker[i].values()))

    def covered_bp(self, i: int) -> int:
        return int(sum(int((e - s).sum()) for s, e in self.per_marker[i].values()))

    def clipped_notes(self) -> list[str]:
        """One line per peak file with intervals past a chromosome's end: "N intervals clipped
        at chromosome ends in FILE (K wholly past the end, dropped)"."""
        notes = []
        for i, n in enumerate(self.clipped_by_marker):
            if n:
                pf = PeakFile(
                    path=self.markers.peak_path(self.markers[i]),
                    n_clipped=n,
                    n_past_end=self.past_end_by_marker[i] if self.past_end_by_marker else 0,
                )
                notes.append(pf.clipped_note())
        return notes

    def missing_summary(self) -> str | None:
        """One line about peaks on chromosomes the genome lacks, or None."""
        if not self.missing_chroms:
            return None
        total = sum(self.missing_chroms.values())
        names = sorted(self.missing_chroms, key=lambda c: -self.missing_chroms[c])
        shown = ", ".join(f"{c} ({self.missing_chroms[c]:,})" for c in names[:8])
        more = f" and {len(names) - 8} more" if len(names) > 8 else ""
        return (
            f"skipped {total:,} peaks on {len(names)} chromosome(s) absent from the genome: "
            f"{shown}{more}"
        )
