"""Where the work runs: device, precision, CPU threads and the torchrun environment.

Shared by training and inference (nothing here imports either); the command line turns the
``--device`` / ``--precision`` strings into these objects once.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
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
    "DistJob",
    "distributed",
    "job",
    "init_process_group",
    "destroy_process_group",
    "DIST_TIMEOUT_S",
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


# --- torchrun: one job's processes working on one call together ----------------------------------
DIST_TIMEOUT_S = 24 * 3600
"""How long a process of a torchrun job waits for the others at one meeting point (seconds).

Inference processes meet only a few times (after the hub lock is taken, when their parts are
written, at the end), and one may wait there for the slowest part or for process 0's final
writing; a failure is told to the others at the next meeting (:class:`DistJob`), so the
timeout is a last resort for a process that died without torchrun noticing."""


def init_process_group(
    dist: DistEnv, device: torch.device, *, backend: str | None = None, timeout: float | None = None
) -> bool:
    """Join this torchrun job's process group through torchrun's own rendezvous (``env://``:
    ``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE``, set by torchrun on every node);
    True when this call started it (whoever ends the process ends it:
    :func:`destroy_process_group`).

    Nothing happens without torchrun (world size 1) or when the group is up already. On CUDA
    the process is bound to its ``LOCAL_RANK``'s device first. ``backend``: default NCCL for
    CUDA tensors with gloo for CPU tensors and Python objects (``cpu:gloo,cuda:nccl``) on CUDA,
    gloo on the CPU. ``timeout``: seconds a collective waits (default :data:`DIST_TIMEOUT_S`).
    """
    import datetime

    if dist.world <= 1 or torch.distributed.is_initialized():
        return False
    if not torch.distributed.is_available():  # pragma: no cover - torch built without it
        raise RegtracksError("torchrun: this torch build has no torch.distributed")
    if device.type == "cuda":
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise RegtracksError(
                f"process {dist.rank} (LOCAL_RANK {dist.local_rank}) has no GPU of its own: "
                f"this machine shows {torch.cuda.device_count()}; start at most that many "
                "processes per machine (torchrun --nproc-per-node)"
            )
        torch.cuda.set_device(device)
    if backend is None:
        backend = "cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo"
    seconds = DIST_TIMEOUT_S if timeout is None else timeout
    try:
        torch.distributed.init_process_group(
            backend=backend, timeout=datetime.timedelta(seconds=seconds)
        )
    except (RuntimeError, ValueError) as exc:  # no torchrun rendezvous (WORLD_SIZE set by hand)
        raise RegtracksError(
            f"process {dist.rank} of {dist.world} (WORLD_SIZE): cannot join the torchrun job's "
            f"process group ({_one_line(exc)}); start it with torchrun"
        ) from None
    return True


def destroy_process_group(started: bool = True) -> None:
    """End the process group (``started``: whether :func:`init_process_group` started it;
    nothing when it did not, or when there is none)."""
    if started and torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def _one_line(exc: BaseException) -> str:
    """An error as the one line a user reads (a RegtracksError's own text)."""
    if isinstance(exc, RegtracksError):
        text = str(exc)
    elif isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    else:
        text = f"{type(exc).__name__}: {exc}"
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else type(exc).__name__


class DistJob:
    """The processes of one torchrun job doing one call together (one process without torchrun).

    Every exchange between them is a *meeting*, :meth:`sync`: each process hands over a
    payload and whether it failed, and every process gets every payload, or, when any process
    failed, raises: its own error, or a one-line :class:`RegtracksError` naming the first
    process that failed and why. :meth:`guard` wraps a call's whole body: a process whose body
    raises takes its error to the meeting the others are waiting at (so none waits for it in
    vain), and the block's normal end is a last meeting (so every process ends the same way).
    After a failed meeting there is none: the processes leave with their errors.

    Every process checks a call's input itself, inside the guard: a bad option fails every
    process alike (each keeps its own error); a failure of one process alone (its GPU, its
    disk) reaches the others at their next meeting. The meetings are few (the lock taken,
    parts written, the end), so the processes of a job never wait for each other in between.
    """

    def __init__(self, dist: DistEnv | None = None):
        self.dist = DistEnv.from_env() if dist is None else dist
        self._dead = False

    @property
    def rank(self) -> int:
        return self.dist.rank

    @property
    def world(self) -> int:
        return self.dist.world

    @property
    def is_main(self) -> bool:
        return self.dist.is_main

    def share(self, n: int, rank: int | None = None) -> range:
        """The indices of ``n`` items that process ``rank`` (default: this one) takes: a
        contiguous block, the blocks in rank order, sizes differing by at most one."""
        r = self.rank if rank is None else rank
        return range(n * r // self.world, n * (r + 1) // self.world)

    def _exchange(self, mine) -> list:
        """Every process's ``mine``, in rank order (the transport: torch.distributed)."""
        got: list = [None] * self.world
        torch.distributed.all_gather_object(got, mine)
        return got

    def _meet(self, error: BaseException | None, payload) -> list:
        got = self._exchange((None if error is None else _one_line(error), payload))
        failed = [(r, e) for r, (e, _) in enumerate(got) if e is not None]
        if failed:
            self._dead = True
            if error is not None:
                raise error
            r, why = failed[0]
            raise RegtracksError(f"process {r} of {self.world} (torchrun) failed: {why}")
        return [p for _, p in got]

    def sync(self, payload=None) -> list:
        """Meet the other processes: every process's ``payload``, in rank order (raises when
        any process failed; see the class docstring)."""
        if self.world == 1:
            return [payload]
        if self._dead:
            raise RegtracksError("another process of this torchrun job failed")
        return self._meet(None, payload)

    @contextlib.contextmanager
    def guard(self) -> Iterator[DistJob]:
        """The body of a call: an error in it is told to the other processes at their next
        meeting, and its normal end is a last meeting."""
        try:
            yield self
        except Exception as exc:
            if self.world > 1 and not self._dead:
                self._dead = True
                with contextlib.suppress(Exception):  # a broken group: the error is what counts
                    self._meet(exc, None)
            raise
        self.sync()


@contextlib.contextmanager
def distributed(device: torch.device, dist: DistEnv | None = None) -> Iterator[DistJob]:
    """A :class:`DistJob` for one call, in the process group (under torchrun: started unless
    it is up already).

    The group stays up after the call, for the process's next calls: a group ended and
    started again in one torchrun job meets the previous group's addresses in torchrun's
    store (gloo: "connection refused"). Whoever ends the process ends the group
    (:func:`destroy_process_group`; regtracks' command line does after each command)."""
    job = DistJob(dist)
    init_process_group(job.dist, device)
    yield job


@contextlib.contextmanager
def job(device: str | torch.device, dist: DistEnv | None = None) -> Iterator[DistJob]:
    """The body of one inference call, as one torchrun job (:class:`DistJob`, guarded): the
    device (``--device``; ``cuda``: the ``LOCAL_RANK``'s GPU) and the process group for it.

    Everything the block raises on one process, input errors included, is told to the
    others, so a torchrun job ends on every process with the same error."""
    dist = DistEnv.from_env() if dist is None else dist
    dev = device if isinstance(device, torch.device) else resolve_device(device, dist)
    with distributed(dev, dist) as j, j.guard():
        yield j
