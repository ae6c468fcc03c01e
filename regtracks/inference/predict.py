"""Whole chromosomes -> one bigWig track per marker, listed in ``HUB/manifest.json``, + the hub.

``predict(RUN, HUB, chroms=["chr1"])`` loads the run's checkpoint, scans each chromosome with
:func:`regtracks.inference.scan.scan_chromosome` (probabilities binned by mean on the device)
and streams the bins to :class:`regtracks.tracks.bigwig.BigWigWriter` (parallel writer
processes, constant memory).
Tracks are ``HUB/tracks/pred_<marker>.bw``; every file's header lists the genome's chromosomes in
FASTA order; chromosomes not predicted simply carry no data. Files appear under their final name
only when complete.

Resume granularity: a whole track file. A bigWig cannot be appended to once closed, so a run
killed before its files were closed redoes every unfinished track; ``resume=True`` skips the
markers whose track is complete (header checked, zoom levels present) and was made by the same
checkpoint, bin size and chromosomes (recorded in the manifest). To make long runs resumable in
smaller steps, predict markers in groups (``markers=...`` / ``category=...``): each call
finishes its files.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from regtracks import __version__
from regtracks._util import RegtracksError, sha256_file
from regtracks.config import CATEGORY_COLORS, DEFAULT_SCAN, ScanDefaults

__all__ = ["predict", "PredictResult", "track_name", "test_pr_auc"]


@dataclass
class PredictResult:
    """What :func:`predict` wrote."""

    hub_dir: Path
    tracks: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    chroms: list[str] = field(default_factory=list)
    bases: int = 0
    scan_seconds: float = 0.0
    total_seconds: float = 0.0
    exact: bool = True
    plan: object = None
    hub: object = None


def track_name(prefix: str, marker: str) -> str:
    """File-system and hub friendly track name: ``pred_CTCF``."""
    safe = "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in marker)
    return f"{prefix}_{safe}"


def test_pr_auc(run_dir: Path) -> dict[str, float]:
    """Per-marker test PR-AUC from ``RUN/evaluate/test/report.json`` (empty when not evaluated)."""
    import json

    from regtracks.training.evaluate import report_dir

    path = report_dir(run_dir, "test") / "report.json"
    if not path.is_file():
        return {}
    try:
        rep = json.loads(path.read_text())
        return {
            m["name"]: m["pr_auc"] for m in rep.get("markers", []) if m.get("pr_auc") is not None
        }
    except (ValueError, KeyError, TypeError):
        return {}


def _check_writable(hub: Path) -> None:
    try:
        (hub / "tracks").mkdir(parents=True, exist_ok=True)
        probe = hub / "tracks" / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise RegtracksError(f"{hub}: output folder not writable ({exc.strerror})") from None


def predict(
    run: str | os.PathLike,
    hub_dir: str | os.PathLike,
    *,
    chroms: list[str],
    genome=None,
    markers: list[str] | None = None,
    category: str | None = None,
    bin_size: int = DEFAULT_SCAN.bin_size,
    window_len: int | None = None,
    batch_size: int = DEFAULT_SCAN.batch_size,
    device: str = "auto",
    precision: str = "auto",
    rc_average: bool = False,
    resume: bool = False,
    which: str = "best",
    n_procs: int | None = None,
    build: bool = True,
    hub_options: dict | None = None,
    cfg: ScanDefaults = DEFAULT_SCAN,
    progress=None,
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
    window_len : int, optional
        Model input length (default: see :func:`regtracks.inference.scan.plan_scan`).
    batch_size : int
        Windows per forward pass.
    device, precision : str
        As for training (``auto``: CUDA with bf16 when there).
    rc_average : bool
        Average with the prediction on the reverse complement.
    resume : bool
        Skip markers whose track is complete and made by this checkpoint with these options.
    which : {"best", "last"}
        Checkpoint of the run folder.
    n_procs : int, optional
        bigWig writer processes (default ``DEFAULT_BIGWIG.n_procs``; 0 = in this process).
    build : bool
        Write the UCSC hub and IGV files after the tracks.
    hub_options : dict, optional
        Keyword arguments of :func:`regtracks.tracks.hub.build_hub` (``one_file``, ``genome_name``,
        ...).
    progress : callable, optional
        ``progress(done_bp, total_bp, label)``.
    """
    from regtracks.checkpoint import load_dense
    from regtracks.inference.scan import plan_scan, scan_chromosome
    from regtracks.runtime import autocast_dtype, resolve_device
    from regtracks.tracks.bigwig import BigWigWriter, is_complete
    from regtracks.tracks.hub import build_hub
    from regtracks.tracks.manifest import load_manifest, update_manifest

    t_start = time.perf_counter()
    if batch_size < 1:
        raise RegtracksError(f"--batch-size must be at least 1, got {batch_size}")
    path, ck = load_dense(run, which=which, purpose="whole-chromosome tracks")
    g = ck.open_genome(genome)
    if not chroms:
        raise RegtracksError("name at least one chromosome with --chrom (or --chrom all)")
    if any(c == "all" for c in chroms):
        wanted = list(g.chroms)
    else:
        wanted = [g.require(c) for c in chroms]
    order = {c: i for i, c in enumerate(g.chroms)}
    wanted = sorted(set(wanted), key=order.__getitem__)  # bigWig blocks go in header order
    ms = ck.marker_set()
    idx = ms.select(names=markers, category=category)
    dev = resolve_device(device)
    amp = autocast_dtype(precision, dev)
    model = ck.build_model(device=dev)
    plan = plan_scan(
        getattr(model, "receptive_field", ck.raw["model"].get("receptive_field")),
        getattr(model, "stride", ck.raw["model"].get("stride", 1)),
        bin_size=bin_size,
        window_len=window_len,
        train_window=int(ck.raw["data"]["window_len"]),
    )
    hub = Path(hub_dir)
    _check_writable(hub)
    sha = sha256_file(path)
    chrom_sizes = list(g.chrom_sizes)
    scores = test_pr_auc(path.parent)
    command = " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).name, *sys.argv[1:]])
    prov_base = {
        "checkpoint": str(path.resolve()),
        "checkpoint_sha256": sha,
        "model": ck.model_name,
        "genome": g.name,
        "window_len": int(ck.raw["data"]["window_len"]),
        "scan_window": plan.window,
        "scan_margin": plan.margin,
        "exact_stitching": plan.exact,
        "rc_average": bool(rc_average),
        "command": command,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "regtracks_version": __version__,
    }
    existing = {}
    if resume and (hub / "manifest.json").is_file():
        existing = {t["name"]: t for t in load_manifest(hub)["tracks"]}
    todo, skipped = [], []
    for i in idx:
        m = ms[i]
        name = track_name("pred", m.name)
        file = hub / "tracks" / f"{name}.bw"
        old = existing.get(name)
        same = (
            old is not None
            and (old.get("provenance") or {}).get("checkpoint_sha256") == sha
            and old.get("bin_size") == bin_size
            and old.get("chroms") == wanted
            and bool((old.get("provenance") or {}).get("rc_average")) == bool(rc_average)
        )
        if same and is_complete(file, chrom_sizes):
            skipped.append(m.name)
        else:
            todo.append(i)
    result = PredictResult(hub_dir=hub, skipped=skipped, chroms=wanted, exact=plan.exact, plan=plan)
    if todo:
        paths = [hub / "tracks" / f"{track_name('pred', ms[i].name)}.bw" for i in todo]
        total = sum(g.sizes[c] for c in wanted)
        done = 0
        t_scan = 0.0
        with BigWigWriter(paths, chrom_sizes, bin_size=bin_size, n_procs=n_procs) as writer:
            for c in wanted:
                t0 = time.perf_counter()

                def tick(d, n, c=c, base=done):
                    if progress is not None:
                        progress(base + d, total, c)

                for start, values in scan_chromosome(
                    model,
                    g,
                    c,
                    plan=plan,
                    n_markers=len(ms),
                    marker_idx=todo,
                    batch_size=batch_size,
                    device=dev,
                    amp=amp,
                    rc_average=rc_average,
                    min_gap=cfg.min_gap,
                    progress=tick,
                ):
                    writer.add(c, start, values)
                t_scan += time.perf_counter() - t0
                done += g.sizes[c]
        result.tracks = paths
        result.bases = total
        result.scan_seconds = t_scan
        tracks = []
        for i, p in zip(todo, paths, strict=True):
            m = ms[i]
            prov = dict(prov_base)
            if m.name in scores:
                prov["test_pr_auc"] = scores[m.name]
            tracks.append(
                {
                    "name": track_name("pred", m.name),
                    "file": str(p.relative_to(hub)),
                    "kind": "prediction",
                    "marker": m.name,
                    "category": m.category,
                    "cell_type": m.cell_type,
                    "color": m.color or CATEGORY_COLORS[m.category],
                    "bin_size": bin_size,
                    "chroms": wanted,
                    "description": m.description,
                    "provenance": prov,
                }
            )
        genome_info = {
            "name": g.name,
            "fasta": str(g.path),
            "chrom_sizes": [list(x) for x in chrom_sizes],
        }
        update_manifest(hub, genome_info, tracks)
    if build:
        result.hub = build_hub(hub, **(hub_options or {}))
    result.total_seconds = time.perf_counter() - t_start
    return result
