"""Ranks and metrics against the release's per-query argsort loop, ties included, on both counting paths (numpy on
the host; torch, as for scores on a GPU, here on CPU tensors) and the dispatch between them; statistics sanity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import stacmr.evaluation.metrics as metrics_module
from stacmr.evaluation.device_ranking import DeviceSimilarity, device_ranks
from stacmr.evaluation.metrics import (
    CI_KEYS,
    DEFAULT_BLOCK_BYTES,
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


def torch_ranks(similarity, n_images, caption_image, max_block_bytes=DEFAULT_BLOCK_BYTES, t2i_top=None):
    """The torch path that `ranks` takes for scores on a GPU, run on the CPU (a numpy matrix becomes a tensor)."""
    if isinstance(similarity, np.ndarray):
        similarity = DeviceSimilarity.of_matrix(torch.from_numpy(similarity))
    return device_ranks(similarity, n_images, caption_image, max_block_bytes, t2i_top)


PATHS = {"numpy": ranks, "torch": torch_ranks}


def dense(path: str, img: np.ndarray, cap: np.ndarray):
    """The dense block function of each path: numpy products, or torch products on the tensors' device."""
    if path == "numpy":
        return dense_similarity(img, cap)
    return DeviceSimilarity.dense(torch.from_numpy(img), torch.from_numpy(cap))


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


def oracle_top(sim: np.ndarray, k: int) -> np.ndarray:
    """Each caption's k best images by the release's stable argsort, best first."""
    return np.stack([np.argsort(sim[:, j], kind="stable")[::-1][:k] for j in range(sim.shape[1])])


@st.composite
def problems(draw):
    per_image = draw(st.lists(st.integers(1, 4), min_size=1, max_size=9))  # uneven captions per image
    caption_image = np.repeat(np.arange(len(per_image)), per_image)
    if draw(st.booleans()):  # captions in any order, not grouped by image
        caption_image = caption_image[draw(st.permutations(range(len(caption_image))))]
    values = st.sampled_from([-3.0, -2.0, -1.0, -0.0, 0.0, 1.0, 2.0, 3.0])  # -0.0 and 0.0: equal scores
    sim = draw(arrays(np.float32, (len(per_image), len(caption_image)), elements=values))
    block = draw(st.integers(1, 400))
    k = draw(st.integers(1, len(per_image)))
    return sim, caption_image, block, k


@pytest.mark.parametrize("path", PATHS)
@settings(max_examples=300, deadline=None)
@given(problem=problems())
def test_sharded_ranks_equal_the_release_loop(path, problem):
    # few distinct values: ties everywhere, across ground truths and at the k-th image; tiny blocks: one-row shards
    sim, caption_image, block, k = problem
    top = np.empty((len(caption_image), k), dtype=np.int64)
    i2t, t2i = PATHS[path](sim, sim.shape[0], caption_image, block, top)
    expected_i2t, expected_t2i = oracle(sim, caption_image)
    np.testing.assert_array_equal(i2t, expected_i2t)
    np.testing.assert_array_equal(t2i, expected_t2i)
    np.testing.assert_array_equal(top, oracle_top(sim, k))
    assert i2t.dtype == t2i.dtype == np.int64


@pytest.mark.parametrize("path", PATHS)
def test_ties_rank_the_higher_index_first(path):
    sim = np.array([[1.0, 1.0, 1.0, 1.0]], dtype=np.float32)  # one image, four equal captions, two of them its own
    i2t, _ = PATHS[path](np.vstack([sim, sim]), 2, np.array([0, 0, 1, 1]))
    assert i2t.tolist() == [2, 0]  # image 1's caption 3 is first among equals; image 0's best (1) comes after 3 and 2


@pytest.mark.parametrize("path", PATHS)
def test_top_k_ties_at_the_boundary_take_the_higher_index(path):
    # 4 images (rows), 4 captions (columns) of images 1, 2, 0, 3
    sim = np.array([[0.0, 2.0, 1, 1], [-0.0, 1.0, 0, 0], [0.5, 1.0, 0, 0], [0.0, 1.0, 0, 0]], dtype=np.float32)
    top = np.empty((4, 2), dtype=np.int64)
    _, t2i = PATHS[path](sim, 4, np.array([1, 2, 0, 3]), t2i_top=top)
    # caption 0: image 3 beats the equal 1 (-0.0 == 0.0) and 0; caption 1: image 3 beats the equal 2 and 1
    assert top.tolist() == [[2, 3], [0, 3], [0, 3], [0, 3]]
    assert t2i.tolist() == [2, 2, 0, 1]  # image 1 after 2 and the equal 3; image 2 after 0 and the equal 3


@pytest.mark.parametrize("path", PATHS)
def test_duplicated_captions_and_embeddings_path(path):
    rng = np.random.default_rng(0)
    img = rng.integers(-2, 3, size=(7, 4)).astype(np.float32)
    cap = rng.integers(-2, 3, size=(21, 4)).astype(np.float32)
    cap[5] = cap[6] = cap[13]  # duplicated captions of different images
    caption_image = np.arange(21) // 3
    sim = img @ cap.T  # integer-valued: exact in float32, whatever the summation order
    expected = oracle(sim, caption_image)
    got = PATHS[path](dense(path, img, cap), 7, caption_image, max_block_bytes=64)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)


def test_scores_on_the_cpu_are_counted_on_the_host_and_on_a_gpu_there(monkeypatch):
    """`ranks` counts a `DeviceSimilarity` with torch only off the CPU: CPU scores, numpy or tensors, take the numpy
    path and its outputs."""
    calls = []
    monkeypatch.setattr(metrics_module, "device_ranks", lambda *args: calls.append(args) or ("i2t", "t2i"))
    rng = np.random.default_rng(4)
    img, cap = rng.integers(-2, 3, size=(6, 4)).astype(np.float32), rng.integers(-2, 3, size=(12, 4)).astype(np.float32)
    caption_image = np.arange(12) // 2
    expected = oracle(img @ cap.T, caption_image)
    on_cpu = DeviceSimilarity.dense(torch.from_numpy(img), torch.from_numpy(cap))
    for similarity in (img @ cap.T, dense_similarity(img, cap), on_cpu, on_cpu.held()):
        for got, want in zip(ranks(similarity, 6, caption_image, 64), expected, strict=True):
            np.testing.assert_array_equal(got, want)
    assert not calls
    on_gpu = DeviceSimilarity(on_cpu.block, torch.device("meta"))  # any device but the CPU
    assert ranks(on_gpu, 6, caption_image, 64) == ("i2t", "t2i")
    assert calls == [(on_gpu, 6, caption_image, 64, None)]


@pytest.mark.parametrize("path", PATHS)
def test_hand_made_recalls(path):
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
    i2t, t2i = PATHS[path](sim, 3, caption_image)
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


@pytest.mark.parametrize("path", PATHS)
def test_caption_without_an_image_is_refused(path):
    with pytest.raises(ValueError, match="image 1 has no caption"):
        PATHS[path](np.zeros((3, 2), np.float32), 3, np.array([0, 2]))
    with pytest.raises(ValueError, match="top-k needs"):
        PATHS[path](np.zeros((3, 6), np.float32), 3, np.repeat(np.arange(3), 2), t2i_top=np.empty((6, 4), np.int64))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("block", [64, 4096, DEFAULT_BLOCK_BYTES])
def test_cuda_ranks_equal_the_host_ranks(block):
    """Random embeddings with forced ties (small integers: exact products on either device; repeated captions, of
    other images too), uneven captions per image in any order: the CUDA path equals the CPU numpy path."""
    rng = np.random.default_rng(block)
    n_images = 60
    caption_image = rng.permutation(np.repeat(np.arange(n_images), rng.integers(1, 8, size=n_images)))
    img = rng.integers(-2, 3, size=(n_images, 16)).astype(np.float32)
    cap = rng.integers(-2, 3, size=(len(caption_image), 16)).astype(np.float32)
    cap[rng.integers(0, len(cap), size=50)] = cap[rng.integers(0, len(cap), size=50)]
    on_cuda = DeviceSimilarity.dense(torch.from_numpy(img).cuda(), torch.from_numpy(cap).cuda())
    expected_top = np.empty((len(cap), 5), dtype=np.int64)
    expected = ranks(dense_similarity(img, cap), n_images, caption_image, block, expected_top)
    for similarity in (on_cuda, on_cuda.held()):
        top = np.empty_like(expected_top)
        got = ranks(similarity, n_images, caption_image, block, top)
        for a, b in zip((*got, top), (*expected, expected_top), strict=True):
            np.testing.assert_array_equal(a, b)


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
    n_images = 60
    i2t = rng.geometric(0.2, size=n_images) - 1
    t2i = np.repeat(rng.geometric(0.15, size=n_images) - 1, 5)
    clustered = bootstrap_ci(i2t, t2i, np.repeat(np.arange(n_images), 5), 2000, seed=0)
    independent = bootstrap_ci(np.zeros(len(t2i)), t2i, np.arange(len(t2i)), 2000, seed=0)  # one caption per "image"
    for key in ("t2i_r1", "t2i_r5", "t2i_r10"):
        width, caption_width = np.diff(clustered[key])[0], np.diff(independent[key])[0]
        assert width > 1.6 * caption_width, (key, width, caption_width)  # ≈ √5 for perfectly correlated captions
