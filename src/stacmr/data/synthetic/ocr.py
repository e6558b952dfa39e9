"""OCR-like noise on scene-text words: what an engine would read off a sign, not what is written on it.

Per character, with probability `char_error`: a visual confusion (o→0, l→1, m→rn, ...; see `lexicon.OCR_CONFUSIONS`),
a dropped character or an inserted one. Signs are often read in capitals, so the case of each token is drawn too.
Spurious tokens model the short garbage strings engines read off textures.
"""

from __future__ import annotations

import string

import numpy as np

from stacmr.data.synthetic.lexicon import OCR_CONFUSIONS

_ALNUM = string.ascii_lowercase + string.digits


def read_word(word: str, rng: np.random.Generator, char_error: float) -> tuple[str, int]:
    """(the noisy reading of `word`, the number of character errors made)."""
    out: list[str] = []
    errors = 0
    for ch in word:
        if rng.random() >= char_error:
            out.append(ch)
            continue
        errors += 1
        kind = rng.random()
        if kind < 0.6 and ch in OCR_CONFUSIONS:
            options = OCR_CONFUSIONS[ch]
            out.append(options[rng.integers(len(options))])
        elif kind < 0.8:
            continue  # dropped character
        else:
            out.append(ch)
            out.append(_ALNUM[rng.integers(len(_ALNUM))])  # inserted character
    reading = "".join(out) or word[:1]
    case = rng.random()
    if case < 0.5:
        reading = reading.upper()
    elif case < 0.7:
        reading = reading.capitalize()
    return reading, errors


def spurious_token(rng: np.random.Generator) -> str:
    """A short garbage reading (1-3 characters), as engines produce on textures and edges."""
    length = int(rng.integers(1, 4))
    return "".join(_ALNUM[rng.integers(len(_ALNUM))] for _ in range(length)).upper()
