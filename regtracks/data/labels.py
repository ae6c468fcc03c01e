"""Labels built on the fly from interval arrays; no dense label file ever exists.

Dense task (paper Dataset 2): a window ``[start, end)`` of length ``L`` gets labels ``(M, L)``
uint8, 1 where marker ``m``'s peaks cover the base. Two paths give identical results:

* :meth:`IntervalIndex.dense` -- numpy, one slice fill per overlapping interval;
* :func:`dense_labels_torch` -- on any torch device, from the ``(K, 4)`` interval rows of a whole
  batch (difference array + cumulative sum), so that on a GPU labels never starve the model.

Sequence task (paper Dataset 1, DeepSEA construction): bins of ``bin_size`` (200 bp); a bin is
positive for marker ``m`` when at least ``min_overlap`` (half) of it overlaps ``m``'s peaks.

Coordinates are 0-based half-open.
"""

from __future__ import annotations

import math

import numpy as np

from regtracks._util import covered_bp, expand_ranges

__all__ = ["IntervalIndex", "dense_labels_torch", "bin_positives"]


class IntervalIndex:
    """All markers' merged intervals, flattened per chromosome for fast window queries.

    Parameters
    ----------
    per_marker : list of dict chrom -> (starts, ends)
        Merged, sorted intervals of marker ``i`` (see
        :class:`regtracks.data.markers.MarkerIntervals`).
    """

    def __init__(self, per_marker: list[dict[str, tuple[np.ndarray, np.ndarray]]]):
        self.n_markers = len(per_marker)
        self.per_marker = per_marker
        self._flat: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, int]] = {}
        chroms = {c for d in per_marker for c in d}
        for c in chroms:
            ss, ee, mm = [], [], []
            for m, d in enumerate(per_marker):
                if c in d:
                    s, e = d[c]
                    ss.append(s)
                    ee.append(e)
                    mm.append(np.full(s.size, m, dtype=np.int32))
            s = np.concatenate(ss)
            e = np.concatenate(ee)
            m = np.concatenate(mm)
            order = np.argsort(s, kind="stable")
            s, e, m = s[order], e[order], m[order]
            max_len = int((e - s).max()) if s.size else 0
            self._flat[c] = (s, e, m, max_len)

    @classmethod
    def from_marker_intervals(cls, mi) -> IntervalIndex:
        return cls(mi.per_marker)

    def query(self, chrom: str, start: int, end: int) -> np.ndarray:
        """Intervals overlapping ``[start, end)``, clipped and relative to ``start``.

        Returns
        -------
        (K, 3) int32 rows ``(marker, rel_start, rel_end)`` with ``0 <= rel_start < rel_end <=
        end - start``. Within one marker rows are disjoint and non-touching.
        """
        flat = self._flat.get(chrom)
        if flat is None:
            return np.zeros((0, 3), dtype=np.int32)
        s, e, m, max_len = flat
        lo = np.searchsorted(s, start - max_len, side="left")
        hi = np.searchsorted(s, end, side="left")
        s, e, m = s[lo:hi], e[lo:hi], m[lo:hi]
        keep = e > start
        out = np.empty((int(keep.sum()), 3), dtype=np.int32)
        out[:, 0] = m[keep]
        out[:, 1] = np.maximum(s[keep], start) - start
        out[:, 2] = np.minimum(e[keep], end) - start
        return out

    def dense(self, chrom: str, start: int, end: int) -> np.ndarray:
        """``(M, end - start)`` uint8 labels of one window (numpy path)."""
        return rows_to_dense(self.query(chrom, start, end), self.n_markers, end - start)

    def marker_intervals(self, marker: int, chrom: str) -> tuple[np.ndarray, np.ndarray]:
        empty = np.zeros(0, dtype=np.int64)
        return self.per_marker[marker].get(chrom, (empty, empty))


def rows_to_dense(rows: np.ndarray, n_markers: int, length: int) -> np.ndarray:
    """``(K, 3)`` rows ``(marker, rel_start, rel_end)`` -> ``(M, L)`` uint8 labels."""
    y = np.zeros((n_markers, length), dtype=np.uint8)
    for m, s, e in rows.tolist():
        y[m, s:e] = 1
    return y


def dense_labels_torch(rows, n: int, n_markers: int, length: int, *, device=None):
    """Dense labels of a batch, built on ``device``.

    Parameters
    ----------
    rows : (K, 4) integer tensor
        ``(batch_index, marker, rel_start, rel_end)``; rows of one marker in one window are
        disjoint and non-touching (as :meth:`IntervalIndex.query` returns them).
    n, n_markers, length : int
        Output shape ``(N, M, L)``.
    device : torch.device, optional
        Where to build them (default: ``rows.device``).

    Returns
    -------
    (N, M, L) uint8 tensor.
    """
    import torch

    device = rows.device if device is None else torch.device(device)
    rows = rows.to(device=device, dtype=torch.int64, non_blocking=True)
    diff = torch.zeros(n * n_markers * (length + 1), dtype=torch.int8, device=device)
    if rows.numel():
        base = (rows[:, 0] * n_markers + rows[:, 1]) * (length + 1)
        ones = torch.ones(rows.shape[0], dtype=torch.int8, device=device)
        diff.index_put_((base + rows[:, 2],), ones, accumulate=True)
        diff.index_put_((base + rows[:, 3],), -ones, accumulate=True)
    diff = diff.view(n, n_markers, length + 1)
    # int8 cumsum is exact: within a marker the running sum is 0 or 1
    y = torch.cumsum(diff, dim=-1, dtype=torch.int8)[..., :length]
    return y.to(torch.uint8)


def bin_positives(
    index: IntervalIndex, chrom: str, chrom_len: int, *, bin_size: int, min_overlap: float
) -> tuple[np.ndarray, np.ndarray]:
    """Positive ``(bin, marker)`` pairs of one chromosome for the sequence task.

    Bin ``b`` covers ``[b * bin_size, (b + 1) * bin_size)``; only whole bins (inside the
    chromosome) are considered. A bin is positive for marker ``m`` when at least
    ``ceil(min_overlap * bin_size)`` of its bases lie in ``m``'s peaks.

    Returns
    -------
    bins : (P,) int64, markers : (P,) int32
        Sorted by bin, then marker.
    """
    need = math.ceil(min_overlap * bin_size)
    n_bins = chrom_len // bin_size
    all_b, all_m = [], []
    for m in range(index.n_markers):
        s, e = index.marker_intervals(m, chrom)
        if s.size == 0:
            continue
        b0 = s // bin_size
        b1 = np.minimum((e - 1) // bin_size, n_bins - 1)
        cnt = np.maximum(b1 - b0 + 1, 0)
        if cnt.sum() == 0:
            continue
        cand = np.unique(expand_ranges(b0, cnt))  # every bin touched: b0[i] .. b1[i]
        ov = covered_bp(s, e, cand * bin_size, cand * bin_size + bin_size)
        hit = cand[ov >= need]
        all_b.append(hit)
        all_m.append(np.full(hit.size, m, dtype=np.int32))
    if not all_b:
        return np.zeros(0, np.int64), np.zeros(0, np.int32)
    b = np.concatenate(all_b)
    mk = np.concatenate(all_m)
    order = np.lexsort((mk, b))
    return b[order], mk[order]
