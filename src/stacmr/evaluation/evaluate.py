"""Evaluate a model on a split: ranks (sharded, exact), metrics, bootstrap CIs, and the explicit subset.

Output (the DVC metrics JSON): the flat keys of `metrics.summarize`, `ci95: {key: [low, high]}` for every recall and
rsum, and `explicit: {...}` with the same for the split's explicit images. The per-query ranks are returned too, to
be saved for paired tests, with each caption's top-k images of the whole split (`t2i_top`, for the qualitative figure)
and each caption's image (`caption_image`, for per-image statistics).
"""

from __future__ import annotations

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


def _report(
    model: RetrievalModel,
    enc: Encoded,
    max_block_bytes: int,
    max_tile_bytes: int,
    max_matrix_bytes: int,
    resamples: int,
    seed: int,
    top_k: int = 0,
) -> tuple[dict[str, Any], dict]:
    n_images = len(enc.img_emb)
    top = np.empty((len(enc.caption_image), min(top_k, n_images)), dtype=np.int64) if top_k else None
    scores = ranking_scores(model, enc, max_tile_bytes, max_matrix_bytes)
    i2t, t2i = ranks(scores, n_images, enc.caption_image, max_block_bytes, top)
    saved = {"i2t": i2t, "t2i": t2i} | ({"t2i_top": top} if top is not None else {})
    return {**summarize(i2t, t2i), "ci95": bootstrap_ci(i2t, t2i, enc.caption_image, resamples, seed)}, saved


def evaluate_split(
    model: RetrievalModel,
    store: FeatureStore,
    vocab: Vocabulary,
    max_words: int,
    device: torch.device,
    max_block_bytes: int,
    max_tile_bytes: int,
    max_matrix_bytes: int,
    resamples: int,
    seed: int,
    top_k: int,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(metrics JSON content, ranks {"i2t", "t2i", "t2i_top" (n_captions, top_k) image indices best first,
    "caption_image" (n_captions,) each caption's image index, "explicit_i2t", "explicit_t2i", "explicit_images"})."""
    enc = encode_store(model, store, vocab, max_words, device)
    metrics, saved = _report(model, enc, max_block_bytes, max_tile_bytes, max_matrix_bytes, resamples, seed, top_k)
    saved["caption_image"] = enc.caption_image
    explicit = np.flatnonzero(store["explicit"][:])
    saved["explicit_images"] = explicit
    if len(explicit):
        metrics["explicit"], sub = _report(
            model, enc.subset(explicit), max_block_bytes, max_tile_bytes, max_matrix_bytes, resamples, seed
        )
        saved.update({f"explicit_{k}": v for k, v in sub.items()})
    return metrics, saved
