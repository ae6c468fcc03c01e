"""Dense-task models of the paper's Table 2: ``(N, 4, L)`` one-hot -> ``(N, M, L)`` logits.

``cnn1 cnn3 cnn7 idcnn bilstm dilated``, after the paper (Gupta & Rush 2017, Table 2, Table 4,
Figure 4) and its published TensorFlow code (harvardnlp/regulatory-prediction ``models.py``,
the ``*_normed`` variants). Each model reads one-hot DNA, works at a coarse resolution where it
has one (a width-10, stride-10 convolution: the paper's "dilation 1"), returns to base
resolution with a transposed convolution of width = stride, and ends with the same per-position
head: a hidden layer of ``d_hidden`` units and ``M`` outputs (:class:`~.layers.PositionHead`).
Every convolution (transposed ones included) is followed by batch norm, ReLU and dropout.

With the defaults and ``M = 919`` the parameter counts match Table 2 to within 0.2 %
(``docs/models.md`` lists each difference and its cause: no 5 x 4 embedding table, batch norm
where the published model had none, PyTorch's second LSTM bias).

Any window length ``L >= 1`` works: the input is right-padded with zeros (N bases) to a multiple
of ``stride`` and the output is cropped back to ``L``. Two windows starting a multiple of
``stride`` apart give identical outputs wherever both receptive windows lie inside both inputs.
Positions are 0-based; a window covers bases ``[0, L)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from regtracks._util import RegtracksError
from regtracks.models.layers import (
    ConvBlock,
    DenseModel,
    PositionHead,
    SameConv1d,
    Upsample,
    pad_to_multiple,
    run_lstm,
    same_padding,
)
from regtracks.models.registry import register_model

__all__ = ["BaseResolutionCNN", "StridedCNN", "IDCNN", "DenseBiLSTM"]

DILATIONS = (3, 9, 27, 81)
"""Dilation rates of the published dense ``dilated`` model after its stride-10 first layer."""
DENSE_DILATIONS = (1, 3, 9, 27, 81)
"""Dilation rates of the default ``dilated`` model: the paper's text, every cell read."""
IDCNN_DILATIONS = (3, 9, 27)
"""Dilation rates inside one ID-CNN block (the published ``ID_block``)."""


def parse_dilations(model: str, text: str) -> tuple[int, ...]:
    """``"1,3,9"`` -> ``(1, 3, 9)``; raises :class:`RegtracksError` unless positive integers."""
    try:
        rates = tuple(int(t) for t in str(text).split(","))
    except ValueError:
        rates = ()
    if not rates or min(rates) < 1:
        raise RegtracksError(
            f"model {model}: hyperparameter dilations={text!r} must be comma-separated "
            "integers >= 1, e.g. 1,3,9,27,81"
        )
    return rates


class SamePool1d(nn.Module):
    """Stride-1 max pooling of width ``width`` that keeps the length (TF ``'SAME'``)."""

    def __init__(self, width: int):
        super().__init__()
        self.width = width
        self.pad = same_padding(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool1d(F.pad(x, self.pad, value=float("-inf")), self.width, stride=1)


class MotifStem(nn.Module):
    """Base-resolution convolution, then max pooling to ``stride``-bp cells.

    ``(N, 4, L) -> (N, C, L / stride)`` (``L`` a multiple of ``stride``). A width-``width``
    convolution reads every base with its neighbours (``'SAME'`` padding), batch norm and ReLU
    follow, and a max pool of width and stride ``stride`` keeps each feature's best match
    within the cell. Unlike the paper's width-``stride``, stride-``stride`` convolution, a motif
    is seen whole at every phase relative to the cell grid, so one filter finds it wherever it
    lies; cell ``c`` depends on bases ``[stride c - left, stride (c + 1) + right)``.
    """

    def __init__(self, c_out: int, width: int, stride: int, *, bn_momentum: float,
                 batch_norm: bool, dropout: float):  # fmt: skip
        super().__init__()
        self.conv = ConvBlock(SameConv1d(4, c_out, width), c_out, dropout=0.0,
                              bn_momentum=bn_momentum, batch_norm=batch_norm)  # fmt: skip
        self.pool = nn.MaxPool1d(stride, stride)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.pool(self.conv(x)))


def make_stem(c_out: int, stride: int, stem_width: int, **bn) -> tuple[nn.Module, int]:
    """The first layer of a strided model and the bases it adds to the receptive field.

    ``stem_width = 0``: the paper's width-``stride``, stride-``stride`` convolution (adds 0);
    ``stem_width > 0``: :class:`MotifStem` (adds ``stem_width - 1``).
    """
    if stem_width == 0:
        return ConvBlock(nn.Conv1d(4, c_out, stride, stride=stride), c_out, **bn), 0
    return MotifStem(c_out, stem_width, stride, **bn), stem_width - 1


class BaseResolutionCNN(DenseModel):
    """One convolution at base resolution, then the per-position head (Table 2 "CNN1").

    ``(N, 4, L) -> (N, M, L)``. ``receptive_field = kernel_width``, ``stride = 1``.
    """

    def __init__(
        self,
        n_markers: int,
        *,
        kernel_width: int,
        f1: int,
        d_hidden: int,
        dropout: float,
        bn_momentum: float,
        batch_norm: bool,
    ):
        super().__init__(n_markers)
        bn = {"dropout": dropout, "bn_momentum": bn_momentum, "batch_norm": batch_norm}
        self.conv = ConvBlock(SameConv1d(4, f1, kernel_width), f1, **bn)
        self.head = PositionHead(f1, d_hidden, n_markers, dropout=dropout)
        self.receptive_field = kernel_width
        self.stride = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 4, L)`` one-hot -> ``(N, M, L)`` logits."""
        self._check_input(x)
        return self.head(self.conv(x))

    def forward_slice(self, x: torch.Tensor, start: int, end: int) -> torch.Tensor:
        """Logits of positions ``[start, end)``; the head runs on those positions only."""
        if self.training:  # batch norm statistics would see only the slice
            return self(x)[..., start:end]
        self._check_input(x)
        return self.head(self.conv(x)[..., start:end])


class Residual(nn.Module):
    """``block(x) + x`` (``+ proj(x)``, a 1x1 convolution, when the channel counts differ).

    ``(N, C_in, L) -> (N, C_out, L)``. The identity path adds nothing to the receptive field.
    """

    def __init__(self, block: nn.Module, c_in: int, c_out: int):
        super().__init__()
        self.block = block
        self.proj = nn.Identity() if c_in == c_out else nn.Conv1d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x) + self.proj(x)


class StridedCNN(DenseModel):
    """Stride-``s`` convolution, convolutions at ``s`` bp resolution, transposed conv, head.

    ``(N, 4, L) -> (N, M, L)``. The first layer makes ``s``-bp cells: with ``stem_width = 0`` a
    convolution of width = stride = ``s`` (the paper's "dilation 1": cell ``c`` reads bases
    ``[s c, s c + s)``), else a base-resolution convolution of that width and a max pool over
    each cell (:class:`MotifStem`; cell ``c`` reads ``s + stem_width - 1`` bases). The coarse
    layers are length-preserving (dilated) convolutions, optionally followed by stride-1 max
    pooling; the transposed convolution gives base ``i`` the features of cell ``i // s``.

    Parameters
    ----------
    n_markers : int
        ``M``.
    stride : int
        ``s``, the resolution reduction of the first layer (10 in the paper).
    layers : list of (c_out, kernel_width, dilation, pool_width)
        Coarse layers in order (``pool_width`` 0 for none).
    f1 : int
        Channels of the first (strided) layer.
    f_up : int
        Channels of the transposed convolution (the head's input).
    pool_first : int
        Max-pool width after the first layer (0 for none).
    d_hidden, dropout, bn_momentum, batch_norm
        As in :class:`~.layers.ConvBlock` and :class:`~.layers.PositionHead`.
    residual : bool
        Add each coarse layer's input to its output (through a 1x1 convolution where the
        channel counts differ), as in ResNet and Basenji's dilated residual blocks.
    stem_width : int
        0: the paper's strided first layer; > 0: :class:`MotifStem` of this width.

    Attributes
    ----------
    receptive_field : int
        ``s * (1 + sum((k - 1) * d) + sum(pool_width - 1)) + max(stem_width - 1, 0)``.
    stride : int
        ``s``.
    n_layers : int
        Convolutions counted as the paper's tables count them: strided, coarse, transposed.
    """

    def __init__(
        self,
        n_markers: int,
        *,
        stride: int,
        layers: list[tuple[int, int, int, int]],
        f1: int,
        f_up: int,
        pool_first: int = 0,
        d_hidden: int,
        dropout: float,
        bn_momentum: float,
        batch_norm: bool,
        residual: bool = False,
        stem_width: int = 0,
    ):
        super().__init__(n_markers)
        bn = {"dropout": dropout, "bn_momentum": bn_momentum, "batch_norm": batch_norm}
        self.down, extra = make_stem(f1, stride, stem_width, **bn)
        trunk: list[nn.Module] = [SamePool1d(pool_first)] if pool_first > 1 else []
        span = 1 + max(pool_first - 1, 0)
        c_in = f1
        for c_out, k, d, pool in layers:
            block = ConvBlock(SameConv1d(c_in, c_out, k, dilation=d), c_out, **bn)
            trunk.append(Residual(block, c_in, c_out) if residual else block)
            if pool > 1:
                trunk.append(SamePool1d(pool))
            span += (k - 1) * d + max(pool - 1, 0)
            c_in = c_out
        self.trunk = nn.Sequential(*trunk)
        self.up = Upsample(c_in, f_up, stride, **bn)
        self.head = PositionHead(f_up, d_hidden, n_markers, dropout=dropout)
        self.stride = stride
        self.receptive_field = stride * span + extra
        self.n_layers = len(layers) + 2  # strided conv, coarse layers, transposed conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 4, L)`` one-hot -> ``(N, M, L)`` logits."""
        self._check_input(x)
        length = x.shape[-1]
        h = self.trunk(self.down(pad_to_multiple(x, self.stride)))
        return self.head(self.up(h, length))

    def forward_slice(self, x: torch.Tensor, start: int, end: int) -> torch.Tensor:
        """Logits of positions ``[start, end)``: the trunk runs on the whole input, the
        transposed convolution and the head on the cells holding those positions only."""
        if self.training:  # batch norm statistics would see only the slice
            return self(x)[..., start:end]
        self._check_input(x)
        s = self.stride
        end = min(end, x.shape[-1])
        c0, c1 = start // s, -(-end // s)
        h = self.trunk(self.down(pad_to_multiple(x, s)))[..., c0:c1]
        out = self.head(self.up(h, (c1 - c0) * s))
        return out[..., start - c0 * s : end - c0 * s]


class IDCNN(DenseModel):
    """Iterated dilated CNN (Strubell et al. 2017): one weight-shared block applied ``n`` times.

    ``(N, 4, L) -> (N, M, L)``. A width-``first_width`` convolution at base resolution makes
    ``f1`` features; each pass then runs the same block: stride-``s`` convolution (width ``s``),
    dilated convolutions at rates 3, 9, 27 (width ``kernel_width``, channels ``f2, f3, f3``),
    transposed convolution back to ``f1`` features at base resolution. The convolution weights
    are shared by all passes; each pass has its own batch norms (as the published
    ``ID_CNN_model`` with ``use_batchnorm``). The same head reads every pass.

    ``forward(x)`` returns the last pass only (the tensor contract). The loss of the paper
    averages the binary cross-entropy of every pass: get the passes with
    ``model(x, all_passes=True)`` (a list of ``n_passes`` ``(N, M, L)`` tensors, last = forward's)
    or, generically for any model, :func:`regtracks.models.loss_outputs`.

    Attributes
    ----------
    receptive_field : int
        ``s * (1 + n_passes * (kernel_width - 1) * (3 + 9 + 27)) + first_width - 1``
        (21,099 bp with the defaults).
    stride : int
        ``s`` (20).
    n_loss_outputs : int
        ``n_passes``.
    """

    def __init__(
        self,
        n_markers: int,
        *,
        first_width: int,
        stride: int,
        kernel_width: int,
        f1: int,
        f2: int,
        f3: int,
        d_hidden: int,
        n_passes: int,
        dropout: float,
        bn_momentum: float,
        batch_norm: bool,
    ):
        super().__init__(n_markers)
        bn = {"dropout": dropout, "bn_momentum": bn_momentum, "batch_norm": batch_norm}
        self.conv0 = ConvBlock(SameConv1d(4, f1, first_width), f1, **bn)
        # shared weights of the block
        self.down = nn.Conv1d(f1, f1, stride, stride=stride)
        chans = [f1, f2, f3, f3]
        self.dilated = nn.ModuleList(
            SameConv1d(chans[i], chans[i + 1], kernel_width, dilation=d)
            for i, d in enumerate(IDCNN_DILATIONS)
        )
        self.up = nn.ConvTranspose1d(f3, f1, stride, stride=stride)
        # per-pass normalisation (batch norm, ReLU, dropout) after each of the 5 convolutions
        widths = [f1, f2, f3, f3, f1]
        self.post = nn.ModuleList(
            nn.ModuleList(
                nn.Sequential(
                    *([nn.BatchNorm1d(w, momentum=bn_momentum)] if batch_norm else []),
                    nn.ReLU(),
                    nn.Dropout(dropout),
                )
                for w in widths
            )
            for _ in range(n_passes)
        )
        self.head = PositionHead(f1, d_hidden, n_markers, dropout=dropout)
        self.stride = stride
        self.n_passes = n_passes
        self.n_loss_outputs = n_passes
        span = 1 + n_passes * sum((kernel_width - 1) * d for d in IDCNN_DILATIONS)
        self.receptive_field = stride * span + first_width - 1

    def _block(self, h: torch.Tensor, p: int, length: int) -> torch.Tensor:
        post = self.post[p]
        h = post[0](self.down(pad_to_multiple(h, self.stride)))
        for i, conv in enumerate(self.dilated):
            h = post[i + 1](conv(h))
        return post[4](self.up(h)[..., :length])

    def forward(self, x: torch.Tensor, *, all_passes: bool = False):
        """``(N, 4, L)`` -> ``(N, M, L)`` logits of the last pass, or a list of every pass.

        Parameters
        ----------
        x : (N, 4, L) tensor
            One-hot input.
        all_passes : bool
            Return the list of ``n_passes`` ``(N, M, L)`` logit tensors (for the loss).
        """
        self._check_input(x)
        length = x.shape[-1]
        h = self.conv0(x)
        outs = []
        for p in range(self.n_passes):
            h = self._block(h, p, length)
            if all_passes or p == self.n_passes - 1:
                outs.append(self.head(h))
        return outs if all_passes else outs[-1]

    def loss_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The ``n_passes`` per-pass ``(N, M, L)`` logits; the loss averages over them."""
        return self(x, all_passes=True)


class DenseBiLSTM(DenseModel):
    """Stride-``s`` convolution, bidirectional LSTM over the coarse positions, transposed conv.

    ``(N, 4, L) -> (N, M, L)``. Every output depends on the whole window
    (``receptive_field = None``); ``stride = s`` is the coarse grid the window should be aligned
    to (outputs are not translation-equivariant).
    """

    def __init__(
        self,
        n_markers: int,
        *,
        stride: int,
        f1: int,
        f2: int,
        f3: int,
        d_hidden: int,
        dropout: float,
        bn_momentum: float,
        batch_norm: bool,
        stem_width: int = 0,
    ):
        super().__init__(n_markers)
        bn = {"dropout": dropout, "bn_momentum": bn_momentum, "batch_norm": batch_norm}
        self.down, _ = make_stem(f1, stride, stem_width, **bn)
        self.lstm = nn.LSTM(f1, f2, batch_first=True, bidirectional=True)
        self.lstm_dropout = nn.Dropout(dropout)
        self.up = Upsample(2 * f2, f3, stride, **bn)
        self.head = PositionHead(f3, d_hidden, n_markers, dropout=dropout)
        self.stride = stride
        self.receptive_field = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 4, L)`` one-hot -> ``(N, M, L)`` logits."""
        self._check_input(x)
        length = x.shape[-1]
        h = self.down(pad_to_multiple(x, self.stride))  # (N, f1, Lc)
        h = run_lstm(self.lstm, h.transpose(1, 2))  # (N, Lc, 2 f2)
        h = self.lstm_dropout(h).transpose(1, 2)
        return self.head(self.up(h, length))


# ---------------------------------------------------------------------------------------------
# hyperparameters (declared once, as dataclass fields; Table 4 names) and builders


PAPER_STEM = {"stem_width": 0}
"""The ``paper`` preset of the Bi-LSTM: the published width-20, stride-20 first layer."""
PAPER_CNN = {"stem_width": 0, "pool": 0}
"""The ``paper`` preset of ``cnn3`` / ``cnn7``: the published stride-10 first layer, no pooling."""
PAPER_DILATED = {**PAPER_CNN, "dilations": ",".join(map(str, DILATIONS)), "residual": False}
"""The ``paper`` preset of ``dilated``: the published stack (Table 2's parameter count)."""


@dataclass(frozen=True)
class NormParams:
    """Shared by every dense model: per-position hidden units ``d_hidden``, ``dropout``
    probability, ``bn_momentum`` = 1 - batch norm decay (decay 0.9 -> 0.1), ``batch_norm``."""

    d_hidden: int = 125
    dropout: float = 0.1
    bn_momentum: float = 0.1
    batch_norm: bool = True

    def norm(self) -> dict:
        return {"dropout": self.dropout, "bn_momentum": self.bn_momentum,
                "batch_norm": self.batch_norm, "d_hidden": self.d_hidden}  # fmt: skip


@dataclass(frozen=True)
class CNN1Params(NormParams):
    """One convolution of ``f1`` filters, ``kernel_width`` bases wide."""

    kernel_width: int = 10
    f1: int = 128


@dataclass(frozen=True)
class StridedParams(NormParams):
    """``stride``-bp cells of ``f1`` features (from the motif stem, ``stem_width`` bases wide,
    or with ``stem_width=0`` the paper's width-``stride`` strided convolution); coarse
    convolutions ``kernel_width`` cells wide of ``f2`` (first) and ``f3`` (others) filters;
    stride-1 max pooling of ``pool`` cells (0: none)."""

    stride: int = 10
    kernel_width: int = 10
    f1: int = 128
    f2: int = 240
    f3: int = 50
    stem_width: int = 15
    pool: int = 11


@dataclass(frozen=True)
class CNN3Params(StridedParams):
    f2: int = 120


@dataclass(frozen=True)
class DilatedParams(StridedParams):
    """Plus ``residual`` and the ``dilations``."""

    residual: bool = True
    dilations: str = ",".join(map(str, DENSE_DILATIONS))


@dataclass(frozen=True)
class IDCNNParams(NormParams):
    """A width-``first_width`` base-resolution convolution of ``f1`` filters, then
    ``n_passes`` passes of one block (stride ``stride``, filters ``f2, f3``)."""

    first_width: int = 20
    stride: int = 20
    kernel_width: int = 10
    f1: int = 50
    f2: int = 240
    f3: int = 80
    n_passes: int = 3


@dataclass(frozen=True)
class BiLSTMParams(NormParams):
    """``stride``-bp cells of ``f1`` features (motif stem or, ``stem_width=0``, a strided
    convolution), LSTM state ``f2``, ``f3`` up-filters."""

    stride: int = 20
    f1: int = 128
    f2: int = 80
    f3: int = 128
    d_hidden: int = 200
    stem_width: int = 15


@register_model("cnn1", task="dense", layers=1, kind="CNN", paper_params=137_187, params=CNN1Params)
def cnn1(n_markers: int, hp: CNN1Params) -> BaseResolutionCNN:
    """One width-10 convolution at base resolution (receptive field 10 bp)."""
    return BaseResolutionCNN(n_markers, kernel_width=hp.kernel_width, f1=hp.f1, **hp.norm())


def _strided(n_markers: int, hp: StridedParams, rates, **kw) -> StridedCNN:
    """``StridedCNN`` with coarse convolutions at ``rates`` (``f2`` filters, then ``f3``).

    ``hp.pool > 1``: stride-1 max pooling of that many cells after the first layer and after
    every other coarse convolution (the first, third, ...), as the published ``dilated_pooling``
    models place it."""
    chans = [hp.f2] + [hp.f3] * (len(rates) - 1)
    pools = [hp.pool if i % 2 == 0 else 0 for i in range(len(rates))]
    layers = [(c, hp.kernel_width, d, p) for c, d, p in zip(chans, rates, pools, strict=True)]
    return StridedCNN(n_markers, stride=hp.stride, layers=layers, f1=hp.f1, f_up=hp.f3,
                      stem_width=hp.stem_width, pool_first=hp.pool, **hp.norm(),
                      **kw)  # fmt: skip


@register_model(
    "cnn3", task="dense", layers=3, kind="CNN", paper_params=341_803, params=CNN3Params,
    presets={"paper": PAPER_CNN},
)  # fmt: skip
def cnn3(n_markers: int, hp: CNN3Params) -> StridedCNN:
    """Motif stem to 10 bp cells, one width-10 conv, transposed conv (``paper``: 100 bp field)."""
    return _strided(n_markers, hp, [1])


@register_model(
    "cnn7", task="dense", layers=7, kind="CNN", paper_params=656_363, params=StridedParams,
    presets={"paper": PAPER_CNN},
)  # fmt: skip
def cnn7(n_markers: int, hp: StridedParams) -> StridedCNN:
    """Motif stem to 10 bp cells, five width-10 convs, transposed conv (``paper``: 460 bp)."""
    return _strided(n_markers, hp, [1] * 5)


@register_model(
    "idcnn", task="dense", layers=15, kind="Dilated", paper_params=635_739, params=IDCNNParams
)
def idcnn(n_markers: int, hp: IDCNNParams) -> IDCNN:
    """ID-CNN: three passes of one weight-shared dilated block, every pass in the loss."""
    return IDCNN(n_markers, **asdict(hp))


@register_model(
    "bilstm", task="dense", layers=4, kind="Bi-LSTM", paper_params=764_395, params=BiLSTMParams,
    presets={"paper": PAPER_STEM},
)  # fmt: skip
def bilstm(n_markers: int, hp: BiLSTMParams) -> DenseBiLSTM:
    """Motif stem to 20 bp cells, bidirectional LSTM (state f2), transposed conv (whole input)."""
    return DenseBiLSTM(n_markers, **asdict(hp))


@register_model(
    "dilated", task="dense", layers=6, kind="Dilated", paper_params=631_263, params=DilatedParams,
    presets={"paper": PAPER_DILATED},
)  # fmt: skip
def dilated(n_markers: int, hp: DilatedParams) -> StridedCNN:
    """Motif stem, dilated convs at rates 1, 3, 9, 27, 81, pooling, transposed conv (11 kb).

    The default is the paper's model with the fixes that make it learn (measured in
    BENCHMARKS.md, "Learning"); ``--hparam preset=paper`` is the published stack exactly
    (Table 2's parameter count):

    * ``dilations`` (comma-separated): rates of the coarse convolutions; the first has ``f2``
      channels, the others ``f3``. The published stack is ``3,9,27,81``: with kernel width 10
      each rate is a multiple of 3, so an output reads one residue class of 10 bp cells mod 3
      ("gridding"), never two adjacent cells. The default ``1,3,9,27,81`` (the paper's text:
      "dilations of 1, 3, 9, 27, and 81") reads every cell of its field and has exactly
      ``cnn7``'s layers and channels: the two differ only in their rates.
    * ``residual`` (default on; not in the paper): each dilated layer's input is added to its
      output, through a 1x1 convolution where the channels change, as in ResNet and Basenji.
    * ``stem_width`` (default 15; 0 = the paper's width-10 stride-10 convolution): a
      base-resolution convolution and a max pool over each 10 bp cell, so a motif is seen
      whole at every phase of the cell grid (:class:`MotifStem`).
    * ``pool`` (default 11; 0 = none): stride-1 max pooling of that many cells after the stem
      and after the first and third dilated convolution, where the published
      ``dilated_pooling`` model has it (width 5 there). Each output then reads the strongest
      evidence within +-150 bp, the width of a TF peak, through a path whose gradient reaches
      the motif filters directly.
    """
    rates = parse_dilations("dilated", hp.dilations)
    return _strided(n_markers, hp, rates, residual=hp.residual)
