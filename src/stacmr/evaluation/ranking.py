"""Exact retrieval ranks from image and caption embeddings, computed in shards so that memory is bounded: the host
path, in numpy, for scores on the CPU (numpy embeddings or matrices, any block function that returns numpy). Scores
on a GPU are counted there by `device_ranking.py`, with the same tie rule and the same outputs; `metrics.ranks`
picks the path.

Tie rule (deterministic, tested): among equal scores the item with the *higher* index ranks first, so the rank of
gallery item j for a query with scores s is
  rank(j) = #{k : s_k > s_j} + #{k : s_k == s_j and k > j}          (0-based).
The release ranks with `np.argsort(d)[::-1]`, numpy's default (unstable) sort, which orders ties arbitrarily; ours is
what that line gives with `kind="stable"`. Ties are real where captions repeat across images (the synthetic splits:
1,458 distinct captions of 1,500 on dev), and there the release loop's i2t R@1 can differ from ours by up to 0.67.
Ranking is counting: no row is sorted. i2t: an image's rank is the best rank of its ground-truth captions (the one
with the highest (score, index)); t2i: a caption's rank is its image's rank among all images.

Each direction takes one pass over blocks of the similarity matrix: rows (images) for i2t, columns (captions) for t2i.
A ground-truth score and the scores it is compared with always come from the same block, so the counts are exact
whatever the floating-point path. `max_block_bytes` bounds the float32 block (plus a boolean mask of the same
shape); the full matrix (5,000 × 25,000 for CTC-5K) is never held. `similarity(rows, cols)` computes any block, so
word-region models plug their fine-grained scores into the same path.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Similarity = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (image rows, caption cols) → (len(rows), len(cols))


def dense_similarity(img_emb: np.ndarray, cap_emb: np.ndarray) -> Similarity:
    """Cosine blocks of l2-normalised embeddings: img_emb (N, E), cap_emb (M, E), float32."""

    def block(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return img_emb[rows] @ cap_emb[cols].T

    return block


def _block_size(other: int, max_block_bytes: int, bytes_per_element: int = 5) -> int:
    return max(1, max_block_bytes // (bytes_per_element * max(other, 1)))  # default: float32 scores + bool comparisons


def caption_groups(caption_image: np.ndarray, n_images: int) -> tuple[np.ndarray, np.ndarray]:
    """(order, starts): the captions of image i are order[starts[i] : starts[i + 1]], in index order. Refuses an image
    without a caption (it has no rank)."""
    order = np.argsort(caption_image, kind="stable")
    starts = np.searchsorted(caption_image[order], np.arange(n_images + 1))
    empty = np.flatnonzero(starts[1:] == starts[:-1])
    if len(empty):
        raise ValueError(f"image {empty[0]} has no caption")
    return order, starts


def check_top_k(top_out: np.ndarray | None, n_images: int) -> None:
    """Refuses a top-k output (n_captions, k) with k outside [1, n_images]."""
    if top_out is not None and not 1 <= top_out.shape[1] <= n_images:
        raise ValueError(f"top-k needs 1 <= k <= {n_images} images, got k = {top_out.shape[1]}")


def _ties_after(s: np.ndarray, g: np.ndarray, gt: np.ndarray, axis: int) -> np.ndarray:
    """Per query (along `axis`), how many scores equal its ground truth `g` at an index after `gt`. Ties beyond the
    ground truth itself are rare, so only the queries that have any get the index comparison."""
    equal = s == g
    out = np.count_nonzero(equal, axis=axis) - 1  # the ground truth equals itself
    for q in np.flatnonzero(out):
        line = equal[q] if axis == 1 else equal[:, q]
        out[q] = np.count_nonzero(line[gt[q] + 1 :])
    return out


def i2t_ranks_sharded(
    similarity: Similarity, n_images: int, caption_image: np.ndarray, max_block_bytes: int
) -> np.ndarray:
    """(n_images,) 0-based rank of each image's best ground-truth caption."""
    n_captions = len(caption_image)
    cols = np.arange(n_captions)
    order, starts = caption_groups(caption_image, n_images)
    ranks = np.empty(n_images, dtype=np.int64)
    step = _block_size(n_captions, max_block_bytes)
    for a in range(0, n_images, step):
        rows = np.arange(a, min(a + step, n_images))
        s = similarity(rows, cols)
        # the best ground truth of each row: highest score, then highest index (it has the fewest ties after it)
        best = np.empty(len(rows), dtype=np.int64)
        for r, image in enumerate(rows):
            gts = order[starts[image] : starts[image + 1]]
            scores = s[r, gts]
            best[r] = gts[np.flatnonzero(scores == scores.max()).max()]
        g = s[np.arange(len(rows)), best][:, None]
        ranks[rows] = np.count_nonzero(s > g, axis=1) + _ties_after(s, g, best, axis=1)
    return ranks


def _top_rows(s: np.ndarray, k: int) -> np.ndarray:
    """(len(cols), k) the k best rows of each column of a block, best first, in the rank order above: higher score
    first, then higher index. argpartition finds them; only columns with a tie at the k-th score are redone exactly."""
    neg = np.negative(s.T, order="C")  # (cols, rows): one contiguous row per caption
    idx = np.argpartition(neg, k - 1, axis=1)[:, :k]  # unordered; ties at the boundary broken arbitrarily
    vals = np.take_along_axis(neg, idx, axis=1)
    kth = vals.max(axis=1, keepdims=True)
    for c in np.flatnonzero(np.count_nonzero(neg <= kth, axis=1) > k):
        tied = np.flatnonzero(neg[c] <= kth[c])
        idx[c] = tied[np.lexsort((-tied, neg[c, tied]))[:k]]
    vals = np.take_along_axis(neg, idx, axis=1)
    return np.take_along_axis(idx, np.lexsort((-idx, vals), axis=1), axis=1)


def t2i_ranks_sharded(
    similarity: Similarity,
    n_images: int,
    caption_image: np.ndarray,
    max_block_bytes: int,
    top_out: np.ndarray | None = None,
) -> np.ndarray:
    """(n_captions,) 0-based rank of each caption's image. With `top_out` (n_captions, k) int64, also fills each
    caption's k best images, best first (same tie rule), from the same blocks (the qualitative figure's top-5)."""
    n_captions = len(caption_image)
    check_top_k(top_out, n_images)
    rows = np.arange(n_images)
    ranks = np.empty(n_captions, dtype=np.int64)
    # the top-k search adds a negated float32 copy and argpartition's int64 indices per element
    step = _block_size(n_images, max_block_bytes, 5 if top_out is None else 17)
    for a in range(0, n_captions, step):
        cols = np.arange(a, min(a + step, n_captions))
        s = similarity(rows, cols)
        gt_rows = caption_image[cols]
        g = s[gt_rows, np.arange(len(cols))][None, :]
        ranks[cols] = np.count_nonzero(s > g, axis=0) + _ties_after(s, g, gt_rows, axis=0)
        if top_out is not None:
            top_out[cols] = _top_rows(s, top_out.shape[1])
    return ranks
