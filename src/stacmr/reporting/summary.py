"""The pipeline's headline numbers as one small file, the only DVC metric of the default pipeline (`dvc metrics show`,
`dvc exp show`, `dvc metrics diff`): per ablation, rsum and R@1 both ways on each evaluated split, and the validation
rsum of the checkpoint its training run kept.

The detailed files stay where the train and evaluate stages write them, `<metrics>/<ablation>/<split>.json` and
`<metrics>/train/<ablation>.json` (plain outputs in git; the report reads them): this file is the view DVC compares
across experiments, small enough that `dvc exp show --only-changed` for a one-parameter experiment fits a screen.
"""

from __future__ import annotations

import json
from pathlib import Path

from stacmr.atomic import write_text
from stacmr.data.sources import split_label
from stacmr.errors import StacmrError
from stacmr.jsonfile import read_json
from stacmr.reporting.results import Results

SPLIT_KEYS = ("rsum", "i2t_r1", "t2i_r1")
DIGITS = 2  # recall is in percent: two decimals are below any difference a bootstrap interval resolves


def split_key(split: str) -> str:
    """The prefix of a split's keys: its display label made a key ("dev" → CTC-1K → "ctc1k")."""
    return split_label(split).lower().replace("-", "").replace(" ", "_")


def summary(results: Results, train_metrics: Path) -> dict[str, dict[str, float]]:
    """{ablation: {"<split>_rsum", "<split>_i2t_r1", "<split>_t2i_r1" per split, "val_rsum"}}, in params order;
    `val_rsum` is read from `<train_metrics>/<ablation>.json`, the train stage's best validation metrics."""
    rows = {}
    for ablation in results.params.evaluate.ablations:
        row = {
            f"{split_key(split)}_{key}": round(results.get(ablation, split).value(key), DIGITS)
            for split in results.params.evaluate.splits
            for key in SPLIT_KEYS
        }
        path = train_metrics / f"{ablation}.json"
        best = read_json(path, "training metrics file (`dvc repro` writes it)")
        if not isinstance(best.get("rsum"), int | float):
            raise StacmrError(f"{path}: metric 'rsum' missing or not a number")
        row["val_rsum"] = round(best["rsum"], DIGITS)
        rows[ablation] = row
    return rows


def write_summary(rows: dict[str, dict[str, float]], path: Path) -> None:
    write_text(path, json.dumps(rows, indent=2) + "\n")
