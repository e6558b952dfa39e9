"""The character vocabulary of the character-aware text encoder (oCLIP, Xue et al. ECCV 2022): strings → char ids.

oCLIP spells each word as printable ASCII (codes 33-126) with [MASK], EOS and padding, up to 25 characters, EOS after
the last kept character. Here the string is lower-cased first: captions are lower-case (`stacmr.text.words`) and OCR
engines often read capitals, so "STOP" on a sign and "stop" in a caption spell the same. Reserved ids: PAD = 0,
EOS, MASK, UNK (a character outside the alphabet: a space, an accented letter); the 68 lower-cased printable ASCII
characters follow. Reads and writes nothing.
"""

from __future__ import annotations

import numpy as np

PAD, EOS, MASK, UNK = 0, 1, 2, 3
FIRST_CHAR = 4  # ids from here on are characters of the alphabet
MAX_CHARS = 25  # oCLIP: up to 25 characters per word; longer strings keep their first 25

ALPHABET = "".join(chr(c) for c in range(33, 127) if not chr(c).isupper())
CHAR_VOCAB = FIRST_CHAR + len(ALPHABET)  # size of a character embedding table

# code point (< 128) → id; every other code point is UNK
_TABLE = np.full(128, UNK, dtype=np.int64)
_TABLE[[ord(c) for c in ALPHABET]] = np.arange(FIRST_CHAR, CHAR_VOCAB)


def encode_strings(strings: list[str]) -> np.ndarray:
    """Char ids (n, MAX_CHARS + 1) int64 of `strings`: lower-cased, stripped, the first MAX_CHARS characters, then
    EOS, then PAD. An empty string (a padded OCR slot) is all PAD: it has no EOS, and encoders give it no vector."""
    out = np.zeros((len(strings), MAX_CHARS + 1), dtype=np.int64)
    for i, text in enumerate(strings):
        kept = text.strip().lower()[:MAX_CHARS]
        if not kept:
            continue
        codes = np.frombuffer(kept.encode("utf-32-le"), dtype=np.uint32)
        out[i, : len(codes)] = np.where(codes < 128, _TABLE[np.minimum(codes, 127)], UNK)
        out[i, len(codes)] = EOS
    return out
