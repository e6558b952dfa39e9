"""Tiny model inputs and settings shared by the model tests: batches with padding in every place it can be, their
dimensions, and the family settings and loss that several test modules build models with."""

from __future__ import annotations

import dataclasses
from functools import partial

import torch
from torch import nn

from stacmr.losses import hinge_triplet
from stacmr.models import CaptionBatch, DataDims, ImageBatch

VOCAB, REGION_DIM, OCR_DIM, SLOTS = 20, 10, 6, 4
DIMS = DataDims(region_dim=REGION_DIM, ocr_dim=OCR_DIM, ocr_slots=SLOTS, vocab_size=VOCAB)
HINGE = partial(hinge_triplet, margin=0.2, max_violation=True)
CHAN = {
    "embed_dim": 16,
    "word_dim": 8,
    "self_attention": True,
    "pooling": "lse",
    "temperature": 0.1,
    "margin": 0.05,
    "max_violation": True,
    "region_drop": 0.2,
    "token_mask": 0.1,
    "word_init": "random",
}


def make_images(b: int = 4, seed: int = 0, ocr_counts: tuple[int, ...] | None = None) -> ImageBatch:
    generator = torch.Generator().manual_seed(seed)
    region_counts = torch.tensor([5, 3, 1, 4, 2, 5, 5, 3][:b])
    ocr_counts = torch.tensor(ocr_counts if ocr_counts is not None else (2, 0, 4, 1, 3, 2, 1, 4)[:b])
    region_mask = torch.arange(5)[None, :] < region_counts[:, None]
    # OCR slots are masked out of order too: a real token may follow a padded slot.
    ocr_mask = torch.stack([torch.randperm(SLOTS, generator=generator) < n for n in ocr_counts])
    regions = torch.randn(b, 5, REGION_DIM, generator=generator)
    ocr = torch.randn(b, SLOTS, OCR_DIM, generator=generator)
    return ImageBatch(
        regions=torch.where(region_mask[..., None], regions, 0),
        region_mask=region_mask,
        ocr=torch.where(ocr_mask[..., None], ocr, 0),
        ocr_mask=ocr_mask,
    )


def make_captions(b: int = 4, seed: int = 0) -> CaptionBatch:
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([6, 2, 4, 1, 5, 3, 6, 2][:b])
    tokens = torch.randint(4, VOCAB, (b, 6), generator=generator)
    return CaptionBatch(tokens=torch.where(torch.arange(6)[None, :] < lengths[:, None], tokens, 0), lengths=lengths)


def garble_padding(images: ImageBatch, captions: CaptionBatch) -> tuple[ImageBatch, CaptionBatch]:
    """The same batch with large random values in every padded region, OCR slot and caption position."""
    generator = torch.Generator().manual_seed(99)
    regions = torch.where(images.region_mask[..., None], images.regions, 50 * torch.randn(images.regions.shape))
    ocr = torch.where(images.ocr_mask[..., None], images.ocr, 50 * torch.randn(images.ocr.shape))
    real_words = torch.arange(captions.tokens.shape[1])[None, :] < captions.lengths[:, None]
    tokens = torch.where(
        real_words, captions.tokens, torch.randint(1, VOCAB, captions.tokens.shape, generator=generator)
    )
    return (
        dataclasses.replace(images, regions=regions, ocr=ocr),
        dataclasses.replace(captions, tokens=tokens),
    )


def finite_grads(model: nn.Module) -> bool:
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return bool(grads) and all(torch.isfinite(g).all() for g in grads)
