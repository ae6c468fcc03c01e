"""Learning curves: ``metrics.jsonl`` -> ``curves.png``, and the same records to TensorBoard.

A run's ``metrics.jsonl`` holds ``{"event": "train", "step", "seconds", "loss", ...}`` and
``{"event": "valid", "step", "seconds", "pr_auc": {"TFBS", "Histone", "DNase", "mean"},
"pr_auc_markers": [...], ...}`` lines (see :mod:`regtracks.training.train`). ``seconds`` is the
training time spent in optimizer steps, summed across resumes. :func:`write_curves` draws three
panels: training loss against steps, validation PR-AUC per category against steps and against
seconds, each category's chance level (mean positive rate, when given) dashed in its colour.
Figures need matplotlib (extra ``plot``); without it :func:`write_curves` returns None.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from regtracks._util import RegtracksError, atomic_path
from regtracks.config import CATEGORIES, CATEGORY_COLORS

__all__ = ["read_metrics", "write_curves", "TensorBoardLogger"]


def read_metrics(path: str | os.PathLike) -> tuple[list[dict], list[dict]]:
    """``(train records, valid records)`` of a ``metrics.jsonl``; unreadable lines are skipped."""
    path = Path(path)
    if not path.is_file():
        raise RegtracksError(f"{path}: no metrics.jsonl (is this a run folder?)")
    train, valid = [], []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(rec, dict):
                continue
            if rec.get("event") == "train" and "loss" in rec:
                train.append(rec)
            elif rec.get("event") == "valid" and isinstance(rec.get("pr_auc"), dict):
                valid.append(rec)
    return train, valid


def _rgb(text: str) -> tuple[float, float, float]:
    r, g, b = (int(v) / 255 for v in text.split(","))
    return r, g, b


def write_curves(
    metrics: str | os.PathLike,
    out: str | os.PathLike,
    *,
    chance: dict[str, float] | None = None,
    title: str | None = None,
) -> Path | None:
    """Draw ``metrics.jsonl``'s learning curves into ``out`` (PNG, written atomically).

    Parameters
    ----------
    metrics : path
        A run's ``metrics.jsonl``.
    out : path
        The PNG to write.
    chance : dict category -> float, optional
        Chance level of each category's mean PR-AUC (its mean positive rate), drawn dashed.
    title : str, optional
        Figure title (default: the run folder's name).

    Returns
    -------
    Path or None
        ``out``, or None when matplotlib is missing or there is nothing to draw.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    train, valid = read_metrics(metrics)
    if not train and not valid:
        return None
    fig = Figure(figsize=(13, 3.8), dpi=100)
    FigureCanvasAgg(fig)
    ax_loss, ax_step, ax_sec = fig.subplots(1, 3)
    if train:
        ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], color="0.25", lw=1)
    ax_loss.set(xlabel="step", ylabel="training loss (BCE)", title="training loss")
    cats = [c for c in CATEGORIES if any(r["pr_auc"].get(c) is not None for r in valid)]
    for cat in cats:
        rows = [r for r in valid if r["pr_auc"].get(cat) is not None]
        color = _rgb(CATEGORY_COLORS[cat])
        ys = [r["pr_auc"][cat] for r in rows]
        ax_step.plot([r["step"] for r in rows], ys, "o-", color=color, ms=3, label=cat)
        if all("seconds" in r for r in rows):
            ax_sec.plot([r["seconds"] for r in rows], ys, "o-", color=color, ms=3, label=cat)
        if chance and chance.get(cat) is not None:
            for ax in (ax_step, ax_sec):
                ax.axhline(chance[cat], color=color, ls="--", lw=0.8)
    for ax, xlabel in ((ax_step, "step"), (ax_sec, "training seconds")):
        ax.set(xlabel=xlabel, ylabel="validation PR-AUC (category mean)", ylim=(0, 1))
        if cats:
            ax.legend(loc="upper left", fontsize=8, frameon=False)
    ax_step.set_title("validation PR-AUC (dashed: chance)")
    ax_sec.set_title("against time")
    fig.suptitle(title or Path(metrics).resolve().parent.name, fontsize=10)
    fig.tight_layout()
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    return out


class TensorBoardLogger:
    """Write the training records to TensorBoard (``--tensorboard DIR``; extra ``tensorboard``).

    ``log(rec)`` takes the records of ``metrics.jsonl``: ``loss``, ``lr`` and ``bp_per_s`` of
    train records, and ``pr_auc`` / ``roc_auc`` per category of valid records, at their step.
    """

    def __init__(self, log_dir: str | os.PathLike):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise RegtracksError(
                "--tensorboard needs the tensorboard package (pip install 'regtracks[tensorboard]')"
            ) from None
        try:
            self.writer = SummaryWriter(log_dir=str(log_dir))
        except OSError as exc:
            raise RegtracksError(f"{log_dir}: cannot write TensorBoard logs ({exc})") from None

    def log(self, rec: dict) -> None:
        step = rec.get("step", 0)
        if rec.get("event") == "train":
            for key in ("loss", "lr", "bp_per_s"):
                if rec.get(key) is not None:
                    self.writer.add_scalar(f"train/{key}", rec[key], step)
        elif rec.get("event") == "valid":
            for metric in ("pr_auc", "roc_auc"):
                for cat, value in (rec.get(metric) or {}).items():
                    if value is not None:
                        self.writer.add_scalar(f"valid/{metric}/{cat}", value, step)

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()
