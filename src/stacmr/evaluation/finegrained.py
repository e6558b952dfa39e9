"""Scores for ranking: dense cosine blocks, or a fine-grained family's set similarity over the whole gallery,
computed once in tiles of bounded memory, on the device that holds the embeddings.

Fine-grained embeddings (`VectorSets`: images (N, R, E), captions (M, L, E)) stay on the device they were encoded
on, once; a tile gathers only its own images (a, R, E) and captions (b, L, E), never a copy of the whole gallery.
A tile's working set is its (a·R) × (b·L) float32 word-region products, at most `max_tile_bytes`; its (a, b) scores
go into the block on the same device (`device_ranking.DeviceSimilarity`), never copied to the host tile by tile.
Each score costs R·L·E multiply-adds, so when the (N, M) float32 matrix fits in `max_matrix_bytes` (4·N·M bytes:
20 MB for CTC-1K, 500 MB for CTC-5K's 5,000 × 25,000) the scores are computed once into it and both rank directions
read it: a numpy array from sets on the CPU, counted by `ranking.py`; a tensor held on a GPU, counted there by
`device_ranking.py`. A larger gallery is ranked from the tiled blocks, memory bounded whatever its size: on the host
each direction computes its own blocks (twice the work), on a GPU the one pass of `device_ranking.py` computes every
score once.

Dense embeddings are numpy arrays on the CPU (`ranking.dense_similarity`, counted on the host) and tensors on a GPU
(`DeviceSimilarity.dense`: products on the device, counted there).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from stacmr.evaluation.device_ranking import DeviceSimilarity, Index
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
) -> DeviceSimilarity:
    """The blocks of `score` (a family's `similarity`) for set embeddings, tile by tile on the sets' device; called
    with numpy indices, the block plug of `ranking.py`."""
    device = img.emb.device
    regions, words = img.emb.shape[1], cap.emb.shape[1]
    images, captions = torch.arange(len(img), device=device), torch.arange(len(cap), device=device)

    @torch.inference_mode()
    def block(rows: Index, cols: Index) -> Tensor:
        rows, cols = images[rows], captions[cols]
        out = torch.empty(len(rows), len(cols), device=device)
        step_i, step_c = tile_shape(regions, words, len(rows), max_tile_bytes)
        for a in range(0, len(rows), step_i):
            tile_img = img.take(rows[a : a + step_i])
            for b in range(0, len(cols), step_c):
                out[a : a + step_i, b : b + step_c] = score(tile_img, cap.take(cols[b : b + step_c]))
        return out

    return DeviceSimilarity(block, device)


def ranking_scores(
    model: RetrievalModel, enc: Encoded, max_tile_bytes: int, max_matrix_bytes: int = DEFAULT_MATRIX_BYTES
) -> Similarity | np.ndarray:
    """What `metrics.ranks` takes for `enc`. Dense embeddings: cosine blocks, of numpy arrays on the CPU, computed on
    the device for tensors (`Encoded` keeps them there on a GPU). A fine-grained family: its (N, M) score matrix when
    it fits in `max_matrix_bytes` (a numpy array from CPU sets, held on the device from a GPU's), else its tiled
    blocks."""
    if isinstance(enc.img_emb, Tensor):
        return DeviceSimilarity.dense(enc.img_emb, enc.cap_emb)
    if isinstance(enc.img_emb, VectorSets):
        blocks = sharded_similarity(model.similarity, enc.img_emb, enc.cap_emb, max_tile_bytes)
        n, m = len(enc.img_emb), len(enc.cap_emb)
        if 4 * n * m > max_matrix_bytes:
            return blocks
        return blocks.held() if blocks.on_gpu else blocks(np.arange(n), np.arange(m))
    return dense_similarity(enc.img_emb, enc.cap_emb)
