"""oCLIP's character-aware text modules (Xue et al. ECCV 2022; bytedance/oclip): a word encoded from its spelling,
the one-masked-character corruption, and the visual-textual decoder that predicts the masked character.

`CharEncoder`: char ids (..., W) (`stacmr.models.characters`) → character embedding + learned positions → a pre-norm
transformer with the padding masked out of attention → final LayerNorm → the output at the EOS position (EOS
pooling, as oCLIP and CLIP) → Linear → (..., dim). oCLIP's encoder is 6 layers of width 64 with 8 heads and a causal
mask; here the depth and width are settings, and attention is bidirectional over the real characters (padding never
reaches the EOS output either way). An all-PAD string (a padded OCR slot) is never encoded: its vector is zero.

`mask_one_character`: oCLIP's corruption, one random character per word replaced by [MASK].
`MaskedCharacterDecoder`: the masked word's vector queries the image (one cross-attention layer) and predicts the
masked character; the cross-entropy is oCLIP's auxiliary loss.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from stacmr.models.characters import CHAR_VOCAB, EOS, FIRST_CHAR, MASK, MAX_CHARS, PAD

IGNORE = -100  # F.cross_entropy's default ignore_index: a string with no character to predict


class CharEncoder(nn.Module):
    """Strings of char ids → one vector each. chars (..., W) int64, W ≤ MAX_CHARS + 1 → (..., dim), zero for an
    all-PAD string. Each distinct string in the batch is encoded once (captions repeat "a", "the", "of")."""

    def __init__(self, dim: int, layers: int = 2, heads: int = 4, width: int = 64, dropout: float = 0.0) -> None:
        super().__init__()
        self.width = width
        self.embed = nn.Embedding(CHAR_VOCAB, width, padding_idx=PAD)
        self.position = nn.Parameter(torch.empty(MAX_CHARS + 1, width))
        # CLIP's text encoder initialisation: token embeddings std 0.02, positions std 0.01
        nn.init.normal_(self.embed.weight, std=0.02)
        nn.init.normal_(self.position, std=0.01)
        with torch.no_grad():
            self.embed.weight[PAD].zero_()
        layer = nn.TransformerEncoderLayer(
            width, heads, 4 * width, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.transformer = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(width), enable_nested_tensor=False)
        self.proj = nn.Linear(width, dim)

    def forward(self, chars: Tensor) -> Tensor:
        flat = chars.reshape(-1, chars.shape[-1])
        spelt = (flat == EOS).any(dim=1)  # every non-empty string ends with EOS; an empty one is all PAD
        out = torch.zeros(flat.shape[0], self.proj.out_features, dtype=self.proj.weight.dtype, device=chars.device)
        if spelt.any():
            unique, inverse = torch.unique(flat[spelt], dim=0, return_inverse=True)
            longest = int((unique != PAD).sum(dim=1).max())  # trailing PAD columns are never attended to: drop them
            # index_select, not [inverse]: its backward sums a string's repeats in a fixed order (the indexing
            # backward is an accumulating index_put whose order varies with the threads: not run-to-run identical)
            encoded = self.encode_strings(unique[:, :longest]).index_select(0, inverse)
            out = out.index_put((spelt.nonzero().squeeze(1),), encoded.to(out.dtype))  # bfloat16 under autocast
        return out.view(*chars.shape[:-1], out.shape[-1])

    def encode_strings(self, chars: Tensor) -> Tensor:
        """chars (n, W), each row with an EOS → (n, dim): the transformer's output at EOS, projected."""
        x = self.embed(chars) + self.position[: chars.shape[1]]
        x = self.transformer(x, src_key_padding_mask=chars == PAD)
        eos = (chars == EOS).to(torch.uint8).argmax(dim=1)
        return self.proj(x[torch.arange(chars.shape[0], device=chars.device), eos])


def mask_one_character(chars: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """oCLIP's corruption: in each string of chars (n, W), one character of the alphabet, drawn uniformly, becomes
    MASK. Returns the masked chars (n, W), the position (n,) int64 (-1 for a string with no such character: empty,
    or only UNK, which has nothing to predict) and the original id there (n,) int64 (IGNORE where none). Draws from
    `generator`, or torch's global generator (which the training loop seeds and checkpoints)."""
    maskable = chars >= FIRST_CHAR
    draw = torch.rand(chars.shape, generator=generator, device=chars.device)
    positions = torch.where(maskable, draw, -1.0).argmax(dim=1)
    has = maskable.any(dim=1)
    hit = has[:, None] & (torch.arange(chars.shape[1], device=chars.device)[None, :] == positions[:, None])
    targets = chars.gather(1, positions[:, None]).squeeze(1)
    return torch.where(hit, MASK, chars), torch.where(has, positions, -1), torch.where(has, targets, IGNORE)


class MaskedCharacterDecoder(nn.Module):
    """oCLIP's visual-textual decoder, one cross-attention layer (oCLIP: 6, each followed by an MLP): queries
    (B, T, Q) (the masked words' vectors) → Linear to `width` = q; q + LN(MHA(q, memory, memory)) as oCLIP, over the
    image's vectors memory (B, R, M) masked by memory_mask (B, R) with at least one real slot per row → Linear →
    character logits (B, T, CHAR_VOCAB)."""

    def __init__(self, query_dim: int, memory_dim: int, width: int, heads: int) -> None:
        super().__init__()
        self.query = nn.Linear(query_dim, width)
        self.attention = nn.MultiheadAttention(width, heads, kdim=memory_dim, vdim=memory_dim, batch_first=True)
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, CHAR_VOCAB)

    def forward(self, queries: Tensor, memory: Tensor, memory_mask: Tensor) -> Tensor:
        q = self.query(queries)
        attended = self.attention(q, memory, memory, key_padding_mask=~memory_mask, need_weights=False)[0]
        return self.out(q + self.norm(attended))
