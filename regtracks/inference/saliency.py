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

Under torchrun (``torchrun --nproc-per-node N -m regtracks saliency ...``) the processes take
contiguous blocks of the chunks. Each finishes the bases that no earlier process's chunk
reaches into a temporary part file in ``HUB/tracks`` (4 bytes per base and marker, removed at
the end); the gradient a chunk adds to the bases of the processes before it (its first
windows' margin) is handed to them in a small spill file and added in chunk order, as one
process adds it. Then each process writes the tracks of its share of the markers from every
part, and process 0, holding the hub's lock, the manifest and the hub: the values equal one
process's bit for bit.
"""

from __future__ import annotations

import contextlib
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
    geo = _Chunks(genome.sizes[chrom], start, end, margin=margin, core=core, stride=stride,
                  chunk=chunk)  # fmt: skip
    kw = dict(marker_idx=marker_idx, stride=stride, batch_size=batch_size, device=device, amp=amp,
              target=target, labels=labels, stats=stats)  # fmt: skip
    with _frozen(model):
        acc = _Pending(len(marker_idx), geo.span[0])
        for i in range(len(geo.starts)):
            acc.add(*_chunk_gradient(model, genome, chrom, geo, i, **kw))
            got = acc.take(geo.final_before(i, acc.p0))
            if got is not None:
                yield got[0], _reduce(got[1], genome, chrom, got[0], reduce)


@contextlib.contextmanager
def _frozen(model):
    """The model in eval mode with no parameter gradients, restored after."""
    was_training = model.training
    model.eval()
    req = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, r in zip(model.parameters(), req, strict=True):
            p.requires_grad_(r)
        model.train(was_training)


class _Chunks:
    """How :func:`saliency_region` cuts a region into chunks: chunk ``i`` holds the cores
    starting in ``[starts[i], starts[i] + chunk)`` of the region, its gradient reaches the
    bases ``support(i)`` of the span (the tracks' extent)."""

    def __init__(self, size: int, start: int, end: int, *, margin, core, stride, chunk):
        self.start, self.end, self.margin, self.core = start, end, margin, core
        self.span = (max(0, start - margin), min(size, end + margin))
        self.chunk = max(core, (chunk // core) * core)
        c0 = (start // stride) * stride
        self.starts = list(range(c0, end, self.chunk))

    def bases(self, i: int) -> tuple[int, int]:
        """``[lo, hi)``: the bases chunk ``i``'s windows read (the last may pass the region)."""
        a = self.starts[i]
        return a - self.margin, min(a + self.chunk, self.end) + self.core + self.margin

    def support(self, i: int) -> tuple[int, int]:
        """The bases of the span chunk ``i``'s gradient covers (non-decreasing in ``i``)."""
        lo, hi = self.bases(i)
        return max(lo, self.span[0]), min(hi, self.span[1])

    def final_before(self, i: int, p0: int) -> int:
        """Bases before this are final once chunks ``0..i`` are summed (no later chunk reaches
        them)."""
        if i + 1 == len(self.starts):
            return self.span[1]
        return max(p0, self.starts[i + 1] - self.margin)


def _chunk_gradient(model, genome, chrom: str, geo: _Chunks, i: int, **kw):
    """``(g0, g)``: chunk ``i``'s gradient ``(T, 4, n)`` over bases ``[g0, g0 + n)``, its
    :meth:`_Chunks.support`."""
    a = geo.starts[i]
    r0, r1 = max(a, geo.start), min(a + geo.chunk, geo.end)
    lo, hi = geo.bases(i)
    size = genome.sizes[chrom]
    codes = np.zeros(hi - lo, dtype=np.uint8)
    s, e = max(lo, 0), min(hi, size)
    codes[s - lo : e - lo] = genome.fetch(chrom, s, e)
    g = _region_gradient(model, codes, lo, region=(r0, r1), margin=geo.margin, core=geo.core, **kw)
    g0, g1 = geo.support(i)
    return g0, g[..., g0 - lo : g1 - lo]


class _Pending:
    """The summed gradients ``(T, 4, n)`` of the bases from ``p0`` on, not yet final."""

    def __init__(self, n_markers: int, p0: int):
        self.buf = np.zeros((n_markers, 4, 0), dtype=np.float32)
        self.p0 = p0

    def add(self, g0: int, g: np.ndarray) -> None:
        """Add ``g``, the gradient of bases ``[g0, g0 + n)`` (``g0 >= p0``)."""
        need = g0 + g.shape[-1] - self.p0
        have = self.buf.shape[-1]
        if need > have:
            grow = np.zeros((*self.buf.shape[:2], need - have), np.float32)
            self.buf = np.concatenate([self.buf, grow], axis=-1)
        self.buf[..., g0 - self.p0 : need] += g

    def take(self, upto: int) -> tuple[int, np.ndarray] | None:
        """``(p0, gradients)`` of the bases before ``upto`` (None: none), handed on."""
        upto = min(upto, self.p0 + self.buf.shape[-1])
        if upto <= self.p0:
            return None
        p, block = self.p0, self.buf[..., : upto - self.p0]
        self.buf = self.buf[..., upto - self.p0 :]
        self.p0 = upto
        return p, block


def _zone(geo: _Chunks, job, rank: int) -> tuple[range, int, int]:
    """Process ``rank``'s chunks and the bases whose values it finishes, ``[o0, o1)``: those
    no earlier process's chunk reaches (a base belongs to the process of the first chunk
    reaching it). The zones tile the span in rank order (empty for a process without chunks)."""
    mine = job.share(len(geo.starts), rank)
    o0 = geo.support(mine.start - 1)[1] if mine.start else geo.span[0]
    o1 = geo.support(mine.stop - 1)[1] if mine.stop else geo.span[0]
    return mine, o0, max(o0, o1)


def _saliency_share(
    model, genome, chrom: str, start: int, end: int, *, job, folder: Path, temps: list,
    reduce: str, margin: int, core: int, stride: int, chunk: int, progress=None, **kw,
) -> Path:  # fmt: skip
    """torchrun: this process's share of :func:`saliency_region`, equal to it value for value.

    The process takes a contiguous block of the region's chunks (:class:`_Chunks`) and
    finishes the bases of its zone (:func:`_zone`) into a part file, ``(n, T)`` float32
    values of the zone's bases in order. A base's gradient is the sum of the gradients of the
    chunks reaching it, added in chunk order from zero, as in one process: a chunk's gradient
    left of its process's zone (its first windows' margin) goes to the earlier processes in
    a spill file; each process adds its own chunks first, then, at the end of its zone, the
    spilled gradients of the later chunks, in chunk order. Returns the part file (every
    process meets once, to hand the spill files on); the temporaries made join ``temps``."""
    geo = _Chunks(genome.sizes[chrom], start, end, margin=margin, core=core, stride=stride,
                  chunk=chunk)  # fmt: skip
    mine, o0, o1 = _zone(geo, job, job.rank)
    n_markers = len(kw["marker_idx"])
    part = _temp_file(folder, f"saliency.part{job.rank}", ".tmp")
    temps.append(part)
    spill = _temp_file(folder, f"saliency.spill{job.rank}", ".tmp.npz")
    temps.append(spill)
    acc = _Pending(n_markers, o0)
    spilled: dict[str, np.ndarray] = {}
    with open(part, "wb") as fh:

        def finish(got) -> None:
            if got is not None:
                vals = _reduce(got[1], genome, chrom, got[0], reduce)
                fh.write(np.ascontiguousarray(vals.T).tobytes())
                if progress is not None:
                    progress(got[0] + vals.shape[1] - o0, max(o1 - o0, 1), chrom)

        with _frozen(model):
            for i in mine:
                g0, g = _chunk_gradient(model, genome, chrom, geo, i, stride=stride, **kw)
                cut = min(max(o0 - g0, 0), g.shape[-1])  # bases of the earlier processes
                if cut:
                    spilled[f"{i}_{g0}"] = g[..., :cut]
                if cut < g.shape[-1]:
                    acc.add(g0 + cut, g[..., cut:])
                finish(acc.take(min(geo.final_before(i, acc.p0), o1)))
        np.savez(spill, **spilled)
        spills = job.sync(str(spill))
        # the end of the zone: the later processes' chunks reaching into it, in chunk order
        for r in range(job.rank + 1, job.world):
            with np.load(spills[r]) as z:
                for key in sorted(z.files, key=lambda k: int(k.split("_")[0])):
                    g0 = int(key.split("_")[1])
                    if g0 >= o1:
                        continue
                    g = z[key]
                    a = max(g0, acc.p0)
                    b = min(g0 + g.shape[-1], o1)
                    if b > a:
                        acc.add(a, g[..., a - g0 : b - g0])
        finish(acc.take(o1))
    return part


def _temp_file(folder: Path, name: str, suffix: str) -> Path:
    """A new hidden temporary ``FOLDER/.NAME.<random><suffix>`` (:func:`remove_stale_temps`
    knows its name)."""
    import tempfile

    from regtracks._util import output_error

    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=suffix, dir=folder)
    except OSError as exc:
        raise output_error(folder / name, exc) from None
    os.close(fd)
    return Path(tmp)


def _part_blocks(parts, zones, n_markers: int, rows, step: int = 1 << 16):
    """``(pos, values)`` blocks of rows ``rows`` from the processes' part files, in chromosome
    order (``zones[r]``: the bases of part ``r``)."""
    for path, (o0, o1) in zip(parts, zones, strict=True):
        n = o1 - o0
        if n <= 0:
            continue
        mm = np.memmap(path, dtype=np.float32, mode="r", shape=(n, n_markers))
        for i in range(0, n, step):
            yield o0 + i, np.ascontiguousarray(mm[i : i + step, rows].T)
        del mm


def _write_tracks(paths, chrom_sizes, chrom: str, blocks, span, *, bin_size, n_procs, progress):
    """Bin ``(pos, values)`` blocks covering ``span`` in order into the bigWigs ``paths`` (bins
    of ``bin_size`` from the span's start, the last one partial)."""
    from regtracks.tracks.bigwig import BigWigWriter

    total = span[1] - span[0]
    with BigWigWriter(paths, chrom_sizes, bin_size=bin_size, n_procs=n_procs) as writer:
        carry = None  # bases not yet filling a whole bin
        for pos, vals in blocks:
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
    from regtracks.runtime import job as torchrun_job
    from regtracks.tracks.hub import build_hub, check_hub_options
    from regtracks.tracks.manifest import check_hub_genome, update_manifest

    t0 = time.perf_counter()
    # torchrun: every process checks the input alike; an error on any is told to all (job)
    with contextlib.ExitStack() as hold, torchrun_job(device) as job:
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
        # the outputs back-propagated from (after the output checks: reading peak files takes
        # time)
        target, index, target_note = resolve_target(sess, target)
        labels = None
        if index is not None:
            pos = positives_in(index, chrom, start, end)
            if not pos.all():
                raise no_positives_error(
                    [ms[i].name for i, n in zip(idx, pos, strict=True) if n == 0], chrom, start,
                    end,
                )  # fmt: skip
            labels = region_labels(index, chrom)
        if job.is_main:  # torchrun: process 0 holds the hub's lock for every process
            hold.enter_context(folder_lock(hub, "regtracks saliency"))
            remove_stale_temps(hub)  # of killed runs
        job.sync()  # the others write only once the lock is held and the stale temps gone
        stats = TargetStats.new(len(idx))
        region_kw = dict(
            marker_idx=list(idx), reduce=reduce, margin=plan.margin, core=plan.core,
            stride=sess.stride, chunk=cfg.chunk, batch_size=batch_size, device=sess.device,
            amp=sess.amp, target=target, labels=labels, stats=stats,
        )  # fmt: skip
        write_kw = dict(bin_size=bin_size, n_procs=n_procs)
        if job.world == 1:
            blocks = saliency_region(sess.model, g, chrom, start, end, **region_kw)
            _write_tracks(paths, list(g.chrom_sizes), chrom, blocks, span, **write_kw,
                          progress=progress)  # fmt: skip
        else:
            # each process its chunks into a part file; then each writes the tracks of its
            # share of the markers from every part (see _saliency_share)
            temps: list[Path] = []
            hold.callback(_remove_all, temps)  # after the last meeting: nobody reads them
            part = _saliency_share(sess.model, g, chrom, start, end, job=job,
                                   folder=hub / "tracks", temps=temps, progress=progress,
                                   **region_kw)  # fmt: skip
            got = job.sync((str(part), stats.counts.tolist()))
            stats.counts = np.sum([c for _, c in got], axis=0, dtype=np.int64)
            zones = [_zone(_Chunks(g.sizes[chrom], start, end, margin=plan.margin,
                                   core=plan.core, stride=sess.stride, chunk=cfg.chunk),
                           job, r)[1:] for r in range(job.world)]  # fmt: skip
            mine = list(job.share(len(idx)))
            if mine:
                blocks = _part_blocks([p for p, _ in got], zones, len(idx), mine)
                _write_tracks([paths[k] for k in mine], list(g.chrom_sizes), chrom, blocks,
                              span, **write_kw, progress=progress)  # fmt: skip
            job.sync()  # every track is complete: process 0 lists them
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
        res = SaliencyResult(
            hub_dir=hub, tracks=paths, chrom=chrom, start=start, end=end, span=span, bases=total,
            exact=plan.exact, target=target, target_note=target_note,
            targets={ms[i].name: int(n) for i, n in zip(idx, stats.counts, strict=True)},
        )  # fmt: skip
        if job.is_main:
            update_manifest(hub, sess.genome_record(), tracks)
            if build:
                res.hub = build_hub(hub, **(hub_options or {}))
    res.seconds = time.perf_counter() - t0
    return res


def _remove_all(paths) -> None:
    for p in paths:
        with contextlib.suppress(OSError):
            os.unlink(p)


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
