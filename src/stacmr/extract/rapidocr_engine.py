"""The default OCR engine: RapidOCR (PaddleOCR's PP-OCRv4 detector and recogniser as ONNX models, run by
onnxruntime on CPU), whose model files ship inside the `rapidocr-onnxruntime` wheel: nothing is downloaded.

RapidOCR reads text *lines* (a quadrilateral and a string each); the release format wants word tokens, so a line is
split at whitespace and each word gets the part of the line's quadrilateral that its characters span (proportional
to character positions: exact for monospaced text, close for the rest), as an axis-aligned box clipped to the image.
"""

from __future__ import annotations

import importlib.metadata
import logging
import re

import numpy as np
from PIL import Image

from stacmr.errors import StacmrError
from stacmr.extract.ocr_engine import OcrWord

_PACKAGE = "rapidocr-onnxruntime"
_WORD = re.compile(r"\S+")


def line_words(text: str, quad: np.ndarray, confidence: float, width: int, height: int) -> list[OcrWord]:
    """Split one line read inside `quad` ((4, 2): top-left, top-right, bottom-right, bottom-left) into words."""
    n = len(text)
    top_left, top_right, bottom_right, bottom_left = quad.astype(np.float64)
    words = []
    for match in _WORD.finditer(text):
        a, b = match.start() / n, match.end() / n
        corners = np.stack(
            [
                top_left + a * (top_right - top_left),
                top_left + b * (top_right - top_left),
                bottom_left + a * (bottom_right - bottom_left),
                bottom_left + b * (bottom_right - bottom_left),
            ]
        )
        x0, y0 = np.clip(corners.min(axis=0), 0, [width, height])
        x1, y1 = np.clip(corners.max(axis=0), 0, [width, height])
        box = (float(x0), float(y0), float(x1 - x0), float(y1 - y0))
        words.append(OcrWord(text=match.group(), box=box, confidence=float(confidence)))
    return words


class RapidOcrEngine:
    name = _PACKAGE

    def __init__(self, threads: int, max_side: int, min_confidence: float) -> None:
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError:
            raise StacmrError(
                "extract.ocr.engine rapidocr needs the extract extra: pip install -e '.[extract]'"
            ) from None
        # RapidOCR logs every call at INFO through its own logger; our progress bar says enough
        logging.getLogger("RapidOCR").setLevel(logging.WARNING)
        self.version = importlib.metadata.version(_PACKAGE)
        self._ocr = RapidOCR(
            intra_op_num_threads=threads,
            inter_op_num_threads=1,
            max_side_len=max_side,  # RapidOCR shrinks larger images and maps boxes back to the original pixels
            text_score=min_confidence,
        )

    def read(self, image: Image.Image) -> list[OcrWord]:
        bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])  # RapidOCR takes OpenCV's order
        lines, _ = self._ocr(bgr)
        words: list[OcrWord] = []
        for quad, text, confidence in lines or ():
            if text.strip():
                words.extend(line_words(text, np.asarray(quad), float(confidence), image.width, image.height))
        return words
