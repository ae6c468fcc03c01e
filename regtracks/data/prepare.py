"""One call from files to a task: genome + marker manifest (+ exclude BED) -> samples.

:func:`prepare` is what ``train``, ``evaluate``, ``benchmark`` and ``data summary`` call; it
returns a :class:`TaskData` holding everything the datasets need. No torch here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from regtracks._util import RegtracksError, covered_bp
from regtracks.config import DEFAULT_DATA, DEFAULT_TRAIN, SPLITS, TASKS, DataConfig
from regtracks.data.genome import Genome
from regtracks.data.labels import IntervalIndex
from regtracks.data.markers import MarkerIntervals, MarkerSet, PeakFile, read_peaks
from regtracks.data.windows import Samples, dense_windows, sequence_samples

__all__ = ["TaskData", "prepare", "summarize", "positive_fraction", "clipped_notes"]


@dataclass
class TaskData:
    """A task built from files: the inputs of the torch datasets."""

    task: str
    cfg: DataConfig
    genome: Genome
    markers: MarkerSet
    intervals: MarkerIntervals
    index: IntervalIndex
    samples: Samples
    exclude: dict | None
    exclude_path: str | None
    exclude_file: PeakFile | None = None  # as read (its clipped intervals counted)

    @property
    def n_markers(self) -> int:
        return len(self.markers)


def prepare(
    genome: str | os.PathLike | Genome,
    markers: str | os.PathLike | MarkerSet,
    *,
    task: str = DEFAULT_TRAIN.task,
    cfg: DataConfig = DEFAULT_DATA,
    exclude: str | os.PathLike | None = None,
    progress=None,
    strict: bool = False,
) -> TaskData:
    """Open the genome, read every peak file and build the task's samples and splits.

    Parameters
    ----------
    genome : path or Genome
    markers : path of a manifest TSV, or MarkerSet
    task : {"dense", "sequence"}
    cfg : DataConfig
    exclude : path, optional
        BED of excluded regions (blacklist, multi-mapped); windows more than
        ``cfg.max_excluded`` covered are dropped.
    progress : callable, optional
        ``progress(i, n, marker_name)`` while peak files are read.
    strict : bool
        Refuse a peak (or exclude) interval past its chromosome's end, naming the file, line
        and chromosome; by default such intervals are clipped to the chromosome and counted
        (:func:`clipped_notes`, ``summarize()["clipped"]``).
    """
    if task not in TASKS:
        raise RegtracksError(f"unknown task {task!r} (expected dense or sequence)")
    g = genome if isinstance(genome, Genome) else Genome(genome)
    ms = markers if isinstance(markers, MarkerSet) else MarkerSet.from_tsv(markers)
    ex = ex_file = None
    if exclude is not None:
        if not Path(exclude).is_file():
            raise RegtracksError(f"{exclude}: exclude BED not found")
        ex_file = read_peaks(exclude, genome=g, strict=strict)
        ex = ex_file.on_genome(g)
    mi = ms.read(g, progress=progress, strict=strict)
    index = IntervalIndex(mi.per_marker)
    if task == "dense":
        samples = dense_windows(g, cfg, exclude=ex)
    else:
        samples = sequence_samples(g, index, cfg, exclude=ex)
    return TaskData(
        task=task,
        cfg=cfg,
        genome=g,
        markers=ms,
        intervals=mi,
        index=index,
        samples=samples,
        exclude=ex,
        exclude_path=None if exclude is None else str(Path(exclude).resolve()),
        exclude_file=ex_file,
    )


def clipped_notes(td: TaskData) -> list[str]:
    """One line per file (peak files, then the exclude BED) whose intervals ran past a
    chromosome's end: "N intervals clipped at chromosome ends in FILE"."""
    notes = td.intervals.clipped_notes()
    if td.exclude_file is not None and td.exclude_file.n_clipped:
        notes.append(td.exclude_file.clipped_note())
    return notes


def positive_fraction(td: TaskData, split: str | None = None) -> np.ndarray:
    """Per marker: fraction of labelled positions (dense) or samples (sequence) that are
    positive, over the kept windows of ``split`` (``None``: every split).

    Returns
    -------
    (M,) float64
    """
    s = td.samples
    M = td.n_markers
    ids = s.indices(split)
    if td.task == "sequence":
        rows = [s.label_markers[s.label_indptr[i] : s.label_indptr[i + 1]] for i in ids]
        flat = np.concatenate(rows) if rows else np.zeros(0, np.int32)
        return np.bincount(flat, minlength=M) / max(ids.size, 1)
    keep = np.zeros(len(s), dtype=bool)
    keep[ids] = True
    covered = np.zeros(M, dtype=np.int64)
    for ci, chrom in enumerate(s.chroms):
        sel = (s.chrom_idx == ci) & keep
        if not sel.any():
            continue
        ws = s.start[sel]
        we = ws + s.length
        for m in range(M):
            ms, me = td.index.marker_intervals(m, chrom)
            if ms.size:
                covered[m] += int(covered_bp(ms, me, ws, we).sum())
    return covered / max(ids.size * s.length, 1)


def summarize(td: TaskData) -> dict:
    """The numbers ``regtracks data summary`` shows (and prints with ``--json``).

    Keys: ``task``, ``genome``, ``windows_total``, ``windows_kept``, ``windows_dropped``
    (by reason), ``splits`` (``train``/``valid``/``test`` -> ``windows`` and ``chromosomes``),
    ``split_mode``, ``markers`` (``name``, ``category``, ``peaks``, ``intervals`` after merging,
    ``covered_bp`` of the intervals clipped to the chromosomes, ``clipped``: intervals past a
    chromosome's end, ``positive_fraction`` over kept windows), ``missing_chroms``,
    ``clipped`` (one record per file with intervals past a chromosome's end: ``file``,
    ``marker`` (None for the exclude BED), ``intervals``, ``past_end`` (wholly past it,
    dropped), ``note``).
    For the sequence task "windows" are the 1000 bp inputs of the labelled bins.
    """
    s = td.samples
    counts = s.counts()
    chroms_by_split: dict[str, list[str]] = {}
    for k, name in enumerate(SPLITS):
        idx = np.unique(s.chrom_idx[s.split == k])
        chroms_by_split[name] = [s.chroms[i] for i in idx]
    pf = positive_fraction(td)
    mi = td.intervals
    return {
        "task": td.task,
        "genome": {
            "path": str(td.genome.path),
            "name": td.genome.name,
            "chromosomes": len(td.genome.chroms),
            "length": td.genome.total_len,
        },
        "window_len": s.length,
        "windows_total": int(s.total),
        "windows_kept": len(s),
        "windows_dropped": {k: int(v) for k, v in s.dropped.items()},
        "split_mode": s.split_info.mode,
        "split_auto": s.split_info.auto,
        "splits": {
            name: {"windows": counts[name], "chromosomes": chroms_by_split[name]} for name in SPLITS
        },
        "markers": [
            {
                "name": m.name,
                "category": m.category,
                "peaks": int(mi.n_peaks[i]),
                "intervals": mi.n_intervals(i),
                "covered_bp": mi.covered_bp(i),
                "clipped": int(mi.clipped_by_marker[i]) if mi.clipped_by_marker else 0,
                "positive_fraction": float(pf[i]),
            }
            for i, m in enumerate(td.markers)
        ],
        "missing_chroms": {k: int(v) for k, v in mi.missing_chroms.items()},
        "clipped": _clipped_records(td),
    }


def _clipped_records(td: TaskData) -> list[dict]:
    mi = td.intervals
    files = [
        (m.name, PeakFile(path=td.markers.peak_path(m), n_clipped=n, n_past_end=k))
        for m, n, k in zip(td.markers, mi.clipped_by_marker, mi.past_end_by_marker, strict=False)
    ]  # empty lists when the intervals were not read by MarkerSet.read
    if td.exclude_file is not None:
        files.append((None, td.exclude_file))
    return [
        {
            "file": str(pf.path),
            "marker": name,
            "intervals": int(pf.n_clipped),
            "past_end": int(pf.n_past_end),
            "note": pf.clipped_note(),
        }
        for name, pf in files
        if pf.n_clipped
    ]
