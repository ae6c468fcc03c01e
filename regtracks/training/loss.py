"""The training loss without full-size float32 copies: binary cross-entropy on logits.

``F.binary_cross_entropy_with_logits(logits.float(), y.float())`` on ``(N, M, L)`` tensors of a
bf16 run makes a float32 copy of the logits and of the labels (1.5 GB each for 16 windows of
25 kb with 919 markers), keeps both for the backward pass and returns a float32 gradient that
is then cast back to bf16; with per-marker weights the per-element loss and its weighted copy
are two more. Autocast does the same inside the op (the loss is on its float32 list).

:func:`bce_with_logits` computes the same value (to float32 rounding: the mean of the same
per-element losses, summed in another order) from the logits in their own dtype and the labels
as they come (uint8, bool or any float dtype holding 0/1): a few windows at a time are cast to
float32, their loss is summed, and nothing of the batch's size is kept beyond the logits and
labels that exist anyway. The backward pass recomputes ``sigmoid`` the same way and writes the
gradient in the logits' dtype.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = ["bce_with_logits", "CHUNK_ELEMENTS"]

CHUNK_ELEMENTS = 1 << 24
"""Elements cast to float32 at a time, in whole rows of the first dimension and at least one
(16 M: 64 MB a float32 temporary; one 25 kb window of 919 markers is 23 M, so one window a
chunk, 92 MB a temporary, where the float32 path holds 1.5 GB copies at batch 16)."""


def _chunks(n: int, per_row: int, chunk: int):
    rows = max(1, chunk // max(1, per_row))
    for s in range(0, n, rows):
        yield slice(s, min(n, s + rows))


def _weight_rows(weight: torch.Tensor | None, sl: slice) -> torch.Tensor | None:
    """The rows of a weight that broadcasts to the logits (its first dimension 1 or ``N``)."""
    if weight is None or weight.dim() == 0 or weight.shape[0] == 1:
        return weight
    return weight[sl]


class _BCEWithLogits(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, target, pos_weight, weight, chunk):
        n = logits.shape[0]
        per_row = logits[0].numel() if n else 1
        total = torch.zeros((), dtype=torch.float64, device=logits.device)
        for sl in _chunks(n, per_row, chunk):
            x = logits[sl].float()
            y = target[sl].float()
            total += F.binary_cross_entropy_with_logits(
                x, y, weight=_weight_rows(weight, sl), pos_weight=pos_weight, reduction="sum"
            ).double()
        ctx.save_for_backward(logits, target, pos_weight, weight)
        ctx.chunk = chunk
        return (total / max(1, logits.numel())).float()

    @staticmethod
    def backward(ctx, grad):
        logits, target, pos_weight, weight = ctx.saved_tensors
        out = torch.empty_like(logits)
        n = logits.shape[0]
        per_row = logits[0].numel() if n else 1
        scale = grad.float() / max(1, logits.numel())
        for sl in _chunks(n, per_row, ctx.chunk):
            x = logits[sl].float()
            y = target[sl].float()
            # torch's own formula: d/dx = ((pw * y + 1 - y) * sigmoid(x) - pw * y) * w
            if pos_weight is None:
                g = torch.sigmoid(x).sub_(y)
            else:
                t = y * pos_weight
                g = torch.sigmoid(x).mul_(t + 1 - y).sub_(t)
            w = _weight_rows(weight, sl)
            if w is not None:
                g.mul_(w)
            out[sl] = g.mul_(scale)
        return out, None, None, None, None


def bce_with_logits(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    pos_weight: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    chunk: int = CHUNK_ELEMENTS,
) -> torch.Tensor:
    """Mean binary cross-entropy of ``logits`` against 0/1 ``target``, as a float32 scalar.

    Equal (to float32 rounding) to ``(F.binary_cross_entropy_with_logits(logits.float(),
    target.float(), pos_weight=pos_weight, reduction="none") * weight).mean()`` (without
    ``weight``: the plain mean), without a float32 copy of either tensor.

    Parameters
    ----------
    logits : (N, ...) float tensor of any floating dtype (bf16 under autocast)
    target : tensor of ``logits``' shape: uint8, bool or float, 0/1 (float values in between
        are taken as they are, as torch's loss takes them)
    pos_weight : tensor, optional
        Weight of the positive term (broadcast like torch's ``pos_weight``).
    weight : tensor, optional
        Per-element weight that broadcasts to ``logits`` with a first dimension of 1 or ``N``
        (the per-marker weights ``(1, M, 1)`` / ``(1, M)``).
    chunk : int
        Elements cast to float32 at a time (whole rows of the first dimension).
    """
    if target.shape != logits.shape:
        raise ValueError(f"target shape {tuple(target.shape)} != logits {tuple(logits.shape)}")
    return _BCEWithLogits.apply(logits, target, pos_weight, weight, int(chunk))
