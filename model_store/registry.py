"""Architecture registry: a name -> entrypoint table, filled by a decorator (timm style).

Each model family lives in one file under `model_store/models/` and ends with a few small
registered variants:

    @register_model
    def draem_small(**kwargs) -> DRAEM:
        return build_model(DRAEM, DraemConfig(base_width=32, ...), kwargs)

`build_model` (models/_common.py) merges the variant's default config with the kwargs for every
family. `create_model(name, **kwargs)` looks the name up and passes the kwargs through; the store builds
every model through it from a manifest's `architecture` and `kwargs`, so anything registered here
can be trained, saved, loaded and served without other changes.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from linewatch.errors import ModelIntegrityError

if TYPE_CHECKING:
    from model_store.models.base import AnomalyModel

F = TypeVar("F", bound=Callable[..., Any])

_entrypoints: dict[str, Callable[..., Any]] = {}
_discovered = False


def register_model(fn: F) -> F:
    """Record `fn` under `fn.__name__`; a second, different function with the same name is a bug."""
    name = fn.__name__
    existing = _entrypoints.get(name)
    if existing is not None and (existing.__module__, existing.__qualname__) != (fn.__module__, fn.__qualname__):
        raise ValueError(f"model name {name!r} registered twice ({existing.__module__} and {fn.__module__})")
    _entrypoints[name] = fn
    return fn


def _discover() -> None:
    """Import every module in model_store.models once, so their decorators run.

    Discovery (rather than a hand-kept import list) lets a new architecture file register itself
    by existing. An import error in such a file propagates: a broken model file must be loud.
    """
    global _discovered
    if _discovered:
        return
    import model_store.models as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{pkg.__name__}.{info.name}")
    _discovered = True


def list_models() -> list[str]:
    """Names of every registered architecture, sorted."""
    _discover()
    return sorted(_entrypoints)


def is_model(name: str) -> bool:
    _discover()
    return name in _entrypoints


def create_model(name: str, **kwargs: Any) -> AnomalyModel:
    """Build a registered architecture; an unknown name is a ModelIntegrityError, not a KeyError."""
    _discover()
    try:
        fn = _entrypoints[name]
    except KeyError:
        raise ModelIntegrityError(
            f"unknown architecture {name!r}; registered: {', '.join(sorted(_entrypoints)) or 'none'}"
        ) from None
    try:
        return fn(**kwargs)
    except (TypeError, ValueError) as exc:  # unknown keys (TypeError) or values a model refuses (ValueError)
        raise ModelIntegrityError(f"architecture {name!r} rejected its arguments {kwargs}: {exc}") from exc
