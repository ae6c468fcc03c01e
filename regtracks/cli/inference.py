"""``regtracks predict``, ``saliency`` and ``variants``: a trained dense model over a genome."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from regtracks.cli.common import command, in_kbp, info, progress_bar, tracks_notes, warn
from regtracks.cli.options import (
    BigWigEngineOpt,
    ChromOpt,
    GenomeNameOpt,
    MarkerOptions,
    ModelOptions,
    NoHubOpt,
    OneFileOpt,
    PeaksOpt,
    PrecisionOpt,
    RadiusOpt,
    RcAverageOpt,
    ReduceOpt,
    RefMismatchOpt,
    RegionOpt,
    SaliencyScanOptions,
    ScanOptions,
    TargetOpt,
    VariantFormatOpt,
    VcfOpt,
    VcfOutOpt,
    WritersOpt,
    batch_size_option,
    names,
    out_option,
    resume_option,
)
from regtracks.config import DEFAULT_BIGWIG, DEFAULT_SALIENCY, DEFAULT_VARIANTS

app = typer.Typer()

# marker selection was --markers (a comma list) in predict and -m in saliency / variants; the
# scan window was --window-len, which elsewhere is the training window
MARKER_RENAMES = {"-m": "--marker"}
SCAN_RENAMES = {"--window-len": "--scan-window"}


@contextlib.contextmanager
def torchrun_view(description: str):
    """The progress bar of a command that may run under torchrun; yields ``(main, update)``.

    Process 0 (the only one without torchrun) shows the bar and, after the call, the result;
    the others show nothing: an error of theirs reaches process 0, which prints it (the
    processes of a job meet to end together, :class:`regtracks.runtime.DistJob`), and they
    exit 1 without a line of their own.
    """
    from regtracks._util import RegtracksError
    from regtracks.runtime import DistEnv, destroy_process_group

    try:
        if DistEnv.from_env().is_main:
            with progress_bar(description) as update:
                yield True, update
            return
        try:
            yield False, lambda done, total, label: None
        except (RegtracksError, OSError):
            raise typer.Exit(1) from None
    finally:
        destroy_process_group()  # the library leaves torchrun's group up for later calls


# --- predict -----------------------------------------------------------------------------------
@command(app, renamed={"--markers": "--marker", **SCAN_RENAMES})
def predict(
    chrom: ChromOpt,
    out: Annotated[Path, out_option("Hub folder: tracks/*.bw, manifest.json, hub files.")],
    model: ModelOptions,
    select: MarkerOptions = MarkerOptions(),
    scan: ScanOptions = ScanOptions(),
    rc_average: RcAverageOpt = False,
    resume: Annotated[
        bool, resume_option("Keep the tracks already complete from this checkpoint.")
    ] = False,
    writers: WritersOpt = None,
    bigwig_engine: BigWigEngineOpt = DEFAULT_BIGWIG.engine,
    genome_name: GenomeNameOpt = None,
    one_file: OneFileOpt = None,
    no_hub: NoHubOpt = False,
    peaks: PeaksOpt = True,
):
    """Scan whole chromosomes into one bigWig per marker, plus a UCSC / IGV hub.

    Each marker's observed peaks (the intervals its labels are made of) join the hub as bigBed
    tracks in an "Observed peaks" composite, so predictions and data share one view
    (--no-peaks: neither written nor shown).

    On several GPUs or machines: torchrun --nproc-per-node N -m regtracks predict ... (each
    process writes the tracks of its share of the markers; the files equal one process's).
    """
    from regtracks.inference.predict import predict as run_predict

    hub_options = {"genome_name": genome_name, "one_file": one_file, "peaks": peaks}
    plan = model.use_threads(writers=writers)
    with torchrun_view("predicting") as (main, update):
        res = run_predict(
            model.run,
            out,
            chroms=list(names(chrom) or []),
            **model.kwargs(),
            **select.kwargs(),
            **scan.kwargs(),
            rc_average=rc_average,
            resume=resume,
            n_procs=plan.writers,
            bigwig_engine=bigwig_engine,
            build=not no_hub,
            peaks=peaks,
            hub_options={k: v for k, v in hub_options.items() if v is not None},
            progress=in_kbp(update),
        )
    if not main:
        return
    if res.skipped:
        info(f"kept {len(res.skipped)} complete track(s) from an earlier run (--resume)")
    if res.tracks:
        info(
            f"wrote {len(res.tracks)} track(s) over {len(res.chroms)} chromosome(s) "
            f"({res.bases:,} bp, {res.bp_per_s / 1e3:,.0f} kbp/s) at {scan.bin_size} bp to "
            f"{Path(out) / 'tracks'}"
        )
    seen = [c for c, s in res.splits.items() if s in ("train", "random")]
    if seen:
        test = [c for c, s in res.splits.items() if s == "test"]
        what = (
            "a random split put training windows on every chromosome"
            if any(res.splits[c] == "random" for c in seen)
            else f"{', '.join(seen)}: training chromosome(s)"
        )
        warn(
            f"{what}; the tracks there show data the model was fit to and look better than "
            "it is"
            + (f" (a test chromosome here: {', '.join(test)})" if test else "")
            + "; the track descriptions say which chromosomes are which"
        )
    if res.peak_tracks:
        info(f"{len(res.peak_tracks)} observed-peak track(s) beside them (--no-peaks: none)")
    if res.peaks_note:
        warn(res.peaks_note)
    tracks_notes(res, out, "windows")


# --- saliency ----------------------------------------------------------------------------------
@command(app, renamed={**MARKER_RENAMES, **SCAN_RENAMES})
def saliency(
    region: RegionOpt,
    out: Annotated[Path, out_option("Hub folder: tracks/sal_*.bw, manifest.json, hub files.")],
    model: ModelOptions,
    select: MarkerOptions = MarkerOptions(),
    reduce: ReduceOpt = DEFAULT_SALIENCY.reduce,
    target: TargetOpt = None,
    scan: SaliencyScanOptions = SaliencyScanOptions(),
    no_hub: NoHubOpt = False,
):
    """Gradient saliency of markers over a region (the paper's Figure 2) as bigWig tracks.

    The gradient is that of the sum of each marker's logits over its target outputs: its
    positive labels in the region (--target positives, the paper's "error of 1 from every
    positive output"), the positions the model calls (predicted, p > 0.5) or every position.

    On several GPUs or machines: torchrun --nproc-per-node N -m regtracks saliency ... (the
    region's chunks shared out; the tracks equal one process's).
    """
    from regtracks.inference.saliency import saliency as run_saliency

    model.use_threads()
    with torchrun_view("saliency") as (main, update):
        res = run_saliency(
            model.run,
            out,
            region=region,
            **model.kwargs(),
            **select.kwargs(),
            reduce=reduce,
            target=target,
            **scan.kwargs(),
            build=not no_hub,
            progress=in_kbp(update),
        )
    if not main:
        return
    if res.target_note:
        warn(res.target_note)
    s, e = res.span
    counts = ", ".join(f"{m} {n:,}" for m, n in list(res.targets.items())[:5])
    more = " ..." if len(res.targets) > 5 else ""
    info(
        f"wrote {len(res.tracks)} saliency track(s) for {res.chrom}:{res.start + 1:,}-{res.end:,} "
        f"(tracks cover {res.chrom}:{s + 1:,}-{e:,}, {res.seconds:.1f} s) to {Path(out) / 'tracks'}"
    )
    info(f"back-propagated from --target {res.target} outputs: {counts}{more}")
    if res.target == "predicted":
        none = [m for m, n in res.targets.items() if n == 0]
        if none:
            warn(f"no output predicted positive for {', '.join(none[:5])}: its track is zero")
    tracks_notes(res, out, "gradients")


# --- variants ----------------------------------------------------------------------------------
@command(app, renamed=MARKER_RENAMES)
def variants(
    vcf: VcfOpt,
    out: Annotated[
        Path,
        out_option(
            "Scores: a TSV (--format wide or long) or an HDF5 file (h5); <out>.skipped.tsv "
            "beside it lists the records not scored."
        ),
    ],
    model: ModelOptions,
    select: MarkerOptions = MarkerOptions(),
    radius: RadiusOpt = DEFAULT_VARIANTS.radius,
    fmt: VariantFormatOpt = "wide",
    vcf_out: VcfOutOpt = None,
    on_ref_mismatch: RefMismatchOpt = "skip",
    batch_size: Annotated[
        int, batch_size_option("Variants per forward pass.")
    ] = DEFAULT_VARIANTS.batch_size,
    precision: PrecisionOpt = DEFAULT_VARIANTS.precision,
):
    """Score variants: each marker's predicted probability around REF and ALT, and the change.

    Per allele and marker: diff (alt - ref mean probability within --radius bp), maxabs (the
    largest change at one position) and logodds (log-odds ratio of the mean probabilities).
    Nearby variants of a sorted VCF share one reference pass.

    On several GPUs or machines: torchrun --nproc-per-node N -m regtracks variants ... (blocks
    of records shared out; the files equal one process's).
    """
    from regtracks.inference.variants import score_variants

    model.use_threads()
    with torchrun_view("scoring") as (main, update):
        res = score_variants(
            model.run,
            vcf,
            out,
            **model.kwargs(),
            **select.kwargs(),
            radius=radius,
            batch_size=batch_size,
            precision=precision,
            fmt=fmt,
            vcf_out=vcf_out,
            on_ref_mismatch=on_ref_mismatch,
            progress=lambda done, total, label: update(done, total, f"records, {label}"),
        )
    if not main:
        return
    what = "variants" if fmt == "h5" else "rows"
    info(
        f"scored {res.variants:,} allele(s) of {res.records:,} record(s) ({res.rows:,} {what}, "
        f"{res.seconds:.1f} s, {res.variants_per_s:,.1f} variants/s) to {out}"
    )
    if res.skipped:
        warn(f"skipped {res.skipped:,}: {res.skip_summary()}; listed in {res.skipped_path}")
    if res.vcf_out is not None:
        info(f"annotated VCF: {res.vcf_out} (tabix index {res.index.name})")
    if not res.sorted:
        info(
            "note: the VCF is not sorted by position: only neighbouring records share windows "
            "(bcftools sort makes scoring faster)"
        )
