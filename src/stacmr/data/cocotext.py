"""COCO-Text v2 annotations → the legible English words of each COCO image (the CTC scene text).

Two layouts are read, by their shape:
  - the official `cocotext.v2.json`: {"anns": {ann_id: {image_id, utf8_string, legibility, language, ...}}, ...}
  - one JSON object per line (`.jsonl`, optionally `.gz`): {"image_id", "annotations": [{text, legibility,
    language, ...}]} (the per-image files of the bgshih/cocotext repository, one per line)
Needed per annotation: the image id, the transcription (`utf8_string` or `text`), `legibility` and `language`.
Both spellings of the codes are accepted: "legible" or 0, "english" or 0 (the repository's integer codes:
legibility 0 = legible, language 0 = English). Illegible, non-English and empty transcriptions are dropped, as CTC
keeps legible English text only.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stacmr.data.coco import coco_image_id
from stacmr.errors import StacmrError
from stacmr.jsonfile import read_json


def _kept(ann: dict) -> str | None:
    """The transcription of an annotation CTC keeps, else None."""
    text = ann.get("utf8_string", ann.get("text"))
    legible = ann.get("legibility") in (0, "legible")
    english = ann.get("language") in (0, "english")
    if legible and english and isinstance(text, str) and text.strip():
        return text.strip()
    return None


def _annotations(path: Path) -> Iterator[tuple[Any, dict]]:
    """(image id, annotation) pairs of either layout."""
    if path.name.endswith((".jsonl", ".jsonl.gz")):
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    doc = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise StacmrError(f"{path}: line {n}: not valid JSON ({exc})") from None
                for ann in doc.get("annotations") or []:
                    yield doc.get("image_id"), ann
        return
    doc = read_json(path, "COCO-Text file")
    anns = doc.get("anns") if isinstance(doc, dict) else None
    if not isinstance(anns, dict):
        raise StacmrError(f"{path}: field 'anns': expected COCO-Text's mapping of annotation id → annotation")
    for ann in anns.values():
        yield ann.get("image_id"), ann


def read_cocotext(path: str | os.PathLike) -> dict[str, tuple[str, ...]]:
    """{COCO id: legible English transcriptions, in file order} for the images that have at least one."""
    path = Path(path)
    if not path.is_file():
        raise StacmrError(f"{path}: COCO-Text annotation file is missing")
    words: dict[str, list[str]] = {}
    try:
        for raw_id, ann in _annotations(path):
            image_id = coco_image_id(raw_id)
            if image_id is None or not isinstance(ann, dict):
                raise StacmrError(f"{path}: an annotation has no usable 'image_id' ({raw_id!r})")
            if (text := _kept(ann)) is not None:
                words.setdefault(image_id, []).append(text)
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise StacmrError(f"{path}: cannot read ({exc})") from None
    return {image_id: tuple(texts) for image_id, texts in words.items()}
