"""Markers: a manifest TSV naming peak files, and their intervals per chromosome.

Manifest: a header line, then one marker per line. Required columns ``name``, ``category``
(``TFBS``, ``Histone`` or ``DNase``, any case) and ``path`` (relative to the manifest's folder);
optional ``cell_type``, ``color`` (``R,G,B``) and ``description``.

Peak files: BED3+, narrowPeak, broadPeak; plain or gzip (bgzip too); ``track``, ``browser``
and ``#`` lines are skipped. Intervals are 0-based half-open and are merged and sorted per
chromosome. Chromosomes the genome lacks are counted, not fatal.
"""

from __future__ import annotations

import os
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
        Data lines read (before merging).
    """

    path: Path
    intervals: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    n_peaks: int = 0
    peaks_per_chrom: dict[str, int] = field(default_factory=dict)


def read_peaks(path: str | os.PathLike, *, merge: bool = True) -> PeakFile:
    """Read a BED3+/narrowPeak/broadPeak file (plain or gzip).

    Parameters
    ----------
    path : str or Path
        The peak file.
    merge : bool
        Merge overlapping and touching intervals per chromosome (default True).

    Raises
    ------
    RegtracksError
        Missing file; a line with fewer than 3 columns, non-integer coordinates, a negative
        start or ``end <= start`` (the message names the file and line number).
    """
    path = Path(path)
    if not path.is_file():
        raise RegtracksError(f"{path}: peak file not found")
    chrom_s: dict[str, list[int]] = {}
    chrom_e: dict[str, list[int]] = {}
    n = 0
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
                if c not in chrom_s:
                    chrom_s[c] = []
                    chrom_e[c] = []
                chrom_s[c].append(s)
                chrom_e[c].append(e)
                n += 1
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise RegtracksError(f"{path}: cannot read ({exc})") from None
    out = PeakFile(path=path, n_peaks=n)
    for c in chrom_s:
        s = np.asarray(chrom_s[c], dtype=np.int64)
        e = np.asarray(chrom_e[c], dtype=np.int64)
        out.peaks_per_chrom[c] = int(s.size)
        out.intervals[c] = merge_intervals(s, e) if merge else (s, e)
    return out


def read_bed_intervals(path: str | os.PathLike, genome) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Merged intervals of a BED file keyed by the genome's chromosome names.

    Chromosomes the genome lacks are dropped (used for ``--exclude`` blacklists).
    """
    pf = read_peaks(path)
    by_chrom: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for c, (s, e) in pf.intervals.items():
        name = genome.resolve(c)
        if name is not None:
            by_chrom.setdefault(name, []).append((s, e))
    return {
        c: merge_intervals(
            np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        )
        for c, parts in by_chrom.items()
    }


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
        seen: set[str] = set()
        for m in markers:
            if m.name in seen:
                raise RegtracksError(f"duplicate marker name {m.name!r}")
            seen.add(m.name)
            if m.category not in CATEGORIES:
                raise RegtracksError(
                    f"marker {m.name!r}: unknown category {m.category!r} "
                    f"(expected one of {', '.join(CATEGORIES)})"
                )
        self.markers = list(markers)
        self.root = Path(root) if root is not None else None

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_tsv(cls, path: str | os.PathLike) -> MarkerSet:
        """Read a manifest TSV (see the module docstring).

        Raises
        ------
        RegtracksError
            Missing manifest, missing required column, unknown category, duplicate or empty
            name, empty manifest (messages name the file and line).
        """
        path = Path(path)
        if not path.is_file():
            raise RegtracksError(f"{path}: marker manifest not found")
        lines = [
            (i, ln.rstrip("\r\n"))
            for i, ln in enumerate(path.read_text().splitlines(), start=1)
            if ln.strip() and not ln.startswith("#")
        ]
        if not lines:
            raise RegtracksError(f"{path}: manifest is empty (no header line)")
        header = [h.strip().lower() for h in lines[0][1].split("\t")]
        missing = [c for c in _REQUIRED if c not in header]
        if missing:
            raise RegtracksError(
                f"{path}:{lines[0][0]}: manifest header lacks required column(s) "
                f"{', '.join(missing)} (needs name, category, path; tab-separated)"
            )
        col = {h: i for i, h in enumerate(header)}
        markers: list[Marker] = []
        seen: dict[str, int] = {}
        for lineno, ln in lines[1:]:
            f = ln.split("\t")
            if len(f) < len(header):
                f += [""] * (len(header) - len(f))
            rec = {k: f[col[k]].strip() for k in (*_REQUIRED, *_OPTIONAL) if k in col}
            if not rec["name"]:
                raise RegtracksError(f"{path}:{lineno}: empty marker name")
            if not rec["path"]:
                raise RegtracksError(f"{path}:{lineno}: marker {rec['name']!r} has no path")
            cat = _CATEGORY_BY_LOWER.get(rec["category"].lower())
            if cat is None:
                raise RegtracksError(
                    f"{path}:{lineno}: unknown category {rec['category']!r} for marker "
                    f"{rec['name']!r} (expected TFBS, Histone or DNase)"
                )
            if rec["name"] in seen:
                raise RegtracksError(
                    f"{path}:{lineno}: duplicate marker name {rec['name']!r} "
                    f"(first on line {seen[rec['name']]})"
                )
            seen[rec["name"]] = lineno
            rec["category"] = cat
            markers.append(Marker(**rec))
        if not markers:
            raise RegtracksError(f"{path}: manifest lists no markers")
        return cls(markers, root=path.parent.resolve())

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

    def read(self, genome, *, workers: int | None = None, progress=None) -> MarkerIntervals:
        """Read every peak file and map its chromosomes onto ``genome``.

        Parameters
        ----------
        genome : Genome
            Chromosome names are reconciled with :meth:`Genome.resolve` (``1`` vs ``chr1``).
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
        paths = [self.peak_path(m) for m in self.markers]
        if workers is None:
            workers = min(8, os.cpu_count() or 1) if len(paths) >= 32 else 1
        if workers > 1:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"))
            files = pool.map(_read_unmerged, paths, chunksize=4)
        else:
            pool = None
            files = map(_read_unmerged, paths)
        try:
            for i, (m, pf) in enumerate(zip(self.markers, files, strict=True)):
                self._add(genome, pf, per_marker, n_peaks, missing, missing_by_marker)
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


def _read_unmerged(path: Path) -> PeakFile:
    return read_peaks(path, merge=False)


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
    """

    markers: MarkerSet
    chrom_sizes: dict[str, int]
    per_marker: list[dict[str, tuple[np.ndarray, np.ndarray]]]
    n_peaks: list[int]
    missing_chroms: dict[str, int]
    missing_by_marker: list[int]

    @property
    def n_markers(self) -> int:
        return len(self.per_marker)

    def n_intervals(self, i: int) -> int:
        return int(sum(s.size for s, _ in self.per_marker[i].values()))

    def covered_bp(self, i: int) -> int:
        return int(sum(int((e - s).sum()) for s, e in self.per_marker[i].values()))

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
