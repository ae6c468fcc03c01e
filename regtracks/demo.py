"""``regtracks demo``: simulate -> train -> evaluate -> predict -> saliency -> variants.

Everything lands in one folder::

    DIR/sim/            the synthetic genome (regtracks simulate)
    DIR/run/            the trained dilated model (best.pt, last.pt, metrics.jsonl, evaluate/)
    DIR/hub/            one bigWig per marker, a saliency track, manifest.json, UCSC assembly
                        hub, IGV session, igv.html
    DIR/variants.vcf    knock-outs of planted TFBS motif sites on the test chromosome
    DIR/variants.tsv    their effect scores (regtracks variants)

The last two stages check the model against the rules the genome was made with: the saliency
track explains a distal marker around one of its planted sites that has a partner site 1-5 kb
away, and knocking out a motif site should lower its own marker's prediction more than the
other markers'.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from regtracks._util import parse_region, renamed_keyword
from regtracks.config import DEFAULT_DATA, DEFAULT_DEMO, DEFAULT_RUNTIME, DEFAULT_TRAIN, DemoConfig

__all__ = ["demo", "DemoResult", "saliency_peaks"]


@dataclass
class DemoResult:
    """Where the demo wrote, and its test PR-AUC per category."""

    out_dir: Path
    sim: Path
    run: Path
    hub: Path
    report: dict
    predict: object
    saliency: object = None
    saliency_marker: str = ""
    # the strongest saliency peaks of the region, each with the nearest planted site
    saliency_peaks: list = field(default_factory=list)
    variants: dict = field(default_factory=dict)


def demo(
    out_dir: str | os.PathLike,
    cfg: DemoConfig = DEFAULT_DEMO,
    *,
    device: str = DEFAULT_RUNTIME.device,
    igv_js: str | os.PathLike | None = None,
    on_event=None,
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
    on_event : callable, optional
        ``on_event(event: dict)``: ``{"event": "stage", "stage": name}`` and the events of
        :func:`regtracks.training.train.train`, plus ``{"event": "predict", "done": bp,
        "total": bp, "chrom": name}`` ticks.
    progress : callable, optional
        Deprecated name of ``on_event`` (``DeprecationWarning``); removed in the next release.
    """
    on_event = renamed_keyword(on_event, progress, caller="demo", new="on_event", old="progress")
    from regtracks.data.simulate import simulate
    from regtracks.inference.predict import predict
    from regtracks.training.evaluate import evaluate
    from regtracks.training.train import train

    def stage(name: str, **kw):
        if on_event is not None:
            on_event({"event": "stage", "stage": name, **kw})

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
        lr_decay=cfg.lr_decay,
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
            on_event=on_event,
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
        build=False,  # the saliency stage adds its track, then writes the hub once
        progress=lambda d, t, c: (
            on_event and on_event({"event": "predict", "done": d, "total": t, "chrom": c})
        ),
    )
    result = DemoResult(out_dir=out, sim=sim, run=run, hub=hub, report=report, predict=res)
    info = json.loads((sim / "simulation.json").read_text())
    test_chrom = list(info["chroms"])[-1]  # the automatic split tests on the last chromosome
    sites = _truth(sim / "truth.bed", test_chrom)
    region, marker = _saliency_target(info, sites, test_chrom)
    stage("saliency", path=str(hub / "tracks"))
    from regtracks.inference.saliency import saliency

    result.saliency = saliency(
        run, hub, region=region, markers=[marker], device=device,
        hub_options={"igv_js": igv_js} if igv_js else None,
    )  # fmt: skip
    result.saliency_marker = marker
    result.saliency_peaks = saliency_peaks(result.saliency.tracks[0], region, sites)
    stage("variants", path=str(out / "variants.tsv"))
    result.variants = _knockouts(run, sim, out, info, sites, test_chrom, cfg, device)
    return result


def _truth(path: Path, chrom: str) -> dict[str, np.ndarray]:
    """Planted site centres per motif on one chromosome (sorted)."""
    by: dict[str, list[int]] = {}
    with open(path) as fh:
        for line in fh:
            c, s, e, motif = line.split("\t")[:4]
            if c == chrom:
                by.setdefault(motif, []).append((int(s) + int(e)) // 2)
    return {k: np.array(sorted(v)) for k, v in by.items()}


def _saliency_target(info: dict, sites: dict, chrom: str) -> tuple[str, str]:
    """A 20 kb region around a distal marker's site that has a partner site 1-5 kb away."""
    lo, hi = info["config"]["distal_min"], info["config"]["distal_max"]
    size = info["chroms"][chrom]
    for m in info["markers"]:
        if m["rule"] != "distal":
            continue
        xs = sites.get(m["motif_names"][0], np.array([], dtype=int))
        ys = sites.get(m["partner_name"], np.array([], dtype=int))
        for x in xs:
            d = np.abs(ys - x)
            if ((d >= lo) & (d <= hi)).any() and 10_000 <= x <= size - 10_000:
                return f"{chrom}:{x - 10_000 + 1}-{x + 10_000}", m["name"]
    first = next(m for m in info["markers"] if m["category"] == "TFBS")  # no distal marker
    mid = size // 2
    return f"{chrom}:{mid - 10_000 + 1}-{mid + 10_000}", first["name"]


def saliency_peaks(
    track: str | os.PathLike, region: str, sites: dict, k: int = 5, width: int = 15
) -> list[dict]:
    """The ``k`` strongest saliency peaks of a region and the planted site nearest each.

    |saliency| is summed over ``width`` bp (about a motif's length); the peaks are the
    ``k`` highest sums at least ``width`` apart, each with the nearest planted site's motif
    and the distance from its centre (``on_site``: within ``width`` bp). On a model that
    learnt the rules the top of the track is on the marker's own motif and its partner's.
    """
    import pyBigWig

    chrom, start, end = parse_region(region)
    with pyBigWig.open(str(track)) as bw:
        v = np.nan_to_num(np.asarray(bw.values(chrom, start, end), dtype=np.float64))
    c = np.concatenate([[0.0], np.cumsum(np.abs(v))])
    score = c[width:] - c[:-width]  # score[i]: bases i .. i + width - 1
    order = np.argsort(-score, kind="stable")
    taken: list[int] = []
    for i in order:
        if len(taken) == k or score[i] <= 0:
            break
        if all(abs(int(i) - j) >= width for j in taken):
            taken.append(int(i))
    peaks = []
    for i in taken:
        centre = start + i + width // 2
        best = (None, None)
        for motif, xs in sites.items():
            if len(xs):
                j = int(np.argmin(np.abs(xs - centre)))
                d = int(xs[j]) - centre
                if best[1] is None or abs(d) < abs(best[1]):
                    best = (motif, d)
        peaks.append(
            {
                "position": centre + 1,  # 1-based, as a browser shows it
                "score": float(score[i]),
                "nearest_motif": best[0],
                "distance": best[1],
                "on_site": best[1] is not None and abs(best[1]) <= width,
            }
        )
    return peaks


def _knockouts(run, sim, out, info, sites, chrom, cfg, device) -> dict:
    """Score knock-outs of planted TFBS sites; mean change of own vs other TFBS markers."""
    from regtracks.data.genome import Genome
    from regtracks.inference.variants import score_variants

    tf = [m for m in info["markers"] if m["rule"] in ("local", "distal")]
    own_motif = {m["name"]: m["motif_names"][0] for m in tf}
    g = Genome(sim / "genome.fa")
    comp = str.maketrans("ACGT", "TGCA")
    rows = []
    for motif in sorted({m["motif_names"][0] for m in tf}):
        for k, c in enumerate(sites.get(motif, [])[: cfg.n_knockouts]):
            ref = g.fetch_text(chrom, int(c) - 2, int(c) + 2).upper()
            if len(ref) == 4 and set(ref) <= set("ACGT"):
                rows.append(f"{chrom}\t{int(c) - 1}\t{motif}_{k}\t{ref}\t{ref.translate(comp)}")
    header = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    from regtracks._util import write_text_atomic

    vcf = out / "variants.vcf"
    write_text_atomic(vcf, header + "".join(r + "\t.\t.\t.\n" for r in rows))
    tsv = out / "variants.tsv"
    score_variants(run, vcf, tsv, markers=list(own_motif), device=device)
    own, other = [], []
    with open(tsv) as fh:
        cols = fh.readline().rstrip("\n").split("\t")
        for line in fh:
            r = dict(zip(cols, line.rstrip("\n").split("\t"), strict=True))
            motif = r["id"].rsplit("_", 1)[0]
            (own if own_motif[r["marker"]] == motif else other).append(float(r["diff"]))
    return {
        "vcf": str(vcf),
        "tsv": str(tsv),
        "alleles": len(rows),
        "own_mean_diff": float(np.mean(own)) if own else float("nan"),
        "other_mean_diff": float(np.mean(other)) if other else float("nan"),
    }
