"""Self-describing checkpoints: model and optimiser state, RNG state, progress, history and the config as plain data.

Written atomically (a kill never leaves a half checkpoint) and read back with `weights_only=True`, so everything
in one is a tensor or plain Python data. The same state gives the same bytes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from stacmr.atomic import atomic_path
from stacmr.errors import StacmrError
from stacmr.features.store import FeatureStore

CHECKPOINT_VERSION = 1

# `build_model`'s data sizes (a checkpoint's spec["dims"]) → the feature store size each one is, and its name
_STORE_DIMS = {"region_dim": ("D", "region size"), "ocr_dim": ("E", "OCR vector size"), "ocr_slots": ("T", "OCR slots")}


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    # torch.save names the zip archive's inner folder after a file name it is given (here the random temporary
    # name); given an open file it uses the fixed name "archive", so equal states give equal bytes (issue #14)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save({**state, "checkpoint_version": CHECKPOINT_VERSION}, f)


def rebuild_model(state: dict[str, Any]) -> tuple[Any, Any]:
    """(model in eval mode on the CPU, its vocabulary) from a checkpoint alone: family, config, data sizes, weights."""
    from stacmr.features.vocab import Vocabulary
    from stacmr.models import build_model, config_class

    spec = state["spec"]
    config = config_class(spec["family"])(**spec["model_config"])
    model = build_model(spec["family"], config, **spec["dims"])
    model.load_state_dict(state["model"])
    return model.eval(), Vocabulary(state["vocab"])


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise StacmrError(f"{path}: checkpoint is missing") from None
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        raise StacmrError(f"{path}: not a readable stacmr checkpoint ({type(exc).__name__}: {exc})") from None
    version = state.get("checkpoint_version") if isinstance(state, dict) else None
    if version != CHECKPOINT_VERSION:
        raise StacmrError(f"{path}: checkpoint version {version!r}, this stacmr reads {CHECKPOINT_VERSION}")
    return state


def store_dims(store: FeatureStore) -> dict[str, int]:
    """The data sizes a model built for `store` has (`build_model`'s region_dim, ocr_dim, ocr_slots)."""
    return {key: store.sizes[dim] for key, (dim, _) in _STORE_DIMS.items()}


def check_store_fits(store: FeatureStore, dims: dict[str, int], source: str) -> None:
    """Refuse `store` when a data size differs from `dims` (`store_dims` of the store a model was built for, as a
    checkpoint's spec records them), naming the store, `source` (where `dims` come from, e.g. "checkpoint <path>")
    and both sizes: a model meets another size only as a matrix shape error deep inside torch."""
    for key, (dim, what) in _STORE_DIMS.items():
        if store.sizes[dim] != dims[key]:
            raise StacmrError(
                f"{store.path}: {what} {store.sizes[dim]}, but {source} has {dims[key]}; a model reads only the sizes"
                " it was built for (rebuild the stale one)"
            )
