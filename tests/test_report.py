"""Evaluation report: JSON keys and values, Markdown tables, figures, atomic writes."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest
import torch

from regtracks._util import RegtracksError
from regtracks.data.markers import Marker
from regtracks.training.metrics import MetricsResult, StreamingMetrics
from regtracks.training.report import build_report, render_markdown, write_report

HAS_MPL = importlib.util.find_spec("matplotlib") is not None

MARKERS = [
    ("CTCF", "TFBS"),
    ("GATA|1", "TFBS"),  # a pipe, to check Markdown escaping
    ("REST", "TFBS"),
    ("H3K4me3", "Histone"),
    ("H3K27ac", "Histone"),
]


def _result() -> MetricsResult:
    return MetricsResult(
        pr_auc=np.array([0.5, 0.3, np.nan, 0.8, 0.6]),
        roc_auc=np.array([0.9, 0.7, np.nan, 0.95, 0.85]),
        positive_rate=np.array([0.01, 0.03, 0.0, 0.2, 0.1]),
        n_positive=np.array([10, 30, 0, 200, 100]),
        n_total=np.array([1000] * 5),
        n_nan=np.array([0, 0, 0, 0, 0]),
        n_masked=500,
    )


def _metrics(seed: int = 0) -> StreamingMetrics:
    rng = np.random.default_rng(seed)
    y = (rng.random((2, 5, 3000)) < 0.1).astype(np.uint8)
    y[:, 2] = 0
    x = np.where(y == 1, rng.normal(0, 1.5, y.shape), rng.normal(-3, 1.5, y.shape))
    sm = StreamingMetrics(5)
    sm.update(torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y))
    return sm


def test_build_report_keys_and_values():
    rep = build_report(_result(), MARKERS, split="test", extra={"model": "dilated", "epoch": 3})
    assert rep["split"] == "test"
    assert list(rep["categories"]) == ["TFBS", "Histone", "DNase"]
    for cat in rep["categories"].values():
        assert {"pr_auc", "roc_auc", "mean_positive_rate", "n_markers", "n_evaluated"} <= set(cat)
    tfbs, hist, dnase = (rep["categories"][c] for c in ("TFBS", "Histone", "DNase"))
    # REST has no positive: left out of the TFBS means (by hand: (0.5 + 0.3) / 2 ...)
    assert tfbs["pr_auc"] == pytest.approx(0.4)
    assert tfbs["roc_auc"] == pytest.approx(0.8)
    assert tfbs["mean_positive_rate"] == pytest.approx(0.02)
    assert (tfbs["n_markers"], tfbs["n_evaluated"]) == (3, 2)
    assert hist["pr_auc"] == pytest.approx(0.7)
    assert hist["roc_auc"] == pytest.approx(0.9)
    assert dnase == {
        "pr_auc": None,
        "roc_auc": None,
        "mean_positive_rate": None,
        "n_markers": 0,
        "n_evaluated": 0,
        "n_at_chance": 0,
    }
    names = [m["name"] for m in rep["markers"]]
    assert names == [n for n, _ in MARKERS]
    rest = rep["markers"][2]
    assert rest["category"] == "TFBS"
    assert rest["pr_auc"] is None and rest["roc_auc"] is None and rest["positive_rate"] == 0.0
    first = rep["markers"][0]
    assert {"name", "category", "pr_auc", "roc_auc", "positive_rate"} <= set(first)
    assert (first["pr_auc"], first["roc_auc"], first["positive_rate"]) == (0.5, 0.9, 0.01)
    assert rep["model"] == "dilated" and rep["epoch"] == 3
    assert rep["n_scores"] == 5000 and rep["n_masked_scores"] == 500
    json.dumps(rep, allow_nan=False)  # JSON-safe: no NaN, only plain types
    assert type(first["n_positive"]) is int


def test_markers_at_chance_are_flagged_by_roc_auc_or_pr_auc_lift():
    from regtracks.training.metrics import at_chance

    # by hand: ROC-AUC under 0.55, or PR-AUC under 1.1 x the positive rate; undefined: no flag
    assert at_chance(0.9, 0.54, 0.1)
    assert at_chance(0.105, 0.7, 0.1)
    assert not at_chance(0.111, 0.56, 0.1)
    assert not at_chance(None, None, 0.0) and not at_chance(float("nan"), float("nan"), 0.1)
    r = _result()
    r.roc_auc[1] = 0.52  # GATA|1: at chance by ROC-AUC
    r.pr_auc[4] = 0.105  # H3K27ac: PR-AUC barely above its positive rate 0.1
    rep = build_report(r, MARKERS, split="test")
    assert [m["at_chance"] for m in rep["markers"]] == [False, True, False, False, True]
    assert [c["n_at_chance"] for c in rep["categories"].values()] == [1, 1, 0]
    md = render_markdown(rep)
    assert "2 of 5 markers are at chance" in md and "H3K27ac" in md


def test_build_report_accepts_marker_objects_and_dicts():
    objs = [Marker(name=n, category=c, path=f"{n}.bed") for n, c in MARKERS]
    dicts = [{"name": n, "category": c} for n, c in MARKERS]
    a = build_report(_result(), objs, split="valid")
    b = build_report(_result(), dicts, split="valid")
    assert a == b


def test_build_report_bad_input():
    with pytest.raises(RegtracksError, match="must match"):
        build_report(_result(), MARKERS[:4], split="test")
    with pytest.raises(RegtracksError, match="unknown category"):
        build_report(_result(), [*MARKERS[:4], ("X", "Enhancer")], split="test")
    with pytest.raises(RegtracksError, match="replace"):
        build_report(_result(), MARKERS, split="test", extra={"markers": []})


def test_markdown_tables():
    rep = build_report(_result(), MARKERS, split="test", extra={"model": "dilated"})
    md = render_markdown(rep)
    assert md.startswith("# Evaluation: test split")
    assert "- model: dilated" in md
    assert "| Category | Markers | PR-AUC | Chance (positive rate) | ROC-AUC |" in md
    assert "| TFBS | 2 of 3 | 0.400 | 0.0200 | 0.800 |" in md
    assert "| Histone | 2 | 0.700 | 0.1500 | 0.900 |" in md
    assert "| DNase | 0 | n/a | n/a | n/a |" in md
    assert "## TFBS" in md and "## Histone" in md and "## DNase" not in md
    assert "| CTCF | 0.500 | 0.0100 | 0.900 | 10 |" in md
    assert "| GATA\\|1 | 0.300 |" in md
    assert "| REST | n/a | 0.00e+00 | n/a | 0 |" in md


def test_write_report_files(tmp_path):
    sm = _metrics()
    res = sm.compute()
    rep = build_report(res, MARKERS, split="test")
    out = tmp_path / "eval"
    written = write_report(rep, out, curves=sm)
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk == written
    assert on_disk["markers"][0]["pr_auc"] == pytest.approx(float(res.pr_auc[0]))
    assert on_disk["markers"][2]["pr_auc"] is None  # no positive
    md = (out / "report.md").read_text()
    assert md == render_markdown(written)
    if HAS_MPL:
        assert written["figures"] == ["pr_TFBS.png", "pr_Histone.png"]
        for name in written["figures"]:
            assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "![pr_TFBS](pr_TFBS.png)" in md
        assert not (out / "pr_DNase.png").exists()
    # nothing half-written or temporary left
    assert not [p.name for p in out.iterdir() if p.name.startswith(".") or ".tmp" in p.name]


def test_write_report_curve_mapping_and_no_curves(tmp_path):
    sm = _metrics(1)
    rep = build_report(sm.compute(), MARKERS, split="valid")
    curves = {"CTCF": sm.pr_curve(0)[:2]}
    written = write_report(rep, tmp_path, curves=curves)
    if HAS_MPL:
        assert written["figures"] == ["pr_TFBS.png"]
    # a later report without curves replaces the old figures
    written = write_report(rep, tmp_path)
    assert written["figures"] == [] and "figures_note" not in written
    assert not list(tmp_path.glob("pr_*.png"))


def test_write_report_without_matplotlib(tmp_path, monkeypatch):
    for mod in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, mod, None)  # import raises ImportError
    sm = _metrics()
    rep = build_report(sm.compute(), MARKERS, split="test")
    written = write_report(rep, tmp_path, curves=sm)
    assert written["figures"] == []
    assert "matplotlib is not installed" in written["figures_note"]
    assert json.loads((tmp_path / "report.json").read_text())["figures_note"]
    assert "matplotlib is not installed" in (tmp_path / "report.md").read_text()
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.skipif(not HAS_MPL, reason="needs matplotlib")
def test_failed_figure_leaves_nothing(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    def broken_savefig(self, fname, **kw):
        with open(fname, "wb") as fh:
            fh.write(b"\x89PNG half")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    sm = _metrics()
    rep = build_report(sm.compute(), MARKERS, split="test")
    with pytest.raises(OSError, match="disk full"):
        write_report(rep, tmp_path, curves=sm)
    assert list(tmp_path.iterdir()) == []


def test_write_report_rejects_foreign_dict(tmp_path):
    with pytest.raises(RegtracksError, match="build_report"):
        write_report({"split": "test"}, tmp_path)
