"""Building blocks shared by the model zoo, and the two base classes of the tensor contract.

Tensor contract (every model of :mod:`regtracks.models`):

* dense task: ``x`` ``(N, 4, L)`` float one-hot (A, C, G, T; N = all zeros) -> ``(N, M, L)``
  logits, one per marker and base;
* sequence task: ``x`` ``(N, 4, seq_len)`` (1000 bp by default) -> ``(N, M)`` logits.

The paper's TensorFlow code embeds five tokens (N, A, C, G, T) into 4 dimensions with a learned
table before the first convolution. A one-hot input with N = zeros followed by a convolution
spans the same functions (the table is a linear map folded into the first layer's weights,
with N mapped to the zero vector), so no embedding layer is used here; this is also why every
parameter count is 20 below the paper's (the 5 x 4 table).

Padding follows TensorFlow's ``'SAME'`` rule, including its asymmetry for even kernel widths:
a convolution of width ``k`` and dilation ``d`` gets ``(k - 1) * d // 2`` zeros on the left and
the rest on the right (explicit :func:`torch.nn.functional.pad`, since PyTorch's ``padding=``
is symmetric). Positions are 0-based; a window covers bases ``[0, L)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from regtracks._util import RegtracksError

__all__ = [
    "same_padding",
    "SameConv1d",
    "ConvBlock",
    "Upsample",
    "PositionHead",
    "DenseModel",
    "SequenceModel",
    "pad_to_multiple",
    "check_hparams",
    "loss_outputs",
    "run_lstm",
    "unwrap_model",
]


def same_padding(kernel_width: int, dilation: int = 1) -> tuple[int, int]:
    """Left and right zeros that keep the length, as TensorFlow's ``'SAME'`` (left gets less).

    Parameters
    ----------
    kernel_width, dilation : int
        Convolution width and dilation rate.

    Returns
    -------
    (left, right) : tuple of int
        ``left + right == (kernel_width - 1) * dilation`` and ``right - left in (0, 1)``.
    """
    total = (kernel_width - 1) * dilation
    return total // 2, total - total // 2


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Right-pad ``(N, C, L)`` with zeros (N bases) to a length that is a multiple of ``multiple``.

    Padding only on the right keeps the coarse grid anchored at base 0, so two windows that
    start ``multiple`` bases apart see the same grid (translation equivariance by ``multiple``).
    """
    extra = (-x.shape[-1]) % multiple
    return F.pad(x, (0, extra)) if extra else x


class SameConv1d(nn.Module):
    """Stride-1 (dilated) convolution whose output has the input's length (TF ``'SAME'``).

    ``(N, C_in, L) -> (N, C_out, L)``. Output position ``i`` sees inputs
    ``[i - left, i + right]`` at step ``dilation``, with ``(left, right) = same_padding(k, d)``.
    """

    def __init__(self, c_in: int, c_out: int, kernel_width: int, *, dilation: int = 1):
        super().__init__()
        self.pad = same_padding(kernel_width, dilation)
        self.conv = nn.Conv1d(c_in, c_out, kernel_width, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self.pad))


class ConvBlock(nn.Sequential):
    """``conv -> batch norm -> ReLU -> dropout``, the unit every convolutional model repeats.

    Parameters
    ----------
    conv : nn.Module
        Any length-preserving or strided convolution producing ``channels`` channels.
    channels : int
        Output channels of ``conv`` (the batch norm's width).
    dropout : float
        Dropout probability after the activation.
    bn_momentum : float
        PyTorch batch-norm momentum, ``1 - decay`` of the paper's "batch norm decay".
    batch_norm : bool
        Leave the batch norm out when False.
    """

    def __init__(
        self,
        conv: nn.Module,
        channels: int,
        *,
        dropout: float,
        bn_momentum: float,
        batch_norm: bool = True,
    ):
        layers: list[nn.Module] = [conv]
        if batch_norm:
            layers.append(nn.BatchNorm1d(channels, momentum=bn_momentum))
        layers += [nn.ReLU(), nn.Dropout(dropout)]
        super().__init__(*layers)


class Upsample(nn.Module):
    """Transposed convolution of width = stride = ``factor`` back to base resolution.

    ``(N, C_in, Lc) -> (N, C_out, length)`` with ``length <= factor * Lc``: the result is cropped
    on the right. Output base ``i`` depends on coarse position ``i // factor`` only, so this
    layer adds nothing to the receptive field beyond the coarse cell.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        factor: int,
        *,
        dropout: float,
        bn_momentum: float,
        batch_norm: bool = True,
    ):
        super().__init__()
        self.conv = nn.ConvTranspose1d(c_in, c_out, factor, stride=factor)
        post: list[nn.Module] = [nn.BatchNorm1d(c_out, momentum=bn_momentum)] if batch_norm else []
        self.post = nn.Sequential(*post, nn.ReLU(), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, length: int) -> torch.Tensor:
        # crop before the batch norm: padded tail bases never enter the statistics
        return self.post(self.conv(x)[..., :length])


class PositionHead(nn.Module):
    """Per-position hidden layer and output layer (the paper's Figure 4, top two layers).

    ``(N, C, L) -> (N, M, L)``: ``Linear(C, d_hidden) -> ReLU -> dropout -> Linear(d_hidden, M)``
    applied to each position alone (1x1 convolutions), as in the published code (no batch norm).
    """

    def __init__(self, c_in: int, d_hidden: int, n_markers: int, *, dropout: float):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(c_in, d_hidden, 1),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Conv1d(d_hidden, n_markers, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DenseModel(nn.Module):
    """Base class of dense-task models: ``(N, 4, L)`` one-hot -> ``(N, M, L)`` logits.

    Attributes
    ----------
    task : str
        ``"dense"``.
    n_markers : int
        ``M``, the number of output tracks.
    receptive_field : int or None
        The number of input bases that can influence one output position: for every output
        position ``i`` the bases that change its value lie in one window of
        ``receptive_field`` consecutive bases that contains ``i``. A margin of
        ``receptive_field`` bases on each side of a region is therefore always enough for its
        outputs to equal those of the whole chromosome. ``None``: the whole input (Bi-LSTM).
    stride : int
        Shift granularity of translation equivariance in bases: moving the input by a multiple
        of ``stride`` moves every output whose receptive window stays inside both inputs by
        the same amount, exactly. 1 for base-resolution models, 10 or 20 for the strided ones.
        A scanner should start windows at multiples of ``stride``.
    min_length : int
        Shortest input accepted (any ``L >= min_length`` works; outputs have exactly ``L``
        positions).
    n_loss_outputs : int
        How many ``(N, M, L)`` tensors :meth:`loss_outputs` returns (3 for the ID-CNN).
    """

    task = "dense"
    receptive_field: int | None = None
    stride: int = 1
    min_length: int = 1
    n_loss_outputs: int = 1

    def __init__(self, n_markers: int):
        super().__init__()
        self.n_markers = int(n_markers)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[1] != 4:
            raise RegtracksError(
                f"{type(self).__name__} expects one-hot input of shape (N, 4, L), got "
                f"{tuple(x.shape)}"
            )
        if x.shape[-1] < self.min_length:
            raise RegtracksError(
                f"{type(self).__name__} needs windows of at least {self.min_length} bp, "
                f"got {x.shape[-1]}"
            )

    def forward_slice(self, x: torch.Tensor, start: int, end: int) -> torch.Tensor:
        """``(N, M, end - start)`` logits of ``[start, end)``, equal to ``self(x)[..., start:end]``.

        Models whose last layers are per position may compute less (only the kept positions go
        through the head); the result is the same in eval mode. Callers that need a few
        positions of long windows (variant scores) use it.
        """
        return self(x)[..., start:end]

    def loss_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every ``(N, M, L)`` logit tensor the training loss should average over.

        One tensor (``[self(x)]``) except for models with deep supervision (ID-CNN). Prefer
        :func:`regtracks.models.loss_outputs`, which also works through DDP wrappers.
        """
        return [self(x)]


class SequenceModel(nn.Module):
    """Base class of sequence-task models: ``(N, 4, seq_len)`` one-hot -> ``(N, M)`` logits.

    Attributes
    ----------
    task : str
        ``"sequence"``.
    n_markers : int
        ``M``.
    seq_len : int
        Input length in bases (1000 in the paper); the fully connected layers fix it.
    receptive_field : None
        Every output sees the whole input (a fully connected layer at the end).
    n_loss_outputs : int
        Always 1.
    """

    task = "sequence"
    receptive_field: int | None = None
    n_loss_outputs: int = 1

    def __init__(self, n_markers: int, seq_len: int):
        super().__init__()
        self.n_markers = int(n_markers)
        self.seq_len = int(seq_len)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[1] != 4 or x.shape[2] != self.seq_len:
            raise RegtracksError(
                f"{type(self).__name__} expects one-hot input of shape (N, 4, {self.seq_len}), "
                f"got {tuple(x.shape)}"
            )

    def loss_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``[self(x)]`` (see :meth:`DenseModel.loss_outputs`)."""
        return [self(x)]


def check_hparams(model: str, hp) -> None:
    """Raise :class:`RegtracksError` naming the first out-of-range hyperparameter of ``hp``.

    ``hp`` is a hyperparameter dataclass (see :func:`~regtracks.models.register_model`); each
    field is checked by the type of its default: booleans must be booleans, integers >= 1
    (``pool*`` and ``stem_width`` may be 0: "none"), ``dropout`` in ``[0, 1)``, ``bn_momentum`` in
    ``(0, 1]``, other floats finite; strings are the builder's to parse.
    """
    import dataclasses
    import math

    for f in dataclasses.fields(hp):
        key, value, default = f.name, getattr(hp, f.name), f.default
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if key == "dropout":
            ok = number and 0.0 <= value < 1.0
            want = "a number in [0, 1)"
        elif key == "bn_momentum":
            ok = number and 0.0 < value <= 1.0
            want = "a number in (0, 1] (1 - the paper's batch norm decay)"
        elif isinstance(default, bool):
            ok = isinstance(value, bool)
            want = "true or false"
        elif isinstance(default, int):
            lowest = 0 if key.startswith("pool") or key == "stem_width" else 1
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= lowest
            want = f"an integer >= {lowest}"
        elif isinstance(default, float):
            ok = number and math.isfinite(value)
            want = "a finite number"
        else:
            continue
        if not ok:
            raise RegtracksError(f"model {model}: hyperparameter {key}={value!r} must be {want}")


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside DistributedDataParallel / DataParallel / ``torch.compile`` wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def loss_outputs(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Every logit tensor the training loss should average over, for any registered model.

    ``[model(x)]`` for ordinary models; for deep supervision (ID-CNN, ``n_loss_outputs > 1``)
    ``model(x, all_passes=True)``, the list of per-pass ``(N, M, L)`` logits, last pass last.
    The call goes through ``model`` itself, so DDP wrappers see a normal forward.

    Parameters
    ----------
    model : nn.Module
        A registered model, possibly wrapped (DDP, ``torch.compile``).
    x : (N, 4, L) tensor
        One-hot input.

    Returns
    -------
    list of tensors, each of the model's output shape.
    """
    if getattr(unwrap_model(model), "n_loss_outputs", 1) > 1:
        return list(model(x, all_passes=True))
    return [model(x)]


def run_lstm(lstm: nn.LSTM, h: torch.Tensor) -> torch.Tensor:
    """``lstm(h)[0]``, also differentiable in eval mode on CUDA.

    cuDNN's RNN backward refuses to run in eval mode; input gradients of an eval-mode model
    (saliency) then go through PyTorch's own LSTM kernels instead.
    """
    if h.is_cuda and not lstm.training and torch.is_grad_enabled():
        with torch.backends.cudnn.flags(enabled=False):
            return lstm(h)[0]
    return lstm(h)[0]
