"""DSVE-style model (after Engilberge et al., CVPR 2018, "Finding beans in burgers"), labelled "DSVE-style (region
features)": DSVE pools a ResNet activation grid computed from raw pixels; here the same pooling acts on the region
features of the feature store.

Image: regions → Linear → activations A (B, R, H) → WELDON pooling over the regions (per channel, the mean of the k
highest plus the mean of the k lowest) → dropout → Linear → l2-norm (B, E). Caption: word embedding → GRU, state at
the last word → l2-norm (B, E) (DSVE used an SRU). Similarity: cosine. Loss: hinge, hardest negative, margin 0.2.

Localisation (DSVE-loc, in region form): for a phrase embedding p, the weight of pooled channel c in the similarity
is w_c = (W_outᵀ p)_c; the score of region r is Σ_c w_c A_rc over the phrase's `localisation_dims` largest w_c
(`Dsve.localise`, for the report's figures).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from stacmr.models.base import CaptionBatch, DataDims, ImageBatch, RetrievalModel, WordInit, config_range
from stacmr.models.layers import CaptionEncoder, l2norm
from stacmr.models.registry import register


@dataclass(frozen=True)
class DsveConfig:
    embed_dim: int = config_range(1)  # joint space E (DSVE: 2400)
    activation_dim: int = config_range(1)  # channels H of the region activations that WELDON pools (ResNet: 2048)
    word_dim: int = config_range(1)  # caption encoder word vectors (DSVE: 620)
    weldon_k: int = config_range(1, 100)  # regions in each of WELDON's top and bottom means (scaled for 36 regions)
    dropout: float = config_range(0.0, 1.0)  # on the pooled activations, before the last Linear
    margin: float = config_range(0.0, 2.0)  # hinge margin (DSVE: 0.2); replaces train.margin for this family
    max_violation: bool  # hardest negative after train.warmup_epochs (DSVE: true)
    localisation_dims: int = config_range(1)  # channels of the phrase's largest weights used by `localise`
    word_init: WordInit  # caption word vectors: random or ocr_fasttext (`stacmr.models.base.WordInit`)


def weldon_pool(x: Tensor, mask: Tensor, k: int) -> Tensor:
    """WELDON pooling over a set (Durand et al. CVPR 2016; DSVE's spatial pooling): per channel, the mean of the k
    highest plus the mean of the k lowest real activations (k capped at each row's real count).
    x (B, N, H), mask (B, N) with at least one real slot per row → (B, H)."""
    k = min(k, x.shape[1])
    real = mask[..., None]
    top = torch.where(real, x, float("-inf")).topk(k, dim=1).values  # (B, k, H), real values first
    bottom = torch.where(real, x, float("inf")).topk(k, dim=1, largest=False).values
    count = mask.sum(dim=1).clamp(max=k)  # (B,)
    kept = (torch.arange(k, device=x.device)[None, :] < count[:, None])[..., None]  # (B, k, 1)
    total = torch.where(kept, top, 0).sum(dim=1) + torch.where(kept, bottom, 0).sum(dim=1)
    return total / count[:, None].to(x.dtype)


@register("dsve")
class Dsve(RetrievalModel):
    """DSVE-style WELDON model, on the visual regions only."""

    label = "DSVE-style (region features)"
    scene_text = False
    config_class = DsveConfig
    hinge_from_config = True

    def __init__(self, config: DsveConfig, dims: DataDims) -> None:
        super().__init__()
        self.config = config
        self.region_fc = nn.Linear(dims.region_dim, config.activation_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(config.activation_dim, config.embed_dim)
        self.caption_encoder = CaptionEncoder(dims.vocab_size, config.word_dim, config.embed_dim)

    def activations(self, images: ImageBatch) -> Tensor:
        """A (B, R, H): the region activations WELDON pools; padded regions' rows are zero (and never pooled)."""
        return self.region_fc(torch.where(images.region_mask[..., None], images.regions, 0))

    def caption_word_embedding(self) -> nn.Embedding:
        return self.caption_encoder.embed

    def encode_images(self, images: ImageBatch) -> Tensor:
        pooled = weldon_pool(self.activations(images), images.region_mask, self.config.weldon_k)
        return l2norm(self.out(self.dropout(pooled)))

    def encode_captions(self, captions: CaptionBatch) -> Tensor:
        return self.caption_encoder(captions.tokens, captions.lengths)

    def loss(
        self, images: ImageBatch, captions: CaptionBatch, retrieval_criterion: Callable[[Tensor], Tensor]
    ) -> dict[str, Tensor]:
        retrieval = self.retrieval_loss(self.encode_images(images), self.encode_captions(captions), retrieval_criterion)
        return {"loss": retrieval, "retrieval": retrieval}

    @torch.no_grad()
    def localise(self, images: ImageBatch, phrases: CaptionBatch) -> Tensor:
        """Per-region scores of phrase b in image b: images and phrases of B (or phrases of 1, for every image) →
        (B, R), higher = the region shows the phrase; NaN at padded regions (nothing there to draw)."""
        weights = self.encode_captions(phrases) @ self.out.weight  # (B or 1, H): w = W_outᵀ p
        top = weights.topk(min(self.config.localisation_dims, weights.shape[1]), dim=1).indices
        kept = torch.zeros_like(weights).scatter(1, top, weights.gather(1, top))
        scores = torch.einsum("brh,bh->br", self.activations(images), kept.expand(len(images.regions), -1))
        return scores.masked_fill(~images.region_mask, float("nan"))
