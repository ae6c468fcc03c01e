"""An example regtracks model plugin: ``tinyconv``, a two-layer dense convolutional network.

Tensor contract (dense task): ``(N, 4, L)`` float one-hot (A, C, G, T; N = zeros) ->
``(N, M, L)`` logits. regtracks imports this module when it discovers the entry point
``tinyconv = "regtracks_plugin_example"`` of the group ``regtracks.models``; the decorator
below registers the builder.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from regtracks.models import register_model

__all__ = ["TinyConv", "tinyconv"]


class TinyConv(nn.Module):
    """One convolution of odd width ``width`` (centred), ReLU, a per-base output layer.

    ``(N, 4, L) -> (N, M, L)``.

    Attributes (the contract every regtracks model carries)
    --------------------------------------------------------
    task : str
        ``"dense"``.
    n_markers : int
        ``M``.
    receptive_field : int
        ``width``: output base ``i`` depends on input bases ``[i - width // 2, i + width // 2]``.
    stride : int
        1: shifting the input by one base shifts the output by one base.
    """

    task = "dense"
    stride = 1

    def __init__(self, n_markers: int, *, width: int, channels: int):
        super().__init__()
        if width < 1 or width % 2 == 0:
            raise ValueError(f"tinyconv: width={width} must be a positive odd number")
        self.n_markers = n_markers
        self.receptive_field = width
        self.conv = nn.Conv1d(4, channels, width)
        self.out = nn.Conv1d(channels, n_markers, 1)
        self.half = width // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 4, L)`` one-hot -> ``(N, M, L)`` logits."""
        h = F.relu(self.conv(F.pad(x, (self.half, self.half))))
        return self.out(h)


@register_model("tinyconv", task="dense", layers=2, kind="CNN")
def tinyconv(*, n_markers: int, width: int = 9, channels: int = 16) -> TinyConv:
    """A tiny dense CNN (example plugin): one width-9 convolution and a per-base output layer.

    Keyword arguments are the hyperparameters (``regtracks train --hparam width=15``).
    """
    return TinyConv(n_markers, width=width, channels=channels)
