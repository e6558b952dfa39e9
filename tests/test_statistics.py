"""The per-image statistics: the paired sign-flip test against exact enumeration, and the seed-aware test (seed
variance widens it, one seed each reduces it to an image bootstrap)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from stacmr.evaluation.metrics import summarize
from stacmr.evaluation.statistics import image_hits, paired_test, seed_test


def _run(rng: np.random.Generator, n_images: int, per_image: int, scale: int = 20) -> tuple[np.ndarray, np.ndarray]:
    return rng.integers(0, scale, n_images), rng.integers(0, 2 * scale, n_images * per_image)


def test_image_hits_give_back_every_metric():
    rng = np.random.default_rng(0)
    i2t, t2i = _run(rng, 50, 5)
    caption_image = np.repeat(np.arange(50), 5)
    table = image_hits(i2t, t2i, caption_image)
    point = summarize(i2t, t2i)
    for key in ("i2t_r1", "t2i_r5", "t2i_r10", "rsum"):
        assert table.metric(np.ones((1, 50)), key)[0] == pytest.approx(point[key])
    with pytest.raises(ValueError, match="unknown metric"):
        table.metric(np.ones((1, 50)), "r1")


def test_paired_test_flips_images_not_captions():
    """8 images of 5 captions: the Monte Carlo p-value matches the exact one over all 2^8 sign patterns of the
    per-image differences."""
    rng = np.random.default_rng(4)
    n, per = 8, 5
    caption_image = np.repeat(np.arange(n), per)
    b = _run(rng, n, per, scale=6)
    a = (np.maximum(b[0] - rng.integers(0, 3, n), 0), np.repeat(np.maximum(b[1][::per] - 2, 0), per))
    ha, hb = image_hits(*a, caption_image), image_hits(*b, caption_image)
    per_image = (100 * (ha.hits - hb.hits) / ha.queries.sum(axis=0)).sum(axis=1)
    observed = per_image.sum()
    patterns = np.array(list(itertools.product([-1.0, 1.0], repeat=n)))
    exact = np.mean(np.abs(patterns @ per_image) >= abs(observed) - 1e-9)
    diff, p = paired_test(a, b, caption_image, "rsum", permutations=20000, seed=1)
    assert diff == pytest.approx(summarize(*a)["rsum"] - summarize(*b)["rsum"])
    assert p == pytest.approx(exact, abs=0.01)
    with pytest.raises(ValueError, match="does not match"):
        paired_test(a, (b[0][:4], b[1][:20]), caption_image, "rsum", 10, 0)


def test_seed_test_with_one_seed_each_is_an_image_bootstrap_of_the_difference():
    rng = np.random.default_rng(2)
    caption_image = np.repeat(np.arange(300), 5)
    b = _run(rng, 300, 5)
    a = (b[0] // 2, b[1] // 2)
    result = seed_test([a], [b], caption_image, "rsum", 2000, 0)
    assert result.difference == pytest.approx(summarize(*a)["rsum"] - summarize(*b)["rsum"])
    assert result.seeds == (1, 1) and result.p_value < 0.01
    low, high = result.ci95
    assert low < result.difference < high
    same = seed_test([b], [b], caption_image, "rsum", 500, 0)
    assert same.difference == 0 and same.p_value == 1.0


def test_seed_variance_widens_the_interval_and_raises_p():
    """a beats b by a little on one seed; across a's seeds its score moves a lot. The seed-aware test must be less
    sure than the single-run test, and its interval must cover the spread of the seed means."""
    rng = np.random.default_rng(5)
    n = 400
    caption_image = np.repeat(np.arange(n), 5)
    b = _run(rng, n, 5)
    seeds_a = []
    for shift in (0, 3, -3):  # a seed that learnt more, one that learnt less
        i2t = np.clip(b[0] - 1 - shift, 0, None)
        t2i = np.clip(b[1] - 1 - shift, 0, None)
        seeds_a.append((i2t, t2i))
    single = seed_test(seeds_a[:1], [b], caption_image, "rsum", 2000, 0)
    pooled = seed_test(seeds_a, [b, b, b], caption_image, "rsum", 2000, 0)
    assert pooled.seeds == (3, 3)
    assert np.diff(pooled.ci95)[0] > 1.5 * np.diff(single.ci95)[0]
    assert pooled.p_value > single.p_value
    means = [summarize(*run)["rsum"] - summarize(*b)["rsum"] for run in seeds_a]
    assert pooled.difference == pytest.approx(np.mean(means))
    with pytest.raises(ValueError, match="at least one run"):
        seed_test([], [b], caption_image, "rsum", 10, 0)
