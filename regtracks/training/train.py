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
processes, and rank 0 alone writes files.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler

from regtracks._util import RegtracksError
from regtracks.checkpoint import base_checkpoint, load_checkpoint, save_checkpoint
from regtracks.config import DEFAULT_DATA, DEFAULT_TRAIN, DataConfig, TrainConfig
from regtracks.data.prepare import TaskData, prepare

__all__ = ["train", "TrainResult", "resolve_device", "autocast_dtype", "DistEnv"]


# -- devices and processes ----------------------------------------------------------------------
@dataclass(frozen=True)
class DistEnv:
    """Where this process stands in a torchrun job (world size 1 without torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> DistEnv:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        return cls(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str, dist: DistEnv = DistEnv()) -> torch.device:
    """``auto`` -> CUDA when available; raise a one-line error for CUDA without CUDA."""
    if name not in ("auto", "cpu", "cuda") and not name.startswith("cuda:"):
        raise RegtracksError(f"--device must be auto, cpu or cuda, got {name!r}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RegtracksError("--device cuda, but CUDA is not available on this machine")
        if name == "cuda":
            return torch.device("cuda", dist.local_rank)
    return torch.device(name)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` (None: plain fp32)."""
    if precision not in ("auto", "fp32", "bf16"):
        raise RegtracksError(f"--precision must be auto, fp32 or bf16, got {precision!r}")
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def configure_cuda() -> None:
    """TF32 matmuls and convolutions, cuDNN autotuning."""
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True


# -- data order ---------------------------------------------------------------------------------
class EpochSampler(Sampler[int]):
    """Dataset positions of one epoch for one process: seeded shuffle, sharded by rank.

    The order depends only on ``(seed, epoch)``; every process gets the same number of whole
    batches (the remainder is dropped); ``skip_batches`` resumes mid-epoch.
    """

    def __init__(self, n: int, *, batch_size: int, seed: int, dist: DistEnv, shuffle: bool = True):
        self.n, self.batch_size, self.seed, self.dist, self.shuffle = (
            n,
            batch_size,
            seed,
            dist,
            shuffle,
        )
        self.epoch = 0
        self.skip = 0

    @property
    def batches_per_epoch(self) -> int:
        return self.n // (self.batch_size * self.dist.world)

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self.epoch, self.skip = int(epoch), int(skip_batches)

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.n, generator=g)
        else:
            order = torch.arange(self.n)
        order = order[: self.batches_per_epoch * self.batch_size * self.dist.world]
        mine = order[self.dist.rank :: self.dist.world]
        return iter(mine[self.skip * self.batch_size :].tolist())

    def __len__(self) -> int:
        return max(0, (self.batches_per_epoch - self.skip) * self.batch_size)


class ShardSampler(Sampler[int]):
    """Every position once, split over processes (for evaluation)."""

    def __init__(self, n: int, dist: DistEnv):
        self.n, self.dist = n, dist

    def __iter__(self):
        return iter(range(self.dist.rank, self.n, self.dist.world))

    def __len__(self) -> int:
        return len(range(self.dist.rank, self.n, self.dist.world))


def make_dataset(td: TaskData, split: str, *, rc: bool = False, seed: int = 0, shift: int = 0):
    """The dataset of one split and the collate function of the task."""
    from regtracks.data.datasets import (
        DenseDataset,
        SequenceDataset,
        collate_dense,
        collate_sequence,
    )

    kw = {"rc": rc, "seed": seed, "shift": shift}
    if td.task == "dense":
        return DenseDataset(td.genome, td.index, td.samples, split, **kw), collate_dense
    ds = SequenceDataset(td.genome, td.samples, td.n_markers, split, **kw)
    return ds, collate_sequence


def make_loader(ds, sampler, collate, *, batch_size: int, workers: int, device: torch.device):
    """A DataLoader that prefetches, pins memory for CUDA and leaves the global RNG alone."""
    return DataLoader(
        ds,
        batch_size=batch_size,
        sampler=sampler,
        collate_fn=collate,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
        prefetch_factor=4 if workers > 0 else None,
        generator=torch.Generator().manual_seed(0),  # base seeds must not consume torch's RNG
        drop_last=False,
    )


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
    """First Ctrl-C asks the loop to stop after the current step; a second one is immediate."""

    def __init__(self):
        self.set = False
        self._old = None

    def __enter__(self):
        import threading

        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.set:
            raise KeyboardInterrupt
        self.set = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


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


def _check_out_dir(out: Path, *, resume: bool, overwrite: bool) -> None:
    if resume:
        if not (out / "last.pt").is_file():
            raise RegtracksError(f"{out}: nothing to resume (no last.pt)")
        return
    if (out / "last.pt").exists() or (out / "best.pt").exists():
        if not overwrite:
            raise RegtracksError(
                f"{out} already holds a run; use --resume to continue it or --overwrite to "
                "start again"
            )
    if out.exists() and not out.is_dir():
        raise RegtracksError(f"{out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise RegtracksError(f"{out}: cannot write there ({exc.strerror})") from None


def _check_resume(ck, cfg: TrainConfig, td: TaskData, data_cfg: DataConfig) -> None:
    raw = ck.raw
    if raw["task"] != cfg.task:
        raise RegtracksError(f"--resume: the run is task {raw['task']!r}, not {cfg.task!r}")
    if raw["model"]["name"] != cfg.model:
        raise RegtracksError(
            f"--resume: the run trains {raw['model']['name']!r}, not {cfg.model!r}"
        )
    recorded = dict(raw["model"]["hparams"])
    differ = {k: v for k, v in cfg.hparams.items() if recorded.get(k) != v}
    if differ:
        k, v = next(iter(differ.items()))
        raise RegtracksError(
            f"--resume: --hparam {k}={v} differs from the run's {k}={recorded.get(k)!r}"
        )
    had = [(m["name"], m["category"]) for m in raw["markers"]]
    now = [(m.name, m.category) for m in td.markers]
    if had != now:
        diff = next((i for i, (a, b) in enumerate(zip(had, now, strict=False)) if a != b), None)
        where = f"first difference at marker {diff + 1}" if diff is not None else "different counts"
        raise RegtracksError(
            f"--resume: the marker table differs from the run's ({len(had)} vs {len(now)} markers, "
            f"{where})"
        )
    ck.check_genome(td.genome)
    if int(raw["data"]["window_len"]) != data_cfg.window_len and cfg.task == "dense":
        raise RegtracksError(
            f"--resume: the run used --window-len {raw['data']['window_len']}, "
            f"not {data_cfg.window_len}"
        )


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
    progress : callable, optional
        ``progress(event: dict)``; events ``start``, ``step``, ``valid``, ``end``.

    Returns
    -------
    TrainResult

    Raises
    ------
    RegtracksError
        Bad options, a folder holding another run, a mismatched ``--resume``, or a NaN loss
        (``last.pt`` then still holds the last good state).
    """
    from regtracks.data.datasets import to_device
    from regtracks.models import coerce_hparams, get_model, loss_outputs
    from regtracks.training.evaluate import evaluate_loader

    dist = DistEnv.from_env()
    device = resolve_device(cfg.device, dist)
    amp = autocast_dtype(cfg.precision, device)
    if cfg.batch_size < 1:
        raise RegtracksError(f"--batch-size must be at least 1, got {cfg.batch_size}")
    if cfg.epochs < 1 and cfg.max_steps < 1:
        raise RegtracksError("nothing to do: --epochs and --max-steps are both 0")
    if cfg.lr <= 0:
        raise RegtracksError(f"--lr must be positive, got {cfg.lr}")
    out = Path(out_dir)
    if dist.is_main:
        _check_out_dir(out, resume=resume, overwrite=overwrite)
    if device.type == "cuda":
        configure_cuda()
        torch.cuda.set_device(device)
    if dist.world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")

    td = task_data or prepare(genome, markers, task=cfg.task, cfg=data_cfg, exclude=exclude)
    if td.task != cfg.task:
        raise RegtracksError(f"task data is {td.task!r}, the run is {cfg.task!r}")
    data_cfg = td.cfg
    M = td.n_markers
    cfg = replace(cfg, hparams=coerce_hparams(cfg.model, dict(cfg.hparams)))
    ck = None
    if resume:
        ck = load_checkpoint(out / "last.pt")
        _check_resume(ck, cfg, td, data_cfg)
        cfg = replace(cfg, hparams=dict(ck.raw["model"]["hparams"]))
    torch.manual_seed(cfg.seed)
    model = get_model(cfg.model, n_markers=M, **cfg.hparams)
    if getattr(model, "task", cfg.task) != cfg.task:
        raise RegtracksError(f"model {cfg.model!r} is for the {model.task} task, not {cfg.task}")
    if ck is None:
        from regtracks.data.prepare import positive_fraction

        init_output_bias(model, positive_fraction(td, "train"))
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    state = {"epoch": 0, "step": 0, "step_in_epoch": 0, "best": None, "best_step": None, "bad": 0}
    history: list[dict] = []
    if ck is not None:
        model.load_state_dict(ck.raw["state_dict"])
        st = ck.raw["state"]
        opt.load_state_dict(st["optimizer"])
        for k in state:
            state[k] = st[k]
        torch.set_rng_state(st["rng"]["torch"])
        if device.type == "cuda" and st["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(st["rng"]["cuda"], device)
    train_ds, collate = make_dataset(td, "train", rc=cfg.rc, seed=cfg.seed, shift=cfg.shift)
    valid_ds, _ = make_dataset(td, "valid")
    if len(train_ds) == 0:
        raise RegtracksError("the training split is empty")
    sampler = EpochSampler(len(train_ds), batch_size=cfg.batch_size, seed=cfg.seed, dist=dist)
    if sampler.batches_per_epoch == 0:
        raise RegtracksError(
            f"{len(train_ds)} training windows make no whole batch of {cfg.batch_size} x "
            f"{dist.world} process(es); lower --batch-size"
        )
    loader = make_loader(
        train_ds, sampler, collate, batch_size=cfg.batch_size, workers=cfg.workers, device=device
    )
    valid_loader = make_loader(
        valid_ds,
        ShardSampler(len(valid_ds), dist),
        collate,
        batch_size=cfg.batch_size,
        workers=cfg.workers,
        device=device,
    )
    wrapped = model
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        wrapped = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    pos_weight = torch.tensor(cfg.pos_weight, device=device)
    categories = td.markers.categories
    ckpt_base = base_checkpoint(
        task=cfg.task,
        model_name=cfg.model,
        hparams=dict(getattr(model, "hparams", cfg.hparams)),
        model=model,
        markers=td.markers,
        genome=td.genome,
        data_cfg=data_cfg,
        exclude=td.exclude_path,
        split=td.samples.split_info.to_dict(),
        train=asdict(cfg),
    )
    metrics_path = out / "metrics.jsonl"
    if dist.is_main:
        _trim_metrics(metrics_path, state["step"] if resume else -1)

    def log(rec: dict) -> None:
        if dist.is_main:
            with open(metrics_path, "a") as fh:
                fh.write(json.dumps(rec) + "\n")

    def save(kind: str, last_valid: dict | None) -> None:
        if not dist.is_main:
            return
        ck = dict(ckpt_base)
        ck["state_dict"] = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        ck["metrics"] = {
            "step": state["step"],
            "epoch": state["epoch"],
            "valid": last_valid,
            "best": state["best"],
            "best_step": state["best_step"],
        }
        if kind == "last":
            ck["state"] = {
                **state,
                "optimizer": opt.state_dict(),
                "rng": {
                    "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                },
            }
        save_checkpoint(out / f"{kind}.pt", ck)

    def validate() -> dict | None:
        if len(valid_ds) == 0:
            return None
        model.eval()
        res, _ = evaluate_loader(
            model,
            valid_loader,
            n_markers=M,
            device=device,
            amp=amp,
            max_batches=cfg.max_eval_batches or None,
            distributed=dist.world > 1,
        )
        model.train()
        return {
            "pr_auc": _category_means(res.pr_auc, categories),
            "roc_auc": _category_means(res.roc_auc, categories),
        }

    steps_per_epoch = sampler.batches_per_epoch
    total_steps = cfg.epochs * steps_per_epoch
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps) if cfg.epochs else cfg.max_steps
    if progress and dist.is_main:
        progress(
            {
                "event": "start",
                "total": total_steps,
                "step": state["step"],
                "steps_per_epoch": steps_per_epoch,
                "train": len(train_ds),
                "valid": len(valid_ds),
                "device": str(device),
                "precision": "bf16" if amp else "fp32",
                "world": dist.world,
            }
        )

    status = "finished"
    last_valid = None
    model.train()
    loss_sum = torch.zeros((), device=device)
    n_loss = 0
    t_log = time.perf_counter()
    wait = 0.0
    bases = 0

    def after_valid(v: dict | None) -> bool:
        """Record a validation; save best/last; True when early stopping says stop."""
        nonlocal last_valid
        last_valid = v
        score = None if v is None else v["pr_auc"]["mean"]
        improved = score is not None and (state["best"] is None or score > state["best"])
        if improved or v is None:
            state["best"], state["best_step"], state["bad"] = score, state["step"], 0
            save("best", v)
        else:
            state["bad"] += 1
        rec = {
            "event": "valid",
            "step": state["step"],
            "epoch": state["epoch"],
            "best": bool(improved),
        }
        if v is not None:
            rec.update(v)
        log(rec)
        history.append(rec)
        save("last", v)
        if progress and dist.is_main:
            progress(rec)
        return bool(cfg.patience) and state["bad"] >= cfg.patience

    def flush_log() -> None:
        nonlocal loss_sum, n_loss, t_log, wait, bases
        if n_loss == 0:
            return
        mean = float(loss_sum) / n_loss
        if not math.isfinite(mean):
            raise RegtracksError(
                f"the loss became {mean} near step {state['step']}; stopped. {out / 'last.pt'} "
                "keeps the last good state; try a lower --lr or --precision fp32"
            )
        dt = time.perf_counter() - t_log
        rec = {
            "event": "train",
            "step": state["step"],
            "epoch": state["epoch"],
            "loss": mean,
            "bp_per_s": bases * dist.world / max(dt, 1e-9),
            "data_wait": wait / max(dt, 1e-9),
            "lr": cfg.lr,
        }
        log(rec)
        if progress and dist.is_main:
            progress(rec)
        loss_sum = torch.zeros((), device=device)
        n_loss, t_log, wait, bases = 0, time.perf_counter(), 0.0, 0

    max_epochs = cfg.epochs if cfg.epochs else 10**9
    with _StopFlag() as stop:
        try:
            done = False
            while not done and state["epoch"] < max_epochs:
                sampler.set_epoch(state["epoch"], state["step_in_epoch"])
                train_ds.set_epoch(state["epoch"])
                t_wait = time.perf_counter()
                for batch in loader:
                    wait += time.perf_counter() - t_wait
                    x, y = to_device(batch, M, device)
                    with torch.autocast(
                        device.type, dtype=amp or torch.float32, enabled=amp is not None
                    ):
                        outs = loss_outputs(wrapped, x)
                    yf = y.float()
                    loss = sum(
                        nn.functional.binary_cross_entropy_with_logits(
                            o.float(), yf, pos_weight=pos_weight
                        )
                        for o in outs
                    ) / len(outs)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if cfg.grad_clip:
                        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                    opt.step()
                    state["step"] += 1
                    state["step_in_epoch"] += 1
                    loss_sum += loss.detach()
                    n_loss += 1
                    bases += x.shape[0] * x.shape[-1]
                    at_log = state["step"] % cfg.log_every == 0
                    if at_log:
                        flush_log()
                    if cfg.eval_every and state["step"] % cfg.eval_every == 0:
                        flush_log()
                        if after_valid(validate()):
                            status, done = "early-stopped", True
                    elif cfg.checkpoint_every and state["step"] % cfg.checkpoint_every == 0:
                        flush_log()
                        save("last", last_valid)
                    if cfg.max_steps and state["step"] >= cfg.max_steps:
                        status, done = ("max-steps" if status == "finished" else status), True
                    # Ctrl-C: one process stops at once; many agree at log steps (no per-step sync)
                    if (
                        stop.set
                        if dist.world == 1
                        else at_log and _any_rank(stop.set, dist, device)
                    ):
                        status, done = "interrupted", True
                    if done:
                        break
                    t_wait = time.perf_counter()
                if done:
                    break
                state["epoch"] += 1
                state["step_in_epoch"] = 0
                if not cfg.eval_every:
                    flush_log()
                    if after_valid(validate()):
                        status = "early-stopped"
                        break
            flush_log()
            if status == "interrupted":
                save("last", last_valid)
            elif not history or history[-1]["step"] != state["step"]:
                after_valid(validate())  # the final state is always validated and saved
        except KeyboardInterrupt:
            status = "interrupted"
            save("last", last_valid)
    if dist.world > 1:
        torch.distributed.barrier()
    result = TrainResult(
        run_dir=out,
        status=status,
        step=state["step"],
        epoch=state["epoch"],
        best=state["best"],
        best_step=state["best_step"],
        last_valid=last_valid,
        history=history,
    )
    if progress and dist.is_main:
        progress({"event": "end", "status": status, "step": state["step"], "best": state["best"]})
    return result


def _any_rank(flag: bool, dist: DistEnv, device: torch.device) -> bool:
    """True on every process when any process saw Ctrl-C (keeps DDP processes in step)."""
    if dist.world == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    torch.distributed.all_reduce(t)
    return bool(t.item() > 0)


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
