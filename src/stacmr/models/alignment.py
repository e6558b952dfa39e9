"""Fine-grained word-region similarity (CHAN, Pan et al. CVPR 2023): hard assignment, then pooling over words.

An image is a set of unit region vectors, a caption a set of unit word vectors (`VectorSets`, padded, with masks).
For image i and caption j, each real word w takes its best real region: a_w = max_r <region_r, word_w> (hard
assignment: one region per word, no attention weights); the words' scores are pooled into one score by
  mean:  (1/n) Σ_w a_w
  lse:   β · log Σ_w exp(a_w / β)     (a soft maximum over the words; β → 0 gives max_w a_w)
Padded regions never win the max and padded words never enter the pooling. The same kernel serves training (the
in-batch B×B×R×L scores, with gradients) and evaluation (tiles of a sharded pass, `stacmr.evaluation.finegrained`).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from stacmr.models.base import VectorSets

Pooling = Literal["lse", "mean"]


def word_region_scores(img: VectorSets, cap: VectorSets) -> Tensor:
    """Each word's best region: img (Bi, R, E), cap (Bc, L, E) → (Bi, Bc, L); padded words' entries are arbitrary.

    One matrix product (Bi·R, E) × (E, Bc·L) — the FLOPs any exact method needs — with padded regions' rows
    pushed to -inf by the product's additive term (no pass over the big tensor to mask it), then a max over R.
    """
    bi, r, e = img.emb.shape
    bc, length, _ = cap.emb.shape
    hide = torch.zeros(bi * r, 1, dtype=img.emb.dtype, device=img.emb.device)
    hide.masked_fill_(~img.mask.reshape(-1, 1), float("-inf"))
    products = torch.addmm(hide, img.emb.reshape(bi * r, e), cap.emb.reshape(bc * length, e).T)
    return products.view(bi, r, bc, length).amax(dim=1)


def pool_words(scores: Tensor, word_mask: Tensor, pooling: Pooling, temperature: float) -> Tensor:
    """scores (Bi, Bc, L), word_mask (Bc, L) → (Bi, Bc): LSE with temperature β or the mean over real words."""
    if pooling == "mean":
        total = torch.where(word_mask[None], scores, 0).sum(dim=-1)
        return total / word_mask.sum(dim=-1).clamp(min=1).to(scores.dtype)[None]
    hidden = torch.where(word_mask[None], scores / temperature, float("-inf"))
    return temperature * torch.logsumexp(hidden, dim=-1)


def hard_assignment_similarity(img: VectorSets, cap: VectorSets, pooling: Pooling, temperature: float) -> Tensor:
    """(Bi, Bc) fine-grained image×caption scores."""
    return pool_words(word_region_scores(img, cap), cap.mask, pooling, temperature)
