"""Variant effect scores: how a sequence change moves each marker's predictions around it.

``score_variants(RUN, VCF, OUT)`` reads a VCF (plain or gzip), builds for every alternative
allele the reference and the alternative sequence around it, runs the run's dense model on both
and writes, per allele and marker,

* ``ref_score`` / ``alt_score``: the marker's mean predicted probability over the variant's
  bases and ``radius`` bp on each side, within the chromosome (each allele in its own
  coordinates, so an insertion's own bases count on the alternative side);
* ``diff = alt_score - ref_score``;
* ``maxabs`` (``max_abs_diff`` in the long table): the largest change of the probability at one
  position, over the positions the two alleles share (the flanks, and the variant's bases when
  REF and ALT have one length);
* ``logodds``: the log-odds ratio of the mean probabilities,
  ``log(alt / (1 - alt)) - log(ref / (1 - ref))``, both clipped to ``[1e-6, 1 - 1e-6]``.

Outputs (``fmt``)
-----------------
``wide`` (the command line's default): a TSV with one row per allele, ``chrom pos id ref alt``
(``pos`` 1-based, as in the VCF) then ``<marker>.diff <marker>.maxabs <marker>.logodds`` for
each marker. ``long`` (the library's default, the table of earlier versions): one row per
allele and marker, ``chrom pos id ref alt marker category ref_score alt_score diff
max_abs_diff``. ``h5`` (needs h5py): like Basenji's ``sad.h5``, one ``(variants, markers)``
float32 dataset per statistic (``diff``, ``maxabs``, ``logodds``), the variant columns
``chrom pos id ref alt line`` (``line``: the VCF line) and the marker table ``marker
category``; the file's attributes hold the radius, the checkpoint and the statistics' meaning.

``vcf_out`` (``--vcf-out annotated.vcf.gz``): the input VCF, bgzip-compressed with a tabix
index (``.tbi``), every record kept, with one INFO field per marker and statistic,
``RT_<marker>_<stat>`` (Number=A: one value per ALT, ``.`` for an allele not scored; the
header line names the marker, its category and the statistic), and ``RT_SKIP`` naming why an
allele or record was not scored. The VCF must be sorted (tabix needs it).

Every output is written through a temporary name and renamed when complete
(:func:`regtracks._util.atomic_path`): a failed run leaves the previous files as they were.
The annotated VCF and its index are renamed last, one after the other, the old index removed
first (never a new VCF with an old index). Rows are written as they are scored, so memory does
not grow with the VCF (shared windows come in a few sizes, and the memory a cluster freed goes
back to the system).

Skipped records
---------------
Records that cannot be scored are listed in ``<out>.skipped.tsv`` (``line chrom pos id ref alt
reason detail``, ``line`` the VCF line) and counted in :attr:`VariantResult.skip_reasons`:
``ref_mismatch`` (REF differs from the genome: the usual sign of a VCF from another assembly),
``unknown_chrom``, ``past_chrom_end`` (REF runs past the chromosome's end), ``ref_not_dna``
(REF holds letters other than A, C, G, T, N) and, one row per allele, ``symbolic_allele``
(``<DEL>``, breakends, ``*``, ``.``). ``on_ref_mismatch="error"`` makes the first four an error
naming the VCF line instead (the behaviour of earlier versions). A record with several ALT
alleles gives one row per ALT. Nothing scored at all is an error.

Windows
-------
Every score equals that of the whole chromosome with the allele in place (N beyond the
chromosome ends): the positions scored are predicted from a window holding them plus a margin
covering the model's receptive field on each side, starting at a multiple of the model's
stride; variants near a chromosome end are scored, with N beyond it. The margin is the
scanner's (:meth:`~regtracks.inference.session.InferenceSession.margin`); for a model without a
finite receptive field (the Bi-LSTM) it is a quarter of the training window and the scores are
approximate.

Shared windows (``share_windows=True``, the default for models with a finite receptive
field): consecutive alleles of one chromosome whose scored positions span at most
``cluster_span`` bp form a cluster, and the cluster's reference sequence runs through the model
once. For the strided CNNs (``cnn3``, ``cnn7``, ``dilated``) the alternative allele of a
substitution (REF and ALT of one length) is then computed from that reference pass: layer by
layer, only the cells the change reaches and the scored positions need are recomputed, the
cluster's alleles in batches of at least 32. Other alleles (indels) and other models run the
alternative allele in its own window. The scores equal those of one window per allele
(``share_windows=False``) to float rounding. A sorted VCF clusters best; an unsorted one is
scored correctly, only more slowly.

torchrun
--------
Under torchrun (``torchrun --nproc-per-node N -m regtracks variants ...``) every process reads
the whole VCF (cheap next to the model) and forms the clusters one process forms. It scores
the clusters that start in its contiguous block of records (a record split between two
clusters stays with one process) and writes their rows, skipped rows and annotated records
into temporary parts beside ``out``; process 0 joins the parts in rank order into the
outputs. The files are those of one process byte for byte (the HDF5 datasets equal).
"""

from __future__ import annotations

import bisect
import contextlib
import ctypes
import functools
import os
import re
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from regtracks._util import RegtracksError, atomic_path, check_output_file, open_text
from regtracks.config import DEFAULT_RUNTIME, DEFAULT_VARIANTS, VariantDefaults
from regtracks.data.datasets import one_hot_torch
from regtracks.data.genome import encode
from regtracks.inference.session import open_session
from regtracks.runtime import job as torchrun_job

__all__ = [
    "Variant",
    "Skipped",
    "read_vcf",
    "iter_vcf",
    "variant_effects",
    "score_variants",
    "VariantResult",
    "COLUMNS",
    "STATS",
    "FORMATS",
    "SKIP_REASONS",
]

_BASES = re.compile(r"[ACGTN]+")
COLUMNS = [
    "chrom", "pos", "id", "ref", "alt", "marker", "category",
    "ref_score", "alt_score", "diff", "max_abs_diff",
]  # fmt: skip
"""Columns of the long table."""
VARIANT_COLUMNS = ["chrom", "pos", "id", "ref", "alt"]
STATS = ("diff", "maxabs", "logodds")
"""The statistics of the wide table, the HDF5 datasets and the VCF INFO fields, per marker."""
STAT_HELP = {
    "diff": "alt - ref mean predicted probability",
    "maxabs": "largest |alt - ref| probability change at one shared position",
    "logodds": "log-odds ratio of the mean probabilities, log(alt/(1-alt)) - log(ref/(1-ref))",
}
FORMATS = ("wide", "long", "h5")
MISMATCH_MODES = ("skip", "error")
SKIP_REASONS = {
    "ref_mismatch": "REF mismatch",
    "unknown_chrom": "unknown chromosome",
    "past_chrom_end": "REF past the chromosome end",
    "ref_not_dna": "REF not DNA",
    "symbolic_allele": "symbolic allele",
}
"""Why a record (or, for ``symbolic_allele``, one ALT allele) was not scored, in words."""
SKIPPED_COLUMNS = ["line", "chrom", "pos", "id", "ref", "alt", "reason", "detail"]
LOGODDS_EPS = 1e-6
CLUSTER_SPAN = 64_000
"""Default ``cluster_span`` (bp of scored positions per shared window) when the strided CNN's
alternative alleles are recomputed from the reference pass."""
GENERIC_CLUSTER_SPAN = 8_000
"""Default ``cluster_span`` for other models (their reference pass returns every position)."""
CLUSTER_ALLELES = 512
"""Most alleles in one shared window (bounds the memory of a cluster's results)."""
WINDOW_QUANTUM = 512
"""Shared windows are a multiple of this many strides long (5,120 bp for stride 10)."""
PENDING_RECORDS = 4096
"""Most records read ahead of the last one written (a run of skipped records closes the
cluster before it)."""


@dataclass(frozen=True)
class Variant:
    """One alternative allele: ``ref`` at 0-based ``start`` replaced by ``alt``."""

    chrom: str
    start: int
    id: str
    ref: str
    alt: str
    line: int


@dataclass(frozen=True)
class Skipped:
    """A record (or one ALT allele) not scored: VCF ``line``, its columns, ``reason`` (a key of
    :data:`SKIP_REASONS`) and ``detail`` (one line saying what is wrong)."""

    line: int
    chrom: str
    pos: str
    id: str
    ref: str
    alt: str
    reason: str
    detail: str


@dataclass
class VariantResult:
    """What :func:`score_variants` wrote.

    Attributes
    ----------
    out, skipped_path, vcf_out, index : Path
        The scores, the skipped list, the annotated VCF and its tabix index (None: not asked).
    fmt : str
        ``wide``, ``long`` or ``h5``.
    records : int
        VCF records read.
    variants : int
        Alleles scored.
    skipped : int
        Rows of the skipped list (records, or alleles for ``symbolic_allele``).
    skip_reasons : dict
        Those rows counted per reason (keys of :data:`SKIP_REASONS`).
    rows : int
        Rows of ``out`` (TSV) or variants (h5).
    seconds : float
    shared : bool
        Whether windows were shared (False: one window per allele).
    sorted : bool
        Whether the VCF was sorted by chromosome and position.
    """

    out: Path
    fmt: str = "long"
    skipped_path: Path | None = None
    vcf_out: Path | None = None
    index: Path | None = None
    records: int = 0
    variants: int = 0
    skipped: int = 0
    skip_reasons: dict[str, int] = field(default_factory=dict)
    rows: int = 0
    seconds: float = 0.0
    shared: bool = True
    sorted: bool = True

    @property
    def variants_per_s(self) -> float:
        """Alleles scored per second (the whole call)."""
        return self.variants / self.seconds if self.seconds > 0 else 0.0

    def skip_summary(self) -> str:
        """``"3 REF mismatch, 1 symbolic allele"`` ("" when nothing was skipped)."""
        return ", ".join(
            f"{n:,} {SKIP_REASONS.get(k, k)}" for k, n in sorted(self.skip_reasons.items())
        )


# --- reading ----------------------------------------------------------------------------------
@dataclass
class _Record:
    """One VCF data line: its number, columns, and per ALT allele a Variant or None (skipped)."""

    line: int
    cols: list[str]
    alleles: list[Variant | None]
    skipped: list[Skipped]
    scores: dict[int, tuple] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return len(self.scores) == sum(a is not None for a in self.alleles)


def _records(path: Path, genome, on_ref_mismatch: str) -> Iterator[_Record]:
    """Parse ``path``'s data lines against ``genome``, one :class:`_Record` each."""
    if on_ref_mismatch not in MISMATCH_MODES:
        raise RegtracksError(f"--on-ref-mismatch must be skip or error, got {on_ref_mismatch!r}")
    strict = on_ref_mismatch == "error"
    try:
        with open_text(path) as fh:
            for n, line in enumerate(fh, 1):
                if line.startswith("#") or not line.strip():
                    continue
                cols = line.rstrip("\r\n").split("\t")
                where = f"{path.name}:{n}"
                if len(cols) < 5:
                    raise RegtracksError(
                        f"{where}: expected at least 5 tab-separated columns "
                        f"(CHROM POS ID REF ALT), got {len(cols)}"
                    )
                chrom_in, pos, vid, ref_in, alts = cols[:5]
                if not pos.isdigit() or int(pos) < 1:
                    raise RegtracksError(f"{where}: POS {pos!r} is not a positive integer")
                alt_list = alts.split(",")

                def skip(reason, detail, cols=cols, n=n, alts=alts, alt_list=alt_list):
                    if strict and reason != "symbolic_allele":
                        raise RegtracksError(f"{path.name}:{n}: {detail}")
                    s = Skipped(n, cols[0], cols[1], cols[2], cols[3], alts, reason, detail)
                    return _Record(n, cols, [None] * len(alt_list), [s])

                chrom = genome.resolve(chrom_in)
                if chrom is None:
                    yield skip("unknown_chrom", f"chromosome {chrom_in!r} is not in "
                               f"{genome.path.name}")  # fmt: skip
                    continue
                start = int(pos) - 1
                ref = ref_in.upper()
                if not _BASES.fullmatch(ref):
                    yield skip("ref_not_dna", f"REF {ref_in!r} is not a DNA sequence")
                    continue
                if start + len(ref) > genome.sizes[chrom]:
                    yield skip("past_chrom_end", f"{chrom}:{pos} {ref} runs past the chromosome "
                               f"end ({genome.sizes[chrom]:,} bp)")  # fmt: skip
                    continue
                have = genome.fetch_text(chrom, start, start + len(ref)).upper()
                if have != ref:
                    yield skip("ref_mismatch", f"REF {ref} at {chrom}:{pos} does not match the "
                               f"genome ({have}); is the VCF from another assembly?")  # fmt: skip
                    continue
                rec = _Record(n, cols, [], [])
                for alt_in in alt_list:
                    alt = alt_in.upper()
                    if not _BASES.fullmatch(alt):  # <DEL>, breakends, '*', '.'
                        rec.alleles.append(None)
                        rec.skipped.append(
                            Skipped(
                                n,
                                cols[0],
                                pos,
                                vid,
                                ref_in,
                                alt_in,
                                "symbolic_allele",
                                f"ALT {alt_in!r} is not a DNA sequence",
                            )  # fmt: skip
                        )
                    else:
                        rec.alleles.append(Variant(chrom, start, vid, ref, alt, n))
                yield rec
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise RegtracksError(f"{path}: cannot read ({e})") from None


def _check_vcf(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise RegtracksError(f"{path}: VCF not found")
    return path


def iter_vcf(
    path: str | os.PathLike, genome, *, on_ref_mismatch: str = "skip"
) -> Iterator[Variant | Skipped]:
    """The alleles of ``path`` (:class:`Variant`) and what was skipped (:class:`Skipped`), in
    file order, read as they are used (constant memory).

    Raises
    ------
    RegtracksError
        Missing file or a malformed line (naming the file and line); with
        ``on_ref_mismatch="error"`` also a REF that does not match the genome, an unknown
        chromosome, a REF past the chromosome end or one that is not DNA.
    """
    for rec in _records(_check_vcf(path), genome, on_ref_mismatch):
        yield from (a for a in rec.alleles if a is not None)
        yield from rec.skipped


def read_vcf(
    path: str | os.PathLike, genome, *, on_ref_mismatch: str = "error"
) -> tuple[list[Variant], list[Skipped]]:
    """Every allele of ``path`` and the skipped list (see :func:`iter_vcf`), in lists.

    The default ``on_ref_mismatch="error"`` is that of earlier versions (a REF mismatch is an
    error); symbolic alleles are always skipped.
    """
    got, skipped = [], []
    for item in iter_vcf(path, genome, on_ref_mismatch=on_ref_mismatch):
        (got if isinstance(item, Variant) else skipped).append(item)
    return got, skipped


@dataclass
class _VcfShape:
    """What one cheap pass over a VCF tells: header lines, records, order, chromosome names."""

    meta: list[str]
    header: str | None
    records: int
    sorted: bool
    unsorted_at: str
    chroms: list[str]


def _scan_vcf(path: Path) -> _VcfShape:
    meta: list[str] = []
    header = None
    records = 0
    chroms: list[str] = []
    seen: set[str] = set()
    last = (None, -1)
    ok, where = True, ""
    try:
        with open_text(path) as fh:
            for n, line in enumerate(fh, 1):
                if line.startswith("##"):
                    if records == 0:
                        meta.append(line.rstrip("\r\n"))
                    continue
                if line.startswith("#"):
                    header = header or line.rstrip("\r\n")
                    continue
                if not line.strip():
                    continue
                records += 1
                cols = line.split("\t", 2)
                chrom = cols[0]
                pos = int(cols[1]) if len(cols) > 1 and cols[1].isdigit() else 0
                if chrom != last[0]:
                    if chrom in seen and ok:
                        ok, where = False, f"{path.name}:{n}: {chrom} again after {last[0]}"
                    if chrom not in seen:
                        seen.add(chrom)
                        chroms.append(chrom)
                elif pos < last[1] and ok:
                    ok = False
                    where = f"{path.name}:{n}: {chrom}:{pos} after {chrom}:{last[1]}"
                last = (chrom, pos)
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise RegtracksError(f"{path}: cannot read ({e})") from None
    return _VcfShape(meta, header, records, ok, where, chroms)


# --- windows and statistics --------------------------------------------------------------------
def _scored(genome, v: Variant, radius: int) -> tuple[int, int, int]:
    """(first scored position, left flank, right flank): the variant's bases and up to
    ``radius`` bases on each side, inside the chromosome."""
    size = genome.sizes[v.chrom]
    left_r = min(radius, v.start)
    right_r = min(radius, size - v.start - len(v.ref))
    return v.start - left_r, left_r, right_r


def _window_codes(genome, v: Variant, radius: int, margin: int, stride: int):
    """Codes of the ref and alt windows, the first scored index and the flank lengths."""
    lo, left_r, right_r = _scored(genome, v, radius)
    w0 = ((lo - margin) // stride) * stride  # window start, a multiple of the stride
    end = v.start + len(v.ref) + right_r + margin
    ref = genome.fetch(v.chrom, w0, end)
    k0, k1 = v.start - w0, v.start - w0 + len(v.ref)
    alt = np.concatenate([ref[:k0], encode(v.alt), ref[k1:]])
    return ref, alt, lo - w0, left_r, right_r


def _stats(v: Variant, pr: np.ndarray, pa: np.ndarray, left_r: int, right_r: int):
    """(ref mean, alt mean, max |change| over shared positions) per marker, float64."""
    n_ref, n_alt = pr.shape[1], pa.shape[1]
    if n_ref == n_alt:
        shared = np.abs(pa - pr)
    else:  # flanks only: left aligned at the start, right aligned at the end
        shared = np.concatenate(
            [np.abs(pa[:, :left_r] - pr[:, :left_r]),
             np.abs(pa[:, n_alt - right_r :] - pr[:, n_ref - right_r :])],
            axis=1,
        )  # fmt: skip
    top = shared.max(axis=1).astype(np.float64) if shared.shape[1] else np.zeros(pr.shape[0])
    return pr.mean(axis=1, dtype=np.float64), pa.mean(axis=1, dtype=np.float64), top


def log_odds(ref: np.ndarray, alt: np.ndarray) -> np.ndarray:
    """``log(alt / (1 - alt)) - log(ref / (1 - ref))``, both clipped to ``[1e-6, 1 - 1e-6]``."""
    r = np.clip(ref, LOGODDS_EPS, 1 - LOGODDS_EPS)
    a = np.clip(alt, LOGODDS_EPS, 1 - LOGODDS_EPS)
    return np.log(a / (1 - a)) - np.log(r / (1 - r))


def _slice(model, x: torch.Tensor, start: int, end: int) -> torch.Tensor:
    """``model(x)[..., start:end]``, through ``forward_slice`` where the model has it."""
    fn = getattr(model, "forward_slice", None)
    return fn(x, start, end) if fn is not None else model(x)[..., start:end]


class _Runner:
    """The model, the selected outputs, the device and precision: logits -> probabilities."""

    def __init__(self, model, marker_idx, device, amp):
        self.model = model
        self.device = torch.device(device)
        self.amp = amp
        self.idx = torch.tensor(list(marker_idx), dtype=torch.long, device=self.device)
        self.n = len(marker_idx)

    def autocast(self):
        dtype = self.amp or torch.float32
        return torch.autocast(self.device.type, dtype=dtype, enabled=self.amp is not None)

    def probs_t(self, logits: torch.Tensor) -> torch.Tensor:
        """``(B, M_all, L)`` logits -> ``(B, T, L)`` float32 probabilities of the selection, on
        the device."""
        return torch.sigmoid(logits.index_select(1, self.idx).float())

    def probs(self, logits: torch.Tensor) -> np.ndarray:
        """:meth:`probs_t` as a numpy array."""
        return self.probs_t(logits).cpu().numpy()

    def one_hot(self, codes: np.ndarray) -> torch.Tensor:
        return one_hot_torch(torch.from_numpy(np.ascontiguousarray(codes)).to(self.device))


def _per_allele(run: _Runner, genome, chunk, radius, margin, stride):
    """One reference and one alternative window per allele (one batch): the old path."""
    wins = [_window_codes(genome, v, radius, margin, stride) for v in chunk]
    length = max(max(r.size, a.size) for r, a, *_ in wins)
    codes = np.zeros((2 * len(chunk), length), dtype=np.uint8)  # N pads the right end
    for j, (r, a, *_) in enumerate(wins):
        codes[2 * j, : r.size] = r
        codes[2 * j + 1, : a.size] = a
    x = run.one_hot(codes)
    # only the scored positions go through the per-position head (forward_slice)
    s0 = min(off for *_, off, _, _ in wins)
    s1 = max(off + lr + max(len(v.ref), len(v.alt)) + rr
             for v, (*_, off, lr, rr) in zip(chunk, wins, strict=True))  # fmt: skip
    with run.autocast():
        p = run.probs(_slice(run.model, x, s0, s1))
    for j, (v, (_, _, off, left_r, right_r)) in enumerate(zip(chunk, wins, strict=True)):
        n_ref = left_r + len(v.ref) + right_r
        n_alt = left_r + len(v.alt) + right_r
        pr = p[2 * j][:, off - s0 : off - s0 + n_ref]
        pa = p[2 * j + 1][:, off - s0 : off - s0 + n_alt]
        yield v, *_stats(v, pr, pa, left_r, right_r)


def _alt_windows(run: _Runner, genome, items, radius, margin, stride) -> list[np.ndarray]:
    """The alternative allele's probabilities at its scored positions, each in its own window."""
    wins = [_window_codes(genome, v, radius, margin, stride) for v, *_ in items]
    length = max(a.size for _, a, *_ in wins)
    codes = np.zeros((len(items), length), dtype=np.uint8)
    for j, (_, a, *_) in enumerate(wins):
        codes[j, : a.size] = a
    off0 = min(w[2] for w in wins)
    s1 = max(
        off + lr + len(it[0].alt) + rr for it, (_, _, off, lr, rr) in zip(items, wins, strict=True)
    )
    with run.autocast():
        p = run.probs(_slice(run.model, run.one_hot(codes), off0, s1))
    out = []
    for j, (it, (_, _, off, lr, rr)) in enumerate(zip(items, wins, strict=True)):
        n_alt = lr + len(it[0].alt) + rr
        out.append(p[j][:, off - off0 : off - off0 + n_alt])
    return out


# --- the strided CNNs: alternative alleles recomputed from the reference pass ------------------
class _LocalPlan:
    """A :class:`~regtracks.models.dense.StridedCNN` taken apart into its stem, its trunk's
    length-preserving layers (each with the cells it reads on each side and its padding value)
    and its upsampling head, so that an allele can be recomputed on the few cells it changes.

    ``_LocalPlan.of(model)`` is None for any other model (or a subclass that changes the
    forward pass): those run the alternative allele in its own window.
    """

    def __init__(self, model, stem_kind, stem_pad, steps):
        self.model = model
        self.s = int(model.stride)
        self.stem_kind = stem_kind
        self.stem_pad = stem_pad  # bases read left and right of a cell's own bases
        self.steps = steps  # [(kind, module, (left, right), fill)]

    @classmethod
    def of(cls, model) -> _LocalPlan | None:
        try:
            from regtracks.models.dense import MotifStem, Residual, SamePool1d, StridedCNN
            from regtracks.models.layers import ConvBlock, PositionHead, SameConv1d, Upsample
        except ImportError:  # pragma: no cover
            return None
        if not isinstance(model, StridedCNN):
            return None
        kind = type(model)
        if kind.forward is not StridedCNN.forward or kind.forward_slice is not (
            StridedCNN.forward_slice
        ):
            return None
        if not isinstance(model.up, Upsample) or not isinstance(model.head, PositionHead):
            return None
        s = int(model.stride)
        down = model.down

        def conv_block(m):  # a ConvBlock led by a SameConv1d, the rest pointwise
            return (
                isinstance(m, ConvBlock)
                and isinstance(m[0], SameConv1d)
                and all(isinstance(x, _POINTWISE) for x in list(m)[1:])
            )

        if isinstance(down, MotifStem) and conv_block(down.conv):
            mp = down.pool
            if not (_pair(mp.kernel_size) == s and _pair(mp.stride) == s and not _pair(mp.padding)):
                return None
            stem_kind, stem_pad = "motif", tuple(down.conv[0].pad)
        elif isinstance(down, ConvBlock) and isinstance(down[0], torch.nn.Conv1d):
            c = down[0]
            if not (c.kernel_size == (s,) and c.stride == (s,) and c.padding == (0,)
                    and c.dilation == (1,)):  # fmt: skip
                return None
            if not all(isinstance(x, _POINTWISE) for x in list(down)[1:]):
                return None
            stem_kind, stem_pad = "strided", (0, 0)
        else:
            return None
        steps = []
        for m in model.trunk:
            if isinstance(m, SamePool1d):
                steps.append(("pool", m, tuple(m.pad), float("-inf")))
            elif conv_block(m):
                steps.append(("conv", m, tuple(m[0].pad), 0.0))
            elif isinstance(m, Residual) and conv_block(m.block):
                proj = m.proj
                if not isinstance(proj, torch.nn.Identity) and not (
                    isinstance(proj, torch.nn.Conv1d) and proj.kernel_size == (1,)
                ):
                    return None
                steps.append(("residual", m, tuple(m.block[0].pad), 0.0))
            else:
                return None
        return cls(model, stem_kind, stem_pad, steps)

    # the layers applied to inputs that already hold their context ('valid' convolutions)
    def _stem_valid(self, x: torch.Tensor) -> torch.Tensor:
        down = self.model.down
        if self.stem_kind == "strided":
            return down(x)
        block = down.conv
        h = block[0].conv(x)
        for m in list(block)[1:]:
            h = m(h)
        return down.drop(down.pool(h))

    @staticmethod
    def _step_valid(kind, m, pad, x: torch.Tensor) -> torch.Tensor:
        if kind == "pool":
            return F.max_pool1d(x, m.width, stride=1)
        block = m if kind == "conv" else m.block
        h = block[0].conv(x)
        for sub in list(block)[1:]:
            h = sub(h)
        if kind == "residual":
            left, right = pad
            h = h + m.proj(x[..., left : x.shape[-1] - right])
        return h

    def reference(self, x: torch.Tensor):
        """The trunk over ``x`` ``(1, 4, L)``, L a multiple of the stride: every layer's input
        padded with its own fill (the cache), and the trunk's output."""
        h = self.model.down(x)
        cache = []
        for _, m, pad, fill in self.steps:
            cache.append(F.pad(h, pad, value=fill))
            h = m(h)
        return cache, h

    def head(self, h: torch.Tensor, starts: torch.Tensor, width: int) -> torch.Tensor:
        """Logits of the cells ``[starts[b], starts[b] + width)`` of ``h`` ``(B or 1, C, n)``:
        ``(B, M, width * stride)``."""
        cells = _gather(h, starts, width)
        return self.model.head(self.model.up(cells, width * self.s))

    def alternative(self, codes_pad, cache, h_ref, alts, width: int) -> torch.Tensor:
        """The trunk's output ``(B, C, width)`` of each allele at its scored cells, from the
        reference pass (``cache``, ``h_ref``: :meth:`reference`).

        ``codes_pad``: the window's codes with ``stem_pad`` N on each side; ``alts``: per allele
        ``(k0, alt codes, first scored cell)`` in window coordinates (REF as long as ALT).

        Layer by layer, only the cells the change reaches (the influence: the changed cells
        widened by each layer's reach) and the outputs at the scored cells need (the need: the
        scored cells widened by the reach of every layer above) are computed, from the
        reference cache with the allele's cells patched in. Every computed cell inside the need
        is exact, so the scored cells are too.
        """
        s, (sl, sr) = self.s, self.stem_pad
        n_cells = h_ref.shape[-1]
        dev = h_ref.device
        sc0 = np.array([a[2] for a in alts])
        # needed regions, from the top down: N_last = scored cells; N_(j-1) = N_j widened
        need = [(sc0, sc0 + width)]
        for _, _, (left, right), _ in reversed(self.steps):
            a, b = need[0]
            need.insert(0, (np.maximum(a - left, 0), np.minimum(b + right, n_cells)))
        # the stem: cells whose bases [s c - sl, s c + s + sr) hold a changed base
        k0 = np.array([a[0] for a in alts])
        k1 = k0 + np.array([len(a[1]) for a in alts])
        u0 = np.maximum((k0 - sr) // s, 0)
        u1 = np.minimum(-(-(k1 + sl) // s), n_cells)
        a0, b0 = need[0]
        r0, r1 = np.maximum(u0, a0), np.minimum(u1, b0)
        w = max(int((r1 - r0).max()), 1)
        starts = np.clip(r0, 0, n_cells - w)
        span = s * w + sl + sr
        x = np.empty((len(alts), span), dtype=np.uint8)
        for j, (kk, alt, _) in enumerate(alts):
            b = s * int(starts[j])  # the slice's start in codes_pad (already shifted by sl)
            x[j] = codes_pad[b : b + span]
            lo, hi = kk + sl - b, kk + sl - b + len(alt)
            c0, c1 = max(lo, 0), min(hi, span)
            if c1 > c0:
                x[j, c0:c1] = alt[c0 - lo : c1 - lo]
        patch = self._stem_valid(_one_hot(x, dev, h_ref.dtype))
        pstart = starts
        infl = (u0, u1)
        for j, (kind, m, (left, right), _) in enumerate(self.steps):
            infl = (np.maximum(infl[0] - right, 0), np.minimum(infl[1] + left, n_cells))
            a, b = need[j + 1]
            r0, r1 = np.maximum(infl[0], a), np.minimum(infl[1], b)
            w = max(int((r1 - r0).max()), 1)
            starts = np.clip(r0, 0, n_cells - w)
            # inputs [start - left, start + w + right): the cache is padded by `left`
            xin = _patched(cache[j], starts, w + left + right, patch, pstart - starts + left)
            patch, pstart = self._step_valid(kind, m, (left, right), xin), starts
        # the trunk's output at the scored cells: the patch where it lies, the reference else
        return _patched(h_ref, sc0, width, patch, pstart - sc0)


_POINTWISE = (torch.nn.BatchNorm1d, torch.nn.ReLU, torch.nn.Dropout, torch.nn.Identity)
"""Modules that act on each position alone (batch norm in eval mode, ReLU, dropout)."""


def _pair(v):
    return v[0] if isinstance(v, tuple) else v


def _one_hot(codes: np.ndarray, device, dtype) -> torch.Tensor:
    return one_hot_torch(torch.from_numpy(codes).to(device)).to(dtype)


def _gather(h: torch.Tensor, starts, width: int) -> torch.Tensor:
    """``(B, C, width)``: the cells ``[starts[b], starts[b] + width)`` of ``h`` ``(1, C, n)``."""
    return torch.stack([h[0, :, a : a + width] for a in np.asarray(starts).tolist()])


def _patched(ref: torch.Tensor, starts, width: int, patch: torch.Tensor, offset) -> torch.Tensor:
    """``(B, C, width)`` from ``ref`` ``(1, C, n)`` at ``[starts[b], starts[b] + width)``, with
    ``patch`` ``(B, C, w)`` in place where it lies (its first cell at ``offset[b]`` of the
    result)."""
    x = _gather(ref, starts, width)
    dev = ref.device
    rel = (
        torch.arange(width, device=dev)[None, :]
        - torch.as_tensor(np.asarray(offset), device=dev)[:, None]
    )
    inside = (rel >= 0) & (rel < patch.shape[-1])
    idx = rel.clamp(0, patch.shape[-1] - 1)[:, None, :].expand(-1, patch.shape[1], -1)
    return torch.where(inside[:, None, :], torch.gather(patch.to(x.dtype), 2, idx), x)


# --- shared windows ------------------------------------------------------------------------------
def _clusters(variants: Iterable[Variant], genome, radius: int, span: int, most: int):
    """Consecutive alleles of one chromosome whose scored positions span at most ``span`` bp."""
    cur: list = []
    chrom, lo, hi = None, 0, 0
    for v in variants:
        if v is None:  # the caller asks for what it gave so far
            if cur:
                yield chrom, cur
                cur = []
            continue
        a, left_r, right_r = _scored(genome, v, radius)
        b = v.start + len(v.ref) + right_r
        if cur and (v.chrom != chrom or max(hi, b) - min(lo, a) > span or len(cur) >= most):
            yield chrom, cur
            cur = []
        if not cur:
            chrom, lo, hi = v.chrom, a, b
        lo, hi = min(lo, a), max(hi, b)
        cur.append((v, a, b, left_r, right_r))
    if cur:
        yield chrom, cur


def _masked_stats(pr: torch.Tensor, pa: torch.Tensor, offs, lens):
    """:func:`_stats` of substitutions, on the device: ``pr``, ``pa`` ``(B, T, L)``
    probabilities, allele ``b`` scored on ``[offs[b], offs[b] + lens[b])`` of both."""
    dev = pr.device
    pos = torch.arange(pr.shape[-1], device=dev)[None, :]
    o = torch.as_tensor(offs, device=dev)[:, None]
    n = torch.as_tensor(lens, device=dev)
    mask = ((pos >= o) & (pos < o + n[:, None]))[:, None, :]  # (B, 1, L)
    zero = torch.zeros((), device=dev, dtype=pr.dtype)
    nn_ = n.to(torch.float64)[:, None]
    ref = torch.where(mask, pr, zero).sum(-1, dtype=torch.float64) / nn_
    alt = torch.where(mask, pa, zero).sum(-1, dtype=torch.float64) / nn_
    top = torch.where(mask, (pa - pr).abs(), zero).amax(-1).double()
    return ref.cpu().numpy(), alt.cpu().numpy(), top.cpu().numpy()


def _shared(run: _Runner, plan: _LocalPlan | None, genome, chrom, items, *, margin, stride,
            batch_size, radius):  # fmt: skip
    """Score one cluster: one reference pass, the alternative alleles batched.

    Only the statistics (and, for the few alleles with an alternative window of their own,
    the reference probabilities at their scored positions) outlive a batch."""
    s = plan.s if plan is not None else stride
    lo = min(it[1] for it in items)
    hi = max(it[2] for it in items)
    w0 = ((lo - margin) // s) * s
    # window lengths from a few sizes: the same tensor shapes again and again, so that the
    # allocator and oneDNN's primitive cache reuse what they have (memory stays flat)
    q = s * WINDOW_QUANTUM
    length = -(-(hi + margin - w0) // q) * q
    codes = genome.fetch(chrom, w0, w0 + length)
    refs: dict[int, np.ndarray] = {}  # reference probabilities of alleles still to do
    done: list[tuple | None] = [None] * len(items)
    with run.autocast():
        x = run.one_hot(codes[None])
        if plan is None:
            s0, s1 = lo - w0, hi - w0
            p = run.probs(_slice(run.model, x, s0, s1))[0]
            for j, (_, a, b, *_) in enumerate(items):
                refs[j] = p[:, a - w0 - s0 : b - w0 - s0]
        else:
            cache, h = plan.reference(x)
            # each allele's scored cells (REF coordinates, inside the window); alleles whose
            # cells are as many go through the head together (SNVs: one or two such groups)
            cells = [((a - w0) // s, -(-(b - w0) // s)) for _, a, b, *_ in items]
            groups: dict[int, list[int]] = {}
            for j, (c0, c1) in enumerate(cells):
                groups.setdefault(c1 - c0, []).append(j)
            codes_pad = np.pad(codes, plan.stem_pad)
            step = max(batch_size, 32)  # a few cells per allele: large batches are cheap
            for width, members in groups.items():
                for j0 in range(0, len(members), step):
                    js = members[j0 : j0 + step]
                    pr = run.probs_t(plan.head(h, [cells[j][0] for j in js], width))
                    offs = [items[j][1] - w0 - cells[j][0] * s for j in js]
                    # substitutions (REF as long as ALT): recomputed from the reference pass
                    sub = [
                        k for k, j in enumerate(js) if len(items[j][0].ref) == len(items[j][0].alt)
                    ]
                    for k, j in enumerate(js):
                        if len(items[j][0].ref) != len(items[j][0].alt):  # its own window below
                            n = items[j][2] - items[j][1]
                            refs[j] = pr[k, :, offs[k] : offs[k] + n].cpu().numpy().copy()
                    if not sub:
                        continue
                    spec = [(items[js[k]][0].start - w0, encode(items[js[k]][0].alt),
                             cells[js[k]][0]) for k in sub]  # fmt: skip
                    hk = plan.alternative(codes_pad, cache, h, spec, width)
                    pa = run.probs_t(plan.model.head(plan.model.up(hk, width * s)))
                    got = _masked_stats(
                        pr[sub], pa, [offs[k] for k in sub],
                        [items[js[k]][2] - items[js[k]][1] for k in sub],
                    )  # fmt: skip
                    for i, k in enumerate(sub):
                        done[js[k]] = tuple(g[i] for g in got)
    rest = [j for j in range(len(items)) if done[j] is None]
    for j0 in range(0, len(rest), batch_size):
        js = rest[j0 : j0 + batch_size]
        alts = _alt_windows(run, genome, [items[j] for j in js], radius, margin, stride)
        for j, pa in zip(js, alts, strict=True):
            v, _, _, left_r, right_r = items[j]
            done[j] = _stats(v, refs.pop(j), pa, left_r, right_r)
    for j, it in enumerate(items):
        yield it[0], *done[j]


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim`` (None elsewhere)."""
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def _release_memory() -> None:
    """Hand the memory freed by a cluster back to the system.

    Each cluster allocates tensors of its own window's size; glibc keeps the freed ones in its
    heap, fragmented, so the resident memory of a long run would creep up (by a gigabyte over a
    few thousand variants, 919 markers) although nothing is held. ``malloc_trim`` after each
    cluster keeps it flat; it takes a millisecond or so.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@torch.inference_mode()
def variant_effects(
    model,
    genome,
    variants: Iterable[Variant],
    *,
    marker_idx: list[int],
    radius: int,
    margin: int,
    stride: int = 1,
    batch_size: int = DEFAULT_VARIANTS.batch_size,
    device: torch.device | str = "cpu",
    amp=None,
    share_windows: bool = True,
    cluster_span: int | None = None,
    keep: Callable[[list[Variant]], bool] | None = None,
) -> Iterator[tuple[Variant, np.ndarray, np.ndarray, np.ndarray]]:
    """``(variant, ref_score, alt_score, max_abs_diff)`` per allele, each ``(T,)`` float64, in
    the order of ``variants`` (any iterable: it is read a cluster at a time; a ``None`` in it
    asks for the scores of every allele before it now).

    ``share_windows``: one reference pass per cluster of nearby alleles (see the module
    docstring; ignored, one window per allele, for a model without a finite receptive field);
    ``cluster_span``: bp of scored positions one shared window may hold (default
    :data:`CLUSTER_SPAN` for the strided CNNs, :data:`GENERIC_CLUSTER_SPAN` for others).

    ``keep`` (torchrun: the clusters of this process), when given, is called with the alleles
    of each cluster (each batch, without shared windows) in order; the alleles of a cluster
    it refuses come out at once, unscored, as ``(variant, None, None, None)``. The clusters
    are the same either way, so a scored allele's scores are those of a call without ``keep``.
    """
    model.eval()
    run = _Runner(model, marker_idx, device, amp)
    share = share_windows and getattr(model, "receptive_field", None) is not None

    def unscored(alleles):
        return ((v, None, None, None) for v in alleles)

    if not share:
        chunk: list[Variant] = []
        for v in variants:
            if v is not None:
                chunk.append(v)
            if len(chunk) == batch_size or (v is None and chunk):
                if keep is None or keep(chunk):
                    yield from _per_allele(run, genome, chunk, radius, margin, stride)
                else:
                    yield from unscored(chunk)
                chunk = []
        if chunk:
            if keep is None or keep(chunk):
                yield from _per_allele(run, genome, chunk, radius, margin, stride)
            else:
                yield from unscored(chunk)
        return
    plan = _LocalPlan.of(model)
    if plan is not None and margin % plan.s:
        margin += plan.s - margin % plan.s
    span = cluster_span or (CLUSTER_SPAN if plan is not None else GENERIC_CLUSTER_SPAN)
    for chrom, items in _clusters(variants, genome, radius, span, CLUSTER_ALLELES):
        if keep is not None and not keep([it[0] for it in items]):
            yield from unscored(it[0] for it in items)
            continue
        yield from _shared(run, plan, genome, chrom, items, margin=margin, stride=stride,
                           batch_size=batch_size, radius=radius)  # fmt: skip
        _release_memory()


# --- writers -------------------------------------------------------------------------------------
_FORMATS: dict[int, str] = {}


def _fmt(values: list[float]) -> str:
    """``values`` tab-separated, 6 significant digits each."""
    n = len(values)
    if n not in _FORMATS:
        _FORMATS[n] = "\t".join(["%.6g"] * n)
    return _FORMATS[n] % tuple(values)


class _WideWriter:
    def __init__(self, fh, names, header: bool = True):
        self.fh = fh
        cols = [f"{n}.{s}" for n in names for s in STATS]
        if header:  # a torchrun part has none: process 0 writes it before the parts
            fh.write("\t".join(VARIANT_COLUMNS + cols) + "\n")

    def write(self, v: Variant, ref, alt, top, lor) -> int:
        vals = np.stack([alt - ref, top, lor], axis=1).ravel().tolist()
        self.fh.write(f"{v.chrom}\t{v.start + 1}\t{v.id}\t{v.ref}\t{v.alt}\t{_fmt(vals)}\n")
        return 1

    def close(self):
        pass


class _LongWriter:
    def __init__(self, fh, names, cats, header: bool = True):
        self.fh, self.names, self.cats = fh, names, cats
        if header:
            fh.write("\t".join(COLUMNS) + "\n")

    def write(self, v: Variant, ref, alt, top, lor) -> int:
        head = f"{v.chrom}\t{v.start + 1}\t{v.id}\t{v.ref}\t{v.alt}"
        self.fh.write(
            "".join(
                f"{head}\t{n}\t{c}\t{r:.6g}\t{a:.6g}\t{a - r:.6g}\t{t:.6g}\n"
                for n, c, r, a, t in zip(self.names, self.cats, ref, alt, top, strict=True)
            )
        )
        return len(self.names)

    def close(self):
        pass


def _need_h5py():
    try:
        import h5py
    except ImportError:
        raise RegtracksError(
            "--format h5 needs h5py: pip install h5py (or pip install 'regtracks[h5]')"
        ) from None
    return h5py


class _H5Writer:
    """Resizable ``(variants, markers)`` datasets, written a block of rows at a time."""

    def __init__(self, path: Path, names, cats, attrs: dict, block: int = 256):
        h5py = _need_h5py()
        self.f = h5py.File(path, "w")
        m = len(names)
        text = h5py.string_dtype("utf-8")
        self.block = block
        rows = max(1, min(block, (1 << 20) // max(4 * m, 1)))
        self.data = {
            s: self.f.create_dataset(s, (0, m), maxshape=(None, m), dtype="f4", chunks=(rows, m))
            for s in STATS
        }
        for s in STATS:
            self.data[s].attrs["description"] = STAT_HELP[s]
        self.cols = {
            c: self.f.create_dataset(c, (0,), maxshape=(None,), dtype=text, chunks=(4096,))
            for c in ("chrom", "id", "ref", "alt")
        }
        self.cols["pos"] = self.f.create_dataset(
            "pos", (0,), maxshape=(None,), dtype="i8", chunks=(4096,)
        )
        self.cols["line"] = self.f.create_dataset(
            "line", (0,), maxshape=(None,), dtype="i8", chunks=(4096,)
        )
        self.f.create_dataset("marker", data=list(names), dtype=text)
        self.f.create_dataset("category", data=list(cats), dtype=text)
        for k, v in attrs.items():
            self.f.attrs[k] = v
        self.buf: list = []
        self.n = 0

    def write(self, v: Variant, ref, alt, top, lor) -> int:
        self.buf.append((v, alt - ref, top, lor))
        if len(self.buf) >= self.block:
            self.flush()
        return 1

    def flush(self):
        if not self.buf:
            return
        n0, k = self.n, len(self.buf)
        for i, s in enumerate(STATS):
            d = self.data[s]
            d.resize(n0 + k, axis=0)
            d[n0:] = np.stack([b[1 + i] for b in self.buf]).astype(np.float32)
        vals = {
            "chrom": [b[0].chrom for b in self.buf],
            "id": [b[0].id for b in self.buf],
            "ref": [b[0].ref for b in self.buf],
            "alt": [b[0].alt for b in self.buf],
            "pos": np.array([b[0].start + 1 for b in self.buf], dtype=np.int64),
            "line": np.array([b[0].line for b in self.buf], dtype=np.int64),
        }
        for c, d in self.cols.items():
            d.resize(n0 + k, axis=0)
            d[n0:] = vals[c]
        self.n += k
        self.buf = []

    def append(self, path: Path, block: int = 1 << 16) -> None:
        """Append the rows of another file this class wrote (a torchrun part), in blocks."""
        h5py = _need_h5py()
        self.flush()
        with h5py.File(path, "r") as part:
            k = part[STATS[0]].shape[0]
            for j0 in range(0, k, block):
                j1 = min(j0 + block, k)
                for name, d in [*self.data.items(), *self.cols.items()]:
                    d.resize(self.n + j1 - j0, axis=0)
                    d[self.n :] = part[name][j0:j1]
                self.n += j1 - j0

    def close(self):
        if self.f:
            self.flush()
            self.f.close()
            self.f = None


def _info_id(marker: str, stat: str) -> str:
    return f"RT_{re.sub(r'[^0-9A-Za-z_.]', '_', marker)}_{stat}"


def _quote(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace('"', '\\"')


class _VcfWriter:
    """The input VCF's records, in order, with the scores as INFO fields (bgzip)."""

    def __init__(
        self, path: Path, shape: _VcfShape, genome, names, cats, radius: int, what: str,
        part: bool = False,
    ):  # fmt: skip
        """``part``: a torchrun part, the records alone, plain text (process 0 writes the
        header, then the parts, into the bgzip file)."""
        import pysam

        self.bgz = open(path, "wb") if part else pysam.BGZFile(str(path), "wb")
        keys, seen = [], set()
        for n in names:
            for s in STATS:
                k = _info_id(n, s)
                while k in seen:  # two markers alike once made safe
                    k = k[: -len(s) - 1] + f"_{len(seen)}_{s}"
                seen.add(k)
                keys.append(k)
        self.keys = keys
        self.ours = set(keys) | {"RT_SKIP"}
        self.strip = False
        lines = []
        declared = set()
        for line in shape.meta:
            m = re.match(r"##(INFO|contig)=<ID=([^,>]+)", line)
            if m and m.group(1) == "INFO" and m.group(2) in self.ours:
                self.strip = True  # annotated before: ours replace those fields
                continue
            if m and m.group(1) == "contig":
                declared.add(m.group(2))
            lines.append(line)
        if not lines or not lines[0].startswith("##fileformat="):
            lines.insert(0, "##fileformat=VCFv4.2")
        for c in shape.chroms:
            name = genome.resolve(c)
            if c not in declared and name is not None:
                lines.append(f"##contig=<ID={c},length={genome.sizes[name]}>")
        for i, n in enumerate(names):
            for j, s in enumerate(STATS):
                desc = (
                    f"regtracks variants: marker {_quote(n)} ({_quote(cats[i])}), statistic "
                    f"{s}: {STAT_HELP[s]}, within {radius} bp of the variant"
                )
                lines.append(
                    f'##INFO=<ID={keys[3 * i + j]},Number=A,Type=Float,Description="{desc}">'
                )
        lines.append(
            '##INFO=<ID=RT_SKIP,Number=.,Type=String,Description="regtracks variants: why '
            "this record or an ALT allele was not scored (ref_mismatch, unknown_chrom, "
            'past_chrom_end, ref_not_dna, symbolic_allele)">'
        )
        lines.append(f"##regtracks_variants=<{_quote(what)}>")
        head = shape.header or "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"
        cols = head.split("\t")
        if len(cols) < 8:
            cols += ["QUAL", "FILTER", "INFO"][len(cols) - 5 :]
        lines.append("\t".join(cols))
        if not part:
            self.bgz.write(("\n".join(lines) + "\n").encode())

    def write(self, rec: _Record):
        cols = list(rec.cols) + ["."] * max(0, 8 - len(rec.cols))
        info = [] if cols[7] in ("", ".") else cols[7].split(";")
        if self.strip:
            info = [x for x in info if x.split("=", 1)[0] not in self.ours]
        n_alt = len(rec.alleles)
        if rec.scores:
            vals = [[] for _ in self.keys]
            for a in range(n_alt):
                sc = rec.scores.get(a)
                for k in range(len(self.keys)):
                    vals[k].append("." if sc is None else f"{sc[k % 3][k // 3]:.4g}")
            info += [f"{k}={','.join(v)}" for k, v in zip(self.keys, vals, strict=True)]
        if rec.skipped:
            info.append("RT_SKIP=" + ",".join(sorted({s.reason for s in rec.skipped})))
        cols[7] = ";".join(info) if info else "."
        self.bgz.write(("\t".join(cols) + "\n").encode())

    def close(self):
        if self.bgz is not None:
            self.bgz.close()
            self.bgz = None


# --- the whole job -------------------------------------------------------------------------------
def score_variants(
    run: str | os.PathLike,
    vcf: str | os.PathLike,
    out: str | os.PathLike,
    *,
    genome=None,
    markers: list[str] | None = None,
    category: str | None = None,
    radius: int = DEFAULT_VARIANTS.radius,
    batch_size: int = DEFAULT_VARIANTS.batch_size,
    device: str = DEFAULT_RUNTIME.device,
    precision: str = DEFAULT_VARIANTS.precision,
    which: str = DEFAULT_RUNTIME.checkpoint,
    fmt: str = "long",
    vcf_out: str | os.PathLike | None = None,
    on_ref_mismatch: str = "skip",
    share_windows: bool = True,
    cluster_span: int | None = None,
    cfg: VariantDefaults = DEFAULT_VARIANTS,
    progress: Callable[[int, int, str], None] | None = None,
) -> VariantResult:
    """Score every allele of ``vcf`` with a run's dense model; write ``out`` (and more).

    Parameters
    ----------
    run : path
        Run folder or checkpoint (dense task).
    vcf : path
        VCF, plain or gzip/bgzip.
    out : path
        The scores (see the module docstring for ``fmt``); ``<out>.skipped.tsv`` lists what was
        not scored (a header only when nothing was skipped).
    genome : path, optional
        Genome FASTA (default: the one recorded in the checkpoint).
    markers, category : optional
        Score only these markers, or one category (default: all).
    radius : int
        Bases scored on each side of the variant.
    batch_size, device, precision, which
        As for :func:`regtracks.inference.predict.predict` (``batch_size``: windows per forward
        pass).
    fmt : {"long", "wide", "h5"}
        The table's layout (the command line's default is ``wide``).
    vcf_out : path, optional
        Also write the VCF with the scores as INFO fields (``.vcf.gz``, bgzip, with a ``.tbi``).
    on_ref_mismatch : {"skip", "error"}
        Skip and list records whose REF does not match the genome (or whose chromosome is
        unknown, or that run past its end), or stop at the first with an error naming its line.
    share_windows, cluster_span
        See :func:`variant_effects` (``share_windows=False``: one window per allele, the
        earlier path).
    progress : callable, optional
        ``progress(records_done, records, "N variants/s")`` after each batch.

    Raises
    ------
    RegtracksError
        Bad options, a missing or malformed VCF, an unwritable output, h5py missing for
        ``fmt="h5"``, an unsorted VCF with ``vcf_out``, or nothing that could be scored.
    """
    t0 = time.perf_counter()
    # torchrun: every process checks the input alike; an error on any is told to all (job)
    with contextlib.ExitStack() as hold, torchrun_job(device) as job:
        if radius < 0:
            raise RegtracksError(f"--radius must be >= 0, got {radius}")
        if batch_size < 1:
            raise RegtracksError(f"--batch-size must be at least 1, got {batch_size}")
        if fmt not in FORMATS:
            raise RegtracksError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        if on_ref_mismatch not in MISMATCH_MODES:
            raise RegtracksError(
                f"--on-ref-mismatch must be skip or error, got {on_ref_mismatch!r}"
            )
        if fmt == "h5":
            _need_h5py()
        out = Path(out)
        skipped_path = out.with_name(out.name + ".skipped.tsv")
        index = None
        if vcf_out is not None:
            vcf_out = Path(vcf_out)
            if not vcf_out.name.endswith((".vcf.gz", ".vcf.bgz")):
                raise RegtracksError(
                    f"--vcf-out {vcf_out}: name a .vcf.gz file (it is written bgzip-compressed, "
                    "with a tabix index beside it)"
                )
            index = vcf_out.with_name(vcf_out.name + ".tbi")
            if len({out.resolve(), vcf_out.resolve(), skipped_path.resolve()}) < 3:
                raise RegtracksError(f"--vcf-out {vcf_out} is the --out file; name another")
        sess = open_session(
            run, genome=genome, which=which, markers=markers, category=category, device=device,
            precision=precision, purpose="variant scores",
        )  # fmt: skip
        check_output_file(out)
        if vcf_out is not None:
            check_output_file(vcf_out, "--vcf-out")
        vcf = _check_vcf(vcf)
        shape = _scan_vcf(vcf)
        if vcf_out is not None and not shape.sorted:
            raise RegtracksError(
                f"{shape.unsorted_at}: --vcf-out needs a VCF sorted by chromosome and position "
                "(tabix indexes only those): sort it first (bcftools sort)"
            )
        names = [m.name for m in sess.selected]
        cats = [m.category for m in sess.selected]
        res = VariantResult(
            out=out, fmt=fmt, skipped_path=skipped_path, vcf_out=vcf_out, index=index,
            sorted=shape.sorted,
            shared=share_windows and sess.receptive_field is not None,
        )  # fmt: skip
        what = (
            f"checkpoint={sess.path.name},model={sess.checkpoint.model_name},radius={radius},"
            f"genome={sess.genome.name}"
        )
        attrs = None
        if fmt == "h5":
            from regtracks import __version__

            attrs = {
                "radius": radius,
                "checkpoint": str(sess.path),
                "model": sess.checkpoint.model_name,
                "genome": sess.genome.name,
                "regtracks_version": __version__,
                "pos": "1-based, as in the VCF",
                "logodds_eps": LOGODDS_EPS,
            }
        sink_kw = dict(fmt=fmt, names=names, cats=cats, attrs=attrs, shape=shape,
                       genome=sess.genome, radius=radius, what=what)  # fmt: skip

        def effects(alleles, keep=None):
            return variant_effects(
                sess.model, sess.genome, alleles, marker_idx=sess.marker_idx, radius=radius,
                margin=sess.margin(), stride=sess.stride, batch_size=batch_size,
                device=sess.device, amp=sess.amp, share_windows=share_windows,
                cluster_span=cluster_span, keep=keep,
            )  # fmt: skip

        run_kw = dict(on_ref_mismatch=on_ref_mismatch, progress=progress)
        if job.world == 1:
            with contextlib.ExitStack() as stack:
                tmp = _final_temps(stack, out, skipped_path, vcf_out, index)
                sinks = _Sinks(stack, *tmp, **sink_kw)
                _score(vcf, sess.genome, shape, res, sinks, effects, **run_kw)
                _finish(sinks, vcf_out, index, tmp)
        else:
            # torchrun: every process reads the whole VCF and forms the same clusters; it
            # scores those starting in its block of records and writes their rows and
            # records into parts, which process 0 joins in rank order (see _keep_block)
            temps: list[Path] = []
            hold.callback(_remove_all, temps)  # after the last meeting: nobody reads them
            part = _part_temps(out, job.rank, vcf_out is not None, temps)
            with contextlib.ExitStack() as stack:
                sinks = _Sinks(stack, *part, **sink_kw, header=False)
                keep = _keep_block(_cut_lines(vcf, shape.records, job.world), job.rank)
                _score(vcf, sess.genome, shape, res, sinks, lambda a: effects(a, keep),
                       first=job.is_main, **run_kw)  # fmt: skip
            got = job.sync((part, res.variants, res.rows))
            res.variants = sum(n for _, n, _ in got)
            res.rows = sum(n for _, _, n in got)
            if job.is_main:
                with contextlib.ExitStack() as stack:
                    tmp = _final_temps(stack, out, skipped_path, vcf_out, index)
                    sinks = _Sinks(stack, *tmp, **sink_kw)
                    for p, _, _ in got:
                        sinks.append(*p)
                    _finish(sinks, vcf_out, index, tmp)
    res.seconds = time.perf_counter() - t0
    return res


def _remove_all(paths) -> None:
    for p in paths:
        with contextlib.suppress(OSError):
            os.unlink(p)


def _temp_beside(path: Path, tag: str) -> Path:
    """A new hidden temporary ``.NAME.TAG.<random>.tmp`` beside ``path``."""
    import tempfile

    from regtracks._util import output_error

    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{tag}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise output_error(path, exc) from None
    os.close(fd)
    return Path(tmp)


def _part_temps(out: Path, rank: int, vcf: bool, temps: list) -> tuple:
    """torchrun: the part files of process ``rank`` (table, skipped list, VCF records)."""
    paths = []
    for tag in ("table", "skipped", "vcf") if vcf else ("table", "skipped"):
        paths.append(_temp_beside(out, f"part{rank}.{tag}"))
        temps.append(paths[-1])
    return (*paths, None) if not vcf else tuple(paths)


def _final_temps(stack, out, skipped_path, vcf_out, index) -> tuple:
    """The outputs' temporaries (renamed when the stack closes without an error): table,
    skipped list, annotated VCF and its index (None without ``vcf_out``)."""
    tmp_out = stack.enter_context(atomic_path(out))
    tmp_skip = stack.enter_context(atomic_path(skipped_path))
    tmp_tbi = tmp_vcf = None
    if vcf_out is not None:
        tmp_tbi = stack.enter_context(atomic_path(index))
        tmp_vcf = stack.enter_context(atomic_path(vcf_out))
    return tmp_out, tmp_skip, tmp_vcf, tmp_tbi


class _Sinks:
    """Where the rows, the skipped list and the annotated records go: the outputs' temporaries
    (``header``), or a torchrun part's files (no header; the VCF records as plain text)."""

    def __init__(self, stack, table, skipped, vcf, tbi=None, *, fmt, names, cats, attrs, shape,
                 genome, radius, what, header=True):  # fmt: skip
        self.fmt, self.header = fmt, header
        if fmt == "h5":
            self.table = _H5Writer(table, names, cats, attrs)
            self.fh = None
        else:
            self.fh = stack.enter_context(open(table, "w"))
            self.table = (
                _WideWriter(self.fh, names, header)
                if fmt == "wide"
                else _LongWriter(self.fh, names, cats, header)
            )
        stack.callback(self.table.close)  # h5: closed (flushed) before the rename
        self.skip_fh = stack.enter_context(open(skipped, "w"))
        if header:
            self.skip_fh.write("\t".join(SKIPPED_COLUMNS) + "\n")
        self.vcf = None
        if vcf is not None:
            self.vcf = _VcfWriter(vcf, shape, genome, names, cats, radius, what, part=not header)
            stack.callback(self.vcf.close)

    def skipped(self, s: Skipped) -> None:
        fields = [str(s.line), s.chrom, s.pos, s.id, s.ref, s.alt, s.reason, s.detail]
        self.skip_fh.write("\t".join(fields) + "\n")

    def append(self, table, skipped, vcf=None, tbi=None) -> None:
        """Append a torchrun part's files (:func:`_part_temps`)."""
        import shutil

        if self.fmt == "h5":
            self.table.append(table)
        else:
            with open(table) as fh:
                shutil.copyfileobj(fh, self.fh, 1 << 20)
        with open(skipped) as fh:
            shutil.copyfileobj(fh, self.skip_fh, 1 << 20)
        if self.vcf is not None:
            with open(vcf, "rb") as fh:
                while block := fh.read(1 << 20):
                    self.vcf.bgz.write(block)


def _finish(sinks: _Sinks, vcf_out, index, tmp) -> None:
    """Close the outputs and index the annotated VCF (before their renames)."""
    if sinks.vcf is not None:
        import pysam

        _, _, tmp_vcf, tmp_tbi = tmp
        sinks.vcf.close()
        try:
            pysam.tabix_index(str(tmp_vcf), preset="vcf", force=True, index=str(tmp_tbi))
        except (OSError, ValueError) as e:
            raise RegtracksError(f"{vcf_out}: cannot index ({e})") from None
        # an index of the old file must not outlive it: gone before the renames
        with contextlib.suppress(FileNotFoundError):
            os.unlink(index)
    sinks.table.close()


def _cut_lines(path: Path, records: int, world: int) -> list[int]:
    """The VCF lines where the blocks of records of processes 1 .. world - 1 start (the
    records split in ``world`` contiguous blocks of sizes differing by at most one)."""
    firsts = sorted({records * r // world for r in range(1, world)})
    cuts: list[int] = []
    q = 0
    if not firsts:
        return cuts
    with open_text(path) as fh:
        for n, line in enumerate(fh, 1):
            if line.startswith("#") or not line.strip():
                continue
            while len(cuts) < len(firsts) and q == firsts[len(cuts)]:
                cuts.append(n)
            q += 1
            if len(cuts) == len(firsts):
                break
    cuts += [1 << 62] * (len(firsts) - len(cuts))
    # a block of no records (more processes than records) starts where the next one does
    return [cuts[firsts.index(records * r // world)] for r in range(1, world)]


def _keep_block(cuts: list[int], rank: int) -> Callable[[list[Variant]], bool]:
    """``keep`` of :func:`variant_effects` for process ``rank``: a cluster is the process's
    whose first allele's record lies in its block (``cuts``: :func:`_cut_lines`), except that a
    cluster going on with the record the cluster before it ended with stays with that
    cluster's process. So every record's alleles are scored by one process, and each process
    scores a contiguous run of alleles: its rows and records, joined in rank order, are those
    of one process, in VCF order."""
    last = {"line": None, "mine": False}

    def keep(alleles: list[Variant]) -> bool:
        first = alleles[0]
        if first.line == last["line"]:
            mine = last["mine"]
        else:
            mine = bisect.bisect_right(cuts, first.line) == rank
        last["line"], last["mine"] = alleles[-1].line, mine
        return mine

    return keep


def _score(vcf: Path, genome, shape: _VcfShape, res: VariantResult, sinks: _Sinks, effects, *,
           on_ref_mismatch: str, progress, first: bool = True) -> None:  # fmt: skip
    """Read the records, score their alleles with ``effects(alleles)`` (:func:`variant_effects`)
    and write what this process owns into ``sinks``: the rows of the alleles it scored, the
    skipped rows and annotated records of the records whose alleles it scored (a record with
    none goes with the record before it; those before the first scored one with process 0,
    ``first``). Counts into ``res``; raises when nothing could be scored at all."""
    reasons: Counter = Counter()
    first_skip: list[Skipped] = []
    pending: deque[_Record] = deque()
    where: dict[int, tuple[_Record, int]] = {}
    owns = {"last": first}  # whether this process writes the record (see the docstring)
    n_alleles = 0  # scored here or not
    keep_scores = sinks.vcf is not None

    def flush_records():
        while pending and pending[0].done:
            rec = pending.popleft()
            if rec.scores:
                owns["last"] = any(x is not None for x in rec.scores.values())
            if owns["last"]:
                for s in rec.skipped:
                    sinks.skipped(s)
                if sinks.vcf is not None:
                    sinks.vcf.write(rec)
            res.records += 1

    def alleles():
        for rec in _records(vcf, genome, on_ref_mismatch):
            for s in rec.skipped:
                reasons[s.reason] += 1
                if not first_skip:
                    first_skip.append(s)
            pending.append(rec)
            for k, a in enumerate(rec.alleles):
                if a is not None:
                    where[id(a)] = (rec, k)
                    yield a
            flush_records()
            if len(pending) > PENDING_RECORDS:  # many records skipped behind a cluster
                yield None  # score it now, so that they can be written

    last = time.perf_counter()
    t_score = last
    for v, ref_s, alt_s, top in effects(alleles()):
        n_alleles += 1
        rec, k = where.pop(id(v))
        if ref_s is None:  # another process's (torchrun)
            rec.scores[k] = None
        else:
            lor = log_odds(ref_s, alt_s)
            res.rows += sinks.table.write(v, ref_s, alt_s, top, lor)
            res.variants += 1
            rec.scores[k] = (alt_s - ref_s, top, lor) if keep_scores else ()
        flush_records()
        now = time.perf_counter()
        if progress is not None and now - last > 0.25:
            last = now
            rate = res.variants / max(now - t_score, 1e-9)
            progress(res.records + len(pending), shape.records, f"{rate:,.1f} variants/s")
    flush_records()
    res.records += len(pending)
    res.skip_reasons = dict(reasons)
    res.skipped = sum(reasons.values())
    if progress is not None:
        rate = res.variants / max(time.perf_counter() - t_score, 1e-9)
        progress(shape.records, shape.records, f"{rate:,.1f} variants/s")
    if n_alleles == 0:
        if not res.skipped:
            raise RegtracksError(f"{vcf}: no variant records")
        first = first_skip[0]
        raise RegtracksError(
            f"{vcf}: nothing could be scored ({res.skip_summary()}); first: "
            f"{vcf.name}:{first.line}: {first.detail}"
        )
