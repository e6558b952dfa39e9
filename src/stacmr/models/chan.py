"""CHAN (Pan et al., CVPR 2023, "Cross-modal Hard Aligning Network"), a fine-grained family, and `chan_st`, CHAN
with scene-text tokens as extra regions.

Image: regions → Linear (→ one self-attention block, optional) → l2-norm per region: a set of unit vectors (B, R, E).
Caption: word embedding → BiGRU, forward and backward states averaged → l2-norm per word (B, L, E). Similarity: each
word's best region (hard assignment), pooled over words by LogSumExp (temperature β) or the mean
(`stacmr.models.alignment`). Loss: hinge with CHAN's margin 0.05 and hardest negatives after the loop's warm-up
epochs. Training augmentation (as CHAN's VSE∞ data loader): each real region is dropped with probability
`region_drop` (one is always kept), each caption word is replaced by <unk> with probability `token_mask`; both draw
from torch's global generator, which the loop seeds and checkpoints, so they are deterministic under the seed.

`chan_st` (new here: neither CHAN nor StacMR has it) appends the image's OCR tokens, projected by a Linear to the
joint space and l2-normalised, to its regions, masked by the OCR mask: a caption word can align directly with a
scene-text token. An image without OCR tokens is scored on its regions alone, exactly as by `chan`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from stacmr.models.alignment import hard_assignment_similarity
from stacmr.models.base import CaptionBatch, DataDims, ImageBatch, RetrievalModel, VectorSets, WordInit, config_range
from stacmr.models.layers import l2norm
from stacmr.models.registry import register
from stacmr.tokens import PAD, UNK


@dataclass(frozen=True)
class ChanConfig:
    embed_dim: int = config_range(1)  # joint space E of regions and words (CHAN: 1024)
    word_dim: int = config_range(1)  # word vectors of the BiGRU (CHAN: 300)
    self_attention: bool  # one single-head self-attention block over the projected regions (CHAN: optional)
    pooling: Literal["lse", "mean"]  # pooling of the words' best-region scores (CHAN: lse)
    temperature: float = config_range(1e-3, 10.0)  # β of LogSumExp pooling (CHAN: 0.1)
    margin: float = config_range(0.0, 2.0)  # hinge margin (CHAN: 0.05); replaces train.margin for this family
    max_violation: bool  # hardest negative after train.warmup_epochs (CHAN: true, one warm-up epoch)
    region_drop: float = config_range(0.0, 0.9)  # training: chance of dropping each real region (VSE∞/CHAN: 0.2)
    token_mask: float = config_range(0.0, 0.9)  # training: chance of replacing each caption word by <unk>
    word_init: WordInit  # caption word vectors: random (CHAN) or ocr_fasttext (`stacmr.models.base.WordInit`)


class WordEncoder(nn.Module):
    """Caption → one unit vector per word (CHAN's BiGRU text encoder): word embedding, bidirectional GRU, the forward
    and backward states of each word averaged, l2-norm. tokens (B, L), lengths (B,) → (B, L, E), zero past a
    caption's length."""

    def __init__(self, vocab_size: int, word_dim: int, embed_dim: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, word_dim, padding_idx=PAD)
        self.gru = nn.GRU(word_dim, embed_dim, batch_first=True, bidirectional=True)
        with torch.no_grad():
            nn.init.uniform_(self.embed.weight, -0.1, 0.1)
            self.embed.weight[PAD].zero_()

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        return self.contextualise(self.embed(tokens), lengths)

    def contextualise(self, vectors: Tensor, lengths: Tensor) -> Tensor:
        """The BiGRU part on given word vectors (B, L, word_dim) (a family may build its own: `chan_char` adds each
        word's spelling to its embedding) → (B, L, E)."""
        packed = pack_padded_sequence(vectors, lengths.cpu(), batch_first=True, enforce_sorted=False)
        states, _ = pad_packed_sequence(self.gru(packed)[0], batch_first=True, total_length=vectors.shape[1])
        forward, backward = states.chunk(2, dim=-1)
        return l2norm((forward + backward) / 2)


class SelfAttentionBlock(nn.Module):
    """One pre-norm residual single-head self-attention block over a set: x + Attention(LN(x)), padded slots never
    attended to. x (B, N, E), mask (B, N) with at least one real slot per row → (B, N, E)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, 1, batch_first=True)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        y = self.norm(x)
        return x + self.attention(y, y, y, key_padding_mask=~mask, need_weights=False)[0]


@register("chan")
class Chan(RetrievalModel):
    """CHAN on the visual regions (`ChanSt` reads the scene text too)."""

    label = "CHAN"
    scene_text = False
    config_class = ChanConfig
    hinge_from_config = True

    def __init__(self, config: ChanConfig, dims: DataDims) -> None:
        super().__init__()
        self.config = config
        self.region_fc = nn.Linear(dims.region_dim, config.embed_dim)
        self.region_attention = SelfAttentionBlock(config.embed_dim) if config.self_attention else None
        self.word_encoder = WordEncoder(dims.vocab_size, config.word_dim, config.embed_dim)

    def caption_word_embedding(self) -> nn.Embedding:
        return self.word_encoder.embed

    def encode_regions(self, images: ImageBatch) -> Tensor:
        """(B, R, E) unit region vectors, zero at padded regions."""
        mask = images.region_mask
        x = self.region_fc(torch.where(mask[..., None], images.regions, 0))
        if self.region_attention is not None:
            x = self.region_attention(x, mask)
        return torch.where(mask[..., None], l2norm(x), 0)

    def encode_images(self, images: ImageBatch) -> VectorSets:
        return VectorSets(self.encode_regions(images), images.region_mask)

    def encode_captions(self, captions: CaptionBatch) -> VectorSets:
        mask = (
            torch.arange(captions.tokens.shape[1], device=captions.tokens.device)[None, :] < captions.lengths[:, None]
        )
        return VectorSets(self.word_encoder(captions.tokens, captions.lengths), mask)

    def similarity(self, img_emb: VectorSets, cap_emb: VectorSets) -> Tensor:
        return hard_assignment_similarity(img_emb, cap_emb, self.config.pooling, self.config.temperature)

    def augment(self, images: ImageBatch, captions: CaptionBatch) -> tuple[ImageBatch, CaptionBatch]:
        """Region drop and token masking (training only)."""
        mask = images.region_mask
        keep = torch.rand(mask.shape, device=mask.device) >= self.config.region_drop
        keep[:, 0] = True  # real regions come first: every image keeps at least one
        tokens = captions.tokens
        masked = torch.rand(tokens.shape, device=tokens.device) < self.config.token_mask
        return (
            dataclasses.replace(images, region_mask=mask & keep),
            dataclasses.replace(captions, tokens=torch.where(masked & (tokens != PAD), UNK, tokens)),
        )

    def loss(
        self, images: ImageBatch, captions: CaptionBatch, retrieval_criterion: Callable[[Tensor], Tensor]
    ) -> dict[str, Tensor]:
        """{"loss", "retrieval"}: the hinge on the in-batch (B, B) fine-grained scores (a B×B×R×L computation)."""
        if self.training:
            images, captions = self.augment(images, captions)
        retrieval = self.retrieval_loss(self.encode_images(images), self.encode_captions(captions), retrieval_criterion)
        return {"loss": retrieval, "retrieval": retrieval}


@dataclass(frozen=True)
class ChanStConfig(ChanConfig):
    """CHAN's settings; a type of its own so that the registry tells `chan_st` from `chan`."""


@register("chan_st")
class ChanSt(Chan):
    """CHAN with the OCR tokens as extra regions: sets of R + T vectors, masked by region count and OCR mask."""

    label = "CHAN + scene-text tokens (new combination)"
    scene_text = True
    config_class = ChanStConfig

    def __init__(self, config: ChanStConfig, dims: DataDims) -> None:
        super().__init__(config, dims)
        self.ocr_fc = nn.Linear(dims.ocr_dim, config.embed_dim)

    def encode_images(self, images: ImageBatch) -> VectorSets:
        ocr_mask = images.ocr_mask
        tokens = l2norm(self.ocr_fc(torch.where(ocr_mask[..., None], images.ocr, 0)))
        tokens = torch.where(ocr_mask[..., None], tokens, 0)
        emb = torch.cat([self.encode_regions(images), tokens], dim=1)
        return VectorSets(emb, torch.cat([images.region_mask, ocr_mask], dim=1))
