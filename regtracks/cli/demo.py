"""``regtracks demo``: the whole pipeline on the synthetic genome, in minutes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from regtracks.cli.common import command, hub_hint, info, use_threads
from regtracks.cli.options import DeviceOpt, IgvJsOpt, MaxStepsOpt, ThreadsOpt, out_option
from regtracks.cli.training import TrainView, warn_at_chance
from regtracks.config import DEFAULT_DEMO, DEFAULT_RUNTIME

app = typer.Typer()

STAGES = {
    "simulate": "1/6 simulate",
    "train": "2/6 train",
    "evaluate": "3/6 evaluate",
    "predict": "4/6 predict",
    "saliency": "5/6 saliency",
    "variants": "6/6 variants",
}


class DemoView(TrainView):
    """The demo's stages, its training and its prediction bar."""

    task_p = None

    def __call__(self, ev: dict) -> None:
        kind = ev["event"]
        if kind == "stage":
            kept = " (done earlier, kept)" if ev.get("kept") else ""
            self.print(f"[bold]{STAGES[ev['stage']]}[/bold] -> {ev['path']}{kept}")
            if ev["stage"] == "predict":
                self.task_p = self.bar.add_task("predict", total=None, info="")
        elif kind == "predict":
            self.bar.update(
                self.task_p,
                completed=ev["done"] // 1000,
                total=ev["total"] // 1000,
                info=f"{ev['chrom']} (kbp)",
            )
        else:
            super().__call__(ev)


@command(app, renamed={"--steps": "--max-steps"})
def demo(
    out: Annotated[Path, out_option("Demo folder (sim/, run/, hub/).")] = Path("demo"),
    device: DeviceOpt = DEFAULT_RUNTIME.device,
    max_steps: MaxStepsOpt = DEFAULT_DEMO.max_steps,
    igv_js: IgvJsOpt = None,
    threads: ThreadsOpt = DEFAULT_RUNTIME.threads,
):
    """Simulate, train, evaluate, predict and write a hub: the whole pipeline, in minutes.

    Runs on the built-in synthetic genome: DIR/sim (genome), DIR/run (the dilated model and
    its test report), DIR/hub (tracks, UCSC hub, IGV session, igv.html). The default
    --max-steps takes a few minutes on 2 CPU cores.
    """
    from dataclasses import replace

    from regtracks.demo import demo as run_demo

    # one loader worker beside training; the bigWig writers run after training, with the cores
    # it leaves (DEFAULT_BIGWIG.n_procs)
    use_threads(threads, device, workers=DEFAULT_DEMO.workers, writers=0)
    with DemoView() as view:
        cfg = replace(DEFAULT_DEMO, max_steps=max_steps)
        res = run_demo(out, cfg, device=device, igv_js=igv_js, on_event=view)
    cats = res.report["categories"]
    line = ", ".join(
        f"{c} {v['pr_auc']:.3f} (chance {v['mean_positive_rate']:.3f})"
        for c, v in cats.items()
        if v.get("pr_auc") is not None
    )
    info(f"test PR-AUC by category: {line}")
    warn_at_chance(res.report)
    info(f"report: {res.run / 'evaluate' / 'test' / 'report.md'}")
    sal = res.saliency
    info(
        f"saliency of {res.saliency_marker} around a planted site with a distal partner: "
        f"{sal.chrom}:{sal.start + 1:,}-{sal.end:,} (track sal_{res.saliency_marker})"
    )
    peaks = res.saliency_peaks
    if peaks:
        on = [p["nearest_motif"] for p in peaks if p["on_site"]]
        info(
            f"its {len(peaks)} strongest 15 bp peaks: {len(on)} on planted sites"
            + (f" ({', '.join(on)})" if on else "")
            + "; strongest at "
            + f"{sal.chrom}:{peaks[0]['position']:,} ({peaks[0]['nearest_motif']} site "
            + f"{peaks[0]['distance']:+d} bp)"
        )
    v = res.variants
    info(
        f"variants: {v['alleles']} knock-outs of planted TFBS sites change their own marker's "
        f"probability by {v['own_mean_diff']:+.4f} on average, the other TFBS markers' by "
        f"{v['other_mean_diff']:+.4f} ({v['tsv']})"
    )
    hub_hint(res.hub)
