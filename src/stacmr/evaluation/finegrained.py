"""Scores for ranking: dense cosine blocks, or a fine-grained family's set similarity over the whole gallery,
computed once in tiles of bounded memory.

Fine-grained embeddings (`VectorSets`: images (N, R, E), captions (M, L, E)) stay on the device they were encoded
on, once; a tile gathers only its own images (a, R, E) and captions (b, L, E), never a copy of the whole gallery.
A tile's working set is its (a·R) × (b·L) float32 word-region products, at most `max_tile_bytes`; its (a, b) scores
come back to the host as float32. Each score costs R·L·E multiply-adds, so when the (N, M) float32 host matrix fits
in `max_matrix_bytes` (4·N·M bytes: 20 MB for CTC-1K, 500 MB for CTC-5K's 5,000 × 25,000) the scores are computed
once into it and both rank directions read it. A larger gallery goes through the block plug of `ranking.py` instead:
each direction computes its own blocks (twice the work), and memory stays bounded whatever the gallery size.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from stacmr.evaluation.encode import Encoded
from stacmr.evaluation.ranking import Similarity, dense_similarity
from stacmr.models import RetrievalModel, VectorSets

DEFAULT_MATRIX_BYTES = 2048 << 20


def tile_shape(regions: int, words: int, rows: int, max_tile_bytes: int) -> tuple[int, int]:
    """(images, captions) per tile: the product matrix (images·regions) × (captions·words) as square as the budget
    allows (both sides long enough for an efficient matrix product), at most `max_tile_bytes` of float32."""
    budget = max(1, max_tile_bytes // 4)
    images = max(1, min(rows, math.isqrt(budget) // regions))
    return images, max(1, budget // (images * regions * words))


def sharded_similarity(
    score: Callable[[VectorSets, VectorSets], Tensor], img: VectorSets, cap: VectorSets, max_tile_bytes: int
) -> Similarity:
    """The block plug of `ranking.py` for set embeddings: `score` (a family's `similarity`) tile by tile."""
    device = img.emb.device
    regions, words = img.emb.shape[1], cap.emb.shape[1]

    @torch.inference_mode()
    def block(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), len(cols)), dtype=np.float32)
        rows_t, cols_t = torch.from_numpy(rows).to(device), torch.from_numpy(cols).to(device)
        step_i, step_c = tile_shape(regions, words, len(rows), max_tile_bytes)
        for a in range(0, len(rows), step_i):
            tile_img = img.take(rows_t[a : a + step_i])
            for b in range(0, len(cols), step_c):
                tile = score(tile_img, cap.take(cols_t[b : b + step_c]))
                out[a : a + step_i, b : b + step_c] = tile.float().cpu().numpy()
        return out

    return block


def ranking_scores(
    model: RetrievalModel, enc: Encoded, max_tile_bytes: int, max_matrix_bytes: int = DEFAULT_MATRIX_BYTES
) -> Similarity | np.ndarray:
    """What `metrics.ranks` takes for `enc`: dense cosine blocks, or a fine-grained family's (N, M) score matrix
    when it fits in `max_matrix_bytes`, else its tiled blocks."""
    if isinstance(enc.img_emb, VectorSets):
        block = sharded_similarity(model.similarity, enc.img_emb, enc.cap_emb, max_tile_bytes)
        n, m = len(enc.img_emb), len(enc.cap_emb)
        return block(np.arange(n), np.arange(m)) if 4 * n * m <= max_matrix_bytes else block
    return dense_similarity(enc.img_emb, enc.cap_emb)
