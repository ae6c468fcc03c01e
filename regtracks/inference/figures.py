"""The paper's Figure 2 for any runs: where in the input each model looks for a marker's peaks.

One panel per run, over one region and one marker: the output positions back-propagated from
(by default the marker's positive labels, the paper's "error of 1 from every positive output")
shaded blue, and the input-gradient norm per base (L2 over the 4 channels of the gradient of
the sum of those logits, :mod:`regtracks.inference.saliency` with ``reduce="norm"``) in black.
Each panel is labelled with the model's name and nominal receptive field; the panels share
their x axis (the region and the widest context any of the models reads around it) and their
y axis, so a model whose gradient is faint looks faint.

Figures need matplotlib (extra ``plot``); without it :func:`require_matplotlib` raises one
line.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from regtracks._util import RegtracksError, atomic_path, check_output_file
from regtracks.config import DEFAULT_RUNTIME, DEFAULT_SALIENCY

__all__ = ["Figure2Panel", "Figure2Result", "figure2", "figure2_panel", "draw_figure2",
           "require_matplotlib"]  # fmt: skip

BLUE = "#1f5fbf"


def require_matplotlib(option: str = "figures"):
    """``(Figure, FigureCanvasAgg)`` of matplotlib, or a one-line error naming what needs it."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise RegtracksError(
            f"{option} needs matplotlib, which is not installed (pip install 'regtracks[plot]')"
        ) from None
    return Figure, FigureCanvasAgg


@dataclass
class Figure2Panel:
    """One run's panel of Figure 2.

    Attributes
    ----------
    run : str
        The run folder.
    model : str
        The checkpoint's model name.
    receptive_field : int or None
        Nominal (declared), bp.
    marker, target : str
        The marker, and what was back-propagated from (``positives``, ``predicted``, ``all``).
    chrom, start, end : region, 0-based half-open
    span : (int, int)
        The input bases the gradient was computed on (the region plus the model's margin).
    norm : (span[1] - span[0],) float32
        Input-gradient norm per base.
    targets : (end - start,) uint8
        1 at the output positions back-propagated from.
    """

    run: str
    model: str
    receptive_field: int | None
    marker: str
    target: str
    chrom: str
    start: int
    end: int
    span: tuple[int, int]
    norm: np.ndarray
    targets: np.ndarray
    seconds: float = 0.0

    @property
    def n_targets(self) -> int:
        return int(self.targets.sum())

    @property
    def label(self) -> str:
        rf = "whole input" if self.receptive_field is None else f"{self.receptive_field:,} bp"
        return f"{self.model} ({Path(self.run).name}): receptive field {rf}"


@dataclass
class Figure2Result:
    """What :func:`figure2` drew."""

    out: Path
    panels: list[Figure2Panel] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def figure2_panel(
    run: str | os.PathLike,
    *,
    region: str,
    marker: str,
    target: str | None = None,
    genome=None,
    which: str = DEFAULT_RUNTIME.checkpoint,
    device: str = DEFAULT_RUNTIME.device,
    batch_size: int = DEFAULT_SALIENCY.batch_size,
    progress=None,
) -> tuple[Figure2Panel, str | None]:
    """Compute one run's panel: ``(panel, note)`` (``note``: why the target is not the
    default's, or None).

    Raises
    ------
    RegtracksError
        As :func:`regtracks.inference.saliency.saliency`: a bad region or marker, no positive
        label of the marker in the region under ``target="positives"``.
    """
    from regtracks.inference.saliency import (
        TargetStats,
        no_positives_error,
        positives_in,
        region_labels,
        resolve_region,
        resolve_target,
        saliency_region,
    )
    from regtracks.inference.session import open_session

    t0 = time.perf_counter()
    sess = open_session(
        run, genome=genome, which=which, markers=[marker], device=device, precision="fp32",
        purpose="Figure 2",
    )  # fmt: skip
    chrom, start, end = resolve_region(sess.genome, region)
    target, index, note = resolve_target(sess, target)
    labels = None
    if index is not None:
        if not positives_in(index, chrom, start, end).all():
            raise no_positives_error([marker], chrom, start, end)
        labels = region_labels(index, chrom)
    plan = sess.plan(sess.stride, None)
    stats = TargetStats.new(1, start=start, end=end)
    size = sess.genome.sizes[chrom]
    span = (max(0, start - plan.margin), min(size, end + plan.margin))
    blocks = []
    for pos, vals in saliency_region(
        sess.model, sess.genome, chrom, start, end, marker_idx=list(sess.marker_idx),
        reduce="norm", margin=plan.margin, core=plan.core, stride=sess.stride,
        chunk=DEFAULT_SALIENCY.chunk, batch_size=batch_size, device=sess.device, amp=None,
        target=target, labels=labels, stats=stats,
    ):  # fmt: skip
        blocks.append(vals[0])
        if progress is not None:
            progress(pos + vals.shape[1] - span[0], span[1] - span[0], Path(run).name)
    panel = Figure2Panel(
        run=str(sess.path.parent),
        model=sess.checkpoint.model_name,
        receptive_field=sess.receptive_field,
        marker=marker,
        target=target,
        chrom=chrom,
        start=start,
        end=end,
        span=span,
        norm=np.concatenate(blocks).astype(np.float32),
        targets=stats.mask[0],
        seconds=time.perf_counter() - t0,
    )
    return panel, note


def figure2(
    runs: list[str | os.PathLike],
    out: str | os.PathLike,
    *,
    region: str,
    marker: str,
    target: str | None = None,
    genome=None,
    which: str = DEFAULT_RUNTIME.checkpoint,
    device: str = DEFAULT_RUNTIME.device,
    batch_size: int = DEFAULT_SALIENCY.batch_size,
    progress=None,
) -> Figure2Result:
    """Draw Figure 2 for ``runs`` (one panel each) into the PNG ``out``, written atomically.

    Parameters
    ----------
    runs : list of path
        Run folders or checkpoints (dense task), each with the marker.
    out : path
        The PNG to write (checked before the work).
    region : str
        ``chr1:1,000,001-1,002,000`` (1-based inclusive) or a chromosome.
    marker : str
        One marker name.
    target : {"positives", "predicted", "all"}, optional
        What is back-propagated from (default: positives when a run's peak files are there).
    genome, which, device, batch_size : optional
        As for :func:`regtracks.inference.saliency.saliency`; gradients are fp32.
    progress : callable, optional
        ``progress(done_bp, total_bp, run_name)``, per run.
    """
    t0 = time.perf_counter()
    if not runs:
        raise RegtracksError("figure2 needs at least one run")
    if batch_size < 1:
        raise RegtracksError(f"--batch-size must be at least 1, got {batch_size}")
    require_matplotlib("figure2")
    out = check_output_file(out)
    res = Figure2Result(out=out)
    for run in runs:
        panel, note = figure2_panel(
            run, region=region, marker=marker, target=target, genome=genome, which=which,
            device=device, batch_size=batch_size, progress=progress,
        )  # fmt: skip
        if note:
            res.notes.append(f"{Path(run).name}: {note}")
        res.panels.append(panel)
    draw_figure2(res.panels, out)
    res.seconds = time.perf_counter() - t0
    return res


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` of the runs of ones in a 0/1 array."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist(), strict=True))


def draw_figure2(panels: list[Figure2Panel], out: str | os.PathLike) -> Path:
    """Draw the panels (one row each, shared axes) into the PNG ``out``, written atomically."""
    Figure, FigureCanvasAgg = require_matplotlib("figure2")
    if not panels:
        raise RegtracksError("figure2: no panel to draw")
    x0 = min(p.span[0] for p in panels)
    x1 = max(p.span[1] for p in panels)
    fig = Figure(figsize=(11, 1.2 + 1.9 * len(panels)), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, sharex=True, sharey=True, squeeze=False)[:, 0]
    top = max(float(np.nanmax(p.norm)) if p.norm.size else 0.0 for p in panels) or 1.0
    for ax, p in zip(axes, panels, strict=True):
        for a, b in _runs(p.targets):
            ax.axvspan(p.start + a, p.start + b, color=BLUE, alpha=0.35, lw=0)
        ax.plot(np.arange(p.span[0], p.span[1]), p.norm, color="black", lw=0.6)
        for edge in (p.start, p.end):
            ax.axvline(edge, color="0.6", lw=0.5, ls=":")
        peak = float(np.max(p.norm)) if p.norm.size else 0.0
        ax.set_title(f"{p.label}    (max {peak:.3g})", fontsize=9, loc="left")
        ax.set_ylabel("gradient norm", fontsize=8)
        ax.set_ylim(0, top * 1.05)
    axes[-1].set_xlim(x0, x1)
    first = panels[0]
    axes[-1].set_xlabel(f"{first.chrom} position (bp, 0-based)")
    what = {"positives": "positive outputs (labels)", "predicted": "outputs predicted positive",
            "all": "every output"}[first.target]  # fmt: skip
    fig.suptitle(
        f"{first.marker}, {first.chrom}:{first.start + 1:,}-{first.end:,}: input-gradient norm "
        f"(black) of the sum of the logits of its {what} (blue)",
        fontsize=10,
    )
    fig.tight_layout()
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    return out
