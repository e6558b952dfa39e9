"""Command lines of the stages, on the outputs of the session fixture `pipeline`."""

from __future__ import annotations

from pathlib import Path


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
