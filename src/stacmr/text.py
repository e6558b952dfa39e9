"""Word tokenisation shared by captions, OCR tokens and the explicit criterion: lower case, letters and digits.

One definition keeps "a caption shares a word with the scene text" (the CTC explicit criterion) consistent with the
words the text encoders see.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    """The lower-cased alphanumeric words of `text`, in order ("Bus #42!" → ["bus", "42"])."""
    return _WORD.findall(text.lower())
