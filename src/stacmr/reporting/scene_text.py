"""The scene-text tables: does a family read the text, and how much of what the text could add does it capture?

Headroom table: per split, the text-match control (exact and fuzzy; `headroom` stage) fused with `report.baseline`,
and for every scene-text ablation with a visual-only counterpart its share of that headroom,
    share = (rsum(ablation) − rsum(counterpart)) / (rsum(control) − rsum(baseline)),
with a 95% bootstrap interval that resamples images (each bringing its captions) jointly for the four systems, and
the paired sign-flip test of ablation vs counterpart (`comparison.paired_difference`).

Reading table: per ablation and split, the "does it read?" diagnostics the `evaluate` stage wrote (within-group
choice among visual look-alikes, OCR swap), over the visual-neighbour groups and, where known, the true groups,
beside their chance levels; and how well the visual clusters agree with the true groups (`neighbours` stage).

Reads `<metrics>/headroom/<split>.json`, `<ranks>/headroom/<split>.npz`, the evaluations in `Results`, and the
neighbours stage's `agreement.json`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stacmr.data.sources import CTC, split_label
from stacmr.errors import StacmrError
from stacmr.evaluation.headroom import VARIANTS
from stacmr.evaluation.statistics import Ranks, image_hits, image_weights
from stacmr.features.neighbours import AGREEMENT_FILE
from stacmr.jsonfile import read_json
from stacmr.params import ReportParams
from stacmr.reporting.comparison import paired_difference
from stacmr.reporting.render import Table
from stacmr.reporting.results import Results

HEADROOM = "headroom"  # the headroom stage's folder under the metrics and ranks folders


def share_interval(
    systems: list[Ranks], caption_image: np.ndarray, resamples: int, seed: int
) -> tuple[float, float, float]:
    """(share, low, high) of (A − B) / (C − D) in rsum for systems [A, B, C, D] given as (i2t, t2i) ranks on the same
    queries, with a 95% percentile interval from resampling images jointly (NaN where C − D is 0 in a resample)."""
    tables = [image_hits(i2t, t2i, caption_image) for i2t, t2i in systems]
    n = len(tables[0])
    point = [t.metric(np.ones((1, n)), "rsum")[0] for t in tables]
    samples = np.concatenate(
        [
            np.stack([t.metric(w, "rsum") for t in tables])
            for w in image_weights(np.random.default_rng(seed), n, resamples)
        ],
        axis=1,
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = (samples[0] - samples[1]) / (samples[2] - samples[3])
    ratios = ratios[np.isfinite(ratios)]
    share = float((point[0] - point[1]) / (point[2] - point[3])) if point[2] != point[3] else float("nan")
    if not len(ratios):
        return share, float("nan"), float("nan")
    return share, float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))


def _headroom_file(metrics_dir: Path, split: str) -> dict[str, Any]:
    return read_json(metrics_dir / HEADROOM / f"{split}.json", "headroom metrics (`dvc repro headroom` writes them)")


def _headroom_ranks(ranks_dir: Path, split: str) -> dict[str, np.ndarray]:
    path = ranks_dir / HEADROOM / f"{split}.npz"
    try:
        with np.load(path) as saved:
            return {key: saved[key] for key in saved.files}
    except (OSError, ValueError) as exc:
        raise StacmrError(f"{path}: no readable headroom ranks ({exc}); run `dvc repro headroom`") from None


def headroom_table(results: Results, report: ReportParams, metrics_dir: Path, resamples: int = 1000) -> Table:
    """Per split: the controls, then each scene-text ablation's gain over its counterpart and its headroom share."""
    params = results.params
    rows = []
    for split in params.evaluate.splits:
        controls = _headroom_file(metrics_dir, split)
        control_ranks = _headroom_ranks(results.ranks_dir, split)
        baseline = results.get(report.baseline, split)
        base_ranks = results.ranks(report.baseline, split)
        caption_image = base_ranks["caption_image"]
        for variant in VARIANTS:
            control = controls[variant]
            rows.append(
                {
                    "split": split_label(split),
                    "row": f"text-match control ({variant})",
                    "ablation": None,
                    "counterpart": report.baseline,
                    "rsum": control["rsum"],
                    "ci_low": control["ci95"]["rsum"][0],
                    "ci_high": control["ci95"]["rsum"][1],
                    "gain": control["rsum"] - baseline.value("rsum"),
                    "p_value": None,
                    "share": None,
                    "share_low": None,
                    "share_high": None,
                    "weight": control["weight"],
                    "dvc_stage": HEADROOM,
                }
            )
        for ablation in params.evaluate.ablations:
            counterpart = params.ablations[ablation].counterpart
            ours = results.get(ablation, split)
            if counterpart is None or not ours.scene_text or counterpart not in params.evaluate.ablations:
                continue
            gain, p = paired_difference(results, ablation, counterpart, split, "rsum", report.permutations, report.seed)
            a, b = results.ranks(ablation, split), results.ranks(counterpart, split)
            for variant in VARIANTS:
                c = (control_ranks[f"{variant}_i2t"], control_ranks[f"{variant}_t2i"])
                systems = [(a["i2t"], a["t2i"]), (b["i2t"], b["t2i"]), c, (base_ranks["i2t"], base_ranks["t2i"])]
                share, low, high = share_interval(systems, caption_image, resamples, report.seed)
                rows.append(
                    {
                        "split": split_label(split),
                        "row": ours.method,
                        "ablation": ablation,
                        "counterpart": counterpart,
                        "rsum": ours.value("rsum"),
                        "ci_low": ours.ci("rsum")[0],
                        "ci_high": ours.ci("rsum")[1],
                        "gain": gain,
                        "p_value": p,
                        "share": share,
                        "share_low": low,
                        "share_high": high,
                        "weight": None,
                        "control": variant,
                        "dvc_stage": ours.stage,
                    }
                )
    long = pd.DataFrame(rows)
    wide = []
    for r in long.itertuples():
        if r.ablation is None or pd.isna(r.ablation):
            detail = f"+{r.gain:.1f} over {r.counterpart} (weight {r.weight:g}, chosen on CTC val)"
            share = "—"
        else:
            detail = f"{r.gain:+.1f} vs {r.counterpart} (p = {r.p_value:.3g})"
            share = f"{100 * r.share:.0f}% [{100 * r.share_low:.0f}, {100 * r.share_high:.0f}] of {r.control}"
        wide.append(
            {
                "split": r.split,
                "row": r.row if r.ablation is None or pd.isna(r.ablation) else r.ablation,
                "rsum": f"{r.rsum:.1f} [{r.ci_low:.1f}, {r.ci_high:.1f}]",
                "difference": detail,
                "headroom captured": share,
            }
        )
    notes = (
        f"Control: {report.baseline}'s similarity + weight × (caption words found among the image's OCR strings; "
        "fuzzy: also at edit distance 1 for words of 4+ characters), weight chosen on CTC val only. Headroom "
        "captured: (ablation − its visual-only counterpart) / (control − baseline) in rsum, 95% interval from "
        "resampling images for the four systems at once.",
    )
    return Table(
        "Headroom: what the scene text could add, and what each scene-text family captures",
        long,
        pd.DataFrame(wide),
        notes,
    )


def _agreement(neighbours_dir: Path) -> dict[str, dict[str, float]]:
    path = neighbours_dir / AGREEMENT_FILE
    if not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def reading_table(results: Results, neighbours_dir: Path) -> Table:
    """Per ablation and split: within-group choice and OCR swap, beside chance, over visual and true groups."""
    rows = []
    for (ablation, split), ours in results.evaluated.items():
        for groups, diag in ours.metrics.get("reading", {}).items():
            rows.append(
                {
                    "ablation": ablation,
                    "family": ours.label,
                    "scene_text": ours.scene_text,
                    "split": split_label(split),
                    "groups": groups,
                    **diag,
                    "dvc_stage": ours.stage,
                }
            )
    long = pd.DataFrame(rows)

    def cell(value: Any, chance: Any, n: Any) -> str:
        if value is None or pd.isna(value):
            return "—"
        return f"{value:.2f} (chance {chance:.2f}, n = {int(n)})"

    wide = []
    for r in long.itertuples():
        wide.append(
            {
                "ablation": r.ablation,
                "scene text": "yes" if r.scene_text else "no",
                "split": r.split,
                "groups": r.groups,
                "within-group choice": cell(r.within_group, r.within_group_chance, r.within_group_queries),
                "OCR swap": cell(r.ocr_swap, r.ocr_swap_chance, r.ocr_swap_queries),
            }
        )
    agreement = _agreement(neighbours_dir)
    notes = [
        "Within-group choice: for captions that name a word of their image's OCR, how often their own image beats "
        "every group mate (same scene, other text). OCR swap: the OCR inputs rotated among group mates; how often "
        "the caption follows its OCR. A model that ignores the text sits at or below chance on both.",
        "Groups: 'visual' = model-free clusters of visual neighbours (`neighbours` stage; the only groups real data "
        "has); 'true' = the synthetic world's scene groups.",
    ]
    if agreement:
        notes.append(
            "Visual clusters vs true groups: "
            + "; ".join(
                f"{split_label(name.split('/')[-1]) if name.split('/')[0] == CTC.name else name}: neighbour precision "
                f"{a['neighbour_precision']:.2f}, cluster purity {a['cluster_purity']:.2f}, group recall "
                f"{a['group_recall']:.2f}"
                for name, a in sorted(agreement.items())
            )
        )
    return Table('"Does it read?" diagnostics', long, pd.DataFrame(wide), tuple(notes))
