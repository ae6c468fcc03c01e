"""Defaults, in one place. The command line reads its option defaults from here.

Every length is in base pairs; coordinates are 0-based half-open.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

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
        deterministically (see :func:`regtracks.data.windows.assign_splits`). Named chromosomes
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
    """Size and shape of the built-in synthetic genome (see :mod:`regtracks.data.simulate`).

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
    # sites per Mbp of the motifs histone marks follow (None: site_density), unless a TF or DNase
    # peak is centred on them too (partners of distal rules are thinned with them); a broad domain
    # covers kilobases, so at the TF density the marks would cover much of the genome
    broad_density: float | None = None
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
class TrainConfig:
    """Training options (``regtracks train``); the data options live in :class:`DataConfig`.

    Attributes
    ----------
    task, model : str
        Task (``dense`` or ``sequence``) and registered model name.
    hparams : dict
        Model keyword arguments (``--hparam key=value``).
    epochs, max_steps : int
        Stop after ``epochs`` passes over the training windows or ``max_steps`` optimizer
        steps, whichever comes first (``max_steps=0``: no step limit).
    batch_size : int
        Windows per optimizer step and process.
    lr : float
        Adam learning rate (the paper's code: 1e-3; 3e-3 learns the motifs in fewer steps with
        batch norm everywhere, see BENCHMARKS.md).
    warmup : int
        Steps of linear learning-rate warm-up from ``lr / warmup`` to ``lr`` (0: none).
    lr_decay : str
        ``cosine`` (the default: half a cosine from ``lr`` after the warm-up down to ``lr / 100``
        at the run's last step; a function of the step and the run's length, so a ``--resume``
        to the same end continues the same schedule) or ``none`` (constant after the warm-up).
        On the ablation genome cosine beat the constant rate on all four markers (BENCHMARKS.md,
        "Learning").
    pos_weight : float
        Weight of positive labels in the binary cross-entropy (> 1 favours recall).
    marker_weighting : str
        ``none`` (plain mean over positions and markers), ``sqrt`` or ``inverse`` (each
        marker's loss weighted by the inverse square root, or the inverse, of its positive
        rate; see :func:`regtracks.training.train.marker_weights`).
    device : str
        ``auto`` (CUDA when there), ``cpu`` or ``cuda``.
    precision : str
        ``auto`` (bf16 autocast on CUDA, fp32 on CPU), ``fp32`` or ``bf16``.
    workers : int
        DataLoader worker processes.
    seed : int
        Seed of the weights, the batch order and the augmentation.
    patience : int
        Stop after this many validations without a better mean PR-AUC (0: never).
    rc : bool
        Reverse-complement augmentation of training windows.
    shift : int or None
        Shift augmentation of training inputs: each epoch every input moves by a random offset
        of up to this many bases (dense windows: never into another split; sequence inputs:
        a jitter). 0: fixed tiles. ``None``: half the dense window, a quarter of the
        sequence task's bin (:func:`regtracks.training.train.default_shift`). Never applied in
        evaluation or scanning.
    eval_every : int
        Validate every this many steps (0: after each epoch).
    checkpoint_every : int
        Also write ``last.pt`` every this many steps (0: only when validating).
    log_every : int
        Steps between ``metrics.jsonl`` lines (and NaN checks).
    max_eval_batches : int
        Validate on at most this many batches (0: the whole validation split).
    grad_clip : float
        Clip the gradient norm (0: off).
    tensorboard : str or None
        Also log the ``metrics.jsonl`` records to TensorBoard in this folder.
    compile : bool
        ``torch.compile`` the model for training (``--compile``; off by default: the first
        step waits for the compiler: 76 s for a tiny model on 2 busy CPU cores, a few seconds
        once its cache is warm; inductor needs a C compiler on CPU, Triton on CUDA).
        Under DDP the DDP-wrapped model is compiled (PyTorch's rule: its graph breaks at the
        gradient buckets so that communication overlaps the backward pass); validation runs
        the model uncompiled, and checkpoints hold the model's own ``state_dict`` keys.
    sync_batchnorm : bool
        With several CUDA processes (torchrun + DDP), turn every batch norm into
        ``torch.nn.SyncBatchNorm``, whose statistics are those of the whole global batch: each
        GPU holds only 1-2 windows of 25 kb, and the statistics of one or two windows (whose
        positions are strongly correlated) are noisy; per-process batch norm also leaves each
        process with its own running statistics. No effect with one process or on CPU (gloo),
        where batch norm stays per process.
    """

    task: str = "dense"
    model: str = "dilated"
    hparams: dict = field(default_factory=dict)
    epochs: int = 10
    max_steps: int = 0
    batch_size: int = 8
    lr: float = 3e-3
    warmup: int = 0
    lr_decay: str = "cosine"
    pos_weight: float = 1.0
    marker_weighting: str = "sqrt"
    device: str = "auto"
    precision: str = "auto"
    workers: int = 2
    seed: int = 0
    patience: int = 3
    rc: bool = True
    shift: int | None = None
    eval_every: int = 0
    checkpoint_every: int = 200
    log_every: int = 10
    max_eval_batches: int = 0
    grad_clip: float = 0.0
    tensorboard: str | None = None
    compile: bool = False
    sync_batchnorm: bool = True


DEFAULT_TRAIN = TrainConfig()


@dataclass(frozen=True)
class ModelDefaults:
    """Defaults of ``regtracks models`` and ``benchmarks/bench_models.py``.

    Model hyperparameters themselves are the keyword defaults of each builder
    (:func:`regtracks.models.model_hparams`), the paper's best-case values.
    """

    n_markers: int = 919  # the paper's M, for parameter counts
    bench_length: int = 25_000
    bench_batch: int = 8


DEFAULT_MODELS = ModelDefaults()


@dataclass(frozen=True)
class RuntimeDefaults:
    """How every command that runs a trained model opens it (evaluate, predict, saliency,
    variants, demo).

    Attributes
    ----------
    device : str
        ``auto`` (CUDA when there), ``cpu`` or ``cuda``.
    precision : str
        ``auto`` (bf16 autocast on CUDA, fp32 on CPU), ``fp32`` or ``bf16``; saliency has its
        own (:class:`SaliencyDefaults`).
    checkpoint : str
        Checkpoint of a run folder: ``best`` (best validation mean PR-AUC) or ``last``.
    threads : int
        CPU cores a command uses (``--threads``; train, benchmark and demo too): shared
        between torch's threads, loader workers and bigWig writers by
        :func:`regtracks.runtime.plan_threads`. 0: ``OMP_NUM_THREADS`` when set, else every
        core this process may use (CPU affinity and cgroup quota).
    """

    device: str = "auto"
    precision: str = "auto"
    checkpoint: str = "best"
    threads: int = 0


DEFAULT_RUNTIME = RuntimeDefaults()


@dataclass(frozen=True)
class EvalDefaults:
    """Evaluation of a run (``regtracks evaluate``) and the benchmark's model search.

    Attributes
    ----------
    split : str
        Split evaluated: ``test`` (or ``valid``, ``train``).
    batch_size : int
        Windows per forward pass.
    workers : int
        DataLoader worker processes.
    grid : str
        ``regtracks benchmark``'s hyperparameter search: ``none``, ``small`` or ``paper``.
    chance_roc_auc, chance_pr_lift : float
        A marker is *at chance* (flagged by ``evaluate``, ``train`` and the demo; its tracks
        carry no signal) when its ROC-AUC is below ``chance_roc_auc`` (0.5 is a random
        ranking) or its PR-AUC below ``chance_pr_lift`` times its positive rate (the PR-AUC
        of a random ranking).
    """

    split: str = "test"
    batch_size: int = 8
    workers: int = 2
    grid: str = "none"
    chance_roc_auc: float = 0.55
    chance_pr_lift: float = 1.1


DEFAULT_EVAL = EvalDefaults()


def _cgroup_cpu_limit() -> float | None:
    """CPUs a cgroup quota allows this process (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``)."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def usable_cpus() -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup CPU quota (at least 1).

    ``os.cpu_count()`` counts the machine's cores, which a container or a ``taskset`` may not
    grant; a quota of 1.5 CPUs counts as 1.
    """
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        n = os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    if limit is not None:
        n = min(n, int(limit))
    return max(1, n)


@dataclass(frozen=True)
class BigWigDefaults:
    """How :class:`regtracks.tracks.bigwig.BigWigWriter` writes many bigWig tracks.

    Attributes
    ----------
    n_procs : int
        Writer processes. The default leaves one core to the process that scans (and drives the
        GPU): ``cpus - 1``, at least 1, at most 16. ``0`` writes in the calling process.
    buffer_mb : int
        Shared-memory buffer between the scanning process and the writers, in MiB, split into
        ``n_slots`` slots. It bounds the writer's memory whatever the chromosome length.
    n_slots : int
        Blocks in flight: the scanner fills one slot while the writers drain the others.
    start_method : str
        ``multiprocessing`` start method of the writers. ``spawn`` is safe with torch and CUDA
        in the parent (``fork`` is not).
    engine : str
        The code that writes the files: ``native`` (the default: regtracks' own,
        :mod:`regtracks.tracks.bbi`, numpy and libdeflate, every track of a group written
        together; 4x less CPU than pyBigWig for 919 tracks at 128 bp, files of the same size,
        the same bytes however the blocks were cut), ``pybigwig`` (libBigWig, the fallback)
        or ``figwig`` (optional). Measured side by side in
        ``benchmarks/bench_bigwig_engines.py``.
    """

    n_procs: int = field(default_factory=lambda: max(1, min(16, usable_cpus() - 1)))
    buffer_mb: int = 256
    n_slots: int = 4
    start_method: str = "spawn"
    engine: str = "native"


DEFAULT_BIGWIG = BigWigDefaults()


@dataclass(frozen=True)
class ServeDefaults:
    """``regtracks serve``: where the static hub server listens (port 0 picks a free port),
    and its bounds: a connection silent for ``timeout`` seconds is closed; ``max_workers``
    connections are served at once (a thread each), ``max_waiting`` more wait for a thread,
    and any beyond those are answered 503."""

    host: str = "127.0.0.1"
    port: int = 8000
    timeout: float = 30.0
    max_workers: int = 32
    max_waiting: int = 128


DEFAULT_SERVE = ServeDefaults()


@dataclass(frozen=True)
class HubDefaults:
    """Defaults of the browser files (UCSC track / assembly hub, IGV session, igv.js page).

    Attributes
    ----------
    short_label_max, long_label_max : int
        UCSC's limits for a track's ``shortLabel`` (17) and ``longLabel`` (76 characters).
    hub_long_label_max : int
        Limit for the hub's own ``longLabel`` (80 characters).
    facet_threshold : int
        A category with more tracks than this becomes a faceted composite
        (``compositeTrack faceted``); UCSC's plain composite works up to about 200 subtracks.
    visible_per_composite : int
        Subtracks switched on when the hub is first opened (the rest are listed, off).
    max_height_pixels : str
        ``maxHeightPixels`` (max:default:min) of every bigWig track.
    default_view_bp : int
        Width of ``defaultPos``, the first view, on the first chromosome with data.
    email : str
        Contact e-mail written to ``hub.txt`` (UCSC requires one); ``--email`` overrides it.
    saliency_color, other_color : str
        Colours (R,G,B) of saliency tracks and of categories without a colour of their own.
    igv_js_version : str
        The igv.js release bundled with regtracks (``regtracks/tracks/_vendor/igv.min.js``,
        MIT licence) and copied into every hub, so that ``igv.html`` works offline.
    igv_js_url : str
        igv.js's CDN, used only when no local igv.js is found (the page then says that it
        needs the network); ``{version}`` is replaced by ``igv_js_version``.
    """

    short_label_max: int = 17
    long_label_max: int = 76
    hub_long_label_max: int = 80
    facet_threshold: int = 200
    visible_per_composite: int = 12
    max_height_pixels: str = "100:40:8"
    default_view_bp: int = 100_000
    email: str = "regtracks-user@example.org"
    saliency_color: str = "110,40,150"
    other_color: str = "90,90,90"
    igv_js_version: str = "3.8.10"
    igv_js_url: str = "https://cdn.jsdelivr.net/npm/igv@{version}/dist/igv.min.js"


DEFAULT_HUB = HubDefaults()


@dataclass(frozen=True)
class MetricsDefaults:
    """Streaming PR-AUC / ROC-AUC (see :mod:`regtracks.training.metrics`).

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


@dataclass(frozen=True)
class ScanDefaults:
    """Whole-chromosome prediction (``regtracks predict``).

    Attributes
    ----------
    bin_size : int
        Track resolution (bp); 128 keeps a 919-marker genome's tracks to tens of GB.
    batch_size : int
        Windows per forward pass.
    min_gap : int
        Runs of N at least this long are assembly gaps: no data in the tracks.
    precision : str
        ``auto`` (bf16 on CUDA), ``fp32`` or ``bf16``.
    copy_block_bins : int
        Bins per block when a chromosome of an earlier call is copied into a hub's new tracks
        (bounds memory: tracks x bins x 4 bytes; 919 tracks x 65,536 bins = 240 MB).
    cpu_pass_bytes : int
        On the CPU, the model's outputs of one forward pass stay within this many bytes (at
        least one window a pass): with 919 markers and 67,840-bp cores one window is 249 MB,
        and a batch of 4 in one pass added 0.85 GB to the peak RSS while running no faster
        (3.1 against 2.9 s of CPU per 4 windows of the paper-size model in passes of 4 and of
        1, one thread, on the shared 2-core machine). On CUDA a batch is one pass.
    """

    bin_size: int = 128
    batch_size: int = 4
    min_gap: int = 100
    precision: str = "auto"
    copy_block_bins: int = 65_536
    cpu_pass_bytes: int = 256 * 2**20


DEFAULT_SCAN = ScanDefaults()


@dataclass(frozen=True)
class SaliencyDefaults:
    """Gradient saliency (``regtracks saliency``).

    Attributes
    ----------
    bin_size : int
        Track resolution (bp); 1 = every base (a motif's bases are visible).
    batch_size : int
        Windows per forward and backward pass.
    chunk : int
        Bases processed at a time (bounds memory for whole chromosomes).
    reduce : str
        Per-base value: ``grad_x_input`` (gradient at the base present) or ``norm``.
    precision : str
        ``fp32`` (the default here, the stitched gradients then match one long input to float
        precision), ``bf16`` or ``auto``.
    """

    bin_size: int = 1
    batch_size: int = 2
    chunk: int = 1_000_000
    reduce: str = "grad_x_input"
    precision: str = "fp32"


DEFAULT_SALIENCY = SaliencyDefaults()


@dataclass(frozen=True)
class VariantDefaults:
    """Variant effect scores (``regtracks variants``).

    Attributes
    ----------
    radius : int
        Bases scored on each side of a variant (about a TF peak's half width).
    batch_size : int
        Variants per forward pass (each runs its reference and alternative window).
    precision : str
        ``auto`` (bf16 on CUDA), ``fp32`` or ``bf16``.
    """

    radius: int = 100
    batch_size: int = 8
    precision: str = "auto"


DEFAULT_VARIANTS = VariantDefaults()


@dataclass(frozen=True)
class DemoConfig:
    """``regtracks demo``: the whole pipeline on the synthetic genome, on a laptop in minutes.

    The dilated model (motif stem, rates 1, 3, 9, 27, 81, residual connections, pooling; see
    docs/models.md) is trained on 5 kb windows at half its default widths (``hparams``): with
    12 markers the narrow trunk learns faster per step as well as per second (validation TFBS
    0.56 at step 200 against 0.25, DNase 0.66 against 0.28 at 550; BENCHMARKS.md, "Demo";
    ``benchmarks/ablate_demo.py``), and it trains and scans in about half the time, so the
    demo fits in four minutes on two cores; the receptive field is the default's. The genome
    plants 150 sites per Mbp of each TF motif so that a few hundred steps see thousands of
    sites, and 30 per Mbp of the motifs histone marks follow, so that their kilobase domains
    cover ~15 % of the genome rather than half of it (at 150 their PR-AUC could not be told
    from chance).
    """

    sim: SimConfig = field(
        default_factory=lambda: SimConfig(site_density=150.0, broad_density=30.0)
    )
    model: str = "dilated"
    hparams: dict = field(default_factory=lambda: {"f1": 64, "f2": 120, "d_hidden": 64})
    window_len: int = 5_000
    batch_size: int = 8
    lr: float = 3e-3
    # a constant rate: the demo stops while its later markers are still being learnt, and a
    # cosine decay over 600 steps cut them short (test TFBS 0.640 / DNase 0.418 against 0.671 /
    # 0.595 with a constant rate; BENCHMARKS.md, "Demo")
    lr_decay: str = "none"
    max_steps: int = 600
    eval_every: int = 150
    max_eval_batches: int = 8
    workers: int = 1
    bin_size: int = 64
    # planted sites knocked out per TFBS motif on the test chromosome (regtracks variants)
    n_knockouts: int = 12


DEFAULT_DEMO = DemoConfig()
