"""VSRN (Li et al., ICCV 2019), the visual-only family, as in the VSRN and StacMR releases (`model.py`).

Image: regions → Linear → l2-norm → graph reasoning blocks → l2-norm → GRU over the regions; its final state,
l2-normalised, is the image embedding. Caption: word embedding → GRU → state at the last word → l2-norm.
Training loss: retrieval_weight × (hinge on the cosine similarities) + caption_weight × (caption generation from
the reasoned regions, VSRN's auxiliary task). STARNet (`starnet.py`) extends this class.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from stacmr.losses import caption_generation_loss
from stacmr.models.base import CaptionBatch, DataDims, ImageBatch, RetrievalModel, WordInit, config_range
from stacmr.models.layers import BatchNorm1d, CaptionEncoder, GraphReasoning, l2norm, masked_mean
from stacmr.models.registry import register
from stacmr.tokens import END, PAD, START


@dataclass(frozen=True)
class VsrnConfig:
    embed_dim: int = config_range(1)  # joint embedding size E, also the region and GCN width (release: 2048)
    word_dim: int = config_range(1)  # caption encoder word vectors (release: 300)
    gcn_layers: int = config_range(0, 16)  # graph reasoning blocks over the regions (release: 4)
    caption_hidden: int = config_range(1)  # caption decoder GRU state (release: 512)
    caption_word_dim: int = config_range(1)  # caption decoder word vectors (release: 300)
    # Dropout on the decoder output. The release's rnn_dropout_p 0.5 is a no-op (nn.GRU drops only between layers,
    # it has one); its effective dropout was input_dropout_p 0.2 on [word, context].
    caption_dropout: float = config_range(0.0, 1.0)
    retrieval_weight: float = config_range(0.0)  # weight of the hinge loss (VSRN: 1, STARNet: 2)
    caption_weight: float = config_range(0.0)  # weight of the caption-generation loss (release: 1)
    word_init: WordInit  # caption word vectors: random (release) or ocr_fasttext (`stacmr.models.base.WordInit`)
    # The release's `data_name` switch (VSRN and StacMR `EncoderImagePrecompAttn`). f30k_precomp, the data name of
    # the StacMR README's training command: the projected regions are not l2-normalised, and BatchNorm1d(embed) acts
    # on the image vector (STARNet: the fused vector) before the final l2-norm. precomp: l2-normalised regions, no BN.
    data_name: Literal["precomp", "f30k_precomp"]


def teacher_forcing(tokens: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """Decoder inputs and targets of captions: tokens (B, L), lengths (B,) → inputs (B, L+1) = <start> w1 .. wn,
    targets (B, L+1) = w1 .. wn <end>, both padded with <pad> (whatever `tokens` holds past `lengths`)."""
    b, length = tokens.shape
    words = torch.where(torch.arange(length, device=tokens.device)[None, :] < lengths[:, None], tokens, PAD)
    inputs = torch.cat([words.new_full((b, 1), START), words], dim=1)
    targets = torch.cat([words, words.new_full((b, 1), PAD)], dim=1).scatter(1, lengths[:, None], END)
    return inputs, targets


class CaptionDecoder(nn.Module):
    """VSRN's caption generator (its auxiliary loss): a GRU that reads the previous word and an attention context
    over the reasoned regions, and predicts the next word.

    Attention is additive (Bahdanau), as the release's `Attention`: score_r = wᵀ tanh(K r + H h) with the hidden
    state before the step, softmax over the real regions. The initial state is Linear(mean of the real regions).
    The release instead ran a second GRU over the regions (`EncoderRNN`, 2048 → 512) for the initial state and the
    attended memory; this attends the reasoned regions directly. Dropout acts on the GRU output before the word
    classifier.
    """

    def __init__(self, vocab_size: int, region_dim: int, word_dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, word_dim, padding_idx=PAD)
        self.init_hidden = nn.Linear(region_dim, hidden)
        self.attend_regions = nn.Linear(region_dim, hidden)
        self.attend_hidden = nn.Linear(hidden, hidden, bias=False)
        self.attend_score = nn.Linear(hidden, 1, bias=False)
        self.cell = nn.GRUCell(word_dim + region_dim, hidden)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, vocab_size)
        nn.init.xavier_normal_(self.out.weight)  # release: DecoderRNN._init_weights

    def forward(self, regions: Tensor, region_mask: Tensor, inputs: Tensor) -> Tensor:
        """regions (B, R, E), region_mask (B, R), inputs (B, S) word ids (teacher forcing) → logits (B, S, V)."""
        keys = self.attend_regions(regions)  # (B, R, H), once for every step
        # finfo.min, not -inf: a softmax over finite scores stays finite even for a row with no real region.
        hide = torch.finfo(keys.dtype).min
        hidden = self.init_hidden(masked_mean(regions, region_mask))
        words = self.embed(inputs)
        states = []
        for step in range(inputs.shape[1]):
            scores = self.attend_score(torch.tanh(keys + self.attend_hidden(hidden)[:, None, :])).squeeze(-1)
            weights = torch.softmax(scores.masked_fill(~region_mask, hide), dim=-1)  # (B, R)
            context = torch.bmm(weights[:, None, :], regions).squeeze(1)  # (B, E)
            hidden = self.cell(torch.cat([words[:, step], context], dim=-1), hidden)
            states.append(hidden)
        return self.out(self.dropout(torch.stack(states, dim=1)))


@register("vsrn")
class Vsrn(RetrievalModel):
    """VSRN, on the visual regions only."""

    label = "VSRN"
    scene_text = False
    config_class = VsrnConfig

    def __init__(self, config: VsrnConfig, dims: DataDims) -> None:
        super().__init__()
        self.config = config
        dim = config.embed_dim
        self.region_fc = nn.Linear(dims.region_dim, dim)
        # Release `init_weights`: Xavier-uniform weights, zero bias.
        bound = math.sqrt(6.0) / math.sqrt(dims.region_dim + dim)
        nn.init.uniform_(self.region_fc.weight, -bound, bound)
        nn.init.zeros_(self.region_fc.bias)
        self.region_graph = nn.ModuleList(GraphReasoning(dim) for _ in range(config.gcn_layers))
        self.region_gru = nn.GRU(dim, dim, batch_first=True)
        self.caption_encoder = CaptionEncoder(dims.vocab_size, config.word_dim, dim)
        self.caption_decoder = CaptionDecoder(
            dims.vocab_size, dim, config.caption_word_dim, config.caption_hidden, config.caption_dropout
        )
        self.image_norm = BatchNorm1d(dim) if config.data_name == "f30k_precomp" else None

    def caption_word_embedding(self) -> nn.Embedding:
        return self.caption_encoder.embed

    def reason_regions(self, images: ImageBatch) -> Tensor:
        """The reasoned regions (B, R, E), unit rows; what the GRU reads and the caption decoder attends to."""
        mask = images.region_mask
        # Zeroing padding first keeps padded slots' content (NaN included) out of every later product.
        regions = torch.where(mask[..., None], images.regions, 0)
        # The release l2-normalises the projected regions for every data name but 'f30k_precomp' (`VsrnConfig`).
        x = self.region_fc(regions)
        if self.config.data_name != "f30k_precomp":
            x = l2norm(x)
        for block in self.region_graph:
            x = block(x, mask)
        return l2norm(x)

    def visual_vector(self, reasoned: Tensor, region_mask: Tensor) -> Tensor:
        """The GRU's final state over the real regions, in order (B, E); not normalised (STARNet fuses it first)."""
        counts = region_mask.sum(dim=1).cpu()
        _, hidden = self.region_gru(pack_padded_sequence(reasoned, counts, batch_first=True, enforce_sorted=False))
        return hidden[0]

    def embed_images(self, images: ImageBatch, reasoned: Tensor) -> Tensor:
        """Image embeddings (B, E) from the batch and its reasoned regions."""
        return self.joint_vector(self.visual_vector(reasoned, images.region_mask))

    def joint_vector(self, image_vector: Tensor) -> Tensor:
        """The image vector (B, E) into the joint space: BatchNorm under f30k_precomp, then l2-norm (release)."""
        if self.image_norm is not None:
            image_vector = self.image_norm(image_vector)
        return l2norm(image_vector)

    def encode_images(self, images: ImageBatch) -> Tensor:
        return self.embed_images(images, self.reason_regions(images))

    def encode_captions(self, captions: CaptionBatch) -> Tensor:
        return self.caption_encoder(captions.tokens, captions.lengths)

    def loss(
        self, images: ImageBatch, captions: CaptionBatch, retrieval_criterion: Callable[[Tensor], Tensor]
    ) -> dict[str, Tensor]:
        """{"loss", "retrieval", "caption"}; the regions are reasoned once for both the embedding and the decoder."""
        reasoned = self.reason_regions(images)
        img_emb = self.embed_images(images, reasoned)
        retrieval = self.retrieval_loss(img_emb, self.encode_captions(captions), retrieval_criterion)
        inputs, targets = teacher_forcing(captions.tokens, captions.lengths)
        logits = self.caption_decoder(reasoned, images.region_mask, inputs)
        caption = caption_generation_loss(logits, targets, pad_id=PAD)
        total = self.config.retrieval_weight * retrieval + self.config.caption_weight * caption
        return {"loss": total, "retrieval": retrieval, "caption": caption}
