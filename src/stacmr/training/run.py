"""What the `train` stage records about a run, beside the loop: its `RunSpec` (data files and code by sha256), the
MLflow params and tags, and the selected epoch's validation metrics as the DVC metrics JSON."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stacmr.checksum import code_sha256, sha256_file
from stacmr.errors import StacmrError
from stacmr.evaluation.evaluate import nested_metrics
from stacmr.evaluation.metrics import selection_score
from stacmr.features.neighbours import load_neighbours
from stacmr.features.store import FeatureStore
from stacmr.models import DataDims
from stacmr.params import AblationParams, TrainParams, params_dict
from stacmr.training.checkpoint import RunSpec
from stacmr.training.loop import val_metrics

TRAIN_STAGE = "stacmr.stages.train"  # the module whose code (`checksum.code_sha256`) a run spec records


def training_clusters(path: Path, store: FeatureStore) -> np.ndarray:
    """The visual-neighbour cluster of each image of the training `store`, from the neighbours file `path`."""
    clusters = load_neighbours(path)["cluster"]
    if len(clusters) != len(store):
        raise StacmrError(
            f"{path}: {len(clusters)} images, the store {store.path} has {len(store)}: rerun `dvc repro neighbours`"
        )
    return clusters


def run_spec(
    family: str, config: Any, dims: DataDims, params: TrainParams, inputs: dict[str, Path], word_init: dict[str, Any]
) -> RunSpec:
    """The spec of a run of `family` with `config` (its dataclass) and `params`; `inputs`: name → the data files it
    reads (the training and validation stores, the vocabulary, the neighbour clusters), recorded by sha256."""
    data = {name: sha256_file(path) for name, path in inputs.items()}
    return RunSpec(family, asdict(config), dims, params_dict(params), data, word_init, code_sha256(TRAIN_STAGE))


def run_params(ablation: AblationParams, spec: RunSpec) -> dict[str, Any]:
    """The MLflow params of a run (nested; the tracker flattens them)."""
    return {"ablation": asdict(ablation), "model": spec.model_config, "train": spec.train, "dims": asdict(spec.dims)}


def run_tags(
    name: str, ablation: AblationParams, spec: RunSpec, data_source: str, device: torch.device
) -> dict[str, str]:
    """The MLflow tags of a run of the ablation `name` that say what it is (with `tracking.provenance_tags`, where
    it came from): family, data, device, seed, platform, and the sha256 of its code and of every data file."""
    tags = {
        "ablation": name,
        "family": spec.family,
        "data.source": data_source,
        "train_data": ablation.train_data,
        "device": str(device),
        "seed": str(spec.seed),
        "platform": platform.platform(),
        "sha256.code": spec.code,
    }
    return {**tags, **{f"sha256.{k}": v for k, v in spec.data.items()}}


def best_row(history: list[dict[str, float]]) -> dict[str, float]:
    """The history row of the selected epoch (`metrics.selection_score` of its validation metrics; the first of
    equals), the one `best.pt` holds."""
    return max(history, key=lambda row: selection_score(val_metrics(row)))


def metrics_json(row: dict[str, float]) -> str:
    """The DVC metrics file of a run: the epoch of `row` (`best_row`) and its validation metrics in the evaluate
    stage's layout."""
    return json.dumps({"epoch": row["epoch"], **nested_metrics(val_metrics(row))}, indent=2) + "\n"
