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
"""

from __future__ import annotations

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


def _predict(model, x: torch.Tensor, idx: torch.Tensor, amp, rc_average: bool) -> torch.Tensor:
    """``(N, 4, W)`` -> ``(N, T, W)`` float32 probabilities of the selected markers."""
    with torch.autocast(x.device.type, dtype=amp or torch.float32, enabled=amp is not None):
        p = torch.sigmoid(model(x).index_select(1, idx).float())
        if rc_average:
            xr = x.flip(1).flip(2)  # one-hot ACGT: complement = reversed channels
            pr = torch.sigmoid(model(xr).index_select(1, idx).float()).flip(2)
            p = (p + pr) / 2
    return p


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
        Windows per forward pass.
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
        Chromosome position of the block's first bin (a multiple of ``bin_size``).
    values : (T, n_bins) float32
        Mean probability per bin, NaN for bins without data.
    """
    device = torch.device(device)
    chrom = genome.require(chrom)
    size = genome.sizes[chrom]
    bs, core, margin, window = plan.bin_size, plan.core, plan.margin, plan.window
    sel = list(range(n_markers)) if marker_idx is None else list(marker_idx)
    if not sel or min(sel) < 0 or max(sel) >= n_markers:
        raise RegtracksError(f"marker indices must lie in 0..{n_markers - 1}")
    idx = torch.tensor(sel, dtype=torch.long, device=device)
    T = len(sel)
    gs, ge = gap_mask(genome, chrom, min_gap=min_gap)
    cores = list(range(0, size, core))
    pending: list[int] = []

    def run(batch_starts: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        # skip windows whose core is wholly in gaps
        c0s = np.asarray(batch_starts, dtype=np.int64)
        in_gap = _inside_gap(gs, ge, c0s, np.minimum(c0s + core, size))
        live = [c0 for c0, skip in zip(batch_starts, in_gap.tolist(), strict=True) if not skip]
        out = {}
        if live:
            codes = np.stack(
                [genome.fetch(chrom, c0 - margin, c0 - margin + window) for c0 in live]
            )
            x = torch.from_numpy(codes).to(device, non_blocking=True)
            x = one_hot_torch(x)
            p = _predict(model, x, idx, amp, rc_average)[
                :, :, margin : margin + core
            ]  # (B, T, core)
            # bin means over the bases inside the chromosome
            valid = torch.tensor([min(core, size - c0) for c0 in live], device=device)
            pos = torch.arange(core, device=device)
            mask = (pos[None, :] < valid[:, None]).to(p.dtype)  # (B, core)
            nb = core // bs
            sums = (p * mask[:, None, :]).view(p.shape[0], p.shape[1], nb, bs).sum(-1)
            cnt = mask.view(mask.shape[0], nb, bs).sum(-1).clamp_min(1)
            means = (sums / cnt[:, None, :]).cpu().numpy()
            for j, c0 in enumerate(live):
                out[c0] = means[j]
        for c0 in batch_starts:
            nb = -(-(min(c0 + core, size) - c0) // bs)
            vals = out[c0][:, :nb].copy() if c0 in out else np.full((T, nb), np.nan, np.float32)
            b_start = c0 + bs * np.arange(nb, dtype=np.int64)
            vals[:, _inside_gap(gs, ge, b_start, np.minimum(b_start + bs, size))] = np.nan
            yield c0, vals.astype(np.float32, copy=False)

    for c0 in cores:
        pending.append(c0)
        if len(pending) == batch_size:
            yield from _merge(run(pending))
            if progress is not None:
                progress(min(pending[-1] + core, size), size, chrom)
            pending = []
    if pending:
        yield from _merge(run(pending))
        if progress is not None:
            progress(size, size, chrom)


def _merge(blocks: Iterator[tuple[int, np.ndarray]]) -> Iterator[tuple[int, np.ndarray]]:
    """Concatenate consecutive blocks of one batch into one (fewer, larger writes)."""
    blocks = list(blocks)
    if not blocks:
        return
    yield blocks[0][0], np.concatenate([b[1] for b in blocks], axis=1)
