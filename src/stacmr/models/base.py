"""What every model family takes and gives: the data sizes, the image and caption batches, and the
`RetrievalModel` interface.

A family encodes images (regions + OCR tokens + their masks) and captions into one joint space, scores every
image against every caption, and computes its training loss from a batch of matching pairs. Dense families give one
vector per item (cosine similarity); fine-grained families (CHAN) give a set of vectors per item (`VectorSets`:
regions, words) and their own `similarity` of two sets. The training loop,
the evaluation and the checkpoints only see this interface. A family's class also declares what the rest of the
project knows of it: its display label, whether it reads the scene text, its config dataclass and whether that
config sets the hinge. Family configs are frozen dataclasses whose numeric fields carry bounds (`config_range`) that
`stacmr.models.registry.check_models` checks.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from stacmr.models.characters import MAX_CHARS
from stacmr.models.shards import all_gathered, share

# How a family's caption word vectors start: random (the releases), or the features stage's OCR fastText vectors of
# the vocabulary projected to the family's word size, so that caption words start in the space the OCR tokens live
# in (issue #13: random caption words and fastText OCR tokens never met in CHAN + scene text: 0.4% of named words
# aligned with an OCR slot, 96% with this initialisation).
WordInit = Literal["random", "ocr_fasttext"]


def config_range(lo: float, hi: float | None = None) -> Any:
    """A required config field bounded to [lo, hi], in the `min`/`max` field metadata `stacmr.params` checks."""
    return field(metadata={"min": lo, "max": hi})


@dataclass(frozen=True)
class DataDims:
    """The data sizes a model is built for, from the feature store and the vocabulary. The field order is the one a
    checkpoint records them in (`spec["dims"]`, `dataclasses.asdict`)."""

    region_dim: int  # D: features per region
    ocr_dim: int  # E: features per OCR token vector
    ocr_slots: int  # T: OCR token slots per image
    vocab_size: int  # caption word ids


@dataclass(frozen=True)
class ImageBatch:
    """B images. Real regions come first in each row (the store keeps a region count); OCR slots may be masked
    anywhere, and a row may have no OCR token at all. Padded slots are never read by a model."""

    regions: Tensor  # (B, R, D) float32 region features (BUTD: R = 36, D = 2048)
    region_mask: Tensor  # (B, R) bool, True = real region; at least one per row
    ocr: Tensor  # (B, T, E_ocr) float32 OCR token vectors (fastText, E_ocr = 300)
    ocr_mask: Tensor  # (B, T) bool, True = real token; a row may be all False (zero tokens is valid)
    # (B, T, MAX_CHARS + 1) int64 char ids of the OCR strings (`stacmr.models.characters`), all PAD in padded slots;
    # read only for the families that spell words (`RetrievalModel.reads_characters`)
    ocr_chars: Tensor | None = None
    # (B, R, 4) and (B, T, 4) float32 boxes of the regions and of the OCR tokens, (x0, y0, x1, y1) as fractions of
    # the image's width and height, NaN rows where a slot has no box (padding, or none known); read only for the
    # families that place objects (`RetrievalModel.reads_boxes`)
    region_boxes: Tensor | None = None
    ocr_boxes: Tensor | None = None

    def __post_init__(self) -> None:
        b, r, _ = _shape(self.regions, 3, "ImageBatch.regions")
        b_ocr, t, _ = _shape(self.ocr, 3, "ImageBatch.ocr")
        if b_ocr != b:
            raise ValueError(f"ImageBatch: {b} images of regions but {b_ocr} of OCR tokens")
        _mask(self.region_mask, (b, r), "region_mask")
        _mask(self.ocr_mask, (b, t), "ocr_mask")
        _chars(self.ocr_chars, (b, t), "ImageBatch.ocr_chars")
        _boxes(self.region_boxes, (b, r), "ImageBatch.region_boxes")
        _boxes(self.ocr_boxes, (b, t), "ImageBatch.ocr_boxes")

    def to(self, device: torch.device | str, non_blocking: bool = False) -> ImageBatch:
        """On `device`; `non_blocking` as `Tensor.to` (from pinned memory, a copy to a GPU that returns at once)."""
        fields = dataclasses.fields(self)
        return ImageBatch(**{f.name: _to(getattr(self, f.name), device, non_blocking) for f in fields})


@dataclass(frozen=True)
class CaptionBatch:
    """B captions as word ids, without <start>/<end> (the caption decoder adds them)."""

    tokens: Tensor  # (B, L) int64 word ids, 0 = padding
    lengths: Tensor  # (B,) int64 number of valid tokens, each in 1..L
    # (B, L, MAX_CHARS + 1) int64 char ids of each word of `tokens` (its spelling, kept for a word out of the
    # vocabulary too), all PAD past a caption's length; read only by `RetrievalModel.reads_characters` families
    word_chars: Tensor | None = None

    def __post_init__(self) -> None:
        b, length = _shape(self.tokens, 2, "CaptionBatch.tokens")
        if self.tokens.dtype != torch.int64 or self.lengths.dtype != torch.int64:
            raise ValueError(
                f"CaptionBatch: tokens and lengths must be int64, got {self.tokens.dtype}, {self.lengths.dtype}"
            )
        if self.lengths.shape != (b,):
            raise ValueError(f"CaptionBatch.lengths: expected shape ({b},), got {tuple(self.lengths.shape)}")
        _chars(self.word_chars, (b, length), "CaptionBatch.word_chars")

    def to(self, device: torch.device | str, non_blocking: bool = False) -> CaptionBatch:
        """On `device`; `non_blocking` as `Tensor.to` (from pinned memory, a copy to a GPU that returns at once)."""
        fields = dataclasses.fields(self)
        return CaptionBatch(**{f.name: _to(getattr(self, f.name), device, non_blocking) for f in fields})


@dataclass(frozen=True)
class VectorSets:
    """B sets of P unit vectors each (image regions, or caption words), padded to a common P."""

    emb: Tensor  # (B, P, E) float32, zero at padded slots
    mask: Tensor  # (B, P) bool, True = real; at least one per set

    def __len__(self) -> int:
        return self.emb.shape[0]

    def gathered(self) -> VectorSets:
        """Every process's sets, in rank order, padded to the largest set (`shards.all_gathered`); self for one."""
        return VectorSets(all_gathered(self.emb), all_gathered(self.mask))

    def take(self, index: Tensor) -> VectorSets:
        """The sets at `index` (B',) int64, on the same device."""
        return VectorSets(self.emb.index_select(0, index), self.mask.index_select(0, index))


def _shape(tensor: Tensor, dims: int, name: str) -> torch.Size:
    if tensor.dim() != dims:
        raise ValueError(f"{name}: expected {dims} dimensions, got shape {tuple(tensor.shape)}")
    return tensor.shape


def _to(tensor: Tensor | None, device: torch.device | str, non_blocking: bool) -> Tensor | None:
    return None if tensor is None else tensor.to(device, non_blocking=non_blocking)


def _chars(chars: Tensor | None, shape: tuple[int, int], name: str) -> None:
    expected = (*shape, MAX_CHARS + 1)
    if chars is not None and (chars.dtype != torch.int64 or tuple(chars.shape) != expected):
        raise ValueError(
            f"{name}: expected an int64 tensor of shape {expected}, got {chars.dtype} {tuple(chars.shape)}"
        )


def _boxes(boxes: Tensor | None, shape: tuple[int, int], name: str) -> None:
    expected = (*shape, 4)
    if boxes is not None and (boxes.dtype != torch.float32 or tuple(boxes.shape) != expected):
        raise ValueError(
            f"{name}: expected a float32 tensor of shape {expected}, got {boxes.dtype} {tuple(boxes.shape)}"
        )


def _mask(mask: Tensor, shape: tuple[int, int], name: str) -> None:
    if mask.dtype != torch.bool or tuple(mask.shape) != shape:
        raise ValueError(
            f"ImageBatch.{name}: expected a bool tensor of shape {shape}, got {mask.dtype} {tuple(mask.shape)}"
        )


class RetrievalModel(nn.Module, abc.ABC):
    """An image-caption retrieval model: two encoders into one joint space, a similarity, a training loss.

    A family's class is built as `cls(config, dims)` and declares, in its own body (`stacmr.models.registry.register`
    refuses one that inherits them), `label`, `scene_text` and `config_class`."""

    label: ClassVar[str]  # how tables and figures name the family
    # True: the model reads the OCR tokens (the ablation table's scene-text axis, the claims' scene-text aware vs
    # visual-only comparisons, and a scene-text ablation's `counterpart`)
    scene_text: ClassVar[bool]
    config_class: ClassVar[type]  # the frozen dataclass of its `models.<family>` settings
    # True: the config's `margin` and `max_violation` replace the `train` ones (`hinge`): the family's published loss
    # fixes them (CHAN: 0.05, DSVE: 0.2 hardest negative)
    hinge_from_config: ClassVar[bool] = False
    config: Any  # its `config_class` instance, as built
    # True: the family spells words, so its batches carry `ImageBatch.ocr_chars` and `CaptionBatch.word_chars`
    # (`stacmr.features.reader`, `characters=True`); the others never pay for reading the strings
    reads_characters: bool = False
    # True: the family places objects in the image (Q-Pert), so its image batches carry `ImageBatch.region_boxes`
    # and `ImageBatch.ocr_boxes` (`stacmr.features.reader`); the others never pay for reading the boxes
    reads_boxes: bool = False

    @abc.abstractmethod
    def encode_images(self, images: ImageBatch) -> Tensor | VectorSets:
        """(B, E) l2-normalised image embeddings, or B sets of unit vectors for a fine-grained family."""

    @abc.abstractmethod
    def encode_captions(self, captions: CaptionBatch) -> Tensor | VectorSets:
        """(B, E) l2-normalised caption embeddings, or B sets of unit vectors for a fine-grained family."""

    def similarity(self, img_emb: Tensor | VectorSets, cap_emb: Tensor | VectorSets) -> Tensor:
        """Cosine similarity (the embeddings are unit vectors): (Bi, E) × (Bc, E) → (Bi, Bc). Fine-grained
        families override it for their sets."""
        return img_emb @ cap_emb.T

    def retrieval_loss(
        self, img_emb: Tensor | VectorSets, cap_emb: Tensor | VectorSets, criterion: Callable[[Tensor], Tensor]
    ) -> Tensor:
        """`criterion` of the training batch's (B, B) similarity: over the whole global batch when it is split over
        processes (`stacmr.models.shards`: the embeddings all-gathered, this process's share of the loss)."""
        if isinstance(img_emb, VectorSets):
            img_all, cap_all = img_emb.gathered(), cap_emb.gathered()
        else:
            img_all, cap_all = all_gathered(img_emb), all_gathered(cap_emb)
        return share(criterion(self.similarity(img_all, cap_all)))

    def caption_word_embedding(self) -> nn.Embedding | None:
        """The caption encoder's word vectors (vocabulary ids → word_dim), which `word_init: ocr_fasttext` fills
        (`stacmr.training.word_init`); None for a family without them."""
        return None

    def hinge(self, margin: float, max_violation: bool) -> tuple[float, bool]:
        """(margin, max_violation) of this family's hinge loss, given the `train` params' ones: its config's
        instead for a family with `hinge_from_config`."""
        if self.hinge_from_config:
            return self.config.margin, self.config.max_violation
        return margin, max_violation

    @abc.abstractmethod
    def loss(
        self, images: ImageBatch, captions: CaptionBatch, retrieval_criterion: Callable[[Tensor], Tensor]
    ) -> dict[str, Tensor]:
        """Training loss of B matching pairs (images[i] is the image of captions[i]). `retrieval_criterion` maps the
        (B, B) similarity to a scalar (see `stacmr.losses`). Returns scalars: "loss" (the total to minimise),
        "retrieval", and the family's auxiliary terms."""
