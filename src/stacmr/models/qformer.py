"""A learned-query host after BLIP-2's Q-Former (Li et al., ICML 2023), `qformer` and `qformer_st`, the host of
Q-Pert at inference (`stacmr.models.qpert`).

Image: M learned queries pass through `layers` post-norm transformer layers (BERT style, as the Q-Former): self-
attention among the queries, multi-head cross-attention from the queries to the image's keys, a feed-forward block.
The keys and values are the image's regions (Linear → LayerNorm), padded regions masked; `qformer_st` appends its
OCR tokens (their own Linear, the same LayerNorm) as extra keys, masked by the OCR mask. Each query's output →
Linear → l2-norm: a set of M unit vectors (`VectorSets`, every slot real). Caption: the caption GRU
(`stacmr.models.layers.CaptionEncoder`), one unit vector, as a set of one. Score: the maximum over the queries of
the dot product with the caption vector (BLIP-2's image-text contrastive form). Loss: the one loop's hinge on the
in-batch scores, its margin and hardest-negative setting from `train` (BLIP-2 trains this score with InfoNCE; the
hinge keeps every family on one criterion). Not BLIP-2's: no frozen image encoder (the store's region features),
no text transformer sharing the queries' self-attention, no dropout, a small width.

Q-Pert (`qpert_*` settings, off by default) perturbs the queries of every cross-attention layer and head in
`encode_images` only, never in `loss`: training is unchanged, the settings add no weight and draw no random number,
so a host trained with Q-Pert on has the weights it has with it off. Its objects are every real region with a box
(`ImageBatch.region_boxes`) and, in `qformer_st`, every real OCR token with a box (`ImageBatch.ocr_boxes`): the
release used the annotated entity boxes of Flickr30K / COCO Entities, which these data do not have. A key's
coverage weight for an object is the fraction of the key's box inside the object's box; a key without a box has
weight 0. The families read boxes (`reads_boxes`); a batch without them is refused when Q-Pert is on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stacmr.errors import StacmrError
from stacmr.models.alignment import word_region_scores
from stacmr.models.base import CaptionBatch, DataDims, ImageBatch, RetrievalModel, VectorSets, WordInit, config_range
from stacmr.models.layers import CaptionEncoder, l2norm
from stacmr.models.qpert import Projector, QPert, Weighting
from stacmr.models.registry import register


@dataclass(frozen=True)
class QformerConfig:
    embed_dim: int = config_range(1)  # width of the queries, keys and joint space (BLIP-2: 768, joint 256)
    queries: int = config_range(1, 1024)  # M learned queries (BLIP-2: 32)
    layers: int = config_range(1, 24)  # query layers, each with a cross-attention (BLIP-2: 6 cross-attention layers)
    heads: int = config_range(1, 64)  # attention heads, dividing embed_dim (BLIP-2: 12 of dim 64)
    word_dim: int = config_range(1)  # word vectors of the caption GRU
    word_init: WordInit  # caption word vectors: random or ocr_fasttext (`stacmr.models.base.WordInit`)
    # Q-Pert at inference (`stacmr.models.qpert`); flat keys: a checkpoint rebuilds its config as `cls(**dict)` and an
    # ablation's `model` overrides merge one level deep, so one knob stays overridable alone
    qpert_enabled: bool  # perturb the cross-attention queries in `encode_images` (never in training)
    qpert_alpha: float = config_range(0.0, 100.0)  # α, the scale of the projectors (Q-Pert: 8)
    qpert_energy: float = config_range(0.0, 1.0)  # eigenvalue share of a kept subspace (Q-Pert: 0.99)
    qpert_projector: Projector  # intended (V_r V_rᵀ) or released (the release's row-masked VᵀSV)
    qpert_weighting: Weighting  # constant α (Q-Pert's default) or an area-based variant

    def __post_init__(self) -> None:
        if self.embed_dim % self.heads:
            raise StacmrError(f"embed_dim: must be a multiple of heads ({self.heads}), got {self.embed_dim}")


class CrossAttention(nn.Module):
    """Multi-head attention from queries to a set of keys, padded keys never attended to, with an optional
    perturbation of the per-head queries (`QPert`). x (B, M, E), memory (B, N, E), mask (B, N) with at least one
    real key per row → (B, M, E)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def split(self, x: Tensor) -> Tensor:
        """(B, N, E) → (B, H, N, E / H)."""
        return x.unflatten(-1, (self.heads, -1)).transpose(1, 2)

    def forward(self, x: Tensor, memory: Tensor, mask: Tensor, perturb: QPert | None) -> Tensor:
        q, k, v = self.split(self.query(x)), self.split(self.key(memory)), self.split(self.value(memory))
        if perturb is not None:
            q = perturb(q, k)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
        return self.out(attended.transpose(1, 2).flatten(2))


class QueryLayer(nn.Module):
    """One post-norm Q-Former layer: x ← LN(x + SelfAttention(x)), x ← LN(x + CrossAttention(x, keys)),
    x ← LN(x + FFN(x)), the feed-forward 4× wide with GELU (BERT)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.self_attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.cross_attention = CrossAttention(dim, heads)
        self.feed_forward = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(3))

    def forward(self, x: Tensor, memory: Tensor, mask: Tensor, perturb: QPert | None) -> Tensor:
        x = self.norms[0](x + self.self_attention(x, x, x, need_weights=False)[0])
        x = self.norms[1](x + self.cross_attention(x, memory, mask, perturb))
        return self.norms[2](x + self.feed_forward(x))


@register("qformer")
class Qformer(RetrievalModel):
    """The learned-query host on the visual regions (`QformerSt` reads the scene text too)."""

    label = "Q-Former-style learned queries (region features)"
    scene_text = False
    config_class = QformerConfig
    reads_boxes = True
    config: QformerConfig

    def __init__(self, config: QformerConfig, dims: DataDims) -> None:
        super().__init__()
        self.config = config
        dim = config.embed_dim
        self.queries = nn.Parameter(torch.randn(config.queries, dim) * 0.02)  # BLIP-2: normal(0, 0.02)
        self.region_fc = nn.Linear(dims.region_dim, dim)
        self.memory_norm = nn.LayerNorm(dim)
        self.layers = nn.ModuleList(QueryLayer(dim, config.heads) for _ in range(config.layers))
        self.proj = nn.Linear(dim, dim)
        self.caption_encoder = CaptionEncoder(dims.vocab_size, config.word_dim, dim)

    def caption_word_embedding(self) -> nn.Embedding:
        return self.caption_encoder.embed

    def keys(self, images: ImageBatch) -> tuple[Tensor, Tensor]:
        """The cross-attention's inputs (B, N, E), zero-filled padding projected, and their mask (B, N)."""
        mask = images.region_mask
        return self.region_fc(torch.where(mask[..., None], images.regions, 0)), mask

    def key_boxes(self, images: ImageBatch) -> Tensor:
        """The boxes (B, N, 4) of the keys of `keys`, NaN where unknown."""
        if images.region_boxes is None:
            raise ValueError(f"{type(self).__name__} with Q-Pert reads region boxes: the ImageBatch has none")
        return images.region_boxes

    def perturbation(self, images: ImageBatch, mask: Tensor) -> QPert:
        """Q-Pert with this batch's objects, for keys of mask (B, N) (`keys`)."""
        c = self.config
        boxes = self.key_boxes(images)
        return QPert.of_keys(boxes, mask, c.qpert_alpha, c.qpert_weighting, c.qpert_energy, c.qpert_projector)

    def embed_images(self, images: ImageBatch, perturbed: bool) -> VectorSets:
        """The M unit query embeddings of each image; `perturbed`: with Q-Pert's queries."""
        memory, mask = self.keys(images)
        memory = self.memory_norm(memory)
        perturb = self.perturbation(images, mask) if perturbed else None
        x = self.queries.expand(len(memory), -1, -1)
        for layer in self.layers:
            x = layer(x, memory, mask, perturb)
        emb = l2norm(self.proj(x))
        return VectorSets(emb, torch.ones(emb.shape[:2], dtype=torch.bool, device=emb.device))

    def encode_images(self, images: ImageBatch) -> VectorSets:
        return self.embed_images(images, self.config.qpert_enabled)

    def encode_captions(self, captions: CaptionBatch) -> VectorSets:
        emb = self.caption_encoder(captions.tokens, captions.lengths)[:, None]
        return VectorSets(emb, torch.ones(emb.shape[:2], dtype=torch.bool, device=emb.device))

    def similarity(self, img_emb: VectorSets, cap_emb: VectorSets) -> Tensor:
        """(Bi, Bc): each caption's best query (its one vector's hard assignment to the image's set)."""
        return word_region_scores(img_emb, cap_emb)[..., 0]

    def use_qpert(self, projector: Projector) -> None:
        """Q-Pert on at inference from now on, with `projector`, on the same weights (`evaluate --qpert`)."""
        self.config = replace(self.config, qpert_enabled=True, qpert_projector=projector)

    def loss(
        self, images: ImageBatch, captions: CaptionBatch, retrieval_criterion: Callable[[Tensor], Tensor]
    ) -> dict[str, Tensor]:
        """{"loss", "retrieval"}: the hinge on the in-batch (B, B) scores of the unperturbed host."""
        img = self.embed_images(images, perturbed=False)
        retrieval = self.retrieval_loss(img, self.encode_captions(captions), retrieval_criterion)
        return {"loss": retrieval, "retrieval": retrieval}


@dataclass(frozen=True)
class QformerStConfig(QformerConfig):
    """The host's settings; a type of its own so that the registry tells `qformer_st` from `qformer`."""


@register("qformer_st")
class QformerSt(Qformer):
    """The learned-query host with the OCR tokens as extra keys, masked by the OCR mask."""

    label = "Q-Former-style learned queries + scene-text tokens"
    scene_text = True
    config_class = QformerStConfig

    def __init__(self, config: QformerStConfig, dims: DataDims) -> None:
        super().__init__(config, dims)
        self.ocr_fc = nn.Linear(dims.ocr_dim, config.embed_dim)

    def keys(self, images: ImageBatch) -> tuple[Tensor, Tensor]:
        regions, region_mask = super().keys(images)
        ocr_mask = images.ocr_mask
        tokens = self.ocr_fc(torch.where(ocr_mask[..., None], images.ocr, 0))
        return torch.cat([regions, tokens], dim=1), torch.cat([region_mask, ocr_mask], dim=1)

    def key_boxes(self, images: ImageBatch) -> Tensor:
        if images.ocr_boxes is None:
            raise ValueError(f"{type(self).__name__} with Q-Pert reads OCR boxes: the ImageBatch has none")
        return torch.cat([super().key_boxes(images), images.ocr_boxes], dim=1)
