"""Captions for extracted images: a JSON mapping {image id: [captions]} (what `rendered.py` writes), checked against
the images before any extraction starts."""

from __future__ import annotations

from pathlib import Path

from stacmr.errors import StacmrError
from stacmr.jsonfile import read_json


def read_captions(path: Path, image_ids: list[str], captions_per_image: int) -> dict[str, list[str]]:
    """The captions of `image_ids`; each needs exactly `captions_per_image` single-line, non-empty captions."""
    doc = read_json(path, "captions file")
    if not isinstance(doc, dict):
        raise StacmrError(f"{path}: expected an object {{image id: [captions]}}")
    for image_id in image_ids:
        caps = doc.get(image_id)
        if not isinstance(caps, list) or len(caps) != captions_per_image:
            raise StacmrError(
                f"{path}: image {image_id!r} needs a list of {captions_per_image} captions (data.captions_per_image)"
            )
        if not all(isinstance(c, str) and c.strip() and "\n" not in c for c in caps):
            raise StacmrError(f"{path}: image {image_id!r}: captions must be single non-empty lines")
    return {image_id: doc[image_id] for image_id in image_ids}
