"""One run opened for inference: checkpoint, genome, markers, device, model, margins, provenance.

``predict``, ``saliency`` and ``variants`` all start the same way; :func:`open_session` does it
once::

    s = open_session(RUN, markers=["CTCF"], device="auto", purpose="variant scores")
    s.model, s.genome, s.marker_idx, s.device, s.amp   # ready to run
    s.plan(bin_size=128)                               # how a chromosome is tiled
    s.margin()                                         # context on each side of kept positions
    s.provenance(scan_window=...)                      # the manifest's provenance record

The margin rule is the scanner's (:func:`regtracks.inference.scan.scan_margin`): the receptive
field rounded up to the model's stride, or, for a model without a finite receptive field, a
quarter of the window rounded up to the stride.

Also here, the helpers the track writers share: :func:`track_name`, :func:`check_writable` and
:func:`test_pr_auc`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from regtracks import __version__
from regtracks._util import RegtracksError, renamed_keyword, sha256_file
from regtracks.config import CATEGORY_COLORS, DEFAULT_RUNTIME

if TYPE_CHECKING:  # torch and the model stack load on open_session (the module stays light)
    import torch

    from regtracks.checkpoint import Checkpoint
    from regtracks.data.genome import Genome
    from regtracks.data.markers import Marker, MarkerSet
    from regtracks.inference.scan import ScanPlan

__all__ = [
    "InferenceSession",
    "open_session",
    "track_name",
    "check_writable",
    "test_pr_auc",
    "test_report",
    "command_line",
    "scan_window_arg",
]


def track_name(prefix: str, marker: str) -> str:
    """File-system and hub friendly track name: ``pred_CTCF``."""
    safe = "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in marker)
    return f"{prefix}_{safe}"


def check_writable(hub: str | os.PathLike) -> None:
    """Create ``HUB/tracks`` and check a file can be written there.

    Raises
    ------
    RegtracksError
        "HUB: output folder not writable (...)".
    """
    import tempfile

    hub = Path(hub)
    try:
        (hub / "tracks").mkdir(parents=True, exist_ok=True)
        # a probe of its own: the processes of a torchrun job check the same folder at once
        # (and process 0 may have removed it already, as a stale temporary)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", suffix=".tmp", dir=hub / "tracks")
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(probe)
    except OSError as exc:
        raise RegtracksError(f"{hub}: output folder not writable ({exc.strerror})") from None


def test_report(run_dir: str | os.PathLike) -> dict[str, dict]:
    """Per-marker ``{"pr_auc", "chance"}`` from ``RUN/evaluate/test/report.json`` (empty when the
    run was not evaluated); ``chance`` is the marker's positive rate on the test split, the
    PR-AUC of a model that knows nothing.

    The path is where ``regtracks evaluate`` writes by default
    (:func:`regtracks.training.evaluate.report_dir`; inference does not import training).
    """
    run = Path(run_dir)
    path = (run.parent if run.is_file() else run) / "evaluate" / "test" / "report.json"
    if not path.is_file():
        return {}
    try:
        rep = json.loads(path.read_text())
        return {
            m["name"]: {"pr_auc": m["pr_auc"], "chance": m.get("positive_rate")}
            for m in rep.get("markers", [])
            if m.get("pr_auc") is not None
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        return {}


def test_pr_auc(run_dir: str | os.PathLike) -> dict[str, float]:
    """Per-marker test PR-AUC from ``RUN/evaluate/test/report.json`` (empty when not evaluated)."""
    return {k: v["pr_auc"] for k, v in test_report(run_dir).items()}


def command_line() -> str:
    """This process's command line, shell-quoted (``regtracks predict RUN ...``)."""
    return " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).name, *sys.argv[1:]])


def scan_window_arg(scan_window: int | None, window_len: int | None, *, caller: str) -> int | None:
    """``scan_window``, or the deprecated ``window_len`` keyword of ``caller`` mapped to it.

    ``window_len`` (other than None) warns with a ``DeprecationWarning``; giving both, with
    different values, is a ``TypeError`` (see :func:`regtracks._util.renamed_keyword`).
    """
    return renamed_keyword(
        scan_window,
        window_len,
        caller=caller,
        new="scan_window",
        old="window_len",
        why="the model input length while scanning; window_len is the checkpoint's training window",
        stacklevel=4,
    )


@dataclass
class InferenceSession:
    """A dense-task run opened for inference (see :func:`open_session`).

    Attributes
    ----------
    path : Path
        The checkpoint file.
    checkpoint : Checkpoint
    genome : Genome
        Checked against the checkpoint's chromosome names and sizes.
    markers : MarkerSet
        Every marker of the model, in output order.
    marker_idx : list of int
        The selected markers' output channels.
    device : torch.device
    amp : torch.dtype or None
        Autocast dtype (None: plain fp32).
    model : nn.Module
        In eval mode, on ``device``.
    receptive_field : int or None
        Input bases that can influence one output (None: the whole input).
    stride : int
        The model's translation-equivariance step (bp).
    train_window : int
        The window length the model was trained on (bp).
    """

    path: Path
    checkpoint: Checkpoint
    genome: Genome
    markers: MarkerSet
    marker_idx: list[int]
    device: torch.device
    amp: torch.dtype | None
    model: torch.nn.Module
    receptive_field: int | None
    stride: int
    train_window: int
    _sha256: str | None = field(default=None, init=False, repr=False)
    _scores: dict[str, dict] | None = field(default=None, init=False, repr=False)

    @property
    def selected(self) -> list[Marker]:
        """The selected markers, in ``marker_idx`` order."""
        return [self.markers[i] for i in self.marker_idx]

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the checkpoint file (computed once)."""
        if self._sha256 is None:
            self._sha256 = sha256_file(self.path)
        return self._sha256

    def plan(self, bin_size: int, scan_window: int | None = None) -> ScanPlan:
        """How a chromosome is tiled for this model (:func:`~regtracks.inference.scan.plan_scan`).

        ``scan_window``: the model input length while scanning (default: from the margins and
        the training window).
        """
        from regtracks.inference.scan import plan_scan

        return plan_scan(
            self.receptive_field,
            self.stride,
            bin_size=bin_size,
            scan_window=scan_window,
            train_window=self.train_window,
        )

    def margin(self, scan_window: int | None = None) -> int:
        """Context on each side of the kept positions (bp): the scan plan's margin.

        Equal to ``self.plan(b, scan_window).margin`` for every bin size ``b``.
        """
        from regtracks.inference.scan import scan_margin

        return scan_margin(self.receptive_field, self.stride, scan_window or self.train_window)

    def test_scores(self) -> dict[str, float]:
        """The run's test PR-AUC per marker name (empty when the run was not evaluated)."""
        return {k: v["pr_auc"] for k, v in self.test_report().items()}

    def test_report(self) -> dict[str, dict]:
        """The run's test ``{"pr_auc", "chance"}`` per marker name (see :func:`test_report`)."""
        if self._scores is None:
            self._scores = test_report(self.path.parent)
        return self._scores

    def chrom_splits(self, chroms: list[str]) -> dict[str, str]:
        """The training split of each chromosome: ``train``, ``valid``, ``test``, ``unused``
        (left out of every split), or ``random`` (a random split: windows of every split on
        every chromosome)."""
        rec = self.checkpoint.split_record
        if rec.get("mode") != "chrom":
            return {c: "random" for c in chroms}
        where = {c: s for s, cs in (rec.get("chroms") or {}).items() for c in cs}
        return {c: where.get(c, "unused") for c in chroms}

    def provenance(self, **extra) -> dict:
        """The provenance record of the tracks made in this session.

        ``checkpoint`` (absolute path), ``checkpoint_sha256``, ``model``, ``genome``,
        ``window_len`` (the training window), then ``extra`` in order, then ``command``,
        ``created`` (UTC) and ``regtracks_version``. An extra given as None leaves that key out.
        """
        rec = {
            "checkpoint": str(self.path.resolve()),
            "checkpoint_sha256": self.sha256,
            "model": self.checkpoint.model_name,
            "genome": self.genome.name,
            "window_len": self.train_window,
        }
        rec.update(extra)
        rec["command"] = command_line()
        rec["created"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        rec["regtracks_version"] = __version__
        return {k: v for k, v in rec.items() if k not in extra or extra[k] is not None}

    def track_record(
        self,
        i: int,
        *,
        name: str,
        file: str,
        kind: str,
        bin_size: int,
        chroms: list[str],
        provenance: dict,
        description: str | None = None,
    ) -> dict:
        """The manifest entry of marker ``i``'s track: ``split`` maps each of its chromosomes to
        its training split (:meth:`chrom_splits`); ``provenance`` gains the marker's test PR-AUC
        and its chance level when the run was evaluated."""
        m = self.markers[i]
        scores = self.test_report()
        prov = dict(provenance)
        if m.name in scores:
            prov["test_pr_auc"] = scores[m.name]["pr_auc"]
            if scores[m.name]["chance"] is not None:
                prov["test_chance"] = scores[m.name]["chance"]
        return {
            "name": name,
            "file": file,
            "kind": kind,
            "marker": m.name,
            "category": m.category,
            "cell_type": m.cell_type,
            "color": m.color or CATEGORY_COLORS[m.category],
            "bin_size": bin_size,
            "chroms": chroms,
            "split": self.chrom_splits(chroms),
            "description": m.description if description is None else description,
            "provenance": prov,
        }

    def genome_record(self) -> dict:
        """The manifest's ``genome`` entry: name, FASTA path, chromosome sizes."""
        g = self.genome
        return {
            "name": g.name,
            "fasta": str(g.path),
            "chrom_sizes": [list(x) for x in g.chrom_sizes],
        }


def open_session(
    run: str | os.PathLike,
    *,
    genome=None,
    which: str = DEFAULT_RUNTIME.checkpoint,
    markers: list[str] | None = None,
    category: str | None = None,
    device: str = DEFAULT_RUNTIME.device,
    precision: str = DEFAULT_RUNTIME.precision,
    purpose: str,
) -> InferenceSession:
    """Open a dense-task run for inference.

    Parameters
    ----------
    run : path
        Run folder or checkpoint (dense task).
    genome : path or Genome, optional
        Genome FASTA (default: the one recorded in the checkpoint); its chromosome names and
        sizes must match the checkpoint's.
    which : {"best", "last"}
        Checkpoint of the run folder.
    markers, category : optional
        Select these markers, or one category (default: all markers).
    device, precision : str
        ``auto`` (CUDA with bf16 when there), ``cpu`` / ``cuda``; ``fp32`` / ``bf16``. Under
        torchrun, ``cuda`` is the GPU of the process's ``LOCAL_RANK``.
    purpose : str
        What needs the model, for the error on a sequence-task run ("variant scores need a
        dense-task model").

    Raises
    ------
    RegtracksError
        No checkpoint, a sequence-task one, a genome that does not match, unknown markers, a
        device that is not there.
    """
    from regtracks.checkpoint import load_dense
    from regtracks.runtime import DistEnv, autocast_dtype, resolve_device

    path, ck = load_dense(run, which=which, purpose=purpose)
    g = ck.open_genome(genome)
    ms = ck.marker_set()
    idx = ms.select(names=markers, category=category)
    dev = resolve_device(device, DistEnv.from_env())  # torchrun: the LOCAL_RANK's GPU
    amp = autocast_dtype(precision, dev)
    model = ck.build_model(device=dev)
    rf = getattr(model, "receptive_field", ck.receptive_field)
    return InferenceSession(
        path=path,
        checkpoint=ck,
        genome=g,
        markers=ms,
        marker_idx=list(idx),
        device=dev,
        amp=amp,
        model=model,
        receptive_field=None if rf is None else int(rf),
        stride=int(getattr(model, "stride", ck.stride) or 1),
        train_window=ck.train_window,
    )
