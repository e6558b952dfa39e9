"""Neighbour batches: an epoch's caption order that keeps clusters of visually similar images together.

In random batches of 128 a caption that names scene text almost never meets the images that only its text tells apart
(its group mates: same objects and attributes, other text), the very negatives that reward reading. Given clusters of
visual neighbours (features/neighbours.py, computed once from raw region features), this order puts each cluster's
images next to each other, so a batch window holds whole clusters. Reads and writes nothing: a function of
(cluster, captions per image, seed, epoch) only, so a resumed run sees exactly the batches an uninterrupted one would
(as `batches.epoch_order`, the random order, does). Captions are flat indices, image i's k-th caption is i·C + k.
"""

from __future__ import annotations

import numpy as np

# a third seed word: the stream of [seed, epoch, tag] never coincides with batches.epoch_order's [seed, epoch]
_TAG = 0x6E656967  # "neig"


def neighbour_order(cluster: np.ndarray, captions_per_image: int, seed: int, epoch: int) -> np.ndarray:
    """The caption order of one epoch: (N·C,) int64, a permutation of every caption index.

    cluster (N,): any integer cluster id per image. The epoch is C rounds of N captions; each image's C captions are
    spread over the rounds by a per-image random permutation, so every round holds exactly one caption of every image
    (no image twice). Within a round the clusters come in a random order and each contributes one caption of each of
    its images consecutively, members in random order."""
    cluster = np.asarray(cluster)
    n, c = len(cluster), captions_per_image
    if c < 1:
        raise ValueError(f"neighbour order: captions_per_image must be >= 1, got {c}")
    rng = np.random.default_rng([seed, epoch, _TAG])
    _, member_of = np.unique(cluster, return_inverse=True)
    n_clusters = int(member_of.max()) + 1 if n else 0
    caption_in_round = rng.permuted(np.tile(np.arange(c), (n, 1)), axis=1)  # (N, C): image i's caption in round r
    rounds = []
    for r in range(c):
        cluster_rank = rng.permutation(n_clusters)  # position of each cluster in this round
        member_rank = rng.permutation(n)  # order of images within their cluster
        images = np.lexsort((member_rank, cluster_rank[member_of]))
        rounds.append(images * c + caption_in_round[images, r])
    return np.concatenate(rounds).astype(np.int64) if rounds else np.zeros(0, dtype=np.int64)
