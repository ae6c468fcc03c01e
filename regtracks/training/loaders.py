"""Data order and loaders of training and evaluation: seeded, sharded, resumable.

:class:`EpochSampler` gives each torchrun process its shard of an epoch's shuffled windows (the
order depends only on seed and epoch, so a resumed run continues exactly);
:class:`ShardSampler` splits an evaluation once over the processes; :func:`make_loader` is the
DataLoader both use.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Sampler

from regtracks.data.prepare import TaskData
from regtracks.runtime import DistEnv

__all__ = ["EpochSampler", "ShardSampler", "make_dataset", "make_loader"]


class EpochSampler(Sampler[int]):
    """Dataset positions of one epoch for one process: seeded shuffle, sharded by rank.

    The order depends only on ``(seed, epoch)``; every process gets the same number of whole
    batches (the remainder is dropped); ``skip_batches`` resumes mid-epoch.
    """

    def __init__(self, n: int, *, batch_size: int, seed: int, dist: DistEnv, shuffle: bool = True):
        self.n, self.batch_size, self.seed, self.dist, self.shuffle = (
            n,
            batch_size,
            seed,
            dist,
            shuffle,
        )
        self.epoch = 0
        self.skip = 0

    @property
    def batches_per_epoch(self) -> int:
        return self.n // (self.batch_size * self.dist.world)

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self.epoch, self.skip = int(epoch), int(skip_batches)

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.n, generator=g)
        else:
            order = torch.arange(self.n)
        order = order[: self.batches_per_epoch * self.batch_size * self.dist.world]
        mine = order[self.dist.rank :: self.dist.world]
        return iter(mine[self.skip * self.batch_size :].tolist())

    def __len__(self) -> int:
        return max(0, (self.batches_per_epoch - self.skip) * self.batch_size)


class ShardSampler(Sampler[int]):
    """Every position once, split over processes (for evaluation)."""

    def __init__(self, n: int, dist: DistEnv):
        self.n, self.dist = n, dist

    def __iter__(self):
        return iter(range(self.dist.rank, self.n, self.dist.world))

    def __len__(self) -> int:
        return len(range(self.dist.rank, self.n, self.dist.world))


def make_dataset(td: TaskData, split: str, *, rc: bool = False, seed: int = 0, shift: int = 0):
    """The dataset of one split and the collate function of the task."""
    from regtracks.data.datasets import (
        DenseDataset,
        SequenceDataset,
        collate_dense,
        collate_sequence,
    )

    kw = {"rc": rc, "seed": seed, "shift": shift}
    if td.task == "dense":
        return DenseDataset(td.genome, td.index, td.samples, split, **kw), collate_dense
    ds = SequenceDataset(td.genome, td.samples, td.n_markers, split, **kw)
    return ds, collate_sequence


def make_loader(ds, sampler, collate, *, batch_size: int, workers: int, device: torch.device):
    """A DataLoader that prefetches, pins memory for CUDA and leaves the global RNG alone."""
    return DataLoader(
        ds,
        batch_size=batch_size,
        sampler=sampler,
        collate_fn=collate,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
        prefetch_factor=4 if workers > 0 else None,
        generator=torch.Generator().manual_seed(0),  # base seeds must not consume torch's RNG
        drop_last=False,
    )
