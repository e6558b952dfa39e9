"""Model families by name: family → (config dataclass, model class), filled by `@register` in each family module.

`params.yaml` names a family and its settings; `config_class` gives the dataclass those settings are validated
against, `build_model` the model built from a validated config and the data's dimensions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from stacmr.models.base import RetrievalModel

FAMILIES: dict[str, tuple[type, type[RetrievalModel]]] = {}

M = TypeVar("M", bound=type[RetrievalModel])


def register(family: str, config_cls: type) -> Callable[[M], M]:
    """Class decorator: `@register("vsrn", VsrnConfig)` makes the model class buildable by its family name (report
    tables name families in `stacmr.reporting.labels`)."""

    def add(model_cls: M) -> M:
        if family in FAMILIES:
            raise ValueError(f"model family {family!r} is registered twice")
        FAMILIES[family] = (config_cls, model_cls)
        return model_cls

    return add


def _entry(family: str) -> tuple[type, type[RetrievalModel]]:
    try:
        return FAMILIES[family]
    except KeyError:
        raise KeyError(f"unknown model family {family!r}; known families: {', '.join(sorted(FAMILIES))}") from None


def config_class(family: str) -> type:
    """The config dataclass of `family`; KeyError naming the known families for an unknown one."""
    return _entry(family)[0]


def build_model(
    family: str, config: Any, vocab_size: int, region_dim: int, ocr_dim: int, ocr_slots: int
) -> RetrievalModel:
    """A freshly initialised model of `family` for a vocabulary of `vocab_size` ids, regions of `region_dim`
    features, and `ocr_slots` OCR slots of `ocr_dim` features (the feature store's D, T and E)."""
    config_cls, model_cls = _entry(family)
    # Exact type: StarnetConfig extends VsrnConfig, and a STARNet config given to VSRN is a mistake, not a subtype.
    if type(config) is not config_cls:
        raise TypeError(f"model family {family!r} takes a {config_cls.__name__}, got {type(config).__name__}")
    return model_cls(config, vocab_size=vocab_size, region_dim=region_dim, ocr_dim=ocr_dim, ocr_slots=ocr_slots)
