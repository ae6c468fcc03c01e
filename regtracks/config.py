"""Defaults, in one place. The command line reads its option defaults from here.

Every length is in base pairs; coordinates are 0-based half-open.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CATEGORIES: tuple[str, ...] = ("TFBS", "Histone", "DNase")
"""Marker categories, in the order of the paper's tables."""

CATEGORY_COLORS: dict[str, str] = {"TFBS": "0,90,200", "Histone": "200,60,0", "DNase": "0,140,60"}
"""Default track colours (R,G,B) per category."""

TASKS: tuple[str, ...] = ("dense", "sequence")
SPLITS: tuple[str, ...] = ("train", "valid", "test")
PAPER_VALID_CHROMS: tuple[str, ...] = ("chr7",)
PAPER_TEST_CHROMS: tuple[str, ...] = ("chr8", "chr9")


@dataclass(frozen=True)
class DataConfig:
    """How the two tasks are built from a genome and peak files.

    Attributes
    ----------
    window_len : int
        Dense task: length of the non-overlapping windows tiled from each chromosome's start.
    max_n : float
        Drop a window (or sequence-task input) whose fraction of N bases exceeds this.
    max_excluded : float
        Drop a window whose fraction covered by the ``exclude`` BED exceeds this.
    split : str
        ``"chrom"`` (whole chromosomes held out) or ``"random"`` (80/10/10 with ``seed``).
    valid_chroms, test_chroms : tuple of str or None
        Held-out chromosomes for ``split="chrom"``. ``None`` means the paper's (valid chr7,
        test chr8 + chr9) when the genome has them, else whole chromosomes chosen
        deterministically (see :func:`regtracks.windows.assign_splits`). Named chromosomes
        that the genome lacks are an error.
    valid_fraction, test_fraction : float
        Target fractions for the random split and for choosing chromosomes automatically.
    seed : int
        Seed of the random split, negative sampling and augmentation.
    bin_size : int
        Sequence task: labelled bin (200 bp, as in DeepSEA).
    seq_len : int
        Sequence task: input length centred on the bin (1000 bp).
    min_overlap : float
        Sequence task: a bin is positive for a marker when at least this fraction of it
        overlaps the marker's peaks.
    negative_ratio : float
        Sequence task: all-negative bins sampled per positive bin.
    chroms : tuple of str or None
        Restrict both tasks to these chromosomes (default: every chromosome of the genome).
    """

    window_len: int = 25_000
    max_n: float = 0.10
    max_excluded: float = 0.10
    split: str = "chrom"
    valid_chroms: tuple[str, ...] | None = None
    test_chroms: tuple[str, ...] | None = None
    valid_fraction: float = 0.10
    test_fraction: float = 0.10
    seed: int = 0
    bin_size: int = 200
    seq_len: int = 1000
    min_overlap: float = 0.5
    negative_ratio: float = 1.0
    chroms: tuple[str, ...] | None = None


@dataclass(frozen=True)
class SimConfig:
    """Size and shape of the built-in synthetic genome (see :mod:`regtracks.simulate`).

    The defaults make a genome on which ``regtracks demo`` trains the dilated model in a few
    minutes on 2 CPU cores. ``n_chroms=24, chrom_len=96_000_000, n_markers=919`` is paper size.
    """

    n_chroms: int = 4
    chrom_len: int = 1_500_000
    n_markers: int = 12
    seed: int = 0
    gc: float = 0.41
    n_gaps_per_chrom: int = 2
    softmask_fraction: float = 0.3
    # planted sites per Mbp of each motif of the library
    site_density: float = 30.0
    # distal rule: a partner site 1-5 kb away (centre to centre)
    distal_min: int = 1_000
    distal_max: int = 5_000
    # fraction of each marker's peaks moved to random places / dropped (ENCODE-like noise)
    noise: float = 0.03
    # per-base substitution rate of planted motif sites
    mutation: float = 0.04


DEFAULT_DATA = DataConfig()
DEFAULT_SIM = SimConfig()


@dataclass(frozen=True)
class TrainDefaults:
    """Training defaults (the paper's code uses Adam at 1e-3)."""

    lr: float = 1e-3
    batch_size: int = 8
    epochs: int = 10
    pos_weight: float = 1.0
    patience: int = 3
    workers: int = 2
    seed: int = 0
    eval_every: int = 0  # steps; 0 = once per epoch
    grad_clip: float = 1.0
    extra: dict = field(default_factory=dict)


DEFAULT_TRAIN = TrainDefaults()


@dataclass(frozen=True)
class MetricsDefaults:
    """Streaming PR-AUC / ROC-AUC (see :mod:`regtracks.metrics`).

    Attributes
    ----------
    n_bins : int
        Score bins per marker and class. Logits ``x`` are binned uniformly in
        ``t = x / (1 + |x| / logit_scale)``, which maps every logit into
        ``(-logit_scale, logit_scale)``: bins are ``2 * logit_scale / n_bins`` wide in logits
        near 0 (0.0039 at the defaults) and widen as ``(1 + |x| / logit_scale) ** 2`` (0.016 at
        ``|x| = 16``, 0.035 at 32). Nothing is clipped. The AP error against exact
        scikit-learn shrinks as ``1 / n_bins``; at 8192 it stayed below 5e-4 on every synthetic
        distribution tried (see BENCHMARKS.md). Memory: ``n_markers * 2 * (n_bins + 1)`` int64
        (120 MB for 919 markers).
    logit_scale : float
        Logit at which bins are 4x as wide as at 0.
    cpu_chunk : int
        Scores binned per step on the CPU (kept cache-sized).
    device_chunk : int
        Scores binned per step on an accelerator (bounds temporary memory: ~8 bytes each).
    """

    n_bins: int = 8192
    logit_scale: float = 16.0
    cpu_chunk: int = 1 << 20
    device_chunk: int = 1 << 26


DEFAULT_METRICS = MetricsDefaults()
