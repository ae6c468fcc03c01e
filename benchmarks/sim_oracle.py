"""Ceilings of the synthetic genome's TFBS markers: what a model with and without context can reach.

For each TFBS marker of a ``regtracks simulate`` genome, on one chromosome (the test one), the
PR-AUC (scikit-learn's average precision over every base; labels = the marker's peak file) of
two oracles that rank bases by distance:

* ``local``: to the nearest planted site of the marker's motif X. The best any model can do
  from X alone; on a distal marker it is capped by the X sites that lack a partner.
* ``rule`` (distal markers): to the nearest X site that has a partner site of Y 1-5 kb away:
  what a model that has learnt the long-range rule can reach.

    python benchmarks/sim_oracle.py sim/ chr6
"""

from __future__ import annotations

import argparse
import gzip
import json

import numpy as np
from sklearn.metrics import average_precision_score


def _distance_score(centres: np.ndarray, length: int) -> np.ndarray:
    """Minus the distance of every base to the nearest centre."""
    pos = np.arange(length)
    if centres.size == 0:
        return np.full(length, -1e12)
    i = np.clip(np.searchsorted(centres, pos), 0, centres.size - 1)
    j = np.clip(i - 1, 0, centres.size - 1)
    return -np.minimum(np.abs(pos - centres[i]), np.abs(pos - centres[j])).astype(np.float64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sim", help="a regtracks simulate folder")
    ap.add_argument("chrom", help="chromosome to score (the test chromosome)")
    args = ap.parse_args()
    info = json.load(open(f"{args.sim}/simulation.json"))
    length = info["chroms"][args.chrom]
    sites: dict[str, list[int]] = {}
    with open(f"{args.sim}/truth.bed") as fh:
        for line in fh:
            c, s, e, m = line.split("\t")[:4]
            if c == args.chrom:
                sites.setdefault(m, []).append((int(s) + int(e)) // 2)
    centres = {k: np.sort(np.array(v)) for k, v in sites.items()}
    empty = np.array([], dtype=np.int64)
    lo, hi = info["config"]["distal_min"], info["config"]["distal_max"]
    rows = []
    for m in info["markers"]:
        if m["rule"] not in ("local", "distal"):
            continue
        y = np.zeros(length, dtype=np.int8)
        with gzip.open(f"{args.sim}/peaks/{m['name']}.bed.gz", "rt") as fh:
            for line in fh:
                c, s, e = line.split("\t")[:3]
                if c == args.chrom:
                    y[int(s) : int(e)] = 1
        x = centres.get(m["motif_names"][0], empty)
        local = average_precision_score(y, _distance_score(x, length))
        rule = None
        if m["rule"] == "distal":
            ys = centres.get(m["partner_name"], empty)
            keep = np.array([((np.abs(ys - c) >= lo) & (np.abs(ys - c) <= hi)).any() for c in x])
            rule = average_precision_score(y, _distance_score(x[keep], length))
        rows.append((m["name"], m["rule"], y.mean(), local, rule))
    print("| marker | rule | positive rate | local oracle | rule oracle |")
    print("|---|---|---:|---:|---:|")
    for name, r, rate, local, rule in rows:
        ceiling = "-" if rule is None else f"{rule:.3f}"
        print(f"| {name} | {r} | {rate:.4f} | {local:.3f} | {ceiling} |")
    for r in ("local", "distal"):
        sel = [row for row in rows if row[1] == r]
        if sel:
            mean_local = np.mean([row[3] for row in sel])
            mean_rule = np.mean([row[4] for row in sel]) if r == "distal" else None
            tail = f", rule oracle {mean_rule:.3f}" if mean_rule is not None else ""
            print(f"mean over {r} markers: local oracle {mean_local:.3f}{tail}")


if __name__ == "__main__":
    main()
