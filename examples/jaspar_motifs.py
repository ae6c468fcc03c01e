"""Write a JASPAR (``.jaspar``) file of chosen factors' matrices, from the ``pyjaspar`` wheel.

``pip install pyjaspar`` ships every JASPAR release as SQLite (nothing is downloaded). For each
name (or matrix ID such as ``MA0139``) this writes the CORE matrix of the chosen taxonomic group
(default vertebrates; the lowest matrix ID, latest version, when a factor has several), in the
order given, for ``regtracks simulate --motifs``::

    pip install pyjaspar
    python examples/jaspar_motifs.py motifs.jaspar CTCF SP1 MAX YY1 NRF1 REST
    python examples/jaspar_motifs.py yeast.jaspar REB1 ABF1 RAP1 MCM1 --tax-group fungi
    regtracks simulate --motifs motifs.jaspar --out sim

The TFBS markers of the simulation take the first motifs (see ``regtracks.data.simulate``).
"""

from __future__ import annotations

import argparse
import re
import sys


def _key(m) -> tuple[int, int]:
    base, _, version = m.matrix_id.partition(".")
    return int(re.sub(r"\D", "", base) or 0), -int(version or 0)


def fetch(jdb, name: str, tax_group: str):
    """One Bio.motifs.jaspar.Motif for a factor name or a matrix ID."""
    if re.fullmatch(r"[A-Z]{2}\d{4}(\.\d+)?", name):
        m = jdb.fetch_motif_by_id(name)
        if m is None:
            sys.exit(f"{name}: no such JASPAR matrix ID in {jdb.release}")
        return m
    found = [m for m in jdb.fetch_motifs_by_name(name) if m.name.upper() == name.upper()]
    core = [m for m in found if m.collection == "CORE"] or found
    if tax_group != "any":
        core = [m for m in core if (m.tax_group or "").lower() == tax_group.lower()]
    if not core:
        groups = sorted({m.tax_group for m in found if m.tax_group})
        hint = f" (found in: {', '.join(groups)}; try --tax-group)" if groups else ""
        sys.exit(f"{name}: no {tax_group} matrix in {jdb.release}{hint}")
    return min(core, key=_key)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="file to write (e.g. motifs.jaspar)")
    ap.add_argument("names", nargs="+", help="factor names (CTCF SP1 ...) or matrix IDs")
    ap.add_argument("--tax-group", default="vertebrates", help="vertebrates, fungi, ... or any")
    ap.add_argument("--release", default=None, help="JASPAR release (default: the newest)")
    args = ap.parse_args()
    try:
        from pyjaspar import jaspardb
    except ImportError:
        sys.exit("pyjaspar is not installed: pip install pyjaspar")
    jdb = jaspardb(release=args.release) if args.release else jaspardb()
    motifs = [fetch(jdb, n, args.tax_group) for n in args.names]
    with open(args.out, "w") as fh:
        for m in motifs:
            fh.write(f">{m.matrix_id} {m.name}\n")
            for b in "ACGT":
                fh.write(f"{b} [ " + " ".join(f"{v:g}" for v in m.counts[b]) + " ]\n")
    print(f"wrote {args.out}: {len(motifs)} matrices from {jdb.release}")
    for m in motifs:
        print(f"  {m.matrix_id}\t{m.name}\t{m.tax_group}\t{m.length} bp\t{m.consensus}")


if __name__ == "__main__":
    main()
