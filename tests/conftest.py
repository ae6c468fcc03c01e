"""Shared fixtures: tiny genomes and peak files written into tmp folders."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch


def write_fasta(path: Path, seqs: dict[str, str], width: int = 60) -> Path:
    with open(path, "w") as fh:
        for name, seq in seqs.items():
            fh.write(f">{name}\n")
            for i in range(0, len(seq), width):
                fh.write(seq[i : i + width] + "\n")
    return path


def random_seq(rng: np.random.Generator, n: int, *, lower_frac: float = 0.2) -> str:
    s = np.array(list("ACGT"))[rng.integers(0, 4, size=n)]
    low = rng.random(n) < lower_frac
    s[low] = np.char.lower(s[low])
    return "".join(s.tolist())


def write_text(path: Path, text: str, *, gz: bool = False) -> Path:
    """Write ``text`` to ``path``, gzip-compressed when ``gz``."""
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def write_bed(path: Path, rows: list[tuple], *, header: bool = True, gz: bool = False) -> Path:
    text = ""
    if header:
        text += 'track name="test"\nbrowser position chr1:1-100\n# comment\n'
    text += "".join("\t".join(str(v) for v in r) + "\n" for r in rows)
    return write_text(path, text, gz=gz)


def write_manifest(path: Path, rows: list[dict]) -> Path:
    cols = ["name", "category", "path", "cell_type", "color", "description"]
    lines = ["\t".join(cols)] + ["\t".join(str(r.get(c, "")) for c in cols) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def tiny(tmp_path, rng):
    """A two-chromosome genome with N runs, soft-masking and IUPAC letters, and 3 markers.

    Returns a dict with paths and the raw BED rows per marker (for brute-force references).
    """
    s1 = list(random_seq(rng, 7_000))
    s1[100:400] = "N" * 300  # an assembly gap
    s1[5_000:5_050] = "n" * 50
    for i in (1_000, 1_001, 2_500):
        s1[i] = "R"  # IUPAC -> N
    s2 = random_seq(rng, 4_321)
    fa = write_fasta(tmp_path / "tiny.fa", {"chr1": "".join(s1), "chr2": s2})
    beds = {}
    rows_by_marker = {}
    for k, (name, _cat) in enumerate([("TF1", "tfbs"), ("H3K4me3", "Histone"), ("DHS", "DNASE")]):
        rows = []
        for chrom, size in (("chr1", 7_000), ("chr2", 4_321)):
            for _ in range(12):
                s = int(rng.integers(0, size - 10))
                e = int(min(size, s + rng.integers(1, 900 if k == 1 else 300)))
                rows.append((chrom, s, e))
        rows.append(("chr1", 3_000, 3_100))
        rows.append(("chr1", 3_100, 3_200))  # touching: merges
        rows.append(("chr1", 3_150, 3_300))  # overlapping
        rows.append(("chrUn_random", 10, 20))  # absent from the genome
        rows_by_marker[name] = rows
        bed_rows = [
            (c, s, e, f"p{i}", 100, ".", 1.0, 2.0, 3.0, 5) for i, (c, s, e) in enumerate(rows)
        ]
        beds[name] = write_bed(tmp_path / f"{name}.bed.gz", bed_rows, gz=(k != 2))
    manifest = write_manifest(
        tmp_path / "markers.tsv",
        [
            {"name": "TF1", "category": "tfbs", "path": "TF1.bed.gz", "cell_type": "K562"},
            {"name": "H3K4me3", "category": "Histone", "path": "H3K4me3.bed.gz"},
            {"name": "DHS", "category": "DNASE", "path": beds["DHS"].name},
        ],
    )
    return {
        "dir": tmp_path,
        "fasta": fa,
        "manifest": manifest,
        "rows": rows_by_marker,
        "sizes": {"chr1": 7_000, "chr2": 4_321},
        "seqs": {"chr1": "".join(s1), "chr2": s2},
    }


def brute_labels(rows, markers, chrom, start, end):
    """(M, end-start) uint8 from raw BED rows, base by base."""
    y = np.zeros((len(markers), end - start), dtype=np.uint8)
    for m, name in enumerate(markers):
        for c, s, e in rows[name]:
            if c != chrom:
                continue
            for p in range(max(s, start), min(e, end)):
                y[m, p - start] = 1
    return y


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request):
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("CUDA not available")
    return torch.device(request.param)


@pytest.fixture(scope="session")
def sim_small(tmp_path_factory):
    """A small synthetic genome (4 x 60 kb, 4 markers, no gaps) for training tests."""
    from dataclasses import replace

    from regtracks.config import DEFAULT_SIM
    from regtracks.data.simulate import simulate

    out = tmp_path_factory.mktemp("sim_small")
    cfg = replace(
        DEFAULT_SIM, n_chroms=4, chrom_len=60_000, n_markers=4, site_density=150, n_gaps_per_chrom=0
    )
    simulate(out, cfg)
    return out


TINY_DILATED = ["f1=8", "f2=8", "f3=8", "d_hidden=8"]


def train_args(sim, out, *extra, model="dilated", hparams=TINY_DILATED):
    """Command-line arguments of a fast CPU training run on ``sim_small``."""
    args = [
        "train",
        "--genome",
        str(sim / "genome.fa"),
        "--markers",
        str(sim / "markers.tsv"),
        "--out",
        str(out),
        "--model",
        model,
        "--window-len",
        "2000",
        "--batch-size",
        "4",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--seed",
        "3",
    ]
    for h in hparams:
        args += ["--hparam", h]
    return args + list(extra)


@pytest.fixture(scope="session")
def trained_run(sim_small, tmp_path_factory):
    """A tiny dilated model trained for 3 steps on ``sim_small`` (weights are what they are)."""
    from typer.testing import CliRunner

    from regtracks.cli import app

    out = tmp_path_factory.mktemp("run") / "dilated"
    r = CliRunner().invoke(app, train_args(sim_small, out, "--max-steps", "3"))
    assert r.exit_code == 0, r.output
    return out
