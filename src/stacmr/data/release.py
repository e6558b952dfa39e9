"""The release format (SCAN/VSRN "precomp", as StacMR ships it), written by `fetch` and read by `features`.

Per source directory and split:
  {split}_ims.npy   float32 (N, R, D) region features, image i = row i (BUTD releases: R=36, D=2048)
  {split}_caps.txt  UTF-8, `captions_per_image` lines per image: image i ↔ lines C·i .. C·i+C-1
  {split}_ids.txt   N lines, one image id each
and one `annotations.json` per source (see `annotations.py`) with the OCR token strings. The real release also has
  {split}_ocr_feats.npy  float32 (N, T, 300) fastText vectors of each image's OCR tokens, slot t = token t
which, when present, `features` uses instead of embedding OCR strings itself. The release ships no mask and no
count: an all-zero token row is padding (an image without scene text is all zeros), as the release code treats it.
The synthetic world writes no such file (it ships OCR strings, embedded by `features`). Also optional:
  {split}_boxes.npy      float32 (N, R, 4) each region slot's box x, y, w, h in pixels (as OCR boxes); NaN rows:
                         slots without a box
which the synthetic world writes and the StacMR release does not have (absent: every box is unknown, NaN).

Captions are read as text, not bytes: reading them in binary mode cost VSRN's Python 3 ports 5-35 R@1 points
(VSRN issues #15, #23, #27). Region arrays are memory-mapped, never loaded whole. One model reads every split, so the
splits of a release must agree on the region size D and the OCR vector size E (`check_sizes_agree`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stacmr.atomic import atomic_path, write_text
from stacmr.data.sources import SOURCES
from stacmr.errors import StacmrError


def split_files(directory: str | os.PathLike, split: str) -> dict[str, Path]:
    """The release files of one split: keys `ims`, `caps`, `ids`."""
    directory = Path(directory)
    return {
        "ims": directory / f"{split}_ims.npy",
        "caps": directory / f"{split}_caps.txt",
        "ids": directory / f"{split}_ids.txt",
    }


@dataclass(frozen=True)
class ReleaseSplit:
    ims: np.ndarray  # (N, R, D) float32, memory-mapped
    captions: list[str]  # N × C captions, image-major
    ids: list[str]  # N image ids
    captions_per_image: int
    # where each part was read from (`ocr`, `boxes` only when the split has released OCR vectors, region boxes)
    files: dict[str, Path]
    ocr_feats: np.ndarray | None = None  # (N, T, E) float32, memory-mapped; None: embed OCR strings instead
    boxes: np.ndarray | None = None  # (N, R, 4) region boxes, memory-mapped; None: no box known

    def image_captions(self, i: int) -> list[str]:
        c = self.captions_per_image
        return self.captions[c * i : c * i + c]


class SplitWriter:
    """Collects one split's images for `write_split`: region rows (and boxes) go straight into memory-mapped
    arrays."""

    def __init__(self, ims: np.ndarray, boxes: np.ndarray | None) -> None:
        self._ims = ims
        self._boxes = boxes
        self.captions: list[str] = []
        self.ids: list[str] = []

    def add(self, regions: np.ndarray, captions: list[str], image_id: str, boxes: np.ndarray | None = None) -> None:
        """Append the next image: its (R, D) regions, its captions (single non-empty lines), its id, and its (R, 4)
        region boxes exactly when the split is written with boxes."""
        if any("\n" in c or not c.strip() for c in captions):
            raise ValueError(f"image {image_id}: release captions must be single non-empty lines")
        if (boxes is None) != (self._boxes is None):
            raise ValueError(f"image {image_id}: region boxes are given for every image of a split or for none")
        self._ims[len(self.ids)] = regions
        if boxes is not None:
            self._boxes[len(self.ids)] = boxes
        self.captions.extend(captions)
        self.ids.append(image_id)


@contextlib.contextmanager
def write_split(
    directory: str | os.PathLike, split: str, n_images: int, regions: int, dim: int, boxes: bool = False
) -> Iterator[SplitWriter]:
    """Stream one split into the release format, one image at a time, so memory stays flat; with `boxes`, each
    image brings its region boxes too (`{split}_boxes.npy`).

    The arrays are filled in temp files; on a clean exit the captions and ids are written and the arrays are
    renamed into place; on an error the arrays are discarded.
    """
    files = split_files(directory, split)
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(atomic_path(files["ims"]))
        ims = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n_images, regions, dim))
        box_array = None
        if boxes:
            box_tmp = stack.enter_context(atomic_path(boxes_file(directory, split)))
            box_array = np.lib.format.open_memmap(box_tmp, mode="w+", dtype=np.float32, shape=(n_images, regions, 4))
        writer = SplitWriter(ims, box_array)
        yield writer
        if len(writer.ids) != n_images:
            raise ValueError(f"{files['ims']}: {len(writer.ids)} images written, {n_images} declared")
        for array in (ims, box_array):
            if array is not None:
                array.flush()
        del ims, box_array
        write_text(files["caps"], "".join(c + "\n" for c in writer.captions))
        write_text(files["ids"], "".join(f"{i}\n" for i in writer.ids))


def ocr_feats_file(directory: str | os.PathLike, split: str) -> Path:
    """Where a split's released OCR vectors are (the file is optional)."""
    return Path(directory) / f"{split}_ocr_feats.npy"


def boxes_file(directory: str | os.PathLike, split: str) -> Path:
    """Where a split's region boxes are (the file is optional)."""
    return Path(directory) / f"{split}_boxes.npy"


def _open_array(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise StacmrError(f"{path}: release file is missing") from None
    except (ValueError, OSError, EOFError) as exc:
        raise StacmrError(f"{path}: not a readable .npy array (truncated or corrupt?): {exc}") from None


def read_ocr_feats(path: str | os.PathLike, n_images: int) -> np.ndarray:
    """Memory-map released OCR vectors (N, T, E), checking rank, dtype and that N matches the split's images."""
    path = Path(path)
    feats = _open_array(path)
    if feats.ndim != 3:
        raise StacmrError(f"{path}: expected OCR vectors of shape (N, T, E), got shape {feats.shape}")
    if feats.dtype not in (np.float32, np.float16, np.float64):
        raise StacmrError(f"{path}: expected float OCR vectors, got dtype {feats.dtype}")
    if feats.shape[0] != n_images:
        raise StacmrError(f"{path}: {feats.shape[0]} rows of OCR vectors for {n_images} images of the split")
    return feats


def read_region_boxes(path: str | os.PathLike, n_images: int, regions: int) -> np.ndarray:
    """Memory-map region boxes (N, R, 4), checking dtype and that N and R match the split's region features."""
    path = Path(path)
    boxes = _open_array(path)
    if boxes.shape != (n_images, regions, 4):
        raise StacmrError(
            f"{path}: expected region boxes of shape ({n_images}, {regions}, 4) (the split's images and region slots;"
            f" x, y, w, h), got shape {boxes.shape}"
        )
    if boxes.dtype not in (np.float32, np.float16, np.float64):
        raise StacmrError(f"{path}: expected float region boxes, got dtype {boxes.dtype}")
    return boxes


def ocr_slots(block: np.ndarray, slots: int) -> tuple[np.ndarray, np.ndarray]:
    """Released OCR vectors (B, T, E) → the first `slots` token slots (B, slots, E) float32 and their mask
    (B, slots) bool; all-zero rows are padding (mask False), missing slots are padded with zeros."""
    out = np.zeros((block.shape[0], slots, block.shape[2]), dtype=np.float32)
    kept = min(slots, block.shape[1])
    out[:, :kept] = block[:, :kept]
    return out, np.any(out != 0, axis=2)


def _read_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StacmrError(f"{path}: release file is missing") from None
    except UnicodeDecodeError as exc:
        raise StacmrError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return text.splitlines()


def read_split(directory: str | os.PathLike, split: str, captions_per_image: int) -> ReleaseSplit:
    """Open one release split, validating shapes and line counts; fails naming the file and the problem."""
    files = split_files(directory, split)
    ims = _open_array(files["ims"])
    if ims.ndim != 3:
        raise StacmrError(f"{files['ims']}: expected region features of shape (N, R, D), got shape {ims.shape}")
    if ims.dtype not in (np.float32, np.float16):
        raise StacmrError(f"{files['ims']}: expected float32 region features, got dtype {ims.dtype}")
    n = ims.shape[0]
    ids = _read_lines(files["ids"])
    if len(ids) != n:
        raise StacmrError(f"{files['ids']}: {len(ids)} ids for {n} images in {files['ims'].name}")
    if len(set(ids)) != n:
        raise StacmrError(f"{files['ids']}: image ids are not unique")
    captions = _read_lines(files["caps"])
    if len(captions) != captions_per_image * n:
        raise StacmrError(
            f"{files['caps']}: {len(captions)} lines, expected {captions_per_image} per image × {n} images"
            f" = {captions_per_image * n} (data.captions_per_image)"
        )
    ocr_path = ocr_feats_file(directory, split)
    ocr_feats = read_ocr_feats(ocr_path, n) if ocr_path.exists() else None
    if ocr_feats is not None:
        files = {**files, "ocr": ocr_path}
    box_path = boxes_file(directory, split)
    boxes = read_region_boxes(box_path, n, ims.shape[1]) if box_path.exists() else None
    if boxes is not None:
        files = {**files, "boxes": box_path}
    return ReleaseSplit(
        ims=ims,
        captions=captions,
        ids=ids,
        captions_per_image=captions_per_image,
        files=files,
        ocr_feats=ocr_feats,
        boxes=boxes,
    )


def check_sizes_agree(directory: str | os.PathLike, shown_as: str | os.PathLike | None = None) -> None:
    """Refuse a release-format folder (one subfolder per source of `SOURCES`) whose splits differ in region
    size (D of `{split}_ims.npy`) or OCR vector size (E of `{split}_ocr_feats.npy`, where present), naming both files
    and both sizes. Reads the arrays' headers only; a missing file or one of another rank is left to `read_split`.
    `shown_as`: the name the folder gets in the message (`fetch` checks its output under a temporary name)."""
    directory = Path(directory)
    shown = Path(shown_as) if shown_as is not None else directory
    kinds = {"region size": lambda folder, split: split_files(folder, split)["ims"], "OCR vector size": ocr_feats_file}
    for what, file_of in kinds.items():
        first: tuple[Path, int] | None = None
        for source in SOURCES:
            for split in source.split_names:
                path = file_of(directory / source.name, split)
                array = _open_array(path) if path.is_file() else None
                if array is None or array.ndim != 3:
                    continue
                here = (shown / path.relative_to(directory), array.shape[2])
                if first is None:
                    first = here
                elif here[1] != first[1]:
                    raise StacmrError(
                        f"{here[0]}: {what} {here[1]}, but {first[0]} has {first[1]}; one model reads every split,"
                        " so all must have the same"
                    )
