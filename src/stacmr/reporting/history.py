"""Training curves of each evaluated ablation, from the history CSV its train stage wrote (`reports/plots/train/`, a
DVC output: the same numbers as the MLflow run's metrics, but present in every checkout, so the figure drawn from it
is the same everywhere; MLflow's store is per machine and no DVC dependency).

Reads `<history_dir>/<ablation>.csv`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from stacmr.errors import StacmrError
from stacmr.reporting.results import Results


@dataclass(frozen=True)
class History:
    ablation: str
    frame: pd.DataFrame  # one row per epoch: epoch, lr, loss_*, val_* (the train stage's history columns)


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
    return [History(a, _from_csv(Path(history_dir) / f"{a}.csv")) for a in results.params.evaluate.ablations]
