"""torch Datasets of both tasks, built on the fly from the genome and interval arrays.

Tensor contract (what a model sees after :func:`to_device`):

* dense task: ``x`` ``(N, 4, L)`` float32 one-hot (A, C, G, T; N = zeros), ``y`` ``(N, M, L)``
  uint8 labels;
* sequence task: ``x`` ``(N, 4, 1000)`` float32 one-hot, ``y`` ``(N, M)`` uint8.

A dataset item carries base *codes* (``(L,)`` uint8, 1 byte a base) rather than one-hot floats,
and dense labels as interval rows rather than an ``(M, L)`` array: a 25 kb x 919-marker window
moves 25 kB plus a few hundred rows instead of 23 MB, and the one-hot input and the dense
labels are built on the device (GPU) by :func:`to_device`.

Items are deterministic for a seed: the reverse-complement coin of item ``i`` in epoch ``e``
depends on ``(seed, e, i)`` alone, so results do not depend on DataLoader workers or order.
The genome opens its file handle lazily in each worker process.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from regtracks._util import RegtracksError
from regtracks.data.genome import Genome
from regtracks.data.labels import IntervalIndex, dense_labels_torch, rows_to_dense
from regtracks.data.windows import Samples

__all__ = [
    "DenseDataset",
    "SequenceDataset",
    "DenseBatch",
    "collate_dense",
    "collate_sequence",
    "to_device",
    "one_hot_torch",
    "shift_bounds",
]

_COMP = torch.tensor([0, 4, 3, 2, 1], dtype=torch.uint8)


def one_hot_torch(codes: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(N, L)`` uint8 codes -> ``(N, 4, L)`` one-hot (A, C, G, T; N = zeros), on codes' device."""
    eye = torch.eye(5, dtype=dtype, device=codes.device)[:, 1:]
    return eye[codes.long()].transpose(1, 2).contiguous()


def _draws(seed: int, epoch: int, i: int, shift_lo: int, shift_hi: int) -> tuple[bool, int]:
    """The reverse-complement coin and the shift in ``[shift_lo, shift_hi]`` of item ``i``.

    Both depend on ``(seed, epoch, i)`` alone; the coin is the generator's first draw.
    """
    rng = np.random.default_rng((seed, epoch, int(i)))
    coin = bool(rng.random() < 0.5)
    if shift_hi <= shift_lo:
        return coin, shift_lo
    return coin, int(rng.integers(shift_lo, shift_hi + 1))


def shift_bounds(
    samples: Samples, ids: np.ndarray, max_shift: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per sample of ``ids``: how far its input may move left (<= 0) and right (>= 0).

    A window may move by up to ``max_shift`` bases (at most its own length) into a neighbour
    that is kept and in the same split, so a shifted window never reads bases of another
    split, a dropped (N-rich or excluded) window or past its chromosome.
    """
    n = ids.size
    lo = np.zeros(n, dtype=np.int64)
    hi = np.zeros(n, dtype=np.int64)
    m = min(int(max_shift), samples.length)
    if m <= 0 or n == 0:
        return lo, hi
    key = samples.chrom_idx.astype(np.int64) * (1 << 40) + samples.start
    order = np.argsort(key, kind="stable")
    pos = np.empty_like(order)
    pos[order] = np.arange(order.size)
    L = samples.length

    def neighbour(step: int) -> np.ndarray:
        j = pos[ids] + step
        ok = (j >= 0) & (j < order.size)
        other = order[np.clip(j, 0, order.size - 1)]
        return (
            ok
            & (samples.chrom_idx[other] == samples.chrom_idx[ids])
            & (np.abs(samples.start[other] - samples.start[ids]) == L)
            & (samples.split[other] == samples.split[ids])
        )

    lo[neighbour(-1)] = -m
    hi[neighbour(+1)] = m
    return lo, hi


class _Base(Dataset):
    def __init__(
        self,
        genome: Genome,
        samples: Samples,
        split: str | None,
        *,
        rc: bool,
        seed: int,
        shift: int = 0,
    ):
        self.genome = genome
        self.samples = samples
        self.split = split
        self.ids = samples.indices(split)
        self.rc = rc
        self.seed = seed
        self.epoch = 0
        self.shift = int(shift)
        if self.shift < 0:
            raise RegtracksError(f"the shift augmentation must be >= 0 bp, got {shift}")
        self.shift_lo, self.shift_hi = self._shift_bounds()

    def _shift_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return shift_bounds(self.samples, self.ids, self.shift)

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation draw (call before each epoch; workers see it next epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return int(self.ids.size)

    def _codes(self, i: int) -> tuple[np.ndarray, str, int, int, bool, int]:
        sid = int(self.ids[i])
        chrom, start, end = self.samples.region(sid)
        flip, offset = False, 0
        if self.rc or self.shift:
            flip, offset = _draws(
                self.seed, self.epoch, sid, int(self.shift_lo[i]), int(self.shift_hi[i])
            )
            flip = flip and self.rc
        codes = self.genome.fetch(chrom, start + offset, end + offset)
        return codes, chrom, start + offset, sid, flip, offset


class DenseDataset(_Base):
    """Windows of the dense task (paper Dataset 2).

    Parameters
    ----------
    genome : Genome
    index : IntervalIndex
        Every marker's intervals.
    samples : Samples
        Dense windows (:func:`regtracks.data.windows.dense_windows`).
    split : {"train", "valid", "test"} or None
    rc : bool
        Reverse-complement augmentation (half the items, deterministic per seed and epoch).
    seed : int
    shift : int
        Shift augmentation: each epoch every window moves by a random offset in
        ``[-shift, shift]`` bases (deterministic per seed, epoch and window; at most one window
        length, never into another split, a dropped window or past the chromosome; see
        :func:`shift_bounds`). Labels move with the sequence. 0 (evaluation, scanning): fixed
        tiles.
    dense_labels : bool
        Return ``y`` as an ``(M, L)`` uint8 array (numpy path) instead of interval rows.

    Items
    -----
    dict with ``codes`` ``(L,)`` uint8, ``rows`` ``(K, 3)`` int32 ``(marker, start, end)``
    relative to the window (or ``y`` ``(M, L)`` uint8), ``index`` (sample id), ``rc`` (bool),
    ``shift`` (bases the input starts after the sample's own start; 0 without ``shift``).
    """

    def __init__(
        self,
        genome: Genome,
        index: IntervalIndex,
        samples: Samples,
        split: str | None = "train",
        *,
        rc: bool = False,
        seed: int = 0,
        shift: int = 0,
        dense_labels: bool = False,
    ):
        super().__init__(genome, samples, split, rc=rc, seed=seed, shift=shift)
        self.index = index
        self.n_markers = index.n_markers
        self.dense_labels = dense_labels

    def __getitem__(self, i: int) -> dict:
        codes, chrom, start, sid, flip, offset = self._codes(i)
        L = codes.size
        rows = self.index.query(chrom, start, start + L)
        if flip:
            codes = _COMP.numpy()[codes[::-1]]
            rows = np.stack([rows[:, 0], L - rows[:, 2], L - rows[:, 1]], axis=1).astype(np.int32)
        item = {
            "codes": torch.from_numpy(np.ascontiguousarray(codes)),
            "index": sid,
            "rc": flip,
            "shift": offset,
        }
        if self.dense_labels:
            item["y"] = torch.from_numpy(rows_to_dense(rows, self.n_markers, L))
        else:
            item["rows"] = torch.from_numpy(np.ascontiguousarray(rows))
        return item


class SequenceDataset(_Base):
    """Bins of the sequence task (paper Dataset 1, DeepSEA construction).

    Items: dict with ``codes`` ``(seq_len,)`` uint8, ``y`` ``(M,)`` uint8, ``index``, ``rc``,
    ``shift``.
    Reverse complement keeps the labels (the bin is centred). ``shift`` jitters the input by up
    to that many bases each epoch (inside the chromosome); the labels of the bin are kept, as
    the bin stays within the input's central part for any jitter well below
    ``(seq_len - bin_size) / 2``.
    """

    def __init__(
        self,
        genome: Genome,
        samples: Samples,
        n_markers: int,
        split: str | None = "train",
        *,
        rc: bool = False,
        seed: int = 0,
        shift: int = 0,
    ):
        super().__init__(genome, samples, split, rc=rc, seed=seed, shift=shift)
        self.n_markers = n_markers

    def _shift_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        m = self.shift
        start = self.samples.start[self.ids]
        sizes = np.array([self.genome.sizes[c] for c in self.samples.chroms], dtype=np.int64)
        room = sizes[self.samples.chrom_idx[self.ids]] - (start + self.samples.length)
        return -np.minimum(m, start), np.minimum(m, np.maximum(room, 0))

    def __getitem__(self, i: int) -> dict:
        codes, _, _, sid, flip, offset = self._codes(i)
        if flip:
            codes = _COMP.numpy()[codes[::-1]]
        return {
            "codes": torch.from_numpy(np.ascontiguousarray(codes)),
            "y": torch.from_numpy(self.samples.labels(sid, self.n_markers)),
            "index": sid,
            "rc": flip,
            "shift": offset,
        }


@dataclass
class DenseBatch:
    """A collated batch: ``codes`` ``(N, L)`` uint8; labels as ``rows`` ``(K, 4)`` int32
    ``(batch_index, marker, start, end)`` or dense ``y`` ``(N, M, L)`` uint8; ``index`` ``(N,)``."""

    codes: torch.Tensor
    index: torch.Tensor
    rows: torch.Tensor | None = None
    y: torch.Tensor | None = None

    def pin_memory(self) -> DenseBatch:
        return DenseBatch(
            codes=self.codes.pin_memory(),
            index=self.index,
            rows=None if self.rows is None else self.rows.pin_memory(),
            y=None if self.y is None else self.y.pin_memory(),
        )

    def __len__(self) -> int:
        return int(self.codes.shape[0])


def collate_dense(items: list[dict]) -> DenseBatch:
    """Stack dense-task items; interval rows get their batch index prepended."""
    codes = torch.stack([it["codes"] for it in items])
    index = torch.tensor([it["index"] for it in items], dtype=torch.int64)
    if "y" in items[0]:
        return DenseBatch(codes=codes, index=index, y=torch.stack([it["y"] for it in items]))
    parts = []
    for b, it in enumerate(items):
        r = it["rows"]
        parts.append(torch.cat([torch.full((r.shape[0], 1), b, dtype=torch.int32), r], dim=1))
    rows = torch.cat(parts) if parts else torch.zeros((0, 4), dtype=torch.int32)
    return DenseBatch(codes=codes, index=index, rows=rows)


def collate_sequence(items: list[dict]) -> DenseBatch:
    """Stack sequence-task items (``y`` ``(N, M)``)."""
    return DenseBatch(
        codes=torch.stack([it["codes"] for it in items]),
        index=torch.tensor([it["index"] for it in items], dtype=torch.int64),
        y=torch.stack([it["y"] for it in items]),
    )


def to_device(
    batch: DenseBatch, n_markers: int, device: torch.device | str, *, dtype=torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Move a batch to ``device`` and build the model's tensors there.

    Returns
    -------
    x : ``(N, 4, L)`` one-hot of ``dtype``
    y : ``(N, M, L)`` (dense task) or ``(N, M)`` (sequence task) uint8
    """
    device = torch.device(device)
    codes = batch.codes.to(device, non_blocking=True)
    x = one_hot_torch(codes, dtype=dtype)
    if batch.y is not None:
        y = batch.y.to(device, non_blocking=True)
    else:
        y = dense_labels_torch(
            batch.rows.to(device, non_blocking=True), codes.shape[0], n_markers, codes.shape[1]
        )
    return x, y
