"""Model inputs read from a feature store: images and captions by row, in any order, as the models' batches.

Nothing is loaded whole: each call reads its images from the HDF5 store (sorted unique rows, as h5py wants) and
tokenises its captions on the fly, so memory is bounded by the rows asked for, not the dataset. Training batches
(`stacmr.training.batches`) and encoding (`stacmr.evaluation.encode`) both read through here.
"""

from __future__ import annotations

import numpy as np
import torch

from stacmr.features.store import FeatureStore
from stacmr.features.vocab import Vocabulary
from stacmr.models import CaptionBatch, ImageBatch
from stacmr.models.characters import MAX_CHARS, encode_strings
from stacmr.text import words


def read_images(store: FeatureStore, rows: np.ndarray, characters: bool = False) -> ImageBatch:
    """The images at `rows` (any order, repeats allowed) as float32 tensors; with `characters`, also the OCR
    strings' char ids (`ImageBatch.ocr_chars`), for the families that spell words."""
    unique, inverse = np.unique(rows, return_inverse=True)
    regions = store["regions"][unique].astype(np.float32)[inverse]
    counts = store["region_count"][unique][inverse]
    ocr = store["ocr_emb"][unique].astype(np.float32)[inverse]
    store.check_finite(rows, regions=regions, ocr_emb=ocr)  # NaN/inf: one error naming the file, field and image
    ocr_mask = store["ocr_mask"][unique][inverse]
    region_mask = np.arange(regions.shape[1])[None, :] < counts[:, None]
    ocr_chars = None
    if characters:
        strings = store["ocr_tokens"].asstr()[unique][inverse]  # (B, T), "" in padded slots
        ocr_chars = torch.from_numpy(encode_strings(strings.ravel().tolist()).reshape(*strings.shape, -1))
    return ImageBatch(
        regions=torch.from_numpy(regions),
        region_mask=torch.from_numpy(region_mask),
        ocr=torch.from_numpy(ocr),
        ocr_mask=torch.from_numpy(ocr_mask),
        ocr_chars=ocr_chars,
    )


def encode_captions(captions: list[str], vocab: Vocabulary, max_words: int, characters: bool = False) -> CaptionBatch:
    """Word ids of `captions`; with `characters`, also each word's spelling (`CaptionBatch.word_chars`: the words
    `vocab.encode` maps, so a word out of the vocabulary keeps its characters; an empty caption's <unk> has none)."""
    ids = [vocab.encode(c, max_words) for c in captions]
    lengths = np.array([len(x) for x in ids], dtype=np.int64)
    tokens = np.zeros((len(ids), lengths.max()), dtype=np.int64)
    for i, x in enumerate(ids):
        tokens[i, : len(x)] = x
    word_chars = None
    if characters:
        word_chars = np.zeros((*tokens.shape, MAX_CHARS + 1), dtype=np.int64)
        for i, caption in enumerate(captions):
            spelt = words(caption)[:max_words]
            word_chars[i, : len(spelt)] = encode_strings(spelt)
        word_chars = torch.from_numpy(word_chars)
    return CaptionBatch(tokens=torch.from_numpy(tokens), lengths=torch.from_numpy(lengths), word_chars=word_chars)


def read_captions(
    store: FeatureStore, caption_rows: np.ndarray, vocab: Vocabulary, max_words: int, characters: bool = False
) -> CaptionBatch:
    """Captions by flat index (image i's k-th caption is i·C + k), any order; `characters` as `encode_captions`."""
    c = store.sizes["C"]
    images = caption_rows // c
    unique, inverse = np.unique(images, return_inverse=True)
    texts = store["captions"].asstr()[unique][inverse, caption_rows % c]
    return encode_captions(list(texts), vocab, max_words, characters)
