"""Release format → feature store: one split at a time, streamed in blocks of images.

Reads `{split}_ims.npy` (memory-mapped), `{split}_caps.txt`, `{split}_ids.txt` and the source's annotation JSON;
embeds each image's OCR tokens with the `OcrEmbedder`, or, when the split has released OCR vectors
(`{split}_ocr_feats.npy`, the real release), copies those block by block (all-zero slots are padding); checks
every block for NaN/inf and float16 overflow before it is written; copies the split's region boxes
(`{split}_boxes.npy`; all NaN without one) and takes each image's size from its annotation (0 where it has none);
records the inputs' sha256 in the store, under names that do not depend on where the folders are (issue #14: a rerun
must give the same bytes): paths relative to the raw folder (`inputs_root`), and the fastText model under its
`OcrEmbedder.name`.
Memory is bounded by the block size, not the split size.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from stacmr.checksum import sha256_file
from stacmr.data.annotations import ImageAnnotation
from stacmr.data.explicit import is_explicit
from stacmr.data.release import ReleaseSplit, ocr_slots
from stacmr.errors import StacmrError
from stacmr.features.ocr_embedding import OcrEmbedder, token_slots
from stacmr.features.store import create_store
from stacmr.progress import progress

_FLOAT16_MAX = float(np.finfo(np.float16).max)


def _float16(block: np.ndarray, what: str, start: int) -> np.ndarray:
    """`block` (rows of images start, start+1, ...) as float16, refusing NaN/inf and values float16 cannot hold."""
    bad = ~np.isfinite(block)
    if bad.any():
        raise StacmrError(f"{what}: NaN or infinite value in image row {start + int(np.argwhere(bad)[0][0])}")
    big = np.abs(block) > _FLOAT16_MAX
    if big.any():
        row = start + int(np.argwhere(big)[0][0])
        raise StacmrError(f"{what}: image row {row} has values beyond float16 range (±{_FLOAT16_MAX})")
    return block.astype(np.float16)


def training_text(
    releases: dict[str, ReleaseSplit], annotations: dict[str, dict[tuple[str, str], ImageAnnotation]]
) -> Iterator[str]:
    """The text a fastText model is trained on: every caption, and one line of OCR strings per image, of the given
    splits (keys "source/split"; `annotations` is keyed by source)."""
    for name, release in releases.items():
        source, split = name.split("/")
        yield from release.captions
        for image_id in release.ids:
            ann = annotations[source].get((split, image_id))
            if ann is not None:
                yield " ".join(t.text for t in ann.ocr_tokens)


def _input_name(path: Path, root: str | os.PathLike | None) -> str:
    """How input `path` is named in a store's `inputs_sha256`: relative to `root` when under it, else as given."""
    if root is not None and path.is_relative_to(root):
        return path.relative_to(root).as_posix()
    return str(path)


def build_store(
    name: str,
    release: ReleaseSplit,
    annotations: dict[tuple[str, str], ImageAnnotation],
    annotations_path: Path,
    embedder: OcrEmbedder | None,
    max_ocr_tokens: int,
    out_path: str | os.PathLike,
    producer: dict,
    annotation_info: dict | None = None,
    block: int = 256,
    inputs_root: str | os.PathLike | None = None,
) -> None:
    """Write the store of split `name` ("source/split") to `out_path`. With released OCR vectors `embedder` is not
    used (it may be None), and the store's OCR strings stay empty unless the annotation's tokens fill exactly the
    non-zero slots (as `stacmr extract` writes them): the StacMR release does not say which vector is which token.
    `annotation_info` is the annotation file's `info`: when `stacmr extract` wrote it, the OCR engine and backbone it
    names go into the store's attributes. Inputs under `inputs_root` (the raw folder) are recorded by their path
    relative to it."""
    split = name.split("/")[1]
    released = release.ocr_feats
    if released is None and embedder is None:
        raise StacmrError(f"{release.files['ims'].parent}: split {split!r} has no {split}_ocr_feats.npy to use")
    n, regions, dim = release.ims.shape
    anns = []
    for image_id in release.ids:
        ann = annotations.get((split, image_id))
        if ann is None:
            raise StacmrError(f"{annotations_path}: no entry for image {image_id!r} of split {split!r}")
        anns.append(ann)
    inputs = {_input_name(p, inputs_root): sha256_file(p) for p in (*release.files.values(), annotations_path)}
    if released is None:
        inputs[embedder.name] = sha256_file(embedder.source)
    emb_dim = embedder.dim if released is None else released.shape[2]
    sizes = {"N": n, "R": regions, "D": dim, "T": max_ocr_tokens, "E": emb_dim, "C": release.captions_per_image}
    ocr_source = embedder.source if released is None else release.files["ocr"]
    info = annotation_info or {}
    made_by = {name: {k: info[k] for k in ("ocr_engine", "backbone")}} if "ocr_engine" in info else {}
    with create_store(out_path, name, sizes, producer, inputs, made_by) as store:
        for start in progress(range(0, n, block), desc=f"features {name}", unit="block"):
            stop = min(start + block, n)
            count = stop - start
            if released is None:
                ocr_emb = np.zeros((count, max_ocr_tokens, emb_dim), dtype=np.float32)
                ocr_mask = np.zeros((count, max_ocr_tokens), dtype=bool)
            else:
                ocr_emb, ocr_mask = ocr_slots(np.asarray(released[start:stop], np.float32), max_ocr_tokens)
            ocr_tokens = np.full((count, max_ocr_tokens), "", dtype=object)
            ocr_boxes = np.full((count, max_ocr_tokens, 4), np.nan, dtype=np.float32)
            captions = []
            explicit = np.zeros(count, dtype=bool)
            image_size = np.array([(ann.width or 0, ann.height or 0) for ann in anns[start:stop]], dtype=np.int32)
            if release.boxes is None:
                region_boxes = np.full((count, regions, 4), np.nan, dtype=np.float32)
            else:
                region_boxes = np.asarray(release.boxes[start:stop], np.float32)
            for k, ann in enumerate(anns[start:stop]):
                tokens = [t.text for t in ann.ocr_tokens]
                if released is None:
                    ocr_emb[k], ocr_mask[k], kept = embedder.embed(tokens, max_ocr_tokens)
                else:
                    # vectors `stacmr extract` embedded from these very tokens fill the slots in the same order;
                    # the StacMR release's do not say which token they came from (a count that differs: no strings)
                    kept = token_slots(tokens, max_ocr_tokens)
                    kept = kept if len(kept) == int(ocr_mask[k].sum()) else []
                for slot, i in enumerate(kept):
                    ocr_tokens[k, slot] = tokens[i]
                    if ann.ocr_tokens[i].bbox is not None:
                        ocr_boxes[k, slot] = ann.ocr_tokens[i].bbox
                image_captions = release.image_captions(start + k)
                captions.append(image_captions)
                explicit[k] = is_explicit(ann.scene_text, image_captions)
            store.write(
                start,
                regions=_float16(np.asarray(release.ims[start:stop], np.float32), f"{release.files['ims']}", start),
                region_count=np.full(count, regions, dtype=np.int32),
                ocr_emb=_float16(ocr_emb, f"{name}: OCR vectors from {ocr_source}", start),
                ocr_mask=ocr_mask,
                ocr_tokens=ocr_tokens,
                ocr_boxes=ocr_boxes,
                captions=np.array(captions, dtype=object),
                image_ids=np.array(release.ids[start:stop], dtype=object),
                explicit=explicit,
                region_boxes=region_boxes,
                image_size=image_size,
            )
