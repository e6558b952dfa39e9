"""Uncertainty of retrieval metrics: bootstrap confidence intervals, a paired test between two systems, and a test
between two systems trained with several seeds each.

The unit of resampling is the image: an image is the cluster of its captions (they describe the same picture and
their ranks are correlated), so resampling or sign-flipping captions as if independent makes t2i look surer than it
is (issue #14: CI widths about 25% narrower on CTC-1K). Every function here therefore works on `ImageHits`, per image
and per recall key the queries it brings and how many of them are ranked within k; a metric under a resample is
the ratio of the weighted sums, so one image resample serves both directions and rsum. The metrics are the
bootstrapped rows of `metrics.METRICS` (the recalls).

- `bootstrap_ci`: percentile intervals of every bootstrapped metric and rsum of one run.
- `paired_test`: two systems on the same queries, sign flips per image (under H0 an image's pair of results is
  exchangeable); the observed difference and its two-sided p-value.
- `seed_test`: two systems with one or more training seeds each: a hierarchical bootstrap that draws seeds (per
  system, with replacement), then images (shared by both systems, so the comparison stays paired); the difference
  of the seed means, its percentile interval and a two-sided p-value. With one seed per system it is a plain image
  bootstrap, and says nothing about seed variance.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from stacmr.evaluation.metrics import BOOTSTRAPPED, CI_KEYS, METRICS, RSUM, RSUM_TERMS

_CHUNK_ENTRIES = 1 << 22  # resample weights are drawn in chunks of at most this many (resample, image) entries


@dataclass(frozen=True)
class ImageHits:
    """Per image (rows) and bootstrapped metric (columns, `metrics.BOOTSTRAPPED` order): `hits`, its queries that
    hit (e.g. ranked within k), and `queries`, the queries it brings (1 for an i2t metric, its captions for t2i)."""

    hits: np.ndarray  # (n_images, len(BOOTSTRAPPED)) float64
    queries: np.ndarray  # (n_images, len(BOOTSTRAPPED)) float64

    def __len__(self) -> int:
        return len(self.hits)

    def metric(self, weights: np.ndarray, metric: str) -> np.ndarray:
        """(resamples,) `metric` (a bootstrapped key or rsum) in percent under image weights (resamples, n_images): how
        often each image is drawn; all ones give the observed value."""
        return sum(100.0 * (weights @ self.hits[:, c]) / (weights @ self.queries[:, c]) for c in metric_columns(metric))


def metric_columns(metric: str) -> list[int]:
    """The `ImageHits` columns a metric sums: rsum its terms, a bootstrapped metric its own."""
    if metric == RSUM:
        return [BOOTSTRAPPED.index(key) for key in RSUM_TERMS]
    if metric not in BOOTSTRAPPED:
        raise ValueError(f"unknown metric {metric!r}: one of {list(CI_KEYS)}")
    return [BOOTSTRAPPED.index(metric)]


def image_hits(i2t: np.ndarray, t2i: np.ndarray, caption_image: np.ndarray) -> ImageHits:
    """`ImageHits` of one run's ranks: `i2t` (n_images,), `t2i` (n_captions,), `caption_image` (n_captions,)."""
    n = len(i2t)
    caption_image = np.asarray(caption_image)
    if caption_image.shape != t2i.shape:
        raise ValueError(f"caption_image {caption_image.shape} does not match the t2i ranks {t2i.shape}")
    captions = np.bincount(caption_image, minlength=n).astype(np.float64)
    hits, queries = [], []
    for metric in (m for m in METRICS if m.bootstrapped):
        if metric.direction == "i2t":  # one query per image
            hits.append(metric.hit(i2t).astype(np.float64))
            queries.append(np.ones(n))
        else:  # an image brings its captions
            hits.append(np.bincount(caption_image, weights=metric.hit(t2i), minlength=n))
            queries.append(captions)
    return ImageHits(np.stack(hits, axis=1), np.stack(queries, axis=1))


def image_weights(rng: np.random.Generator, n: int, resamples: int) -> Iterator[np.ndarray]:
    """Image weights of `resamples` bootstrap resamples, in chunks (rows, n): row r counts how often each image was
    drawn in n draws with replacement."""
    step = max(1, _CHUNK_ENTRIES // n)
    for start in range(0, resamples, step):
        rows = min(step, resamples - start)
        idx = rng.integers(0, n, size=(rows, n)) + (np.arange(rows) * n)[:, None]
        yield np.bincount(idx.ravel(), minlength=rows * n).reshape(rows, n).astype(np.float64)


def _percentiles(samples: np.ndarray, level: float) -> tuple[float, float]:
    tail = 100 * (1 - level) / 2
    return float(np.percentile(samples, tail)), float(np.percentile(samples, 100 - tail))


def bootstrap_ci(
    i2t: np.ndarray, t2i: np.ndarray, caption_image: np.ndarray, resamples: int, seed: int, level: float = 0.95
) -> dict[str, list[float]]:
    """{key: [low, high]} percentile intervals for every key of `metrics.CI_KEYS`, resampling images."""
    table = image_hits(i2t, t2i, caption_image)
    chunks = [
        np.stack([table.metric(w, key) for key in CI_KEYS], axis=1)
        for w in image_weights(np.random.default_rng(seed), len(table), resamples)
    ]
    samples = np.concatenate(chunks)
    return {key: list(_percentiles(samples[:, j], level)) for j, key in enumerate(CI_KEYS)}


Ranks = tuple[np.ndarray, np.ndarray]  # (i2t ranks (n_images,), t2i ranks (n_captions,)) of one run


def paired_test(
    a: Ranks, b: Ranks, caption_image: np.ndarray, metric: str, permutations: int, seed: int
) -> tuple[float, float]:
    """(metric of a − metric of b on the same queries, two-sided sign-flip p-value with signs flipped per image)."""
    ha, hb = image_hits(*a, caption_image), image_hits(*b, caption_image)
    if ha.hits.shape != hb.hits.shape:
        raise ValueError(f"paired test needs the same queries: {len(ha)} vs {len(hb)} images")
    columns = metric_columns(metric)
    per_image = sum(100.0 * (ha.hits[:, c] - hb.hits[:, c]) / ha.queries[:, c].sum() for c in columns)
    observed = float(per_image.sum())
    rng = np.random.default_rng(seed)
    step = max(1, _CHUNK_ENTRIES // len(per_image))
    extreme = 0
    for start in range(0, permutations, step):
        signs = rng.choice(np.array([-1.0, 1.0]), size=(min(step, permutations - start), len(per_image)))
        extreme += int(np.count_nonzero(np.abs(signs @ per_image) >= abs(observed) - 1e-9))
    return observed, float((extreme + 1) / (permutations + 1))


@dataclass(frozen=True)
class SeedDifference:
    """a − b of a metric, each system averaged over its training seeds, with a hierarchical-bootstrap interval."""

    difference: float  # mean over a's seeds − mean over b's seeds
    ci95: tuple[float, float]
    p_value: float  # two-sided: twice the share of resamples on the far side of 0 (+1 smoothing), at most 1
    seeds: tuple[int, int]  # how many runs of a and of b


def seed_test(
    runs_a: Sequence[Ranks],
    runs_b: Sequence[Ranks],
    caption_image: np.ndarray,
    metric: str,
    resamples: int,
    seed: int,
    level: float = 0.95,
) -> SeedDifference:
    """Compare two systems with one or more training runs each on the same queries: each resample draws a's seeds
    and b's seeds with replacement and one image resample for both; the statistic is the difference of the seed
    means of `metric`."""
    tables = [[image_hits(*run, caption_image) for run in runs] for runs in (runs_a, runs_b)]
    if not all(tables) or len({len(t) for ts in tables for t in ts}) != 1:
        raise ValueError("seed test: each system needs at least one run, all on the same images")
    n = len(tables[0][0])
    ones = np.ones((1, n))

    def seed_mean(runs: list[ImageHits], weights: np.ndarray, draws: np.ndarray | None) -> np.ndarray:
        values = np.stack([t.metric(weights, metric) for t in runs], axis=1)  # (rows, seeds)
        counts = np.ones_like(values) if draws is None else draws
        return (values * counts).sum(axis=1) / counts.sum(axis=1)

    observed = float(seed_mean(tables[0], ones, None)[0] - seed_mean(tables[1], ones, None)[0])
    rng = np.random.default_rng(seed)
    chunks = []
    for weights in image_weights(rng, n, resamples):
        rows = len(weights)
        draws = [
            np.stack([np.bincount(r, minlength=len(runs)) for r in rng.integers(0, len(runs), (rows, len(runs)))])
            for runs in tables
        ]
        chunks.append(seed_mean(tables[0], weights, draws[0]) - seed_mean(tables[1], weights, draws[1]))
    samples = np.concatenate(chunks)
    far = min(np.count_nonzero(samples <= 0), np.count_nonzero(samples >= 0))
    p = min(1.0, 2 * (far + 1) / (len(samples) + 1))
    return SeedDifference(observed, _percentiles(samples, level), float(p), (len(runs_a), len(runs_b)))
