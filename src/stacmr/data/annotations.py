"""CTC-style annotation JSON: one file per source, a top-level `images` list, one entry per image of every split.

Fields per image (those marked * are required when reading; the rest are optional and default to empty):
  id*            image id (int or str; compared as str with `{split}_ids.txt`)
  split*         release split the image belongs to (`train`, `val`, `dev`, `test`); an image may appear in two
                 entries when splits overlap (CTC-1K ⊂ CTC-5K)
  file_name      image file name;  coco_url  where the image can be downloaded (null for synthetic images)
  width, height  image size in pixels
  scene_text     ground-truth legible words (COCO-Text style transcriptions)
  ocr_tokens     what an OCR engine read: [{"text"*, "bbox": [x, y, w, h], "confidence": float}]
  captions       the image's captions (the release's `{split}_caps.txt` is authoritative)
  group          the synthetic world's scene group within the split: images of one scene, told apart only by their
                 scene text (the true groups the "does it read?" diagnostics compare the visual clusters with);
                 null for real data, where groups are unknown
The real CTC_anns.json schema was not seen in full (paper/README.md): for the real data `fetch` writes this format
itself, with scene text from COCO-Text v2 and the metadata of CTC_anns.json (`coco.read_ctc_images`) or COCO.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from stacmr.atomic import write_text
from stacmr.errors import StacmrError
from stacmr.jsonfile import read_json

ANNOTATIONS_FILE = "annotations.json"


@dataclass(frozen=True)
class OcrToken:
    text: str  # the string the engine read, raw (case and noise kept)
    bbox: tuple[float, float, float, float] | None = None  # x, y, width, height in pixels
    confidence: float | None = None  # engine confidence in [0, 1]


@dataclass(frozen=True, kw_only=True)
class ImageMeta:
    """An image's id and what a COCO-style `images` entry tells of it; the records of an image (COCO's, the rebuilt
    CTC list's, the annotation JSON's) extend it."""

    id: str
    file_name: str = ""
    coco_url: str | None = None
    width: int | None = None
    height: int | None = None

    def metadata(self) -> dict[str, Any]:
        """Its metadata fields but the id, to pass on to another record of the same image."""
        return {f.name: getattr(self, f.name) for f in fields(ImageMeta) if f.name != "id"}


@dataclass(frozen=True, kw_only=True)
class ImageAnnotation(ImageMeta):
    split: str
    scene_text: tuple[str, ...] = ()
    ocr_tokens: tuple[OcrToken, ...] = ()
    captions: tuple[str, ...] = ()
    group: int | None = None


def write_annotations(path: str | os.PathLike, images: list[ImageAnnotation], info: dict[str, Any]) -> None:
    """Write the annotation JSON atomically, with sorted keys so that equal inputs give byte-identical files."""
    doc = {"info": info, "images": [asdict(image) for image in images]}
    write_text(path, json.dumps(doc, sort_keys=True, ensure_ascii=False, indent=None) + "\n")


def _token(raw: Any, where: str) -> OcrToken:
    if isinstance(raw, str):
        return OcrToken(text=raw)
    if not isinstance(raw, dict) or not isinstance(raw.get("text"), str):
        raise StacmrError(f"{where}: an OCR token must be a string or an object with a 'text' string")
    bbox = raw.get("bbox")
    if bbox is not None and (len(bbox) != 4 or not all(isinstance(v, int | float) for v in bbox)):
        raise StacmrError(f"{where}: 'bbox' must be four numbers [x, y, w, h], got {bbox!r}")
    conf = raw.get("confidence")
    return OcrToken(text=raw["text"], bbox=tuple(bbox) if bbox else None, confidence=conf)


def _group(raw: Any, where: str) -> int | None:
    if raw is not None and (isinstance(raw, bool) or not isinstance(raw, int)):
        raise StacmrError(f"{where}: 'group' must be an integer or null, got {raw!r}")
    return raw


def read_annotation_info(path: str | os.PathLike) -> dict[str, Any]:
    """The `info` object of an annotation JSON (who made the file: the generator, or the OCR engine and backbone of
    `stacmr extract`); {} when absent. Call after `read_annotations` has validated the file."""
    info = json.loads(Path(path).read_text(encoding="utf-8")).get("info")
    return info if isinstance(info, dict) else {}


def read_annotations(path: str | os.PathLike) -> dict[tuple[str, str], ImageAnnotation]:
    """Read an annotation JSON into {(split, image id): annotation}; fails naming the file and the bad field."""
    path = Path(path)
    doc = read_json(path, "annotation file")
    images = doc.get("images") if isinstance(doc, dict) else None
    if not isinstance(images, list):
        raise StacmrError(f"{path}: field 'images': expected a list of image entries")
    out: dict[tuple[str, str], ImageAnnotation] = {}
    for i, raw in enumerate(images):
        where = f"{path}: images[{i}]"
        if not isinstance(raw, dict):
            raise StacmrError(f"{where}: expected an object")
        for key in ("id", "split"):
            if key not in raw:
                raise StacmrError(f"{where}: field {key!r} is missing")
        tokens = raw.get("ocr_tokens") or []
        ann = ImageAnnotation(
            id=str(raw["id"]),
            split=str(raw["split"]),
            file_name=raw.get("file_name") or "",
            coco_url=raw.get("coco_url"),
            width=raw.get("width"),
            height=raw.get("height"),
            scene_text=tuple(raw.get("scene_text") or ()),
            ocr_tokens=tuple(_token(t, f"{where}.ocr_tokens[{j}]") for j, t in enumerate(tokens)),
            captions=tuple(raw.get("captions") or ()),
            group=_group(raw.get("group"), where),
        )
        key = (ann.split, ann.id)
        if key in out:
            raise StacmrError(f"{where}: image {ann.id!r} appears twice in split {ann.split!r}")
        out[key] = ann
    return out
