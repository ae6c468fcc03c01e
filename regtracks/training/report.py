"""Evaluation reports: per-marker and per-category PR-AUC / ROC-AUC as JSON, Markdown and figures.

Contract
--------
:func:`build_report` turns a :class:`~regtracks.training.metrics.MetricsResult` and the marker table
into a JSON-safe dict (NaN becomes ``null``)::

    {
      "split": "test",
      "categories": {"TFBS": {"pr_auc", "roc_auc", "mean_positive_rate", "n_markers",
                              "n_evaluated", "n_at_chance"}, "Histone": ..., "DNase": ...},
      "markers": [{"name", "category", "pr_auc", "roc_auc", "positive_rate", "at_chance",
                   "n_positive", "n_total", "n_nan"}, ...],          # marker order
      "n_scores": ..., "n_masked_scores": ..., "n_nan_logits": ...,
      ...extra keys (run, model, checkpoint, ...)
    }

Category values are means over the category's markers, leaving out markers whose metric is
undefined (no positive, or no negative for ROC-AUC); ``null`` for a category without any.
``mean_positive_rate`` (over the same markers as ``pr_auc``) is the chance level of the mean
PR-AUC. ``at_chance`` flags a marker whose scores are those of a model that learnt nothing
(:func:`regtracks.training.metrics.at_chance`: ROC-AUC < 0.55 or PR-AUC < 1.1 x its positive
rate).

:func:`write_report` writes ``report.json``, ``report.md`` (tables like the paper's: one of
category means, one per category of markers) and ``pr_<category>.png`` (every marker's PR
curve). Figures need matplotlib (extra ``plot``); without it they are skipped and the report
says so. Every file is written to a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from regtracks._util import RegtracksError, atomic_path, make_folder, write_text_atomic
from regtracks.config import CATEGORIES, CATEGORY_COLORS
from regtracks.training.metrics import MetricsResult, at_chance, category_means

__all__ = ["build_report", "write_report", "render_markdown"]

_REQUIRED = ("split", "categories", "markers")
_MAX_CURVE_POINTS = 1000  # points a marker's PR curve keeps in a figure


def _json_safe(obj: Any) -> Any:
    """Numpy scalars/arrays, paths and tuples to JSON types; NaN and inf to None."""
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_json_safe(v) for v in (obj.tolist() if isinstance(obj, np.ndarray) else obj)]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)


def _marker_pairs(markers: Any) -> list[tuple[str, str]]:
    """(name, category) of each marker from Markers, (name, category) pairs or dicts."""
    if hasattr(markers, "markers") and not isinstance(markers, Mapping):
        markers = markers.markers  # a MarkerSet
    out = []
    for i, m in enumerate(markers):
        if isinstance(m, Mapping):
            name, cat = m.get("name"), m.get("category")
        elif hasattr(m, "name") and hasattr(m, "category"):
            name, cat = m.name, m.category
        else:
            try:
                name, cat = m
            except (TypeError, ValueError):
                raise RegtracksError(
                    f"marker {i}: expected a Marker, a (name, category) pair or a dict, got {m!r}"
                ) from None
        if cat not in CATEGORIES:
            raise RegtracksError(
                f"marker {name!r}: unknown category {cat!r} (expected TFBS, Histone or DNase)"
            )
        out.append((str(name), str(cat)))
    return out


def build_report(
    metrics_result: MetricsResult,
    markers: Any,
    *,
    split: str,
    extra: Mapping[str, Any] | None = None,
) -> dict:
    """The evaluation report of one split as a JSON-safe dict (layout in the module docstring).

    Parameters
    ----------
    metrics_result : MetricsResult
        From :meth:`regtracks.training.metrics.StreamingMetrics.compute`; ``M`` markers.
    markers : MarkerSet, sequence of Marker, of (name, category) pairs or of dicts
        The ``M`` markers, in the order of the logits' channels.
    split : str
        The split evaluated (``valid`` or ``test``).
    extra : mapping, optional
        More top-level keys (run, model, checkpoint, ...); they may not replace a key of the
        report.

    Raises
    ------
    RegtracksError
        Marker count differs from the metrics', unknown category, or ``extra`` names a key of
        the report.
    """
    pairs = _marker_pairs(markers)
    r = metrics_result
    if len(pairs) != r.n_markers:
        raise RegtracksError(
            f"{len(pairs)} markers given for metrics of {r.n_markers} markers (must match)"
        )
    names = [p[0] for p in pairs]
    cats = [p[1] for p in pairs]
    pr = np.asarray(r.pr_auc, dtype=np.float64)
    roc = np.asarray(r.roc_auc, dtype=np.float64)
    rate = np.asarray(r.positive_rate, dtype=np.float64)
    pr_mean = category_means(pr, cats)
    roc_mean = category_means(roc, cats)
    rate_mean = category_means(np.where(np.isnan(pr), np.nan, rate), cats)
    cat_arr = np.asarray(cats, dtype=object)
    categories = {}
    for cat in CATEGORIES:
        sel = cat_arr == cat
        categories[cat] = {
            "pr_auc": pr_mean[cat],
            "roc_auc": roc_mean[cat],
            "mean_positive_rate": rate_mean[cat],
            "n_markers": int(sel.sum()),
            "n_evaluated": int((sel & ~np.isnan(pr)).sum()),
            "n_at_chance": int(sum(at_chance(pr[i], roc[i], rate[i]) for i in np.flatnonzero(sel))),
        }
    rows = []
    for i, (name, cat) in enumerate(zip(names, cats, strict=True)):
        rows.append(
            {
                "name": name,
                "category": cat,
                "pr_auc": pr[i],
                "roc_auc": roc[i],
                "positive_rate": rate[i],
                "at_chance": at_chance(pr[i], roc[i], rate[i]),
                "n_positive": int(r.n_positive[i]),
                "n_total": int(r.n_total[i]),
                "n_nan": int(r.n_nan[i]),
            }
        )
    report: dict[str, Any] = {
        "split": str(split),
        "categories": categories,
        "markers": rows,
        "n_scores": int(np.sum(r.n_total)),
        "n_masked_scores": int(r.n_masked),
        "n_nan_logits": int(np.sum(r.n_nan)),
    }
    for key, value in (extra or {}).items():
        if key in report:
            raise RegtracksError(f"report: extra key {key!r} would replace a key of the report")
        report[str(key)] = value
    return _json_safe(report)


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:.{digits}f}"


def _fmt_rate(v: Any) -> str:
    if v is None:
        return "n/a"
    return f"{v:.4f}" if v >= 1e-3 else f"{v:.2e}"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Mapping[str, Any]) -> str:
    """``report.md`` text: category means, then one table of markers per category."""
    for key in _REQUIRED:
        if key not in report:
            raise RegtracksError(f"report has no {key!r} key (make it with build_report)")
    lines = [f"# Evaluation: {_cell(report['split'])} split", ""]
    skip = {*_REQUIRED, "figures", "figures_note", "n_scores", "n_masked_scores", "n_nan_logits"}
    info = [(k, v) for k, v in report.items() if k not in skip and not isinstance(v, (dict, list))]
    for k, v in info:
        lines.append(f"- {_cell(k)}: {_cell(v)}")
    lines.append(f"- scores evaluated: {report.get('n_scores', 0):,}")
    if report.get("n_masked_scores"):
        lines.append(f"- scores masked out (N bases, padding): {report['n_masked_scores']:,}")
    if report.get("n_nan_logits"):
        lines.append(f"- NaN logits left out: {report['n_nan_logits']:,}")
    lines += [
        "",
        "PR-AUC is average precision over every position of the split; chance is the positive "
        "rate (the PR-AUC of a random ranking). Category values are means over the markers, "
        "leaving out markers without positives.",
        "",
        "## Mean per category",
        "",
        "| Category | Markers | PR-AUC | Chance (positive rate) | ROC-AUC | At chance |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for cat in CATEGORIES:
        c = report["categories"].get(cat, {})
        n, k = c.get("n_markers", 0), c.get("n_evaluated", 0)
        count = f"{k}" if k == n else f"{k} of {n}"
        lines.append(
            f"| {cat} | {count} | {_fmt(c.get('pr_auc'))} | "
            f"{_fmt_rate(c.get('mean_positive_rate'))} | {_fmt(c.get('roc_auc'))} | "
            f"{c.get('n_at_chance', 0)} |"
        )
    flat = [m["name"] for m in report["markers"] if m.get("at_chance")]
    if flat:
        shown = ", ".join(_cell(n) for n in flat[:20]) + (" ..." if len(flat) > 20 else "")
        lines += [
            "",
            f"**{len(flat)} of {len(report['markers'])} markers are at chance** (ROC-AUC < 0.55 "
            f"or PR-AUC < 1.1 x positive rate): {shown}. Their tracks carry no signal.",
        ]
    for cat in CATEGORIES:
        rows = [m for m in report["markers"] if m.get("category") == cat]
        if not rows:
            continue
        lines += [
            "",
            f"## {cat}",
            "",
            "| Marker | PR-AUC | Chance (positive rate) | ROC-AUC | Positives | At chance |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for m in rows:
            lines.append(
                f"| {_cell(m['name'])} | {_fmt(m.get('pr_auc'))} | "
                f"{_fmt_rate(m.get('positive_rate'))} | {_fmt(m.get('roc_auc'))} | "
                f"{m.get('n_positive', 0):,} | {'yes' if m.get('at_chance') else ''} |"
            )
    figures = report.get("figures") or []
    if figures or report.get("figures_note"):
        lines += ["", "## Precision-recall curves", ""]
        lines += [f"![{Path(f).stem}]({f})" for f in figures]
        if report.get("figures_note"):
            lines.append(f"_{report['figures_note']}_")
    return "\n".join(lines) + "\n"


def _thin(precision: np.ndarray, recall: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = len(recall)
    if n <= _MAX_CURVE_POINTS:
        return precision, recall
    keep = np.unique(np.linspace(0, n - 1, _MAX_CURVE_POINTS).round().astype(np.int64))
    return precision[keep], recall[keep]


def _curve_mapping(curves: Any, names: Sequence[str]) -> Mapping[str, tuple]:
    if curves is None:
        return {}
    if hasattr(curves, "pr_curves"):  # a StreamingMetrics
        return curves.pr_curves(list(names))
    if not isinstance(curves, Mapping):
        raise RegtracksError("curves must be a StreamingMetrics or {name: (precision, recall)}")
    return curves


def _write_figures(report: Mapping, out_dir: Path, curves: Mapping) -> tuple[list[str], str]:
    """Write pr_<category>.png files; returns (file names, note)."""
    if not curves:
        return [], ""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return (
            [],
            "matplotlib is not installed: no PR-curve figures (pip install 'regtracks[plot]')",
        )
    written = []
    for cat in CATEGORIES:
        rows = [m for m in report["markers"] if m["category"] == cat and m["name"] in curves]
        if not rows:
            continue
        rgb = tuple(int(v) / 255 for v in CATEGORY_COLORS[cat].split(","))
        fig = Figure(figsize=(5.5, 4.5), dpi=120)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        few = len(rows) <= 10
        alpha = 1.0 if few else max(0.08, min(0.6, 6.0 / len(rows)))
        chances = []
        for m in rows:
            precision, recall = (np.asarray(a, dtype=np.float64) for a in curves[m["name"]][:2])
            if not np.isfinite(recall).all():
                continue  # no positives
            precision, recall = _thin(precision, recall)
            label = f"{m['name']} ({_fmt(m['pr_auc'])})" if few else None
            kw = {} if few else {"color": rgb}
            (line,) = ax.plot(
                recall, precision, drawstyle="steps-post", lw=1.0, alpha=alpha, label=label, **kw
            )
            rate = m.get("positive_rate")
            if rate is not None:
                chances.append(rate)
                if few:  # each marker's own chance level, in its colour
                    ax.axhline(rate, color=line.get_color(), ls=":", lw=0.8)
        c = report["categories"][cat]
        if chances and few:
            ax.plot([], [], color="0.4", ls=":", lw=0.8, label="chance (dotted, per marker)")
        elif chances:  # too many lines: the band of the markers' chance levels
            lo, hi = min(chances), max(chances)
            ax.axhspan(lo, max(hi, lo + 2e-3), color="0.5", alpha=0.25, lw=0)
            ax.text(
                0.99,
                hi,
                f"chance per marker {lo:.3f}-{hi:.3f}",
                ha="right",
                va="bottom",
                fontsize=7,
                color="0.3",
            )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title(
            f"{cat}: {len(rows)} markers, mean PR-AUC {_fmt(c.get('pr_auc'))} ({report['split']})",
            fontsize=10,
        )
        if few:
            ax.legend(fontsize=7, loc="upper right", frameon=False)
        fig.tight_layout()
        name = f"pr_{cat}.png"
        with atomic_path(out_dir / name) as tmp:
            fig.savefig(tmp, format="png")
        written.append(name)
    return written, ""


def write_report(
    report: Mapping[str, Any],
    out_dir: str | os.PathLike,
    *,
    curves: Any = None,
) -> dict:
    """Write ``report.json``, ``report.md`` and ``pr_<category>.png`` into ``out_dir``.

    Parameters
    ----------
    report : dict
        From :func:`build_report`.
    out_dir : str or Path
        Created if missing; files of an earlier report are replaced.
    curves : StreamingMetrics or mapping, optional
        PR curves to draw: the metrics object itself, or ``{marker name: (precision,
        recall)}`` (arrays as :meth:`~regtracks.training.metrics.StreamingMetrics.pr_curve`
        returns). ``None``: no figures.

    Returns
    -------
    dict
        The report as written to ``report.json``: ``figures`` lists the PNG file names and
        ``figures_note`` says why there are none, when there are none.
    """
    for key in _REQUIRED:
        if key not in report:
            raise RegtracksError(f"report has no {key!r} key (make it with build_report)")
    out_dir = make_folder(out_dir)
    names = [m["name"] for m in report["markers"]]
    figures, note = _write_figures(report, out_dir, _curve_mapping(curves, names))
    for cat in CATEGORIES:  # figures of an earlier report that this one does not have
        if f"pr_{cat}.png" not in figures:
            (out_dir / f"pr_{cat}.png").unlink(missing_ok=True)
    final = dict(_json_safe(report))
    final["figures"] = figures
    if note:
        final["figures_note"] = note
    else:
        final.pop("figures_note", None)
    write_text_atomic(out_dir / "report.json", json.dumps(final, indent=2, allow_nan=False) + "\n")
    write_text_atomic(out_dir / "report.md", render_markdown(final))
    return final
