"""Score a model on a split: encode, scores, ranks (sharded, exact), metrics, on the whole split and on its explicit
images; with bootstrap CIs and the per-query ranks for the evaluate stage, without CIs for the training loop's
validation. Both run `evaluate_split`, under the same memory `Budget` (params.yaml `evaluate`). The store is encoded
at the run's precision (`stacmr.models.precision.computing`: bf16 encodes under autocast); the embeddings come out in
float32 (`encode.encode_store`), and the scores and ranks are computed from them in float32, outside that scope, so
the ranks are exact on the scores the encoding gives.

Output (the DVC metrics JSON): the flat keys of `metrics.summarize`, with `Bootstrap` settings `ci95: {key: [low,
high]}` for every key of `metrics.CI_KEYS`, and `explicit: {...}` with the same for the split's explicit images. The
per-query ranks are returned too, to be saved for paired tests, with each caption's top-k images of the whole split
(`t2i_top`, for the qualitative figure) and each caption's image (`caption_image`, for per-image statistics).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from stacmr.evaluation.encode import Encoded, encode_store
from stacmr.evaluation.finegrained import ranking_scores
from stacmr.evaluation.metrics import ranks, summarize
from stacmr.evaluation.statistics import bootstrap_ci
from stacmr.features.store import FeatureStore
from stacmr.features.vocab import Vocabulary
from stacmr.models import RetrievalModel
from stacmr.models.precision import computing
from stacmr.params import EvaluateParams

EXPLICIT = "explicit"  # the explicit images' metrics: a nested dict in the metrics JSON, a key prefix in a flat one


@dataclass(frozen=True)
class Budget:
    """Memory bounds of scoring and ranking a split; they set block sizes only, never a rank."""

    block_bytes: int  # one similarity block of the rank computation (`metrics.ranks`)
    tile_bytes: int  # one fine-grained tile of word-region products (`finegrained.ranking_scores`)
    matrix_bytes: int  # a fine-grained family's whole (N, M) score matrix, held when it fits

    @classmethod
    def from_params(cls, params: EvaluateParams) -> Budget:
        return cls(params.max_block_mb << 20, params.finegrained_tile_mb << 20, params.finegrained_matrix_mb << 20)


@dataclass(frozen=True)
class Bootstrap:
    """Settings of the bootstrap confidence intervals (`statistics.bootstrap_ci`)."""

    resamples: int
    seed: int

    @classmethod
    def from_params(cls, params: EvaluateParams) -> Bootstrap:
        return cls(params.bootstrap_resamples, params.seed)


def _report(
    model: RetrievalModel, enc: Encoded, budget: Budget, bootstrap: Bootstrap | None, top_k: int = 0
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    n_images = len(enc.img_emb)
    top = np.empty((len(enc.caption_image), min(top_k, n_images)), dtype=np.int64) if top_k else None
    scores = ranking_scores(model, enc, budget.tile_bytes, budget.matrix_bytes)
    i2t, t2i = ranks(scores, n_images, enc.caption_image, budget.block_bytes, top)
    saved = {"i2t": i2t, "t2i": t2i} | ({"t2i_top": top} if top is not None else {})
    metrics: dict[str, Any] = summarize(i2t, t2i)
    if bootstrap is not None:
        metrics["ci95"] = bootstrap_ci(i2t, t2i, enc.caption_image, bootstrap.resamples, bootstrap.seed)
    return metrics, saved


def evaluate_split(
    model: RetrievalModel,
    store: FeatureStore,
    vocab: Vocabulary,
    max_words: int,
    device: torch.device,
    precision: str,
    budget: Budget,
    bootstrap: Bootstrap | None = None,
    top_k: int = 0,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(metrics JSON content, ranks {"i2t", "t2i", "t2i_top" (n_captions, top_k) image indices best first (with
    `top_k`), "caption_image" (n_captions,) each caption's image index, "explicit_i2t", "explicit_t2i",
    "explicit_images"}); CIs only with `bootstrap`. `precision`: the run's `train.precision`, for the encoding."""
    with computing(precision, device):
        enc = encode_store(model, store, vocab, max_words, device)
    metrics, saved = _report(model, enc, budget, bootstrap, top_k)
    saved["caption_image"] = enc.caption_image
    explicit = np.flatnonzero(store["explicit"][:])
    saved["explicit_images"] = explicit
    if len(explicit):
        metrics[EXPLICIT], sub = _report(model, enc.subset(explicit), budget, bootstrap)
        saved.update({f"{EXPLICIT}_{k}": v for k, v in sub.items()})
    return metrics, saved


def flat_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """`evaluate_split`'s metrics without CIs as one flat dict (a history row's): the explicit images' prefixed
    `explicit_`."""
    whole = {k: v for k, v in metrics.items() if k != EXPLICIT}
    return {**whole, **{f"{EXPLICIT}_{k}": v for k, v in metrics.get(EXPLICIT, {}).items()}}


def nested_metrics(flat: dict[str, float]) -> dict[str, Any]:
    """The inverse of `flat_metrics`: the metrics JSON layout, the explicit images' under `explicit`."""
    prefix = f"{EXPLICIT}_"
    whole = {k: v for k, v in flat.items() if not k.startswith(prefix)}
    explicit = {k.removeprefix(prefix): v for k, v in flat.items() if k.startswith(prefix)}
    return {**whole, EXPLICIT: explicit} if explicit else whole
