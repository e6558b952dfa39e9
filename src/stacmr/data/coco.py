"""COCO caption annotations (`captions_train2014.json` style), CTC_anns.json's image list, and COCO image ids, as
the CTC sources use them.

Reads a COCO captions JSON: `annotations` [{image_id*, caption*}] and, optionally, `images` [{id*, file_name,
coco_url, width, height}] (fields marked * are the ones needed). Captions whose image has no `images` entry are
kept (the metadata is then unknown): sampled files list the two independently. Image ids are compared as the
decimal COCO id, whether a file writes 57870, "57870" or "COCO_train2014_000000057870.jpg".
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stacmr.data.annotations import ImageMeta
from stacmr.errors import StacmrError
from stacmr.jsonfile import read_json

_TRAILING_NUMBER = re.compile(r"(\d+)(?:\.\w+)?$")


def coco_image_id(raw: Any) -> str | None:
    """The decimal COCO id in `raw` (an int, a numeric string, or a COCO file name or URL); None if there is none."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return str(raw)
    match = _TRAILING_NUMBER.search(str(raw).strip())
    return str(int(match.group(1))) if match else None


@dataclass(frozen=True, kw_only=True)
class CocoImage(ImageMeta):
    captions: list[str] = field(default_factory=list)  # in annotation order, appended while the file is read

    @classmethod
    def from_entry(cls, image_id: str, entry: dict) -> CocoImage:
        """The image described by a COCO-style `images` entry (only the fields this class keeps are read)."""
        return cls(
            id=image_id,
            file_name=entry.get("file_name") or "",
            coco_url=(entry.get("coco_url") or "").strip() or None,
            width=entry.get("width"),
            height=entry.get("height"),
        )


def _listing(path: Path, what: str, key: str, expected: str) -> tuple[dict[str, Any], list[Any]]:
    """(the JSON document at `path`, its list under `key`); one error naming the file and the field otherwise."""
    doc = read_json(path, what)
    entries = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise StacmrError(f"{path}: field '{key}': expected {expected}")
    return doc, entries


def read_coco_captions(path: str | os.PathLike) -> dict[str, CocoImage]:
    """{COCO id: image with its captions}, for every image that has at least one caption in the file."""
    path = Path(path)
    doc, annotations = _listing(path, "COCO captions file", "annotations", "the list of COCO captions")
    meta = {}
    for i, raw in enumerate(doc.get("images") or []):
        image_id = coco_image_id(raw.get("id")) if isinstance(raw, dict) else None
        if image_id is None:
            raise StacmrError(f"{path}: images[{i}]: field 'id' is missing or not a COCO id")
        meta[image_id] = raw
    images: dict[str, CocoImage] = {}
    for i, raw in enumerate(annotations):
        image_id = coco_image_id(raw.get("image_id")) if isinstance(raw, dict) else None
        caption = raw.get("caption") if isinstance(raw, dict) else None
        if image_id is None or not isinstance(caption, str):
            raise StacmrError(f"{path}: annotations[{i}]: needs 'image_id' (a COCO id) and 'caption' (a string)")
        if image_id not in images:
            images[image_id] = CocoImage.from_entry(image_id, meta.get(image_id, {}))
        images[image_id].captions.append(" ".join(caption.split()))
    return images


def read_ctc_images(path: str | os.PathLike) -> dict[str, CocoImage]:
    """The images of CTC_anns.json: {COCO id: metadata}. Its full schema was not seen (paper README), so only what is
    needed is read: a top-level `images` list whose entries carry an id (`id`, `image_id` or `cocoid`, else one
    parsed from `file_name` or `coco_url`) and, optionally, `file_name`, `coco_url`, `width`, `height`; other fields
    are ignored."""
    path = Path(path)
    _, entries = _listing(path, "CTC annotation file", "images", "the list of CTC images")
    images = {}
    for i, raw in enumerate(entries):
        if not isinstance(raw, dict):
            raise StacmrError(f"{path}: images[{i}]: expected an object")
        candidates = [raw.get(k) for k in ("id", "image_id", "cocoid", "file_name", "coco_url")]
        image_id = next((coco_image_id(c) for c in candidates if c is not None and coco_image_id(c)), None)
        if image_id is None:
            raise StacmrError(f"{path}: images[{i}]: no image id (id, image_id, cocoid, file_name or coco_url)")
        images[image_id] = CocoImage.from_entry(image_id, raw)
    return images
