"""Model registry: names -> builders, with third-party models from entry-point plugins.

A *builder* is a callable ``builder(*, n_markers: int, **hparams) -> nn.Module`` whose module
follows the tensor contract of :mod:`regtracks.models.layers` (dense: ``(N, 4, L) -> (N, M, L)``;
sequence: ``(N, 4, seq_len) -> (N, M)``) and carries the attributes ``task``,
``receptive_field``, ``n_markers`` (and ``stride`` for dense models). Its keyword arguments
other than ``n_markers``, with their defaults, are the model's hyperparameters
(:func:`model_hparams`); :func:`get_model` rejects any other key.

Plugins
-------
A distribution joins with an entry point in the group ``regtracks.models``::

    [project.entry-points."regtracks.models"]
    tinyconv = "my_package.models"

The entry point is loaded lazily, the first time a name is looked up that is not built in or
the models are listed. What it loads may be

1. a **module** whose import registers models with ``@register_model`` (recommended);
2. a **function decorated with** ``@register_model`` (importing it registered it);
3. a **zero-argument function** that calls :func:`register_model` itself when called;
4. a plain **builder** (a callable taking ``n_markers``): registered under the entry point's
   name, its task read from a model built once on the ``meta`` device.

A plugin that fails to load gives one :class:`RuntimeWarning` naming its distribution and is
skipped; the built-in models keep working. Built-in names always win: a plugin model that
reuses one is skipped with a warning. Registering an existing name outside plugin loading
raises :class:`~regtracks._util.RegtracksError`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import inspect
import types
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from regtracks._util import RegtracksError
from regtracks.config import DEFAULT_MODELS

__all__ = [
    "ENTRY_POINT_GROUP",
    "ModelInfo",
    "ModelSpec",
    "register_model",
    "get_model",
    "list_models",
    "model_info",
    "model_hparams",
    "coerce_hparams",
    "count_params",
    "describe_models",
    "load_plugins",
    "model_spec",
    "preset_values",
]

ENTRY_POINT_GROUP = "regtracks.models"
TASKS = ("dense", "sequence")

Builder = Callable[..., Any]


@dataclass(frozen=True)
class ModelSpec:
    """One registered model: its builder and what the registry knows without building it."""

    name: str
    task: str
    builder: Builder
    layers: int | None = None
    kind: str = ""
    paper_params: int | None = None
    source: str = "builtin"
    description: str = ""
    params: type | None = None
    presets: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ModelInfo:
    """What ``regtracks models`` shows for one model (see :func:`model_info`).

    Attributes
    ----------
    name, task : str
        Registry name and ``"dense"`` or ``"sequence"``.
    params : int
        Trainable parameters for ``n_markers`` outputs and default hyperparameters.
    receptive_field : int or None
        Input bases that can influence one output (``None``: the whole input).
    source : str
        ``"builtin"`` or the distribution that provided the model.
    layers : int or None
        Layer count as the paper's tables give it.
    kind : str
        Architecture type (the tables' "Type": CNN, Dilated, Bi-LSTM, ...).
    paper_params : int or None
        The parameter count printed in the paper (919 markers), for built-ins.
    stride : int or None
        Dense models: translation-equivariance step in bases.
    n_markers : int
        The ``M`` the counts refer to.
    description : str
        First line of the builder's docstring.
    hparams : dict
        Default hyperparameters.
    preset_params : dict name -> int
        Trainable parameters of each preset (``--hparam preset=NAME``), e.g. ``paper``: the
        published architecture, to compare with ``paper_params``.
    """

    name: str
    task: str
    params: int
    receptive_field: int | None
    source: str
    layers: int | None = None
    kind: str = ""
    paper_params: int | None = None
    stride: int | None = None
    n_markers: int = DEFAULT_MODELS.n_markers
    description: str = ""
    hparams: dict = field(default_factory=dict)
    preset_params: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """JSON-ready dict; keys ``name, task, params, receptive_field, source`` come first."""
        return {
            "name": self.name,
            "task": self.task,
            "params": self.params,
            "receptive_field": self.receptive_field,
            "source": self.source,
            "layers": self.layers,
            "type": self.kind,
            "paper_params": self.paper_params,
            "stride": self.stride,
            "n_markers": self.n_markers,
            "description": self.description,
            "hparams": dict(self.hparams),
            "preset_params": dict(self.preset_params),
        }


_REGISTRY: dict[str, ModelSpec] = {}
_plugins_loaded = False
_loading_source: str | None = None  # distribution being loaded, while a plugin loads
# every builder passed to register_model (even if skipped), to recognise decorated entry points
_decorated: weakref.WeakSet = weakref.WeakSet()


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n", 1)[0].strip()


def _add(spec: ModelSpec) -> bool:
    """Register ``spec``; in plugin context a clash warns and returns False, else raises."""
    old = _REGISTRY.get(spec.name)
    if old is not None:
        if _loading_source is None:
            raise RegtracksError(
                f"model name {spec.name!r} is already registered (from {old.source}); "
                "choose another name"
            )
        winner = "the built-in model" if old.source == "builtin" else f"the one from {old.source}"
        warnings.warn(
            f"regtracks: model {spec.name!r} of plugin distribution {spec.source!r} skipped: "
            f"the name is taken by {winner}",
            RuntimeWarning,
            stacklevel=3,
        )
        return False
    _REGISTRY[spec.name] = spec
    return True


def register_model(
    name: str,
    *,
    task: str,
    layers: int | None = None,
    kind: str = "",
    paper_params: int | None = None,
    source: str | None = None,
    description: str | None = None,
    params: type | None = None,
    presets: dict[str, dict[str, Any]] | None = None,
) -> Callable[[Builder], Builder]:
    """Decorator registering a builder under ``name``.

    A builder is either ``builder(*, n_markers, **hparams)`` (its keyword arguments and their
    defaults are the hyperparameters) or, with ``params`` (a frozen dataclass whose fields
    and defaults are the hyperparameters, declared once), ``builder(n_markers, hp)`` with
    ``hp`` an instance of it; the registry then checks every value's type and range
    (:func:`~regtracks.models.layers.check_hparams`) before calling the builder.

    Parameters
    ----------
    name : str
        Unique across both tasks (lower case by convention).
    task : {"dense", "sequence"}
        The tensor contract the built module follows.
    layers, kind, paper_params : optional
        Shown by ``regtracks models`` (layer count, architecture type, the paper's count).
    source : str, optional
        Defaults to ``"builtin"`` for regtracks' own models, the distribution's name while a
        plugin loads, else the builder's module.
    description : str, optional
        Defaults to the first line of the builder's docstring.
    params : dataclass type, optional
        The hyperparameters (see above).
    presets : dict name -> dict, optional
        Named sets of hyperparameter values (with ``params``): ``--hparam preset=paper`` takes
        the ``paper`` set, and any hyperparameter given beside it wins over the set.

    Returns
    -------
    The builder, unchanged (so it can still be called directly).

    Raises
    ------
    RegtracksError
        Bad name or task, or a name that is already registered (outside plugin loading).
    """
    if not isinstance(name, str) or not name or any(c.isspace() for c in name):
        raise RegtracksError(f"model name {name!r} must be a non-empty string without spaces")
    if task not in TASKS:
        raise RegtracksError(f"model {name!r}: task {task!r} must be one of {', '.join(TASKS)}")

    def decorate(builder: Builder) -> Builder:
        if not callable(builder):
            raise RegtracksError(f"model {name!r}: the registered object is not callable")
        with contextlib.suppress(TypeError):  # a callable without weak references
            _decorated.add(builder)
        src = source
        if src is None:
            module = getattr(builder, "__module__", "") or ""
            if _loading_source is not None:
                src = _loading_source
            elif module.startswith("regtracks.models."):
                src = "builtin"
            else:
                src = module.split(".")[0] or "unknown"
        _add(
            ModelSpec(
                name=name,
                task=task,
                builder=builder,
                layers=layers,
                kind=kind,
                paper_params=paper_params,
                source=src,
                description=description or _first_line(builder.__doc__),
                params=params,
                presets=dict(presets or {}),
            )
        )
        return builder

    return decorate


# ---------------------------------------------------------------------------------------------
# plugins


def _entry_points() -> list:
    eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    seen, out = set(), []
    for ep in eps:  # the same distribution on sys.path twice lists its entry points twice
        key = (ep.name, ep.value)
        if key not in seen:
            seen.add(key)
            out.append(ep)
    return out


def _dist_name(ep) -> str:
    dist = getattr(ep, "dist", None)
    name = getattr(dist, "name", None) if dist is not None else None
    if name:
        return str(name)
    return ep.value.split(":")[0].split(".")[0]


@contextlib.contextmanager
def _plugin_context(source: str):
    global _loading_source
    prev, _loading_source = _loading_source, source
    try:
        yield
    finally:
        _loading_source = prev


def _claim(module_name: str, dist: str) -> None:
    """Credit ``dist`` with models its module registered before discovery (imported early)."""
    prefix = module_name.split(".")[0]
    for spec in list(_REGISTRY.values()):
        mod = getattr(spec.builder, "__module__", "") or ""
        if spec.source == prefix and mod.split(".")[0] == prefix:
            _REGISTRY[spec.name] = replace(spec, source=dist)


def _is_decorated(obj) -> bool:
    try:
        return obj in _decorated
    except TypeError:
        return any(spec.builder is obj for spec in _REGISTRY.values())


def _load_one(ep, dist: str) -> None:
    obj = ep.load()
    if isinstance(obj, types.ModuleType):  # case 1: importing it registered its models
        _claim(obj.__name__, dist)
        return
    if not callable(obj):
        raise RegtracksError(f"entry point {ep.value!r} is neither a module nor a callable")
    if _is_decorated(obj):  # case 2: a decorated builder, importing it registered it
        _claim(getattr(obj, "__module__", "") or "", dist)
        return
    params = inspect.signature(obj).parameters
    if "n_markers" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()):
        import torch  # case 4: a plain builder, registered under the entry point's name

        with torch.device("meta"):
            model = obj(n_markers=1)
        task = getattr(model, "task", None)
        register_model(ep.name, task=task, source=dist)(obj)
        return
    required = [
        p
        for p in params.values()
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if required:
        raise RegtracksError(
            f"entry point {ep.value!r} loads a callable that needs arguments "
            f"({', '.join(p.name for p in required)}) but is not a builder taking n_markers"
        )
    obj()  # case 3: a registration hook


def load_plugins(*, force: bool = False) -> None:
    """Discover and load the ``regtracks.models`` entry points (once, unless ``force``).

    A failing entry point is skipped with one :class:`RuntimeWarning` naming its distribution.
    """
    global _plugins_loaded
    if _plugins_loaded and not force:
        return
    _plugins_loaded = True
    try:
        eps = _entry_points()
    except Exception as exc:  # a broken metadata directory must not break the built-ins
        warnings.warn(f"regtracks: could not list model plugins: {exc}", RuntimeWarning, 2)
        return
    for ep in eps:
        dist = _dist_name(ep)
        before = dict(_REGISTRY)
        try:
            with _plugin_context(dist):
                _load_one(ep, dist)
        except Exception as exc:
            # drop what a half-loaded plugin registered, keep everything else
            _REGISTRY.clear()
            _REGISTRY.update(before)
            warnings.warn(
                f"regtracks: skipped model plugin {ep.name!r} of distribution {dist!r}: "
                f"{type(exc).__name__}: {exc}",
                RuntimeWarning,
                stacklevel=2,
            )


# ---------------------------------------------------------------------------------------------
# look-ups


def _spec(name: str) -> ModelSpec:
    if name not in _REGISTRY:
        load_plugins()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(list_models())
        raise RegtracksError(f"unknown model {name!r}; known models: {known}") from None


def list_models(task: str | None = None) -> list[str]:
    """Registered model names (built-ins first, in table order, then plugins), for ``task``.

    Parameters
    ----------
    task : {"dense", "sequence"} or None
        Only this task's models; ``None`` lists both.
    """
    if task is not None and task not in TASKS:
        raise RegtracksError(f"task {task!r} must be one of {', '.join(TASKS)}")
    load_plugins()
    return [n for n, s in _REGISTRY.items() if task is None or s.task == task]


def model_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` registered under ``name`` (plugins are loaded when needed)."""
    return _spec(name)


def model_hparams(name: str) -> dict[str, Any]:
    """Hyperparameters ``name`` accepts, with their defaults (the fields of its ``params``
    dataclass, or the builder's keyword arguments).

    ``n_markers`` is not included. A builder taking ``**kwargs`` reports only its named ones.
    """
    spec = _spec(name)
    if spec.params is not None:
        out = {f.name: f.default for f in dataclasses.fields(spec.params)}
        if spec.presets:
            out["preset"] = None
        return out
    sig = inspect.signature(spec.builder)
    return {
        k: p.default
        for k, p in sig.parameters.items()
        if k != "n_markers" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    }


def _accepts_any(spec: ModelSpec) -> bool:
    if spec.params is not None:
        return False
    return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(spec.builder).parameters.values())


def _check_keys(name: str, hparams: dict) -> None:
    valid = model_hparams(name)
    if _accepts_any(_spec(name)):
        return
    for key in hparams:
        if key not in valid:
            listing = ", ".join(f"{k}={v!r}" for k, v in valid.items()) or "none"
            raise RegtracksError(f"model {name!r} has no hyperparameter {key!r}; valid: {listing}")


def coerce_hparams(name: str, values: dict[str, str]) -> dict[str, Any]:
    """Convert ``--hparam key=value`` strings to the types of the defaults of model ``name``.

    ``"true"/"false"`` (and 1/0, yes/no) for booleans, ``int``/``float`` by the default's type;
    a key whose default is ``None`` or a string keeps the string.

    Raises
    ------
    RegtracksError
        Unknown key (naming it and listing the valid ones) or a value of the wrong type.
    """
    _check_keys(name, values)
    defaults = model_hparams(name)
    out: dict[str, Any] = {}
    for key, text in values.items():
        default = defaults.get(key)
        if not isinstance(text, str):
            out[key] = text
            continue
        try:
            if isinstance(default, bool):
                low = text.strip().lower()
                if low not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(text)
                out[key] = low in ("true", "1", "yes")
            elif isinstance(default, int):
                out[key] = int(text)
            elif isinstance(default, float):
                out[key] = float(text)
            else:
                out[key] = text
        except ValueError:
            kind = type(default).__name__
            raise RegtracksError(
                f"model {name!r}: hyperparameter {key}={text!r} is not a valid {kind}"
            ) from None
    return out


def get_model(name: str, *, n_markers: int, **hparams: Any):
    """Build model ``name`` with ``n_markers`` outputs.

    Parameters
    ----------
    name : str
        A name from :func:`list_models`.
    n_markers : int
        ``M``, the number of output tracks (>= 1).
    **hparams
        Hyperparameters overriding the defaults (:func:`model_hparams`).

    Returns
    -------
    torch.nn.Module
        Following the tensor contract of its task, with ``model_name`` and ``hparams`` (the
        full resolved dict, defaults included) attached for checkpoints.

    Raises
    ------
    RegtracksError
        Unknown model, unknown hyperparameter (naming it and listing the valid ones), or a
        value out of range.
    """
    spec = _spec(name)
    if isinstance(n_markers, bool) or not isinstance(n_markers, int) or n_markers < 1:
        raise RegtracksError(f"n_markers must be a positive integer, got {n_markers!r}")
    _check_keys(name, hparams)
    if spec.params is not None:
        from regtracks.models.layers import check_hparams

        explicit = dict(hparams)
        preset = explicit.pop("preset", None)
        values = {**preset_values(name, preset), **explicit}
        hp = spec.params(**values)
        check_hparams(name, hp)
        model = spec.builder(n_markers, hp)
        resolved = {**model_hparams(name), **values}
        if spec.presets:
            resolved["preset"] = preset
    else:
        model = spec.builder(n_markers=n_markers, **hparams)
        resolved = {**model_hparams(name), **hparams}
    with contextlib.suppress(AttributeError, TypeError):
        model.model_name = name
        model.hparams = resolved
    return model


def preset_values(name: str, preset: str | None) -> dict[str, Any]:
    """The hyperparameter values of preset ``preset`` of model ``name`` (``None``: none)."""
    if preset is None:
        return {}
    presets = _spec(name).presets
    if preset not in presets:
        known = ", ".join(presets) or "none"
        raise RegtracksError(f"model {name!r} has no preset {preset!r}; presets: {known}")
    return dict(presets[preset])


def count_params(model) -> int:
    """Number of trainable parameters (``requires_grad``), shared weights counted once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def model_info(name: str, n_markers: int = DEFAULT_MODELS.n_markers, **hparams: Any) -> ModelInfo:
    """Describe model ``name``: task, parameters (for ``n_markers``), receptive field, source.

    The model is built on the ``meta`` device, so even the 50M-parameter sequence models cost
    no memory and a few milliseconds.
    """
    import torch

    spec = _spec(name)
    with torch.device("meta"):
        model = get_model(name, n_markers=n_markers, **hparams)
        presets = {
            p: count_params(get_model(name, n_markers=n_markers, preset=p)) for p in spec.presets
        }
    return ModelInfo(
        name=name,
        task=spec.task,
        params=count_params(model),
        receptive_field=getattr(model, "receptive_field", None),
        source=spec.source,
        layers=getattr(model, "n_layers", spec.layers),
        kind=spec.kind,
        paper_params=spec.paper_params,
        stride=getattr(model, "stride", None) if spec.task == "dense" else None,
        n_markers=n_markers,
        description=spec.description,
        hparams={**model_hparams(name), **hparams},
        preset_params=presets,
    )


def describe_models(
    task: str | None = None, *, n_markers: int = DEFAULT_MODELS.n_markers
) -> list[ModelInfo]:
    """:func:`model_info` of every registered model (of ``task``), in :func:`list_models` order."""
    if isinstance(n_markers, bool) or not isinstance(n_markers, int) or n_markers < 1:
        raise RegtracksError(f"n_markers must be a positive integer, got {n_markers!r}")
    return [model_info(name, n_markers=n_markers) for name in list_models(task)]
