"""Whole-chromosome scanning: a dense model over a chromosome, stitched and binned on the device.

Tensor contract: the model maps ``(N, 4, W)`` one-hot windows to ``(N, M, W)`` logits; the
scanner yields, in chromosome order, blocks ``(start, values)`` with ``values`` ``(T, n_bins)``
float32 probabilities (sigmoid) of the ``T`` selected markers, averaged over bins of
``bin_size`` bp, NaN where a bin carries no data. Bin ``k`` of a chromosome covers
``[k * bin_size, min((k + 1) * bin_size, chrom_len))`` (0-based half-open; the last bin may be
partial).

Tiling: the chromosome is cut into *cores* of ``core`` bp; each core is predicted from a window
that adds ``margin`` bp on each side (N beyond the chromosome ends), and only the core is kept.
With ``margin >= receptive_field`` every kept position sees its whole receptive field inside its
window, so the stitched track equals what the model gives for one long input wherever the
receptive field fits in the chromosome. Window starts are multiples of the model's ``stride``
(its translation-equivariance step) and cores are multiples of ``bin_size``, so bins never
straddle two windows. Models without a finite receptive field (the Bi-LSTM) get a quarter of
the window as margin on each side: their stitching is then approximate.

No data: a bin lying wholly inside a run of N of at least ``min_gap`` bp (an assembly gap)
carries no data (NaN; the bigWig writer skips it, never writing NaN); windows whose core is
wholly inside such gaps are not run through the model.

Cost (issue 12): the scan adds little to the model's own forward pass. Only the core goes
through the model's per-position head (``forward_slice``) and the sigmoid, which runs in place
on the model's output (no copy when the kept markers are consecutive, the usual case: all of
them); bins are means over a view; the one window past the chromosome's end is binned on its
own; each batch's bins are written into one new ``(T, n_bins)`` block. The next batch's
sequence is fetched and one-hot encoded on a thread while the model runs (on CUDA into pinned
memory, copied with ``non_blocking``; a batch's bins come back while the device runs the next
batch). On the CPU the model's outputs of one pass stay within ``ScanDefaults.cpu_pass_bytes``
(256 MiB), so the peak memory is about one window's outputs whatever the chromosome's length.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from regtracks._util import RegtracksError, renamed_keyword
from regtracks.config import DEFAULT_DATA, DEFAULT_SCAN
from regtracks.data.datasets import one_hot_torch

__all__ = ["ScanPlan", "plan_scan", "scan_margin", "scan_chromosome", "gap_mask"]


@dataclass(frozen=True)
class ScanPlan:
    """How a chromosome is tiled.

    Attributes
    ----------
    margin : int
        Context kept on each side of a core (bp), a multiple of the model's stride.
    core : int
        Kept positions per window (bp), a multiple of ``bin_size`` and of the stride.
    window : int
        Model input length, ``core + 2 * margin``.
    bin_size : int
    exact : bool
        True when ``margin`` covers the model's receptive field.
    """

    margin: int
    core: int
    window: int
    bin_size: int
    exact: bool


def scan_margin(receptive_field: int | None, stride: int, window: int) -> int:
    """Context on each side of the positions a model's window keeps (bp), a multiple of the stride.

    The receptive field rounded up to the stride; for a model without a finite receptive field
    (None), a quarter of ``window`` (the model input length) rounded up to the stride. The one
    rule of the scanner, the saliency tracks and the variant scores.
    """
    stride = max(1, int(stride))
    context = int(receptive_field) if receptive_field is not None else -(-int(window) // 4)
    return -(-context // stride) * stride


def plan_scan(
    receptive_field: int | None,
    stride: int,
    *,
    bin_size: int,
    scan_window: int | None = None,
    train_window: int = DEFAULT_DATA.window_len,
    window_len: int | None = None,
) -> ScanPlan:
    """Choose margin, core and window for a model.

    Parameters
    ----------
    receptive_field : int or None
        Input bases that can influence one output (None: the whole input).
    stride : int
        The model's translation-equivariance step (bp).
    bin_size : int
        Output bin (bp), >= 1.
    scan_window : int, optional
        Requested model input length; default: large enough that three quarters of each
        window are kept (at least ``train_window``).
    train_window : int
        Window length the model was trained on.
    window_len : int, optional
        Deprecated name of ``scan_window`` (``DeprecationWarning``); removed in the next release.
    """
    scan_window = renamed_keyword(
        scan_window, window_len, caller="plan_scan", new="scan_window", old="window_len"
    )
    if bin_size < 1:
        raise RegtracksError(f"--bin-size must be at least 1, got {bin_size}")
    stride = max(1, int(stride))
    step = math.lcm(stride, bin_size)
    exact = receptive_field is not None
    margin = scan_margin(receptive_field, stride, scan_window or train_window)
    if scan_window is None:
        core = max(6 * margin, train_window - 2 * margin, step)
    else:
        if scan_window <= 2 * margin:
            raise RegtracksError(
                f"--scan-window {scan_window:,} leaves no room inside margins of {margin:,} bp "
                f"(the model's receptive field); use at least {2 * margin + step:,}"
            )
        core = scan_window - 2 * margin
    core = max(step, (core // step) * step)
    return ScanPlan(
        margin=margin, core=core, window=core + 2 * margin, bin_size=bin_size, exact=exact
    )


def gap_mask(
    genome, chrom: str, *, min_gap: int = DEFAULT_SCAN.min_gap
) -> tuple[np.ndarray, np.ndarray]:
    """Runs of N of at least ``min_gap`` bp on ``chrom`` as ``(starts, ends)``."""
    s, e = genome.n_runs(chrom)
    keep = (e - s) >= min_gap
    return s[keep], e[keep]


def _inside_gap(gs: np.ndarray, ge: np.ndarray, starts, ends) -> np.ndarray:
    """Bool: ``[starts[i], ends[i])`` lies wholly inside one gap (gaps disjoint and sorted)."""
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    if gs.size == 0:
        return np.zeros(starts.shape, dtype=bool)
    k = np.minimum(np.searchsorted(ge, starts, side="right"), gs.size - 1)  # first gap ending after
    return (gs[k] <= starts) & (ge[k] >= ends)


_CPU_PASS_BYTES = DEFAULT_SCAN.cpu_pass_bytes  # a module name, so that tests can lower it


def _forward_core(model, x: torch.Tensor, start: int, end: int) -> torch.Tensor:
    """``model(x)[..., start:end]``, through ``forward_slice`` where the model has it (only
    the kept positions go through its per-position head; equal in eval mode)."""
    fn = getattr(model, "forward_slice", None)
    return fn(x, start, end) if fn is not None else model(x)[..., start:end]


def _marker_index(sel: list[int], device) -> slice | torch.Tensor:
    """The kept output channels: a slice (a view, no copy) when they are consecutive and in
    order (every marker, or one run of them), else an index tensor for ``index_select``."""
    if sel == list(range(sel[0], sel[0] + len(sel))):
        return slice(sel[0], sel[0] + len(sel))
    return torch.tensor(sel, dtype=torch.long, device=device)


def _probabilities(logits: torch.Tensor, idx: slice | torch.Tensor | None) -> torch.Tensor:
    """Core logits ``(N, M, core)`` -> float32 probabilities ``(N, T, core)``, in place where
    it can: no copy when the kept markers are consecutive and the logits float32 (the model's
    output becomes the probabilities), one copy of the kept rows otherwise."""
    if isinstance(idx, slice):
        if idx != slice(0, logits.shape[1]):
            logits = logits[:, idx]
    elif idx is not None:
        logits = logits.index_select(1, idx)
    return logits.float().sigmoid_() if logits.dtype != torch.float32 else logits.sigmoid_()


def _predict(
    model,
    x: torch.Tensor,
    idx: slice | torch.Tensor | None,
    amp,
    rc_average: bool,
    margin: int = 0,
    core: int | None = None,
) -> torch.Tensor:
    """``(N, 4, W)`` -> ``(N, T, core)`` float32 probabilities of the selected markers at the
    kept positions ``[margin, margin + core)`` (default: the whole window).

    ``idx``: the kept markers (:func:`_marker_index`; None: all). The core is sliced before
    the sigmoid, which runs in place.
    """
    end = x.shape[-1] - margin if core is None else margin + core
    with torch.autocast(x.device.type, dtype=amp or torch.float32, enabled=amp is not None):
        logits = _forward_core(model, x, margin, end)
    p = _probabilities(logits, idx)
    del logits
    if rc_average:
        xr = x.flip(1).flip(2)  # one-hot ACGT: complement = reversed channels
        # positions [margin, end) of the window are [w - end, w - margin) of its reverse
        w = x.shape[-1]
        with torch.autocast(x.device.type, dtype=amp or torch.float32, enabled=amp is not None):
            lr = _forward_core(model, xr, w - end, w - margin)
        del xr
        pr = _probabilities(lr, idx)
        del lr
        p.add_(pr.flip(2)).div_(2)
    return p


def _own_reader(genome):
    """A copy of ``genome`` for the prefetch thread: a copied :class:`Genome` opens its own file
    handle (a pysam or pyfaidx handle must not be read by two threads at once, and the caller
    may read ``genome`` between two blocks); ``genome`` itself if it cannot be copied."""
    try:
        return copy.copy(genome)
    except Exception:
        return genome


class _Prefetch:
    """Make ``make(item)`` for each of ``items`` on a background thread, at most ``depth``
    ahead of the consumer; iterate to get them in order.

    An exception of ``make`` is raised by the iteration (with its traceback); :meth:`close`
    stops the thread and waits for it (the generator that owns the prefetcher calls it on
    early close, error or end).
    """

    _END = object()

    def __init__(self, make, items, depth: int = 2):
        import queue
        import threading

        self._queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(make, items), name="regtracks-scan-prefetch", daemon=True
        )
        self._thread.start()

    def _put(self, item) -> bool:
        import queue

        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, make, items) -> None:
        try:
            with torch.inference_mode():
                for it in items:
                    if self._stop.is_set() or not self._put((True, make(it))):
                        return
            self._put((True, self._END))
        except BaseException as exc:  # raised in the consumer
            self._put((False, exc))

    def __iter__(self):
        while True:
            ok, value = self._queue.get()
            if not ok:
                raise value
            if value is self._END:
                return
            yield value

    def close(self) -> None:
        import queue

        self._stop.set()
        while True:  # free a producer blocked on a full queue at once
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join()


def _bin_means(p: torch.Tensor, bs: int, valid: int) -> torch.Tensor:
    """``(T, core)`` probabilities -> ``(T, ceil(valid / bs))`` means of the bins of the first
    ``valid`` positions (the last bin may be partial): the one window of a chromosome that
    passes its end."""
    nfull, rem = divmod(valid, bs)
    parts = []
    if nfull:
        parts.append(p[:, : nfull * bs].reshape(p.shape[0], nfull, bs).sum(-1).div_(bs))
    if rem:
        parts.append(p[:, nfull * bs : valid].sum(-1, keepdim=True).div_(rem))
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


@torch.inference_mode()
def scan_chromosome(
    model,
    genome,
    chrom: str,
    *,
    plan: ScanPlan,
    n_markers: int,
    marker_idx: list[int] | None = None,
    batch_size: int = DEFAULT_SCAN.batch_size,
    device: torch.device | str = "cpu",
    amp: torch.dtype | None = None,
    rc_average: bool = False,
    min_gap: int = DEFAULT_SCAN.min_gap,
    progress=None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Predict a whole chromosome; yield binned blocks in order.

    Parameters
    ----------
    model : nn.Module
        Dense-task model in eval mode, on ``device``.
    genome : Genome
    chrom : str
    plan : ScanPlan
        From :func:`plan_scan`.
    n_markers : int
        The model's output channels ``M``.
    marker_idx : list of int, optional
        Output channels to keep (default all).
    batch_size : int
        Windows per batch: fetched together (on a thread, while the model runs the batch
        before), run through the model together (on the CPU in passes whose outputs stay
        within 256 MiB, ``ScanDefaults.cpu_pass_bytes``), and yielded as one block.
    amp : torch.dtype, optional
        Autocast dtype (bf16 on CUDA).
    rc_average : bool
        Average with the prediction on the reverse complement.
    min_gap : int
        Runs of N at least this long carry no data.
    progress : callable, optional
        ``progress(done_bp, chrom_len, chrom)`` after each batch (the shape of every counted
        progress report in regtracks: done, total, label).

    Yields
    ------
    start : int
        Chromosome position of the block's first bin (a multiple of ``bin_size``): one block
        per batch of ``batch_size`` cores.
    values : (T, n_bins) float32, C-contiguous
        Mean probability per bin, NaN for bins without data. A new array each time.

    Closing the generator early (``close``, or dropping it) stops the prefetch thread; an
    error while fetching the sequence is raised here.
    """
    device = torch.device(device)
    chrom = genome.require(chrom)
    size = genome.sizes[chrom]
    bs, core, margin, window = plan.bin_size, plan.core, plan.margin, plan.window
    sel = list(range(n_markers)) if marker_idx is None else list(marker_idx)
    if not sel or min(sel) < 0 or max(sel) >= n_markers:
        raise RegtracksError(f"marker indices must lie in 0..{n_markers - 1}")
    idx = _marker_index(sel, device)  # every marker: a view of the whole output
    T = len(sel)
    nb = core // bs  # bins of a whole core (core is a multiple of bs)
    gs, ge = gap_mask(genome, chrom, min_gap=min_gap)
    cuda = device.type == "cuda"
    # on the CPU the model's outputs (host memory) for one pass stay within a budget: windows
    # go through it one (or a few) at a time, as fast as a whole batch there
    width = core if getattr(model, "forward_slice", None) is not None else window
    per_window = 4 * n_markers * width * (3 if rc_average else 1)
    chunk = batch_size if cuda else max(1, min(batch_size, _CPU_PASS_BYTES // per_window))
    batches = [list(range(b, min(b + batch_size * core, size), core)) for b in
               range(0, size, batch_size * core)]  # fmt: skip

    reader = _own_reader(genome)

    def fetch(batch: list[int]):
        """On the prefetch thread: which windows run, and their inputs (one-hot on the CPU;
        uint8 codes in pinned memory on CUDA, one-hot on the device)."""
        c0s = np.asarray(batch, dtype=np.int64)
        in_gap = _inside_gap(gs, ge, c0s, np.minimum(c0s + core, size))
        live = [k for k, skip in enumerate(in_gap.tolist()) if not skip]
        if not live:
            return batch, live, None
        codes = torch.empty((len(live), window), dtype=torch.uint8, pin_memory=cuda)
        buf = codes.numpy()
        for j, k in enumerate(live):
            buf[j] = reader.fetch(chrom, batch[k] - margin, batch[k] - margin + window)
        return batch, live, (codes if cuda else one_hot_torch(codes))

    def compute(batch: list[int], live: list[int], x) -> tuple[torch.Tensor, object]:
        """Run the model on the live windows; the batch's ``(T, n_bins)`` block (NaN where
        no window ran), on the host (on CUDA: pinned, filled by a copy still in flight, and
        the event that marks its end)."""
        n_bins = sum(-(-(min(c0 + core, size) - c0) // bs) for c0 in batch)
        if cuda:
            block = torch.full((T, n_bins), float("nan"), device=device)
        else:
            block = torch.from_numpy(np.full((T, n_bins), np.nan, dtype=np.float32))
        if live:
            if cuda:
                x = one_hot_torch(x.to(device, non_blocking=True))
            for a in range(0, len(live), chunk):
                p = _predict(model, x[a : a + chunk], idx, amp, rc_average, margin, core)
                ks = live[a : a + chunk]  # (L, T, core) probabilities of these windows
                n_whole = len(ks) - (batch[ks[-1]] + core > size)
                means = p[:n_whole].view(n_whole, T, nb, bs).sum(-1).div_(bs)  # (L', T, nb)
                for j, k in enumerate(ks[:n_whole]):
                    block[:, k * nb : (k + 1) * nb] = means[j]
                if n_whole < len(ks):  # the chromosome's last window: bins up to its end
                    k = ks[-1]
                    block[:, k * nb :] = _bin_means(p[-1], bs, size - batch[k])
                del p, means
            del x
        if not cuda:
            return block, None
        host = torch.empty((T, n_bins), dtype=torch.float32, pin_memory=True)
        host.copy_(block, non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        return host, done

    def finish(batch: list[int], host: torch.Tensor, done) -> tuple[int, np.ndarray]:
        if done is not None:
            done.synchronize()
        vals = host.numpy()
        b_start = batch[0] + bs * np.arange(vals.shape[1], dtype=np.int64)
        vals[:, _inside_gap(gs, ge, b_start, np.minimum(b_start + bs, size))] = np.nan
        return batch[0], vals

    def emit(batch: list[int], host: torch.Tensor, done):
        yield finish(batch, host, done)
        if progress is not None:
            progress(min(batch[-1] + core, size), size, chrom)

    prefetch = _Prefetch(fetch, batches, depth=2)
    try:
        held = None  # CUDA: the previous batch, handed on while the device runs this one
        for batch, live, x in prefetch:
            out = (batch, *compute(batch, live, x))
            del x
            if not cuda:
                yield from emit(*out)
                continue
            if held is not None:
                yield from emit(*held)
            held = out
        if held is not None:
            yield from emit(*held)
    finally:
        prefetch.close()
