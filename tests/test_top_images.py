"""Each caption's top-k images from the sharded t2i pass, against a plain argsort oracle with the release's tie rule
(`np.argsort(d)[::-1]` with a stable sort: among equal scores the higher index first)."""

from __future__ import annotations

import numpy as np
import pytest

from stacmr.evaluation.metrics import ranks


def _oracle_top(matrix: np.ndarray, k: int) -> np.ndarray:
    return np.stack([np.argsort(matrix[:, j], kind="stable")[::-1][:k] for j in range(matrix.shape[1])])


@pytest.mark.parametrize("block_bytes", [64, 4096, 1 << 20])
@pytest.mark.parametrize("k", [1, 5, 12])
def test_top_k_matches_argsort_with_ties(block_bytes, k):
    rng = np.random.default_rng(k)
    n_images, per_image = 12, 5
    # integer scores in a small range: many ties, at the k-th place too
    matrix = rng.integers(0, 4, size=(n_images, n_images * per_image)).astype(np.float32)
    caption_image = np.repeat(np.arange(n_images), per_image)
    top = np.empty((n_images * per_image, k), dtype=np.int64)
    _, t2i = ranks(matrix, n_images, caption_image, block_bytes, t2i_top=top)
    np.testing.assert_array_equal(top, _oracle_top(matrix, k))
    # the ground truth is in the top k exactly when its rank is below k
    in_top = (top == caption_image[:, None]).any(axis=1)
    np.testing.assert_array_equal(in_top, t2i < k)


def test_top_k_on_continuous_scores():
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((40, 200)).astype(np.float32)
    top = np.empty((200, 5), dtype=np.int64)
    ranks(matrix, 40, np.repeat(np.arange(40), 5), 2048, t2i_top=top)
    np.testing.assert_array_equal(top, _oracle_top(matrix, 5))


def test_top_k_larger_than_the_gallery_is_refused():
    with pytest.raises(ValueError, match="top-k needs"):
        ranks(np.zeros((3, 6), np.float32), 3, np.repeat(np.arange(3), 2), t2i_top=np.empty((6, 4), np.int64))
