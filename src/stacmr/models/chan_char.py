"""oCLIP-style CHAN (new here: neither CHAN nor oCLIP has it): CHAN whose caption words are also read from their
spelling by oCLIP's character-aware text encoder (Xue et al. ECCV 2022), as `chan_char` (visual regions only) and
`chan_char_st` (with the OCR tokens, spelt by the same encoder, as extra regions, and oCLIP's masked-character loss).

Caption: each word's vector for CHAN's BiGRU is its learned word embedding PLUS `CharEncoder(its characters)`
(`stacmr.models.char_encoder`): a known word keeps its embedding, a word out of the vocabulary (<unk>) or misspelt
still has its spelling. CHAN's token masking (<unk> for a word) thus hides only the embedding, as for an unseen word.
Image (`chan_char`): CHAN's regions. Image (`chan_char_st`): CHAN's regions, then the OCR strings through the SAME
`CharEncoder` → Linear → l2-norm, masked by the OCR mask: a caption word and its reading on a sign start from one
encoder even when the engine misread a letter. The fastText `ocr` vectors are not read; a real OCR token without a
string (release vectors whose tokens are unknown) is not used. An image without spelt tokens is scored on its
regions alone, exactly as by `chan_char`.
Auxiliary loss (`chan_char_st`, oCLIP's masked character prediction): one character of each real OCR token is
replaced by [MASK]; the masked token's `CharEncoder` vector queries the image's projected regions through one
cross-attention layer (`MaskedCharacterDecoder`) and predicts the character; cross-entropy over the batch's masked
characters, weighted by `mlm_weight`. Reads batches with `ocr_chars` and `word_chars` (`reads_characters`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stacmr.errors import StacmrError
from stacmr.models.base import CaptionBatch, DataDims, ImageBatch, VectorSets, config_range
from stacmr.models.chan import Chan, ChanConfig
from stacmr.models.char_encoder import IGNORE, CharEncoder, MaskedCharacterDecoder, mask_one_character
from stacmr.models.characters import EOS, PAD
from stacmr.models.layers import l2norm
from stacmr.models.registry import register
from stacmr.models.shards import global_sum


@dataclass(frozen=True)
class ChanCharConfig(ChanConfig):
    char_dim: int = config_range(1, 1024)  # width of the character transformer (oCLIP: 64)
    char_layers: int = config_range(1, 12)  # its layers (oCLIP: 6; 2 here trains on two CPU cores)
    char_heads: int = config_range(1, 64)  # its attention heads, dividing char_dim (oCLIP: 8)

    def __post_init__(self) -> None:
        if self.char_dim % self.char_heads:
            raise StacmrError(f"char_dim: must be a multiple of char_heads ({self.char_heads}), got {self.char_dim}")


@dataclass(frozen=True)
class ChanCharStConfig(ChanCharConfig):
    mlm_weight: float = config_range(0.0, 100.0)  # weight of the masked-character loss (oCLIP: 1 beside CLIP's)


@register("chan_char")
class ChanChar(Chan):
    """CHAN with character-aware caption words, on the visual regions."""

    label = "oCLIP-style character-aware words + CHAN"
    scene_text = False
    config_class = ChanCharConfig
    reads_characters = True

    def __init__(self, config: ChanCharConfig, dims: DataDims) -> None:
        super().__init__(config, dims)
        self.char_encoder = CharEncoder(
            config.word_dim, layers=config.char_layers, heads=config.char_heads, width=config.char_dim
        )
        # The spelling starts at the scale of the word embedding (uniform ±0.1: std 0.1/√3 per dim) rather than
        # dwarfing it ~10× (nn.Linear's default on LayerNorm outputs), so known words start from both.
        nn.init.normal_(self.char_encoder.proj.weight, std=0.1 / math.sqrt(3 * config.char_dim))
        nn.init.zeros_(self.char_encoder.proj.bias)

    def encode_captions(self, captions: CaptionBatch) -> VectorSets:
        if captions.word_chars is None:
            raise ValueError(f"{type(self).__name__} spells caption words: the CaptionBatch has no word_chars")
        tokens, lengths = captions.tokens, captions.lengths
        vectors = self.word_encoder.embed(tokens) + self.char_encoder(captions.word_chars)  # (B, L, word_dim)
        mask = torch.arange(tokens.shape[1], device=tokens.device)[None, :] < lengths[:, None]
        return VectorSets(self.word_encoder.contextualise(vectors, lengths), mask)


@register("chan_char_st")
class ChanCharSt(ChanChar):
    """CHAN with character-aware caption words, and the OCR strings spelt by the same encoder as extra regions."""

    label = "oCLIP-style character-aware words and OCR tokens + CHAN"
    scene_text = True
    config_class = ChanCharStConfig
    config: ChanCharStConfig

    def __init__(self, config: ChanCharStConfig, dims: DataDims) -> None:
        super().__init__(config, dims)
        # No bias: the spelling starts at the word embedding's small scale, where a bias would point every token
        # the same way (cosine ~0.99 between different words at initialisation); the l2-norm makes scale moot.
        self.ocr_fc = nn.Linear(config.word_dim, config.embed_dim, bias=False)
        self.char_decoder = MaskedCharacterDecoder(
            config.word_dim, config.embed_dim, width=config.char_dim, heads=config.char_heads
        )

    def spelt_ocr(self, images: ImageBatch) -> tuple[Tensor, Tensor]:
        """The real OCR tokens' chars (B, T, W), all PAD elsewhere, and which slots are real and spelt (B, T)."""
        if images.ocr_chars is None:
            raise ValueError(f"{type(self).__name__} spells OCR tokens: the ImageBatch has no ocr_chars")
        chars = torch.where(images.ocr_mask[..., None], images.ocr_chars, PAD)
        return chars, (chars == EOS).any(dim=-1)

    def encode_images(self, images: ImageBatch) -> VectorSets:
        chars, mask = self.spelt_ocr(images)
        tokens = torch.where(mask[..., None], l2norm(self.ocr_fc(self.char_encoder(chars))), 0)
        emb = torch.cat([self.encode_regions(images), tokens], dim=1)
        return VectorSets(emb, torch.cat([images.region_mask, mask], dim=1))

    def masked_character_loss(self, images: ImageBatch, regions: Tensor) -> Tensor:
        """Mean cross-entropy of the masked characters of the batch's real OCR tokens (zero if there is none),
        given the images' unit region vectors regions (B, R, E) as scored."""
        chars, _ = self.spelt_ocr(images)
        masked, _, targets = mask_one_character(chars.flatten(0, 1))
        queries = self.char_encoder(masked).view(*chars.shape[:2], -1)  # (B, T, word_dim)
        logits = self.char_decoder(queries, regions, images.region_mask).flatten(0, 1)
        total = F.cross_entropy(logits, targets, ignore_index=IGNORE, reduction="sum")
        return total / global_sum((targets != IGNORE).sum()).clamp(min=1)  # the global batch's mean

    def loss(
        self, images: ImageBatch, captions: CaptionBatch, retrieval_criterion: Callable[[Tensor], Tensor]
    ) -> dict[str, Tensor]:
        """{"loss", "retrieval", "mlm"}: CHAN's hinge plus mlm_weight × the masked-character loss."""
        if self.training:
            images, captions = self.augment(images, captions)
        img_emb = self.encode_images(images)
        retrieval = self.retrieval_loss(img_emb, self.encode_captions(captions), retrieval_criterion)
        mlm = self.masked_character_loss(images, img_emb.emb[:, : images.regions.shape[1]])
        return {"loss": retrieval + self.config.mlm_weight * mlm, "retrieval": retrieval, "mlm": mlm}
