"""Training-seed replicates: every run of an ablation on a split, its own `train.seed` run first, then the replicates
of `params.replicates` (`train_seed@<ablation>-<seed>`, `evaluate_seed@…`), and what they say about seed variance.

Reads `<metrics>/replicates/<ablation>-s<seed>/<split>.json` and `<ranks>/replicates/<ablation>-s<seed>/<split>.npz`
beside the ablation's own files in `Results`. An ablation without replicates has one run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stacmr.data.sources import split_label
from stacmr.evaluation.metrics import CI_KEYS
from stacmr.evaluation.statistics import Ranks
from stacmr.jsonfile import read_json
from stacmr.reporting.render import Table
from stacmr.reporting.results import Results, read_ranks

REPLICATES = "replicates"  # the replicates' folder under the metrics, ranks and plots folders


def replicate_name(ablation: str, seed: int) -> str:
    """The folder of one replicate, e.g. `vsrn_all-s1` (dvc.yaml: train_seed, evaluate_seed)."""
    return f"{ablation}-s{seed}"


@dataclass(frozen=True)
class SeedRuns:
    """All training runs of one ablation evaluated on one split."""

    ablation: str
    split: str
    seeds: tuple[int, ...]  # the ablation's own train seed first
    metrics: tuple[dict[str, Any], ...]  # the evaluate metrics JSON of each run
    ranks_files: tuple[Path, ...]

    def values(self, key: str) -> np.ndarray:
        return np.array([float(m[key]) for m in self.metrics])

    def mean_sd(self, key: str) -> tuple[float, float | None]:
        """(mean, sample sd over seeds); sd is None with one run."""
        values = self.values(key)
        return float(values.mean()), (float(values.std(ddof=1)) if len(values) > 1 else None)

    def ranks(self) -> tuple[list[Ranks], np.ndarray]:
        """([(i2t, t2i) per run], caption_image): the per-query ranks of every run."""
        saved = [read_ranks(path, self.ablation, self.split) for path in self.ranks_files]
        return [(r["i2t"], r["t2i"]) for r in saved], saved[0]["caption_image"]


def seed_runs(results: Results, metrics_dir: Path) -> dict[tuple[str, str], SeedRuns]:
    """(ablation, split) → its runs, for every evaluated pair; replicates of `params.replicates` are added."""
    params = results.params
    replicated = set(params.replicates.ablations)
    runs = {}
    for (ablation, split), ours in results.evaluated.items():
        seeds = [params.train_params(ablation).seed]
        metrics, files = [ours.metrics], [results.ranks_dir / ablation / f"{split}.npz"]
        for seed in params.replicates.seeds if ablation in replicated else ():
            name = replicate_name(ablation, seed)
            what = f"replicate metrics (`dvc repro evaluate_seed@{ablation}-{seed}-{split}`)"
            metrics.append(read_json(metrics_dir / REPLICATES / name / f"{split}.json", what))
            seeds.append(seed)
            files.append(results.ranks_dir / REPLICATES / name / f"{split}.npz")
        runs[ablation, split] = SeedRuns(ablation, split, tuple(seeds), tuple(metrics), tuple(files))
    return runs


def seed_table(results: Results, runs: dict[tuple[str, str], SeedRuns]) -> Table:
    """Per replicated ablation and split: each metric's mean ± sd over the training seeds, and every seed's rsum."""
    rows = []
    for (ablation, split), r in runs.items():
        if len(r.seeds) < 2:
            continue
        ours = results.get(ablation, split)
        row: dict[str, Any] = {
            "split": split_label(split),
            "method": ours.method,
            "ablation": ablation,
            "seeds": len(r.seeds),
        }
        for key in CI_KEYS:
            row[f"{key}_mean"], row[f"{key}_sd"] = r.mean_sd(key)
        row.update({f"rsum_seed{s}": v for s, v in zip(r.seeds, r.values("rsum"), strict=True)})
        rows.append(row)
    long = pd.DataFrame(rows)
    wide = pd.DataFrame(
        [
            {
                "split": row["split"],
                "method": row["method"],
                "seeds": row["seeds"],
                **{key: f"{row[f'{key}_mean']:.1f} ± {row[f'{key}_sd']:.1f}" for key in CI_KEYS},
            }
            for row in rows
        ]
    )
    notes = (
        "Mean ± sample sd over training seeds (the run of `train.seed` and the replicates of params.yaml "
        "`replicates`). The sd is what a rerun with another seed moves a number by; the 95% CIs of the other tables "
        "come from resampling test images of one run and leave it out.",
    )
    return Table("Training-seed variance", long, wide, notes)
