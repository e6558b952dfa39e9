"""Visual neighbours: each image's most similar other images by its raw region features, and clusters of them.

Model-free and computed once per store. The similarity of two images is the symmetric chamfer similarity of their
l2-normalised region sets (`set_similarity`). Two uses: neighbour batches (training/sampler.py) put visually similar
images in one batch, so a caption that names scene text meets the images that only its text tells apart (on the
synthetic world, its group mates: same scene, fresh region noise); and on real data, where groups are unknown, the
clusters stand in for groups in the does-it-read diagnostics.

Reads a `FeatureStore`'s `regions` (N, R, D) and `region_count` (N,), streamed in blocks of images. Writes (with
`save_neighbours`) one .npz per store, `neighbours_file(directory, store name)`: `neighbours` (N, k) int64,
`similarity` (N, k) float32, `cluster` (N,) int64 and `info` (a JSON string of the params that made it); and, where
the data knows its true groups (the synthetic world), `true_groups.npz` {store name: (N,) int64}. Identical inputs
give identical bytes.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from pathlib import Path

import h5py
import numpy as np

from stacmr.atomic import atomic_path
from stacmr.errors import StacmrError
from stacmr.features.store import FeatureStore
from stacmr.progress import progress

_TINY = 1e-12  # norm floor: all-zero padding slots stay zero instead of becoming NaN
_KEYS = ("neighbours", "similarity", "cluster", "info")


def _normalised(regions: np.ndarray) -> np.ndarray:
    """(..., D) vectors (regions, or mean regions) of any float dtype → float32 unit vectors; zero ones stay zero."""
    x = regions.astype(np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), np.float32(_TINY))


def _real(count: np.ndarray, slots: int) -> np.ndarray:
    """(...,) region counts → (..., slots) bool, True at the real (non-padding) region slots."""
    return np.arange(slots) < np.asarray(count)[..., None]


def _chamfer(cos: np.ndarray, a_real: np.ndarray, b_real: np.ndarray) -> np.ndarray:
    """Symmetric chamfer similarity from region cosines.

    cos (..., R, S): cosine of each of a's regions to each of b's; a_real (..., R) and b_real (..., S) mark real
    regions (broadcast against cos's leading dims). Returns (...) float32; 0 where either set has no real region
    (no evidence either way)."""
    a_to_b = np.where(b_real[..., None, :], cos, -np.inf).max(axis=-1)  # (..., R): best match in b
    b_to_a = np.where(a_real[..., :, None], cos, -np.inf).max(axis=-2)  # (..., S): best match in a
    a_n, b_n = a_real.sum(axis=-1), b_real.sum(axis=-1)
    mean_ab = np.where(a_real, a_to_b, 0).sum(axis=-1) / np.maximum(a_n, 1).astype(np.float32)
    mean_ba = np.where(b_real, b_to_a, 0).sum(axis=-1) / np.maximum(b_n, 1).astype(np.float32)
    both = (a_n > 0) & (b_n > 0)
    return np.where(both, np.float32(0.5) * (mean_ab + mean_ba), np.float32(0)).astype(np.float32)


def set_similarity(a: np.ndarray, a_count: np.ndarray, b: np.ndarray, b_count: np.ndarray) -> np.ndarray:
    """Model-free similarity of every image of block `a` to every image of block `b`.

    a (Na, R, D), a_count (Na,), b (Nb, S, D), b_count (Nb,): region features and real-region counts (slots past
    the count are padding and take no part). Returns (Na, Nb) float32: ½(mean over a's real regions of the best
    cosine to b's real regions + the same from b to a), in [-1, 1]; 0 when either image has no real region.
    Memory is Na·Nb·R·S floats, so callers pass blocks."""
    an, bn = _normalised(a), _normalised(b)
    # one small R×D·D×S product per image pair (broadcast matmul), the same arithmetic as the reranking's per-pair
    # products, so a brute-force ranking and `visual_neighbours` agree to the bit
    cos = np.matmul(an[:, None], bn[None].swapaxes(-1, -2))  # (Na, Nb, R, S)
    return _chamfer(cos, _real(a_count, a.shape[1])[:, None], _real(b_count, b.shape[1])[None])


def _read_rows(regions: h5py.Dataset, rows: np.ndarray) -> np.ndarray:
    """regions[rows] for sorted unique `rows`: (len(rows), R, D). A contiguous read of the span when it is dense,
    since h5py reads a slice several times faster per image than a point selection of the same images."""
    lo, hi = int(rows[0]), int(rows[-1]) + 1
    if hi - lo <= 2 * len(rows):
        return regions[lo:hi][rows - lo]
    return regions[rows]


def _mean_directions(store: FeatureStore, counts: np.ndarray, block_images: int) -> np.ndarray:
    """(N, D) float32: the unit-norm mean of each image's l2-normalised real regions (0 for an image without any)."""
    n, slots, dim = store["regions"].shape
    means = np.zeros((n, dim), dtype=np.float32)
    for start in progress(range(0, n, block_images), desc="visual neighbours: mean regions", unit="block"):
        stop = min(start + block_images, n)
        real = _real(counts[start:stop], slots)
        total = np.where(real[..., None], _normalised(store["regions"][start:stop]), 0).sum(axis=1)
        means[start:stop] = _normalised(total)
    return means


def _rerank_block(
    store: FeatureStore, counts: np.ndarray, start: int, cand: np.ndarray, block_images: int
) -> np.ndarray:
    """Exact set similarity of images start.. (one per row of `cand` (B, c)) to their candidates: (B, c) float32.

    Candidate images are read `block_images` at a time and the pairs scored `block_images` at a time, so memory is a
    few blocks of regions whatever the store size."""
    slots = store["regions"].shape[1]
    query = _normalised(store["regions"][start : start + len(cand)])
    query_real = _real(counts[start : start + len(cand)], slots)
    unique = np.unique(cand)
    position = np.searchsorted(unique, cand)  # (B, c) row of each candidate in `unique`
    exact = np.empty(cand.shape, dtype=np.float32)
    for u0 in range(0, len(unique), block_images):
        rows = unique[u0 : u0 + block_images]
        other = _normalised(_read_rows(store["regions"], rows))
        other_real = _real(counts[rows], slots)
        qi, ci = np.nonzero((position >= u0) & (position < u0 + len(rows)))
        for p0 in range(0, len(qi), block_images):
            q, c = qi[p0 : p0 + block_images], ci[p0 : p0 + block_images]
            o = position[q, c] - u0
            cos = np.matmul(query[q], other[o].swapaxes(-1, -2))  # (P, R, R)
            exact[q, c] = _chamfer(cos, query_real[q], other_real[o])
    return exact


def visual_neighbours(store: FeatureStore, k: int, candidates: int, block_images: int) -> tuple[np.ndarray, np.ndarray]:
    """Each image's `k` most similar other images by `set_similarity`, best first (ties → lower index).

    Returns neighbours (N, k) int64 and their similarity (N, k) float32. Exact set similarity of all N² pairs is too
    dear at real scale (CTC ≈ 60K images × 36 × 2048), so a cheap first pass — cosine of each image's mean
    l2-normalised region, `block_images` query rows against all N at a time — keeps the top `candidates`, which the
    exact similarity then reranks. With candidates ≥ N-1 the first pass is skipped and the ranking is exact (every
    other image is a candidate). Memory: the (N, D) means plus a few blocks of `block_images` images (and a
    (block_images, N) row of first-pass cosines), never the N×N matrix; each query block reads its candidates'
    regions once, at most min(N, block_images·candidates) images. Deterministic: same store, same bytes.

    The mean is a weak proxy: background regions (the synthetic world's place slots) dominate it, so pick candidates
    generously — on 4,200 synthetic CTC images the top 32 by mean hold 77% of the true group mates, the top 256 99%."""
    n = len(store)
    if not 1 <= k < n:
        raise ValueError(f"visual neighbours: k must be in 1..N-1={n - 1}, got {k}")
    if candidates < k:
        raise ValueError(f"visual neighbours: candidates ({candidates}) must be >= k ({k})")
    if block_images < 1:
        raise ValueError(f"visual neighbours: block_images must be >= 1, got {block_images}")
    candidates = min(candidates, n - 1)
    counts = store["region_count"][:]
    exhaustive = candidates == n - 1
    means = None if exhaustive else _mean_directions(store, counts, block_images)
    neighbours = np.empty((n, k), dtype=np.int64)
    similarity = np.empty((n, k), dtype=np.float32)
    others = np.arange(n - 1)
    for start in progress(range(0, n, block_images), desc="visual neighbours: rerank", unit="block"):
        rows = np.arange(start, min(start + block_images, n))
        if means is None:
            cand = others[None, :] + (others[None, :] >= rows[:, None])  # every image but the row's own
        else:
            cosine = means[rows] @ means.T  # (B, N)
            cosine[np.arange(len(rows)), rows] = -np.inf
            cand = np.sort(np.argpartition(-cosine, candidates - 1, axis=1)[:, :candidates], axis=1)
        exact = _rerank_block(store, counts, start, cand, block_images)
        # candidates are in index order and the sort is stable, so equal similarities keep the lower index first
        best = np.argsort(-exact, axis=1, kind="stable")[:, :k]
        neighbours[rows] = np.take_along_axis(cand, best, axis=1)
        similarity[rows] = np.take_along_axis(exact, best, axis=1)
    return neighbours, similarity


def clusters(neighbours: np.ndarray, similarity: np.ndarray, size: int) -> np.ndarray:
    """Greedy clusters of at most `size` images from the neighbour lists: (N,) int64 cluster ids.

    neighbours, similarity (N, k) as from `visual_neighbours`. Images are visited in decreasing order of their best
    neighbour's similarity (ties → lower index), so the most confident seeds go first; an image not yet assigned opens
    a cluster and takes its unassigned neighbours in neighbour order until the cluster has `size` members. Ids are
    numbered in order of creation; every image is in exactly one cluster."""
    if size < 1:
        raise ValueError(f"clusters: size must be >= 1, got {size}")
    n = len(neighbours)
    best = similarity[:, 0] if similarity.shape[1] else np.zeros(n, dtype=np.float32)
    cluster = np.full(n, -1, dtype=np.int64)
    next_id = 0
    for seed in np.lexsort((np.arange(n), -best)).tolist():
        if cluster[seed] >= 0:
            continue
        cluster[seed] = next_id
        members = 1
        for other in neighbours[seed].tolist():
            if members == size:
                break
            if cluster[other] < 0:
                cluster[other] = next_id
                members += 1
        next_id += 1
    return cluster


def agreement(neighbours: np.ndarray, cluster: np.ndarray, true_groups: np.ndarray) -> dict[str, float]:
    """How well neighbours and clusters recover known groups (the synthetic world's, or any labelling).

    neighbours (N, k), cluster (N,), true_groups (N,) any integer labels. Returns
      neighbour_precision: over images whose true group has g ≥ 2 members, the mean share of their top-min(g-1, k)
        neighbours that are true group mates (1: every image's nearest images are its mates; chance ≈ (g-1)/(N-1));
      cluster_purity: share of all images whose cluster mates all belong to its true group (a singleton is pure);
      group_recall: share of (image, true mate) pairs that share a cluster (1: every group lies inside one cluster).
    NaN where the measure has nothing to count (no group of two or more)."""
    k = neighbours.shape[1]
    _, group, group_size = np.unique(true_groups, return_inverse=True, return_counts=True)
    own = group_size[group]  # (N,) size of each image's true group
    grouped = own >= 2
    take = np.minimum(own - 1, k)  # (N,) neighbours judged per image
    judged = np.arange(k)[None, :] < take[:, None]
    hits = (group[neighbours] == group[:, None]) & judged
    precision = (hits.sum(axis=1)[grouped] / take[grouped]).mean() if grouped.any() else np.nan

    _, cell = np.unique(cluster, return_inverse=True)
    # (cluster, true group) cells and how many images each holds
    cells, together = np.unique(np.stack([cell, group], axis=1), axis=0, return_counts=True)
    # a cluster is pure when all its members share one true group; purity counts the images of pure clusters
    groups_per_cluster = np.bincount(cells[:, 0], minlength=cell.max() + 1)
    purity = float((groups_per_cluster[cell] == 1).mean())
    # ordered (image, mate) pairs in one cluster: Σ over cells of m(m-1), over Σ over true groups of g(g-1)
    mates = float((group_size * (group_size - 1)).sum())
    recall = float((together * (together - 1)).sum()) / mates if mates else np.nan
    return {"neighbour_precision": float(precision), "cluster_purity": purity, "group_recall": recall}


def save_neighbours(
    path: str | os.PathLike, neighbours: np.ndarray, similarity: np.ndarray, cluster: np.ndarray, info: dict
) -> None:
    """Write the neighbour lists, their similarities, the clusters and `info` (JSON-able params, no paths or
    timestamps, so identical inputs give identical bytes) as one .npz, atomically."""
    arrays = {
        "neighbours": np.asarray(neighbours, dtype=np.int64),
        "similarity": np.asarray(similarity, dtype=np.float32),
        "cluster": np.asarray(cluster, dtype=np.int64),
        "info": np.array(json.dumps(info, sort_keys=True)),
    }
    # np.savez_compressed stamps every member with zipfile's fixed default date, so the bytes depend on data only
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)


def load_neighbours(path: str | os.PathLike) -> dict:
    """Read a `save_neighbours` file: {"neighbours" (N, k) int64, "similarity" (N, k) float32, "cluster" (N,) int64,
    "info" dict}. A missing, truncated or malformed file is a StacmrError naming it."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            if sorted(npz.files) != sorted(_KEYS):
                raise StacmrError(f"{path}: neighbours file holds {sorted(npz.files)}, expected {sorted(_KEYS)}")
            arrays = {key: npz[key] for key in _KEYS}
    except FileNotFoundError:
        raise StacmrError(f"{path}: neighbours file is missing") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise StacmrError(f"{path}: not a readable neighbours file (truncated or corrupt?): {exc}") from None
    neighbours, similarity, cluster = arrays["neighbours"], arrays["similarity"], arrays["cluster"]
    expected = {"neighbours": np.int64, "similarity": np.float32, "cluster": np.int64}
    for key, dtype in expected.items():
        if arrays[key].dtype != dtype:
            raise StacmrError(f"{path}: field {key!r} has dtype {arrays[key].dtype}, expected {np.dtype(dtype)}")
    if neighbours.ndim != 2 or similarity.shape != neighbours.shape or cluster.shape != neighbours.shape[:1]:
        raise StacmrError(
            f"{path}: shapes disagree: neighbours {neighbours.shape}, similarity {similarity.shape}, "
            f"cluster {cluster.shape} (expected (N, k), (N, k), (N,))"
        )
    n = len(cluster)
    if neighbours.size and (neighbours.min() < 0 or neighbours.max() >= n):
        raise StacmrError(f"{path}: field 'neighbours' has an image index outside 0..{n - 1}")
    try:
        info = json.loads(str(arrays["info"][()]))
    except (ValueError, IndexError) as exc:
        raise StacmrError(f"{path}: field 'info' is not a JSON string: {exc}") from None
    return {"neighbours": neighbours, "similarity": similarity, "cluster": cluster, "info": info}


def neighbours_file(directory: str | os.PathLike, name: str) -> Path:
    """Where the neighbours of store `name` ("source/split", or "trainset" for the combined training set) live
    inside the neighbours stage's output folder."""
    return Path(directory) / (name.replace("/", "_") + ".npz")


AGREEMENT_FILE = "agreement.json"  # {"<source>/<split>": agreement(...)} of the clusters with the true groups
TRUE_GROUPS_FILE = "true_groups.npz"  # {"<source>_<split>": (N,) int64 scene group per image}, where the data has them


def save_true_groups(directory: str | os.PathLike, groups: dict[str, np.ndarray]) -> None:
    """The true groups of the stores whose annotations carry them (the synthetic world's CTC splits), atomically."""
    with atomic_path(Path(directory) / TRUE_GROUPS_FILE) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **{name.replace("/", "_"): np.asarray(g, dtype=np.int64) for name, g in groups.items()})


def load_true_groups(directory: str | os.PathLike, name: str) -> dict[str, np.ndarray]:
    """{"true": (N,) int64} for store `name` when its true groups are known, else {} (real data)."""
    path = Path(directory) / TRUE_GROUPS_FILE
    try:
        with np.load(path, allow_pickle=False) as npz:
            key = name.replace("/", "_")
            return {"true": npz[key]} if key in npz.files else {}
    except FileNotFoundError:
        raise StacmrError(f"{path}: true-groups file is missing (run `dvc repro neighbours`)") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise StacmrError(f"{path}: not a readable true-groups file: {exc}") from None
