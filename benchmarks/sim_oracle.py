"""Ceilings of the synthetic genome's TFBS markers: what a model with and without context can reach.

For each TFBS marker of a ``regtracks simulate`` genome, on one chromosome (the test one), the
PR-AUC (scikit-learn's average precision over every base; labels = the marker's peak file) of
two oracles that rank bases by distance:

* ``local``: to the nearest planted site of the marker's motif X. The best any model can do
  from X alone; on a distal marker it is capped by the X sites that lack a partner.
* ``rule`` (distal markers): to the nearest X site that has a partner site of Y 1-5 kb away:
  what a model that has learnt the long-range rule can reach.

The sites come from ``truth.bed``, not from matching motif strings, so the oracles are the same
for every kind of simulation: consensus motifs (the default), PWM motifs (``simulate
--motifs``) and real backgrounds (``simulate --genome``). ``--scan`` adds a column, ``scan``: a
motif scanner that does not know where sites were planted ranks each base by the best log-odds
match of X's matrix (from ``simulation.json``; for consensus motifs, the consensus with the
simulation's mutation rate) on either strand, against the chromosome's base composition, less
0.01 bit per base of distance. It reads the folder's ``genome.fa``, and falls below ``local`` by
the background's chance matches, which real DNA and short or degenerate PWMs make common.
Without ``--scan`` the output is as it always was.

    python benchmarks/sim_oracle.py sim/ chr6
    python benchmarks/sim_oracle.py simyeast/ chrXVI --scan
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


def _log_odds(motif: dict, mutation: float, background: np.ndarray) -> np.ndarray:
    """(w, 4) log-odds of a ``simulation.json`` motif (matrix, else consensus + mutation)."""
    if "matrix" in motif:
        p = np.asarray(motif["matrix"], dtype=np.float64)
    else:
        idx = ["ACGT".index(b) for b in motif["consensus"]]
        p = np.full((len(idx), 4), mutation / 4)
        p[np.arange(len(idx)), idx] += 1 - mutation
    p = (p + 0.01) / (1 + 4 * 0.01)
    return np.log2(p / background)


def _scan_score(codes: np.ndarray, lo: np.ndarray, decay: float = 0.01) -> np.ndarray:
    """Per base: the best match of ``lo`` (either strand) less ``decay`` bits per base away."""
    w, n = lo.shape[0], codes.size
    both = []
    for m in (lo, lo[::-1, ::-1]):  # forward, reverse complement (ACGT reversed = complement)
        table = np.concatenate([np.full((w, 1), -1e9), m], axis=1)  # code 0 (N) never matches
        s = np.zeros(max(n - w + 1, 0))
        for k in range(w):
            s += table[k, codes[k : n - w + 1 + k]]
        both.append(s)
    site = np.full(n, -1e9)
    site[w // 2 : w // 2 + both[0].size] = np.maximum(both[0], both[1])
    ramp = decay * np.arange(n)
    left = np.maximum.accumulate(site + ramp) - ramp  # max over j <= i of site[j] - decay(i-j)
    right = (np.maximum.accumulate((site - ramp)[::-1]))[::-1] + ramp
    return np.maximum(left, right)


def oracles(sim: str, chrom: str, *, scan: bool = False) -> list[dict]:
    """One dict per local / distal TFBS marker: ``name, rule, rate, local, rule_oracle``
    (``None`` for local markers) and, with ``scan``, ``scan``."""
    info = json.load(open(f"{sim}/simulation.json"))
    length = info["chroms"][chrom]
    sites: dict[str, list[int]] = {}
    with open(f"{sim}/truth.bed") as fh:
        for line in fh:
            c, s, e, m = line.split("\t")[:4]
            if c == chrom:
                sites.setdefault(m, []).append((int(s) + int(e)) // 2)
    centres = {k: np.sort(np.array(v)) for k, v in sites.items()}
    empty = np.array([], dtype=np.int64)
    lo, hi = info["config"]["distal_min"], info["config"]["distal_max"]
    rows = []
    if scan:
        from regtracks.data.genome import Genome

        codes = Genome(f"{sim}/genome.fa").fetch(chrom, 0, length)
        freq = np.bincount(codes, minlength=5)[1:].astype(np.float64)
        background = (freq + 1) / (freq + 1).sum()
        motifs = {mo["name"]: mo for mo in info["motifs"]}
        mutation = info["config"].get("mutation", 0.0)
    for m in info["markers"]:
        if m["rule"] not in ("local", "distal"):
            continue
        y = np.zeros(length, dtype=np.int8)
        with gzip.open(f"{sim}/peaks/{m['name']}.bed.gz", "rt") as fh:
            for line in fh:
                c, s, e = line.split("\t")[:3]
                if c == chrom:
                    y[int(s) : int(e)] = 1
        x = centres.get(m["motif_names"][0], empty)
        row = {
            "name": m["name"],
            "rule": m["rule"],
            "rate": float(y.mean()),
            "local": float(average_precision_score(y, _distance_score(x, length))),
            "rule_oracle": None,
        }
        if m["rule"] == "distal":
            ys = centres.get(m["partner_name"], empty)
            keep = np.array(
                [((np.abs(ys - c) >= lo) & (np.abs(ys - c) <= hi)).any() for c in x], dtype=bool
            )
            row["rule_oracle"] = float(average_precision_score(y, _distance_score(x[keep], length)))
        if scan:
            pwm = _log_odds(motifs[m["motif_names"][0]], mutation, background)
            row["scan"] = float(average_precision_score(y, _scan_score(codes, pwm)))
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sim", help="a regtracks simulate folder")
    ap.add_argument("chrom", help="chromosome to score (the test chromosome)")
    ap.add_argument("--scan", action="store_true", help="add a PWM log-odds scan oracle")
    args = ap.parse_args()
    rows = oracles(args.sim, args.chrom, scan=args.scan)
    head, rule_col = (
        "| marker | rule | positive rate | local oracle | rule oracle |",
        "|---|---|---:|---:|---:|",
    )
    print(head + (" scan oracle |" if args.scan else ""))
    print(rule_col + ("---:|" if args.scan else ""))
    for row in rows:
        ceiling = "-" if row["rule_oracle"] is None else f"{row['rule_oracle']:.3f}"
        tail = f" {row['scan']:.3f} |" if args.scan else ""
        print(
            f"| {row['name']} | {row['rule']} | {row['rate']:.4f} | {row['local']:.3f} | "
            f"{ceiling} |{tail}"
        )
    for r in ("local", "distal"):
        sel = [row for row in rows if row["rule"] == r]
        if sel:
            mean_local = np.mean([row["local"] for row in sel])
            tail = ""
            if r == "distal":
                tail = f", rule oracle {np.mean([row['rule_oracle'] for row in sel]):.3f}"
            if args.scan:
                tail += f", scan oracle {np.mean([row['scan'] for row in sel]):.3f}"
            print(f"mean over {r} markers: local oracle {mean_local:.3f}{tail}")


if __name__ == "__main__":
    main()
