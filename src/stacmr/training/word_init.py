"""A shared word space: caption word vectors initialised from the OCR fastText model (`word_init: ocr_fasttext`).

The OCR tokens reach every scene-text family as fastText vectors (300-d, the features stage's model); caption words
start random in a space of their own (as in the releases), so a caption word and the OCR reading of the same word
start unrelated, and the embedded world's training never learns to match them (issue #13). Here each vocabulary
word's fastText vector is projected to the family's word size by PCA fitted on the vocabulary's vectors, rescaled so
that its entries have the spread of the random initialisation (uniform ±0.1, std 0.1/√3), and copied into the
family's caption word embedding. The four reserved ids (<pad>, <start>, <end>, <unk>) keep their initial rows.

What was fitted goes into the run's spec (so into the checkpoint): the fastText model's sha256, the PCA mean
(fastText dim,) and components (word_dim, fastText dim), the scale, the explained variance.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stacmr.checksum import sha256_file
from stacmr.errors import StacmrError
from stacmr.features.ocr_embedding import OcrEmbedder
from stacmr.features.vocab import Vocabulary
from stacmr.models import RetrievalModel

RANDOM_INIT_STD = 0.1 / math.sqrt(3.0)  # std of the releases' uniform ±0.1 word vectors
_RESERVED = 4  # <pad>, <start>, <end>, <unk>


def pca_projection(vectors: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(mean (F,), components (dim, F) orthonormal rows, explained variance share) of the rows of `vectors`
    (n, F), n > dim, float64 arithmetic. Component signs are fixed (largest |entry| positive) so that the map is
    a function of the data alone."""
    n, features = vectors.shape
    if dim > min(n - 1, features):
        raise StacmrError(f"word_init: cannot project {n} word vectors of {features} dims onto {dim} components")
    data = vectors.astype(np.float64)
    mean = data.mean(axis=0)
    _, singular, vt = np.linalg.svd(data - mean, full_matrices=False)
    components = vt[:dim]
    signs = np.sign(components[np.arange(dim), np.abs(components).argmax(axis=1)])
    components = components * signs[:, None]
    explained = float((singular[:dim] ** 2).sum() / max((singular**2).sum(), 1e-300))
    return mean, components, explained


def ocr_fasttext_word_vectors(vocab: Vocabulary, fasttext_model: Path, dim: int) -> tuple[np.ndarray, dict[str, Any]]:
    """(vectors (len(vocab) − 4, dim) float32 for the vocabulary's words in id order, the record of the fit)."""
    embedder = OcrEmbedder.load(fasttext_model)
    words = vocab.itos[_RESERVED:]
    raw = np.stack([embedder.vector(word) for word in words]).astype(np.float64)
    mean, components, explained = pca_projection(raw, dim)
    projected = (raw - mean) @ components.T
    spread = float(projected.std())
    scale = RANDOM_INIT_STD / spread if spread > 0 else 1.0
    record = {
        "source": "ocr_fasttext",
        "fasttext_sha256": sha256_file(fasttext_model),
        "mean": mean.astype(np.float32).tolist(),
        "components": components.astype(np.float32).tolist(),
        "scale": scale,
        "explained_variance": explained,
    }
    return (projected * scale).astype(np.float32), record


def initialise_word_vectors(model: RetrievalModel, vectors: np.ndarray) -> None:
    """Copy `vectors` (V − 4, word_dim) into the model's caption word embedding, rows 4.. (the reserved ids keep
    theirs)."""
    embedding = model.caption_word_embedding()
    if embedding is None:
        raise StacmrError(f"word_init: {type(model).__name__} has no caption word embedding to initialise")
    rows, dim = embedding.weight.shape
    if vectors.shape != (rows - _RESERVED, dim):
        raise StacmrError(
            f"word_init: {vectors.shape[0]} word vectors of {vectors.shape[1]} dims for an embedding of "
            f"{rows - _RESERVED} words × {dim}"
        )
    with torch.no_grad():
        embedding.weight[_RESERVED:] = torch.from_numpy(vectors).to(embedding.weight)
