"""Model families by name: family → its model class, filled by `@register` in each family module.

A family's class declares what the project knows of it (`RetrievalModel`: `label`, `scene_text`, `config_class`,
`hinge_from_config`). `params.yaml` names a family and its settings: `check_models` validates `models.<family>` and
every ablation's `model` overrides against the family's config dataclass, `model_config` gives an ablation's
config, `build_model` the model built from a config and the data's sizes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

from stacmr.models.base import DataDims, RetrievalModel
from stacmr.params import Params, ParamsError, build_section, suggest

FAMILIES: dict[str, type[RetrievalModel]] = {}

# What a family's class declares in its own body: a subclass of another family (STARNet of VSRN) must not be named,
# nor built from the other's config, by inheritance.
_DECLARED = ("label", "scene_text", "config_class")

M = TypeVar("M", bound=type[RetrievalModel])


def register(family: str) -> Callable[[M], M]:
    """Class decorator: `@register("vsrn")` makes the model class a family, known by that name to params, the
    training, the checkpoints and the report."""

    def add(model_cls: M) -> M:
        if family in FAMILIES:
            raise ValueError(f"model family {family!r} is registered twice")
        missing = [name for name in _DECLARED if name not in vars(model_cls)]
        if missing:
            raise TypeError(f"model family {family!r}: {model_cls.__name__} does not declare {', '.join(missing)}")
        hinge = {"margin", "max_violation"}
        if model_cls.hinge_from_config and not hinge <= {f.name for f in dataclasses.fields(model_cls.config_class)}:
            raise TypeError(f"model family {family!r}: hinge_from_config, but its config has no {sorted(hinge)}")
        FAMILIES[family] = model_cls
        return model_cls

    return add


def family_class(family: str) -> type[RetrievalModel]:
    """The model class of `family` (its `label`, `scene_text`, `config_class`); KeyError naming the known families
    for an unknown one."""
    try:
        return FAMILIES[family]
    except KeyError:
        raise KeyError(f"unknown model family {family!r}; known families: {', '.join(sorted(FAMILIES))}") from None


def config_class(family: str) -> type:
    """The config dataclass of `family`; KeyError naming the known families for an unknown one."""
    return family_class(family).config_class


def build_model(family: str, config: Any, dims: DataDims) -> RetrievalModel:
    """A freshly initialised model of `family` for the data sizes `dims`."""
    model_cls = family_class(family)
    # Exact type: StarnetConfig extends VsrnConfig, and a STARNet config given to VSRN is a mistake, not a subtype.
    if type(config) is not model_cls.config_class:
        raise TypeError(
            f"model family {family!r} takes a {model_cls.config_class.__name__}, got {type(config).__name__}"
        )
    return model_cls(config, dims)


def check_models(params: Params) -> Params:
    """`params` with `models` validated: each key a family, each value built into the family's config dataclass; and
    every ablation's `model` overrides valid. `ParamsError` names the dotted key, as `stacmr.params` does for the
    sections that need no family."""
    models = {}
    for family, raw in params.models.items():
        if family not in FAMILIES:
            raise ParamsError(f"models.{family}: unknown model family{suggest(family, FAMILIES)}")
        models[family] = build_section(config_class(family), raw, f"models.{family}")
    checked = dataclasses.replace(params, models=models)
    for name in params.ablations:
        model_config(checked, name)
    return checked


def model_config(params: Params, ablation: str) -> Any:
    """The family config of `ablation`: `models.<family>` of `check_models(params)` with the ablation's overrides
    applied."""
    ab = params.ablations[ablation]
    base = dataclasses.asdict(params.models[ab.family])
    return build_section(config_class(ab.family), {**base, **ab.model}, f"ablations.{ablation}.model")
