"""Training batches from a feature store: (image, caption) pairs read through `stacmr.features.reader`. A training epoch
visits every caption once (the VSRN/StacMR convention: an item is a caption with its image), in an order drawn from
(seed, epoch) alone, so a resumed run sees exactly the batches an uninterrupted one would.

The loader keeps a GPU fed without changing a value: the store's image features are held in RAM when they fit
(`stacmr.features.memory`: else read from the file, chunk-aware), the next batches are read in a background thread
while the model steps (`stacmr.prefetch`), and for a CUDA device they are made in pinned memory and copied with
`non_blocking=True`. The batches, their values, dtypes and order are bit for bit those of the reader before the
loader (one HDF5 read by index array per field and batch: tests/test_loader.py) whatever the memory, so the loader
has no setting in params.yaml and none is part of a run's identity.
At release sizes (36 × 2048 float16 regions per image, 128 captions a batch) it reads ~19,000 captions/s from RAM on 2
CPU cores, 45× one HDF5 read by index array per field and batch (README, Loader; `benchmarks/loader_speed.py`).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from stacmr.features.memory import hold
from stacmr.features.reader import read_captions, read_images
from stacmr.features.store import FeatureStore
from stacmr.features.vocab import Vocabulary
from stacmr.models import CaptionBatch, ImageBatch
from stacmr.models.shards import SINGLE, Shards
from stacmr.prefetch import prefetch

PREFETCH = 2  # batches read ahead: one ready for the next step, one being read
CPU = torch.device("cpu")


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
    *,
    device: torch.device = CPU,
    memory_budget: int | None = None,
    read_ahead: int | None = None,
    shards: Shards = SINGLE,
) -> Iterator[tuple[ImageBatch, CaptionBatch]]:
    """(images, captions) batches of one epoch on `device`, consecutive windows of `order` (the epoch's caption
    order: `epoch_order`, or `sampler.neighbour_order`); images[i] is the image of captions[i]. The last short batch
    is kept unless it has a single pair (a hinge loss needs a negative). `characters`: with the words' and OCR
    strings' char ids (`stacmr.features.reader`), for a family that `reads_characters`. `memory_budget`: bytes the
    store's features may take in RAM (`stacmr.features.memory.hold`; None: half the memory available, 0: read from
    the file); `read_ahead`: batches read ahead in a background thread (0: none, each read when asked for; None:
    `PREFETCH` on an accelerator, none on the CPU, where a reading thread beside torch's compute threads
    oversubscribes the cores: on 2 cores a VSRN epoch took 1.8× as long with it). `shards`: a batch split over
    processes (`stacmr.training.processes`): `batch_size` is the global batch, of which this process reads its
    contiguous share (`np.array_split`, in rank order); a last batch with fewer pairs than processes is left out."""
    hold(store, memory_budget)
    c, pin = store.sizes["C"], device.type == "cuda"
    windows = (order[start : start + batch_size] for start in range(0, len(order), batch_size))
    shares = (
        np.array_split(window, shards.size)[shards.rank] for window in windows if len(window) >= max(2, shards.size)
    )
    read = (
        (read_images(store, rows // c, characters, pin), read_captions(store, rows, vocab, max_words, characters, pin))
        for rows in shares
    )
    depth = (0 if device.type == "cpu" else PREFETCH) if read_ahead is None else read_ahead
    for images, captions in prefetch(read, depth):
        yield images.to(device, non_blocking=pin), captions.to(device, non_blocking=pin)


def n_batches(store: FeatureStore, batch_size: int, shards: Shards = SINGLE) -> int:
    """The number of batches `training_batches` gives an epoch of the store's captions."""
    n = len(store) * store.sizes["C"]
    return n // batch_size + (n % batch_size >= max(2, shards.size))
