"""Observed peaks as bigBed tracks (BED4), written with pybigtools, atomically, and checked.

:func:`write_peaks_bigbed` writes one marker's intervals (the merged peaks its labels are made
of, :meth:`regtracks.data.markers.MarkerSet.read`) as ``chrom start end name``: chromosomes in
the order of ``chrom_sizes`` (the FASTA's; the header lists the chromosomes with peaks),
intervals sorted, clipped
to the chromosome ends (a peak wholly past an end is dropped, and counted). The file is written
under a hidden temporary name in its folder, re-opened and checked (a bigBed, every
chromosome in its header, the entry count), then renamed; a failure leaves the previous file
and no temporary.

pybigtools (Rust; PyPI, numpy its only dependency) writes bigBed; pyBigWig only reads it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from regtracks._util import RegtracksError, atomic_path, write_cause

__all__ = ["write_peaks_bigbed", "PEAKS_AUTOSQL"]

PEAKS_AUTOSQL = """table bed4
"Observed peaks of one regulatory marker (regtracks)"
(
    string chrom;      "Reference sequence chromosome or scaffold"
    uint   chromStart; "Start position in chromosome"
    uint   chromEnd;   "End position in chromosome"
    string name;       "Marker"
)
"""


def write_peaks_bigbed(
    path: str | os.PathLike,
    chrom_sizes: Sequence[tuple[str, int]],
    intervals: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    name: str,
) -> tuple[int, int]:
    """Write ``intervals`` (chrom -> sorted starts, ends) as a BED4 bigBed at ``path``.

    Returns
    -------
    (written, clipped) : tuple of int
        Intervals written, and intervals cut at (or dropped past) a chromosome end. With no
        interval to write no file is written (and an earlier one is left as it is).

    Raises
    ------
    RegtracksError
        pybigtools missing, a write that fails (disk full, ...) or a file that does not read
        back, naming the file and the cause.
    """
    try:
        import pybigtools
    except ImportError:  # pragma: no cover - a core dependency
        raise RegtracksError(
            "observed-peak tracks need pybigtools (pip install pybigtools)"
        ) from None
    path = Path(path)
    label = " ".join(str(name).split()) or "peak"
    sizes = [(str(c), int(s)) for c, s in chrom_sizes]
    records, clipped = [], 0
    for chrom, size in sizes:
        if chrom not in intervals:
            continue
        s, e = (np.asarray(a, dtype=np.int64) for a in intervals[chrom])
        order = np.lexsort((e, s))
        s, e = s[order], e[order]
        keep = s < size
        clipped += int((~keep).sum() + (e[keep] > size).sum())
        s, e = s[keep], np.minimum(e[keep], size)
        keep = e > s
        records += [(chrom, int(a), int(b), label) for a, b in zip(s[keep], e[keep], strict=True)]
    if not records:
        return 0, clipped  # nothing to show: no file (a bigBed needs one entry)
    have = dict.fromkeys(r[0] for r in records)
    with atomic_path(
        path, check=lambda tmp: _check(tmp, path, [(c, z) for c, z in sizes if c in have],
                                       len(records)),
    ) as tmp:  # fmt: skip
        try:
            writer = pybigtools.open(str(tmp), "w")
            writer.write(dict(sizes), iter(records), autosql=PEAKS_AUTOSQL)
        except OSError:
            raise  # atomic_path names the file and the cause
        except Exception as exc:  # pybigtools raises ValueError or its own errors
            cause = write_cause(path, exc)
            raise RegtracksError(f"{path}: could not write the bigBed ({cause})") from None
    return len(records), clipped


def _check(tmp: Path, final: Path, sizes: list[tuple[str, int]], n: int) -> None:
    """Re-open a written bigBed: the chromosomes with entries in its header (pybigtools lists
    only those; browsers need no others) and every entry there."""
    import pyBigWig

    try:
        bb = pyBigWig.open(str(tmp))
    except (RuntimeError, OSError):
        bb = None
    if bb is None:
        cause = write_cause(final) or "it does not read back"
        raise RegtracksError(f"{final}: cannot write the bigBed ({cause})")
    try:
        if not bb.isBigBed() or bb.chroms() != dict(sizes):
            raise RegtracksError(f"{final}: the bigBed written has another header")
        got = sum(len(bb.entries(c, 0, s, withString=False) or ()) for c, s in sizes)
    finally:
        bb.close()
    if got != n:
        raise RegtracksError(f"{final}: {got} of {n} peaks read back from the bigBed written")
