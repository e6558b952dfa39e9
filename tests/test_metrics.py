"""Ranks and metrics against the release's per-query argsort loop, ties included; statistics sanity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from stacmr.evaluation.metrics import (
    CI_KEYS,
    METRICS,
    RSUM,
    RSUM_TERMS,
    SELECTION,
    Metric,
    ranks,
    selection_score,
    summarize,
)
from stacmr.evaluation.ranking import dense_similarity
from stacmr.evaluation.statistics import bootstrap_ci


def oracle(sim: np.ndarray, caption_image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The release's evaluation loop (`np.argsort(d)[::-1]`, a stable sort), one query at a time."""
    n_images, n_captions = sim.shape
    i2t = np.empty(n_images, dtype=np.int64)
    for i in range(n_images):
        order = np.argsort(sim[i], kind="stable")[::-1]
        i2t[i] = min(np.flatnonzero(order == j)[0] for j in np.flatnonzero(caption_image == i))
    t2i = np.empty(n_captions, dtype=np.int64)
    for j in range(n_captions):
        order = np.argsort(sim[:, j], kind="stable")[::-1]
        t2i[j] = np.flatnonzero(order == caption_image[j])[0]
    return i2t, t2i


@st.composite
def problems(draw):
    per_image = draw(st.lists(st.integers(1, 4), min_size=1, max_size=9))
    caption_image = np.repeat(np.arange(len(per_image)), per_image)
    sim = draw(arrays(np.float32, (len(per_image), len(caption_image)), elements=st.integers(-3, 3).map(float)))
    block = draw(st.integers(1, 400))
    return sim, caption_image, block


@settings(max_examples=300, deadline=None)
@given(problems())
def test_sharded_ranks_equal_the_release_loop(problem):
    sim, caption_image, block = problem  # few distinct values: ties everywhere; tiny blocks: many shards
    i2t, t2i = ranks(sim, sim.shape[0], caption_image, max_block_bytes=block)
    expected_i2t, expected_t2i = oracle(sim, caption_image)
    np.testing.assert_array_equal(i2t, expected_i2t)
    np.testing.assert_array_equal(t2i, expected_t2i)


def test_ties_rank_the_higher_index_first():
    sim = np.array([[1.0, 1.0, 1.0, 1.0]], dtype=np.float32)  # one image, four equal captions, two of them its own
    i2t, _ = ranks(np.vstack([sim, sim]), 2, np.array([0, 0, 1, 1]))
    assert i2t.tolist() == [2, 0]  # image 1's caption 3 is first among equals; image 0's best (1) comes after 3 and 2


def test_duplicated_captions_and_embeddings_path():
    rng = np.random.default_rng(0)
    img = rng.integers(-2, 3, size=(7, 4)).astype(np.float32)
    cap = rng.integers(-2, 3, size=(21, 4)).astype(np.float32)
    cap[5] = cap[6] = cap[13]  # duplicated captions of different images
    caption_image = np.arange(21) // 3
    sim = img @ cap.T  # integer-valued: exact in float32, whatever the summation order
    expected = oracle(sim, caption_image)
    got = ranks(dense_similarity(img, cap), 7, caption_image, max_block_bytes=64)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)


def test_hand_made_recalls():
    # 3 images, 2 captions each; image 0 finds its caption first, image 1 at rank 1, image 2 at rank 5
    sim = np.array(
        [
            [0.9, 0.1, 0.2, 0.3, 0.0, 0.1],
            [0.8, 0.0, 0.7, 0.1, 0.2, 0.3],
            [0.9, 0.8, 0.7, 0.6, 0.1, 0.0],
        ],
        dtype=np.float32,
    )
    caption_image = np.array([0, 0, 1, 1, 2, 2])
    i2t, t2i = ranks(sim, 3, caption_image)
    assert i2t.tolist() == [0, 1, 4]
    assert t2i.tolist() == [1, 1, 1, 2, 1, 2]  # captions 0 and 2 lose a tie to image 2, the higher index
    m = summarize(i2t, t2i)
    assert m["i2t_r1"] == pytest.approx(100 / 3) and m["i2t_r5"] == 100.0
    assert m["t2i_r1"] == 0.0 and m["t2i_r5"] == 100.0
    assert m["i2t_medr"] == 2.0 and m["i2t_meanr"] == pytest.approx(1 + 5 / 3)
    assert m["rsum"] == pytest.approx(sum(m[k] for k in m if "_r" in k and k[-1].isdigit()))


def test_the_metric_table_is_every_metric_its_rsum_intervals_and_selection():
    """`METRICS` gives summarize its keys in the metrics files' order, rsum its terms, the CIs their keys and the
    model selection its terms (the release's R@1 + R@5 both ways)."""
    rng = np.random.default_rng(2)
    caption_image = np.repeat(np.arange(30), 5)
    i2t, t2i = rng.integers(0, 30, 30), rng.integers(0, 30, 150)
    m = summarize(i2t, t2i)
    assert list(m) == [metric.name for metric in METRICS] + [RSUM]
    assert list(m) == [
        "i2t_r1",
        "i2t_r5",
        "i2t_r10",
        "t2i_r1",
        "t2i_r5",
        "t2i_r10",
        "i2t_medr",
        "i2t_meanr",
        "t2i_medr",
        "t2i_meanr",
        "rsum",
    ]
    assert tuple(list(m)[:6]) == RSUM_TERMS and m[RSUM] == sum(m[k] for k in RSUM_TERMS)
    assert list(bootstrap_ci(i2t, t2i, caption_image, 20, 0)) == list(CI_KEYS) == [*RSUM_TERMS, RSUM]
    assert set(SELECTION) <= set(RSUM_TERMS)
    assert selection_score(m) == m["i2t_r1"] + m["i2t_r5"] + m["t2i_r1"] + m["t2i_r5"]
    with pytest.raises(ValueError, match="an rsum term must be bootstrapped"):
        Metric("i2t_medr", "i2t", "medr", lambda r: float(np.median(r)), in_rsum=True)


def test_caption_without_an_image_is_refused():
    with pytest.raises(ValueError, match="image 1 has no caption"):
        ranks(np.zeros((2, 2), np.float32), 2, np.array([0, 0]))


def test_bootstrap_ci_contains_the_estimate_and_does_not_shrink_with_more_resamples():
    rng = np.random.default_rng(1)
    i2t, t2i = rng.geometric(0.2, size=400) - 1, rng.geometric(0.1, size=2000) - 1
    caption_image = np.repeat(np.arange(400), 5)
    point = summarize(i2t, t2i)
    small = bootstrap_ci(i2t, t2i, caption_image, resamples=300, seed=0)
    large = bootstrap_ci(i2t, t2i, caption_image, resamples=3000, seed=0)
    for key, (low, high) in large.items():
        assert low <= point[key] <= high
        width_small, width_large = small[key][1] - small[key][0], high - low
        assert 0.7 < width_large / width_small < 1.4  # more resamples estimate the same interval, not a narrower one
    assert bootstrap_ci(i2t, t2i, caption_image, 300, seed=0) == small  # seeded


def test_bootstrap_ci_resamples_images_with_all_their_captions():
    """Against a per-resample loop over the same image draws; captions per image differ (1, 2, 3, 2)."""
    i2t, t2i = np.array([0, 3, 7, 12]), np.array([0, 1, 6, 0, 4, 11, 2, 9])
    caption_image = np.array([0, 1, 1, 2, 2, 2, 3, 3])
    resamples, seed = 200, 5
    draws = np.random.default_rng(seed).integers(0, 4, size=(resamples, 4))  # the images each resample draws
    table: dict[str, list[float]] = {}
    for images in draws:
        captions = np.concatenate([np.flatnonzero(caption_image == i) for i in images])
        row = {f"i2t_r{k}": 100 * np.mean(i2t[images] < k) for k in (1, 5, 10)}
        row |= {f"t2i_r{k}": 100 * np.mean(t2i[captions] < k) for k in (1, 5, 10)}
        row["rsum"] = sum(row.values())
        for key, value in row.items():
            table.setdefault(key, []).append(value)
    expected = {key: [np.percentile(v, 2.5), np.percentile(v, 97.5)] for key, v in table.items()}
    got = bootstrap_ci(i2t, t2i, caption_image, resamples, seed)
    assert got.keys() == expected.keys()
    for key in expected:
        assert got[key] == pytest.approx(expected[key]), key


def test_bootstrap_ci_of_correlated_captions_is_wider_than_if_they_were_independent():
    """5 identical captions per image: resampling images (the clusters) must not count them as 5 observations."""
    rng = np.random.default_rng(3)
    n_images = 300
    i2t = rng.geometric(0.2, size=n_images) - 1
    t2i = np.repeat(rng.geometric(0.15, size=n_images) - 1, 5)
    clustered = bootstrap_ci(i2t, t2i, np.repeat(np.arange(n_images), 5), 2000, seed=0)
    independent = bootstrap_ci(np.zeros(len(t2i)), t2i, np.arange(len(t2i)), 2000, seed=0)  # one caption per "image"
    for key in ("t2i_r1", "t2i_r5", "t2i_r10"):
        width, caption_width = np.diff(clustered[key])[0], np.diff(independent[key])[0]
        assert width > 1.6 * caption_width, (key, width, caption_width)  # ≈ √5 for perfectly correlated captions
