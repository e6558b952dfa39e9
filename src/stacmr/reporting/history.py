"""Training curves of each evaluated ablation: from the metric history of the MLflow run that trained its checkpoint
(found by the checkpoint's sha256 in this checkout's store), or, when the store has no such run (a fresh clone,
another machine, tracking that failed), from the DVC plots CSV the train stage also wrote; each curve says which.

Reads MLflow through `stacmr.tracking.checkpoint_run` and `metric_history`, and `<history_dir>/<ablation>.csv`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from stacmr.errors import StacmrError
from stacmr.reporting.results import Results
from stacmr.tracking import checkpoint_run, metric_history


@dataclass(frozen=True)
class History:
    ablation: str
    frame: pd.DataFrame  # one row per epoch: epoch, lr, loss_*, val_* (the train stage's history columns)
    source: str  # "MLflow run <id>" or "DVC plots <csv> (...)"


def _from_mlflow(run_id: str, splits: tuple[str, ...]) -> pd.DataFrame | None:
    history = metric_history(run_id)
    if not history or "val_rsum" not in history:
        return None
    mirrored = tuple(f"{s}_" for s in splits)  # the evaluate stages' metrics, mirrored into the training run
    columns = {k: dict(v) for k, v in history.items() if not k.startswith(mirrored) and k != "epoch"}
    frame = pd.DataFrame(columns).sort_index()
    return frame.rename_axis("epoch").reset_index()


def _from_csv(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise StacmrError(f"{path}: no training history (run `dvc repro` for the train stage)") from None
    except (OSError, ValueError) as exc:
        raise StacmrError(f"{path}: not a readable history CSV ({exc})") from None
    for column in ("epoch", "val_rsum"):
        if column not in frame:
            raise StacmrError(f"{path}: history has no {column!r} column")
    return frame


def training_histories(results: Results, history_dir: Path) -> list[History]:
    """One history per evaluated ablation, in params order."""
    histories = []
    splits = results.params.evaluate.splits
    for ablation in results.params.evaluate.ablations:
        ours = results.get(ablation, splits[0])
        run_id = checkpoint_run(ours.checkpoint_sha256)
        frame = _from_mlflow(run_id, splits) if run_id is not None else None
        source = f"MLflow run {run_id}"
        if frame is None:
            path = Path(history_dir) / f"{ablation}.csv"
            frame = _from_csv(path)
            why = (
                f"no MLflow run of checkpoint sha256 {ours.checkpoint_sha256[:12]}"
                if run_id is None
                else f"MLflow run {run_id}: no readable val_rsum history"
            )
            source = f"DVC plots {path} ({why})"
        histories.append(History(ablation, frame, source))
    return histories
