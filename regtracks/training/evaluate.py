"""Evaluate a checkpoint on a split: PR-AUC and ROC-AUC per marker over every position.

Tensor contract: the model maps ``(N, 4, L)`` to ``(N, M, L)`` logits (dense) or ``(N, 4, 1000)``
to ``(N, M)`` (sequence); labels have the logits' shape. Scores stream into per-marker
histograms on the device (:class:`regtracks.training.metrics.StreamingMetrics`); nothing else is
kept, so a whole split of billions of scores costs a few hundred MB at most.

``evaluate(RUN, split="test")`` writes ``RUN/evaluate/<split>/report.json``, ``report.md`` and
``pr_<category>.png`` (see :mod:`regtracks.training.report`).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from regtracks._util import RegtracksError, check_output_folder
from regtracks.config import DEFAULT_EVAL, DEFAULT_RUNTIME

__all__ = ["evaluate", "evaluate_loader", "report_dir"]


@torch.inference_mode()
def evaluate_loader(
    model,
    loader,
    *,
    n_markers: int,
    device: torch.device,
    amp: torch.dtype | None = None,
    max_batches: int | None = None,
    distributed: bool = False,
    progress=None,
):
    """Stream a loader's batches through ``model``; return ``(MetricsResult, StreamingMetrics)``.

    Parameters
    ----------
    model : nn.Module
        In eval mode, on ``device``.
    loader : DataLoader
        Yields :class:`regtracks.data.datasets.DenseBatch` (codes + interval rows or labels).
    n_markers : int
    device : torch.device
    amp : torch.dtype, optional
        Autocast dtype.
    max_batches : int, optional
        Stop after this many batches (quick validation during training).
    distributed : bool
        Sum the histograms over torch.distributed processes.
    progress : callable, optional
        ``progress(done_batches, total_batches, "batches")`` after each batch (the shape of
        every counted progress report in regtracks: done, total, label).
    """
    from regtracks.data.datasets import to_device
    from regtracks.training.metrics import StreamingMetrics

    sm = StreamingMetrics(n_markers, device=device)
    total = len(loader) if max_batches is None else min(len(loader), max_batches)
    for i, batch in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        x, y = to_device(batch, n_markers, device)
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            logits = model(x)
        sm.update(logits, y)
        if progress is not None:
            progress(i + 1, total, "batches")
    if distributed:
        sm.all_reduce()
    return sm.compute(), sm


def report_dir(run: str | os.PathLike, split: str) -> Path:
    """Where :func:`evaluate` writes by default: ``RUN/evaluate/<split>``."""
    run = Path(run)
    return (run.parent if run.is_file() else run) / "evaluate" / split


def evaluate(
    run: str | os.PathLike,
    *,
    split: str = DEFAULT_EVAL.split,
    genome=None,
    which: str = DEFAULT_RUNTIME.checkpoint,
    out_dir: str | os.PathLike | None = None,
    device: str = DEFAULT_RUNTIME.device,
    precision: str = DEFAULT_RUNTIME.precision,
    batch_size: int = DEFAULT_EVAL.batch_size,
    workers: int = DEFAULT_EVAL.workers,
    task_data=None,
    progress=None,
) -> dict:
    """Evaluate the run's checkpoint on ``split`` and write the report.

    Parameters
    ----------
    run : path
        Run folder (or a checkpoint file).
    split : {"valid", "test", "train"}
    genome : path, optional
        The genome FASTA (default: the one recorded in the checkpoint).
    which : {"best", "last"}
        Checkpoint of the run folder.
    out_dir : path, optional
        Report folder (default ``RUN/evaluate/<split>``).
    device, precision, batch_size, workers
        As for training.
    task_data : TaskData, optional
        The run's data already prepared (``benchmark`` passes it, so the peak files are not
        read again for every evaluation); its markers and window length must be the run's.
    progress : callable, optional
        ``progress(done_batches, total_batches, "batches")`` (see :func:`evaluate_loader`).

    Returns
    -------
    dict
        The report (as written to ``report.json``).
    """
    from regtracks.checkpoint import find_checkpoint, load_checkpoint
    from regtracks.data.prepare import positive_fraction, prepare
    from regtracks.runtime import DistEnv, autocast_dtype, resolve_device
    from regtracks.training.loaders import ShardSampler, make_dataset, make_loader
    from regtracks.training.report import build_report, write_report

    if split not in ("train", "valid", "test"):
        raise RegtracksError(f"--split must be valid or test (or train), got {split!r}")
    if batch_size < 1:
        raise RegtracksError(f"--batch-size must be at least 1, got {batch_size}")
    path = find_checkpoint(run, which=which)
    ck = load_checkpoint(path)
    dev = resolve_device(device)
    amp = autocast_dtype(precision, dev)
    out = check_output_folder(out_dir if out_dir is not None else report_dir(path, split),
                              "report folder")  # fmt: skip
    g = ck.open_genome(genome)
    markers = ck.marker_set()
    if task_data is not None:
        td = task_data
        if (td.task, td.markers.names, td.cfg.window_len) != (
            ck.task,
            markers.names,
            ck.data_config.window_len,
        ):
            raise RegtracksError(f"the data passed to evaluate is not the data of {path.name}")
    else:
        exclude = ck.exclude
        if exclude and not Path(exclude).is_file():
            raise RegtracksError(f"{exclude}: exclude BED recorded in {path.name} not found")
        td = prepare(g, markers, task=ck.task, cfg=ck.data_config, exclude=exclude)
    recorded = ck.split_record
    if recorded.get("mode") == "chrom" and recorded.get("chroms") != td.samples.split_info.chroms:
        raise RegtracksError(
            f"the split rebuilt from {path.name} differs from the one it was trained on "
            f"({recorded.get('chroms')})"
        )
    ds, collate = make_dataset(td, split)
    if len(ds) == 0:
        raise RegtracksError(f"the {split} split of this run is empty")
    model = ck.build_model(device=dev)
    loader = make_loader(
        ds,
        ShardSampler(len(ds), DistEnv()),
        collate,
        batch_size=batch_size,
        workers=workers,
        device=dev,
    )
    result, sm = evaluate_loader(
        model, loader, n_markers=td.n_markers, device=dev, amp=amp, progress=progress
    )
    extra = {
        "run": str(path.parent.resolve()),
        "checkpoint": str(path.resolve()),
        "model": ck.model_name,
        "task": ck.task,
        "genome": g.name,
        "windows": len(ds),
        "window_len": td.samples.length,
        "positions": int(len(ds) * (td.samples.length if td.task == "dense" else 1)),
        "step": ck.step,
    }
    report = build_report(result, markers, split=split, extra=extra)
    written = write_report(report, out, curves=sm)
    metrics = path.parent / "metrics.jsonl"
    if metrics.is_file():  # the run's learning curves beside its report
        from regtracks.training.curves import write_curves
        from regtracks.training.metrics import category_means

        chance = category_means(positive_fraction(td, "valid"), td.markers.categories)
        write_curves(metrics, out / "curves.png", chance=chance)
    return written
