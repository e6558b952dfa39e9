"""Comparison of two ablations on one split (`stacmr.evaluation.statistics`): the paired sign-flip test of one run
each over the same queries (the ablation and headroom tables), and the seed-aware test over every training run of
each (the claims check). Both treat an image and its captions as one unit.

Reads the saved per-query ranks through `Results.ranks` and `SeedRuns.ranks`.
"""

from __future__ import annotations

from stacmr.errors import StacmrError
from stacmr.evaluation.metrics import CI_KEYS
from stacmr.evaluation.statistics import SeedDifference, paired_test, seed_test
from stacmr.reporting.results import Results
from stacmr.reporting.seeds import SeedRuns


def _check(metric: str) -> None:
    if metric not in CI_KEYS:
        raise StacmrError(f"comparison: unknown metric {metric!r} (one of {list(CI_KEYS)})")


def paired_difference(
    results: Results, a: str, b: str, split: str, metric: str, permutations: int, seed: int
) -> tuple[float, float]:
    """(metric of a − metric of b on `split`, two-sided p-value); metric is rsum or a recall key like t2i_r1."""
    _check(metric)
    ranks_a, ranks_b = results.ranks(a, split), results.ranks(b, split)
    pair = (ranks_a["i2t"], ranks_a["t2i"]), (ranks_b["i2t"], ranks_b["t2i"])
    return paired_test(*pair, ranks_a["caption_image"], metric, permutations, seed)


def seed_difference(a: SeedRuns, b: SeedRuns, metric: str, resamples: int, seed: int) -> SeedDifference:
    """a − b of `metric` over all training runs of each, hierarchical bootstrap over seeds, then images."""
    _check(metric)
    runs_a, caption_image = a.ranks()
    runs_b, _ = b.ranks()
    return seed_test(runs_a, runs_b, caption_image, metric, resamples, seed)
