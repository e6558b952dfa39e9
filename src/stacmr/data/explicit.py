"""The CTC "explicit" criterion: an image is explicit when its scene text and its captions share at least one word.

StacMR draws CTC-1K (the `dev` split) from explicit images; evaluation also reports the explicit subset of a split.
The criterion compares ground-truth scene-text words (COCO-Text transcriptions), not OCR output.
"""

from __future__ import annotations

from collections.abc import Iterable

from stacmr.text import words


def shared_words(scene_text: Iterable[str], captions: Iterable[str]) -> set[str]:
    """Words that occur both in the scene text and in at least one caption."""
    text_words = {w for token in scene_text for w in words(token)}
    caption_words = {w for caption in captions for w in words(caption)}
    return text_words & caption_words


def is_explicit(scene_text: Iterable[str], captions: Iterable[str]) -> bool:
    """True when the scene text shares at least one word with the captions."""
    return bool(shared_words(scene_text, captions))
