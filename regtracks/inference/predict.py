"""Whole chromosomes -> one bigWig track per marker, listed in ``HUB/manifest.json``, + the hub.

``predict(RUN, HUB, chroms=["chr1"])`` loads the run's checkpoint, scans each chromosome with
:func:`regtracks.inference.scan.scan_chromosome` (probabilities binned by mean on the device)
and streams the bins to :class:`regtracks.tracks.bigwig.BigWigWriter` (parallel writer
processes, constant memory).
Tracks are ``HUB/tracks/pred_<marker>.bw``; every file's header lists the genome's chromosomes in
FASTA order; chromosomes not predicted simply carry no data. Files appear under their final name
only when complete.

A hub accumulates: a second call into the same hub with other chromosomes keeps the
chromosomes of the first in each track (copied from the earlier file into the new one, which
replaces it when complete) when both calls used the same checkpoint, bin size and
``rc_average``; otherwise it stops, before scanning, with one line naming the file. Tracks of
other markers are kept in the manifest as they are.

Resume granularity: a whole track file. A bigWig cannot be appended to once closed, so a run
killed before its files were closed redoes every unfinished track; ``resume=True`` skips the
markers whose track is complete (header checked, zoom levels present) and was made by the same
checkpoint, bin size and chromosomes (recorded in the manifest). To make long runs resumable in
smaller steps, predict markers in groups (``markers=...`` / ``category=...``): each call
finishes its files.

Under torchrun (``torchrun --nproc-per-node N -m regtracks predict ...``) the N processes split
the markers: process ``r`` writes the complete tracks (every chromosome) of its contiguous
share of the markers to be written, scanning each chromosome for those markers alone, and
process 0, which holds the hub's lock for all of them, writes the manifest, the observed-peak
tracks and the hub once every process has finished its files. Each file is made by the same
scan and writer as in one process, from the same per-chromosome values, so the tracks equal
those of one process value for value, with nothing to merge and no temporary copy of the
data. Each process runs the model over every chromosome: the split shares the per-marker work
(probabilities, bins, copies to the host, the bigWig writing), not the model's own forward.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from regtracks._util import RegtracksError, folder_lock, remove_stale_temps
from regtracks.config import CATEGORY_COLORS, DEFAULT_RUNTIME, DEFAULT_SCAN, ScanDefaults
from regtracks.inference.session import (
    check_writable,
    open_session,
    scan_window_arg,
    test_pr_auc,
    track_name,
)

__all__ = ["predict", "PredictResult", "track_name", "test_pr_auc"]


@dataclass
class PredictResult:
    """What :func:`predict` wrote; ``splits`` maps each chromosome predicted to its training
    split (``train``, ``valid``, ``test``, ``unused`` or ``random``); ``kept`` lists the
    chromosomes an earlier call had predicted into these tracks, copied into them;
    ``peak_tracks`` the observed-peak tracks in the hub, ``peaks_note`` why there are none or
    what was clipped."""

    hub_dir: Path
    tracks: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    chroms: list[str] = field(default_factory=list)
    bases: int = 0
    scan_seconds: float = 0.0
    total_seconds: float = 0.0
    exact: bool = True
    splits: dict = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)
    peak_tracks: list[str] = field(default_factory=list)
    peaks_note: str | None = None
    plan: object = None
    hub: object = None

    @property
    def bp_per_s(self) -> float:
        """Bases predicted per second of the whole call."""
        return self.bases / max(self.total_seconds, 1e-9)


def _peak_tracks(sess, hub: Path, chrom_sizes, old: dict) -> tuple[list[dict], str | None]:
    """Observed-peak bigBed tracks of the selected markers (``HUB/tracks/peaks_<marker>.bb``):
    their manifest records and a note (None, or why there are none / what was clipped).

    The intervals are the merged peaks the labels are made of (``MarkerSet.read``: chromosome
    names reconciled with the genome), clipped to the chromosome ends. A track whose peak file
    is unchanged since it was written (path, size, mtime recorded) is kept as it is; ``old``
    holds the hub's records by name, as read before this call.
    """
    from regtracks.data.markers import MarkerSet
    from regtracks.tracks.bigbed import write_peaks_bigbed

    chosen = [sess.markers[i] for i in sess.marker_idx]
    sub = MarkerSet(chosen)
    missing = [m.name for m in chosen if not sub.peak_path(m).is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        return [], (
            f"no observed-peak tracks: the peak files of {shown} recorded in the checkpoint are "
            "not there (moved?)"
        )
    source = {}
    for m in chosen:
        path = sub.peak_path(m)
        st = path.stat()
        source[m.name] = {"source": str(path), "source_size": st.st_size,
                          "source_mtime_ns": st.st_mtime_ns}  # fmt: skip
    todo = []
    records, clipped = [], 0
    for m in chosen:
        rec = old.get(track_name("peaks", m.name))
        prov = (rec or {}).get("provenance") or {}
        if (
            rec
            and rec["kind"] == "peaks"
            and (hub / rec["file"]).is_file()
            and all(prov.get(k) == v for k, v in source[m.name].items())
        ):
            records.append(rec)
        else:
            todo.append(m)
    if todo:
        intervals = MarkerSet(todo).read(sess.genome)
        for k, m in enumerate(todo):
            name = track_name("peaks", m.name)
            file = hub / "tracks" / f"{name}.bb"
            n, cut = write_peaks_bigbed(file, chrom_sizes, intervals.per_marker[k], name=m.name)
            clipped += cut
            if n == 0:
                continue
            records.append(
                {
                    "name": name,
                    "file": str(file.relative_to(hub)),
                    "kind": "peaks",
                    "marker": m.name,
                    "category": m.category,
                    "cell_type": m.cell_type,
                    "color": m.color or CATEGORY_COLORS[m.category],
                    "n_intervals": n,
                    "description": m.description,
                    "provenance": {**source[m.name], "clipped": cut},
                }
            )
    note = None
    if clipped:
        note = f"observed peaks: {clipped:,} interval(s) cut at, or past, a chromosome end"
    return records, note


def _copy_chrom(writer, chrom, size, todo, paths, carry, bin_size, cfg) -> None:
    """Feed ``writer`` the bins of ``chrom`` from the earlier files of the tracks that keep it
    (NaN, no data, for the others), in blocks of bounded size."""
    import numpy as np

    from regtracks.tracks.bigwig import read_bins

    rows = [k for k, i in enumerate(todo) if chrom in carry.get(i, ())]
    n_all = -(-size // bin_size)
    step = max(1, cfg.copy_block_bins)
    for j0 in range(0, n_all, step):
        n = min(step, n_all - j0)
        block = np.full((len(todo), n), np.nan, dtype=np.float32)
        for k in rows:
            block[k] = read_bins(paths[k], chrom, j0 * bin_size, n, bin_size=bin_size)
        if np.isfinite(block).any():
            writer.add(chrom, j0 * bin_size, block)


MIN_BYTES_PER_BIN = 1.0
"""A floor on a prediction bigWig's size per bin and track (zlib-compressed float32 with zoom
levels and index; the demo's tracks take 3.8 bytes per 128-bp bin). Below this much free space a
run cannot finish, and is refused before scanning."""


def check_space(hub: Path, n_tracks: int, n_bins: int) -> None:
    """Refuse a scan whose tracks cannot fit on the hub's disk (:data:`MIN_BYTES_PER_BIN`)."""
    import shutil

    need = int(n_tracks * n_bins * MIN_BYTES_PER_BIN)
    free = shutil.disk_usage(hub).free
    if free < need:
        raise RegtracksError(
            f"{hub}: {n_tracks} track(s) of {n_bins:,} bins need at least {need / 2**20:,.1f} MiB "
            f"and its disk has {free / 2**20:,.1f} MiB free; free some space or write elsewhere"
        )


def predict(
    run: str | os.PathLike,
    hub_dir: str | os.PathLike,
    *,
    chroms: list[str],
    genome=None,
    markers: list[str] | None = None,
    category: str | None = None,
    bin_size: int = DEFAULT_SCAN.bin_size,
    scan_window: int | None = None,
    batch_size: int = DEFAULT_SCAN.batch_size,
    device: str = DEFAULT_RUNTIME.device,
    precision: str = DEFAULT_SCAN.precision,
    rc_average: bool = False,
    resume: bool = False,
    which: str = DEFAULT_RUNTIME.checkpoint,
    n_procs: int | None = None,
    bigwig_engine: str | None = None,
    build: bool = True,
    peaks: bool = True,
    hub_options: dict | None = None,
    cfg: ScanDefaults = DEFAULT_SCAN,
    progress=None,
    window_len: int | None = None,
) -> PredictResult:
    """Scan chromosomes with a run's dense model into bigWig tracks and a browser hub.

    Parameters
    ----------
    run : path
        Run folder or checkpoint (dense task).
    hub_dir : path
        Output hub folder (``tracks/``, ``manifest.json``, hub files).
    chroms : list of str
        Chromosomes to predict; ``["all"]`` for every chromosome of the genome.
    genome : path, optional
        Genome FASTA (default: the one recorded in the checkpoint); its chromosome names and
        sizes must match the checkpoint's.
    markers, category : optional
        Predict only these markers, or one category (default: all markers).
    bin_size : int
        Track resolution in bp (1 allowed).
    scan_window : int, optional
        Model input length while scanning (default: see
        :func:`regtracks.inference.scan.plan_scan`).
    batch_size : int
        Windows per forward pass.
    device, precision : str
        As for training (``auto``: CUDA with bf16 when there).
    rc_average : bool
        Average with the prediction on the reverse complement.
    resume : bool
        Skip markers whose track is complete, made by this checkpoint with these options, and
        holds every chromosome asked for.
    which : {"best", "last"}
        Checkpoint of the run folder.
    n_procs : int, optional
        bigWig writer processes (default ``DEFAULT_BIGWIG.n_procs``; 0 = in this process).
    bigwig_engine : {"native", "pybigwig", "figwig"}, optional
        The library that writes the tracks (default ``DEFAULT_BIGWIG.engine``; see
        :class:`regtracks.tracks.bigwig.BigWigWriter`).
    build : bool
        Write the UCSC hub and IGV files after the tracks.
    peaks : bool
        Add each selected marker's observed peaks (the intervals of its labels) as a bigBed
        track, ``HUB/tracks/peaks_<marker>.bb``, shown in the composite "Observed peaks".
    hub_options : dict, optional
        Keyword arguments of :func:`regtracks.tracks.hub.build_hub` (``one_file``, ``genome_name``,
        ...).
    progress : callable, optional
        ``progress(done_bp, total_bp, label)``.
    window_len : int, optional
        Deprecated name of ``scan_window`` (``DeprecationWarning``); removed in the next release.
    """
    from regtracks.runtime import job as torchrun_job
    from regtracks.tracks.bigwig import check_engine
    from regtracks.tracks.hub import check_hub_options

    t_start = time.perf_counter()
    # torchrun: every process checks the input alike; an error on any is told to all (job)
    with contextlib.ExitStack() as hold, torchrun_job(device) as job:
        bigwig_engine = check_engine(bigwig_engine)  # before the model loads
        scan_window = scan_window_arg(scan_window, window_len, caller="predict")
        if batch_size < 1:
            raise RegtracksError(f"--batch-size must be at least 1, got {batch_size}")
        if not chroms:
            raise RegtracksError("name at least one chromosome with --chrom (or --chrom all)")
        sess = open_session(
            run, genome=genome, which=which, markers=markers, category=category, device=device,
            precision=precision, purpose="whole-chromosome tracks",
        )  # fmt: skip
        g = sess.genome
        if any(c == "all" for c in chroms):
            wanted = list(g.chroms)
        else:
            wanted = [g.require(c) for c in chroms]
        order = {c: i for i, c in enumerate(g.chroms)}
        wanted = sorted(set(wanted), key=order.__getitem__)  # bigWig blocks go in header order
        plan = sess.plan(bin_size, scan_window)
        hub = Path(hub_dir)
        check_hub_options(**((hub_options or {}) if build else {}))
        check_writable(hub)
        if job.is_main:  # torchrun: process 0 holds the hub's lock for every process
            hold.enter_context(folder_lock(hub, "regtracks predict"))
            remove_stale_temps(hub)  # of killed runs: no live writer is in this folder now
        job.sync()  # the others write only once the lock is held and the stale temps gone
        return _predict_locked(
            sess, hub, wanted, plan, order, bin_size=bin_size, batch_size=batch_size,
            rc_average=rc_average, resume=resume, n_procs=n_procs, bigwig_engine=bigwig_engine,
            build=build, peaks=peaks, hub_options=hub_options, cfg=cfg, progress=progress,
            t_start=t_start, job=job,
        )  # fmt: skip


def _predict_locked(
    sess, hub: Path, wanted, plan, order, *, bin_size, batch_size, rc_average, resume, n_procs,
    bigwig_engine, build, peaks, hub_options, cfg, progress, t_start, job=None,
) -> PredictResult:  # fmt: skip
    """The body of :func:`predict`, run while holding the hub folder's lock (torchrun: ``job``,
    a :class:`~regtracks.runtime.DistJob`; this process writes its share of the tracks)."""
    from regtracks.inference.scan import scan_chromosome
    from regtracks.runtime import DistJob
    from regtracks.tracks.bigwig import BigWigWriter, is_complete
    from regtracks.tracks.hub import build_hub
    from regtracks.tracks.manifest import check_hub_genome, update_manifest

    job = job or DistJob()
    g, ms = sess.genome, sess.markers
    chrom_sizes = list(g.chrom_sizes)
    prov_base = sess.provenance(
        scan_window=plan.window,
        scan_margin=plan.margin,
        exact_stitching=plan.exact,
        rc_average=bool(rc_average),
    )
    existing = {}
    manifest = check_hub_genome(hub, chrom_sizes, g.name)
    if manifest is not None:
        existing = {t["name"]: t for t in manifest["tracks"]}
    todo, skipped, carry = [], [], {}
    for i in sess.marker_idx:
        m = ms[i]
        name = track_name("pred", m.name)
        file = hub / "tracks" / f"{name}.bw"
        old = existing.get(name)
        old_prov = (old or {}).get("provenance") or {}
        old_chroms = [c for c in (old or {}).get("chroms") or [] if c in order]
        compatible = (
            old is not None
            and old.get("kind") == "prediction"
            and old_prov.get("checkpoint_sha256") == sess.sha256
            and old.get("bin_size") == bin_size
            and bool(old_prov.get("rc_average")) == bool(rc_average)
            and is_complete(file, chrom_sizes)
        )
        if resume and compatible and set(wanted) <= set(old_chroms):
            skipped.append(m.name)
            continue
        todo.append(i)
        # a hub accumulates: chromosomes an earlier call predicted, and this one does not,
        # are copied into the new file, or the call stops here, before scanning
        keep = [c for c in old_chroms if c not in wanted]
        if not keep:
            continue
        if not compatible:
            why = (
                "another checkpoint"
                if old_prov.get("checkpoint_sha256") != sess.sha256
                else f"bin size {old.get('bin_size')}"
                if old.get("bin_size") != bin_size
                else "another --rc-average"
                if bool(old_prov.get("rc_average")) != bool(rc_average)
                else "a file that is not complete"
            )
            every = sorted(set(old_chroms) | set(wanted), key=order.__getitem__)
            raise RegtracksError(
                f"{file} holds {', '.join(keep)} from {why}; predicting {', '.join(wanted)} "
                f"would drop it: predict them all with this run and options "
                f"(--chrom {','.join(every)}), or write into another --out"
            )
        carry[i] = keep
    result = PredictResult(
        hub_dir=hub,
        skipped=skipped,
        chroms=wanted,
        exact=plan.exact,
        splits=sess.chrom_splits(wanted),
        plan=plan,
    )
    if todo:
        paths = [hub / "tracks" / f"{track_name('pred', ms[i].name)}.bw" for i in todo]
        total = sum(g.sizes[c] for c in wanted)
        check_space(hub, len(todo), sum(-(-g.sizes[c] // bin_size) for c in wanted))
        done = 0
        t_scan = 0.0
        kept_chroms = {c for cs in carry.values() for c in cs}
        every = sorted(set(wanted) | kept_chroms, key=order.__getitem__)
        # torchrun: this process writes the tracks of its share of the markers, over every
        # chromosome; todo_all / paths_all are every process's
        todo_all, paths_all = todo, paths
        share = job.share(len(todo_all))
        todo, paths = [todo_all[k] for k in share], [paths_all[k] for k in share]
        if not todo:  # more processes than markers: nothing of its own to write
            every = []
        with (
            BigWigWriter(
                paths, chrom_sizes, bin_size=bin_size, n_procs=n_procs, engine=bigwig_engine
            )
            if todo
            else contextlib.nullcontext()
        ) as writer:
            for c in every:
                if c not in wanted:
                    _copy_chrom(writer, c, g.sizes[c], todo, paths, carry, bin_size, cfg)
                    continue
                t0 = time.perf_counter()

                def tick(d, n, c, base=done):
                    if progress is not None:
                        progress(base + d, total, c)

                for start, values in scan_chromosome(
                    sess.model,
                    g,
                    c,
                    plan=plan,
                    n_markers=len(ms),
                    marker_idx=todo,
                    batch_size=batch_size,
                    device=sess.device,
                    amp=sess.amp,
                    rc_average=rc_average,
                    min_gap=cfg.min_gap,
                    progress=tick,
                ):
                    writer.add(c, start, values)
                t_scan += time.perf_counter() - t0
                done += g.sizes[c]
        job.sync()  # every process's tracks are complete: process 0 lists them
        todo, paths = todo_all, paths_all
        result.tracks = paths
        result.bases = total
        result.scan_seconds = t_scan
        result.kept = sorted(kept_chroms, key=order.__getitem__)
        tracks = []
        for i, p in zip(todo, paths, strict=True):
            chroms_i = sorted(set(wanted) | set(carry.get(i, [])), key=order.__getitem__)
            tracks.append(
                sess.track_record(
                    i,
                    name=track_name("pred", ms[i].name),
                    file=str(p.relative_to(hub)),
                    kind="prediction",
                    bin_size=bin_size,
                    chroms=chroms_i,
                    provenance=prov_base,
                )
            )
        if job.is_main:
            update_manifest(hub, sess.genome_record(), tracks)
    if peaks and job.is_main:
        records, result.peaks_note = _peak_tracks(sess, hub, chrom_sizes, existing)
        if records:
            update_manifest(hub, sess.genome_record(), records)
        result.peak_tracks = [r["name"] for r in records]
    if build and job.is_main:
        result.hub = build_hub(hub, **(hub_options or {}))
    result.total_seconds = time.perf_counter() - t_start
    return result
