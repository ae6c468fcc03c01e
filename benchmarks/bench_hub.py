"""Time `build_hub` and `check_hub` on a hub of many bigWig tracks.

Writes N small prediction bigWigs (one per marker, 3 categories) on a synthetic genome, a
manifest, then builds the UCSC hub + IGV files and checks them. Categories above 200 tracks
become faceted composites. Prints the numbers; asserts nothing.

    python benchmarks/bench_hub.py                       # 300 tracks, ~1 minute on 2 CPU cores
    python benchmarks/bench_hub.py --tracks 919          # the paper's number of markers
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tracks", type=int, default=300, help="number of bigWig tracks")
    ap.add_argument("--chroms", type=int, default=2, help="chromosomes")
    ap.add_argument("--chrom-len", type=int, default=1_000_000, help="bp per chromosome")
    ap.add_argument("--bin", type=int, default=128, help="bigWig bin (bp)")
    ap.add_argument("--out", type=Path, default=None, help="keep the hub here (default: temp)")
    args = ap.parse_args()

    import pyBigWig

    from regtracks.tracks.hub import build_hub
    from regtracks.tracks.hubcheck import check_hub
    from regtracks.tracks.manifest import update_manifest

    tmp = tempfile.TemporaryDirectory() if args.out is None else None
    hub = Path(tmp.name) / "hub" if tmp else args.out
    sizes = [[f"chr{i + 1}", args.chrom_len] for i in range(args.chroms)]
    cats = ["TFBS"] * 690 + ["Histone"] * 104 + ["DNase"] * 125  # the paper's 919 split
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    tracks = []
    for i in range(args.tracks):
        name = f"pred_M{i:04d}"
        path = hub / "tracks" / f"{name}.bw"
        path.parent.mkdir(parents=True, exist_ok=True)
        bw = pyBigWig.open(str(path), "w")
        bw.addHeader([(c, n) for c, n in sizes], maxZooms=10)
        for c, n in sizes:
            vals = rng.random(n // args.bin)
            bw.addEntries(c, 0, values=vals, span=args.bin, step=args.bin)
        bw.close()
        tracks.append(
            {"name": name, "file": f"tracks/{name}.bw", "kind": "prediction", "marker": f"M{i}",
             "category": cats[i * len(cats) // args.tracks], "cell_type": f"CELL{i % 7}",
             "bin_size": args.bin,
             "chroms": [c for c, _ in sizes], "provenance": {"model": "dilated"}}
        )  # fmt: skip
    genome = {"name": "bench", "fasta": None, "ucsc": "hg19", "chrom_sizes": sizes}
    update_manifest(hub, genome, tracks)
    t_write = time.perf_counter() - t0

    t0 = time.perf_counter()
    res = build_hub(hub)
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    chk = check_hub(hub)
    t_check = time.perf_counter() - t0
    t0 = time.perf_counter()
    build_hub(hub, one_file=True)
    t_one = time.perf_counter() - t0

    print(f"tracks {res.n_tracks}, composites {res.composites}, faceted {list(res.faceted)}")
    print(f"write {args.tracks} bigWigs + manifest : {t_write:7.2f} s")
    print(f"build_hub (multi-file)            : {t_build:7.2f} s")
    print(f"build_hub (one file)              : {t_one:7.2f} s")
    print(f"check_hub ({chk.n_files} files opened)      : {t_check:7.2f} s")
    print(f"problems found: {len(chk.problems)}")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
