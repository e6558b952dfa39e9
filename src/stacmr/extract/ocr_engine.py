"""The OCR engine interface: an engine reads an RGB image and returns words with a box (x, y, w, h in pixels of that
image) and a confidence in [0, 1]. The engines (`stacmr.extract.rapidocr_engine`) implement it; `stacmr.extract.ocr`
chooses one by name and filters what it reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from PIL import Image


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
