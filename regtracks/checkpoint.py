"""Self-describing checkpoints: weights + everything needed to use them.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(path, weights_only=True)`` (no arbitrary unpickling). Keys::

    format            "regtracks-checkpoint/1"
    regtracks_version
    task              "dense" | "sequence"
    model             {"name", "hparams", "receptive_field", "stride"}
    state_dict        model weights
    markers           [{"name", "category", "path" (absolute), "cell_type", "color", "description"}]
    genome            {"name", "path", "chrom_sizes": [[chrom, size], ...], "sizes_hash"}
    data              the DataConfig used (window length, filters, split options)
    exclude           path of the exclude BED or None
    split             {"mode", "chroms", "auto", "seed"}
    train             the training options
    metrics           {"step", "epoch", "valid": {...}, "best": ...}
    state             (last.pt only) {"optimizer", "rng", "epoch", "step", "step_in_epoch", ...}

``predict``, ``saliency``, ``variants`` and ``evaluate`` need nothing but the checkpoint and the
genome it was trained on (checked by chromosome names and sizes).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from regtracks import __version__
from regtracks._util import RegtracksError, atomic_path, write_cause
from regtracks.config import DEFAULT_RUNTIME, DataConfig

__all__ = [
    "FORMAT",
    "save_checkpoint",
    "load_checkpoint",
    "load_dense",
    "find_checkpoint",
    "Checkpoint",
]

FORMAT = "regtracks-checkpoint/1"


def _plain(obj):
    """Tuples -> lists, recursively (checkpoints hold plain containers only)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def data_config_to_dict(cfg: DataConfig) -> dict:
    return _plain(asdict(cfg))


def data_config_from_dict(d: dict) -> DataConfig:
    known = DataConfig.__dataclass_fields__
    kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in known}
    return DataConfig(**kw)


def save_checkpoint(path: str | os.PathLike, ckpt: dict) -> None:
    """Write ``ckpt`` atomically (temporary file, then rename)."""
    import torch

    with atomic_path(path, check=_check_saved) as tmp:
        torch.save(ckpt, tmp)


def _check_saved(path: Path) -> None:
    """A checkpoint just written is a whole zip archive (torch.save's format): a short write
    (full disk) loses its central directory at the end."""
    import zipfile

    if not zipfile.is_zipfile(path):
        raise RegtracksError(
            f"{path}: the checkpoint written is incomplete ({write_cause(path) or 'cut short'})"
        )


_REQUIRED = {
    "task": str,
    "model": dict,
    "state_dict": dict,
    "markers": list,
    "genome": dict,
    "data": dict,
}
_REQUIRED_INSIDE = (
    ("model", "name", str),
    ("genome", "chrom_sizes", list),
    ("data", "window_len", int),
)


@dataclass
class Checkpoint:
    """A loaded checkpoint. Its accessors are the only code that reads the dict's keys
    (``raw``, kept for this module): the rest of regtracks asks the checkpoint."""

    path: Path
    raw: dict

    @property
    def n_markers(self) -> int:
        return len(self.raw["markers"])

    @property
    def marker_table(self) -> list[tuple[str, str]]:
        """``(name, category)`` of every marker, in output order."""
        return [(m["name"], m["category"]) for m in self.raw["markers"]]

    @property
    def train_window(self) -> int:
        """The dense-task window length the model was trained on (bp)."""
        return int(self.raw["data"]["window_len"])

    @property
    def receptive_field(self) -> int | None:
        """As recorded at training (``None``: the whole input)."""
        rf = self.raw["model"].get("receptive_field")
        return None if rf is None else int(rf)

    @property
    def stride(self) -> int:
        return int(self.raw["model"].get("stride", 1) or 1)

    @property
    def exclude(self) -> str | None:
        """Path of the exclude BED used at training, or None."""
        return self.raw.get("exclude")

    @property
    def split_record(self) -> dict:
        """``{"mode", "chroms", "auto", "seed"}`` of the training split."""
        return dict(self.raw.get("split") or {})

    @property
    def step(self) -> int | None:
        """Optimizer steps behind these weights."""
        return self.raw.get("metrics", {}).get("step")

    @property
    def metrics(self) -> dict:
        """``{"step", "epoch", "valid", "best", "best_step"}`` at the time of writing."""
        return dict(self.raw.get("metrics") or {})

    @property
    def train_options(self) -> dict:
        """The training options (:class:`~regtracks.config.TrainConfig` as a dict)."""
        return dict(self.raw.get("train") or {})

    def check_continues(self, *, task: str, model: str, hparams: dict, markers, genome,
                        window_len: int) -> None:  # fmt: skip
        """Raise unless a run with these settings continues this (``last.pt``) checkpoint."""
        if self.task != task:
            raise RegtracksError(f"--resume: the run is task {self.task!r}, not {task!r}")
        if self.model_name != model:
            raise RegtracksError(f"--resume: the run trains {self.model_name!r}, not {model!r}")
        recorded = self.hparams
        differ = {k: v for k, v in hparams.items() if recorded.get(k) != v}
        if differ:
            k, v = next(iter(differ.items()))
            raise RegtracksError(
                f"--resume: --hparam {k}={v} differs from the run's {k}={recorded.get(k)!r}"
            )
        had = self.marker_table
        now = [(m.name, m.category) for m in markers]
        if had != now:
            diff = next((i for i, (a, b) in enumerate(zip(had, now, strict=False)) if a != b), None)
            where = f"first difference at marker {diff + 1}" if diff is not None else "counts"
            raise RegtracksError(
                f"--resume: the marker table differs from the run's ({len(had)} vs "
                f"{len(now)} markers, {where})"
            )
        self.check_genome(genome)
        if task == "dense" and self.train_window != window_len:
            raise RegtracksError(
                f"--resume: the run used --window-len {self.train_window}, not {window_len}"
            )

    def restore_training(self, model, optimizer, state: dict, device) -> None:
        """Load weights, optimizer, loop state and RNG of a ``last.pt`` into a new run."""
        import torch

        st = self.raw.get("state")
        if not isinstance(st, dict):
            raise RegtracksError(f"{self.path}: holds no training state (not a last.pt)")
        model.load_state_dict(self.raw["state_dict"])
        optimizer.load_state_dict(st["optimizer"])
        for k in state:
            if k in st:
                state[k] = st[k]
        torch.set_rng_state(st["rng"]["torch"])
        if getattr(device, "type", str(device)) == "cuda" and st["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(st["rng"]["cuda"], device)

    @property
    def task(self) -> str:
        return self.raw["task"]

    @property
    def model_name(self) -> str:
        return self.raw["model"]["name"]

    @property
    def hparams(self) -> dict:
        return dict(self.raw["model"].get("hparams", {}))

    @property
    def chrom_sizes(self) -> list[tuple[str, int]]:
        return [(c, int(s)) for c, s in self.raw["genome"]["chrom_sizes"]]

    @property
    def data_config(self) -> DataConfig:
        return data_config_from_dict(self.raw["data"])

    def marker_set(self):
        from regtracks.data.markers import MarkerSet

        return MarkerSet.from_records(self.raw["markers"])

    def build_model(self, *, device="cpu"):
        """The model in eval mode with the checkpoint's weights, on ``device``."""
        from regtracks.models import get_model

        model = get_model(self.model_name, n_markers=self.n_markers, **self.hparams)
        try:
            model.load_state_dict(self.raw["state_dict"])
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise RegtracksError(
                f"{self.path}: weights do not fit model {self.model_name!r} ({first})"
            ) from None
        return model.to(device).eval()

    def check_genome(self, genome) -> None:
        """Raise unless ``genome`` has the checkpoint's chromosome names and sizes."""
        want = dict(self.chrom_sizes)
        got = dict(genome.chrom_sizes)
        if want == got:
            return
        diff = [c for c in want if got.get(c) != want[c]][:3]
        if diff:
            c = diff[0]
            have = got.get(c)
            what = "is missing" if have is None else f"has {have:,} bp"
            raise RegtracksError(
                f"genome {genome.path.name} does not match checkpoint {self.path.name}: "
                f"{c} {what}, the checkpoint's genome has {want[c]:,} bp"
            )
        extra = [c for c in got if c not in want][:3]
        raise RegtracksError(
            f"genome {genome.path.name} does not match checkpoint {self.path.name}: it has "
            f"chromosome(s) {', '.join(extra)} the checkpoint's genome lacks"
        )

    def open_genome(self, genome=None):
        """Open ``genome`` (path or None: the path recorded at training) and check it matches."""
        from regtracks.data.genome import Genome

        if genome is None:
            recorded = self.raw["genome"].get("path")
            if not recorded or not Path(recorded).is_file():
                raise RegtracksError(
                    f"the genome recorded in {self.path.name} ({recorded}) is not there; "
                    "pass it with --genome"
                )
            genome = recorded
        g = genome if not isinstance(genome, (str, os.PathLike)) else Genome(genome)
        self.check_genome(g)
        return g


def load_dense(
    run: str | os.PathLike, *, which: str = DEFAULT_RUNTIME.checkpoint, purpose: str
) -> tuple[Path, Checkpoint]:
    """Find and load the checkpoint of a dense-task run; ``purpose`` names what needs it.

    Raises
    ------
    RegtracksError
        No checkpoint, or a sequence-task one ("{purpose} need a dense-task model").
    """
    path = find_checkpoint(run, which=which)
    ck = load_checkpoint(path)
    if ck.task != "dense":
        raise RegtracksError(
            f"{path.name} holds a {ck.task}-task model; {purpose} need a dense-task model "
            "(train one with --task dense)"
        )
    return path, ck


CHECKPOINT_NAMES = ("best", "last")
"""What ``--checkpoint`` names in a run folder (or it names a checkpoint file)."""


def find_checkpoint(run: str | os.PathLike, *, which: str = DEFAULT_RUNTIME.checkpoint) -> Path:
    """The checkpoint of a run: ``RUN/best.pt`` or ``RUN/last.pt`` (``which``), or a file.

    ``run`` may be the checkpoint file itself; ``which`` may be a checkpoint file too
    (``--checkpoint PATH``). ``best`` falls back to ``last.pt`` for a run that never
    validated (no ``best.pt``); ``last`` must exist.

    Raises
    ------
    RegtracksError
        ``which`` is neither ``best``, ``last`` nor an existing file; no such run or file.
    """
    run = Path(run)
    which = str(which)
    if which not in CHECKPOINT_NAMES:
        path = Path(which).expanduser()
        if path.is_file():
            return path
        if path.is_dir():
            raise RegtracksError(f"--checkpoint {which} is a folder; name a checkpoint file")
        looks_like_path = os.sep in which or which.endswith(".pt")
        raise RegtracksError(
            f"--checkpoint {which}: no such checkpoint file"
            if looks_like_path
            else f"--checkpoint must be best, last or a checkpoint file, got {which!r}"
        )
    if run.is_file():
        return run
    if not run.exists():
        raise RegtracksError(f"{run}: no such run folder or checkpoint")
    if not run.is_dir():
        raise RegtracksError(f"{run}: not a run folder or a checkpoint file")
    if (run / f"{which}.pt").is_file():
        return run / f"{which}.pt"
    if which == "best" and (run / "last.pt").is_file():
        return run / "last.pt"  # the run never validated: its last weights are all there is
    if which == "last" and (run / "best.pt").is_file():
        raise RegtracksError(f"{run}: no last.pt (use --checkpoint best)")
    raise RegtracksError(f"{run}: not a regtracks run (no best.pt or last.pt)")


def load_checkpoint(path: str | os.PathLike, *, map_location="cpu") -> Checkpoint:
    """Load and validate a checkpoint file (``weights_only=True``).

    Raises
    ------
    RegtracksError
        Missing file, not a regtracks checkpoint, or written by an incompatible format.
    """
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise RegtracksError(f"{path}: checkpoint not found")
    try:
        with warnings.catch_warnings():  # a file that is no checkpoint: our line, not torch's
            warnings.simplefilter("ignore")
            raw = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RegtracksError(
            f"{path}: not a readable regtracks checkpoint ({first[:200]})"
        ) from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        fmt = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
        raise RegtracksError(
            f"{path}: not a regtracks checkpoint (format {fmt!r}, expected {FORMAT})"
        )
    for key, kind in _REQUIRED.items():
        if not isinstance(raw.get(key), kind):
            what = "lacks" if key not in raw else "has a malformed"
            raise RegtracksError(f"{path}: damaged regtracks checkpoint ({what} {key!r} entry)")
    for key, sub, kind in _REQUIRED_INSIDE:
        if not isinstance(raw[key].get(sub), kind):
            raise RegtracksError(f"{path}: damaged regtracks checkpoint (no {key}.{sub})")
    if not all(isinstance(m, dict) and "name" in m and "category" in m for m in raw["markers"]):
        raise RegtracksError(f"{path}: damaged regtracks checkpoint (malformed marker table)")
    return Checkpoint(path=path, raw=raw)


def base_checkpoint(
    *,
    task: str,
    model_name: str,
    hparams: dict,
    model,
    markers,
    genome,
    data_cfg: DataConfig,
    exclude: str | None,
    split: dict,
    train: dict,
) -> dict:
    """The self-describing part of a checkpoint (everything but weights, metrics and state)."""
    records = []
    for m, rec in zip(markers, markers.to_records(), strict=True):
        rec["path"] = str(markers.peak_path(m).resolve())
        records.append(rec)
    return {
        "format": FORMAT,
        "regtracks_version": __version__,
        "task": task,
        "model": {
            "name": model_name,
            "hparams": _plain(hparams),
            "receptive_field": getattr(model, "receptive_field", None),
            "stride": getattr(model, "stride", 1),
        },
        "markers": records,
        "genome": {
            "name": genome.name,
            "path": str(genome.path),
            "chrom_sizes": [[c, int(s)] for c, s in genome.chrom_sizes],
            "sizes_hash": genome.sizes_hash(),
        },
        "data": data_config_to_dict(data_cfg),
        "exclude": exclude,
        "split": _plain(split),
        "train": _plain(train),
    }
