"""A small feature store of five images, written in two blocks."""

from __future__ import annotations

import numpy as np

from stacmr.features.store import create_store

SIZES = {"N": 5, "R": 3, "D": 4, "T": 2, "E": 6, "C": 2}


def store_block(start: int, stop: int) -> dict:
    """The fields of images start..stop-1, one OCR token each (the other slot padded)."""
    n = stop - start
    rng = np.random.default_rng(start)
    tokens = np.full((n, 2), "", dtype=object)
    tokens[:, 0] = [f"W{i}" for i in range(start, stop)]
    return {
        "regions": rng.standard_normal((n, 3, 4)).astype(np.float16),
        "region_count": np.full(n, 3, dtype=np.int32),
        "ocr_emb": rng.standard_normal((n, 2, 6)).astype(np.float16),
        "ocr_mask": np.array([[True, False]] * n),
        "ocr_tokens": tokens,
        "ocr_boxes": np.full((n, 2, 4), np.nan, dtype=np.float32),
        "captions": np.array([[f"cap {i}.{k}" for k in range(2)] for i in range(start, stop)], dtype=object),
        "image_ids": np.array([str(i) for i in range(start, stop)], dtype=object),
        "explicit": np.zeros(n, dtype=bool),
    }


def make_store(path):
    """The five images at `path`, written in two blocks; returns `path`."""
    with create_store(path, "ctc/test", SIZES, {"p": 1}, {"in.npy": "abc"}) as out:
        out.write(0, **store_block(0, 3))
        out.write(3, **store_block(3, 5))
    return path
