"""Variant effect scores: how a sequence change moves each marker's predictions around it.

``score_variants(RUN, VCF, OUT)`` reads a VCF (plain or gzip), builds for every variant the
reference and the alternative sequence around it, runs the run's dense model on both and writes
one TSV row per variant, alternative allele and marker::

    chrom  pos  id  ref  alt  marker  category  ref_score  alt_score  diff  max_abs_diff

* ``ref_score`` / ``alt_score``: the marker's mean predicted probability over the variant's
  bases and ``radius`` bp on each side, within the chromosome (each allele in its own
  coordinates, so an insertion's own bases count on the alternative side);
* ``diff = alt_score - ref_score``;
* ``max_abs_diff``: the largest change of the probability at one position, over the positions
  the two alleles share (the flanks, and the variant's bases when REF and ALT have one length).

Windows: each allele is predicted from one window holding the scored positions plus a margin
that covers the model's receptive field on each side (N beyond the chromosome ends), starting
at a multiple of the model's stride; so the scores equal those of the whole chromosome with the
allele in place. Positions are 1-based in the VCF and the TSV, 0-based inside.

The margin is the scanner's (:meth:`regtracks.inference.session.InferenceSession.margin`, the
same rule as :func:`regtracks.inference.scan.plan_scan`). Change: for a model without a finite
receptive field (the Bi-LSTM) it is now a quarter of the training window rounded up to the
stride, as when scanning, where it used to be half the training window; such a model's scores
are approximate either way (its outputs see the whole input) and differ from earlier versions'.

A REF allele that does not match the genome is an error naming the VCF line (the usual sign of
a VCF from another assembly); symbolic (``<DEL>``), breakend and ``*`` alleles are skipped and
counted.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from regtracks._util import RegtracksError, atomic_path, check_output_file, open_text
from regtracks.config import DEFAULT_RUNTIME, DEFAULT_VARIANTS, VariantDefaults
from regtracks.data.datasets import one_hot_torch
from regtracks.data.genome import encode
from regtracks.inference.session import open_session

__all__ = ["Variant", "read_vcf", "variant_effects", "score_variants", "VariantResult"]

_BASES = re.compile(r"[ACGTN]+")
COLUMNS = [
    "chrom", "pos", "id", "ref", "alt", "marker", "category",
    "ref_score", "alt_score", "diff", "max_abs_diff",
]  # fmt: skip


@dataclass(frozen=True)
class Variant:
    """One alternative allele: ``ref`` at 0-based ``start`` replaced by ``alt``."""

    chrom: str
    start: int
    id: str
    ref: str
    alt: str
    line: int


@dataclass
class VariantResult:
    """What :func:`score_variants` wrote."""

    out: Path
    variants: int = 0
    skipped: int = 0
    rows: int = 0
    seconds: float = 0.0


def read_vcf(path: str | os.PathLike, genome) -> tuple[list[Variant], int]:
    """Parse a VCF's records against ``genome``; returns (alleles, skipped symbolic alleles).

    Raises
    ------
    RegtracksError
        Missing file, a malformed line, an unknown chromosome or a REF that does not match the
        genome, naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise RegtracksError(f"{path}: VCF not found")
    out: list[Variant] = []
    skipped = 0
    try:
        with open_text(path) as fh:
            for n, line in enumerate(fh, 1):
                if line.startswith("#") or not line.strip():
                    continue
                cols = line.rstrip("\n").split("\t")
                where = f"{path.name}:{n}"
                if len(cols) < 5:
                    raise RegtracksError(
                        f"{where}: expected at least 5 tab-separated columns "
                        f"(CHROM POS ID REF ALT), got {len(cols)}"
                    )
                chrom_in, pos, vid, ref, alts = cols[:5]
                if not pos.isdigit() or int(pos) < 1:
                    raise RegtracksError(f"{where}: POS {pos!r} is not a positive integer")
                chrom = genome.resolve(chrom_in)
                if chrom is None:
                    raise RegtracksError(
                        f"{where}: chromosome {chrom_in!r} is not in {genome.path.name}"
                    )
                start = int(pos) - 1
                ref = ref.upper()
                if not _BASES.fullmatch(ref):
                    raise RegtracksError(f"{where}: REF {cols[3]!r} is not a DNA sequence")
                if start + len(ref) > genome.sizes[chrom]:
                    raise RegtracksError(
                        f"{where}: {chrom}:{pos} {ref} runs past the chromosome end "
                        f"({genome.sizes[chrom]:,} bp)"
                    )
                have = genome.fetch_text(chrom, start, start + len(ref)).upper()
                if have != ref:
                    raise RegtracksError(
                        f"{where}: REF {ref} at {chrom}:{pos} does not match the genome ({have}); "
                        "is the VCF from another assembly?"
                    )
                for alt in alts.split(","):
                    alt = alt.upper()
                    if not _BASES.fullmatch(alt):  # <DEL>, breakends, '*', '.'
                        skipped += 1
                        continue
                    out.append(Variant(chrom, start, vid, ref, alt, n))
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise RegtracksError(f"{path}: cannot read ({e})") from None
    return out, skipped


def _window_codes(genome, v: Variant, radius: int, margin: int, stride: int):
    """Codes of the ref and alt windows, the first scored index and the flank lengths.

    Scored: the variant's bases and up to ``radius`` bases on each side, inside the chromosome.
    """
    size = genome.sizes[v.chrom]
    left_r = min(radius, v.start)
    right_r = min(radius, size - v.start - len(v.ref))
    lo = v.start - left_r  # first scored position (genomic)
    w0 = ((lo - margin) // stride) * stride  # window start, a multiple of the stride
    end = v.start + len(v.ref) + right_r + margin
    ref = genome.fetch(v.chrom, w0, end)
    k0, k1 = v.start - w0, v.start - w0 + len(v.ref)
    alt = np.concatenate([ref[:k0], encode(v.alt), ref[k1:]])
    return ref, alt, lo - w0, left_r, right_r


@torch.inference_mode()
def variant_effects(
    model,
    genome,
    variants: list[Variant],
    *,
    marker_idx: list[int],
    radius: int,
    margin: int,
    stride: int = 1,
    batch_size: int = DEFAULT_VARIANTS.batch_size,
    device: torch.device | str = "cpu",
    amp=None,
) -> Iterator[tuple[Variant, np.ndarray, np.ndarray, np.ndarray]]:
    """``(variant, ref_score, alt_score, max_abs_diff)`` per allele, each ``(T,)`` float64."""
    device = torch.device(device)
    model.eval()
    idx = torch.tensor(marker_idx, dtype=torch.long, device=device)
    for i in range(0, len(variants), batch_size):
        chunk = variants[i : i + batch_size]
        wins = [_window_codes(genome, v, radius, margin, stride) for v in chunk]
        length = max(max(r.size, a.size) for r, a, *_ in wins)
        codes = np.zeros((2 * len(chunk), length), dtype=np.uint8)  # N pads the right end
        for j, (r, a, *_) in enumerate(wins):
            codes[2 * j, : r.size] = r
            codes[2 * j + 1, : a.size] = a
        x = one_hot_torch(torch.from_numpy(codes).to(device))
        # only the scored positions go through the per-position head (forward_slice)
        s0 = min(off for *_, off, _, _ in wins)
        s1 = max(off + lr + max(len(v.ref), len(v.alt)) + rr
                 for v, (*_, off, lr, rr) in zip(chunk, wins, strict=True))  # fmt: skip
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            logits = _slice(model, x, s0, s1)
            p = torch.sigmoid(logits.index_select(1, idx).float())
        p = p.double().cpu().numpy()
        for j, (v, (_, _, off, left_r, right_r)) in enumerate(zip(chunk, wins, strict=True)):
            n_ref = left_r + len(v.ref) + right_r
            n_alt = left_r + len(v.alt) + right_r
            pr = p[2 * j][:, off - s0 : off - s0 + n_ref]
            pa = p[2 * j + 1][:, off - s0 : off - s0 + n_alt]
            if n_ref == n_alt:
                shared = np.abs(pa - pr)
            else:  # flanks only: left aligned at the start, right aligned at the end
                shared = np.concatenate(
                    [np.abs(pa[:, :left_r] - pr[:, :left_r]),
                     np.abs(pa[:, n_alt - right_r :] - pr[:, n_ref - right_r :])],
                    axis=1,
                )  # fmt: skip
            top = shared.max(axis=1) if shared.shape[1] else np.zeros(len(marker_idx))
            yield v, pr.mean(axis=1), pa.mean(axis=1), top


def _slice(model, x: torch.Tensor, start: int, end: int) -> torch.Tensor:
    """``model(x)[..., start:end]``, through ``forward_slice`` where the model has it."""
    fn = getattr(model, "forward_slice", None)
    return fn(x, start, end) if fn is not None else model(x)[..., start:end]


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
    cfg: VariantDefaults = DEFAULT_VARIANTS,
    progress=None,
) -> VariantResult:
    """Score every allele of ``vcf`` with a run's dense model; write the TSV ``out``.

    Parameters
    ----------
    run : path
        Run folder or checkpoint (dense task).
    vcf : path
        VCF, plain or gzip/bgzip; REF must match the genome.
    out : path
        TSV written through a temporary name (see the module docstring for its columns).
    genome : path, optional
        Genome FASTA (default: the one recorded in the checkpoint).
    markers, category : optional
        Score only these markers, or one category (default: all).
    radius : int
        Bases scored on each side of the variant.
    batch_size, device, precision, which
        As for :func:`regtracks.inference.predict.predict`.
    progress : callable, optional
        ``progress(done, total, label)`` per batch of alleles.
    """
    t0 = time.perf_counter()
    if radius < 0:
        raise RegtracksError(f"--radius must be >= 0, got {radius}")
    if batch_size < 1:
        raise RegtracksError(f"--batch-size must be at least 1, got {batch_size}")
    sess = open_session(
        run, genome=genome, which=which, markers=markers, category=category, device=device,
        precision=precision, purpose="variant scores",
    )  # fmt: skip
    idx = sess.marker_idx
    check_output_file(out)
    variants, skipped = read_vcf(vcf, sess.genome)
    res = VariantResult(out=Path(out), variants=len(variants), skipped=skipped)
    names = [m.name for m in sess.selected]
    cats = [m.category for m in sess.selected]
    with atomic_path(out) as tmp, open(tmp, "w") as fh:
        fh.write("\t".join(COLUMNS) + "\n")
        done = 0
        for v, ref_s, alt_s, top in variant_effects(
            sess.model, sess.genome, variants, marker_idx=idx, radius=radius,
            margin=sess.margin(), stride=sess.stride, batch_size=batch_size,
            device=sess.device, amp=sess.amp,
        ):  # fmt: skip
            head = f"{v.chrom}\t{v.start + 1}\t{v.id}\t{v.ref}\t{v.alt}"
            fh.write(
                "".join(
                    f"{head}\t{n}\t{c}\t{r:.6g}\t{a:.6g}\t{a - r:.6g}\t{t:.6g}\n"
                    for n, c, r, a, t in zip(names, cats, ref_s, alt_s, top, strict=True)
                )
            )
            res.rows += len(names)
            done += 1
            if progress is not None and (done % batch_size == 0 or done == len(variants)):
                progress(done, len(variants), "alleles")
    res.seconds = time.perf_counter() - t0
    return res
