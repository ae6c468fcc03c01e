"""``check_model``: test any model or builder against the tensor contract, on CPU, in seconds.

The contract (see :mod:`regtracks.models.layers`):

* dense: ``(N, 4, L)`` float one-hot -> ``(N, M, L)`` floating logits, for any ``L`` (also
  lengths that are not a multiple of ``stride``); sequence: ``(N, 4, seq_len)`` -> ``(N, M)``;
* attributes ``task``, ``n_markers``, ``receptive_field`` (positive int or ``None``), and for
  dense models ``stride``;
* finite outputs; gradients reach the one-hot input (saliency needs them) and the parameters;
* in eval mode: deterministic, independent of the batch it is in, and (dense models with a
  finite receptive field) translation-equivariant by ``stride``;
* the declared ``receptive_field`` covers the measured one: the input bases whose gradient
  for one output position is nonzero lie in one window of ``receptive_field`` bases that
  contains the position.

Plugin authors: ``check_model(my_builder, task="dense")`` before publishing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from regtracks._util import RegtracksError
from regtracks.models.layers import loss_outputs

__all__ = [
    "ModelContractError",
    "ModelCheck",
    "check_model",
    "random_one_hot",
    "measure_receptive_field",
]


class ModelContractError(RegtracksError):
    """A model breaks the tensor contract; the message names the model and the rule."""


@dataclass(frozen=True)
class ModelCheck:
    """What :func:`check_model` measured on a model that passed.

    Attributes
    ----------
    name, task : str
    n_markers, length, params : int
    receptive_field : int or None
        Declared.
    empirical_receptive_field : int or None
        Widest span of input bases with nonzero gradient for one output position (dense models
        with a finite receptive field), else ``None``.
    stride : int or None
    """

    name: str
    task: str
    n_markers: int
    length: int
    params: int
    receptive_field: int | None
    empirical_receptive_field: int | None
    stride: int | None


def random_one_hot(
    n: int, length: int, *, n_fraction: float = 0.05, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random ``(n, 4, length)`` float32 one-hot DNA; a ``n_fraction`` of bases are N (zeros)."""
    codes = torch.randint(1, 5, (n, length), generator=generator)
    n_mask = torch.rand((n, length), generator=generator) < n_fraction
    codes[n_mask] = 0
    eye = torch.eye(5)[:, 1:]
    return eye[codes].transpose(1, 2).contiguous()


def measure_receptive_field(
    model: nn.Module, x: torch.Tensor, position: int
) -> tuple[int, int] | None:
    """Input bases whose gradient for output ``position`` is nonzero, as ``(first, last)``.

    The union over the batch and the markers of ``x`` (``(N, 4, L)``) is taken; the model is
    used as it is (call ``model.eval()`` first for a deterministic answer). ``None`` if no
    gradient reaches the input.
    """
    x = x.detach().clone().requires_grad_(True)
    out = model(x)
    out[:, :, position].sum().backward()
    hit = (x.grad != 0).any(dim=1).any(dim=0).nonzero().flatten()
    if hit.numel() == 0:
        return None
    return int(hit.min()), int(hit.max())


def _build(
    model_or_builder: nn.Module | Callable[..., nn.Module] | str,
    n_markers: int,
    hparams: dict[str, Any] | None,
) -> tuple[nn.Module, str]:
    if isinstance(model_or_builder, nn.Module):
        if hparams:
            raise RegtracksError("check_model: hparams apply to a builder or name, not a model")
        return model_or_builder, type(model_or_builder).__name__
    if isinstance(model_or_builder, str):
        from regtracks.models.registry import get_model

        return get_model(model_or_builder, n_markers=n_markers, **(hparams or {})), (
            model_or_builder
        )
    if callable(model_or_builder):
        name = getattr(model_or_builder, "__name__", "builder")
        model = model_or_builder(n_markers=n_markers, **(hparams or {}))
        if not isinstance(model, nn.Module):
            raise ModelContractError(f"model {name}: the builder returned {type(model).__name__}")
        return model, name
    raise RegtracksError(f"check_model: cannot check a {type(model_or_builder).__name__}")


def check_model(
    model_or_builder: nn.Module | Callable[..., nn.Module] | str,
    *,
    task: str | None = None,
    n_markers: int = 3,
    length: int | None = None,
    batch: int = 3,
    hparams: dict[str, Any] | None = None,
    seed: int = 0,
    atol: float = 1e-4,
    rtol: float = 1e-4,
) -> ModelCheck:
    """Check a model (or a builder, or a registered name) against the tensor contract.

    Parameters
    ----------
    model_or_builder : nn.Module, callable or str
        A built model, a builder ``f(*, n_markers, **hparams)``, or a registry name.
    task : {"dense", "sequence"}, optional
        The task the model must declare (default: whatever it declares).
    n_markers : int
        ``M`` used to build (ignored for a built model, whose ``n_markers`` is used).
    length : int, optional
        Input length. Dense default: ``2 * receptive_field + 8 * stride`` (enough to measure
        the receptive field and equivariance), or ``64 * stride`` without a finite field;
        sequence default: the model's ``seq_len`` (1000 if it has none). Keep it small by
        passing small hyperparameters rather than a short length.
    batch : int
        Batch size (>= 2).
    hparams : dict, optional
        Passed to the builder.
    seed : int
        Seed of the random inputs.
    atol, rtol : float
        Tolerances of the determinism, batch-independence and equivariance comparisons.

    Returns
    -------
    ModelCheck

    Raises
    ------
    ModelContractError
        The first rule broken, naming the model and the rule.
    """
    model, name = _build(model_or_builder, n_markers, hparams)

    def fail(msg: str):
        raise ModelContractError(f"model {name}: {msg}")

    declared = getattr(model, "task", None)
    if declared not in ("dense", "sequence"):
        fail(f"attribute task must be 'dense' or 'sequence', got {declared!r}")
    if task is not None and declared != task:
        fail(f"declares task {declared!r}, expected {task!r}")
    m = getattr(model, "n_markers", None)
    if not isinstance(m, int) or (not isinstance(model_or_builder, nn.Module) and m != n_markers):
        fail(f"attribute n_markers is {m!r}, expected {n_markers}")
    rf = getattr(model, "receptive_field", "missing")
    if rf is not None and (not isinstance(rf, int) or isinstance(rf, bool) or rf < 1):
        fail(f"attribute receptive_field must be a positive int or None, got {rf!r}")
    stride = None
    if declared == "dense":
        stride = getattr(model, "stride", None)
        if not isinstance(stride, int) or stride < 1:
            fail(f"dense models need a positive int attribute stride, got {stride!r}")
        if length is None:
            length = 2 * rf + 8 * stride if rf else 64 * stride
    elif length is None:
        length = int(getattr(model, "seq_len", 1000))
    if batch < 2:
        raise RegtracksError("check_model: batch must be >= 2 (batch norm in training mode)")

    gen = torch.Generator().manual_seed(seed)
    x = random_one_hot(batch, length, generator=gen)
    want = (batch, m, length) if declared == "dense" else (batch, m)
    was_training = model.training
    try:
        # --- training mode: shapes, dtype, finiteness, gradients
        model.train()
        xg = x.clone().requires_grad_(True)
        out = model(xg)
        if not isinstance(out, torch.Tensor):
            fail(f"forward returned {type(out).__name__}, not a tensor")
        if tuple(out.shape) != want:
            fail(f"output shape {tuple(out.shape)} for input {tuple(x.shape)}, expected {want}")
        if not out.is_floating_point():
            fail(f"output dtype {out.dtype} is not floating point")
        if not torch.isfinite(out).all():
            fail("output has NaN or infinite values")
        weights = torch.randn(out.shape, generator=gen)
        (out * weights).sum().backward()
        if xg.grad is None or not torch.isfinite(xg.grad).all() or not (xg.grad != 0).any():
            fail("no finite nonzero gradient reaches the one-hot input")
        if not any(p.grad is not None and (p.grad != 0).any() for p in model.parameters()):
            fail("no parameter receives a gradient")
        model.zero_grad(set_to_none=True)
        outs = loss_outputs(model, x)
        if not outs or any(tuple(o.shape) != want for o in outs):
            fail(f"loss outputs have shapes {[tuple(o.shape) for o in outs]}, expected {want}")
        if len(outs) != getattr(model, "n_loss_outputs", 1):
            fail(f"{len(outs)} loss outputs, but n_loss_outputs = {model.n_loss_outputs}")

        # --- eval mode: determinism, batch independence, other lengths
        model.eval()
        with torch.no_grad():
            y1, y2 = model(x), model(x)
            if not torch.allclose(y1, y2, atol=atol, rtol=rtol):
                fail("eval-mode outputs differ between two identical calls")
            alone = torch.cat([model(x[i : i + 1]) for i in range(batch)])
            if not torch.allclose(alone, y1, atol=atol, rtol=rtol):
                err = (alone - y1).abs().max().item()
                fail(f"eval-mode output depends on the rest of the batch (max diff {err:.3g})")
            last = loss_outputs(model, x)[-1]
            if not torch.allclose(last, y1, atol=atol, rtol=rtol):
                fail("the last loss output differs from forward() in eval mode")
            if declared == "dense":
                odd = length - 3 if length > 3 else length + 3
                y_odd = model(x[..., :odd] if odd < length else torch.cat([x, x[..., :3]], -1))
                if tuple(y_odd.shape) != (batch, m, odd):
                    fail(f"input length {odd} gave output shape {tuple(y_odd.shape)}")

        # --- receptive field, measured with input gradients
        empirical = None
        if declared == "dense" and rf is not None:
            centre = (length // 2) // stride * stride
            # two grid offsets (first and last base of a cell); more tries where every ReLU
            # path of a position happens to be off for these inputs
            tries = [centre, centre + stride - 1] + [centre + i for i in range(1, 2 * stride)]
            measured = 0
            for pos in dict.fromkeys(p for p in tries if p < length):
                if measured == 2:
                    break
                hit = measure_receptive_field(model, x, pos)
                if hit is None:
                    continue
                measured += 1
                first, last_base = hit
                span = last_base - first + 1
                empirical = max(empirical or 0, span)
                if span > rf or pos - first >= rf or last_base - pos >= rf:
                    fail(
                        f"output {pos} depends on input bases [{first}, {last_base}]: a span "
                        f"of {span} bp, but receptive_field = {rf}"
                    )
        model.zero_grad(set_to_none=True)

        # --- translation equivariance by stride, away from the window edges
        if declared == "dense" and rf is not None and length > 2 * rf + stride:
            with torch.no_grad():
                shifted = model(x[..., stride:])
            a = y1[..., stride + rf : length - rf]
            b = shifted[..., rf : length - stride - rf]
            if not torch.allclose(a, b, atol=atol, rtol=rtol):
                fail(f"not translation-equivariant by stride={stride} in eval mode")
    finally:
        model.train(was_training)

    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return ModelCheck(
        name=name,
        task=declared,
        n_markers=m,
        length=length,
        params=params,
        receptive_field=rf,
        empirical_receptive_field=empirical,
        stride=stride,
    )
