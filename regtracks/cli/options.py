"""Every option of the command line, declared once: spelling, short name, type and help.

A command's parameter reads ``precision: PrecisionOpt = DEFAULT_SCAN.precision``: the alias says
what the option is, the default (from :mod:`regtracks.config`, where the library's defaults
live) stands at the place of use. Where a command needs its own help text (what ``--out``
writes), a function here makes the option from that text:
``out: Annotated[Path, out_option("Run folder ...")]``. Options that several commands take
together are bundles (:class:`DataOptions`, :class:`TrainOptions`, :class:`ModelOptions`,
:class:`MarkerOptions`, :class:`ScanOptions`): a parameter ``data: DataOptions`` stands for all
of their options.

One name means one thing in every command:

``-m/--markers``  the marker manifest (TSV);   ``--marker``  marker names to select
``--window-len``  the training window;         ``--scan-window``  model input while scanning
``--n-markers`` / ``--n-chroms``  counts;      ``--chroms`` / ``--chrom``  chromosome names

Lists of names (``--marker``, ``--chrom``, ``--chroms``, ``--valid-chroms``,
``--test-chroms``) are repeatable and take comma lists: ``--marker CTCF,SP1`` is ``--marker
CTCF --marker SP1``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Annotated

import typer

from regtracks.cli.common import Bundle, fail, use_threads
from regtracks.config import (
    DEFAULT_DATA,
    DEFAULT_RUNTIME,
    DEFAULT_SALIENCY,
    DEFAULT_SCAN,
    DEFAULT_TRAIN,
    DataConfig,
    TrainConfig,
)


# --- parsing ---------------------------------------------------------------------------------
def names(values: list[str] | str | None) -> tuple[str, ...] | None:
    """Repeated and comma-separated names, flattened (``None`` when there are none)."""
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    items = tuple(n.strip() for v in values for n in v.split(",") if n.strip())
    return items or None


def hparams(items: list[str] | None) -> dict[str, str]:
    """``key=value`` strings -> dict of strings (the model registry converts the types)."""
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            fail(f"--hparam {item!r} is not key=value", 2)
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def hparams_per_model(items: list[str] | None) -> dict[str, dict[str, str]]:
    """``[model:]key=value`` strings -> ``{model: {key: value}}``; ``"*"``: every model."""
    out: dict[str, dict[str, str]] = {}
    for item in items or []:
        key = item.split("=", 1)[0]
        target, kv = item.split(":", 1) if ":" in key else ("*", item)
        out.setdefault(target, {}).update(hparams([kv]))
    return out


def option(kind, *names: str, help: str):
    """The annotation of an option: ``kind`` (its Python type), its ``names``, its ``help``."""
    return Annotated[kind, typer.Option(*names, help=help)]


# --- arguments -------------------------------------------------------------------------------
RunArg = Annotated[Path, typer.Argument(help="Run folder (or a checkpoint file) of a model.")]
HubArg = Annotated[Path, typer.Argument(help="Hub folder (manifest.json, hub.txt, igv.html).")]


# --- options whose help each command words itself ----------------------------------------------
# used as ``out: Annotated[Path, out_option("Run folder ...")]``
def out_option(help: str):
    """``-o/--out`` (a path): where the command writes; ``help`` says what."""
    return typer.Option("--out", "-o", help=help)


def genome_option(help: str):
    """``-g/--genome`` (a path): a genome FASTA, plain or bgzip; ``help`` says which."""
    return typer.Option("--genome", "-g", help=help)


def markers_option(help: str):
    """``-m/--markers`` (a path): the marker manifest TSV; ``help`` says which."""
    return typer.Option("--markers", "-m", help=help)


def resume_option(help: str, metavar: str | None = None):
    """``--resume`` (a flag): continue an interrupted job; ``help`` says how; ``metavar``: what
    the help shows it takes (``train --resume RUN``, see ``flag_values`` of
    :func:`~regtracks.cli.common.command`)."""
    return typer.Option("--resume", help=help, metavar=metavar)


def hparam_option(help: str):
    """``--hparam`` (repeatable strings): model hyperparameters; ``help`` gives the form."""
    return typer.Option("--hparam", help=help)


def batch_size_option(help: str):
    """``--batch-size`` (an int): items per step or forward pass; ``help`` says which."""
    return typer.Option("--batch-size", help=help)


GenomeOpt = Annotated[Path, genome_option("Genome FASTA (plain or bgzip).")]
MarkersOpt = Annotated[Path, markers_option("Marker manifest TSV (name, category, path).")]
RecordedGenomeOpt = Annotated[
    Path, genome_option("Genome FASTA (default: the one recorded in the checkpoint).")
]

# the table of options: one a line (ruff's E501 is off for this file, and so is its formatter
# here), every spelling once
# fmt: off
# --- data: the two tasks, built from a genome and a marker manifest -------------------------
TaskOpt = option(str, "--task", help="dense (25 kb windows, a label per base) or sequence (1000 bp inputs).")
WindowLenOpt = option(int, "--window-len", help="Training window of the dense task (bp).")
MaxNOpt = option(float, "--max-n", help="Drop inputs with more than this fraction of N.")
ExcludeOpt = option(Path, "--exclude", help="BED of excluded regions; windows >10% covered are dropped.")
SplitOpt = option(str, "--split", help="chrom (hold out chromosomes) or random (80/10/10).")
ValidChromsOpt = option(list[str], "--valid-chroms", help="Validation chromosomes (repeatable, or a comma list).")
TestChromsOpt = option(list[str], "--test-chroms", help="Test chromosomes (repeatable, or a comma list).")
ChromsOpt = option(list[str], "--chroms", help="Use only these chromosomes (repeatable, or a comma list).")
StrictOpt = option(bool, "--strict", help="Refuse peak (and --exclude) intervals that run past a chromosome's end, naming the file and line (default: clip them to the chromosome and say how many).")
SeedOpt = option(int, "--seed", help="Random seed: the same seed, the same result.")

# --- simulate ----------------------------------------------------------------------------------
NMarkersOpt = option(int, "--n-markers", help="Number of markers M (919 in the paper).")
NChromsOpt = option(int, "--n-chroms", help="Number of chromosomes (with --genome: the first N).")
ChromLenOpt = option(int, "--chrom-len", help="Chromosome length (with --genome: crop to it).")
SiteDensityOpt = option(float, "--site-density", help="Planted sites per Mbp of each motif.")
BroadDensityOpt = option(float, "--broad-density", help="Planted sites per Mbp of the motifs histone marks follow (default: --site-density).")
DistalMinOpt = option(int, "--distal-min", help="Distal rule: nearest partner site distance, bp (centre to centre).")
DistalMaxOpt = option(int, "--distal-max", help="Distal rule: farthest partner site distance, bp; at a high --site-density a narrow range keeps chance partners rare.")
MotifsOpt = option(str, "--motifs", help="JASPAR (.jaspar, .pfm) or MEME file: plant sites sampled from these PWMs instead of the consensus library (examples/jaspar_motifs.py writes one).")

# --- training ----------------------------------------------------------------------------------
ModelOpt = option(str, "--model", help="Model name (see `regtracks models`).")
ModelsOpt = option(str, "--models", help="'all' or a comma list of model names.")
GridOpt = option(str, "--grid", help="none, small or paper (Tables 3/4): keep the best on validation.")
EpochsOpt = option(int, "--epochs", help="Passes over the training windows (0: no limit; the run then ends at --max-steps, or earlier by --patience).")
MaxStepsOpt = option(int, "--max-steps", help="Stop after this many steps (0: no limit).")
LrOpt = option(float, "--lr", help="Adam learning rate.")
WarmupOpt = option(int, "--warmup", help="Steps of linear learning-rate warm-up (0: none).")
LrDecayOpt = option(str, "--lr-decay", help="cosine (the learning rate falls to lr/100 at the last step) or none (constant).")
ShiftOpt = option(int | None, "--shift", help="Shift augmentation (bp; default: half a window, a quarter bin for --task sequence; 0: off).")
MarkerWeightingOpt = option(str, "--marker-weighting", help="Loss weight per marker: sqrt (1/sqrt(positive rate)), inverse or none.")
TensorBoardOpt = option(Path | None, "--tensorboard", help="Also log to TensorBoard in this folder (pip install tensorboard).")
PosWeightOpt = option(float, "--pos-weight", help="Weight of positive labels in the loss.")
RcOpt = option(bool, "--rc/--no-rc", help="Reverse-complement augmentation.")
PatienceOpt = option(int, "--patience", help="Stop after N validations without improvement (0: never).")
EvalEveryOpt = option(int, "--eval-every", help="Validate every N steps (0: each epoch).")
MaxEvalBatchesOpt = option(int, "--max-eval-batches", help="Validate on at most N batches (0: all).")
WorkersOpt = option(int, "--workers", help="DataLoader worker processes.")
CompileOpt = option(bool, "--compile/--no-compile", help="torch.compile the model for training (the first step waits for the compiler; needs a C compiler on CPU, Triton on CUDA).")
OverwriteOpt = option(bool, "--overwrite", help="Start again in a folder that holds a run.")
EvalSplitOpt = option(str, "--split", help="Split to score: valid or test.")

# --- running a model -------------------------------------------------------------------------
DeviceOpt = option(str, "--device", help="auto, cpu or cuda.")
ThreadsOpt = option(int, "--threads", help="CPU cores to use, shared by torch, loader workers and bigWig writers (0: OMP_NUM_THREADS if set, else every core this process may use).")
PrecisionOpt = option(str, "--precision", help="auto (bf16 on CUDA), fp32 or bf16.")
CheckpointOpt = option(str, "--checkpoint", help="best or last (the run folder's best.pt or last.pt; best falls back to last.pt when the run never validated), or a checkpoint file.")
MarkerOpt = option(list[str], "--marker", help="Marker name(s): repeatable, or a comma list (default: all).")
CategoryOpt = option(str, "--category", help="Only markers of this category: TFBS, Histone, DNase.")
ScanWindowOpt = option(int, "--scan-window", help="Model input length while scanning (default: from the receptive field).")
BinSizeOpt = option(int, "--bin-size", help="Track resolution in bp (the mean per bin; 1: every base).")
ChromOpt = option(list[str], "--chrom", "-c", help="Chromosome(s) to predict: repeatable, or a comma list; or 'all'.")
RcAverageOpt = option(bool, "--rc-average", help="Average with the reverse-complement prediction.")
WritersOpt = option(int, "--writers", help="bigWig writer processes (0: in this process).")
BigWigEngineOpt = option(str, "--bigwig-engine", help="What writes the bigWigs: native (the default: regtracks' own writer, numpy + libdeflate, 4x less CPU than pyBigWig for 919 tracks at 128 bp, files of the same size), pybigwig (libBigWig, the fallback) or figwig (an optional package, pip install 'figwig\\[fast]').")
RegionOpt = option(str, "--region", "-r", help="chr1:1,000,001-1,100,000 (1-based, inclusive) or a chromosome.")
ReduceOpt = option(str, "--reduce", help="grad_x_input (gradient at the base present) or norm (paper Fig. 2).")
TargetOpt = option(str, "--target", help="Outputs back-propagated from: positives (the marker's labels, the paper's Fig. 2; the default when the run's peak files are there, else all), predicted (probability > 0.5) or all.")
SamplesOpt = option(int, "--samples", help="Output positions sampled (from the --split windows).")
PlotOpt = option(Path, "--plot", help="Also draw the curve into this PNG (needs matplotlib, the plot extra).")
VcfOpt = option(Path, "--vcf", help="VCF (plain or gzip); records whose REF does not match the genome are skipped (see --on-ref-mismatch).")
RadiusOpt = option(int, "--radius", help="Bases scored on each side of a variant.")
VariantFormatOpt = option(str, "--format", help="wide (one row per allele, <marker>.diff/.maxabs/.logodds columns), long (one row per allele and marker) or h5 (HDF5, a variants x markers dataset per statistic; needs h5py).")
VcfOutOpt = option(Path, "--vcf-out", help="Also write the VCF with the scores as INFO fields (RT_<marker>_<stat>): .vcf.gz, bgzip with a tabix index.")
RefMismatchOpt = option(str, "--on-ref-mismatch", help="skip (list the record in <out>.skipped.tsv) or error (stop at the first) when REF does not match the genome, the chromosome is unknown or REF runs past its end.")

# --- hubs --------------------------------------------------------------------------------------
NoHubOpt = option(bool, "--no-hub", help="Write tracks and manifest.json only.")
PeaksOpt = option(bool | None, "--peaks/--no-peaks", help="Show each marker's observed peaks (the labels, bigBed) beside the predictions (hub build: default as last built, else yes).")
GenomeNameOpt = option(str, "--genome-name", help="A UCSC-hosted assembly (hg19, hg38, mm10, ...): plain hub, no 2bit, instead of an assembly hub.")
OneFileOpt = option(bool, "--one-file/--multi-file", help="One hub.txt with 'useOneFile on', or hub.txt + genomes.txt + trackDb.txt (default: as last built, else multi-file).")
IgvJsOpt = option(Path, "--igv-js", help="Local igv.min.js (igv.js 3.x) to embed for offline use.")
EmailOpt = option(str, "--email", help="Contact e-mail of hub.txt (UCSC needs one).")
PortOpt = option(int, "--port", "-p", help="Port; 0 picks a free one.")
HostOpt = option(str, "--host", help="Address to listen on; 0.0.0.0 = every interface.")
VerboseOpt = option(bool, "--verbose", "-v", help="Log every request.")
TimeoutOpt = option(float, "--timeout", help="Close a connection silent for this many seconds.")
MaxConnectionsOpt = option(int, "--max-connections", help="Connections served at once (a thread each); more wait their turn, up to 128 or as many again, and any beyond are answered 503.")

# --- output ------------------------------------------------------------------------------------
JsonOpt = option(bool, "--json", help="Print JSON to stdout instead of tables.")
# fmt: on


# --- bundles: options that several commands take together ---------------------------------------
@dataclass(frozen=True)
class DataOptions(Bundle):
    """A task's data: genome, markers, and how windows and splits are built (``train``,
    ``benchmark``, ``data summary``)."""

    genome: GenomeOpt
    markers: MarkersOpt
    task: TaskOpt = DEFAULT_TRAIN.task
    window_len: WindowLenOpt = DEFAULT_DATA.window_len
    max_n: MaxNOpt = DEFAULT_DATA.max_n
    exclude: ExcludeOpt = None
    split: SplitOpt = DEFAULT_DATA.split
    valid_chroms: ValidChromsOpt = None
    test_chroms: TestChromsOpt = None
    chroms: ChromsOpt = None
    strict: StrictOpt = False

    def config(self, seed: int) -> DataConfig:
        """The DataConfig (validated by the library when it is used)."""
        return replace(
            DEFAULT_DATA,
            window_len=self.window_len,
            max_n=self.max_n,
            split=self.split,
            valid_chroms=names(self.valid_chroms),
            test_chroms=names(self.test_chroms),
            chroms=names(self.chroms),
            seed=seed,
        )


@dataclass(frozen=True)
class RunDataOptions(DataOptions):
    """The data options of ``train``: there ``--resume RUN`` reads the genome and markers of
    the run, so they are needed only to start one."""

    genome: Annotated[
        Path, genome_option("Genome FASTA (plain or bgzip); needed unless --resume RUN.")
    ] = None
    markers: Annotated[
        Path,
        markers_option("Marker manifest TSV (name, category, path); needed unless --resume RUN."),
    ] = None


@dataclass(frozen=True)
class TrainOptions(Bundle):
    """How each model is trained (``train``, ``benchmark``); the names of TrainConfig's fields."""

    epochs: EpochsOpt = DEFAULT_TRAIN.epochs
    max_steps: MaxStepsOpt = DEFAULT_TRAIN.max_steps
    batch_size: Annotated[int, batch_size_option("Windows per optimizer step and process.")] = (
        DEFAULT_TRAIN.batch_size
    )
    lr: LrOpt = DEFAULT_TRAIN.lr
    warmup: WarmupOpt = DEFAULT_TRAIN.warmup
    lr_decay: LrDecayOpt = DEFAULT_TRAIN.lr_decay
    shift: ShiftOpt = DEFAULT_TRAIN.shift
    marker_weighting: MarkerWeightingOpt = DEFAULT_TRAIN.marker_weighting
    patience: PatienceOpt = DEFAULT_TRAIN.patience
    eval_every: EvalEveryOpt = DEFAULT_TRAIN.eval_every
    max_eval_batches: MaxEvalBatchesOpt = DEFAULT_TRAIN.max_eval_batches
    device: DeviceOpt = DEFAULT_TRAIN.device
    precision: PrecisionOpt = DEFAULT_TRAIN.precision
    workers: WorkersOpt = DEFAULT_TRAIN.workers
    compile: CompileOpt = DEFAULT_TRAIN.compile
    threads: ThreadsOpt = DEFAULT_RUNTIME.threads

    def config(self, **more) -> TrainConfig:
        """The TrainConfig of these options and ``more`` (other TrainConfig fields)."""
        fields = {k: v for k, v in asdict(self).items() if k != "threads"}
        return replace(DEFAULT_TRAIN, **fields, **more)

    def use_threads(self):
        """Share the cores between torch and the loader workers; set torch's threads."""
        return use_threads(self.threads, self.device, workers=self.workers, writers=0)


@dataclass(frozen=True)
class ModelOptions(Bundle):
    """A trained model: the run (the command's argument), which checkpoint of it, on which
    genome and device (``evaluate``, ``predict``, ``saliency``, ``variants``)."""

    run: RunArg
    genome: RecordedGenomeOpt = None
    checkpoint: CheckpointOpt = DEFAULT_RUNTIME.checkpoint
    device: DeviceOpt = DEFAULT_RUNTIME.device
    threads: ThreadsOpt = DEFAULT_RUNTIME.threads

    def kwargs(self) -> dict:
        """The library's keywords: ``genome``, ``which``, ``device``."""
        return {"genome": self.genome, "which": self.checkpoint, "device": self.device}

    def use_threads(self, *, workers: int | None = 0, writers: int | None = 0):
        """Share the cores between torch, loader ``workers`` and bigWig ``writers`` (None: the
        plan decides); set torch's threads."""
        return use_threads(self.threads, self.device, workers=workers, writers=writers)


@dataclass(frozen=True)
class MarkerOptions(Bundle):
    """Which markers of a run (``predict``, ``saliency``, ``variants``)."""

    marker: MarkerOpt = None
    category: CategoryOpt = None

    def kwargs(self) -> dict:
        """The library's keywords: ``markers`` (a list or None: all) and ``category``."""
        return {"markers": list(names(self.marker) or []) or None, "category": self.category}


@dataclass(frozen=True)
class ScanOptions(Bundle):
    """How a model runs along a chromosome (``predict``); the library's keywords."""

    bin_size: BinSizeOpt = DEFAULT_SCAN.bin_size
    scan_window: ScanWindowOpt = None
    batch_size: Annotated[int, batch_size_option("Windows per forward pass.")] = (
        DEFAULT_SCAN.batch_size
    )
    precision: PrecisionOpt = DEFAULT_SCAN.precision

    def kwargs(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SaliencyScanOptions(ScanOptions):
    """The same for ``saliency``, with its defaults (every base, fp32 gradients)."""

    bin_size: BinSizeOpt = DEFAULT_SALIENCY.bin_size
    batch_size: Annotated[int, batch_size_option("Windows per forward and backward pass.")] = (
        DEFAULT_SALIENCY.batch_size
    )
    precision: PrecisionOpt = DEFAULT_SALIENCY.precision
