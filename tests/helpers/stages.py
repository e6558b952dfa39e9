"""Command lines of the stages, on the outputs of the session fixture `pipeline`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from stacmr.cli import main


def train_argv(root: Path, out: Path, ablation: str, params: Path | None = None) -> list[str]:
    """`stacmr train` of `ablation` on the stores under `root` (default params: `root`'s own), writing under `out`."""
    return [
        "train",
        "--params",
        str(params or root / "params.yaml"),
        "--ablation",
        ablation,
        "--features",
        str(root / "features"),
        "--trainset",
        str(root / "trainset.h5"),
        "--vocab",
        str(root / "vocab.json"),
        "--neighbours",
        str(root / "neighbours"),
        "--out",
        str(out / "models" / ablation),
        "--history",
        str(out / "plots" / f"{ablation}.csv"),
        "--metrics",
        str(out / "metrics" / f"{ablation}.json"),
    ]


def evaluate_argv(
    params: Path,
    ablation: str,
    split: str,
    root: Path,
    models: Path,
    metrics: Path,
    ranks: Path,
    features: Path | None = None,
) -> list[str]:
    """`stacmr evaluate` of the checkpoint folder `models` on `split` of the stores under `root` (or `features`),
    writing the metrics JSON `metrics` and the ranks file `ranks`."""
    return [
        "evaluate",
        "--params",
        str(params),
        "--ablation",
        ablation,
        "--split",
        split,
        "--neighbours",
        str(root / "neighbours"),
        "--models",
        str(models),
        "--features",
        str(features or root / "features"),
        "--metrics",
        str(metrics),
        "--ranks",
        str(ranks),
    ]


def smoke_run(root: Path, out: Path, params: Path, ablation: str) -> tuple[dict, dict[str, np.ndarray]]:
    """`ablation` trained by `stacmr train` and evaluated on CTC-1K (`dev`) with `params` (one epoch, tiny: the
    caller's), under `out`; its metrics JSON and ranks, checked for sense."""
    assert main(train_argv(root, out, ablation, params)) == 0
    metrics_path = out / "eval.json"
    argv = evaluate_argv(params, ablation, "dev", root, out / "models" / ablation, metrics_path, out / "ranks.npz")
    assert main(argv) == 0
    metrics = json.loads(metrics_path.read_text())
    assert 0 <= metrics["i2t_r1"] <= metrics["i2t_r10"] <= 100 and "explicit" in metrics
    ranks = dict(np.load(out / "ranks.npz"))
    assert len(ranks["t2i"]) == 5 * len(ranks["i2t"])
    return metrics, ranks
