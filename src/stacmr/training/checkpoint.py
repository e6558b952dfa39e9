"""Self-describing checkpoints, typed: what identifies a run (`RunSpec`), the selected model (`BestCheckpoint`) and
the state a resume continues from (`LastCheckpoint`).

Written atomically (a kill never leaves a half checkpoint) as plain data (`to_dict`) and read back with
`weights_only=True`, so everything in one is a tensor or plain Python data; `CHECKPOINT_VERSION` names the layout,
and a file of another version is refused with one message. The same state gives the same bytes.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor

from stacmr.atomic import atomic_path
from stacmr.errors import StacmrError
from stacmr.features.store import FeatureStore
from stacmr.features.vocab import Vocabulary
from stacmr.models import DataDims, RetrievalModel, build_model, config_class

CHECKPOINT_VERSION = 2  # 2: typed checkpoints (`RunSpec.code` from `checksum.code_sha256`)

# a model's data sizes that a feature store fixes (`DataDims` fields) → the store's size and its name
_STORE_DIMS = {"region_dim": ("D", "region size"), "ocr_dim": ("E", "OCR vector size"), "ocr_slots": ("T", "OCR slots")}


@dataclass(frozen=True)
class RunSpec:
    """What identifies a run: a checkpoint is resumed only when all of this matches."""

    family: str
    model_config: dict[str, Any]
    dims: DataDims  # build_model's data sizes
    train: dict[str, Any]  # the ablation's `train` params (its overrides applied)
    data: dict[str, str]  # store name → sha256 of the training and validation stores (and the neighbour clusters)
    word_init: dict[str, Any]  # how the caption word vectors started (`stacmr.training.word_init`: the fitted map)
    code: str  # `checksum.code_sha256` of the train stage's code: other code never resumes this run

    @property
    def seed(self) -> int:
        return self.train["seed"]

    @property
    def max_caption_words(self) -> int:
        return self.train["max_caption_words"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        return cls(**{**data, "dims": DataDims(**data["dims"])})


def _to_dict(checkpoint: Any) -> dict[str, Any]:
    """A checkpoint's fields in their order, the spec as plain data; the tensors themselves, not copies."""
    fields = {f.name: getattr(checkpoint, f.name) for f in dataclasses.fields(checkpoint)}
    return {**fields, "spec": checkpoint.spec.to_dict()}


@dataclass(frozen=True)
class BestCheckpoint:
    """The model of the best validation epoch: enough to rebuild it alone (`rebuild_model`)."""

    spec: RunSpec
    model: dict[str, Tensor]  # state dict
    epoch: int  # 1-based
    val: dict[str, float]  # its validation metrics (`loop.validate`)
    vocab: list[str]  # the caption vocabulary, id order

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BestCheckpoint:
        return cls(**{**data, "spec": RunSpec.from_dict(data["spec"])})


@dataclass(frozen=True)
class LastCheckpoint:
    """The state after the last finished epoch: a resume from it ends as an uninterrupted run."""

    spec: RunSpec
    model: dict[str, Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng_cpu: Tensor
    rng_cuda: Tensor | None  # None when trained on the CPU
    epoch: int  # epochs done
    best_score: float  # the best epoch's `metrics.selection_score` so far
    history: list[dict[str, float]]  # one row per epoch done
    vocab: list[str]

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LastCheckpoint:
        return cls(**{**data, "spec": RunSpec.from_dict(data["spec"])})


class OtherVersion(StacmrError):
    """A checkpoint written by a stacmr of another `CHECKPOINT_VERSION`."""


CheckpointT = TypeVar("CheckpointT", BestCheckpoint, LastCheckpoint)


def save_checkpoint(path: str | os.PathLike, checkpoint: BestCheckpoint | LastCheckpoint) -> None:
    # torch.save names the zip archive's inner folder after a file name it is given (here the random temporary
    # name); given an open file it uses the fixed name "archive", so equal states give equal bytes (issue #14)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save({**checkpoint.to_dict(), "checkpoint_version": CHECKPOINT_VERSION}, f)


def load_checkpoint(path: str | os.PathLike, kind: type[CheckpointT]) -> CheckpointT:
    """The checkpoint at `path` as `kind` (`BestCheckpoint` or `LastCheckpoint`); a missing, unreadable, other
    version (`OtherVersion`) or other kind of file is one StacmrError naming it."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise StacmrError(f"{path}: checkpoint is missing") from None
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        raise StacmrError(f"{path}: not a readable stacmr checkpoint ({type(exc).__name__}: {exc})") from None
    version = state.pop("checkpoint_version", None) if isinstance(state, dict) else None
    if version != CHECKPOINT_VERSION:
        raise OtherVersion(f"{path}: checkpoint version {version!r}, this stacmr reads {CHECKPOINT_VERSION}")
    if set(state) != {f.name for f in dataclasses.fields(kind)}:
        raise StacmrError(f"{path}: not a {kind.__name__} (it holds {', '.join(state)})")
    return kind.from_dict(state)


def rebuild_model(checkpoint: BestCheckpoint) -> tuple[RetrievalModel, Vocabulary]:
    """(model in eval mode on the CPU, its vocabulary) from a checkpoint alone: family, config, data sizes, weights."""
    spec = checkpoint.spec
    config = config_class(spec.family)(**spec.model_config)
    model = build_model(spec.family, config, spec.dims)
    model.load_state_dict(checkpoint.model)
    return model.eval(), Vocabulary(checkpoint.vocab)


def data_dims(store: FeatureStore, vocab: Vocabulary) -> DataDims:
    """The data sizes of a model built for `store` and `vocab`."""
    return DataDims(**{key: store.sizes[dim] for key, (dim, _) in _STORE_DIMS.items()}, vocab_size=len(vocab))


def check_store_fits(store: FeatureStore, dims: DataDims, source: str) -> None:
    """Refuse `store` when a data size differs from `dims` (of the store a model was built for, as a checkpoint's
    spec records them), naming the store, `source` (where `dims` come from, e.g. "checkpoint <path>") and both
    sizes: a model meets another size only as a matrix shape error deep inside torch."""
    for key, (dim, what) in _STORE_DIMS.items():
        expected = getattr(dims, key)
        if store.sizes[dim] != expected:
            raise StacmrError(
                f"{store.path}: {what} {store.sizes[dim]}, but {source} has {expected}; a model reads only the sizes"
                " it was built for (rebuild the stale one)"
            )
