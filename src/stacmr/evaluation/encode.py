"""Encode every image and caption of a feature store with a model, batch by batch, without gradients.

Returns image embeddings (N, E), caption embeddings (N·C, E) in float32, and `caption_image` (N·C,), the image of
each caption (image-major: caption j belongs to image j // C). Dense embeddings are numpy arrays when the model runs
on the CPU (ranked on the host, `ranking.py`) and tensors kept on the model's device otherwise (ranked there,
`device_ranking.py`). A fine-grained family's embeddings are `VectorSets` instead (images (N, R, E), captions
(N·C, L, E), padded to the longest set), kept on the model's device for `stacmr.evaluation.finegrained` to score
there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from stacmr.errors import StacmrError
from stacmr.features.reader import read_captions, read_images
from stacmr.features.store import FeatureStore
from stacmr.features.vocab import Vocabulary
from stacmr.models import RetrievalModel, VectorSets


@dataclass(frozen=True)
class Encoded:
    img_emb: np.ndarray | Tensor | VectorSets  # (N, E): numpy on the CPU, a tensor on a GPU; or N sets (N, R, E)
    cap_emb: np.ndarray | Tensor | VectorSets  # (N·C, E), or N·C sets (N·C, L, E)
    caption_image: np.ndarray  # (N·C,) int64

    def subset(self, images: np.ndarray) -> Encoded:
        """The given images (sorted indices) with their captions, re-indexed from 0."""
        caps = np.flatnonzero(np.isin(self.caption_image, images))
        remapped = np.searchsorted(images, self.caption_image[caps])
        return Encoded(_take(self.img_emb, images), _take(self.cap_emb, caps), remapped)


def _take(emb: np.ndarray | Tensor | VectorSets, index: np.ndarray) -> np.ndarray | Tensor | VectorSets:
    if isinstance(emb, np.ndarray):
        return emb[index]
    if isinstance(emb, VectorSets):
        return emb.take(torch.from_numpy(index).to(emb.emb.device))
    return emb[torch.from_numpy(index).to(emb.device)]


def _join(parts: list[Tensor | VectorSets]) -> np.ndarray | Tensor | VectorSets:
    """Batches' embeddings as one array (a numpy array on the CPU, else a tensor left on the device), or one
    `VectorSets` padded to the longest set (left on the device)."""
    if not isinstance(parts[0], VectorSets):
        emb = torch.cat([p.float() for p in parts])
        return emb.numpy() if emb.device.type == "cpu" else emb
    longest = max(p.emb.shape[1] for p in parts)
    emb = torch.cat([F.pad(p.emb.float(), (0, 0, 0, longest - p.emb.shape[1])) for p in parts])
    mask = torch.cat([F.pad(p.mask, (0, longest - p.mask.shape[1])) for p in parts])
    return VectorSets(emb, mask)


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
        characters = getattr(model, "reads_characters", False)  # spelling families read the strings too
        boxes = getattr(model, "reads_boxes", False)  # families that place objects (Q-Pert) read the boxes
        img_parts, cap_parts = [], []
        for start in range(0, n, batch_size):
            rows = np.arange(start, min(start + batch_size, n))
            img_parts.append(model.encode_images(read_images(store, rows, characters, boxes=boxes).to(device)))
        for start in range(0, n * c, batch_size):
            rows = np.arange(start, min(start + batch_size, n * c))
            captions = read_captions(store, rows, vocab, max_words, characters).to(device)
            cap_parts.append(model.encode_captions(captions))
    finally:
        model.train(was_training)
    for kind, parts in (("image", img_parts), ("caption", cap_parts)):
        if not all(bool(torch.isfinite(p.emb if isinstance(p, VectorSets) else p).all()) for p in parts):
            raise StacmrError(
                f"{store.path}: the model's {kind} embeddings of this store are NaN or infinite "
                "(a diverged or damaged checkpoint; the store's features are finite)"
            )
    return Encoded(_join(img_parts), _join(cap_parts), np.arange(n * c) // c)
