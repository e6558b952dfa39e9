"""Batches streamed from a feature store: (image, caption) pairs for training, images or captions for encoding.

Nothing is loaded whole: each batch reads its images from the HDF5 store (sorted unique rows, as h5py wants) and
tokenises its captions on the fly, so memory is bounded by the batch size, not the dataset. A training epoch visits
every caption once (the VSRN/StacMR convention: an item is a caption with its image), in an order drawn from
(seed, epoch) alone, so a resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from stacmr.features.store import FeatureStore
from stacmr.features.vocab import Vocabulary
from stacmr.models import CaptionBatch, ImageBatch


def read_images(store: FeatureStore, rows: np.ndarray) -> ImageBatch:
    """The images at `rows` (any order, repeats allowed) as float32 tensors."""
    unique, inverse = np.unique(rows, return_inverse=True)
    regions = store["regions"][unique].astype(np.float32)[inverse]
    counts = store["region_count"][unique][inverse]
    ocr = store["ocr_emb"][unique].astype(np.float32)[inverse]
    ocr_mask = store["ocr_mask"][unique][inverse]
    region_mask = np.arange(regions.shape[1])[None, :] < counts[:, None]
    return ImageBatch(
        regions=torch.from_numpy(regions),
        region_mask=torch.from_numpy(region_mask),
        ocr=torch.from_numpy(ocr),
        ocr_mask=torch.from_numpy(ocr_mask),
    )


def encode_captions(captions: list[str], vocab: Vocabulary, max_words: int) -> CaptionBatch:
    ids = [vocab.encode(c, max_words) for c in captions]
    lengths = np.array([len(x) for x in ids], dtype=np.int64)
    tokens = np.zeros((len(ids), lengths.max()), dtype=np.int64)
    for i, x in enumerate(ids):
        tokens[i, : len(x)] = x
    return CaptionBatch(tokens=torch.from_numpy(tokens), lengths=torch.from_numpy(lengths))


def read_captions(store: FeatureStore, caption_rows: np.ndarray, vocab: Vocabulary, max_words: int) -> CaptionBatch:
    """Captions by flat index (image i's k-th caption is i·C + k), any order."""
    c = store.sizes["C"]
    images = caption_rows // c
    unique, inverse = np.unique(images, return_inverse=True)
    texts = store["captions"].asstr()[unique][inverse, caption_rows % c]
    return encode_captions(list(texts), vocab, max_words)


def epoch_order(n_captions: int, seed: int, epoch: int) -> np.ndarray:
    """The caption order of one epoch, a function of (seed, epoch) only."""
    return np.random.default_rng([seed, epoch]).permutation(n_captions)


def training_batches(
    store: FeatureStore, vocab: Vocabulary, batch_size: int, seed: int, epoch: int, max_words: int
) -> Iterator[tuple[ImageBatch, CaptionBatch]]:
    """(images, captions) batches of one epoch; images[i] is the image of captions[i]. The last short batch is kept
    unless it has a single pair (a hinge loss needs a negative)."""
    order = epoch_order(len(store) * store.sizes["C"], seed, epoch)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        if len(rows) < 2:
            break
        yield read_images(store, rows // store.sizes["C"]), read_captions(store, rows, vocab, max_words)


def n_batches(store: FeatureStore, batch_size: int) -> int:
    n = len(store) * store.sizes["C"]
    return n // batch_size + (n % batch_size >= 2)
