"""The OCR-noise sweep: how the word encoders (fastText vectors vs the oCLIP-style character encoder) hold up as the
OCR misreads more characters (`synthetic.ocr_char_error`), from DVC experiments.

The sweep runs as DVC experiments, one per noise level (README, "OCR-noise sweep"); `stacmr sweep` lists them
(`dvc.api.exp_show`: one flat row per experiment, with its revision and params), reads each one's evaluate metrics
files at its revision (plain git-tracked outputs, not DVC metrics) and writes `reports/sweeps/ocr_noise.csv`, one
row per (noise, ablation, split) with rsum and the "does it read?" scores over the true groups. The report draws
`ocr_noise_figure` when that file exists.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from stacmr.data.sources import split_label
from stacmr.errors import StacmrError

NOISE = "synthetic.ocr_char_error"
COLUMNS = ("ocr_char_error", "experiment", "ablation", "split", "rsum", "within_group", "ocr_swap")
_KEYS = {
    "rsum": ("rsum",),
    "within_group": ("reading", "true", "within_group"),
    "ocr_swap": ("reading", "true", "ocr_swap"),
}
# (revision from exp_show, ablation, split) → that evaluate stage's metrics JSON there, None when it has none
MetricsReader = Callable[[str, str, str], dict[str, Any] | None]


def _value(metrics: dict[str, Any], path: tuple[str, ...]) -> float | None:
    for key in path:
        if not isinstance(metrics, dict) or key not in metrics:
            return None
        metrics = metrics[key]
    return None if metrics is None else float(metrics)


def sweep_rows(
    experiments: list[dict[str, Any]], ablations: tuple[str, ...], splits: tuple[str, ...], read: MetricsReader
) -> pd.DataFrame:
    """The sweep table from `dvc.api.exp_show()` rows: every finished experiment with a noise level, one row per
    (experiment, ablation, split) whose metrics `read` finds at the experiment's revision."""
    rows = []
    for exp in experiments:
        noise = next((v for k, v in exp.items() if k == NOISE or k.endswith(":" + NOISE)), None)
        # a running or queued experiment has no results of its own yet, a failed one none at all
        if noise is None or exp.get("State") in ("Running", "Queued", "Failed"):
            continue
        name = exp.get("Experiment") or exp.get("rev") or "workspace"
        for ablation in ablations:
            for split in splits:
                metrics = read(exp.get("rev") or "workspace", ablation, split)
                if metrics is None:
                    continue
                values = {column: _value(metrics, path) for column, path in _KEYS.items()}
                rows.append(
                    {"ocr_char_error": float(noise), "experiment": name, "ablation": ablation, "split": split, **values}
                )
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    # the workspace repeats the experiment it was last run as (or the commit's own numbers): keep a named one
    table["_workspace"] = table["experiment"] == "workspace"
    table = table.sort_values(["ablation", "split", "ocr_char_error", "_workspace", "experiment"])
    table = table.drop_duplicates(["ablation", "split", "ocr_char_error"]).drop(columns="_workspace")
    return table.reset_index(drop=True)


def read_sweep(path: Path) -> pd.DataFrame | None:
    """The collected sweep, or None when it has not been run (the report then leaves the figure out)."""
    if not path.exists():
        return None
    table = pd.read_csv(path)
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise StacmrError(f"{path}: not an OCR-noise sweep table (missing columns {missing}); rerun `stacmr sweep`")
    return table


def ocr_noise_figure(table: pd.DataFrame, synthetic: bool) -> plt.Figure:
    """rsum (left) and within-group choice over the true groups (right) against the OCR character error rate,
    one line per ablation and split."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    for (ablation, split), group in table.groupby(["ablation", "split"], sort=True):
        label = f"{ablation}, {split_label(split)}"
        group = group.sort_values("ocr_char_error")
        axes[0].plot(group["ocr_char_error"], group["rsum"], marker="o", label=label)
        axes[1].plot(group["ocr_char_error"], group["within_group"], marker="o", label=label)
    axes[0].set(xlabel="OCR character error rate", ylabel="rsum", title="Retrieval")
    axes[1].set(xlabel="OCR character error rate", ylabel="within-group choice", title="Does it read? (true groups)")
    axes[1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize="small", frameon=False)
    if synthetic:
        fig.suptitle(
            "OCR-noise sweep on the synthetic CTC world (absolute values not comparable to the paper)",
            fontsize="medium",
        )
    return fig
