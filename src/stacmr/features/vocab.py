"""The caption vocabulary: words of the training captions → ids, shared by every ablation so that they compare.

Ids 0-3 are reserved (`stacmr.tokens`): <pad>, <start>, <end>, <unk>. Words come from
`stacmr.text.words`, the tokenisation the explicit criterion uses. Saved as JSON (atomically).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from stacmr.atomic import write_text
from stacmr.errors import StacmrError
from stacmr.text import words
from stacmr.tokens import SPECIALS, UNK


class Vocabulary:
    def __init__(self, itos: list[str]) -> None:
        if tuple(itos[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"vocabulary must start with {SPECIALS}")
        self.itos = itos
        self.stoi = {w: i for i, w in enumerate(itos)}

    def __len__(self) -> int:
        return len(self.itos)

    @classmethod
    def build(cls, captions: Iterable[str], min_count: int) -> Vocabulary:
        """Words seen at least `min_count` times, most frequent first (ties alphabetical, so builds are stable)."""
        counts = Counter(w for caption in captions for w in words(caption))
        kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        return cls([*SPECIALS, *kept])

    def encode(self, caption: str, max_words: int) -> np.ndarray:
        """Word ids of the first `max_words` words (int64); an empty caption becomes [<unk>] (length ≥ 1)."""
        ids = [self.stoi.get(w, UNK) for w in words(caption)[:max_words]]
        return np.array(ids or [UNK], dtype=np.int64)

    def save(self, path: str | os.PathLike) -> None:
        write_text(path, json.dumps({"itos": self.itos}, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocabulary:
        path = Path(path)
        try:
            itos = json.loads(path.read_text(encoding="utf-8"))["itos"]
            return cls(itos)
        except FileNotFoundError:
            raise StacmrError(f"{path}: vocabulary file is missing") from None
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise StacmrError(f"{path}: not a stacmr vocabulary ({exc})") from None
