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
