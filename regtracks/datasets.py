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

from regtracks.genome import Genome
from regtracks.labels import IntervalIndex, dense_labels_torch, rows_to_dense
from regtracks.windows import Samples

__all__ = [
    "DenseDataset",
    "SequenceDataset",
    "DenseBatch",
    "collate_dense",
    "collate_sequence",
    "to_device",
    "one_hot_torch",
]

_COMP = torch.tensor([0, 4, 3, 2, 1], dtype=torch.uint8)


def one_hot_torch(codes: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(N, L)`` uint8 codes -> ``(N, 4, L)`` one-hot (A, C, G, T; N = zeros), on codes' device."""
    eye = torch.eye(5, dtype=dtype, device=codes.device)[:, 1:]
    return eye[codes.long()].transpose(1, 2).contiguous()


def _rc_coin(seed: int, epoch: int, i: int) -> bool:
    return bool(np.random.default_rng((seed, epoch, int(i))).random() < 0.5)


class _Base(Dataset):
    def __init__(self, genome: Genome, samples: Samples, split: str | None, *, rc: bool, seed: int):
        self.genome = genome
        self.samples = samples
        self.split = split
        self.ids = samples.indices(split)
        self.rc = rc
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation draw (call before each epoch; workers see it next epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return int(self.ids.size)

    def _codes(self, i: int) -> tuple[np.ndarray, str, int, int, bool]:
        sid = int(self.ids[i])
        chrom, start, end = self.samples.region(sid)
        codes = self.genome.fetch(chrom, start, end)
        flip = self.rc and _rc_coin(self.seed, self.epoch, sid)
        return codes, chrom, start, sid, flip


class DenseDataset(_Base):
    """Windows of the dense task (paper Dataset 2).

    Parameters
    ----------
    genome : Genome
    index : IntervalIndex
        Every marker's intervals.
    samples : Samples
        Dense windows (:func:`regtracks.windows.dense_windows`).
    split : {"train", "valid", "test"} or None
    rc : bool
        Reverse-complement augmentation (half the items, deterministic per seed and epoch).
    seed : int
    dense_labels : bool
        Return ``y`` as an ``(M, L)`` uint8 array (numpy path) instead of interval rows.

    Items
    -----
    dict with ``codes`` ``(L,)`` uint8, ``rows`` ``(K, 3)`` int32 ``(marker, start, end)``
    relative to the window (or ``y`` ``(M, L)`` uint8), ``index`` (sample id), ``rc`` (bool).
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
        dense_labels: bool = False,
    ):
        super().__init__(genome, samples, split, rc=rc, seed=seed)
        self.index = index
        self.n_markers = index.n_markers
        self.dense_labels = dense_labels

    def __getitem__(self, i: int) -> dict:
        codes, chrom, start, sid, flip = self._codes(i)
        L = codes.size
        rows = self.index.query(chrom, start, start + L)
        if flip:
            codes = _COMP.numpy()[codes[::-1]]
            rows = np.stack([rows[:, 0], L - rows[:, 2], L - rows[:, 1]], axis=1).astype(np.int32)
        item = {"codes": torch.from_numpy(np.ascontiguousarray(codes)), "index": sid, "rc": flip}
        if self.dense_labels:
            item["y"] = torch.from_numpy(rows_to_dense(rows, self.n_markers, L))
        else:
            item["rows"] = torch.from_numpy(np.ascontiguousarray(rows))
        return item


class SequenceDataset(_Base):
    """Bins of the sequence task (paper Dataset 1, DeepSEA construction).

    Items: dict with ``codes`` ``(seq_len,)`` uint8, ``y`` ``(M,)`` uint8, ``index``, ``rc``.
    Reverse complement keeps the labels (the bin is centred).
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
    ):
        super().__init__(genome, samples, split, rc=rc, seed=seed)
        self.n_markers = n_markers

    def __getitem__(self, i: int) -> dict:
        codes, _, _, sid, flip = self._codes(i)
        if flip:
            codes = _COMP.numpy()[codes[::-1]]
        return {
            "codes": torch.from_numpy(np.ascontiguousarray(codes)),
            "y": torch.from_numpy(self.samples.labels(sid, self.n_markers)),
            "index": sid,
            "rc": flip,
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
