"""The model zoo: every model of the paper's Tables 1 and 2 behind one registry.

Importing this package imports torch and registers the twelve built-in models; third-party
models join through the entry-point group ``regtracks.models`` (loaded lazily, see
:mod:`regtracks.models.registry`).

Tensor contract: dense task ``(N, 4, L)`` float one-hot (A, C, G, T; N = zeros) ->
``(N, M, L)`` logits; sequence task ``(N, 4, 1000)`` -> ``(N, M)`` logits. Every model has
``task``, ``n_markers``, ``receptive_field`` (input bases that can influence one output;
``None`` = the whole input) and, if dense, ``stride`` (translation-equivariance step).

>>> from regtracks.models import get_model, list_models
>>> list_models("dense")
['cnn1', 'cnn3', 'cnn7', 'idcnn', 'bilstm', 'dilated']
>>> model = get_model("dilated", n_markers=919)
>>> model.receptive_field, model.stride
(10810, 10)

Training loop: ``outs = loss_outputs(model, x)`` gives the list of logit tensors to average
the loss over (three for the ID-CNN, one otherwise); ``model(x)`` is always the prediction.
"""

from __future__ import annotations

# importing the modules registers the built-ins; listing order = import order (Table 2, Table 1)
from regtracks.models import dense as _dense  # noqa: F401
from regtracks.models import sequence as _sequence  # noqa: F401
from regtracks.models.check import ModelCheck, ModelContractError, check_model, random_one_hot
from regtracks.models.layers import loss_outputs, unwrap_model
from regtracks.models.registry import (
    ENTRY_POINT_GROUP,
    ModelInfo,
    ModelSpec,
    coerce_hparams,
    count_params,
    describe_models,
    get_model,
    list_models,
    load_plugins,
    model_hparams,
    model_info,
    model_spec,
    register_model,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "ModelCheck",
    "ModelContractError",
    "ModelInfo",
    "ModelSpec",
    "check_model",
    "coerce_hparams",
    "count_params",
    "describe_models",
    "get_model",
    "list_models",
    "load_plugins",
    "loss_outputs",
    "model_hparams",
    "model_info",
    "model_spec",
    "random_one_hot",
    "register_model",
    "unwrap_model",
]
