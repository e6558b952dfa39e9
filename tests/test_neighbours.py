"""Visual neighbours: set similarity against a per-pair loop, the two-pass ranking against brute force, clusters and
their agreement with known groups, the .npz round trip, and group recovery on the synthetic world's scenes."""

from __future__ import annotations

import numpy as np
import pytest

from stacmr.data.synthetic.scenes import ConceptSpace, draw_scene, render_regions
from stacmr.errors import StacmrError
from stacmr.features.neighbours import (
    agreement,
    clusters,
    load_neighbours,
    load_true_groups,
    neighbours_file,
    save_neighbours,
    save_true_groups,
    set_similarity,
    visual_neighbours,
)
from stacmr.features.store import FeatureStore, create_store


def write_store(path, regions: np.ndarray, counts: np.ndarray) -> FeatureStore:
    """A feature store holding `regions` (N, R, D) and `counts` (N,); the other fields are placeholders."""
    n, r, d = regions.shape
    with create_store(path, "test/neighbours", {"N": n, "R": r, "D": d, "T": 1, "E": 2, "C": 1}, {}, {}) as out:
        out.write(
            0,
            regions=regions.astype(np.float16),
            region_count=counts.astype(np.int32),
            ocr_emb=np.zeros((n, 1, 2), dtype=np.float16),
            ocr_mask=np.zeros((n, 1), dtype=bool),
            ocr_tokens=np.full((n, 1), "", dtype=object),
            ocr_boxes=np.full((n, 1, 4), np.nan, dtype=np.float32),
            captions=np.array([[f"caption {i}"] for i in range(n)], dtype=object),
            image_ids=np.array([str(i) for i in range(n)], dtype=object),
            explicit=np.zeros(n, dtype=bool),
        )
    return FeatureStore(path)


def grouped(rng: np.random.Generator, n_groups: int, size: int, slots: int, dim: int, noise: float):
    """Images in groups that share region vectors (shuffled slots) plus small noise, groups in shuffled rows:
    (regions (N, slots, dim), counts (N,), groups (N,))."""
    base = rng.standard_normal((n_groups, slots, dim))
    groups = rng.permutation(np.repeat(np.arange(n_groups), size))
    regions = np.stack([base[g][rng.permutation(slots)] for g in groups])
    regions += noise * rng.standard_normal(regions.shape)
    return regions, np.full(len(groups), slots), groups


def random_images(rng: np.random.Generator, n: int, slots: int, dim: int):
    """Images with 1..slots real regions and non-zero garbage in the padding slots (which must not count)."""
    counts = rng.integers(1, slots + 1, size=n)
    return rng.standard_normal((n, slots, dim)).astype(np.float16).astype(np.float32), counts


def pair_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """The oracle: chamfer similarity of two region sets (real regions only), one region at a time."""
    unit = [[v / np.linalg.norm(v) for v in regions.astype(np.float64)] for regions in (a, b)]
    a_to_b = np.mean([max(float(x @ y) for y in unit[1]) for x in unit[0]])
    b_to_a = np.mean([max(float(y @ x) for x in unit[0]) for y in unit[1]])
    return 0.5 * (a_to_b + b_to_a)


def brute_force(regions: np.ndarray, counts: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    sim = set_similarity(regions, counts, regions, counts)
    np.fill_diagonal(sim, -np.inf)
    order = np.stack([np.lexsort((np.arange(len(row)), -row))[:k] for row in sim])
    return order, np.take_along_axis(sim, order, axis=1)


def test_set_similarity_matches_per_pair_loop():
    rng = np.random.default_rng(0)
    a, a_count = random_images(rng, 4, 5, 8)
    b, b_count = random_images(rng, 3, 6, 8)
    sim = set_similarity(a, a_count, b, b_count)
    assert sim.shape == (4, 3) and sim.dtype == np.float32
    expected = [[pair_similarity(a[i, : a_count[i]], b[j, : b_count[j]]) for j in range(3)] for i in range(4)]
    np.testing.assert_allclose(sim, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(set_similarity(b, b_count, a, a_count), sim.T, rtol=1e-6)
    np.testing.assert_allclose(np.diag(set_similarity(a, a_count, a, a_count)), 1.0, rtol=1e-6)


def test_set_similarity_of_an_image_without_regions_is_zero():
    a = np.ones((2, 3, 4), dtype=np.float32)
    assert set_similarity(a, np.array([0, 3]), a, np.array([3, 3])).tolist() == [[0.0, 0.0], [1.0, 1.0]]


@pytest.mark.parametrize("block_images", [1, 4, 64])
def test_exhaustive_candidates_equal_brute_force(tmp_path, block_images):
    rng = np.random.default_rng(1)
    regions, counts = random_images(rng, 23, 6, 16)
    with write_store(tmp_path / "s.h5", regions, counts) as store:
        neighbours, similarity = visual_neighbours(store, k=5, candidates=100, block_images=block_images)
    expected_neighbours, expected_similarity = brute_force(regions, counts, 5)
    assert neighbours.dtype == np.int64 and similarity.dtype == np.float32
    np.testing.assert_array_equal(neighbours, expected_neighbours)
    np.testing.assert_array_equal(similarity, expected_similarity)


def test_ties_go_to_the_lower_index(tmp_path):
    rng = np.random.default_rng(2)
    regions, counts = random_images(rng, 6, 4, 8)
    regions[[1, 3, 5]] = regions[0]  # three copies of image 0: exactly tied candidates
    counts[[1, 3, 5]] = counts[0]
    with write_store(tmp_path / "s.h5", regions, counts) as store:
        neighbours, similarity = visual_neighbours(store, k=3, candidates=5, block_images=2)
    assert neighbours[0].tolist() == [1, 3, 5] and neighbours[3].tolist() == [0, 1, 5]
    np.testing.assert_allclose(similarity[0], 1.0, rtol=1e-6)


def test_first_pass_finds_group_mates_and_is_deterministic(tmp_path):
    regions, counts, groups = grouped(np.random.default_rng(3), 30, 3, 8, 32, noise=0.3)
    with write_store(tmp_path / "s.h5", regions, counts) as store:
        first = visual_neighbours(store, k=2, candidates=6, block_images=16)
        again = visual_neighbours(store, k=2, candidates=6, block_images=16)
    assert all(np.array_equal(x, y) for x, y in zip(first, again, strict=True))
    assert (groups[first[0]] == groups[:, None]).all()
    assert np.all(np.diff(first[1], axis=1) <= 0)  # best first


def test_bad_arguments(tmp_path):
    regions, counts = random_images(np.random.default_rng(4), 5, 3, 4)
    with write_store(tmp_path / "s.h5", regions, counts) as store:
        for k, candidates, block in ((0, 3, 2), (5, 5, 2), (3, 2, 2), (2, 3, 0)):
            with pytest.raises(ValueError):
                visual_neighbours(store, k=k, candidates=candidates, block_images=block)


def test_clusters_recover_groups(tmp_path):
    regions, counts, groups = grouped(np.random.default_rng(5), 40, 3, 8, 32, noise=0.3)
    with write_store(tmp_path / "s.h5", regions, counts) as store:
        neighbours, similarity = visual_neighbours(store, k=4, candidates=12, block_images=32)
    cluster = clusters(neighbours, similarity, size=3)
    # same partition: each cluster is one group and each group one cluster
    assert len(np.unique(np.stack([cluster, groups], axis=1), axis=0)) == 40 == len(np.unique(cluster))
    assert agreement(neighbours, cluster, groups) == {
        "neighbour_precision": 1.0,
        "cluster_purity": 1.0,
        "group_recall": 1.0,
    }


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_clusters_cover_every_image_once(size):
    rng = np.random.default_rng(size)
    n, k = 50, 4
    neighbours = np.stack([rng.choice(np.delete(np.arange(n), i), size=k, replace=False) for i in range(n)])
    similarity = -np.sort(-rng.random((n, k)).astype(np.float32), axis=1)
    cluster = clusters(neighbours, similarity, size)
    assert cluster.shape == (n,) and cluster.dtype == np.int64 and (cluster >= 0).all()
    ids, sizes = np.unique(cluster, return_counts=True)
    assert ids.tolist() == list(range(len(ids))) and sizes.max() <= size
    assert np.array_equal(clusters(neighbours, similarity, size), cluster)


def test_cluster_greedy_order():
    # seeds go by best similarity: 2 (0.9), 0, 3, then 1 and 4 tied at 0.5, lower index first
    neighbours = np.array([[2, 1], [2, 4], [0, 3], [2, 0], [3, 2]])
    similarity = np.array([[0.8, 0.1], [0.5, 0.4], [0.9, 0.3], [0.7, 0.2], [0.5, 0.1]], dtype=np.float32)
    # 2 takes 0 then 3; 1 finds 2 taken and takes 4
    assert clusters(neighbours, similarity, size=3).tolist() == [0, 1, 0, 0, 1]
    # 2 takes 0 and is full; 3 finds its neighbours taken and stays alone; 1 takes 4 (had 4 gone first, it would
    # have found 3 and 2 taken and stayed alone)
    assert clusters(neighbours, similarity, size=2).tolist() == [0, 2, 0, 1, 2]
    assert clusters(neighbours, similarity, size=1).tolist() == [1, 3, 0, 2, 4]


def test_agreement_by_hand():
    true_groups = np.array([7, 7, 7, 9, 9, 4])
    neighbours = np.array([[1, 3], [0, 2], [3, 4], [4, 0], [0, 3], [0, 1]])
    cluster = np.array([0, 0, 1, 1, 2, 3])
    scores = agreement(neighbours, cluster, true_groups)
    # precision over images 0..4: 1/2, 2/2, 0/2, 1/1, 0/1; image 5 is alone in its group
    assert scores["neighbour_precision"] == pytest.approx((0.5 + 1 + 0 + 1 + 0) / 5)
    # pure: cluster 0 (0, 1), cluster 2 (4), cluster 3 (5); cluster 1 mixes groups 7 and 9
    assert scores["cluster_purity"] == pytest.approx(4 / 6)
    # ordered mate pairs: group 7 has 6, group 9 has 2; together: (0, 1) and (1, 0)
    assert scores["group_recall"] == pytest.approx(2 / 8)


def test_save_load_round_trip_is_byte_identical(tmp_path):
    rng = np.random.default_rng(6)
    neighbours = rng.integers(0, 10, size=(10, 3))
    similarity = rng.random((10, 3)).astype(np.float32)
    cluster = rng.integers(0, 4, size=10)
    info = {"k": 3, "candidates": 8, "store": "ctc/train"}
    save_neighbours(tmp_path / "a.npz", neighbours, similarity, cluster, info)
    save_neighbours(tmp_path / "b.npz", neighbours, similarity, cluster, dict(reversed(info.items())))
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    loaded = load_neighbours(tmp_path / "a.npz")
    assert loaded["info"] == info
    np.testing.assert_array_equal(loaded["neighbours"], neighbours)
    np.testing.assert_array_equal(loaded["similarity"], similarity)
    np.testing.assert_array_equal(loaded["cluster"], cluster)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz", "b.npz"]  # no temporary left behind


def test_broken_files_name_the_file(tmp_path):
    path = tmp_path / "n.npz"
    with pytest.raises(StacmrError, match=r"n\.npz: neighbours file is missing"):
        load_neighbours(path)
    save_neighbours(path, np.zeros((4, 2), dtype=np.int64), np.zeros((4, 2)), np.arange(4), {})
    data = path.read_bytes()
    for cut in (len(data) // 2, 40, 0):
        path.write_bytes(data[:cut])
        with pytest.raises(StacmrError, match=r"n\.npz: "):
            load_neighbours(path)
    with open(path, "wb") as f:
        np.savez_compressed(f, neighbours=np.zeros((4, 2), dtype=np.int64), cluster=np.arange(4))
    with pytest.raises(StacmrError, match=r"n\.npz: neighbours file holds"):
        load_neighbours(path)
    save_neighbours(path, np.zeros((4, 2), dtype=np.int64), np.zeros((4, 2)), np.arange(3), {})
    with pytest.raises(StacmrError, match=r"n\.npz: shapes disagree"):
        load_neighbours(path)


def test_true_groups_round_trip(tmp_path):
    assert neighbours_file(tmp_path, "ctc/train") == tmp_path / "ctc_train.npz"
    with pytest.raises(StacmrError, match=r"true_groups\.npz: true-groups file is missing"):
        load_true_groups(tmp_path, "ctc/test")
    save_true_groups(tmp_path, {"ctc/test": np.array([0, 0, 1]), "ctc/val": np.array([2, 1])})
    loaded = load_true_groups(tmp_path, "ctc/test")
    assert list(loaded) == ["true"] and loaded["true"].dtype == np.int64 and loaded["true"].tolist() == [0, 0, 1]
    assert load_true_groups(tmp_path, "f30k/train") == {}
    save_true_groups(tmp_path, {})
    assert load_true_groups(tmp_path, "ctc/test") == {}


def synthetic_groups(n_groups: int, size: int, regions: int, dim: int, noise: float, seed: int = 0):
    """Images of the synthetic world (stacmr.data.synthetic.scenes) in groups of `size` sharing one scene, each
    rendered with fresh region noise, as world.py renders a CTC group: (regions (N, R, D), groups (N,))."""
    rng = np.random.default_rng(seed)
    space = ConceptSpace.draw(rng, dim)
    rows, groups = [], []
    for group in range(n_groups):
        scene = draw_scene(rng, max_objects=3, with_text=True)
        for _ in range(size):
            rows.append(render_regions(scene, space, rng, regions, noise, attribute_weight=0.5))
            groups.append(group)
    order = rng.permutation(len(rows))
    return np.stack(rows)[order], np.array(groups)[order]


def test_neighbours_find_synthetic_group_mates(tmp_path):
    # the synthetic world's defaults (params.yaml): 16 regions of 128 dims, noise 0.8, groups of 3
    regions, groups = synthetic_groups(n_groups=100, size=3, regions=16, dim=128, noise=0.8)
    with write_store(tmp_path / "s.h5", regions, np.full(len(groups), 16)) as store:
        neighbours, similarity = visual_neighbours(store, k=4, candidates=32, block_images=64)
    scores = agreement(neighbours, clusters(neighbours, similarity, size=3), groups)
    chance = 2 / (len(groups) - 1)
    assert scores["neighbour_precision"] > 0.9 > 50 * chance
