"""``regtracks demo``: simulate -> train -> evaluate -> predict every chromosome -> hub.

Everything lands in one folder::

    DIR/sim/    the synthetic genome (regtracks simulate)
    DIR/run/    the trained dilated model (best.pt, last.pt, metrics.jsonl, evaluate/test/)
    DIR/hub/    one bigWig per marker, manifest.json, UCSC assembly hub, IGV session, igv.html
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from regtracks.config import DEFAULT_DATA, DEFAULT_DEMO, DEFAULT_TRAIN, DemoConfig

__all__ = ["demo", "DemoResult"]


@dataclass
class DemoResult:
    """Where the demo wrote, and its test PR-AUC per category."""

    out_dir: Path
    sim: Path
    run: Path
    hub: Path
    report: dict
    predict: object


def demo(
    out_dir: str | os.PathLike,
    cfg: DemoConfig = DEFAULT_DEMO,
    *,
    device: str = "auto",
    igv_js: str | os.PathLike | None = None,
    progress=None,
) -> DemoResult:
    """Run the whole pipeline on the built-in synthetic genome.

    Parameters
    ----------
    out_dir : path
        Demo folder (``sim/``, ``run/``, ``hub/``); a finished stage is not redone.
    cfg : DemoConfig
    device : str
        ``auto``, ``cpu`` or ``cuda``.
    igv_js : path, optional
        A local igv.min.js for an offline ``igv.html``.
    progress : callable, optional
        ``progress(event: dict)``: ``{"event": "stage", "stage": name}`` and the events of
        :func:`regtracks.train.train`, plus ``{"event": "predict", ...}`` ticks.
    """
    from regtracks.evaluate import evaluate
    from regtracks.predict import predict
    from regtracks.simulate import simulate
    from regtracks.train import train

    def stage(name: str, **kw):
        if progress is not None:
            progress({"event": "stage", "stage": name, **kw})

    out = Path(out_dir)
    sim, run, hub = out / "sim", out / "run", out / "hub"
    if not (sim / "markers.tsv").is_file():
        stage("simulate", path=str(sim))
        simulate(sim, cfg.sim)
    else:
        stage("simulate", path=str(sim), kept=True)
    data_cfg = replace(DEFAULT_DATA, window_len=cfg.window_len)
    train_cfg = replace(
        DEFAULT_TRAIN,
        model=cfg.model,
        hparams=dict(cfg.hparams),
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        max_steps=cfg.max_steps,
        epochs=0,
        eval_every=cfg.eval_every,
        max_eval_batches=cfg.max_eval_batches,
        workers=cfg.workers,
        device=device,
        patience=0,
    )
    finished = (run / "best.pt").is_file() and not (run / "last.pt").is_file()
    if (run / "last.pt").is_file():
        import torch

        st = torch.load(run / "last.pt", weights_only=True)["state"]
        finished = st["step"] >= cfg.max_steps
    if not finished:
        stage("train", path=str(run))
        train(
            sim / "genome.fa",
            sim / "markers.tsv",
            run,
            train_cfg,
            data_cfg=data_cfg,
            resume=(run / "last.pt").is_file(),
            progress=progress,
        )
    else:
        stage("train", path=str(run), kept=True)
    stage("evaluate", path=str(run / "evaluate" / "test"))
    report = evaluate(run, split="test", device=device, workers=cfg.workers)
    stage("predict", path=str(hub))
    res = predict(
        run,
        hub,
        chroms=["all"],
        bin_size=cfg.bin_size,
        device=device,
        hub_options={"igv_js": igv_js} if igv_js else None,
        progress=lambda d, t, c: (
            progress and progress({"event": "predict", "done": d, "total": t, "chrom": c})
        ),
    )
    return DemoResult(out_dir=out, sim=sim, run=run, hub=hub, report=report, predict=res)
