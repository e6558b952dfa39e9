"""Retrieval metrics as pure functions of a similarity matrix and a ground-truth mapping.

`sim` is (n_images, n_captions); `caption_image[j]` is the image of caption j (captions per image is data, not a
constant). Ranks are 0-based: the number of gallery items scored strictly higher than the best ground truth (ties are
resolved in the query's favour). Keys are the ones every report uses:
i2t_r1 i2t_r5 i2t_r10 t2i_r1 t2i_r5 t2i_r10 (percent), i2t_medr t2i_medr (floor(median)+1), i2t_meanr t2i_meanr (+1),
rsum (the sum of the six recalls), as in the VSRN/StacMR evaluation.
"""

from __future__ import annotations

import numpy as np

RECALL_KS = (1, 5, 10)


def i2t_ranks(sim: np.ndarray, caption_image: np.ndarray) -> np.ndarray:
    """(n_images,) rank of each image's best-ranked ground-truth caption."""
    n_images = sim.shape[0]
    gt = np.where(caption_image[None, :] == np.arange(n_images)[:, None], sim, -np.inf).max(axis=1)
    return (sim > gt[:, None]).sum(axis=1)


def t2i_ranks(sim: np.ndarray, caption_image: np.ndarray) -> np.ndarray:
    """(n_captions,) rank of each caption's image among all images."""
    gt = sim[caption_image, np.arange(sim.shape[1])]
    return (sim > gt[None, :]).sum(axis=0)


def summarize(i2t: np.ndarray, t2i: np.ndarray) -> dict[str, float]:
    """The metric dict of two rank vectors."""
    out: dict[str, float] = {}
    for name, ranks in (("i2t", i2t), ("t2i", t2i)):
        for k in RECALL_KS:
            out[f"{name}_r{k}"] = float(100.0 * np.mean(ranks < k))
        out[f"{name}_medr"] = float(np.floor(np.median(ranks)) + 1)
        out[f"{name}_meanr"] = float(np.mean(ranks) + 1)
    out["rsum"] = sum(out[f"{d}_r{k}"] for d in ("i2t", "t2i") for k in RECALL_KS)
    return out
