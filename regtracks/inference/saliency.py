"""Gradient saliency at chromosome scale: which bases move a marker's predictions in a region.

The paper's Figure 2 backpropagates "an error of 1 from every positive output for a random
regulatory marker" to the one-hot input and plots the norm of the gradient at every input base:
the model's effective receptive field. This module does it for any region, a whole chromosome
included, and writes one bigWig per marker.

For marker ``t`` and region ``[start, end)`` the objective is a sum of the marker's logits over
*target* positions ``P_t`` of the region, ``S = sum_{p in P_t} logit_t(p)``, of the model run on
the whole chromosome. The target (``target=``) is

* ``positives`` (the paper's method; :func:`saliency`'s default when the run's peak files are
  there): the positions where the marker's labels are 1 (its merged peaks, as in training);
* ``predicted``: the positions where the model's probability is above 0.5 (logit > 0), taken
  as a fixed mask (no gradient flows through the threshold);
* ``all``: every position of the region.

Logits rather than the loss: "an error of 1" at an output is a gradient of 1 there; at the
logits it neither saturates where the model is sure (a sigmoid output's gradient vanishes
there) nor depends on the label (the loss's error ``p - y`` shrinks as the model improves),
so the map shows what the model reads, not how wrong it is.

Its gradient with respect to the one-hot input, ``G[b, c] = dS / dx[c, b]`` (4 values per
base), is reduced per base to

* ``grad_x_input`` (default): ``G[b, ref(b)]``, the gradient at the base present (zero at N):
  positive where the base raises the marker's predictions;
* ``norm``: ``||G[b, :]||_2``, the paper's "norm of the error to the inputs".

Exactness: ``S`` is a sum, so its gradient is the sum of the gradients of the sums over the
kept cores of the scanning windows (:func:`regtracks.inference.scan.plan_scan`). With margins
covering the receptive field, each window computes its core's logits exactly as the whole
chromosome would, so the stitched gradient equals the one-long-input gradient (tested against
one long input and against a linear model's weights by hand). Bases within one receptive field
outside the region are influenced too; the tracks cover ``[start - margin, end + margin)``
clipped to the chromosome. Memory is bounded by ``chunk`` (default 1 Mbp): the region is
processed chunk by chunk and finished bases are handed on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from regtracks._util import RegtracksError, folder_lock, parse_region, remove_stale_temps
from regtracks.config import DEFAULT_RUNTIME, DEFAULT_SALIENCY, SaliencyDefaults
from regtracks.data.datasets import one_hot_torch
from regtracks.inference.session import check_writable, open_session, scan_window_arg, track_name

__all__ = [
    "saliency",
    "saliency_region",
    "SaliencyResult",
    "TargetStats",
    "REDUCTIONS",
    "TARGETS",
    "check_target",
    "resolve_target",
    "resolve_region",
    "region_labels",
    "positives_in",
]

REDUCTIONS = ("grad_x_input", "norm")
TARGETS = ("positives", "predicted", "all")
"""What the gradient is taken of: the logits at the labels' positives, at the model's own
calls (p > 0.5), or at every position (see the module docstring)."""


@dataclass
class SaliencyResult:
    """What :func:`saliency` wrote."""

    hub_dir: Path
    tracks: list[Path] = field(default_factory=list)
    chrom: str = ""
    start: int = 0
    end: int = 0
    span: tuple[int, int] = (0, 0)
    bases: int = 0
    seconds: float = 0.0
    exact: bool = True
    hub: object = None
    target: str = "all"
    targets: dict[str, int] = field(default_factory=dict)
    """Target positions back-propagated from, per marker name."""
    target_note: str | None = None
    """Why the default target is not ``positives`` (no peak files), or None."""


Labels = Callable[[int, int], np.ndarray]
"""``labels(s, e)`` -> ``(T, e - s)`` uint8 labels of the selected markers, bases ``[s, e)``."""


@dataclass
class TargetStats:
    """What :func:`saliency_region` back-propagated from: ``counts[t]``, the target positions
    of marker ``t``; with ``mask`` (``(T, end - start)`` uint8, region coordinates from
    ``origin``) given, which positions they were."""

    counts: np.ndarray
    mask: np.ndarray | None = None
    origin: int = 0

    @classmethod
    def new(cls, n_markers: int, *, start: int = 0, end: int | None = None) -> TargetStats:
        """Counts only, or (``end`` given) the mask of ``[start, end)`` too."""
        mask = None if end is None else np.zeros((n_markers, end - start), dtype=np.uint8)
        return cls(counts=np.zeros(n_markers, dtype=np.int64), mask=mask, origin=start)

    def add(self, t: int, cs: list[int], wt: np.ndarray, *, margin, core, region) -> None:
        """Record the target positions of marker ``t`` in the windows of cores ``cs``."""
        self.counts[t] += int((wt > 0).sum())
        if self.mask is None:
            return
        r0, r1 = region
        for j, c in enumerate(cs):
            k0, k1 = max(c, r0), min(c + core, r1)
            if k1 > k0:
                o = c - margin
                self.mask[t, k0 - self.origin : k1 - self.origin] = wt[j, k0 - o : k1 - o] > 0


def _region_gradient(
    model,
    codes: np.ndarray,
    lo: int,
    *,
    region: tuple[int, int],
    marker_idx: list[int],
    margin: int,
    core: int,
    stride: int,
    batch_size: int,
    device: torch.device,
    amp,
    target: str = "all",
    labels: Labels | None = None,
    stats: TargetStats | None = None,
) -> np.ndarray:
    """``(T, 4, len(codes))`` gradient of each marker's logit sum over its target positions of
    ``region``.

    ``codes`` are the bases ``[lo, lo + len(codes))`` of the chromosome (0 = N beyond its
    ends); the first core starts at ``lo + margin`` (a multiple of the stride) and the cores
    tile ``region``, which lies inside ``[lo + margin, lo + len(codes) - margin)``.
    ``labels(s, e)``: ``(T, e - s)`` labels of the selected markers (``target="positives"``).
    """
    r0, r1 = region
    n = codes.size
    grad = np.zeros((len(marker_idx), 4, n), dtype=np.float32)
    starts = list(range(lo + margin, r1, core))
    window = core + 2 * margin
    lab = labels(lo, lo + n) if target == "positives" else None
    for b in range(0, len(starts), batch_size):
        cs = starts[b : b + batch_size]
        win = np.zeros((len(cs), window), dtype=np.uint8)
        mask = np.zeros((len(cs), window), dtype=np.float32)
        for j, c in enumerate(cs):
            a = c - margin - lo  # window start in codes coordinates
            s, e = max(a, 0), min(a + window, n)
            win[j, s - a : e - a] = codes[s:e]
            # positions of this core inside the region carry the objective
            k0, k1 = max(c, r0), min(c + core, r1)
            if k1 > k0:
                mask[j, k0 - (c - margin) : k1 - (c - margin)] = 1.0
        x = one_hot_torch(torch.from_numpy(win).to(device)).requires_grad_(True)
        w = torch.from_numpy(mask).to(device)
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            out = model(x)
        for t, m in enumerate(marker_idx):
            logits = out[:, m, :].float()
            if target == "positives":
                wt = w * torch.from_numpy(_windows(lab[t], cs, lo, margin, window)).to(device)
            elif target == "predicted":  # p > 0.5, a fixed mask
                wt = w * (logits.detach() > 0).float()
            else:
                wt = w
            (g,) = torch.autograd.grad((logits * wt).sum(), x, retain_graph=t + 1 < len(marker_idx))
            g = g.float().cpu().numpy()
            for j, c in enumerate(cs):
                a = c - margin - lo
                s, e = max(a, 0), min(a + window, n)
                grad[t, :, s:e] += g[j, :, s - a : e - a]
            if stats is not None:
                stats.add(t, cs, wt.cpu().numpy(), margin=margin, core=core, region=region)
    return grad


def resolve_region(genome, region: str) -> tuple[str, int, int]:
    """``chr1:1,001-2,000`` (1-based inclusive) or a whole chromosome (``chr1``) of ``genome``
    -> ``(chrom, start, end)``, 0-based half-open; one-line errors for a region that is
    malformed, empty, on no chromosome of the genome or past its end."""
    if ":" in region:
        chrom, start, end = parse_region(region)
        chrom = genome.require(chrom)
        if end > genome.sizes[chrom]:
            raise RegtracksError(
                f"region {region!r} ends past {chrom} ({genome.sizes[chrom]:,} bp in "
                f"{genome.path.name})"
            )
        return chrom, start, end
    chrom = genome.require(region.strip())
    return chrom, 0, genome.sizes[chrom]


def _windows(values: np.ndarray, cs: list[int], lo: int, margin: int, window: int) -> np.ndarray:
    """``(len(cs), window)`` float32 slices of ``values`` (bases ``lo ..``) for the windows of
    cores ``cs``; zeros past its ends."""
    out = np.zeros((len(cs), window), dtype=np.float32)
    n = values.shape[-1]
    for j, c in enumerate(cs):
        a = c - margin - lo
        s, e = max(a, 0), min(a + window, n)
        out[j, s - a : e - a] = values[s:e]
    return out


def check_target(target: str) -> str:
    """``target`` if it is one of :data:`TARGETS`, else a one-line error naming ``--target``."""
    if target not in TARGETS:
        raise RegtracksError(f"--target must be one of {', '.join(TARGETS)}, got {target!r}")
    return target


def run_labels(sess) -> tuple[object | None, str | None]:
    """The labels of a session's selected markers: ``(IntervalIndex, None)`` (index ``k``: the
    ``k``-th selected marker), or ``(None, why not)`` when a peak file recorded in the
    checkpoint is not there."""
    from regtracks.data.labels import IntervalIndex
    from regtracks.data.markers import MarkerSet

    chosen = sess.selected
    sub = MarkerSet(chosen)
    missing = [m.name for m in chosen if not sub.peak_path(m).is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        return None, f"the peak files of {shown} recorded in the checkpoint are not there"
    return IntervalIndex(sub.read(sess.genome).per_marker), None


def resolve_target(sess, target: str | None) -> tuple[str, object | None, str | None]:
    """``(target, labels index or None, note)`` for a session: ``target=None`` is
    ``positives`` when the run's peak files are there, else ``all`` (``note`` says why);
    ``positives`` asked for without them is an error."""
    if target is not None:
        check_target(target)
    if target in ("predicted", "all"):
        return target, None, None
    index, why = run_labels(sess)
    if index is None:
        if target == "positives":
            raise RegtracksError(
                f"--target positives needs the run's labels: {why} "
                "(--target predicted or --target all need none)"
            )
        return "all", None, f"{why}: saliency of every position (--target all)"
    return "positives", index, None


def region_labels(index, chrom: str) -> Labels:
    """``labels(s, e)``: ``(T, e - s)`` uint8 labels of ``chrom`` from an
    :class:`~regtracks.data.labels.IntervalIndex` (bases outside the chromosome: 0)."""
    return lambda s, e: index.dense(chrom, s, e)


def positives_in(index, chrom: str, start: int, end: int) -> np.ndarray:
    """``(T,)`` positive bases of each marker of ``index`` in ``[start, end)``."""
    rows = index.query(chrom, start, end)
    return np.bincount(
        rows[:, 0], weights=(rows[:, 2] - rows[:, 1]).astype(np.float64), minlength=index.n_markers
    ).astype(np.int64)


def no_positives_error(names: list[str], chrom: str, start: int, end: int) -> RegtracksError:
    """The one line of a region where markers have no positive output to back-propagate from."""
    shown = ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
    return RegtracksError(
        f"no positive labels of {shown} in {chrom}:{start + 1:,}-{end:,}: nothing to "
        "back-propagate from (--target predicted: the model's calls; --target all: every "
        "position)"
    )


def saliency_region(
    model,
    genome,
    chrom: str,
    start: int,
    end: int,
    *,
    marker_idx: list[int],
    reduce: str = DEFAULT_SALIENCY.reduce,
    margin: int,
    core: int,
    stride: int = 1,
    chunk: int = DEFAULT_SALIENCY.chunk,
    batch_size: int = DEFAULT_SALIENCY.batch_size,
    device: torch.device | str = "cpu",
    amp=None,
    target: str = "all",
    labels: Labels | None = None,
    stats: TargetStats | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Per-base saliency of ``marker_idx`` for the region, in chromosome order.

    Yields ``(pos, values)`` blocks, ``values`` ``(T, n)`` float32 for bases
    ``[pos, pos + n)``, covering ``[max(0, start - margin), min(L, end + margin))`` once.
    ``margin`` must cover the model's receptive field for the result to be exact; ``core`` is
    the kept length of each scanning window (a multiple of ``stride``).

    ``target`` (:data:`TARGETS`): the positions whose logits are summed; ``positives`` needs
    ``labels(s, e)``, the ``(T, e - s)`` labels of the ``marker_idx`` markers on bases
    ``[s, e)`` of ``chrom`` (:func:`region_labels`). ``stats`` (:class:`TargetStats`), when
    given, counts the target positions of each marker (and records them with a mask).
    """
    if reduce not in REDUCTIONS:
        raise RegtracksError(f"--reduce must be one of {', '.join(REDUCTIONS)}, got {reduce!r}")
    check_target(target)
    if target == "positives" and labels is None:
        raise RegtracksError("--target positives needs the run's labels (its peak files)")
    device = torch.device(device)
    size = genome.sizes[chrom]
    span0, span1 = max(0, start - margin), min(size, end + margin)
    chunk = max(core, (chunk // core) * core)
    was_training = model.training
    model.eval()
    req = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        pending = np.zeros((len(marker_idx), 4, 0), dtype=np.float32)
        p0 = span0  # chromosome position of pending[..., 0]
        c0 = (start // stride) * stride
        bounds = list(range(c0, end, chunk))
        for i, a in enumerate(bounds):
            r0, r1 = max(a, start), min(a + chunk, end)
            lo = a - margin  # a: a multiple of the stride (c0 plus whole cores)
            hi = min(a + chunk, end) + core + margin  # the last window may pass the region
            codes = np.zeros(hi - lo, dtype=np.uint8)
            s, e = max(lo, 0), min(hi, size)
            codes[s - lo : e - lo] = genome.fetch(chrom, s, e)
            g = _region_gradient(
                model, codes, lo, region=(r0, r1), marker_idx=marker_idx, margin=margin,
                core=core, stride=stride, batch_size=batch_size, device=device, amp=amp,
                target=target, labels=labels, stats=stats,
            )  # fmt: skip
            # add this chunk's gradient (clipped to the span) to the pending bases
            g0, g1 = max(lo, span0), min(hi, span1)
            need = g1 - p0
            if need > pending.shape[-1]:
                pending = np.concatenate(
                    [pending, np.zeros((*pending.shape[:2], need - pending.shape[-1]), np.float32)],
                    axis=-1,
                )
            pending[..., g0 - p0 : g1 - p0] += g[..., g0 - lo : g1 - lo]
            # bases before the next chunk's reach are final
            done = span1 if i + 1 == len(bounds) else max(p0, bounds[i + 1] - margin)
            done = min(done, p0 + pending.shape[-1])
            if done > p0:
                yield p0, _reduce(pending[..., : done - p0], genome, chrom, p0, reduce)
                pending = pending[..., done - p0 :]
                p0 = done
    finally:
        for p, r in zip(model.parameters(), req, strict=True):
            p.requires_grad_(r)
        model.train(was_training)


def _reduce(g: np.ndarray, genome, chrom: str, pos: int, reduce: str) -> np.ndarray:
    """``(T, 4, n)`` gradients -> ``(T, n)`` per-base values."""
    if reduce == "norm":
        return np.sqrt((g.astype(np.float64) ** 2).sum(axis=1)).astype(np.float32)
    onehot = genome.one_hot(chrom, pos, pos + g.shape[-1])  # (4, n); N = zeros
    return (g * onehot[None]).sum(axis=1).astype(np.float32)


def saliency(
    run: str | os.PathLike,
    hub_dir: str | os.PathLike,
    *,
    region: str,
    genome=None,
    markers: list[str] | None = None,
    category: str | None = None,
    reduce: str = DEFAULT_SALIENCY.reduce,
    bin_size: int = DEFAULT_SALIENCY.bin_size,
    scan_window: int | None = None,
    batch_size: int = DEFAULT_SALIENCY.batch_size,
    device: str = DEFAULT_RUNTIME.device,
    precision: str = DEFAULT_SALIENCY.precision,
    which: str = DEFAULT_RUNTIME.checkpoint,
    n_procs: int | None = 0,
    build: bool = True,
    hub_options: dict | None = None,
    cfg: SaliencyDefaults = DEFAULT_SALIENCY,
    progress=None,
    window_len: int | None = None,
    target: str | None = "all",
) -> SaliencyResult:
    """Write gradient-saliency bigWigs of a run's dense model for a region into a hub.

    Parameters
    ----------
    run : path
        Run folder or checkpoint (dense task).
    hub_dir : path
        Hub folder (``tracks/sal_<marker>.bw``, ``manifest.json``, hub files); prediction
        tracks already there are kept.
    region : str
        ``chr1:1,000,001-1,100,000`` (1-based inclusive, as browsers show) or a whole
        chromosome (``chr1``).
    genome : path, optional
        Genome FASTA (default: the one recorded in the checkpoint).
    markers, category : optional
        Markers to explain (default: every marker; each costs one backward pass per window).
    reduce : {"grad_x_input", "norm"}
        Per-base value (see the module docstring).
    bin_size : int
        Track resolution (mean over bins); 1 = every base.
    scan_window, batch_size, device, precision, which, n_procs, build, hub_options
        As for :func:`regtracks.inference.predict.predict`; ``precision`` defaults to fp32.
    progress : callable, optional
        ``progress(done_bp, total_bp, label)``.
    window_len : int, optional
        Deprecated name of ``scan_window`` (``DeprecationWarning``); removed in the next release.
    target : {"positives", "predicted", "all"} or None
        The positions back-propagated from (see the module docstring). None (the command
        line's default): ``positives``, the paper's Figure 2, when the run's peak files are
        there, else ``all`` (the result's ``target_note`` says so). The keyword's default,
        ``all``, is what this function computed before it had the keyword.

    Raises
    ------
    RegtracksError
        Besides bad options: ``--target positives`` where a selected marker has no positive
        label in the region (nothing would be written but zeros), or without the peak files.
    """
    from regtracks.inference.predict import check_space
    from regtracks.tracks.bigwig import BigWigWriter
    from regtracks.tracks.hub import build_hub, check_hub_options
    from regtracks.tracks.manifest import check_hub_genome, update_manifest

    t0 = time.perf_counter()
    scan_window = scan_window_arg(scan_window, window_len, caller="saliency")
    if reduce not in REDUCTIONS:
        raise RegtracksError(f"--reduce must be one of {', '.join(REDUCTIONS)}, got {reduce!r}")
    if batch_size < 1:
        raise RegtracksError(f"--batch-size must be at least 1, got {batch_size}")
    if bin_size < 1:
        raise RegtracksError(f"--bin-size must be at least 1, got {bin_size}")
    sess = open_session(
        run, genome=genome, which=which, markers=markers, category=category, device=device,
        precision=precision, purpose="base-level saliency tracks",
    )  # fmt: skip
    g, ms, idx = sess.genome, sess.markers, sess.marker_idx
    chrom, start, end = resolve_region(g, region)
    plan = sess.plan(sess.stride, scan_window)
    hub = Path(hub_dir)
    if build:
        check_hub_options(**(hub_options or {}))
    check_writable(hub)
    check_hub_genome(hub, g.chrom_sizes, g.name)
    names = [track_name("sal", ms[i].name) for i in idx]
    paths = [hub / "tracks" / f"{n}.bw" for n in names]
    span = (max(0, start - plan.margin), min(g.sizes[chrom], end + plan.margin))
    total = span[1] - span[0]
    check_space(hub, len(paths), -(-total // bin_size))
    # the outputs back-propagated from (after the output checks: reading peak files takes time)
    target, index, target_note = resolve_target(sess, target)
    labels = None
    if index is not None:
        pos = positives_in(index, chrom, start, end)
        if not pos.all():
            raise no_positives_error(
                [ms[i].name for i, n in zip(idx, pos, strict=True) if n == 0], chrom, start, end
            )
        labels = region_labels(index, chrom)
    with folder_lock(hub, "regtracks saliency"):
        remove_stale_temps(hub)  # of killed runs
        stats = TargetStats.new(len(idx))
        with BigWigWriter(paths, list(g.chrom_sizes), bin_size=bin_size, n_procs=n_procs) as writer:
            carry = None  # bases not yet filling a whole bin
            for pos, vals in saliency_region(
                sess.model, g, chrom, start, end, marker_idx=list(idx), reduce=reduce,
                margin=plan.margin, core=plan.core, stride=sess.stride, chunk=cfg.chunk,
                batch_size=batch_size, device=sess.device, amp=sess.amp, target=target,
                labels=labels, stats=stats,
            ):  # fmt: skip
                if carry is not None:
                    pos, vals = carry[0], np.concatenate([carry[1], vals], axis=1)
                n_full = (vals.shape[1] // bin_size) * bin_size
                last = pos + vals.shape[1] == span[1]
                if last:
                    n_full = vals.shape[1]
                if n_full:
                    writer.add(chrom, pos, _bin_mean(vals[:, :n_full], bin_size))
                carry = None if last else (pos + n_full, vals[:, n_full:])
                if progress is not None:
                    progress(pos + n_full - span[0], total, chrom)
        prov = sess.provenance(
            window_len=None,  # saliency records have never carried the training window
            region=f"{chrom}:{start + 1}-{end}",
            reduce=reduce,
            target=target,
            scan_window=plan.window,
            scan_margin=plan.margin,
            exact_stitching=plan.exact,
        )
        what = "gradient x input" if reduce == "grad_x_input" else "gradient norm"
        where = {
            "positives": "its {n:,} positive position(s) (labels) in",
            "predicted": "its {n:,} position(s) predicted positive (p > 0.5) in",
            "all": "",
        }[target]
        tracks = [
            sess.track_record(
                i,
                name=name,
                file=str(p.relative_to(hub)),
                kind="saliency",
                bin_size=bin_size,
                chroms=[chrom],
                provenance=prov,
                description=(
                    f"{what} of the sum of {ms[i].name} logits over "
                    + (where.format(n=int(n)) + " " if where else "")
                    + f"{chrom}:{start + 1:,}-{end:,}"
                ),
            )
            for i, name, p, n in zip(idx, names, paths, stats.counts, strict=True)
        ]
        update_manifest(hub, sess.genome_record(), tracks)
        res = SaliencyResult(
            hub_dir=hub, tracks=paths, chrom=chrom, start=start, end=end, span=span, bases=total,
            exact=plan.exact, target=target, target_note=target_note,
            targets={ms[i].name: int(n) for i, n in zip(idx, stats.counts, strict=True)},
        )  # fmt: skip
        if build:
            res.hub = build_hub(hub, **(hub_options or {}))
    res.seconds = time.perf_counter() - t0
    return res


def _bin_mean(vals: np.ndarray, bin_size: int) -> np.ndarray:
    """``(T, n)`` -> ``(T, ceil(n / bin_size))`` means (the last bin may be partial)."""
    if bin_size == 1:
        return vals
    n = vals.shape[1]
    k = -(-n // bin_size)
    pad = k * bin_size - n
    sums = np.pad(vals, ((0, 0), (0, pad))).reshape(vals.shape[0], k, bin_size).sum(axis=2)
    counts = np.full(k, float(bin_size))
    counts[-1] = bin_size - pad
    return (sums / counts).astype(np.float32)
