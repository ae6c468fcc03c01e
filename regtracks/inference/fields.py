"""Empirical receptive fields: how far from an output a trained model's input gradient reaches.

A model's nominal ``receptive_field`` is the span of input bases that *can* influence one
output; what it *uses* after training can be much narrower (the paper's argument: CNN7 narrow,
Dilated wide and strong, Bi-LSTM wide but faint). For sampled output positions ``p`` (each with
a marker ``m`` drawn at random) the input-gradient magnitude at base ``b`` is

    ``G_p[b] = || d logit_m(p) / d x[:, b] ||_2``   (L2 over the 4 channels, N bases included)

and the *profile* is its mass at each distance ``d = |b - p|``, both sides summed, averaged over
the samples: ``profile[d] = mean_p sum_{|b - p| = d} G_p[b]``. From its cumulative fraction
``C(d) = sum_{d' <= d} profile[d'] / sum(profile)``:

* ``d50`` / ``d90``: the smallest distances with ``C(d) >= 0.5`` / ``0.9`` (bases within them
  hold half / 90 % of the gradient mass);
* ``extent``: the largest distance with any gradient (the 100 % distance). For a stride-1
  model whose declared field is right (and centred, as TensorFlow's ``'SAME'`` padding
  centres it) it is at most ``receptive_field // 2``, the nominal half-width. A strided model
  computes on ``stride``-bp cells and an output reads the field of its cell, which is not
  centred on the output (nor exactly on the cell, with an asymmetric stem): its extent may
  pass the half-width by a stride or two (the dilated model: 5,678 bp for a half-width of
  5,657), and never more than ``receptive_field - 1``.

Each sample's input covers ``max_distance`` bases on both sides of ``p`` (default: the scan
margin, i.e. the receptive field rounded up to the stride, or half the training window for a
model without a finite field) and starts on a multiple of the model's stride, as the
chromosome scanner's windows do, so the gradient is the one of the chromosome-long input;
bases past a chromosome end are N. Output positions are drawn from the windows of one split
(``test`` by default: chromosomes the model was not fit to), with a seed: the same seed, the
same positions and markers.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from regtracks._util import RegtracksError, atomic_path
from regtracks.config import DEFAULT_RUNTIME

__all__ = [
    "ReceptiveField",
    "receptive_field",
    "gradient_profile",
    "sample_positions",
    "write_field_plot",
    "DEFAULT_FIELD_SAMPLES",
    "DEFAULT_FIELD_SPLIT",
    "DEFAULT_FIELD_SEED",
    "DEFAULT_FIELD_BATCH",
]

DEFAULT_FIELD_SAMPLES = 64
"""Output positions sampled by ``regtracks receptive-field``."""
DEFAULT_FIELD_SPLIT = "test"
DEFAULT_FIELD_SEED = 0
DEFAULT_FIELD_BATCH = 4
"""Sampled positions per forward and backward pass."""


@dataclass
class ReceptiveField:
    """The gradient profile of a model and the distances that hold its mass.

    Attributes
    ----------
    model : str
        Model name (the checkpoint's, or the class name).
    receptive_field : int or None
        Declared (nominal) receptive field, bp (None: the whole input).
    stride : int
    max_distance : int
        Distances measured: ``0 .. max_distance``.
    profile : (max_distance + 1,) float64
        Mean gradient mass at each distance, both sides summed (see the module docstring).
    samples : int
        Output positions averaged over.
    markers : dict name -> int
        How many samples each marker was drawn for.
    run, split, seed : optional
        Where the positions came from (:func:`receptive_field`).
    """

    model: str
    receptive_field: int | None
    stride: int
    max_distance: int
    profile: np.ndarray
    samples: int
    markers: dict[str, int] = field(default_factory=dict)
    run: str | None = None
    split: str | None = None
    seed: int | None = None
    seconds: float = 0.0

    @property
    def half_width(self) -> int | None:
        """The nominal half-width: ``receptive_field // 2`` (None without a finite field)."""
        return None if self.receptive_field is None else self.receptive_field // 2

    @property
    def total(self) -> float:
        return float(self.profile.sum())

    @property
    def cumulative(self) -> np.ndarray:
        """``C(d)``: the fraction of the gradient mass within distance ``d`` (zeros if none)."""
        total = self.total
        if total <= 0:
            return np.zeros_like(self.profile)
        return np.cumsum(self.profile) / total

    def distance(self, fraction: float) -> int | None:
        """The smallest distance holding ``fraction`` of the gradient mass (None: no gradient).

        ``fraction = 1`` is :attr:`extent`."""
        if not 0 < fraction <= 1:
            raise RegtracksError(f"a mass fraction must be in (0, 1], got {fraction}")
        if self.total <= 0:
            return None
        if fraction == 1:
            return self.extent
        cum = np.cumsum(self.profile)
        return int(np.searchsorted(cum, fraction * cum[-1], side="left"))

    @property
    def d50(self) -> int | None:
        return self.distance(0.5)

    @property
    def d90(self) -> int | None:
        return self.distance(0.9)

    @property
    def extent(self) -> int | None:
        """The largest distance with nonzero gradient (None: no gradient at all)."""
        hit = np.flatnonzero(self.profile > 0)
        return int(hit[-1]) if hit.size else None

    @property
    def per_base(self) -> np.ndarray:
        """Mean gradient magnitude per base at each distance (the mass over the 1 or 2 bases at
        that distance)."""
        out = self.profile / 2.0
        out[0] = self.profile[0]
        return out

    def as_dict(self, *, curve: bool = True) -> dict:
        """JSON-ready: the numbers, and (``curve``) the profile and its cumulative fraction."""
        d = {
            "run": self.run,
            "model": self.model,
            "receptive_field": self.receptive_field,
            "half_width": self.half_width,
            "stride": self.stride,
            "split": self.split,
            "samples": self.samples,
            "seed": self.seed,
            "max_distance": self.max_distance,
            "d50": self.d50,
            "d90": self.d90,
            "extent": self.extent,
            "markers": dict(self.markers),
            "seconds": round(self.seconds, 3),
        }
        if curve:
            d["profile"] = [float(v) for v in self.profile]
            d["cumulative"] = [round(float(v), 6) for v in self.cumulative]
        return d


def gradient_profile(
    model,
    codes: np.ndarray,
    positions: np.ndarray,
    markers: np.ndarray,
    *,
    max_distance: int,
    batch_size: int = DEFAULT_FIELD_BATCH,
    device="cpu",
    progress=None,
) -> np.ndarray:
    """Summed gradient mass at each distance from one output position per input.

    Parameters
    ----------
    model : nn.Module
        A dense model (``(N, 4, L) -> (N, M, L)`` logits); used in eval mode, its weights'
        ``requires_grad`` and mode restored afterwards.
    codes : (S, L) uint8
        Input base codes (N = 0), one input per sample.
    positions : (S,) int
        The output position of each sample in its input.
    markers : (S,) int
        The output channel of each sample.
    max_distance : int
        Distances ``0 .. max_distance`` are kept (farther bases are ignored).
    progress : callable, optional
        ``progress(done, total, "positions")``.

    Returns
    -------
    (max_distance + 1,) float64
        ``sum_s sum_{|b - p_s| = d} || d logit_{m_s}(p_s) / d x_s[:, b] ||_2`` (float64 sums of
        float32 gradients).
    """
    import torch

    from regtracks.data.datasets import one_hot_torch

    device = torch.device(device)
    n, length = codes.shape
    prof = np.zeros(max_distance + 1, dtype=np.float64)
    was_training = model.training
    model.eval()
    req = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    base = np.arange(length)
    try:
        for b in range(0, n, batch_size):
            sl = slice(b, min(n, b + batch_size))
            x = one_hot_torch(torch.from_numpy(np.ascontiguousarray(codes[sl])).to(device))
            x.requires_grad_(True)
            out = model(x)
            rows = torch.arange(x.shape[0], device=device)
            pos = torch.as_tensor(positions[sl], device=device, dtype=torch.long)
            mk = torch.as_tensor(markers[sl], device=device, dtype=torch.long)
            # samples do not interact (eval mode): one backward gives every sample's gradient
            (g,) = torch.autograd.grad(out[rows, mk, pos].float().sum(), x)
            mag = torch.linalg.vector_norm(g.double(), dim=1).cpu().numpy()  # (B, L)
            for j, p in enumerate(positions[sl]):
                d = np.abs(base - int(p))
                keep = d <= max_distance
                prof += np.bincount(d[keep], weights=mag[j, keep], minlength=max_distance + 1)
            if progress is not None:
                progress(sl.stop, n, "positions")
    finally:
        for p, r in zip(model.parameters(), req, strict=True):
            p.requires_grad_(r)
        model.train(was_training)
    return prof


def sample_positions(windows, split: str, n: int, seed: int) -> list[tuple[str, int]]:
    """``n`` output positions ``(chrom, pos)`` drawn uniformly from the windows of ``split``
    (:class:`~regtracks.data.windows.Samples`), with replacement, from ``seed``."""
    idx = windows.indices(split)
    if idx.size == 0:
        raise RegtracksError(f"the {split} split of this run has no window to sample from")
    rng = np.random.default_rng(seed)
    pick = idx[rng.integers(0, idx.size, size=n)]
    offs = rng.integers(0, windows.length, size=n)
    out = []
    for i, o in zip(pick.tolist(), offs.tolist(), strict=True):
        chrom, s, _ = windows.region(i)
        out.append((chrom, s + o))
    return out


def _inputs(genome, sites, max_distance: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """``(S, L)`` codes and ``(S,)`` in-input positions: each input covers ``max_distance``
    bases on both sides of its site and starts on a multiple of ``stride`` (N off the ends)."""
    length = 2 * max_distance + stride
    codes = np.zeros((len(sites), length), dtype=np.uint8)
    pos = np.zeros(len(sites), dtype=np.int64)
    for j, (chrom, p) in enumerate(sites):
        size = genome.sizes[chrom]
        s0 = ((p - max_distance) // stride) * stride
        s, e = max(s0, 0), min(s0 + length, size)
        codes[j, s - s0 : e - s0] = genome.fetch(chrom, s, e)
        pos[j] = p - s0
    return codes, pos


def receptive_field(
    run: str | os.PathLike,
    *,
    samples: int = DEFAULT_FIELD_SAMPLES,
    split: str = DEFAULT_FIELD_SPLIT,
    seed: int = DEFAULT_FIELD_SEED,
    markers: list[str] | None = None,
    category: str | None = None,
    max_distance: int | None = None,
    genome=None,
    which: str = DEFAULT_RUNTIME.checkpoint,
    device: str = DEFAULT_RUNTIME.device,
    batch_size: int = DEFAULT_FIELD_BATCH,
    progress=None,
) -> ReceptiveField:
    """Measure a run's empirical receptive field (see the module docstring).

    Parameters
    ----------
    run : path
        Run folder or checkpoint (dense task).
    samples : int
        Output positions to average over.
    split : {"test", "valid", "train"}
        Whose windows the positions are drawn from (rebuilt from the checkpoint's data
        options and exclude BED: the windows training used; an exclude BED no longer there
        is left out, which only adds windows).
    seed : int
        Draws the positions and their markers.
    markers, category : optional
        The markers drawn from (default: every marker of the run).
    max_distance : int, optional
        Farthest distance measured (default: the scan margin, see the module docstring).
    genome, which, device : optional
        As for :func:`regtracks.inference.saliency.saliency`; gradients are fp32.
    progress : callable, optional
        ``progress(done, total, "positions")``.

    Raises
    ------
    RegtracksError
        Bad options, a sequence-task run, a split without windows.
    """
    from regtracks.data.markers import read_peaks
    from regtracks.data.windows import dense_windows
    from regtracks.inference.session import open_session

    t0 = time.perf_counter()
    if samples < 1:
        raise RegtracksError(f"--samples must be at least 1, got {samples}")
    if batch_size < 1:
        raise RegtracksError(f"--batch-size must be at least 1, got {batch_size}")
    if split not in ("train", "valid", "test"):
        raise RegtracksError(f"--split must be test or valid (or train), got {split!r}")
    if max_distance is not None and max_distance < 1:
        raise RegtracksError(f"max_distance must be at least 1, got {max_distance}")
    sess = open_session(
        run, genome=genome, which=which, markers=markers, category=category, device=device,
        precision="fp32", purpose="receptive fields",
    )  # fmt: skip
    ck, g = sess.checkpoint, sess.genome
    ex = None
    if ck.exclude and Path(ck.exclude).is_file():  # the windows training had
        ex = read_peaks(ck.exclude, genome=g).on_genome(g)
    windows = dense_windows(g, ck.data_config, exclude=ex)
    recorded = ck.split_record
    if recorded.get("mode") == "chrom" and recorded.get("chroms") != windows.split_info.chroms:
        raise RegtracksError(
            f"the split rebuilt from {sess.path.name} differs from the one it was trained on "
            f"({recorded.get('chroms')})"
        )
    sites = sample_positions(windows, split, samples, seed)
    rng = np.random.default_rng([seed, 1])
    drawn = np.asarray(sess.marker_idx)[rng.integers(0, len(sess.marker_idx), size=samples)]
    if max_distance is None:
        max_distance = sess.margin() if sess.receptive_field is not None else sess.train_window // 2
    codes, pos = _inputs(g, sites, max_distance, sess.stride)
    prof = gradient_profile(
        sess.model, codes, pos, drawn, max_distance=max_distance, batch_size=batch_size,
        device=sess.device, progress=progress,
    )  # fmt: skip
    counts = np.bincount(drawn, minlength=len(sess.markers))
    return ReceptiveField(
        model=ck.model_name,
        receptive_field=sess.receptive_field,
        stride=sess.stride,
        max_distance=max_distance,
        profile=prof / samples,
        samples=samples,
        markers={sess.markers[i].name: int(counts[i]) for i in sess.marker_idx if counts[i]},
        run=str(sess.path.parent),
        split=split,
        seed=seed,
        seconds=time.perf_counter() - t0,
    )


def write_field_plot(results: list[ReceptiveField], out: str | os.PathLike) -> Path:
    """Draw the profiles (mean gradient magnitude per base against distance, and the cumulative
    mass fraction) into ``out`` (PNG, written atomically); ``d50`` / ``d90`` dashed, the nominal
    half-width dotted.

    Raises
    ------
    RegtracksError
        matplotlib is not installed.
    """
    from regtracks.inference.figures import require_matplotlib

    Figure, FigureCanvasAgg = require_matplotlib("--plot")
    fig = Figure(figsize=(11, 3.8), dpi=110)
    FigureCanvasAgg(fig)
    ax_mag, ax_cum = fig.subplots(1, 2)
    for k, r in enumerate(results):
        color = f"C{k}"
        d = np.arange(r.max_distance + 1)
        rf = "whole input" if r.receptive_field is None else f"{r.receptive_field:,} bp"
        label = f"{r.model} (nominal field {rf})"
        ax_mag.plot(d, r.per_base, color=color, lw=0.8, label=label)
        ax_cum.plot(d, r.cumulative, color=color, lw=1.2, label=label)
        for q, ls in ((r.d50, "--"), (r.d90, "-.")):
            if q is not None:
                for ax in (ax_mag, ax_cum):
                    ax.axvline(q, color=color, ls=ls, lw=0.8)
        if r.half_width is not None:
            for ax in (ax_mag, ax_cum):
                ax.axvline(r.half_width, color=color, ls=":", lw=0.8)
    ax_mag.set(xlabel="distance |input - output| (bp)", ylabel="mean |gradient| per base",
               title="input-gradient magnitude")  # fmt: skip
    if all(r.total > 0 for r in results):
        ax_mag.set_yscale("log")
    ax_cum.set(xlabel="distance |input - output| (bp)", ylabel="fraction of gradient mass",
               ylim=(0, 1.02))  # fmt: skip
    ax_cum.set_title("cumulative (--: 50 %, -.: 90 %, dotted: nominal half-width)", fontsize=9)
    ax_cum.legend(loc="lower right", fontsize=8, frameon=False)
    n = results[0].samples if results else 0
    fig.suptitle(f"empirical receptive field ({n} sampled output positions)", fontsize=10)
    fig.tight_layout()
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    return out
