"""Where the work runs: device, precision, CPU threads and the torchrun environment.

Shared by training and inference (nothing here imports either); the command line turns the
``--device`` / ``--precision`` strings into these objects once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from regtracks._util import RegtracksError
from regtracks.config import usable_cpus

__all__ = [
    "DistEnv",
    "ThreadPlan",
    "plan_threads",
    "apply_threads",
    "usable_cpus",
    "resolve_device",
    "autocast_dtype",
    "configure_cuda",
    "any_rank",
]


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


@dataclass(frozen=True)
class ThreadPlan:
    """How one command shares the CPU cores it may use (:func:`plan_threads`).

    Attributes
    ----------
    cpus : int
        Cores the command may use: ``--threads``, else ``OMP_NUM_THREADS`` when set, else the
        process's CPU affinity capped by a cgroup quota (:func:`usable_cpus`).
    intra_op : int
        torch's intra-op threads in the main process (:func:`apply_threads` sets them).
    workers : int
        DataLoader worker processes (each runs one torch thread).
    writers : int
        bigWig writer processes.
    """

    cpus: int
    intra_op: int
    workers: int
    writers: int


def plan_threads(
    threads: int = 0,
    *,
    workers: int | None = None,
    writers: int | None = None,
    device_type: str = "cpu",
) -> ThreadPlan:
    """Share ``threads`` cores between torch's threads, loader workers and bigWig writers.

    The one place that decides. torch's default (one intra-op thread per core, spinning while it
    waits) oversubscribes small shared machines: with one other busy process on 2 cores, demo
    training ran at 4.9 s a step with it against 1.4 s with one thread
    (``benchmarks/bench_threads.py``; BENCHMARKS.md, "Threads"). The command line therefore sets
    ``OMP_WAIT_POLICY=PASSIVE`` before torch is imported (unless it is set), which makes
    waiting threads sleep: then 2 threads cost nothing under load (0.64 against 0.60 s a step)
    and gain 37 % on an idle machine (0.46 against 0.64 s). So:

    * loader workers are taken as given (``--workers``); they mostly wait on a full prefetch
      queue, so they do not take a core from torch;
    * writers, when not given, are ``cpus - 1`` on CUDA (the model does not need the cores) and
      half the cores on CPU (the model does), at least 1, at most 16;
    * torch gets the cores the writers leave: ``max(1, cpus - writers)`` intra-op threads.

    Under torchrun each of the ``LOCAL_WORLD_SIZE`` processes of a machine plans for its share
    of the cores (unless ``threads`` is given, which is per process).

    Parameters
    ----------
    threads : int
        Cores to use; 0: ``OMP_NUM_THREADS`` when set, else every usable core.
    workers, writers : int, optional
        Loader workers and bigWig writer processes this command runs (None: none / decided
        here).
    device_type : str
        ``cpu`` or ``cuda``.
    """
    if threads < 0:
        raise RegtracksError(f"--threads must be 0 (every usable core) or more, got {threads}")
    if workers is not None and workers < 0:
        raise RegtracksError(f"--workers must be 0 or more, got {workers}")
    if writers is not None and writers < 0:
        raise RegtracksError(f"--writers must be 0 or more, got {writers}")
    cpus = threads
    if not cpus:
        env = os.environ.get("OMP_NUM_THREADS", "").strip()
        cpus = int(env) if env.isdigit() and int(env) > 0 else usable_cpus()
        # torchrun: the processes of one machine share its cores
        local = os.environ.get("LOCAL_WORLD_SIZE", "1")
        cpus = max(1, cpus // max(1, int(local) if local.isdigit() else 1))
    n_workers = int(workers or 0)
    if writers is None:
        writers = cpus - 1 if device_type == "cuda" else cpus // 2
        writers = max(1, min(16, writers))
    intra = max(1, cpus - int(writers))
    return ThreadPlan(cpus=cpus, intra_op=intra, workers=n_workers, writers=int(writers))


def apply_threads(plan: ThreadPlan) -> None:
    """Set torch's intra-op threads of this process to ``plan.intra_op``."""
    if torch.get_num_threads() != plan.intra_op:
        torch.set_num_threads(plan.intra_op)


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


def any_rank(flag: bool, dist: DistEnv, device: torch.device) -> bool:
    """True on every process when any process saw Ctrl-C (keeps DDP processes in step)."""
    if dist.world == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    torch.distributed.all_reduce(t)
    return bool(t.item() > 0)
