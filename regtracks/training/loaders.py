"""Data order and loaders of training and evaluation: seeded, sharded, resumable.

:class:`EpochSampler` gives each torchrun process its shard of an epoch's shuffled windows (the
order depends only on seed and epoch, so a resumed run continues exactly);
:class:`ShardSampler` splits an evaluation once over the processes; :func:`make_loader` is the
DataLoader both use.
"""

from __future__ import annotations

import shutil

import torch
from torch.utils.data import DataLoader, Sampler

from regtracks.data.prepare import TaskData
from regtracks.runtime import DistEnv

__all__ = ["EpochSampler", "ShardSampler", "make_dataset", "make_loader", "close_loader"]

SHM_BUDGET = 2 << 30
"""Most bytes of batches a loader keeps in flight in shared memory (and at most a quarter of
what ``/dev/shm`` has free)."""


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


def _shm_free() -> int:
    try:
        return shutil.disk_usage("/dev/shm").free
    except OSError:
        return SHM_BUDGET * 4


def _batch_bytes(ds, batch_size: int, label_dtype: torch.dtype) -> int:
    """Bytes of one batch built by the workers (codes and labels)."""
    L = ds.samples.length
    labels = L if ds.samples.task == "dense" else 1
    return batch_size * (L + ds.n_markers * labels * label_dtype.itemsize)


def _worker_init(_worker_id: int) -> None:
    # Batches go to the main process through shared memory named by file (no round trip to
    # this worker's descriptor-passing thread, which waits for the GIL while the next batch
    # is built); torch_shm_manager removes the segments of a worker that dies.
    torch.multiprocessing.set_sharing_strategy("file_system")


def make_loader(
    ds,
    sampler,
    collate,
    *,
    batch_size: int,
    workers: int,
    device: torch.device,
    label_dtype: torch.dtype = torch.uint8,
):
    """A DataLoader that asks the dataset for whole batches, prefetches, pins memory for CUDA,
    keeps its workers between epochs and validations, and leaves the global RNG alone.

    On the CPU the workers build the labels, dense in ``label_dtype`` (the dtype the loss or
    the metrics take; :meth:`~regtracks.data.datasets._Base.model_tensors`), so the main process
    receives them ready; the input stays base codes (1 byte a base rather than 16 through shared
    memory; :func:`~regtracks.data.datasets.to_device` one-hot encodes them in one pass). Dense
    labels of big batches are left to ``to_device`` where even one batch a worker would not fit
    :data:`SHM_BUDGET` (or a quarter of ``/dev/shm``), and fewer batches are prefetched where
    four would not. On CUDA the batches carry codes and interval rows, and the device builds
    the rest.
    """
    prefetch = 4
    if device.type == "cpu" and hasattr(ds, "model_tensors"):
        budget = min(SHM_BUDGET, _shm_free() // 4)
        need = max(workers, 1) * _batch_bytes(ds, batch_size, label_dtype)
        fits = workers == 0 or need <= budget
        ds.model_tensors(None, label_dtype if fits else None)
        if fits and workers:
            prefetch = int(max(1, min(4, budget // need)))
    return DataLoader(
        ds,
        batch_size=batch_size,
        sampler=sampler,
        collate_fn=collate,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        prefetch_factor=prefetch if workers > 0 else None,
        generator=torch.Generator().manual_seed(0),  # base seeds must not consume torch's RNG
        drop_last=False,
        worker_init_fn=_worker_init if workers > 0 else None,
    )


def close_loader(loader) -> None:
    """Stop a loader's persistent workers now (rather than when it is garbage-collected)."""
    it = getattr(loader, "_iterator", None)
    if it is not None and hasattr(it, "_shutdown_workers"):
        it._shutdown_workers()
    if loader is not None:
        loader._iterator = None
