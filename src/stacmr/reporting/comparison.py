"""Paired comparison of two ablations on one split: the difference of a metric over the same queries and its
sign-flip permutation p-value (`stacmr.evaluation.statistics`). Used by the ablation table and the claims check.

Reads the saved per-query ranks through `Results.ranks`.
"""

from __future__ import annotations

from stacmr.errors import StacmrError
from stacmr.evaluation.statistics import paired_rsum_test, paired_test
from stacmr.reporting.results import METRIC_KEYS, Results


def paired_difference(
    results: Results, a: str, b: str, split: str, metric: str, permutations: int, seed: int
) -> tuple[float, float]:
    """(metric of a − metric of b on `split`, two-sided p-value); metric is rsum or a recall key like t2i_r1."""
    if metric not in METRIC_KEYS:
        raise StacmrError(f"paired comparison: unknown metric {metric!r} (one of {list(METRIC_KEYS)})")
    ranks_a, ranks_b = results.ranks(a, split), results.ranks(b, split)
    if metric == "rsum":
        pair = ((ranks_a["i2t"], ranks_a["t2i"]), (ranks_b["i2t"], ranks_b["t2i"]))
        return paired_rsum_test(*pair, permutations, seed)
    direction, key = metric.split("_", 1)
    return paired_test(ranks_a[direction], ranks_b[direction], key, permutations, seed)
