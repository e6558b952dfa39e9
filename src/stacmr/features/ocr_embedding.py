"""fastText embeddings of OCR tokens: load a user's model, or train one on the training captions and OCR strings.

The StacMR release embeds OCR tokens with fastText (300-d); its character n-grams give misread tokens ("P1ZZA") a
vector near the word they misread. When `features.fasttext.model` is null we train a skipgram model on the training
mix's captions and OCR strings, single-threaded with fastText's fixed seed. The same inputs then give the same vectors
up to float rounding: fastText's vectorised sums depend on how its buffers happen to be aligned, so two trainings in
one process can differ in the last bits (seen: 3e-6 on vectors of norm 0.1); two runs of the stage gave identical
files here.
Tokens are lower-cased before lookup (engines read signs in capitals; captions are lower case).

One thread has a side effect: fastText initialises its n-gram matrix in ten blocks, one per thread, so with one
thread only the first tenth starts random and the rest starts at zero. N-grams never seen in training keep a zero
row, and a token made only of such n-grams gets a zero vector (its slot is still marked as a real token).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import fasttext
import numpy as np

from stacmr.atomic import atomic_path
from stacmr.errors import StacmrError
from stacmr.params import FastTextParams
from stacmr.text import words

# This fastText build sometimes stops with "Encountered NaN", or ends with exploded weights, on inputs that train fine
# when run again (seen here: 1 in 20 trainings of a tiny corpus at lr 0.01; once, weights beyond float16 in CI; never
# at the default config); a genuinely diverging run fails every try.
_ATTEMPTS = 3
_MAX_WEIGHT = 1e3  # a sane model's weights are O(1); the stores keep float16 (max 65504)


def _train_with_retries(corpus: Path, params: FastTextParams) -> fasttext.FastText._FastText:
    for _ in range(_ATTEMPTS):
        try:
            model = fasttext.train_unsupervised(
                str(corpus),
                model="skipgram",
                dim=params.dim,
                epoch=params.epoch,
                lr=params.lr,
                ws=params.ws,
                minCount=params.min_count,
                minn=params.minn,
                maxn=params.maxn,
                bucket=params.bucket,
                # fastText's Hogwild updates are reproducible only on one thread; the Python binding fixes the
                # seed (0) and does not expose it
                thread=1,
                verbose=0,
            )
        except RuntimeError as exc:
            error = exc
            continue
        largest = float(np.abs(model.get_input_matrix()).max())
        if np.isfinite(largest) and largest < _MAX_WEIGHT:
            return model
        error = RuntimeError(f"diverged: largest weight {largest:.3g}")
    raise StacmrError(
        f"features: fastText training failed {_ATTEMPTS} times ({error}); lower features.fasttext.lr (now {params.lr})"
    )


def normalise_token(token: str) -> str:
    """The form of an OCR token that is looked up: lower case, surrounding whitespace removed."""
    return token.strip().lower()


class OcrEmbedder:
    """Maps OCR token strings to fixed-size vectors with a fastText model."""

    def __init__(self, model: fasttext.FastText._FastText, source: Path) -> None:
        self._model = model
        self.source = source  # the .bin file the vectors come from
        self.dim = int(model.get_dimension())

    @classmethod
    def load(cls, path: str | os.PathLike) -> OcrEmbedder:
        path = Path(path)
        if not path.is_file():
            raise StacmrError(f"{path}: fastText model file is missing (features.fasttext.model)")
        try:
            model = fasttext.load_model(str(path))
        except ValueError as exc:
            raise StacmrError(f"{path}: not a fastText .bin model: {exc}") from None
        return cls(model, path)

    @classmethod
    def train(cls, lines: Iterable[str], params: FastTextParams, out_path: str | os.PathLike) -> OcrEmbedder:
        """Train on `lines` (captions and OCR strings; tokenised here) and save the model atomically to `out_path`."""
        with tempfile.TemporaryDirectory(prefix="stacmr-fasttext-") as tmp:
            corpus = Path(tmp) / "corpus.txt"
            with open(corpus, "w", encoding="utf-8") as f:
                for line in lines:
                    tokens = words(line)
                    if tokens:
                        f.write(" ".join(tokens) + "\n")
            if corpus.stat().st_size == 0:
                raise StacmrError("features: no training text to train a fastText model on")
            model = _train_with_retries(corpus, params)
        with atomic_path(out_path) as tmp_model:
            model.save_model(str(tmp_model))
        return cls(model, Path(out_path))

    def embed(self, tokens: Sequence[str], slots: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """Vectors of the first `slots` non-empty tokens: ((slots, dim) float32, (slots,) bool mask, kept indices)."""
        vectors = np.zeros((slots, self.dim), dtype=np.float32)
        mask = np.zeros(slots, dtype=bool)
        kept: list[int] = []
        for i, token in enumerate(tokens):
            if len(kept) == slots:
                break
            text = normalise_token(token)
            if not text:
                continue
            vectors[len(kept)] = self._model.get_word_vector(text)
            mask[len(kept)] = True
            kept.append(i)
        return vectors, mask, kept
