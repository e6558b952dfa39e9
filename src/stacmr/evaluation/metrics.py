"""Retrieval metrics as pure functions of a similarity matrix and a ground-truth mapping.

`caption_image[j]` is the image of caption j (captions per image is data, not a constant). Ranks are 0-based and
follow the release's tie order (see `ranking.py`). Keys are the ones every report uses:
i2t_r1 i2t_r5 i2t_r10 t2i_r1 t2i_r5 t2i_r10 (percent), i2t_medr t2i_medr (floor(median)+1), i2t_meanr t2i_meanr (+1),
rsum (the sum of the six recalls), as in the VSRN/StacMR evaluation.
"""

from __future__ import annotations

import numpy as np

from stacmr.evaluation.ranking import Similarity, i2t_ranks_sharded, t2i_ranks_sharded

RECALL_KS = (1, 5, 10)
RECALL_KEYS = tuple(f"{d}_r{k}" for d in ("i2t", "t2i") for k in RECALL_KS)
DEFAULT_BLOCK_BYTES = 64 << 20


def ranks(
    similarity: Similarity | np.ndarray,
    n_images: int,
    caption_image: np.ndarray,
    max_block_bytes: int = DEFAULT_BLOCK_BYTES,
    t2i_top: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(i2t ranks (n_images,), t2i ranks (n_captions,)) from a full matrix or a block function; `t2i_top`
    (n_captions, k), when given, receives each caption's k best images (`ranking.t2i_ranks_sharded`)."""
    if isinstance(similarity, np.ndarray):
        matrix = similarity
        similarity = lambda rows, cols: matrix[np.ix_(rows, cols)]  # noqa: E731
    i2t = i2t_ranks_sharded(similarity, n_images, caption_image, max_block_bytes)
    t2i = t2i_ranks_sharded(similarity, n_images, caption_image, max_block_bytes, t2i_top)
    return i2t, t2i


def recalls(ranks_: np.ndarray, prefix: str) -> dict[str, float]:
    return {f"{prefix}_r{k}": float(100.0 * np.mean(ranks_ < k)) for k in RECALL_KS}


def summarize(i2t: np.ndarray, t2i: np.ndarray) -> dict[str, float]:
    """The metric dict of two rank vectors."""
    out: dict[str, float] = {**recalls(i2t, "i2t"), **recalls(t2i, "t2i")}
    for name, r in (("i2t", i2t), ("t2i", t2i)):
        out[f"{name}_medr"] = float(np.floor(np.median(r)) + 1)
        out[f"{name}_meanr"] = float(np.mean(r) + 1)
    out["rsum"] = sum(out[k] for k in RECALL_KEYS)
    return out
