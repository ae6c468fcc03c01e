"""The receptive field a trained model really uses, and whether it uses a distal partner.

For each run (trained on a ``regtracks simulate`` genome): ``regtracks.inference.fields``'s
gradient profile (the distances holding 50 % and 90 % of the input-gradient mass), and a
knock-out test of the genome's distal rule ("peak on CTCF sites only when a MAX site lies
1-5 kb away"): on the run's test chromosome, each planted site of the distal marker's motif with
exactly one partner site 1-5 kb away (and no other within 6 kb) is predicted with the reference
sequence and with the partner site's bases replaced by random ones (seeded); a control replaces
the same number of bases at the mirrored distance on the other side, and a check of the method
replaces the site itself. A model that uses the
partner lowers the distal marker's probability at its site; one whose field is shorter than the
distance cannot.

    python benchmarks/bench_fields.py --sim SIM RUN [RUN ...] [--samples 128] [--json]

Prints one row per run: model, nominal field, d50, d90, extent, knock-outs, mean probability
change at the site (partner knocked out; control), and the fraction of sites whose probability
fell by more than 0.05.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def _sites(truth: Path) -> dict[tuple[str, str], np.ndarray]:
    """(chrom, motif) -> sorted (K, 2) starts/ends of planted sites."""
    out: dict[tuple[str, str], list] = {}
    for line in truth.read_text().splitlines():
        c, s, e, motif = line.split("\t")[:4]
        out.setdefault((c, motif), []).append((int(s), int(e)))
    return {k: np.array(sorted(v), dtype=np.int64) for k, v in out.items()}


def _pairs(sites, chrom, motif, partner, lo, hi, clear):
    """Sites of ``motif`` with exactly one ``partner`` site at centre distance in [lo, hi]
    and no other partner site within ``clear`` bp."""
    own = sites.get((chrom, motif), np.zeros((0, 2), np.int64))
    par = sites.get((chrom, partner), np.zeros((0, 2), np.int64))
    pc = (par[:, 0] + par[:, 1]) // 2
    pairs = []
    for s, e in own:
        c = (s + e) // 2
        d = np.abs(pc - c)
        near = np.flatnonzero(d <= clear)
        if near.size == 1 and lo <= d[near[0]] <= hi:
            pairs.append((int(s), int(e), *map(int, par[near[0]])))
    return pairs


def knockouts(run: Path, sim: Path, *, max_pairs: int, seed: int = 0) -> dict:
    from regtracks.checkpoint import find_checkpoint, load_checkpoint
    from regtracks.data.genome import Genome, one_hot

    ck = load_checkpoint(find_checkpoint(run))
    model = ck.build_model()
    g = Genome(sim / "genome.fa")
    info = json.loads((sim / "simulation.json").read_text())
    distal = next(m for m in info["markers"] if m["rule"] == "distal")
    motif, partner = distal["motif_names"][0], distal["partner_name"]
    lo, hi = info["config"]["distal_min"], info["config"]["distal_max"]
    names = [m["name"] for m in ck.raw["markers"]]
    mi = names.index(distal["name"])
    test = ck.split_record.get("chroms", {}).get("test") or [c for c, _ in ck.chrom_sizes][-1:]
    sites = _sites(sim / "truth.bed")
    rng = np.random.default_rng(seed)
    rf = ck.receptive_field or 20_000
    deltas, controls, owns, refs = [], [], [], []
    for chrom in test:
        for s, e, ps, pe in _pairs(sites, chrom, motif, partner, lo, hi, hi + 1000)[:max_pairs]:
            c = (s + e) // 2
            a, b = c - hi - rf, c + hi + rf  # room for the partner and the field on both sides
            if a < 0 or b > g.sizes[chrom]:
                continue
            ref = g.fetch(chrom, a, b).copy()
            ko = ref.copy()
            ko[ps - a : pe - a] = rng.integers(1, 5, size=pe - ps)  # codes 1-4: A C G T
            mirror = 2 * c - (ps + pe) // 2 - (pe - ps) // 2
            ctl = ref.copy()
            ctl[mirror - a : mirror - a + (pe - ps)] = rng.integers(1, 5, size=pe - ps)
            own = ref.copy()
            own[s - a : e - a] = rng.integers(1, 5, size=e - s)
            x = torch.from_numpy(np.stack([one_hot(v) for v in (ref, ko, ctl, own)]))
            with torch.no_grad():
                p = torch.sigmoid(model(x)[:, mi, s - a : e - a]).mean(dim=1).numpy()
            deltas.append(float(p[1] - p[0]))
            controls.append(float(p[2] - p[0]))
            owns.append(float(p[3] - p[0]))
            refs.append(float(p[0]))
    d = np.array(deltas)
    return {
        "marker": distal["name"],
        "motif": motif,
        "partner": partner,
        "knockouts": int(d.size),
        "mean_change": float(d.mean()) if d.size else None,
        "control_change": float(np.mean(controls)) if controls else None,
        "own_site_change": float(np.mean(owns)) if owns else None,
        "ref_probability": float(np.mean(refs)) if refs else None,
        "fell_by_0.05": float((d < -0.05).mean()) if d.size else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--sim", type=Path, required=True)
    ap.add_argument("--samples", type=int, default=128)
    ap.add_argument("--pairs", type=int, default=200)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    from regtracks.inference.fields import receptive_field

    rows = []
    for run in a.runs:
        t0 = time.perf_counter()
        res = receptive_field(run, samples=a.samples)
        row = {
            "run": str(run),
            "model": res.model,
            "receptive_field": res.receptive_field,
            "d50": res.d50,
            "d90": res.d90,
            "extent": res.extent,
            **knockouts(run, a.sim, max_pairs=a.pairs),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        rows.append(row)
    if a.json:
        print(json.dumps(rows, indent=2))
        return
    print(
        "| model | nominal field | d50 | d90 | extent | knock-outs | partner knocked out: mean "
        "change | control | own site knocked out | sites falling > 0.05 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        fell = r["fell_by_0.05"]
        print(
            f"| {r['model']} | {r['receptive_field']} | {r['d50']} | {r['d90']} | {r['extent']} "
            f"| {r['knockouts']} | {_signed(r['mean_change'])} | {_signed(r['control_change'])} "
            f"| {_signed(r['own_site_change'])} "
            f"| {'-' if fell is None else f'{100 * fell:.0f} %'} |"
        )


def _signed(v) -> str:
    return "-" if v is None else f"{v:+.3f}"


if __name__ == "__main__":
    main()
