"""Tiny genomes, bigWigs and manifests for the hub tests (imported by test_hub*.py)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

SIZES = [["chr1", 60_000], ["chr2", 40_000], ["chrM", 1_000]]
PROV = {
    "checkpoint": "runs/dilated/best.pt",
    "checkpoint_sha256": "ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12",
    "model": "dilated",
    "genome": "toy",
    "window_len": 25000,
    "test_pr_auc": 0.53,
    "test_chance": 0.048,
    "command": "regtracks predict runs/dilated --chrom chr1 --out hub/",
    "created": "2026-11-24T10:00:00Z",
    "regtracks_version": "0.1.0",
}


def write_fasta(path: Path, sizes=SIZES, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    with open(path, "w") as fh:
        for chrom, n in sizes:
            seq = "".join(rng.choice(list("ACGT"), size=n))
            fh.write(f">{chrom}\n")
            for i in range(0, n, 60):
                fh.write(seq[i : i + 60] + "\n")
    return path


def write_bigwig(
    path: Path,
    sizes=SIZES,
    chroms=("chr1", "chr2"),
    *,
    scale=1.0,
    start=0,
    span=128,
    n=None,
    seed=1,
    shift=0.0,
) -> Path:
    """bigWig with ``sizes`` as header and fixed-step values on ``chroms`` (from ``start``).

    Values are ``(0.5 + 0.5 sin(0.05 i + seed) - shift) * scale``: deterministic, so hub text
    that depends on them (saliency viewLimits) is the same everywhere.
    """
    import pyBigWig

    path.parent.mkdir(parents=True, exist_ok=True)
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader([(c, int(s)) for c, s in sizes], maxZooms=10)
    size = {c: int(s) for c, s in sizes}
    for chrom in chroms:
        k = (size[chrom] - start) // span if n is None else n
        i = np.arange(k, dtype=np.float64)
        vals = (0.5 + 0.5 * np.sin(0.05 * i + seed) - shift) * scale
        bw.addEntries(chrom, start, values=vals, span=span, step=span)
    bw.close()
    return path


def write_2bit_minimal(fasta: Path, out: Path) -> None:
    """A plain 2bit writer (version 0, upper case ACGT only) for tests, independent of regtracks."""
    seqs, name = {}, None
    for line in Path(fasta).read_text().splitlines():
        if line.startswith(">"):
            name = line[1:].split()[0]
            seqs[name] = []
        elif name is not None:
            seqs[name].append(line.strip().upper())
    seqs = {k: "".join(v) for k, v in seqs.items()}
    code = {"T": 0, "C": 1, "A": 2, "G": 3}
    index_len = sum(1 + len(k) + 4 for k in seqs)
    offset = 16 + index_len
    header = struct.pack("<IIII", 0x1A412743, 0, len(seqs), 0)
    index, records = b"", b""
    for k, s in seqs.items():
        index += struct.pack("<B", len(k)) + k.encode() + struct.pack("<I", offset + len(records))
        packed = bytearray()
        for i in range(0, len(s), 4):
            chunk = s[i : i + 4].ljust(4, "T")
            b = 0
            for ch in chunk:
                b = (b << 2) | code.get(ch, 0)
            packed.append(b)
        records += struct.pack("<IIII", len(s), 0, 0, 0) + bytes(packed)
    Path(out).write_bytes(header + index + records)


def writer_2bit():
    """The project's 2bit writer when it exists, else the test one (same call signature)."""
    try:
        from regtracks.tracks.twobit import write_2bit  # noqa: F401
    except ImportError:
        return write_2bit_minimal
    return None  # build_hub's default


def pred_track(name, marker, category, cell="SIM1", color=None, chroms=("chr1", "chr2")):
    t = {
        "name": name,
        "file": f"tracks/{name}.bw",
        "kind": "prediction",
        "marker": marker,
        "category": category,
        "cell_type": cell,
        "bin_size": 128,
        "chroms": list(chroms),
        "split": {c: "test" if c == "chr2" else "train" for c in chroms},
        "description": f"local: peak on every {marker} site",
        "provenance": dict(PROV),
    }
    if color:
        t["color"] = color
    return t


def sal_track(name, marker, cell="SIM1"):
    return {
        "name": name,
        "file": f"tracks/{name}.bw",
        "kind": "saliency",
        "marker": marker,
        "category": "TFBS",
        "cell_type": cell,
        "bin_size": 1,
        "chroms": ["chr1"],
        "description": f"saliency of {marker} on chr1:20,001-30,000",
        "provenance": dict(PROV),
    }


def make_hub(tmp: Path, tracks=None, *, ucsc=None, fasta=True, sizes=SIZES) -> Path:
    """A hub folder with bigWigs and a manifest (genome name 'toy')."""
    hub = tmp / "hub"
    (hub / "tracks").mkdir(parents=True, exist_ok=True)
    fa = write_fasta(tmp / "toy.fa", sizes) if fasta else None
    if tracks is None:
        tracks = [
            pred_track("pred_CTCF", "CTCF", "TFBS"),
            pred_track("pred_GATA1", "GATA1", "TFBS", cell="K562"),
            pred_track("pred_H3K4me3", "H3K4me3", "Histone"),
            pred_track("pred_DNase", "DNase", "DNase", color="10,20,30"),
            sal_track("sal_CTCF_chr1_20000_30000", "CTCF"),
        ]
    for i, t in enumerate(tracks):
        if t["kind"] == "saliency":
            write_bigwig(
                hub / t["file"],
                sizes,
                ("chr1",),
                scale=0.02,
                start=20_000,
                span=1,
                n=10_000,
                seed=i,
                shift=0.3,
            )
        else:
            write_bigwig(hub / t["file"], sizes, tuple(t["chroms"]), seed=i)
    manifest = {
        "format": "regtracks-manifest/1",
        "genome": {
            "name": "toy",
            "fasta": str(fa) if fa else None,
            "ucsc": ucsc,
            "chrom_sizes": [list(x) for x in sizes],
        },
        "tracks": tracks,
    }
    (hub / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return hub
