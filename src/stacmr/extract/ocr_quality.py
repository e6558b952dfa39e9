"""OCR quality on the rendered set: word recall and precision of an engine (after the `extract.ocr` filter).

Words are compared as `stacmr.text.words` sees them (lower case, letters and digits), per image, as multisets: a
ground-truth word counts as found once per matching token. recall = found / ground-truth words, precision =
found / tokens kept. Recall is also given per font and per blur radius, the two things the set varies most.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from stacmr.extract.images import load_image
from stacmr.extract.ocr import clean_token
from stacmr.extract.ocr_engine import OcrEngine
from stacmr.params import OcrFilterParams
from stacmr.text import words


def matched(truth: list[str], read: list[str]) -> int:
    """How many ground-truth words of one image the read tokens match (multiset intersection)."""
    return sum((Counter(truth) & Counter(read)).values())


def ocr_quality(engine: OcrEngine, ocr: OcrFilterParams, images: Path, truth: dict[str, list[dict]]) -> dict:
    """Recall and precision of `engine` on the rendered images under `images` ({id}.png) with their `truth`."""
    found = expected = kept = 0
    per_font: dict[str, list[int]] = {}
    per_blur: dict[str, list[int]] = {}
    for image_id, entries in sorted(truth.items()):
        image = load_image(images / f"{image_id}.png")
        if isinstance(image, str):
            raise ValueError(f"{images / image_id}.png: rendered image unreadable: {image}")
        read = [w for word in engine.read(image) if (t := clean_token(word, ocr)) is not None for w in words(t)]
        expected_words = [w for e in entries for w in words(e["word"])]
        found += matched(expected_words, read)
        expected += len(expected_words)
        kept += len(read)
        for e in entries:
            for hits in (per_font.setdefault(e["font"], [0, 0]), per_blur.setdefault(str(e["blur"]), [0, 0])):
                hits[0] += matched(words(e["word"]), read)
                hits[1] += len(words(e["word"]))
    return {
        "engine": engine.name,
        "version": engine.version,
        "images": len(truth),
        "truth_words": expected,
        "read_words": kept,
        "word_recall": round(found / expected, 4) if expected else None,
        "word_precision": round(found / kept, 4) if kept else None,
        "recall_by_font": {font: round(h / n, 4) for font, (h, n) in sorted(per_font.items())},
        "recall_by_blur": {
            blur: round(h / n, 4) for blur, (h, n) in sorted(per_blur.items(), key=lambda i: float(i[0]))
        },
    }
