"""Training losses on an image×caption similarity matrix, and the caption-generation loss of VSRN's decoder.

`sim` is always (B, B) with the positive pairs on the diagonal: `sim[i, j]` scores image i against caption j, and
caption i belongs to image i. Families pass one of the retrieval losses to `RetrievalModel.loss` as a callable
(e.g. `functools.partial(hinge_triplet, margin=0.2, max_violation=True)`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from stacmr.models.shards import current, global_sum


def _check_square(sim: Tensor) -> None:
    if sim.dim() != 2 or sim.shape[0] != sim.shape[1]:
        raise ValueError(f"similarity matrix must be square (B, B) with positives on the diagonal, got {sim.shape}")


def hinge_triplet(sim: Tensor, margin: float, max_violation: bool) -> Tensor:
    """VSE++ hinge triplet loss, summed over both retrieval directions and the batch (as VSE++, VSRN and StacMR).

    sim: (B, B). Image i against wrong captions j: [margin + sim[i, j] - sim[i, i]]₊ (row i); caption j against
    wrong images i: [margin + sim[i, j] - sim[j, j]]₊ (column j). `max_violation` keeps the hardest negative of each
    row and column (VSE++ "MH", the release's --max_violation), else every negative counts. Returns a scalar; 0 for
    B = 1 (no negatives).
    """
    _check_square(sim)
    positive = sim.diagonal()
    cost_captions = (margin + sim - positive[:, None]).clamp(min=0)
    cost_images = (margin + sim - positive[None, :]).clamp(min=0)
    # The positive pair is not its own negative (it would add `margin` to every row and column).
    eye = torch.eye(sim.shape[0], dtype=torch.bool, device=sim.device)
    cost_captions = cost_captions.masked_fill(eye, 0)
    cost_images = cost_images.masked_fill(eye, 0)
    if max_violation:
        return cost_captions.max(dim=1).values.sum() + cost_images.max(dim=0).values.sum()
    return cost_captions.sum() + cost_images.sum()


def info_nce(sim: Tensor, temperature: float) -> Tensor:
    """Symmetric InfoNCE (CLIP): the mean of the cross-entropies of `sim / temperature` over rows (image→caption)
    and over columns (caption→image), the diagonal being the target. sim: (B, B); returns a scalar."""
    _check_square(sim)
    logits = sim / temperature
    target = torch.arange(sim.shape[0], device=sim.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def caption_generation_loss(logits: Tensor, targets: Tensor, pad_id: int = 0) -> Tensor:
    """Cross-entropy of the next word, averaged over the targets that are not `pad_id` (VSRN's language-model
    criterion: masked sum over the mask's sum). logits: (B, L, V); targets: (B, L) int64, at least one not padding."""
    logits, targets = logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)
    if current().size == 1:
        return F.cross_entropy(logits, targets, ignore_index=pad_id)
    # a batch split over processes (`stacmr.models.shards`): this share's sum over the global batch's target count
    summed = F.cross_entropy(logits, targets, ignore_index=pad_id, reduction="sum")
    return summed / global_sum((targets != pad_id).sum()).to(summed.dtype)
