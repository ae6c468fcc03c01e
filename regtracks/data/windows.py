"""Samples of both tasks: where each model input lies, whether it is kept, and its split.

Dense task: non-overlapping windows of ``window_len`` tiled from each chromosome's start
(a chromosome's tail shorter than a window is not used). Windows with more than ``max_n`` N or
more than ``max_excluded`` covered by the ``exclude`` BED are dropped.

Sequence task: 200 bp bins with at least one positive marker, plus sampled all-negative bins;
each input is ``seq_len`` (1000 bp) centred on its bin. Inputs crossing a chromosome end, with
too many N, or excluded, are dropped.

Splits: by chromosome (default) or random 80/10/10 with a seed. Coordinates are 0-based
half-open.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from regtracks._util import RegtracksError, covered_bp, expand_ranges, natural_key
from regtracks.config import (
    DEFAULT_DATA,
    PAPER_TEST_CHROMS,
    PAPER_VALID_CHROMS,
    SPLITS,
    DataConfig,
)
from regtracks.data.labels import IntervalIndex, bin_positives

__all__ = ["Samples", "SplitInfo", "dense_windows", "sequence_samples", "assign_splits"]


@dataclass
class SplitInfo:
    """How samples were split.

    Attributes
    ----------
    mode : str
        ``"chrom"`` or ``"random"``.
    chroms : dict split -> list of chrom
        For the chromosome split, the chromosomes of each split.
    auto : bool
        True when held-out chromosomes were chosen automatically (the paper's chr7/8/9 absent).
    """

    mode: str
    chroms: dict[str, list[str]] = field(default_factory=dict)
    auto: bool = False
    seed: int = 0

    def describe(self) -> str:
        if self.mode == "random":
            return f"random split 80/10/10 (seed {self.seed})"
        how = "chosen automatically" if self.auto else "by chromosome"
        return (
            f"split {how}: valid {','.join(self.chroms['valid'])}; "
            f"test {','.join(self.chroms['test'])}; train the other "
            f"{len(self.chroms['train'])} chromosome(s)"
        )

    def to_dict(self) -> dict:
        return {"mode": self.mode, "chroms": self.chroms, "auto": self.auto, "seed": self.seed}


@dataclass
class Samples:
    """Model inputs of one task.

    Attributes
    ----------
    task : str
        ``"dense"`` or ``"sequence"``.
    chroms : list of str
        Chromosome names; ``chrom_idx`` indexes this list.
    chrom_idx : (S,) int32
    start : (S,) int64
        Input start; the input is ``[start, start + length)``.
    length : int
        Input length (``window_len`` or ``seq_len``).
    split : (S,) int8
        0 train, 1 valid, 2 test.
    total : int
        Candidate inputs before filtering.
    dropped : dict reason -> count
    label_indptr, label_markers : CSR arrays (sequence task only)
        Sample ``i`` is positive for ``label_markers[label_indptr[i]:label_indptr[i+1]]``.
    """

    task: str
    chroms: list[str]
    chrom_idx: np.ndarray
    start: np.ndarray
    length: int
    split: np.ndarray
    total: int
    dropped: dict[str, int]
    split_info: SplitInfo
    label_indptr: np.ndarray | None = None
    label_markers: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.start.size)

    def indices(self, split: str | None) -> np.ndarray:
        """Sample indices of one split (``None``: all)."""
        if split is None:
            return np.arange(len(self))
        if split not in SPLITS:
            raise RegtracksError(f"unknown split {split!r} (expected train, valid or test)")
        return np.flatnonzero(self.split == SPLITS.index(split))

    def region(self, i: int) -> tuple[str, int, int]:
        s = int(self.start[i])
        return self.chroms[int(self.chrom_idx[i])], s, s + self.length

    def counts(self) -> dict[str, int]:
        return {name: int((self.split == k).sum()) for k, name in enumerate(SPLITS)}

    def labels(self, i: int, n_markers: int) -> np.ndarray:
        """Sequence task: ``(M,)`` uint8 labels of sample ``i``."""
        y = np.zeros(n_markers, dtype=np.uint8)
        y[self.label_markers[self.label_indptr[i] : self.label_indptr[i + 1]]] = 1
        return y


def _use_chroms(genome, cfg: DataConfig) -> list[str]:
    if cfg.chroms:
        return [genome.require(c) for c in cfg.chroms]
    return list(genome.chroms)


def _excluded_bp(exclude, chrom: str, s: np.ndarray, e: np.ndarray) -> np.ndarray:
    if not exclude or chrom not in exclude:
        return np.zeros(s.size, dtype=np.int64)
    xs, xe = exclude[chrom]
    return covered_bp(xs, xe, s, e)


def _check_cfg(cfg: DataConfig) -> None:
    if cfg.window_len <= 0:
        raise RegtracksError(f"--window-len must be positive, got {cfg.window_len}")
    if not 0.0 <= cfg.max_n <= 1.0:
        raise RegtracksError(f"--max-n must be between 0 and 1, got {cfg.max_n}")
    if cfg.split not in ("chrom", "random"):
        raise RegtracksError(f"--split must be chrom or random, got {cfg.split!r}")
    if cfg.seed < 0:  # numpy takes no negative seed
        raise RegtracksError(f"--seed must be >= 0, got {cfg.seed}")
    for what, value in (("valid", cfg.valid_fraction), ("test", cfg.test_fraction)):
        if not 0.0 <= value < 1.0:
            raise RegtracksError(f"the {what} fraction must be in [0, 1), got {value}")
    if cfg.valid_fraction + cfg.test_fraction >= 1.0:
        raise RegtracksError("the valid and test fractions leave nothing to train on")
    if not 0.0 < cfg.min_overlap <= 1.0 or not cfg.negative_ratio >= 0:
        raise RegtracksError(
            "sequence task needs 0 < min overlap <= 1 and negative ratio >= 0, got "
            f"{cfg.min_overlap} and {cfg.negative_ratio}"
        )
    if cfg.bin_size <= 0 or cfg.seq_len < cfg.bin_size:
        raise RegtracksError(
            f"sequence task needs 0 < bin size ({cfg.bin_size}) <= input length ({cfg.seq_len})"
        )


def assign_splits(
    genome, chroms: list[str], chrom_idx: np.ndarray, cfg: DataConfig
) -> tuple[np.ndarray, SplitInfo]:
    """Split samples by chromosome or at random.

    Chromosome split: the named chromosomes, or the paper's (valid chr7, test chr8 + chr9)
    when ``cfg`` names none and the genome has them. Otherwise whole chromosomes are chosen
    deterministically: walking the chromosomes in reverse natural order, each is given to
    *test* until it holds ``test_fraction`` of the samples, then to *valid* until that holds
    ``valid_fraction``; the rest train.

    Returns
    -------
    split : (S,) int8 (0 train, 1 valid, 2 test), info : SplitInfo
    """
    n = chrom_idx.size
    if cfg.split == "random":
        rng = np.random.default_rng(cfg.seed)
        u = rng.random(n)
        split = np.zeros(n, dtype=np.int8)
        split[u < cfg.valid_fraction + cfg.test_fraction] = 1
        split[u < cfg.test_fraction] = 2
        return split, SplitInfo(mode="random", seed=cfg.seed)

    counts = np.bincount(chrom_idx, minlength=len(chroms)) if n else np.zeros(len(chroms), int)
    present = [c for c, k in zip(chroms, counts, strict=True) if k > 0]
    valid: list[str]
    test: list[str]
    auto = False
    if cfg.valid_chroms is not None or cfg.test_chroms is not None:
        valid = [genome.require(c) for c in (cfg.valid_chroms or ())]
        test = [genome.require(c) for c in (cfg.test_chroms or ())]
    else:
        paper = [genome.resolve(c) for c in (*PAPER_VALID_CHROMS, *PAPER_TEST_CHROMS)]
        if all(c is not None and c in present for c in paper):
            valid = paper[: len(PAPER_VALID_CHROMS)]
            test = paper[len(PAPER_VALID_CHROMS) :]
        else:
            auto = True
            if len(present) < 3:
                raise RegtracksError(
                    f"a chromosome split needs at least 3 chromosomes with samples, found "
                    f"{len(present)}; use --split random"
                )
            order = sorted(present, key=natural_key, reverse=True)
            per = dict(zip(chroms, counts.tolist(), strict=True))
            test, valid = [], []
            acc = 0
            for c in order[:-1]:
                if not test or acc < cfg.test_fraction * n:
                    test.append(c)
                    acc += per[c]
                else:
                    break
            acc = 0
            for c in order[len(test) : -1]:
                if not valid or acc < cfg.valid_fraction * n:
                    valid.append(c)
                    acc += per[c]
                else:
                    break
            if not valid:
                raise RegtracksError(
                    "too few chromosomes for a chromosome split; use --split random"
                )
    overlap = set(valid) & set(test)
    if overlap:
        raise RegtracksError(f"chromosome(s) {', '.join(sorted(overlap))} in both valid and test")
    lookup = np.zeros(len(chroms), dtype=np.int8)
    for c in valid:
        if c in chroms:
            lookup[chroms.index(c)] = 1
    for c in test:
        if c in chroms:
            lookup[chroms.index(c)] = 2
    train = [c for c in present if c not in valid and c not in test]
    info = SplitInfo(mode="chrom", chroms={"train": train, "valid": valid, "test": test}, auto=auto)
    return lookup[chrom_idx], info


def dense_windows(
    genome,
    cfg: DataConfig = DEFAULT_DATA,
    *,
    exclude: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> Samples:
    """Tile, filter and split the dense task's windows.

    Parameters
    ----------
    genome : Genome
    cfg : DataConfig
        ``window_len``, ``max_n``, ``max_excluded``, split options, ``chroms``.
    exclude : dict chrom -> (starts, ends), optional
        Merged excluded regions (blacklist / multi-mapped), keyed by genome chromosome names.
    """
    _check_cfg(cfg)
    L = cfg.window_len
    chroms = _use_chroms(genome, cfg)
    idx_parts, start_parts = [], []
    dropped = {"n_content": 0, "excluded": 0}
    total = 0
    for ci, c in enumerate(chroms):
        k = genome.sizes[c] // L
        if k == 0:
            continue
        s = np.arange(k, dtype=np.int64) * L
        e = s + L
        total += k
        ok_n = genome.n_count(c, s, e) <= cfg.max_n * L
        ok_x = _excluded_bp(exclude, c, s, e) <= cfg.max_excluded * L
        dropped["n_content"] += int((~ok_n).sum())
        dropped["excluded"] += int((ok_n & ~ok_x).sum())
        keep = ok_n & ok_x
        idx_parts.append(np.full(int(keep.sum()), ci, dtype=np.int32))
        start_parts.append(s[keep])
    chrom_idx = np.concatenate(idx_parts) if idx_parts else np.zeros(0, np.int32)
    start = np.concatenate(start_parts) if start_parts else np.zeros(0, np.int64)
    if start.size == 0:
        raise RegtracksError(
            f"no window of {L:,} bp survives the filters (genome {genome.name}: "
            f"{total} candidate windows); try a smaller --window-len or a larger --max-n"
        )
    split, info = assign_splits(genome, chroms, chrom_idx, cfg)
    return Samples(
        task="dense",
        chroms=chroms,
        chrom_idx=chrom_idx,
        start=start,
        length=L,
        split=split,
        total=total,
        dropped=dropped,
        split_info=info,
    )


def sequence_samples(
    genome,
    index: IntervalIndex,
    cfg: DataConfig = DEFAULT_DATA,
    *,
    exclude: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> Samples:
    """Bins of the sequence task (DeepSEA construction) with their labels.

    Samples are the bins with at least one positive marker plus ``negative_ratio`` times as
    many all-negative bins drawn at random (seeded) from the same chromosome; each input is
    ``seq_len`` centred on its bin.
    """
    _check_cfg(cfg)
    bs, sl = cfg.bin_size, cfg.seq_len
    flank = (sl - bs) // 2
    chroms = _use_chroms(genome, cfg)
    rng = np.random.default_rng(cfg.seed)
    idx_parts, start_parts, indptr_parts, mk_parts = [], [], [], []
    dropped = {"edge": 0, "n_content": 0, "excluded": 0}
    total = 0
    n_rows = 0
    for ci, c in enumerate(chroms):
        size = genome.sizes[c]
        n_bins = size // bs
        if n_bins == 0:
            continue
        pb, pm = bin_positives(index, c, size, bin_size=bs, min_overlap=cfg.min_overlap)
        pos, first = np.unique(pb, return_index=True)
        counts = np.diff(np.append(first, pb.size))
        # all-negative bins, drawn among bins whose input fits the chromosome
        lo_b = -(-flank // bs)  # first bin whose input starts >= 0
        hi_b = (size - sl + flank) // bs  # last bin whose input ends <= size
        n_neg = int(round(cfg.negative_ratio * pos.size))
        neg = np.zeros(0, dtype=np.int64)
        if n_neg > 0 and hi_b >= lo_b:
            draw = rng.integers(lo_b, hi_b + 1, size=int(n_neg * 1.3) + 16)
            draw = np.unique(draw[~np.isin(draw, pos)])
            neg = rng.permutation(draw)[:n_neg]
        bins = np.concatenate([pos, neg])
        cnt = np.concatenate([counts, np.zeros(neg.size, dtype=np.int64)])
        seg_start = np.concatenate([first, np.zeros(neg.size, dtype=np.int64)])
        order = np.argsort(bins, kind="stable")
        bins, cnt, seg_start = bins[order], cnt[order], seg_start[order]
        total += bins.size
        s = bins * bs - flank
        e = s + sl
        ok_edge = (s >= 0) & (e <= size)
        ok_n = genome.n_count(c, s, e) <= cfg.max_n * sl
        ok_x = _excluded_bp(exclude, c, s, e) <= cfg.max_excluded * sl
        dropped["edge"] += int((~ok_edge).sum())
        dropped["n_content"] += int((ok_edge & ~ok_n).sum())
        dropped["excluded"] += int((ok_edge & ok_n & ~ok_x).sum())
        keep = ok_edge & ok_n & ok_x
        bins, cnt, seg_start, s = bins[keep], cnt[keep], seg_start[keep], s[keep]
        # gather this chromosome's label rows in sample order
        take = expand_ranges(seg_start, cnt)
        mk_parts.append(pm[take].astype(np.int32))
        indptr_parts.append(n_rows + np.cumsum(cnt))
        n_rows += int(cnt.sum())
        idx_parts.append(np.full(bins.size, ci, dtype=np.int32))
        start_parts.append(s)
    chrom_idx = np.concatenate(idx_parts) if idx_parts else np.zeros(0, np.int32)
    start = np.concatenate(start_parts) if start_parts else np.zeros(0, np.int64)
    if start.size == 0:
        raise RegtracksError(
            f"no sequence-task sample: no {bs} bp bin is at least {cfg.min_overlap:.0%} covered "
            "by a peak on the genome's chromosomes"
        )
    indptr = np.concatenate([[0], *indptr_parts]).astype(np.int64)
    split, info = assign_splits(genome, chroms, chrom_idx, cfg)
    return Samples(
        task="sequence",
        chroms=chroms,
        chrom_idx=chrom_idx,
        start=start,
        length=sl,
        split=split,
        total=total,
        dropped=dropped,
        split_info=info,
        label_indptr=indptr,
        label_markers=np.concatenate(mk_parts) if mk_parts else np.zeros(0, np.int32),
    )
