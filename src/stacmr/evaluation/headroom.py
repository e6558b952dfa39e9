"""How much the scene text could add: the text-match control (`textmatch`) fused with a visual baseline, its weight
chosen on the validation split, then evaluated on a test split exactly as a model is (ranks, metrics, bootstrap CIs).

`control_weight` picks the weight on val; `evaluate_control` applies it to another split. Each returns plain data
for the headroom metrics JSON; the per-query ranks go to the ranks file for the report's paired comparisons.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stacmr.evaluation.encode import Encoded
from stacmr.evaluation.evaluate import Bootstrap, Budget
from stacmr.evaluation.finegrained import ranking_scores
from stacmr.evaluation.metrics import ranks, summarize
from stacmr.evaluation.statistics import bootstrap_ci
from stacmr.evaluation.textmatch import TextMatch, choose_weight, fused_similarity
from stacmr.models import RetrievalModel

VARIANTS = {"exact": False, "fuzzy": True}  # control name → fuzzy matching


def control_weight(
    model: RetrievalModel,
    enc: Encoded,
    match: TextMatch,
    weights: tuple[float, ...],
    budget: Budget,
) -> tuple[float, dict[str, float]]:
    """(the best weight, {weight: rsum}) of baseline + weight × match on `enc`, which must be the VALIDATION split."""
    base = ranking_scores(model, enc, budget.tile_bytes, budget.matrix_bytes)
    best, rsums = choose_weight(base, match, len(enc.img_emb), enc.caption_image, weights, budget.block_bytes)
    return best, {f"{w:g}": rsum for w, rsum in rsums.items()}


def evaluate_control(
    model: RetrievalModel,
    enc: Encoded,
    match: TextMatch,
    weight: float,
    budget: Budget,
    bootstrap: Bootstrap,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(metrics with `ci95`, {"i2t", "t2i"} ranks) of baseline + weight × match on `enc` (a test split)."""
    base = ranking_scores(model, enc, budget.tile_bytes, budget.matrix_bytes)
    # the fused block holds three arrays of its size (`fused_similarity`): half the budget keeps the bound
    fused = fused_similarity(base, match, weight)
    i2t, t2i = ranks(fused, len(enc.img_emb), enc.caption_image, budget.block_bytes // 2)
    ci95 = bootstrap_ci(i2t, t2i, enc.caption_image, bootstrap.resamples, bootstrap.seed)
    metrics = {**summarize(i2t, t2i), "ci95": ci95}
    return metrics, {"i2t": i2t, "t2i": t2i}
