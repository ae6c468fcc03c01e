"""Training loop: one model, one task, on CPU, one GPU or many (torchrun + DDP).

Tensor contract: batches arrive as base codes and interval rows;
:func:`regtracks.data.datasets.to_device` builds ``x`` ``(N, 4, L)`` and ``y`` ``(N, M, L)`` (dense)
or ``(N, M)`` (sequence) on the device; the model gives logits of ``y``'s shape. The loss is
the binary cross-entropy averaged over every position and marker (for the ID-CNN, averaged
over its passes as well).

What a run folder holds::

    RUN/last.pt        weights + optimizer + RNG + data position (for --resume)
    RUN/best.pt        weights of the best validation mean PR-AUC (self-describing:
                       see checkpoint.py)
    RUN/metrics.jsonl  one JSON object per line: training loss / throughput and validation metrics

On CPU, a run stopped and resumed ends bit-identical to one that was never stopped: batch order
and augmentation depend only on (seed, epoch, position), the DataLoader has its own generator,
and the torch RNG state is saved with the step it belongs to.

Many GPUs: ``torchrun --nproc-per-node N -m regtracks train ...`` starts N processes; each
trains on its shard of every epoch's batches (PyTorch DDP), validation metrics are summed over
processes, and rank 0 alone writes files. On CUDA batch norm becomes ``SyncBatchNorm``
(``TrainConfig.sync_batchnorm``); DDP runs with ``gradient_as_bucket_view`` (no second copy of
the gradients) and looks for unused parameters only where the model has some
(:func:`unused_parameters`); before each validation every process takes rank 0's buffers, so
all score the model that rank 0 saves.

Memory: the loss takes the logits in their dtype (bf16 under autocast) and the labels as uint8
(:func:`regtracks.training.loss.bce_with_logits`): no float32 copy of the ``(N, M, L)`` tensors.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from regtracks._util import (
    RegtracksError,
    check_output_folder,
    folder_lock,
    remove_stale_temps,
)
from regtracks.checkpoint import base_checkpoint, load_checkpoint, save_checkpoint
from regtracks.config import DEFAULT_DATA, DEFAULT_TRAIN, DataConfig, TrainConfig
from regtracks.data.datasets import to_device
from regtracks.data.prepare import TaskData, positive_fraction, prepare
from regtracks.runtime import DistEnv, any_rank, autocast_dtype, configure_cuda, resolve_device
from regtracks.training.loaders import (
    EpochSampler,
    ShardSampler,
    close_loader,
    make_dataset,
    make_loader,
)
from regtracks.training.loss import bce_with_logits

__all__ = ["train", "Trainer", "TrainResult", "init_output_bias", "unused_parameters"]


# -- the run ------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    """How a training run ended."""

    run_dir: Path
    status: str  # "finished" | "early-stopped" | "max-steps" | "interrupted"
    step: int
    epoch: int
    best: float | None
    best_step: int | None
    last_valid: dict | None = None
    history: list[dict] = field(default_factory=list)


class _StopFlag:
    """Ctrl-C (SIGINT) during a run, in the main process.

    The first Ctrl-C asks the loop to stop after the current step: the step finishes,
    ``last.pt`` is saved with the state after it, and :meth:`Trainer.run` returns
    ``"interrupted"``. A further Ctrl-C stops at once only where that loses nothing: during
    validation (``KeyboardInterrupt``, which :meth:`Trainer.run` handles by saving the state
    of the last whole step). Anywhere else (a step, the writing of a checkpoint, waiting for
    data, the bookkeeping between) it is ignored, and said ("still saving the checkpoint ...;
    please wait"): an interrupted step would leave weights holding part of it, an interrupted
    write the previous ``last.pt`` and the steps since lost.

    ``say(message)`` reports what a Ctrl-C did (the run's ``warning`` events); it is called from
    the signal handler, in the main thread. Forked DataLoader workers inherit the handler and
    ignore the signal there (the main process decides; a worker killed by Ctrl-C would break
    the loader).
    """

    def __init__(self, say=None, *, step=lambda: 0, last="last.pt"):
        self.set = False
        self.in_step = False
        self._saving: str | None = None
        self._interruptible: str | None = None  # what a second Ctrl-C would stop
        self._raised = False
        self._say = say
        self._step = step
        self._last = str(last)
        self._pid = os.getpid()
        self._old = None

    def __enter__(self):
        import threading

        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
            self._old = None

    def _tell(self, message: str) -> None:
        if self._say is not None:
            self._say(message)

    def _handle(self, signum, frame):
        if os.getpid() != self._pid or self._raised:  # a forked worker; stopping already
            return
        first = not self.set
        self.set = True
        if self._saving is not None:
            self._tell(
                f"Ctrl-C: stopping once {self._saving} is written"
                if first
                else f"still saving the checkpoint {self._saving}; please wait"
            )
        elif first:
            self._tell(
                {
                    None: f"Ctrl-C: finishing this step, then saving {self._last} and stopping",
                    "validation": f"Ctrl-C: stopping after the validation, then saving "
                    f"{self._last} (Ctrl-C again stops it at once)",
                }[self._interruptible]
            )
        elif self._interruptible:
            self._raised = True
            raise KeyboardInterrupt
        elif self.in_step:
            self._tell(
                f"still finishing step {self._step() + 1:,}, then saving {self._last}; please wait"
            )
        else:
            self._tell(f"stopping at step {self._step():,}: saving {self._last}; please wait")

    @contextlib.contextmanager
    def saving(self, path):
        """Ctrl-C waits while the block writes the checkpoint ``path``."""
        before, self._saving = self._saving, str(path)
        try:
            yield
        finally:
            self._saving = before

    @contextlib.contextmanager
    def step(self):
        """Mark the block as an optimizer step (a Ctrl-C lets it finish). A step left by an
        exception stays marked: the state may hold part of it, and is not saved."""
        self.in_step = True
        yield
        self.in_step = False

    @contextlib.contextmanager
    def interruptible(self, what: str):
        """A second Ctrl-C stops the block at once: ``"validation"``, which changes no state a
        checkpoint holds. (Not the wait for a batch: interrupted, the DataLoader's workers
        break off passing it and print tracebacks; a Ctrl-C there stops before the step.)"""
        before, self._interruptible = self._interruptible, what
        try:
            yield
        finally:
            self._interruptible = before


def init_output_bias(model: nn.Module, rates) -> bool:
    """Set the output layer's bias to the logits of the markers' positive rates.

    With 1 % positives a zero bias predicts 50 %, and Adam needs thousands of steps to walk the
    bias down before anything else is learnt; starting from the prior (as RetinaNet does) makes
    the first steps learn sequence instead. Uses ``model.init_output_bias(logits)`` when the
    model defines it, else the last ``Linear``/``Conv1d`` with ``M`` outputs and a bias.

    Returns
    -------
    bool
        Whether a layer was found.
    """
    import numpy as np

    p = np.clip(np.asarray(rates, dtype=np.float64), 1e-6, 1 - 1e-6)
    logits = torch.tensor(np.log(p / (1 - p)), dtype=torch.float32)
    if hasattr(model, "init_output_bias"):
        model.init_output_bias(logits)
        return True
    last = None
    for mod in model.modules():
        n_out = getattr(mod, "out_features", None) or getattr(mod, "out_channels", None)
        if (
            isinstance(mod, nn.Linear | nn.Conv1d)
            and n_out == logits.numel()
            and mod.bias is not None
        ):
            last = mod
    if last is None:
        return False
    with torch.no_grad():
        last.bias.copy_(logits.to(last.bias))
    return True


@contextlib.contextmanager
def _claim_run_folder(out: Path, *, resume: bool, overwrite: bool):
    """Hold the run folder for a run: checked writable, locked against a second writer
    (:func:`regtracks._util.folder_lock`, released when the block ends), checked for a run it
    would overwrite, and cleared of the temporaries a killed run left behind.

    Raises
    ------
    RegtracksError
        The folder is a file or not writable, another regtracks process holds it, it holds
        a run (without ``resume`` / ``overwrite``), or there is nothing to resume.
    """
    if out.exists() and not out.is_dir():
        raise RegtracksError(f"{out}: exists and is not a folder")
    if resume and not (out / "last.pt").is_file():
        raise RegtracksError(f"{out}: nothing to resume (no last.pt)")
    check_output_folder(out, "run folder")
    with folder_lock(out, "regtracks train"):
        if not resume and ((out / "last.pt").exists() or (out / "best.pt").exists()):
            if not overwrite:
                raise RegtracksError(
                    f"{out} already holds a run; use --resume to continue it or --overwrite "
                    "to start again"
                )
        remove_stale_temps(out, depth=0)  # the run's own files; sub-folders are others'
        yield


def _category_means(values, categories: list[str]) -> dict:
    """Per-category means (NaN left out) plus ``mean``: the mean over every marker."""
    import numpy as np

    from regtracks.training.metrics import category_means

    out = category_means(values, categories)
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    out["mean"] = float(v.mean()) if v.size else None
    return out


def train(
    genome,
    markers,
    out_dir: str | os.PathLike,
    cfg: TrainConfig = DEFAULT_TRAIN,
    *,
    data_cfg: DataConfig = DEFAULT_DATA,
    exclude: str | os.PathLike | None = None,
    resume: bool = False,
    overwrite: bool = False,
    task_data: TaskData | None = None,
    on_event=None,
    progress=None,
) -> TrainResult:
    """Train ``cfg.model`` on the task built from ``genome`` and ``markers``.

    Parameters
    ----------
    genome, markers : path or object
        Genome FASTA and marker manifest (see :func:`regtracks.data.prepare.prepare`).
    out_dir : path
        The run folder (``best.pt``, ``last.pt``, ``metrics.jsonl``).
    cfg : TrainConfig
    data_cfg : DataConfig
    exclude : path, optional
        Excluded-regions BED.
    resume : bool
        Continue from ``out_dir/last.pt`` (weights, optimizer, RNG, data position).
    overwrite : bool
        Start again in a folder that holds a run.
    task_data : TaskData, optional
        Data already prepared (the benchmark reuses it across models).
    on_event : callable, optional
        ``on_event(event: dict)``; events ``start``, ``train``, ``valid``, ``end``.
    progress : callable, optional
        Deprecated name of ``on_event`` (``DeprecationWarning``); removed in the next release.

    Returns
    -------
    TrainResult

    Raises
    ------
    RegtracksError
        Bad options, a folder holding another run, a run folder that cannot be written or
        that another regtracks process holds (it is locked for the whole run), a mismatched
        ``--resume``, or a NaN loss (``last.pt`` then still holds the last good state).

    Notes
    -----
    Ctrl-C: the first lets the current step finish, saves ``last.pt`` and returns with status
    ``"interrupted"``; more Ctrl-Cs while the checkpoint is written are ignored, each said in
    a ``warning`` event of kind ``"interrupt"`` (see ``_StopFlag``). ``last.pt`` only ever
    holds whole steps, so a resumed run stays bit-identical on CPU.
    """
    from regtracks._util import renamed_keyword

    on_event = renamed_keyword(on_event, progress, caller="train", new="on_event", old="progress")
    trainer = Trainer(
        genome,
        markers,
        out_dir,
        cfg,
        data_cfg=data_cfg,
        exclude=exclude,
        resume=resume,
        overwrite=overwrite,
        task_data=task_data,
        on_event=on_event,
    )
    return trainer.run()


class Trainer:
    """One training run, in the steps a reader follows: :meth:`__init__` sets up (device,
    data, model, optimizer, resumed state), :meth:`step` is one optimizer step,
    :meth:`validate` scores the validation split, :meth:`save` writes a checkpoint, and
    :meth:`run` loops over epochs until a stop condition. Arguments as for :func:`train`.
    """

    def __init__(
        self,
        genome,
        markers,
        out_dir,
        cfg: TrainConfig = DEFAULT_TRAIN,
        *,
        data_cfg: DataConfig = DEFAULT_DATA,
        exclude=None,
        resume: bool = False,
        overwrite: bool = False,
        task_data: TaskData | None = None,
        on_event=None,
    ):
        _check_options(cfg)
        self.dist = dist = DistEnv.from_env()
        self.device = resolve_device(cfg.device, dist)
        self.amp = autocast_dtype(cfg.precision, self.device)
        self.out = Path(out_dir)
        self.on_event = on_event if dist.is_main else None
        self._stop: _StopFlag | None = None
        self._saved: tuple[int, int] | None = None  # (step, epoch) last.pt was written with
        # the run folder is this run's (locked) from here until run() ends, or close()
        self._hold = contextlib.ExitStack()
        if dist.is_main:
            self._hold.enter_context(
                _claim_run_folder(self.out, resume=resume, overwrite=overwrite)
            )
        try:
            self._setup(genome, markers, cfg, data_cfg, exclude, resume, task_data)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop the loaders' workers and release the run folder (:meth:`run` does when it
        ends); the trainer is done."""
        for name in ("loader", "valid_loader"):
            close_loader(getattr(self, name, None))
        self._hold.close()

    def _setup(self, genome, markers, cfg, data_cfg, exclude, resume, task_data) -> None:
        from regtracks.models import coerce_hparams, get_model

        dist, device, out = self.dist, self.device, self.out
        if device.type == "cuda":
            configure_cuda()
            torch.cuda.set_device(device)
        if dist.world > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            torch.distributed.init_process_group(backend=backend)

        td = task_data or prepare(genome, markers, task=cfg.task, cfg=data_cfg, exclude=exclude)
        if td.task != cfg.task:
            raise RegtracksError(f"task data is {td.task!r}, the run is {cfg.task!r}")
        self.td = td
        cfg = replace(cfg, hparams=coerce_hparams(cfg.model, dict(cfg.hparams)))
        ck = None
        if resume:
            ck = load_checkpoint(out / "last.pt")
            ck.check_continues(
                task=cfg.task,
                model=cfg.model,
                hparams=cfg.hparams,
                markers=td.markers,
                genome=td.genome,
                window_len=td.cfg.window_len,
            )
            cfg = replace(cfg, hparams=ck.hparams)
        self.shift = default_shift(td) if cfg.shift is None else cfg.shift
        self.cfg = cfg = replace(cfg, shift=self.shift)

        torch.manual_seed(cfg.seed)
        self.model = model = get_model(cfg.model, n_markers=td.n_markers, **cfg.hparams)
        if getattr(model, "task", cfg.task) != cfg.task:
            raise RegtracksError(
                f"model {cfg.model!r} is for the {model.task} task, not {cfg.task}"
            )
        if ck is None:
            init_output_bias(model, positive_fraction(td, "train"))
        model.to(device)
        self.sync_bn = cfg.sync_batchnorm and dist.world > 1 and device.type == "cuda"
        if self.sync_bn:  # the same parameters and buffers (and state_dict keys), synced stats
            self.model = model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        self.state = {
            "epoch": 0,
            "step": 0,
            "step_in_epoch": 0,
            "best": None,
            "best_step": None,
            "bad": 0,
            "seconds": 0.0,
        }
        if ck is not None:
            ck.restore_training(model, self.opt, self.state, device)

        self.train_ds, collate = make_dataset(
            td, "train", rc=cfg.rc, seed=cfg.seed, shift=self.shift
        )
        self.valid_ds, _ = make_dataset(td, "valid")
        if len(self.train_ds) == 0:
            raise RegtracksError("the training split is empty")
        self.sampler = EpochSampler(
            len(self.train_ds), batch_size=cfg.batch_size, seed=cfg.seed, dist=dist
        )
        if self.sampler.batches_per_epoch == 0:
            raise RegtracksError(
                f"{len(self.train_ds)} training windows make no whole batch of "
                f"{cfg.batch_size} x {dist.world} process(es); lower --batch-size"
            )
        loader_kw = {"batch_size": cfg.batch_size, "workers": cfg.workers, "device": device}
        # on the CPU the workers build the labels in the dtype the loss and the validation
        # metrics take (uint8: bce_with_logits casts a few windows at a time); the workers of
        # both loaders persist across epochs and validations, on every rank
        self.loader = make_loader(
            self.train_ds, self.sampler, collate, label_dtype=torch.uint8, **loader_kw
        )
        self.valid_loader = make_loader(
            self.valid_ds, ShardSampler(len(self.valid_ds), dist), collate, **loader_kw
        )
        self.wrapped = model
        self.find_unused = False
        if dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [device.index] if device.type == "cuda" else None
            self.find_unused = bool(unused_parameters(model, td, device))
            self.wrapped = DDP(
                model,
                device_ids=ids,
                find_unused_parameters=self.find_unused,
                gradient_as_bucket_view=True,
                **_no_buffer_broadcast(self.sync_bn),
            )
        if cfg.compile:
            # after the DDP wrap (PyTorch's rule for DDP + compile); self.model stays the
            # plain module: validation and checkpoints (no "_orig_mod." keys) use it
            self.wrapped = torch.compile(self.wrapped)
        self.pos_weight = torch.tensor(cfg.pos_weight, device=device)
        self.marker_weight = marker_weights(
            cfg.marker_weighting, positive_fraction(td, "train"), device, task=td.task
        )
        self.ckpt_base = base_checkpoint(
            task=cfg.task,
            model_name=cfg.model,
            hparams=dict(getattr(model, "hparams", cfg.hparams)),
            model=model,
            markers=td.markers,
            genome=td.genome,
            data_cfg=td.cfg,
            exclude=td.exclude_path,
            split=td.samples.split_info.to_dict(),
            train=asdict(cfg),
        )
        self.metrics_path = out / "metrics.jsonl"
        if dist.is_main:
            _trim_metrics(self.metrics_path, self.state["step"] if resume else -1)
        self.history: list[dict] = []
        self.last_valid: dict | None = None
        self._window = _LogWindow(device)
        self._losses: list[float] = []  # first and latest logged training loss
        self._warned = False
        self.tensorboard = None
        if cfg.tensorboard and dist.is_main:
            from regtracks.training.curves import TensorBoardLogger

            self.tensorboard = TensorBoardLogger(cfg.tensorboard)

    # -- bookkeeping ---------------------------------------------------------------------------
    @property
    def total_steps(self) -> int:
        """Optimizer steps this run ends at (``epochs`` and ``max_steps`` together)."""
        cfg = self.cfg
        total = cfg.epochs * self.sampler.batches_per_epoch
        if cfg.max_steps:
            total = min(total, cfg.max_steps) if cfg.epochs else cfg.max_steps
        return total

    def lr_at(self, step: int) -> float:
        """Learning rate of optimizer step ``step`` (0-based): see :func:`lr_schedule`."""
        return lr_schedule(step, self.cfg.lr, self.cfg.warmup, self.cfg.lr_decay, self.total_steps)

    def _emit(self, rec: dict, *, log: bool = True) -> None:
        if log and self.dist.is_main:
            with open(self.metrics_path, "a") as fh:
                fh.write(json.dumps(rec) + "\n")
            if self.tensorboard is not None:
                self.tensorboard.log(rec)
        if self.on_event:
            self.on_event(rec)

    def write_curves(self) -> None:
        """``curves.png`` of the run so far (skipped without matplotlib)."""
        from regtracks.training.curves import write_curves
        from regtracks.training.metrics import category_means

        if self.dist.is_main:
            chance = category_means(positive_fraction(self.td, "valid"), self.td.markers.categories)
            write_curves(self.metrics_path, self.out / "curves.png", chance=chance)

    # -- the steps -----------------------------------------------------------------------------
    def step(self, batch) -> None:
        """One optimizer step on one batch (loss averaged over positions, markers and, for
        deep supervision, outputs)."""
        from regtracks.models import loss_outputs

        x, y = to_device(batch, self.td.n_markers, self.device)
        for group in self.opt.param_groups:
            group["lr"] = self.lr_at(self.state["step"])
        self.opt.zero_grad(set_to_none=True)
        try:
            with torch.autocast(
                self.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None
            ):
                outs = loss_outputs(self.wrapped, x)
            loss = sum(self.loss(o, y) for o in outs) / len(outs)
            loss.backward()
        except Exception as exc:
            if self.cfg.compile and _compile_error(exc):
                first = (str(exc).strip().splitlines() or [""])[0][:300]
                raise RegtracksError(
                    f"--compile: torch.compile failed ({type(exc).__name__}: {first}); train "
                    "without --compile"
                ) from exc
            raise
        if self.cfg.grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.opt.step()
        self.state["step"] += 1
        self.state["step_in_epoch"] += 1
        self._window.add(loss.detach(), x.shape[0] * x.shape[-1])

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Binary cross-entropy averaged over positions and markers (each marker weighted by
        ``marker_weight`` when the run balances markers), in float32, from the logits in their
        own dtype and the labels in theirs (uint8): :func:`~regtracks.training.loss.bce_with_logits`
        makes no float32 copy of either."""
        return bce_with_logits(logits, y, pos_weight=self.pos_weight, weight=self.marker_weight)

    def validate(self) -> dict | None:
        """Validation PR-AUC / ROC-AUC: per-category means, the overall mean and per marker."""
        from regtracks.training.evaluate import evaluate_loader

        if len(self.valid_ds) == 0:
            return None
        if self.dist.world > 1:
            self.sync_buffers()
        self.model.eval()
        res, _ = evaluate_loader(
            self.model,
            self.valid_loader,
            n_markers=self.td.n_markers,
            device=self.device,
            amp=self.amp,
            max_batches=self.cfg.max_eval_batches or None,
            distributed=self.dist.world > 1,
        )
        self.model.train()
        cats = self.td.markers.categories
        return {
            "pr_auc": _category_means(res.pr_auc, cats),
            "roc_auc": _category_means(res.roc_auc, cats),
            "pr_auc_markers": [_finite(v) for v in res.pr_auc],
        }

    def sync_buffers(self) -> None:
        """Every process takes rank 0's buffers (batch-norm running statistics).

        DDP broadcasts them at the start of each forward (without SyncBatchNorm), so after the
        last step each process holds rank 0's statistics plus its own last update; validation
        then scores the model rank 0 saves, on every process.
        """
        for b in self.model.buffers():
            torch.distributed.broadcast(b, 0)

    def save(self, kind: str) -> None:
        """Write ``best.pt`` (weights) or ``last.pt`` (also optimizer, RNG, data position)."""
        if not self.dist.is_main:
            return
        path = self.out / f"{kind}.pt"
        with self._saving(path):  # Ctrl-C waits until it is written
            self._write_checkpoint(kind, path)
        if kind == "last":
            self._saved = (self.state["step"], self.state["epoch"])

    def _write_checkpoint(self, kind: str, path: Path) -> None:
        st = self.state
        ck = dict(self.ckpt_base)
        ck["state_dict"] = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        ck["metrics"] = {
            "step": st["step"],
            "epoch": st["epoch"],
            "valid": self.last_valid,
            "best": st["best"],
            "best_step": st["best_step"],
        }
        if kind == "last":
            dev = self.device
            ck["state"] = {
                **st,
                "optimizer": self.opt.state_dict(),
                "rng": {
                    "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None,
                },
            }
        save_checkpoint(path, ck)

    def _saving(self, path):
        """The block writes a checkpoint: Ctrl-C waits (see :class:`_StopFlag`)."""
        return contextlib.nullcontext() if self._stop is None else self._stop.saving(path)

    def after_validation(self, v: dict | None) -> bool:
        """Record a validation, save best / last; True when early stopping says stop."""
        st = self.state
        with self._saving(self.out / "last.pt"):  # the record and its checkpoints: whole
            self.last_valid = v
            score = None if v is None else v["pr_auc"]["mean"]
            improved = score is not None and (st["best"] is None or score > st["best"])
            if improved or v is None:
                st["best"], st["best_step"], st["bad"] = score, st["step"], 0
                self.save("best")
            else:
                st["bad"] += 1
            rec = {
                "event": "valid",
                "step": st["step"],
                "epoch": st["epoch"],
                "seconds": round(st["seconds"], 3),
                "best": bool(improved),
            }
            if v is not None:
                rec.update(v)
            self._emit(rec)
            self.history.append(rec)
            self.save("last")
        self.write_curves()
        self._warn_memorising(v)
        return bool(self.cfg.patience) and st["bad"] >= self.cfg.patience

    def _warn(self, message: str, kind: str) -> None:
        self._emit(
            {"event": "warning", "kind": kind, "step": self.state["step"], "message": message},
            log=False,
        )

    def _warn_memorising(self, v: dict | None) -> None:
        """Warn once when the training loss has halved while validation stays at chance."""
        from regtracks.config import DEFAULT_EVAL

        roc = None if v is None else v["roc_auc"].get("mean")
        if self._warned or roc is None or len(self._losses) < 2:
            return
        first, last = self._losses
        if last < 0.5 * first and roc < DEFAULT_EVAL.chance_roc_auc:
            self._warned = True
            self._warn(
                f"the training loss fell from {first:.4f} to {last:.4f} while validation stays at "
                f"chance (mean ROC-AUC {roc:.3f}; a random ranking scores 0.5): the model learns "
                "the training windows, not what carries over to other chromosomes",
                "memorising",
            )

    def warn_at_chance(self) -> None:
        """At the end: name the categories whose last validation is at chance."""
        from regtracks.config import DEFAULT_EVAL

        v = self.last_valid
        if v is None:
            return
        flat = [
            f"{c} (ROC-AUC {v['roc_auc'][c]:.3f})"
            for c in dict.fromkeys(self.td.markers.categories)
            if v["roc_auc"].get(c) is not None and v["roc_auc"][c] < DEFAULT_EVAL.chance_roc_auc
        ]
        if flat:
            self._warn(
                f"validation at step {self.state['step']:,} is at chance for {', '.join(flat)}: "
                "their tracks will carry no signal (train longer, or see docs/models.md)",
                "at-chance",
            )

    def flush_log(self) -> None:
        """Write the training-loss line of the steps since the last one; stop on NaN."""
        w = self._window
        if w.n == 0:
            return
        mean, dt, bases, wait = w.take()
        if math.isfinite(mean):
            self._losses = [self._losses[0] if self._losses else mean, mean]
        if not math.isfinite(mean):
            raise RegtracksError(
                f"the loss became {mean} near step {self.state['step']}; stopped. "
                f"{self.out / 'last.pt'} keeps the last good state; try a lower --lr or "
                "--precision fp32"
            )
        self._emit(
            {
                "event": "train",
                "step": self.state["step"],
                "epoch": self.state["epoch"],
                "seconds": round(self.state["seconds"], 3),
                "loss": mean,
                "bp_per_s": bases * self.dist.world / max(dt, 1e-9),
                "data_wait": wait / max(dt, 1e-9),
                "lr": self.lr_at(max(self.state["step"] - 1, 0)),
            }
        )

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        """Train until ``epochs`` / ``max_steps`` / early stopping / Ctrl-C; return how it ended.

        Ctrl-C: see :class:`_StopFlag`. The run folder is released when it returns.
        """
        try:
            return self._run()
        finally:
            self.close()

    def _run(self) -> TrainResult:
        st, dist = self.state, self.dist
        self._emit(
            {
                "event": "start",
                "total": self.total_steps,
                "step": st["step"],
                "steps_per_epoch": self.sampler.batches_per_epoch,
                "train": len(self.train_ds),
                "valid": len(self.valid_ds),
                "device": str(self.device),
                "precision": "bf16" if self.amp else "fp32",
                "world": dist.world,
            },
            log=False,
        )
        self.model.train()
        # last.pt holds this (step, epoch): a resumed run's, or none yet
        self._saved = (st["step"], st["epoch"]) if st["step"] else None
        stop = self._stop = _StopFlag(
            lambda m: self._warn(m, "interrupt"),
            step=lambda: self.state["step"],
            last=self.out / "last.pt",
        )
        try:
            with stop:
                try:
                    status = self._loop(stop)
                except KeyboardInterrupt:
                    # a Ctrl-C that stops at once (see _StopFlag): between steps the state is
                    # whole and saved; inside one, the weights may hold part of it, so last.pt
                    # keeps the state it was last saved with
                    status = "interrupted"
                    if not stop.in_step:
                        if self._saved != (st["step"], st["epoch"]):
                            self.save("last")
                    else:
                        saved = "nothing was saved" if self._saved is None else (
                            f"{self.out / 'last.pt'} keeps step {self._saved[0]:,}"
                        )  # fmt: skip
                        self._warn(f"stopped inside step {st['step'] + 1:,}: {saved}", "interrupt")
                        step, epoch = self._saved or (0, 0)
                        st = {**st, "step": step, "epoch": epoch}
        finally:
            self._stop = None
        if dist.world > 1:
            torch.distributed.barrier()
        if self.tensorboard is not None:
            self.tensorboard.close()
        if status != "interrupted" and dist.is_main:
            self.warn_at_chance()
        self._emit(
            {"event": "end", "status": status, "step": st["step"], "best": st["best"]}, log=False
        )
        return TrainResult(
            run_dir=self.out,
            status=status,
            step=st["step"],
            epoch=st["epoch"],
            best=st["best"],
            best_step=st["best_step"],
            last_valid=self.last_valid,
            history=self.history,
        )

    def _batches(self, stop: _StopFlag):
        """The epoch's batches; a loader broken by a Ctrl-C (a worker it killed) ends the
        epoch as an interruption (the main process is between steps: nothing is lost)."""
        it = iter(self.loader)
        while True:
            try:
                batch = next(it)
            except StopIteration:
                return
            except Exception:
                if stop.set:
                    raise KeyboardInterrupt from None
                raise
            yield batch

    def _validate(self, stop: _StopFlag) -> dict | None:
        with stop.interruptible("validation"):
            return self.validate()

    def _loop(self, stop: _StopFlag) -> str:
        """The epochs; returns the status. A first Ctrl-C ends it after the current step."""
        cfg, st, dist = self.cfg, self.state, self.dist
        max_epochs = cfg.epochs if cfg.epochs else 10**9
        done = bool(cfg.max_steps) and st["step"] >= cfg.max_steps  # a resumed run at its end
        status = "max-steps" if done else "finished"
        while not done and st["epoch"] < max_epochs:
            self.sampler.set_epoch(st["epoch"], st["step_in_epoch"])
            self.train_ds.set_epoch(st["epoch"])
            self._window.start_wait()
            for batch in self._batches(stop):
                self._window.end_wait()
                if stop.set and dist.world == 1:  # Ctrl-C while the batch came: no step begun
                    status, done = "interrupted", True
                    break
                t0 = time.perf_counter()
                with stop.step():
                    self.step(batch)
                st["seconds"] += time.perf_counter() - t0
                at_log = st["step"] % cfg.log_every == 0
                if at_log:
                    self.flush_log()
                if cfg.eval_every and st["step"] % cfg.eval_every == 0:
                    self.flush_log()
                    if self.after_validation(self._validate(stop)):
                        status, done = "early-stopped", True
                elif cfg.checkpoint_every and st["step"] % cfg.checkpoint_every == 0:
                    self.flush_log()
                    self.save("last")
                if cfg.max_steps and st["step"] >= cfg.max_steps:
                    status = "max-steps" if status == "finished" else status
                    done = True
                # Ctrl-C: one process stops at once; many agree at log steps
                if (
                    stop.set
                    if dist.world == 1
                    else at_log and any_rank(stop.set, dist, self.device)
                ):
                    status, done = "interrupted", True
                if done:
                    break
                self._window.start_wait()
            if done:
                break
            st["epoch"] += 1
            st["step_in_epoch"] = 0
            if not cfg.eval_every:
                self.flush_log()
                if self.after_validation(self._validate(stop)):
                    status = "early-stopped"
                    break
        self.flush_log()
        if status == "interrupted":
            if self._saved != (st["step"], st["epoch"]):
                self.save("last")
        elif not self.history or self.history[-1]["step"] != st["step"]:
            self.after_validation(self._validate(stop))  # the final state is always saved
        return status


class _LogWindow:
    """Loss, bases and data-wait time accumulated between two ``metrics.jsonl`` lines."""

    def __init__(self, device: torch.device):
        self.device = device
        self._reset()

    def _reset(self) -> None:
        self.loss = torch.zeros((), device=self.device)
        self.n, self.bases, self.wait = 0, 0, 0.0
        self.t0 = time.perf_counter()
        self._t_wait = None

    def start_wait(self) -> None:
        self._t_wait = time.perf_counter()

    def end_wait(self) -> None:
        if self._t_wait is not None:
            self.wait += time.perf_counter() - self._t_wait
            self._t_wait = None

    def add(self, loss: torch.Tensor, bases: int) -> None:
        self.loss += loss
        self.n += 1
        self.bases += bases

    def take(self) -> tuple[float, float, int, float]:
        """(mean loss, seconds, bases, data-wait seconds) of the window; starts a new one."""
        out = (float(self.loss) / self.n, time.perf_counter() - self.t0, self.bases, self.wait)
        self._reset()
        return out


def default_shift(td: TaskData) -> int:
    """The shift augmentation when none is asked for: half a dense window (each base is seen
    at every position of the window over the epochs), a quarter of a sequence-task bin (the
    labelled bin stays inside the input's centre)."""
    if td.task == "dense":
        return td.samples.length // 2
    return td.cfg.bin_size // 4


MARKER_WEIGHTINGS = ("none", "sqrt", "inverse")


def marker_weights(mode: str, rates, device, *, task: str) -> torch.Tensor | None:
    """Per-marker loss weights, broadcastable to the labels (None: plain mean BCE).

    ``"none"``: every position and marker counts the same, so markers with many positives
    (broad histone marks) dominate the gradient of the shared layers and rare ones (most TFs)
    are learnt late. ``"inverse"``: marker ``m`` weighs ``1 / p_m``, ``p_m`` its positive
    fraction on the training split clipped to ``[1e-3, 0.5]``; ``"sqrt"``: ``1 / sqrt(p_m)``,
    between the two. Weights are scaled to average 1. Each marker's own loss stays a proper
    cross-entropy (its optimum, so the calibration of its probabilities, is unchanged); only
    the share each marker has in the shared layers' gradient changes.
    """
    import numpy as np

    if mode not in MARKER_WEIGHTINGS:
        raise RegtracksError(
            f"--marker-weighting must be one of {', '.join(MARKER_WEIGHTINGS)}, got {mode!r}"
        )
    if mode == "none":
        return None
    p = np.clip(np.nan_to_num(np.asarray(rates, dtype=np.float64), nan=0.5), 1e-3, 0.5)
    w = 1.0 / p if mode == "inverse" else 1.0 / np.sqrt(p)
    w = torch.tensor(w / w.mean(), dtype=torch.float32, device=device)
    return w.view(1, -1, 1) if task == "dense" else w.view(1, -1)


def lr_schedule(step: int, lr: float, warmup: int, decay: str, total: int) -> float:
    """Learning rate of optimizer step ``step`` (0-based) of a run of ``total`` steps.

    A linear warm-up over ``warmup`` steps (``lr / warmup`` .. ``lr``), then ``lr``
    (``decay="none"``) or half a cosine from ``lr`` to ``lr / 100`` at the last step
    (``decay="cosine"``; constant when ``total`` is unknown, 0).
    """
    if warmup and step < warmup:
        return lr * (step + 1) / warmup
    if decay == "cosine" and total > warmup + 1:
        t = min(1.0, (step - warmup) / (total - 1 - warmup))
        return lr * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * t)))
    return lr


def unused_parameters(model: nn.Module, td: TaskData, device: torch.device) -> list[str]:
    """Names of the trainable parameters that the training loss gives no gradient.

    DDP must be told of such parameters (``find_unused_parameters=True``, which costs a walk
    of the autograd graph every step); without it DDP fails at the second step ("Expected to
    have finished reduction in the prior iteration"). A model may say so itself with an
    attribute ``find_unused_parameters`` (True / False); else one forward and backward of the
    loss outputs on two random windows of the run's length, in eval mode (no batch-norm
    statistics change, no dropout draws, the global RNG untouched; cuDNN off where the model
    has an RNN, whose cuDNN backward refuses eval mode), finds them. The gradients are then
    cleared.
    """
    from regtracks.models import loss_outputs

    declared = getattr(model, "find_unused_parameters", None)
    if isinstance(declared, bool):
        return ["(declared by the model)"] if declared else []
    length = int(getattr(model, "seq_len", 0) or td.samples.length)
    gen = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 4, (2, length), generator=gen)
    x = nn.functional.one_hot(codes, 4).transpose(1, 2).float().to(device)
    rnn = any(isinstance(m, nn.RNNBase) for m in model.modules())
    no_cudnn = torch.backends.cudnn.flags(enabled=False) if rnn else contextlib.nullcontext()
    was = model.training
    model.eval()
    try:
        with torch.enable_grad(), no_cudnn:
            outs = loss_outputs(model, x)
            sum(o.float().sum() for o in outs).backward()
        return [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was)


def _no_buffer_broadcast(sync_bn: bool) -> dict:
    """DDP's keyword that stops the broadcast of rank 0's buffers before every forward, where
    SyncBatchNorm keeps the running statistics equal on every rank already (else DDP's default,
    the broadcast, stays). ``forward_sync_buffers`` in newer torch, ``broadcast_buffers`` (then
    deprecated) before."""
    import inspect

    from torch.nn.parallel import DistributedDataParallel as DDP

    if not sync_bn:
        return {}
    params = inspect.signature(DDP).parameters
    return {
        "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers": False
    }


def _compile_error(exc: BaseException) -> bool:
    """Whether ``exc`` comes from torch.compile (dynamo, inductor, a missing compiler)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if (type(exc).__module__ or "").startswith(("torch._dynamo", "torch._inductor")):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _check_options(cfg: TrainConfig) -> None:
    if cfg.batch_size < 1:
        raise RegtracksError(f"--batch-size must be at least 1, got {cfg.batch_size}")
    if cfg.epochs < 1 and cfg.max_steps < 1:
        raise RegtracksError("nothing to do: --epochs and --max-steps are both 0")
    if not cfg.lr > 0 or not math.isfinite(cfg.lr):
        raise RegtracksError(f"--lr must be a positive number, got {cfg.lr}")
    if cfg.warmup < 0:
        raise RegtracksError(f"--warmup must be >= 0 steps, got {cfg.warmup}")
    if cfg.lr_decay not in ("none", "cosine"):
        raise RegtracksError(f"--lr-decay must be none or cosine, got {cfg.lr_decay!r}")
    if cfg.shift is not None and cfg.shift < 0:
        raise RegtracksError(f"--shift must be >= 0 bp, got {cfg.shift}")
    if not cfg.pos_weight > 0 or not math.isfinite(cfg.pos_weight):
        raise RegtracksError(f"--pos-weight must be a positive number, got {cfg.pos_weight}")
    for opt, value in (
        ("--patience", cfg.patience),
        ("--eval-every", cfg.eval_every),
        ("--max-eval-batches", cfg.max_eval_batches),
        ("--workers", cfg.workers),
        ("--checkpoint-every", cfg.checkpoint_every),
        ("--epochs", cfg.epochs),
        ("--max-steps", cfg.max_steps),
    ):
        if value < 0:
            raise RegtracksError(f"{opt} must be >= 0, got {value}")
    if cfg.log_every < 1:
        raise RegtracksError(f"--log-every must be >= 1, got {cfg.log_every}")
    if not cfg.grad_clip >= 0 or not math.isfinite(cfg.grad_clip):
        raise RegtracksError(f"--grad-clip must be >= 0, got {cfg.grad_clip}")


def _finite(v) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def _trim_metrics(path: Path, step: int) -> None:
    """Drop ``metrics.jsonl`` lines past ``step`` (a resumed run rewrites them); -1: start anew."""
    if step < 0:
        if path.exists():
            path.unlink()
        return
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except json.JSONDecodeError:
            continue
    from regtracks._util import write_text_atomic

    write_text_atomic(path, "".join(k + "\n" for k in keep))
