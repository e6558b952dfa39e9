"""The OCR engine interface, the engines by name, and the token filter of `extract.ocr`.

An engine reads an RGB image and returns words with a box (x, y, w, h in pixels of that image) and a confidence in
[0, 1]. Which engine read a file matters: the StacMR author reports that changing the OCR engine changes the
results significantly (StacMR issue #1), so every output records the engine's name and version.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Protocol

from PIL import Image

from stacmr.params import ExtractParams, OcrFilterParams


@dataclass(frozen=True)
class OcrWord:
    text: str  # as read, case kept
    box: tuple[float, float, float, float]  # x, y, width, height in pixels
    confidence: float  # in [0, 1]


class OcrEngine(Protocol):
    name: str  # e.g. "rapidocr-onnxruntime"
    version: str  # the engine package's version

    def read(self, image: Image.Image) -> list[OcrWord]:
        """The words in an RGB image, in reading order."""
        ...


ENGINES = ("rapidocr",)  # the values of extract.ocr.engine


def make_engine(params: ExtractParams, name: str | None = None) -> OcrEngine:
    """The engine `name` (default: `params.ocr.engine`), using `params.threads` threads."""
    name = name or params.ocr.engine
    if name not in ENGINES:
        raise ValueError(f"unknown OCR engine {name!r}; known: {ENGINES}")
    from stacmr.extract.rapidocr_engine import RapidOcrEngine

    return RapidOcrEngine(params.threads, params.max_side, params.ocr.min_confidence)


# Latin letters (with accents), digits, and the joiners of words on signs ("McDonald's", "7-Eleven", "A&W")
_LATIN = re.compile(r"[0-9A-Za-z\u00C0-\u024F]+(?:['&.\-][0-9A-Za-z\u00C0-\u024F]+)*")
_EDGE_PUNCTUATION = string.punctuation + "“”‘’«»·•|"


def clean_token(word: OcrWord, params: OcrFilterParams) -> str | None:
    """The token kept from `word` (surrounding punctuation stripped), or None when the filter drops it."""
    text = word.text.strip().strip(_EDGE_PUNCTUATION)
    if word.confidence < params.min_confidence or not params.min_length <= len(text) <= params.max_length:
        return None
    if params.script == "latin" and not _LATIN.fullmatch(text):
        return None
    return text
