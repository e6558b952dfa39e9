"""Training batches streamed from a feature store: (image, caption) pairs read through `stacmr.features.reader`, so
memory is bounded by the batch size, not the dataset. A training epoch visits every caption once (the VSRN/StacMR
convention: an item is a caption with its image), in an order drawn from (seed, epoch) alone, so a resumed run sees
exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from stacmr.features.reader import read_captions, read_images
from stacmr.features.store import FeatureStore
from stacmr.features.vocab import Vocabulary
from stacmr.models import CaptionBatch, ImageBatch


def epoch_order(n_captions: int, seed: int, epoch: int) -> np.ndarray:
    """The caption order of one epoch, a function of (seed, epoch) only."""
    return np.random.default_rng([seed, epoch]).permutation(n_captions)


def training_batches(
    store: FeatureStore,
    vocab: Vocabulary,
    batch_size: int,
    order: np.ndarray,
    max_words: int,
    characters: bool = False,
) -> Iterator[tuple[ImageBatch, CaptionBatch]]:
    """(images, captions) batches of one epoch, consecutive windows of `order` (the epoch's caption order:
    `epoch_order`, or `sampler.neighbour_order`); images[i] is the image of captions[i]. The last short batch is kept
    unless it has a single pair (a hinge loss needs a negative). `characters`: with the words' and OCR strings'
    char ids (`stacmr.features.reader`), for a family that `reads_characters`."""
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        if len(rows) < 2:
            break
        yield (
            read_images(store, rows // store.sizes["C"], characters),
            read_captions(store, rows, vocab, max_words, characters),
        )


def n_batches(store: FeatureStore, batch_size: int) -> int:
    n = len(store) * store.sizes["C"]
    return n // batch_size + (n % batch_size >= 2)
