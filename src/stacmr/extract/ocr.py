"""The OCR engines by name, and the token filter of `extract.ocr` (the interface: `stacmr.extract.ocr_engine`).

Which engine read a file matters: the StacMR author reports that changing the OCR engine changes the
results significantly (StacMR issue #1), so every output records the engine's name and version.
"""

from __future__ import annotations

import re
import string

from stacmr.extract.ocr_engine import OcrEngine, OcrWord
from stacmr.params import ExtractParams, OcrFilterParams

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
