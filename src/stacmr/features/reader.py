"""Model inputs read from a feature store: images and captions by row, in any order, as the models' batches.

Image features come from RAM when the store's are held there (`stacmr.features.memory.hold`: what training does when
they fit), else from the file, chunk-aware (`read_rows`), so memory is bounded by the rows asked for. Captions are
read from the file and tokenised on the fly. Either way a batch holds the same values: float16 features are widened
to float32 exactly, by whichever path. With `pin`, the batch's tensors are made in page-locked memory (CUDA), where a
copy to the GPU with `non_blocking=True` returns at once and overlaps the host's next read. Training batches
(`stacmr.training.batches`) and encoding (`stacmr.evaluation.encode`) both read through here.
"""

from __future__ import annotations

import h5py
import numpy as np
import torch

from stacmr.features.memory import held
from stacmr.features.store import FeatureStore
from stacmr.features.vocab import Vocabulary
from stacmr.models import CaptionBatch, ImageBatch
from stacmr.models.characters import MAX_CHARS, encode_strings
from stacmr.text import words


def read_rows(dataset: h5py.Dataset, rows: np.ndarray) -> np.ndarray:
    """The values of `dataset` (a store field) at `rows` along its first axis, in any order, repeats allowed;
    strings decoded. A field stored one image per chunk is read one slice per run of consecutive rows (an encoding's
    batch: one read; a random training batch: about one per image), since HDF5 reads such a field by an index array
    ~70× slower at release sizes (250 ms for 128 images of 36 × 2048 float16); any other field by one index-array
    read, the faster one for it."""
    strings = h5py.check_string_dtype(dataset.dtype) is not None
    source = dataset.asstr() if strings else dataset
    unique, inverse = np.unique(rows, return_inverse=True)
    if dataset.chunks is None or not len(unique):
        return source[unique][inverse]
    values = np.empty((len(unique), *dataset.shape[1:]), dtype=object if strings else dataset.dtype)
    breaks = np.flatnonzero(np.diff(unique) != 1) + 1
    for start, stop in zip(np.r_[0, breaks], np.r_[breaks, len(unique)], strict=True):
        values[start:stop] = source[unique[start] : unique[stop - 1] + 1]
    return values[inverse]


def _features(values: np.ndarray, pin: bool) -> torch.Tensor:
    """float16 features as a float32 tensor, widened by torch (numpy widens float16 about 2× slower) into memory
    from numpy, which asks the kernel for huge pages (a batch's 38 MB of fresh torch memory faults in 4 KB pages,
    costing more than the widening), or with `pin` into page-locked memory (CUDA's caching host allocator reuses
    it)."""
    if pin:
        out = torch.empty(values.shape, dtype=torch.float32, pin_memory=True)
    else:
        out = torch.from_numpy(np.empty(values.shape, np.float32))
    return out.copy_(torch.from_numpy(values))


def _tensor(values: np.ndarray, pin: bool) -> torch.Tensor:
    tensor = torch.from_numpy(values)
    return tensor.pin_memory() if pin else tensor


def _fractions(boxes: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Boxes (B, S, 4) x, y, w, h in pixels → (x0, y0, x1, y1) as fractions of the image's (B, 2) width and height;
    NaN where the box is NaN or the image's size unknown (0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(size > 0, 1.0 / size, np.nan).astype(np.float32)[:, None, :]
    corners = np.concatenate([boxes[..., :2], boxes[..., :2] + boxes[..., 2:]], axis=-1)
    return (corners * np.tile(scale, 2)).astype(np.float32)


def read_images(
    store: FeatureStore, rows: np.ndarray, characters: bool = False, pin: bool = False, boxes: bool = False
) -> ImageBatch:
    """The images at `rows` (any order, repeats allowed) as float32 tensors; with `characters`, also the OCR
    strings' char ids (`ImageBatch.ocr_chars`), for the families that spell words; with `boxes`, the region and OCR
    boxes as fractions of the image (`ImageBatch.region_boxes`, `ocr_boxes`), for the families that place objects;
    `pin`: in page-locked memory."""
    rows = np.asarray(rows)
    arrays = held(store)

    def field(name: str) -> np.ndarray:
        return read_rows(store[name], rows) if arrays is None else arrays[name][rows]

    regions = _features(field("regions"), pin)
    ocr = _features(field("ocr_emb"), pin)
    if arrays is None:  # held values were checked as they were read into RAM
        # NaN/inf: one error naming the file, the field and the image
        store.check_finite(rows, regions=regions.numpy(), ocr_emb=ocr.numpy())
    region_mask = np.arange(regions.shape[1])[None, :] < field("region_count")[:, None]
    ocr_chars = None
    if characters:
        strings = read_rows(store["ocr_tokens"], rows)  # (B, T), "" in padded slots
        ocr_chars = _tensor(encode_strings(strings.ravel().tolist()).reshape(*strings.shape, -1), pin)
    region_boxes = ocr_boxes = None
    if boxes:
        size = read_rows(store["image_size"], rows)
        region_boxes = _tensor(_fractions(read_rows(store["region_boxes"], rows), size), pin)
        ocr_boxes = _tensor(_fractions(read_rows(store["ocr_boxes"], rows), size), pin)
    return ImageBatch(
        regions=regions,
        region_mask=_tensor(region_mask, pin),
        ocr=ocr,
        ocr_mask=_tensor(field("ocr_mask"), pin),
        ocr_chars=ocr_chars,
        region_boxes=region_boxes,
        ocr_boxes=ocr_boxes,
    )


def encode_captions(
    captions: list[str], vocab: Vocabulary, max_words: int, characters: bool = False, pin: bool = False
) -> CaptionBatch:
    """Word ids of `captions`; with `characters`, also each word's spelling (`CaptionBatch.word_chars`: the words
    `vocab.encode` maps, so a word out of the vocabulary keeps its characters; an empty caption's <unk> has none);
    `pin`: in page-locked memory."""
    ids = [vocab.encode(c, max_words) for c in captions]
    lengths = np.array([len(x) for x in ids], dtype=np.int64)
    tokens = np.zeros((len(ids), lengths.max()), dtype=np.int64)
    for i, x in enumerate(ids):
        tokens[i, : len(x)] = x
    word_chars = None
    if characters:
        word_chars = np.zeros((*tokens.shape, MAX_CHARS + 1), dtype=np.int64)
        for i, caption in enumerate(captions):
            spelt = words(caption)[:max_words]
            word_chars[i, : len(spelt)] = encode_strings(spelt)
        word_chars = _tensor(word_chars, pin)
    return CaptionBatch(tokens=_tensor(tokens, pin), lengths=_tensor(lengths, pin), word_chars=word_chars)


def read_captions(
    store: FeatureStore,
    caption_rows: np.ndarray,
    vocab: Vocabulary,
    max_words: int,
    characters: bool = False,
    pin: bool = False,
) -> CaptionBatch:
    """Captions by flat index (image i's k-th caption is i·C + k), any order; `characters` and `pin` as
    `encode_captions`."""
    c = store.sizes["C"]
    texts = read_rows(store["captions"], caption_rows // c)[np.arange(len(caption_rows)), caption_rows % c]
    return encode_captions(list(texts), vocab, max_words, characters, pin)
