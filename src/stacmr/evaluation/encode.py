"""Encode every image and caption of a feature store with a model, batch by batch, without gradients.

Returns float32 numpy arrays: image embeddings (N, E), caption embeddings (N·C, E), and `caption_image` (N·C,), the
image of each caption (image-major: caption j belongs to image j // C).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from stacmr.features.store import FeatureStore
from stacmr.features.vocab import Vocabulary
from stacmr.models import RetrievalModel
from stacmr.training.batches import read_captions, read_images


@dataclass(frozen=True)
class Encoded:
    img_emb: np.ndarray  # (N, E)
    cap_emb: np.ndarray  # (N·C, E)
    caption_image: np.ndarray  # (N·C,) int64

    def subset(self, images: np.ndarray) -> Encoded:
        """The given images (sorted indices) with their captions, re-indexed from 0."""
        caps = np.flatnonzero(np.isin(self.caption_image, images))
        remapped = np.searchsorted(images, self.caption_image[caps])
        return Encoded(self.img_emb[images], self.cap_emb[caps], remapped)


@torch.no_grad()
def encode_store(
    model: RetrievalModel,
    store: FeatureStore,
    vocab: Vocabulary,
    max_words: int,
    device: torch.device,
    batch_size: int = 256,
) -> Encoded:
    was_training = model.training
    model.eval()
    try:
        n, c = len(store), store.sizes["C"]
        img_parts, cap_parts = [], []
        for start in range(0, n, batch_size):
            rows = np.arange(start, min(start + batch_size, n))
            img_parts.append(model.encode_images(read_images(store, rows).to(device)).float().cpu().numpy())
        for start in range(0, n * c, batch_size):
            rows = np.arange(start, min(start + batch_size, n * c))
            captions = read_captions(store, rows, vocab, max_words).to(device)
            cap_parts.append(model.encode_captions(captions).float().cpu().numpy())
    finally:
        model.train(was_training)
    return Encoded(np.concatenate(img_parts), np.concatenate(cap_parts), np.arange(n * c) // c)
