"""Uncertainty of retrieval metrics: bootstrap confidence intervals and a paired test between two systems.

Queries are the sampling unit: images for i2t, captions for t2i, resampled with replacement (seeded). The rsum of a
resample adds the i2t recalls of one image resample to the t2i recalls of one caption resample. The paired test
compares two systems' ranks on the same queries with a sign-flip permutation test (under H0 each query's pair of
ranks is exchangeable): it returns the observed difference of a metric and its two-sided p-value.
"""

from __future__ import annotations

import numpy as np

from stacmr.evaluation.metrics import RECALL_KEYS, RECALL_KS


def _recall_samples(ranks: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """(resamples, len(RECALL_KS)) recalls in percent of bootstrap resamples of the queries."""
    hits = np.stack([ranks < k for k in RECALL_KS], axis=1).astype(np.float64)  # (n, K)
    idx = rng.integers(0, len(ranks), size=(resamples, len(ranks)))
    return 100.0 * hits[idx].mean(axis=1)


def bootstrap_ci(
    i2t: np.ndarray, t2i: np.ndarray, resamples: int, seed: int, level: float = 0.95
) -> dict[str, list[float]]:
    """{key: [low, high]} percentile intervals for every recall key and rsum."""
    rng = np.random.default_rng(seed)
    samples = np.concatenate([_recall_samples(i2t, rng, resamples), _recall_samples(t2i, rng, resamples)], axis=1)
    table = dict(zip(RECALL_KEYS, samples.T, strict=True))
    table["rsum"] = samples.sum(axis=1)
    tail = 100 * (1 - level) / 2
    return {k: [float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))] for k, v in table.items()}


def metric_of(ranks: np.ndarray, key: str) -> np.ndarray:
    """Per-query contributions to a recall key ("r1", "r5", "r10") in percent; their mean is the recall."""
    return 100.0 * (ranks < int(key.removeprefix("r"))).astype(np.float64)


def paired_test(
    ranks_a: np.ndarray, ranks_b: np.ndarray, key: str, permutations: int, seed: int
) -> tuple[float, float]:
    """(mean difference a − b of recall `key` over the same queries, two-sided sign-flip permutation p-value)."""
    if ranks_a.shape != ranks_b.shape:
        raise ValueError(f"paired test needs the same queries: {ranks_a.shape} vs {ranks_b.shape}")
    diff = metric_of(ranks_a, key) - metric_of(ranks_b, key)
    observed = float(diff.mean())
    rng = np.random.default_rng(seed)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(permutations, len(diff)))
    null = (signs * diff).mean(axis=1)
    extreme = np.count_nonzero(np.abs(null) >= abs(observed) - 1e-12)
    return observed, float((extreme + 1) / (permutations + 1))


def paired_rsum_test(
    a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], permutations: int, seed: int
) -> tuple[float, float]:
    """(rsum difference a − b, two-sided sign-flip p-value) of two systems' (i2t ranks, t2i ranks) on the same
    queries. rsum's difference is mean_i d_i + mean_j e_j, with d_i the summed R@1/5/10 difference of image query i
    and e_j that of caption query j; under H0 each query's sign flips independently."""
    per_direction = []
    for ranks_a, ranks_b in zip(a, b, strict=True):
        if ranks_a.shape != ranks_b.shape:
            raise ValueError(f"paired test needs the same queries: {ranks_a.shape} vs {ranks_b.shape}")
        per_direction.append(sum(metric_of(ranks_a, f"r{k}") - metric_of(ranks_b, f"r{k}") for k in RECALL_KS))
    observed = float(sum(d.mean() for d in per_direction))
    rng = np.random.default_rng(seed)
    step = max(1, (1 << 24) // max(len(d) for d in per_direction))  # sign matrices of at most 16M entries (CTC-5K)
    null = np.concatenate([
        sum((rng.choice(np.array([-1.0, 1.0]), size=(min(step, permutations - s), len(d))) * d).mean(axis=1)
            for d in per_direction)
        for s in range(0, permutations, step)
    ])  # fmt: skip
    extreme = np.count_nonzero(np.abs(null) >= abs(observed) - 1e-9)
    return observed, float((extreme + 1) / (permutations + 1))
