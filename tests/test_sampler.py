"""Neighbour batches: the epoch order is a permutation drawn from (cluster, seed, epoch) alone, every round holds each
image once, and a cluster's images sit next to each other within a round."""

from __future__ import annotations

import numpy as np
import pytest

from stacmr.training.batches import epoch_order
from stacmr.training.sampler import neighbour_order

# 11 images in clusters of 1..4 with arbitrary (non-contiguous, unsorted) ids
CLUSTER = np.array([5, 2, 5, 9, 2, 5, -1, 9, 9, 9, 3])


@pytest.mark.parametrize("captions", [1, 3, 5])
def test_order_is_a_permutation_with_one_caption_per_image_per_round(captions):
    n = len(CLUSTER)
    order = neighbour_order(CLUSTER, captions, seed=7, epoch=0)
    assert order.dtype == np.int64
    assert np.array_equal(np.sort(order), np.arange(n * captions))
    for round_ in order.reshape(captions, n):
        assert np.array_equal(np.sort(round_ // captions), np.arange(n))  # each image once per round


def test_cluster_members_are_adjacent_within_a_round():
    captions = 4
    order = neighbour_order(CLUSTER, captions, seed=3, epoch=2)
    for round_ in order.reshape(captions, len(CLUSTER)):
        sequence = CLUSTER[round_ // captions]
        runs = sequence[np.r_[True, sequence[1:] != sequence[:-1]]]
        assert len(runs) == len(np.unique(CLUSTER))  # each cluster is one run


def test_same_seed_and_epoch_same_order_else_different():
    first = neighbour_order(CLUSTER, 5, seed=11, epoch=4)
    assert np.array_equal(first, neighbour_order(CLUSTER.copy(), 5, seed=11, epoch=4))
    assert not np.array_equal(first, neighbour_order(CLUSTER, 5, seed=11, epoch=5))
    assert not np.array_equal(first, neighbour_order(CLUSTER, 5, seed=12, epoch=4))


def test_rounds_and_clusters_vary_and_differ_from_the_random_order():
    n, captions = 60, 5
    singletons = np.arange(n)
    order = neighbour_order(singletons, captions, seed=0, epoch=0)
    assert not np.array_equal(order, epoch_order(n * captions, seed=0, epoch=0))
    rounds = order.reshape(captions, n)
    assert len({tuple(r // captions) for r in rounds}) == captions  # a fresh image order every round
    assert len(np.unique(rounds[0] % captions)) == captions  # round 0 draws captions of every rank


def test_empty():
    assert neighbour_order(np.zeros(0, dtype=np.int64), 5, seed=0, epoch=0).shape == (0,)
