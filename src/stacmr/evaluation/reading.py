"""Does it read? Diagnostics of any `RetrievalModel` on groups of visually near-identical images.

Within a group, only the scene text tells the images apart, so a caption that names its image's scene text can only
be matched to its own image by a model that reads. Two probes, each over the *naming* captions (those sharing a word
of at least three characters with their own image's OCR strings) of groups of at least two images:
  within_group  the caption scores its own image strictly above every group mate (the model's own embeddings);
  ocr_swap      the OCR inputs are rotated within each group (member k gets the OCR of member k + 1, members in
                index order), the images are re-encoded, and the caption scores strictly highest the image that now
                holds its own image's OCR: a model that reads follows the text, one that looks does not.
Strict: a tie never wins, so a model blind to OCR scores 0 on identical-looking mates. Each share comes with its
chance level, the mean of 1 / group size over the queries (`*_chance`), and its query count (`*_queries`); with no
query the share and chance are None (JSON null).

`groups` (N,) int64 gives each image of the split a group id (a model-free visual-neighbour clustering computed
elsewhere, or the synthetic world's true groups); an image alone in its group asks nothing. Reads the store (regions,
OCR fields, OCR strings, captions); writes nothing. Scores come from `model.similarity` on the embeddings of one group's
images and captions, so fine-grained families (`VectorSets`) take part too. The store is encoded once
(`encode_store`: the embeddings the metrics see); `ocr_swap` then re-encodes the grouped images, about `batch_size` at
a time in batches of whole groups so that the rotation never crosses a batch, and scores them against the captions'
`encode_store` embeddings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from stacmr.evaluation.encode import Encoded, encode_store
from stacmr.evaluation.textmatch import distinct_words, store_text
from stacmr.features.reader import read_images
from stacmr.features.store import FeatureStore
from stacmr.features.vocab import Vocabulary
from stacmr.models import ImageBatch, RetrievalModel, VectorSets
from stacmr.text import words

MIN_NAME_LEN = 3  # shorter shared words ("a", "of", OCR debris) name nothing


def naming_captions(ocr_tokens: list[list[str]], captions: list[str], captions_per_image: int) -> np.ndarray:
    """(M,) bool: caption j (image-major, of image j // C) shares an exact word of at least `MIN_NAME_LEN` characters
    with its own image's OCR strings."""
    if len(captions) != len(ocr_tokens) * captions_per_image:
        raise ValueError(f"{len(captions)} captions for {len(ocr_tokens)} images of {captions_per_image} captions each")
    scene = [{w for w in distinct_words(strings) if len(w) >= MIN_NAME_LEN} for strings in ocr_tokens]
    return np.array(
        [not scene[j // captions_per_image].isdisjoint(words(text)) for j, text in enumerate(captions)], dtype=bool
    )


def _group_members(groups: np.ndarray, n_images: int) -> list[np.ndarray]:
    """The members (ascending) of every group of at least two images, groups in order of their first member."""
    groups = np.asarray(groups)
    if groups.shape != (n_images,) or not np.issubdtype(groups.dtype, np.integer):
        raise ValueError(f"groups: expected an integer array of shape ({n_images},), got {groups.dtype} {groups.shape}")
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    members = np.split(np.argsort(inverse, kind="stable"), np.cumsum(counts)[:-1])
    return sorted((m for m in members if len(m) >= 2), key=lambda m: int(m[0]))


def _queries(members: np.ndarray, naming: np.ndarray, captions_per_image: int) -> tuple[np.ndarray, np.ndarray]:
    """(the group's naming captions (k,), each one's own image as a position in `members` (k,))."""
    captions = (members[:, None] * captions_per_image + np.arange(captions_per_image)).ravel()
    owners = np.repeat(np.arange(len(members)), captions_per_image)
    keep = naming[captions]
    return captions[keep], owners[keep]


def _select(emb: np.ndarray | Tensor | VectorSets, index: np.ndarray, device: torch.device) -> Tensor | VectorSets:
    """The embeddings at `index`: rows of a dense array or tensor (on `device`), or sets (on their own device)."""
    if isinstance(emb, VectorSets):
        return emb.take(torch.from_numpy(index).to(emb.emb.device))
    if isinstance(emb, np.ndarray):
        return torch.from_numpy(emb[index]).to(device)
    return emb[torch.from_numpy(index).to(emb.device)]


def _wins(scores: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(k,) bool: column q of `scores` (g, k) is strictly highest at row target[q] (a tie never wins)."""
    cols = np.arange(scores.shape[1])
    rivals = scores.copy()
    rivals[target, cols] = -np.inf
    return scores[target, cols] > rivals.max(axis=0)


class _Tally:
    def __init__(self) -> None:
        self.wins = 0
        self.chance = 0.0
        self.queries = 0

    def add(self, wins: np.ndarray, group_size: int) -> None:
        self.wins += int(np.count_nonzero(wins))
        self.chance += len(wins) / group_size
        self.queries += len(wins)

    def result(self, prefix: str) -> dict[str, float | int | None]:
        share = self.wins / self.queries if self.queries else None
        chance = self.chance / self.queries if self.queries else None
        return {prefix: share, f"{prefix}_chance": chance, f"{prefix}_queries": self.queries}


def _scores(model: RetrievalModel, img: Tensor | VectorSets, cap: Tensor | VectorSets) -> np.ndarray:
    return model.similarity(img, cap).float().cpu().numpy()


def _within_group(
    model: RetrievalModel,
    enc: Encoded,
    naming: np.ndarray,
    captions_per_image: int,
    members: list[np.ndarray],
    device: torch.device,
) -> dict[str, float | int | None]:
    tally = _Tally()
    for group in members:
        captions, owners = _queries(group, naming, captions_per_image)
        if len(captions):
            scores = _scores(model, _select(enc.img_emb, group, device), _select(enc.cap_emb, captions, device))
            tally.add(_wins(scores, owners), len(group))
    return tally.result("within_group")


def _batches(members: list[np.ndarray], batch_size: int) -> Iterator[list[np.ndarray]]:
    """Consecutive whole groups, about `batch_size` images at a time (a larger group is a batch of its own): the OCR
    rotation stays inside a batch."""
    batch: list[np.ndarray] = []
    size = 0
    for group in members:
        if batch and size + len(group) > batch_size:
            yield batch
            batch, size = [], 0
        batch.append(group)
        size += len(group)
    if batch:
        yield batch


def _float32(emb: Tensor | VectorSets) -> Tensor | VectorSets:
    """Embeddings in float32, as `encode_store` keeps them, so both probes score the same precision."""
    return VectorSets(emb.emb.float(), emb.mask) if isinstance(emb, VectorSets) else emb.float()


def rotate_ocr(images: ImageBatch, donor: Tensor) -> ImageBatch:
    """`images` whose every OCR field (every field named "ocr…": vectors, mask, and any other a family reads) is
    taken from image donor[b] (B,) int64 of the same batch; the regions stay."""
    swapped = {
        f.name: getattr(images, f.name)[donor]
        for f in dataclasses.fields(images)
        if f.name.startswith("ocr") and getattr(images, f.name) is not None
    }
    return dataclasses.replace(images, **swapped)


def _ocr_swap(
    model: RetrievalModel,
    store: FeatureStore,
    enc: Encoded,
    naming: np.ndarray,
    members: list[np.ndarray],
    device: torch.device,
    batch_size: int,
) -> dict[str, float | int | None]:
    captions_per_image = store.sizes["C"]
    tally = _Tally()
    for batch in _batches(members, batch_size):
        rows = np.concatenate(batch)
        starts = np.cumsum([0] + [len(g) for g in batch])[:-1]
        # member k of a group (at position start + k of the batch) takes the OCR of member k + 1 (mod its size)
        donor = np.concatenate([start + np.roll(np.arange(len(g)), -1) for start, g in zip(starts, batch, strict=True)])
        # the OCR strings' char ids too for a family that spells them, as `encode_store` reads them
        characters = getattr(model, "reads_characters", False)
        boxes = getattr(model, "reads_boxes", False)
        images = rotate_ocr(read_images(store, rows, characters, boxes=boxes), torch.from_numpy(donor))
        img_emb = _float32(model.encode_images(images.to(device)))
        for start, group in zip(starts, batch, strict=True):
            captions, owners = _queries(group, naming, captions_per_image)
            if len(captions):
                positions = np.arange(start, start + len(group))
                scores = _scores(model, _select(img_emb, positions, device), _select(enc.cap_emb, captions, device))
                # member k's OCR now sits at member k - 1
                tally.add(_wins(scores, (owners - 1) % len(group)), len(group))
    return tally.result("ocr_swap")


@torch.no_grad()
def reading_diagnostics(
    model: RetrievalModel,
    store: FeatureStore,
    vocab: Vocabulary,
    max_words: int,
    device: torch.device,
    groups: np.ndarray,
    batch_size: int = 256,
    probes: tuple[str, ...] = ("within_group", "ocr_swap"),
) -> dict[str, float | int | None]:
    """The keys of each of `probes` ("within_group": {"within_group", "within_group_chance",
    "within_group_queries"}; "ocr_swap": the same with "ocr_swap"), from one encoding of the store."""
    members = _group_members(groups, len(store))
    ocr_tokens, captions = store_text(store)
    naming = naming_captions(ocr_tokens, captions, store.sizes["C"])
    enc = encode_store(model, store, vocab, max_words, device, batch_size)
    was_training = model.training
    model.eval()
    try:
        out: dict[str, float | int | None] = {}
        if "within_group" in probes:
            out |= _within_group(model, enc, naming, store.sizes["C"], members, device)
        if "ocr_swap" in probes:
            out |= _ocr_swap(model, store, enc, naming, members, device, batch_size)
        return out
    finally:
        model.train(was_training)
