"""Retrieval metrics as pure functions of the ranks, one table (`METRICS`) that every user reads.

`caption_image[j]` is the image of caption j (captions per image is data, not a constant). Ranks are 0-based and
follow the release's tie order (see `ranking.py`). A row of `METRICS` is one metric: its key, the direction whose
ranks it reads, its value, whether it is bootstrapped per image (`statistics`) and whether it counts in rsum. The
table gives the keys every report uses, in this order: i2t_r1 i2t_r5 i2t_r10 t2i_r1 t2i_r5 t2i_r10 (percent),
i2t_medr i2t_meanr t2i_medr t2i_meanr (floor(median)+1, mean+1), then rsum (the sum of the six recalls), as in the
VSRN/StacMR evaluation. Model selection (`SELECTION`) sums R@1 and R@5 both ways, as the release.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from stacmr.evaluation.device_ranking import DeviceSimilarity, device_ranks
from stacmr.evaluation.ranking import Similarity, i2t_ranks_sharded, t2i_ranks_sharded

DIRECTIONS = ("i2t", "t2i")
RECALL_KS = (1, 5, 10)
ARROWS = {"i2t": "i→t", "t2i": "t→i"}  # a direction in a table's column label
DEFAULT_BLOCK_BYTES = 64 << 20


@dataclass(frozen=True)
class Metric:
    """One metric of one direction's ranks (0-based): a row of `METRICS`."""

    name: str  # its key in every metrics dict and file
    direction: str  # "i2t" (a rank per image) or "t2i" (a rank per caption): the ranks it reads
    label: str  # its column in the report's tables
    value: Callable[[np.ndarray], float]
    # a recall's hit per query (ranked within k): the metric is their share in percent, which an image bootstrap
    # resamples (`statistics.image_hits`); None: not bootstrapped, no confidence interval
    hit: Callable[[np.ndarray], np.ndarray] | None = None
    in_rsum: bool = False  # a term of rsum (which is then bootstrapped too: a term needs its hits)

    def __post_init__(self) -> None:
        if self.in_rsum and self.hit is None:
            raise ValueError(f"metric {self.name}: an rsum term must be bootstrapped (have per-query hits)")

    @property
    def bootstrapped(self) -> bool:
        return self.hit is not None


def _recall(direction: str, k: int) -> Metric:
    def hit(ranks_: np.ndarray) -> np.ndarray:
        return ranks_ < k

    label = f"{ARROWS[direction]} R@{k}"
    return Metric(f"{direction}_r{k}", direction, label, lambda r: float(100.0 * np.mean(hit(r))), hit, in_rsum=True)


def _median_rank(direction: str) -> Metric:
    return Metric(
        f"{direction}_medr", direction, f"{ARROWS[direction]} medr", lambda r: float(np.floor(np.median(r)) + 1)
    )


def _mean_rank(direction: str) -> Metric:
    return Metric(f"{direction}_meanr", direction, f"{ARROWS[direction]} meanr", lambda r: float(np.mean(r) + 1))


METRICS: tuple[Metric, ...] = (
    *(_recall(d, k) for d in DIRECTIONS for k in RECALL_KS),
    *(metric for d in DIRECTIONS for metric in (_median_rank(d), _mean_rank(d))),  # 1-based
)
RSUM = "rsum"  # the sum of the `in_rsum` metrics: the last key of `summarize`
RSUM_TERMS = tuple(m.name for m in METRICS if m.in_rsum)
BOOTSTRAPPED = tuple(m.name for m in METRICS if m.bootstrapped)
# the keys `statistics.bootstrap_ci` gives an interval, in its order: what the reports tabulate, test and compare
CI_KEYS = (*BOOTSTRAPPED, RSUM)
SELECTION = ("i2t_r1", "i2t_r5", "t2i_r1", "t2i_r5")  # model selection: their sum (the release's criterion)


def selection_score(metrics: dict[str, float]) -> float:
    """The sum of the `SELECTION` metrics: the higher, the better the model."""
    return sum(metrics[key] for key in SELECTION)


def ranks(
    similarity: Similarity | np.ndarray,
    n_images: int,
    caption_image: np.ndarray,
    max_block_bytes: int = DEFAULT_BLOCK_BYTES,
    t2i_top: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(i2t ranks (n_images,), t2i ranks (n_captions,)) from a full matrix or a block function; `t2i_top`
    (n_captions, k), when given, receives each caption's k best images (`ranking.t2i_ranks_sharded`). Scores on a GPU
    (a `DeviceSimilarity` not on the CPU) are counted there (`device_ranking.device_ranks`), any other on the host
    (`ranking.py`): the same counting, the same ranks of the same scores."""
    if isinstance(similarity, DeviceSimilarity) and similarity.on_gpu:
        return device_ranks(similarity, n_images, caption_image, max_block_bytes, t2i_top)
    if isinstance(similarity, np.ndarray):
        matrix = similarity
        similarity = lambda rows, cols: matrix[np.ix_(rows, cols)]  # noqa: E731
    i2t = i2t_ranks_sharded(similarity, n_images, caption_image, max_block_bytes)
    t2i = t2i_ranks_sharded(similarity, n_images, caption_image, max_block_bytes, t2i_top)
    return i2t, t2i


def summarize(i2t: np.ndarray, t2i: np.ndarray) -> dict[str, float]:
    """The metric dict of two rank vectors: every metric of `METRICS` in its order, then rsum."""
    by_direction = {"i2t": i2t, "t2i": t2i}
    out = {m.name: m.value(by_direction[m.direction]) for m in METRICS}
    out[RSUM] = sum(out[k] for k in RSUM_TERMS)
    return out
