"""The evaluated results a report is made of: per ablation and split, the metrics JSON written by `evaluate`, the
provenance of its numbers (the sha256 of the ablation's checkpoint, which also finds its MLflow training run, and
the DVC stage names), and the saved per-query ranks.

Reads `<metrics>/<ablation>/<split>.json`, `<models>/<ablation>/best.pt` (its sha256 only) and, on demand,
`<ranks>/<ablation>/<split>.npz`: the layout dvc.yaml gives the train and evaluate stages.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stacmr.checksum import sha256_file
from stacmr.data.sources import train_data_label
from stacmr.errors import StacmrError
from stacmr.evaluation.metrics import CI_KEYS
from stacmr.jsonfile import read_json
from stacmr.models import family_class
from stacmr.params import Params


@dataclass(frozen=True)
class Evaluated:
    """One ablation evaluated on one split."""

    ablation: str
    split: str
    family: str
    train_data: str
    metrics: dict[str, Any]  # the metrics JSON: flat keys, `ci95: {key: [low, high]}`, `explicit: {...}`
    checkpoint_sha256: str  # of the evaluated best.pt: its MLflow training run carries it as a tag

    @property
    def label(self) -> str:
        return family_class(self.family).label

    @property
    def scene_text(self) -> bool:
        return family_class(self.family).scene_text

    @property
    def method(self) -> str:
        """Family and training data, e.g. "VSRN (full mix)": what a table row is."""
        return f"{self.label} ({train_data_label(self.train_data)})"

    @property
    def stage(self) -> str:
        return f"evaluate@{self.ablation}-{self.split}"

    def value(self, key: str) -> float:
        return float(self.metrics[key])

    def ci(self, key: str) -> tuple[float, float]:
        low, high = self.metrics["ci95"][key]
        return float(low), float(high)


@dataclass(frozen=True)
class Results:
    params: Params
    evaluated: dict[tuple[str, str], Evaluated]  # (ablation, split) → result, in params order
    ranks_dir: Path

    def get(self, ablation: str, split: str) -> Evaluated | None:
        return self.evaluated.get((ablation, split))

    def ranks(self, ablation: str, split: str) -> dict[str, np.ndarray]:
        """The per-query ranks saved by `evaluate`: i2t (N,), t2i (M,), caption_image (M,), t2i_top (M, k),
        explicit_*."""
        return read_ranks(self.ranks_dir / ablation / f"{split}.npz", ablation, split)


def read_ranks(path: Path, ablation: str, split: str) -> dict[str, np.ndarray]:
    """A ranks file written by an `evaluate` stage of `ablation` on `split`; missing or unreadable: one message."""
    try:
        with np.load(path) as saved:
            return {key: saved[key] for key in saved.files}
    except FileNotFoundError:
        raise StacmrError(f"{path}: no ranks file (run the evaluate stages of {ablation} on {split})") from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise StacmrError(f"{path}: not a readable ranks file ({exc})") from None


def _check_metrics(path: Path, metrics: dict[str, Any]) -> None:
    for key in CI_KEYS:
        if not isinstance(metrics.get(key), int | float):
            raise StacmrError(f"{path}: metric {key!r} missing or not a number")
        ci = metrics.get("ci95", {}).get(key)
        if not (isinstance(ci, list) and len(ci) == 2):
            raise StacmrError(f"{path}: ci95.{key} missing or not a [low, high] pair")


def load_results(params: Params, metrics_dir: Path, models_dir: Path, ranks_dir: Path) -> Results:
    """Every (ablation, split) of `params.evaluate`, validated; a missing or malformed file is one StacmrError."""
    evaluated = {}
    for ablation in params.evaluate.ablations:
        checkpoint = models_dir / ablation / "best.pt"
        try:
            checkpoint_sha256 = sha256_file(checkpoint)  # once per ablation, whatever the number of splits
        except FileNotFoundError:
            raise StacmrError(f"{checkpoint}: no checkpoint (run `dvc repro train@{ablation}`)") from None
        spec = params.ablations[ablation]
        for split in params.evaluate.splits:
            path = metrics_dir / ablation / f"{split}.json"
            metrics = read_json(path, "metrics file (`dvc repro` writes it)")
            _check_metrics(path, metrics)
            evaluated[ablation, split] = Evaluated(
                ablation, split, spec.family, spec.train_data, metrics, checkpoint_sha256
            )
    return Results(params, evaluated, ranks_dir)
