"""Where the work runs: device, precision, CPU threads and the torchrun environment.

Shared by training and inference (nothing here imports either); the command line turns the
``--device`` / ``--precision`` strings into these objects once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from regtracks._util import RegtracksError

__all__ = ["DistEnv", "resolve_device", "autocast_dtype", "configure_cuda", "any_rank"]


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


def any_rank(flag: bool, dist: DistEnv, device: torch.device) -> bool:
    """True on every process when any process saw Ctrl-C (keeps DDP processes in step)."""
    if dist.world == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    torch.distributed.all_reduce(t)
    return bool(t.item() > 0)
