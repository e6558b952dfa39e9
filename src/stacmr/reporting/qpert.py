"""Q-Pert on its host (issue 18): each ablation of `evaluate.qpert_ablations` evaluated as trained (the host) and
with Q-Pert on at inference, on the same checkpoint, with each projector form (`evaluate_qpert` stages:
`<metrics>/qpert/<ablation>-<form>/<split>.json`): R@1/5/10 both ways and rsum with its 95% CI, and the difference
Q-Pert makes. Only the ablations of the report's scope are shown.
"""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pandas as pd

from stacmr.data.sources import split_label
from stacmr.evaluation.metrics import METRICS, RSUM
from stacmr.jsonfile import read_json
from stacmr.models.qpert import Projector
from stacmr.reporting.render import Table
from stacmr.reporting.results import Results

HOST = "host"


def qpert_table(results: Results, metrics_dir: Path) -> Table:
    """Per Q-Pert ablation of the scope and split: the host, then the host + Q-Pert per projector form."""
    params = results.params
    recalls = [m for m in METRICS if m.in_rsum]
    rows, wide = [], []
    for ablation in (a for a in params.evaluate.qpert_ablations if a in params.evaluate.ablations):
        for split in params.evaluate.splits:
            host = results.get(ablation, split)
            variants = {HOST: host.metrics}
            for form in get_args(Projector):
                path = Path(metrics_dir) / "qpert" / f"{ablation}-{form}" / f"{split}.json"
                variants[form] = read_json(path, "Q-Pert metrics file (`dvc repro evaluate_qpert` writes it)")
            for variant, metrics in variants.items():
                low, high = metrics["ci95"][RSUM]
                delta = metrics[RSUM] - host.value(RSUM)
                for key in [m.name for m in recalls] + [RSUM]:
                    rows.append(
                        {
                            "ablation": ablation,
                            "family": host.label,
                            "split": split_label(split),
                            "qpert": variant,
                            "metric": key,
                            "value": float(metrics[key]),
                            "checkpoint_sha256": host.checkpoint_sha256,
                        }
                    )
                wide.append(
                    {
                        "split": split_label(split),
                        "ablation": ablation,
                        "Q-Pert": "off (host)" if variant == HOST else f"on, {variant} projector",
                        **{m.label: f"{float(metrics[m.name]):.1f}" for m in recalls},
                        "rsum (95% CI)": f"{metrics[RSUM]:.1f} [{low:.1f}, {high:.1f}]",
                        "Δ rsum": "—" if variant == HOST else f"{delta:+.1f}",
                    }
                )
    notes = (
        "Q-Pert is training-free: each row of an ablation is the same checkpoint, encoded with the learned queries "
        "as trained (host) or perturbed toward each object's key subspace (models.<family>.qpert_alpha, "
        "qpert_energy, qpert_weighting as in params.yaml). Projector forms: intended = V_r V_rᵀ onto the leading "
        "eigenvectors (the paper's); released = the release code's row-masked form. Objects are the image's "
        "regions (and OCR tokens in qformer_st) with a box; region features, not BLIP-2's pixels.",
    )
    return Table(
        "Q-Pert on its host: the same checkpoint without and with the perturbation",
        pd.DataFrame(rows),
        pd.DataFrame(wide),
        notes,
    )
