"""Streaming PR-AUC (average precision) and ROC-AUC per marker, on the device of the logits.

Contract
--------
:class:`StreamingMetrics` takes batches of logits and 0/1 targets and keeps, per marker, one
histogram of the scores of positives and one of negatives (int64 counts, on the logits'
device). Nothing else is kept, so a split of billions of (position, marker) scores costs
``n_markers * 2 * (n_bins + 1) * 8`` bytes (120 MB for 919 markers at the default 8192 bins)::

    update(logits, target, mask=None)
        logits : (N, M, L) dense task or (N, M) sequence task; any float dtype (bf16 too);
                 logits, not probabilities (a monotone transform would do, but the bins are
                 laid out for logits)
        target : same shape; nonzero = positive (uint8 / bool / int / float)
        mask   : True where a score counts, False where it is ignored (N bases, padding);
                 (N, L) or (N,) or anything broadcastable to logits' shape

    compute() -> MetricsResult   (M,) arrays: pr_auc, roc_auc, positive_rate, n_positive, ...

Binning: a logit ``x`` goes to bin ``floor(n_bins / 2 * (1 + x / (s + |x|)))``
(``s = logit_scale``, default 16), a monotone map of the whole real line onto the bins: they
are ``2 s / n_bins`` logits wide at 0 (0.004 at the defaults) and widen smoothly towards the
extremes, where a sigmoid saturates (4x at ``|x| = s``); nothing is clipped.
:meth:`StreamingMetrics.bin_edges` gives the edges in logits. (Bins uniform in probability fail
for confident models, every logit above ~7 sharing the top bin; bins uniform in logits over a
clipped range fail for logits beyond it.) NaN and infinite logits are counted in a separate slot
per marker and class (``n_nan``) and left out of every metric.

Metrics from the histograms treat each bin as one group of tied scores, exactly as scikit-learn
treats tied scores:

* AP (PR-AUC) = sum over bins from the highest of ``(R_k - R_{k-1}) * P_k``, ``P_k, R_k`` the
  precision and recall at the bin's lower edge (:func:`sklearn.metrics.average_precision_score`);
* ROC-AUC = trapezoid rule over the (FPR, TPR) points of the same thresholds (tied scores earn
  half credit, as in :func:`sklearn.metrics.roc_auc_score`).

Scores that share a bin but differ are ranked as ties, which costs AP a little (a tie group
counts every positive at the group's final precision): the difference to scikit-learn on the
exact scores shrinks as ``1 / n_bins`` and stayed below 5e-4 at 8192 bins on every
distribution tested (BENCHMARKS.md); ROC-AUC is closer still. Scores that are exactly tied
(discrete scores, bf16 logits) agree with scikit-learn to rounding as long as distinct values
land in distinct bins.

A marker without positives has NaN AP and ROC-AUC; one without negatives has NaN ROC-AUC (and
AP 1); :func:`category_means` leaves NaN out of the means.

Distributed evaluation: each rank updates its own object; :meth:`StreamingMetrics.all_reduce`
sums the counts over the ranks of an initialised :mod:`torch.distributed` process group.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from regtracks._util import RegtracksError
from regtracks.config import CATEGORIES, DEFAULT_METRICS

__all__ = ["StreamingMetrics", "MetricsResult", "category_means", "at_chance"]


@dataclass(frozen=True)
class MetricsResult:
    """Per-marker metrics of one split; every array has shape ``(M,)``.

    Attributes
    ----------
    pr_auc : float64
        Average precision (PR-AUC); NaN for a marker without positives.
    roc_auc : float64
        ROC-AUC; NaN for a marker without positives or without negatives.
    positive_rate : float64
        Fraction of the evaluated scores that are positive: the AP of a random ranking (the
        chance baseline of PR-AUC). NaN for a marker with no evaluated score.
    n_positive, n_total : int64
        Positive and evaluated (unmasked, non-NaN) scores.
    n_nan : int64
        NaN or infinite logits seen (left out of every metric).
    n_masked : int
        Scores left out by the mask (all markers together).
    """

    pr_auc: np.ndarray
    roc_auc: np.ndarray
    positive_rate: np.ndarray
    n_positive: np.ndarray
    n_total: np.ndarray
    n_nan: np.ndarray
    n_masked: int

    @property
    def n_markers(self) -> int:
        return int(self.pr_auc.shape[0])


def at_chance(
    pr_auc: float | None,
    roc_auc: float | None,
    positive_rate: float | None,
    *,
    roc_floor: float | None = None,
    pr_lift: float | None = None,
) -> bool:
    """True when a marker's scores are those of a model that learnt nothing.

    ROC-AUC below ``roc_floor`` (default ``DEFAULT_EVAL.chance_roc_auc``, 0.55), or PR-AUC below
    ``pr_lift`` (default 1.1) times the positive rate; undefined scores (None, NaN) say
    nothing, so they are not flagged.
    """
    from regtracks.config import DEFAULT_EVAL

    roc_floor = DEFAULT_EVAL.chance_roc_auc if roc_floor is None else roc_floor
    pr_lift = DEFAULT_EVAL.chance_pr_lift if pr_lift is None else pr_lift

    def ok(x) -> bool:
        return x is not None and np.isfinite(x)

    if ok(roc_auc) and roc_auc < roc_floor:
        return True
    return ok(pr_auc) and ok(positive_rate) and pr_auc < pr_lift * positive_rate


def category_means(
    values: Sequence[float] | np.ndarray, categories: Sequence[str]
) -> dict[str, float | None]:
    """Mean of ``values`` per marker category, leaving NaN out.

    Parameters
    ----------
    values : (M,) floats
        One value per marker (e.g. ``MetricsResult.pr_auc``).
    categories : (M,) str
        ``TFBS``, ``Histone`` or ``DNase`` per marker.

    Returns
    -------
    dict
        ``{"TFBS": mean, "Histone": mean, "DNase": mean}`` in the paper's order; ``None``
        for a category with no marker or only NaN values.
    """
    values = np.asarray(values, dtype=np.float64)
    cats = list(categories)
    if values.ndim != 1 or len(cats) != values.shape[0]:
        raise RegtracksError(
            f"category_means: {values.shape} values but {len(cats)} categories (need one each)"
        )
    unknown = sorted(set(cats) - set(CATEGORIES))
    if unknown:
        raise RegtracksError(
            f"category_means: unknown categories {unknown} (expected TFBS, Histone or DNase)"
        )
    cat_arr = np.asarray(cats, dtype=object)
    out: dict[str, float | None] = {}
    for cat in CATEGORIES:
        v = values[cat_arr == cat]
        v = v[~np.isnan(v)]
        out[cat] = float(v.mean()) if v.size else None
    return out


def _blocks(
    n: int, m: int, length: int, max_elems: int, max_markers: int
) -> Iterator[tuple[slice, slice, slice]]:
    """Slices (markers, items, positions) of an (n, m, length) array, ~``max_elems`` each."""
    mb = max(1, min(m, max_markers, max_elems // max(1, n * length)))
    per_item = mb * length
    nb = max(1, min(n, max_elems // per_item))
    lb = length if per_item <= max_elems else max(1, max_elems // mb)
    for m0 in range(0, m, mb):
        for n0 in range(0, n, nb):
            for l0 in range(0, length, lb):
                yield slice(m0, m0 + mb), slice(n0, n0 + nb), slice(l0, l0 + lb)


class StreamingMetrics:
    """Per-marker score histograms of positives and negatives; AP and ROC-AUC from them.

    Parameters
    ----------
    n_markers : int
        Markers ``M`` (the logits' channel dimension).
    n_bins : int
        Score bins per marker and class (default ``DEFAULT_METRICS.n_bins``).
    logit_scale : float
        Shape of the bins (see the module docstring).
    device : torch.device or str, optional
        Where the counts live. ``None``: the device of the first :meth:`update` (CPU before).
        Under DDP pass each rank's device, so that a rank that sees no batch still takes part
        in :meth:`all_reduce`.
    chunk : int, optional
        Scores binned per step (bounds temporary memory); default from ``DEFAULT_METRICS``
        by device.

    Examples
    --------
    >>> sm = StreamingMetrics(919, device="cuda")
    >>> for x, y, keep in loader:                  # (N, 4, L), (N, M, L), (N, L)
    ...     sm.update(model(x), y, keep)
    >>> sm.all_reduce()                            # no-op outside torch.distributed
    >>> res = sm.compute()                         # res.pr_auc: (M,) float64
    >>> category_means(res.pr_auc, categories)     # {"TFBS": ..., "Histone": ..., "DNase": ...}
    """

    def __init__(
        self,
        n_markers: int,
        *,
        n_bins: int = DEFAULT_METRICS.n_bins,
        logit_scale: float = DEFAULT_METRICS.logit_scale,
        device: torch.device | str | None = None,
        chunk: int | None = None,
    ) -> None:
        if int(n_markers) < 1:
            raise RegtracksError(f"n_markers must be at least 1, got {n_markers}")
        if not 2 <= int(n_bins) <= 2**20:
            raise RegtracksError(f"n_bins must be between 2 and 2**20, got {n_bins}")
        if not (logit_scale > 0 and math.isfinite(logit_scale)):
            raise RegtracksError(f"logit_scale must be a positive number, got {logit_scale}")
        if chunk is not None and int(chunk) < 1:
            raise RegtracksError(f"chunk must be at least 1, got {chunk}")
        self.n_markers = int(n_markers)
        self.n_bins = int(n_bins)
        self.logit_scale = float(logit_scale)
        self.chunk = None if chunk is None else int(chunk)
        # per marker: [neg bins 0..B-1, neg NaN, pos bins 0..B-1, pos NaN]; then 1 masked slot
        self._row = 2 * (self.n_bins + 1)
        size = self.n_markers * self._row + 1
        if size >= 2**31:  # slots are addressed with int32
            raise RegtracksError(
                f"{self.n_markers} markers x {self.n_bins} bins is too many: lower n_bins"
            )
        self._follow = device is None
        self._counts = torch.zeros(size, dtype=torch.int64, device=device or "cpu")
        # bin = floor(half * (1 + r)), r = x / (s + |x|) in [-1, 1]; half a hair below
        # n_bins / 2 so that r = 1 still lands in the top bin
        self._half = self.n_bins / 2 * (1.0 - 2.0**-20)
        self._offsets: torch.Tensor | None = None
        self._half_t: torch.Tensor | None = None
        self._ws: tuple[torch.Tensor, torch.Tensor] | None = None

    # ------------------------------------------------------------------ state
    @property
    def device(self) -> torch.device:
        return self._counts.device

    @property
    def counts(self) -> torch.Tensor:
        """``(M, 2, n_bins)`` int64 view of the histograms: ``[:, 0]`` negatives, ``[:, 1]``
        positives; bin 0 holds the lowest logits."""
        c = self._counts[: self.n_markers * self._row].view(self.n_markers, 2, self.n_bins + 1)
        return c[:, :, : self.n_bins]

    def bin_edges(self) -> np.ndarray:
        """``(n_bins + 1,)`` float64 bin edges in logits, from ``-inf`` to ``+inf``.

        Bin ``k`` holds the logits ``edges[k] <= x < edges[k + 1]``.
        """
        r = np.arange(self.n_bins + 1) / self._half - 1.0
        with np.errstate(divide="ignore"):
            x = self.logit_scale * r / (1.0 - np.abs(r))
        x[0], x[-1] = -np.inf, np.inf
        return x

    def reset(self) -> None:
        """Forget every score seen."""
        self._counts.zero_()

    def to(self, device: torch.device | str) -> StreamingMetrics:
        """Move the counts to ``device`` (in place); returns ``self``."""
        self._counts = self._counts.to(device)
        self._offsets = None
        self._ws = None
        self._follow = False
        return self

    def state_dict(self) -> dict:
        """Counts and binning, as tensors and numbers (``torch.save`` / ``weights_only`` safe)."""
        return {
            "counts": self._counts.detach().cpu().clone(),
            "n_markers": self.n_markers,
            "n_bins": self.n_bins,
            "logit_scale": self.logit_scale,
        }

    def load_state_dict(self, state: Mapping) -> None:
        """Replace the counts by those of :meth:`state_dict` (same markers and bins)."""
        for key in ("n_markers", "n_bins", "logit_scale"):
            if key not in state or state[key] != getattr(self, key):
                raise RegtracksError(
                    f"metrics state has {key}={state.get(key)!r}, expected {getattr(self, key)!r}"
                )
        counts = state.get("counts")
        if not isinstance(counts, torch.Tensor) or counts.shape != self._counts.shape:
            raise RegtracksError("metrics state: counts missing or of the wrong shape")
        self._counts.copy_(counts.to(device=self.device, dtype=torch.int64))

    def _check_compatible(self, other: StreamingMetrics) -> None:
        mine = (self.n_markers, self.n_bins, self.logit_scale)
        theirs = (other.n_markers, other.n_bins, other.logit_scale)
        if mine != theirs:
            raise RegtracksError(
                f"cannot merge metrics of (n_markers, n_bins, logit_scale) {theirs} into {mine}"
            )

    def merge(self, other: StreamingMetrics) -> StreamingMetrics:
        """Add the counts of ``other`` (same markers and bins) to these; returns ``self``."""
        self._check_compatible(other)
        self._counts += other._counts.to(self.device)
        return self

    def all_reduce(self, group=None) -> StreamingMetrics:
        """Sum the counts over the ranks of ``group``; returns ``self``.

        Every rank must call it, once, after its last :meth:`update`; afterwards each rank
        holds the counts of all (a second call would count everything again). A no-op when
        :mod:`torch.distributed` is not initialised. With the NCCL backend the counts travel
        through the current CUDA device if they live on the CPU.
        """
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return self
        counts = self._counts
        if dist.get_backend(group) == "nccl" and counts.device.type != "cuda":
            counts = counts.to(torch.device("cuda", torch.cuda.current_device()))
        dist.all_reduce(counts, op=dist.ReduceOp.SUM, group=group)
        if counts is not self._counts:
            self._counts.copy_(counts)
        return self

    # ----------------------------------------------------------------- update
    @torch.no_grad()
    def update(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> None:
        """Add a batch of scores to the histograms.

        Parameters
        ----------
        logits : (N, M, L) or (N, M) float tensor
            Any float dtype (float32, bf16, float16, float64). Not modified.
        target : tensor of the same shape
            Nonzero = positive; any dtype (uint8 and bool are cheapest).
        mask : bool tensor, optional
            True where a score counts. ``(N, L)`` for ``(N, M, L)`` logits and ``(N,)`` for
            ``(N, M)`` logits apply to every marker; any shape that broadcasts to the logits'
            shape is accepted too. ``None``: every score counts.

        Notes
        -----
        Runs on the device of the counts (which follows the first batch when no ``device``
        was given); a batch on another device is moved there. Does not synchronise with the
        GPU (except under ``torch.use_deterministic_algorithms(True)``).
        """
        logits, target, drop = self._check_batch(logits, target, mask)
        if self._follow:
            if logits.device != self.device:
                self._counts = self._counts.to(logits.device)
                self._offsets = None
                self._ws = None
            self._follow = False
        dev = self.device
        n, m, length = logits.shape
        if n * length == 0:
            return
        on_cpu = dev.type == "cpu"
        chunk = self.chunk or (
            DEFAULT_METRICS.cpu_chunk if on_cpu else DEFAULT_METRICS.device_chunk
        )
        # On the CPU a block of a few markers is counted with bincount into a small array (fast,
        # cache-resident); where blocks hold too few scores for that (sequence task), and on
        # accelerators, scores are added straight into the counts (atomics on the GPU; no sync).
        max_markers = m
        if on_cpu and n * length >= self._row:
            max_markers = max(1, chunk // (4 * self._row))
        for ms, ns, ls in _blocks(n, m, length, chunk, max_markers):
            x = logits[ns, ms, ls]
            y = target[ns, ms, ls]
            dr = None if drop is None else drop[ns, ms, ls]
            if x.device != dev:
                x, y = x.to(dev), y.to(dev)
                dr = None if dr is None else dr.to(dev)
            self._add_block(x, y, dr, ms.start, on_cpu)

    def _check_batch(self, logits, target, mask):
        """Validate; return (N, M, L) logits and target, and the (N, M, L) drop mask or None."""
        if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
            raise RegtracksError("update: logits must be a float tensor")
        if logits.dim() not in (2, 3):
            raise RegtracksError(
                f"update: logits must be (N, M, L) or (N, M), got shape {tuple(logits.shape)}"
            )
        if logits.shape[1] != self.n_markers:
            raise RegtracksError(
                f"update: logits have {logits.shape[1]} markers (dim 1), expected {self.n_markers}"
            )
        if not isinstance(target, torch.Tensor) or target.shape != logits.shape:
            got = tuple(target.shape) if isinstance(target, torch.Tensor) else type(target)
            raise RegtracksError(
                f"update: target shape {got} differs from logits shape {tuple(logits.shape)}"
            )
        if target.device != logits.device:
            target = target.to(logits.device)
        dense = logits.dim() == 3
        if not dense:
            logits, target = logits.unsqueeze(-1), target.unsqueeze(-1)
        if mask is not None:
            if not isinstance(mask, torch.Tensor):
                raise RegtracksError("update: mask must be a bool tensor or None")
            mask = mask.to(device=logits.device, dtype=torch.bool)
            if mask.dim() == 1:
                mask = mask.view(-1, 1, 1)  # (N,): whole items
            elif mask.dim() == 2:
                # (N, L) of the dense task applies to every marker; (N, M) of the sequence task
                mask = mask.unsqueeze(1) if dense else mask.unsqueeze(-1)
            elif not dense:
                raise RegtracksError(
                    f"update: mask shape {tuple(mask.shape)} does not fit (N, M) logits"
                )
            try:
                # invert before expanding: the small (N, 1, L) tensor, not the (N, M, L) view
                mask = (~mask).expand(logits.shape)
            except RuntimeError:
                raise RegtracksError(
                    f"update: mask shape {tuple(mask.shape)} does not broadcast to logits shape "
                    f"{tuple(logits.shape)}"
                ) from None
        return logits, target, mask

    def _add_block(self, x, y, drop, m0: int, on_cpu: bool) -> None:
        """Count one (n, mb, l) block of markers ``m0 .. m0 + mb - 1``."""
        shape, numel, mb = x.shape, x.numel(), x.shape[1]
        row, nb = self._row, self.n_bins
        if self._offsets is None:
            self._offsets = torch.arange(0, self.n_markers * row, row, dtype=torch.int32)
            self._offsets = self._offsets.to(self.device)
            self._half_t = torch.tensor(self._half, dtype=torch.float32, device=self.device)
        if x.dtype != torch.float32:
            x = x.float()
        if on_cpu:  # reuse two buffers: no allocation (and no page faults) per block
            if self._ws is None or self._ws[0].numel() < numel:
                self._ws = (torch.empty(numel), torch.empty(numel, dtype=torch.int32))
            d = self._ws[0][:numel].view(shape)
            idx = self._ws[1][:numel].view(shape)
        else:
            d = torch.empty(shape, dtype=torch.float32, device=self.device)
            idx = torch.empty(shape, dtype=torch.int32, device=self.device)
        # bin = floor(h * (1 + x / (s + |x|))): monotone, the whole real line onto [0, nb - 1]
        torch.abs(x, out=d).add_(self.logit_scale)
        torch.div(x, d, out=d)  # r in [-1, 1] (ratio first: h * x may overflow)
        torch.add(self._half_t, d, alpha=self._half, out=d)
        d.nan_to_num_(nan=float(nb))  # NaN (and +-inf, via inf / inf) -> the NaN slot
        idx.copy_(d)  # truncation = floor on [0, nb]
        idx.add_(self._offsets[:mb].view(1, mb, 1))
        idx.add_(y if y.dtype == torch.bool else y != 0, alpha=nb + 1)
        span = mb * row
        total = self.n_markers * row  # the masked slot of the global counts
        if on_cpu and numel >= span:
            if drop is not None:
                idx.masked_fill_(drop, span)
            cnt = torch.bincount(idx.view(-1), minlength=span + 1)
            self._counts[m0 * row : m0 * row + span] += cnt[:span]
            self._counts[total] += cnt[span]
        else:
            if m0:
                idx.add_(m0 * row)
            if drop is not None:
                idx.masked_fill_(drop, total)
            if not on_cpu and torch.are_deterministic_algorithms_enabled():
                # index_add_ on CUDA refuses deterministic mode; bincount (no weights) is
                # deterministic, at the cost of a host sync
                self._counts += torch.bincount(idx.view(-1), minlength=self._counts.numel())
                return
            ones = torch.ones(1, dtype=torch.int64, device=self.device).expand(numel)
            self._counts.index_add_(0, idx.view(-1), ones)

    # ---------------------------------------------------------------- compute
    def _numpy_counts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        c = self._counts.detach().cpu().numpy()
        body = c[: self.n_markers * self._row].reshape(self.n_markers, 2, self.n_bins + 1)
        neg = body[:, 0, : self.n_bins]
        pos = body[:, 1, : self.n_bins]
        n_nan = body[:, :, self.n_bins].sum(axis=1)
        return neg, pos, n_nan, int(c[-1])

    def compute(self) -> MetricsResult:
        """Per-marker AP (PR-AUC), ROC-AUC and positive rate from the histograms.

        Returns
        -------
        MetricsResult
            ``(M,)`` arrays; NaN where a metric is undefined (see the module docstring).
        """
        neg, pos, n_nan, n_masked = self._numpy_counts()
        m = self.n_markers
        n_pos = pos.sum(axis=1).astype(np.float64)
        n_neg = neg.sum(axis=1).astype(np.float64)
        ap_sum = np.empty(m)
        roc_sum = np.empty(m)
        step = 64  # markers at a time: cache-sized temporaries
        for m0 in range(0, m, step):
            # highest scores first; float64 (products of counts overflow int64)
            p = pos[m0 : m0 + step, ::-1].astype(np.float64)
            q = neg[m0 : m0 + step, ::-1].astype(np.float64)
            tp = np.cumsum(p, axis=1)
            pp = tp + np.cumsum(q, axis=1)  # predicted positive at each bin's lower edge
            np.divide(tp, pp, out=pp, where=pp > 0)  # precision (pp > 0 where p > 0)
            # AP: sum of (R_k - R_{k-1}) P_k, with R_k - R_{k-1} = p_k / P
            ap_sum[m0 : m0 + step] = np.einsum("ij,ij->i", p, pp)
            # ROC: trapezoids of width q_k / N between TPR (tp_k - p_k) / P and tp_k / P
            tp *= 2.0
            tp -= p
            roc_sum[m0 : m0 + step] = np.einsum("ij,ij->i", q, tp)
        total = n_pos + n_neg
        with np.errstate(divide="ignore", invalid="ignore"):
            ap = np.where(n_pos > 0, ap_sum / n_pos, np.nan)
            roc = np.where((n_pos > 0) & (n_neg > 0), roc_sum / (2.0 * n_pos * n_neg), np.nan)
            rate = np.where(total > 0, n_pos / total, np.nan)
        return MetricsResult(
            pr_auc=ap,
            roc_auc=roc,
            positive_rate=rate,
            n_positive=n_pos.astype(np.int64),
            n_total=total.astype(np.int64),
            n_nan=n_nan.astype(np.int64),
            n_masked=n_masked,
        )

    def pr_curve(self, marker: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Precision-recall curve of one marker, in scikit-learn's layout.

        Parameters
        ----------
        marker : int
            Marker index ``0 <= marker < M``.

        Returns
        -------
        precision, recall : (K + 1,) float64
            At each non-empty bin's lower edge, thresholds increasing (recall decreasing);
            the last point is precision 1, recall 0, as in
            :func:`sklearn.metrics.precision_recall_curve`. Recall is NaN without positives.
        thresholds : (K,) float64
            Lower bin edges in logits (``-inf`` for the lowest bin).
        """
        if not 0 <= int(marker) < self.n_markers:
            raise RegtracksError(f"marker index {marker} out of range 0..{self.n_markers - 1}")
        row = self._counts[int(marker) * self._row : (int(marker) + 1) * self._row]
        c = row.detach().cpu().numpy().reshape(2, self.n_bins + 1)[:, : self.n_bins]
        nonempty = np.flatnonzero(c.sum(axis=0))[::-1]  # highest first
        tp = np.cumsum(c[1, nonempty].astype(np.float64))
        fp = np.cumsum(c[0, nonempty].astype(np.float64))
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
            recall = tp / tp[-1] if tp.size and tp[-1] > 0 else np.full(tp.shape, np.nan)
        thresholds = self.bin_edges()[nonempty]
        return (
            np.concatenate([precision[::-1], [1.0]]),
            np.concatenate([recall[::-1], [0.0]]),
            thresholds[::-1].copy(),
        )

    def pr_curves(self, names: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{name: (precision, recall)}`` for every marker, ``names`` in marker order."""
        if len(names) != self.n_markers:
            raise RegtracksError(f"pr_curves: {len(names)} names for {self.n_markers} markers")
        return {name: self.pr_curve(i)[:2] for i, name in enumerate(names)}
