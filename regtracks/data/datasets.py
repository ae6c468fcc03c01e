"""torch Datasets of both tasks, built on the fly from the genome and interval arrays.

Tensor contract (what a model sees after :func:`to_device`):

* dense task: ``x`` ``(N, 4, L)`` float32 one-hot (A, C, G, T; N = zeros), ``y`` ``(N, M, L)``
  uint8 labels;
* sequence task: ``x`` ``(N, 4, 1000)`` float32 one-hot, ``y`` ``(N, M)`` uint8.

A dataset item carries base *codes* (``(L,)`` uint8, 1 byte a base) rather than one-hot floats,
and dense labels as interval rows rather than an ``(M, L)`` array: a 25 kb x 919-marker window
moves 25 kB plus a few hundred rows instead of 23 MB, and the one-hot input and the dense
labels are built on the device (GPU) by :func:`to_device`.

A DataLoader asks for whole batches (``__getitems__``, one :class:`DenseBatch` each, handed to
the main process as one shared-memory segment): the fetch, the reverse complement and, where
asked (:meth:`_Base.model_tensors`: a CPU run), the dense labels in the loss's dtype and the
one-hot input are done for the batch at once in the loader workers. The sequence task's short
inputs are read from the genome's shared memory map of codes
(:meth:`regtracks.data.genome.Genome.code_map`).

Items are deterministic for a seed: the reverse-complement coin and the shift of sample ``i``
in epoch ``e`` are a counter-based hash of ``(seed, e, i)`` (:func:`item_draws`), so results do
not depend on DataLoader workers, batching or order. The genome opens its file handle lazily in
each worker process.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from torch.utils.data import Dataset

from regtracks._util import RegtracksError, expand_ranges
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
    "dense_labels_inplace",
    "item_draws",
    "shift_bounds",
]

_COMP = torch.tensor([0, 4, 3, 2, 1], dtype=torch.uint8)
_COMP_NP = _COMP.numpy()


def one_hot_torch(
    codes: torch.Tensor, dtype: torch.dtype = torch.float32, *, out: torch.Tensor | None = None
) -> torch.Tensor:
    """``(..., L)`` uint8 codes -> ``(..., 4, L)`` one-hot (A, C, G, T; N = zeros), on codes'
    device: one broadcast comparison with the codes 1-4 written straight into a preallocated
    tensor (``out``, or a new one; no lookup table, no temporaries)."""
    shape = (*codes.shape[:-1], 4, codes.shape[-1])
    x = torch.empty(shape, dtype=dtype, device=codes.device) if out is None else out
    bases = torch.arange(1, 5, dtype=codes.dtype, device=codes.device).view(4, 1)
    return torch.eq(codes.unsqueeze(-2), bases, out=x)


_U64 = 2**64 - 1
_GOLDEN, _M1, _M2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def _splitmix64(z: int) -> int:
    """SplitMix64's output function of one 64-bit integer."""
    z = (z + _GOLDEN) & _U64
    z = ((z ^ (z >> 30)) * _M1) & _U64
    z = ((z ^ (z >> 27)) * _M2) & _U64
    return z ^ (z >> 31)


def _splitmix64_np(z: np.ndarray) -> np.ndarray:
    """The same for ``(K,)`` uint64 (numpy's arithmetic wraps)."""
    z = z + np.uint64(_GOLDEN)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(_M1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(_M2)
    return z ^ (z >> np.uint64(31))


def item_draws(seed: int, epoch: int, ids, shift_lo, shift_hi) -> tuple[np.ndarray, np.ndarray]:
    """The reverse-complement coins and the shifts in ``[shift_lo, shift_hi]`` of samples ``ids``.

    Counter-based: sample ``i``'s draws are bits of one SplitMix64 hash of ``(seed, epoch, i)``
    (the top bit the coin, the low 32 bits the shift), computed for a whole batch at once, so
    they depend on nothing else (workers, batching, order).

    Returns
    -------
    coin : (K,) bool
    shift : (K,) int64
    """
    ids = np.atleast_1d(np.asarray(ids)).astype(np.uint64)
    key = _splitmix64(_splitmix64(int(seed) & _U64) ^ (int(epoch) & _U64))
    h = _splitmix64_np(ids ^ np.uint64(key))
    coin = (h >> np.uint64(63)).astype(bool)
    lo = np.asarray(shift_lo, dtype=np.int64)
    span = (np.asarray(shift_hi, dtype=np.int64) - lo + 1).clip(1).astype(np.uint64)
    low = h & np.uint64(0xFFFFFFFF)  # span < 2**32: the product fits
    return coin, lo + ((low * span) >> np.uint64(32)).astype(np.int64)


def dense_labels_inplace(
    rows: torch.Tensor,
    n: int,
    n_markers: int,
    length: int,
    dtype: torch.dtype = torch.uint8,
    *,
    out: torch.Tensor | None = None,
    zeroed: bool = False,
) -> torch.Tensor:
    """``(N, M, L)`` dense labels of ``dtype`` from ``(K, 4)`` rows ``(batch, marker, start,
    end)``, on the CPU and in one buffer (``out``, or a new one; ``zeroed``: ``out`` holds
    zeros already): +1 at each start, -1 at each end inside the window, then a cumulative sum
    in place (``cumsum(out=)``; exact in any dtype, modulo 256 in uint8, as rows of one marker
    in one window never overlap)."""
    if out is None:
        y = torch.zeros((n, n_markers, length), dtype=dtype)
    else:
        y, dtype = (out if zeroed else out.zero_()), out.dtype
    if rows.numel():
        r = rows.to(torch.int64)
        flat = y.view(-1)
        base = (r[:, 0] * n_markers + r[:, 1]) * length
        flat.index_put_((base + r[:, 2],), torch.ones(r.shape[0], dtype=dtype), accumulate=True)
        inside = r[:, 3] < length
        minus = torch.full((int(inside.sum()),), 255 if dtype == torch.uint8 else -1, dtype=dtype)
        flat.index_put_((base[inside] + r[inside, 3],), minus, accumulate=True)
        torch.cumsum(y, dim=-1, out=y)
    return y


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


_ALIGN = 64
PICKLE_BYTES = 1 << 20
"""Batches up to this size cross from a loader worker by value, larger ones in shared memory."""


def _carve(
    specs: dict[str, tuple[tuple[int, ...], torch.dtype]],
) -> tuple[dict[str, torch.Tensor], bool]:
    """Tensors of the given shapes and dtypes, all views of one new buffer: a batch made of
    them crosses from a loader worker to the main process in one piece (see
    :meth:`DenseBatch.__reduce__`). A buffer over :data:`PICKLE_BYTES` made in a loader worker
    is allocated in shared memory at once (no copy into a segment when it is handed over;
    fresh, so zero-filled: the second value says so)."""
    offsets, total = {}, 0
    for name, (shape, dtype) in specs.items():
        offsets[name] = total
        total += -(-int(np.prod(shape, dtype=np.int64)) * dtype.itemsize // _ALIGN) * _ALIGN
    total = max(total, 1)
    if total > PICKLE_BYTES and torch.utils.data.get_worker_info() is not None:
        storage = torch.UntypedStorage._new_shared(total)
        buf = torch.empty(0, dtype=torch.uint8).set_(storage, 0, (total,), (1,))
        zeroed = True
    else:
        buf, zeroed = torch.empty(total, dtype=torch.uint8), False
    out = {}
    for name, (shape, dtype) in specs.items():
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        o = offsets[name]
        out[name] = buf[o : o + nbytes].view(dtype).view(shape)
    return out, zeroed


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
        code_map: bool = False,
    ):
        self.genome = genome
        self.samples = samples
        self.split = split
        self.ids = samples.indices(split)
        self.rc = rc
        self.seed = seed
        # in shared memory: persistent DataLoader workers see set_epoch's value
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self._epoch_np: np.ndarray | None = None
        self.shift = int(shift)
        if self.shift < 0:
            raise RegtracksError(f"the shift augmentation must be >= 0 bp, got {shift}")
        self.shift_lo, self.shift_hi = self._shift_bounds()
        self.x_dtype: torch.dtype | None = None
        self.y_dtype: torch.dtype | None = None
        self.code_map = genome.code_map() if code_map else None
        if self.code_map is not None:
            self._chrom_off = np.array(
                [self.code_map.offset(c) for c in samples.chroms], dtype=np.int64
            )
            _ = self.code_map.codes  # mapped before workers fork: they share its pages
        self._windows_view: np.ndarray | None = None
        self._chrom_size = np.array([genome.sizes[c] for c in samples.chroms], dtype=np.int64)

    def _shift_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return shift_bounds(self.samples, self.ids, self.shift)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_windows_view"] = None  # a view of the code map: rebuilt, never pickled
        state["_epoch_np"] = None  # a view of the shared epoch: pickled, it would be a copy
        return state

    def _windows(self) -> np.ndarray | None:
        """Every input-length window of the code map as rows of a strided view (no copy)."""
        L = self.samples.length
        if self._windows_view is None and self.code_map.total >= L:
            self._windows_view = sliding_window_view(self.code_map.codes, L)
        return self._windows_view

    @property
    def epoch(self) -> int:
        if self._epoch_np is None:  # a numpy view of the shared value: cheap to read
            self._epoch_np = self._epoch.numpy()
        return int(self._epoch_np)

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation draw (call before each epoch; persistent workers see it)."""
        self._epoch.fill_(int(epoch))

    def model_tensors(
        self, x_dtype: torch.dtype | None = None, y_dtype: torch.dtype | None = None
    ) -> None:
        """Have batches (``__getitems__``) carry the model's tensors, built where the batch is
        made (the loader workers): ``x`` one-hot in ``x_dtype`` and ``y`` (dense for the dense
        task) in ``y_dtype``. ``None``: codes only / interval rows (uint8 labels for the
        sequence task), from which :func:`to_device` builds the rest."""
        self.x_dtype, self.y_dtype = x_dtype, y_dtype

    def __len__(self) -> int:
        return int(self.ids.size)

    def _plan(self, idx) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sample ids, reverse-complement flags and shifts of dataset positions ``idx``."""
        idx = np.atleast_1d(np.asarray(idx, dtype=np.int64))
        sid = self.ids[idx]
        if not (self.rc or self.shift):
            zero = np.zeros(idx.size, dtype=np.int64)
            return sid, zero.astype(bool), zero
        flip, offset = item_draws(
            self.seed, self.epoch, sid, self.shift_lo[idx], self.shift_hi[idx]
        )
        return sid, flip & self.rc, offset

    def _codes(self, i: int) -> tuple[np.ndarray, str, int, int, bool, int]:
        """One item's codes (read by :meth:`Genome.fetch`: the per-item path)."""
        sid, flip, offset = (v[0] for v in self._plan(i))
        chrom, start, end = self.samples.region(int(sid))
        offset = int(offset)
        codes = self.genome.fetch(chrom, start + offset, end + offset)
        return codes, chrom, start + offset, int(sid), bool(flip), offset

    def _batch_codes(
        self, sid: np.ndarray, start: np.ndarray, flip: np.ndarray, codes: np.ndarray
    ) -> None:
        """``(N, L)`` uint8 codes of inputs starting at ``start`` into ``codes``,
        reverse-complemented where ``flip``: one gather from the shared code map where every
        input lies in its chromosome, else a fetch per input."""
        L = self.samples.length
        cidx = self.samples.chrom_idx[sid]
        inside = bool(((start >= 0) & (start + L <= self._chrom_size[cidx])).all())
        windows = self._windows() if self.code_map is not None and inside else None
        if windows is not None:
            codes[...] = windows[self._chrom_off[cidx] + start]  # one row a sample
        else:
            for b, (c, s) in enumerate(zip(cidx.tolist(), start.tolist(), strict=True)):
                chrom = self.samples.chroms[c]
                codes[b] = (
                    self.code_map.fetch(chrom, s, s + L)
                    if self.code_map is not None
                    else self.genome.fetch(chrom, s, s + L)
                )
        if flip.any():
            codes[flip] = _COMP_NP[codes[flip, ::-1]]

    def _specs(self, n: int) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        """Shapes and dtypes of a batch's codes, index and (where asked) one-hot input."""
        L = self.samples.length
        specs = {"codes": ((n, L), torch.uint8), "index": ((n,), torch.int64)}
        if self.x_dtype is not None:
            specs["x"] = ((n, 4, L), self.x_dtype)
        return specs


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

    def __getitems__(self, idx) -> DenseBatch:
        """A whole batch (what a DataLoader asks for): equal to collating ``self[i]`` for each
        ``i``, with ``x`` and dense ``y`` built here when :meth:`model_tensors` asked."""
        sid, flip, offset = self._plan(idx)
        n, L = sid.size, self.samples.length
        start = self.samples.start[sid] + offset
        found = [
            self.index.query(self.samples.chroms[c], s, s + L)
            for c, s in zip(self.samples.chrom_idx[sid].tolist(), start.tolist(), strict=True)
        ]
        k = sum(r.shape[0] for r in found)
        dense = self.dense_labels or self.y_dtype is not None
        specs = self._specs(n)
        if dense:
            y_dtype = torch.uint8 if self.y_dtype is None else self.y_dtype
            specs["y"] = ((n, self.n_markers, L), y_dtype)
        else:
            specs["rows"] = ((k, 4), torch.int32)
        t, zeroed = _carve(specs)
        codes = t["codes"]
        self._batch_codes(sid, start, flip, codes.numpy())
        t["index"].numpy()[:] = sid
        rows = t["rows"] if not dense else torch.empty((k, 4), dtype=torch.int32)
        r_np, o = rows.numpy(), 0
        for b, (r, f) in enumerate(zip(found, flip.tolist(), strict=True)):
            part = r_np[o : o + r.shape[0]]
            part[:, 0], part[:, 1] = b, r[:, 0]
            if f:
                part[:, 2], part[:, 3] = L - r[:, 2], L - r[:, 1]
            else:
                part[:, 2], part[:, 3] = r[:, 1], r[:, 2]
            o += r.shape[0]
        if dense:
            dense_labels_inplace(rows, n, self.n_markers, L, out=t["y"], zeroed=zeroed)
        if "x" in t:
            one_hot_torch(codes, out=t["x"])
        return DenseBatch(**t)


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
        code_map: bool = True,
    ):
        super().__init__(genome, samples, split, rc=rc, seed=seed, shift=shift, code_map=code_map)
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

    def __getitems__(self, idx) -> DenseBatch:
        """A whole batch (what a DataLoader asks for): equal to collating ``self[i]`` for each
        ``i``; one gather from the shared code map, the labels from the CSR arrays at once, and
        ``x`` built here when :meth:`model_tensors` asked."""
        sid, flip, offset = self._plan(idx)
        n, s = sid.size, self.samples
        specs = self._specs(n)
        specs["y"] = ((n, self.n_markers), self.y_dtype or torch.uint8)
        t, _ = _carve(specs)
        self._batch_codes(sid, s.start[sid] + offset, flip, t["codes"].numpy())
        t["index"].numpy()[:] = sid
        lo, hi = s.label_indptr[sid], s.label_indptr[sid + 1]
        y = t["y"].zero_()
        pos = (
            np.repeat(np.arange(n), hi - lo) * self.n_markers
            + s.label_markers[expand_ranges(lo, hi - lo)]
        )
        y.view(-1)[torch.from_numpy(pos)] = 1
        if "x" in t:
            one_hot_torch(t["codes"], out=t["x"])
        return DenseBatch(**t)


@dataclass
class DenseBatch:
    """A collated batch: ``codes`` ``(N, L)`` uint8; labels as ``rows`` ``(K, 4)`` int32
    ``(batch_index, marker, start, end)`` or dense ``y`` (``(N, M, L)`` or ``(N, M)``, uint8
    unless :meth:`_Base.model_tensors` asked another dtype); ``index`` ``(N,)``; ``x`` the
    ``(N, 4, L)`` one-hot input when it was built with the batch (else :func:`to_device` builds
    it from ``codes``)."""

    codes: torch.Tensor
    index: torch.Tensor
    rows: torch.Tensor | None = None
    y: torch.Tensor | None = None
    x: torch.Tensor | None = None

    def __reduce__(self):
        """Pickled as one buffer where every tensor is a view of the same one (a batch that
        ``__getitems__`` made): a loader worker hands it over as one shared-memory segment, or
        by value up to :data:`PICKLE_BYTES` (cheaper than a segment for small batches)."""
        fields = {f: getattr(self, f) for f in _FIELDS if getattr(self, f) is not None}
        st = self.codes.untyped_storage()
        if not all(
            t.device.type == "cpu"
            and t.is_contiguous()
            and t.untyped_storage().data_ptr() == st.data_ptr()
            for t in fields.values()
        ):
            return (DenseBatch, tuple(getattr(self, f) for f in _FIELDS))
        buf = torch.empty(0, dtype=torch.uint8).set_(st, 0, (st.nbytes(),), (1,))
        layout = {
            f: (t.dtype, tuple(t.shape), t.storage_offset() * t.element_size())
            for f, t in fields.items()
        }
        if buf.numel() <= PICKLE_BYTES:  # small: by value through the pipe
            return (_unpack_bytes, (buf.numpy().tobytes(), layout))
        return (_unpack_batch, (buf, layout))

    def pin_memory(self) -> DenseBatch:
        def pin(t):
            return None if t is None else t.pin_memory()

        return DenseBatch(
            codes=pin(self.codes), index=self.index, rows=pin(self.rows), y=pin(self.y),
            x=pin(self.x),
        )  # fmt: skip

    def __len__(self) -> int:
        return int(self.codes.shape[0])


_FIELDS = ("codes", "index", "rows", "y", "x")


def _unpack_bytes(raw: bytes, layout: dict) -> DenseBatch:
    return _unpack_batch(torch.frombuffer(bytearray(raw), dtype=torch.uint8), layout)


def _unpack_batch(buf: torch.Tensor, layout: dict) -> DenseBatch:
    out = {}
    for f, (dtype, shape, offset) in layout.items():
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        out[f] = buf[offset : offset + nbytes].view(dtype).view(shape)
    return DenseBatch(**out)


def collate_dense(items: list[dict] | DenseBatch) -> DenseBatch:
    """Stack dense-task items; interval rows get their batch index prepended. A batch made
    whole by the dataset (``__getitems__``) passes through."""
    if isinstance(items, DenseBatch):
        return items
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


def collate_sequence(items: list[dict] | DenseBatch) -> DenseBatch:
    """Stack sequence-task items (``y`` ``(N, M)``); a :class:`DenseBatch` passes through."""
    if isinstance(items, DenseBatch):
        return items
    return DenseBatch(
        codes=torch.stack([it["codes"] for it in items]),
        index=torch.tensor([it["index"] for it in items], dtype=torch.int64),
        y=torch.stack([it["y"] for it in items]),
    )


def to_device(
    batch: DenseBatch, n_markers: int, device: torch.device | str, *, dtype=torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Move a batch to ``device`` and build the model's tensors there.

    A batch whose ``x`` and ``y`` the loader workers built (a CPU run) is only moved; else
    the one-hot input and the dense labels are built on ``device`` from codes and rows.

    Returns
    -------
    x : ``(N, 4, L)`` one-hot of ``dtype``
    y : ``(N, M, L)`` (dense task) or ``(N, M)`` (sequence task), uint8 unless the batch was
        built with another label dtype
    """
    device = torch.device(device)
    n, length = batch.codes.shape
    if batch.x is not None:
        x = batch.x.to(device, dtype=dtype, non_blocking=True)
    else:
        x = one_hot_torch(batch.codes.to(device, non_blocking=True), dtype=dtype)
    if batch.y is not None:
        y = batch.y.to(device, non_blocking=True)
    else:
        rows = batch.rows.to(device, non_blocking=True)
        y = dense_labels_torch(rows, n, n_markers, length)
    return x, y
