"""fastText embeddings of OCR tokens: load a user's model, or train one on the training captions and OCR strings.

The StacMR release embeds OCR tokens with fastText (300-d); its character n-grams give misread tokens ("P1ZZA") a
vector near the word they misread. When `features.fasttext.model` is null we train a skipgram model on the training
mix's captions and OCR strings, single-threaded with fastText's fixed seed, in a fresh process (see below), so the
same inputs give the same model file.
Tokens are lower-cased before lookup (engines read signs in capitals; captions are lower case).

One thread has a side effect: fastText initialises its n-gram matrix in ten blocks, one per thread, so with one
thread only the first tenth starts random and the rest starts at zero. N-grams never seen in training keep a zero
row, and a token made only of such n-grams gets a zero vector (its slot is still marked as a real token).
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from collections.abc import Iterable, Sequence
from multiprocessing.connection import Connection
from pathlib import Path

import fasttext
import numpy as np

from stacmr.atomic import atomic_path
from stacmr.errors import StacmrError
from stacmr.params import FastTextParams
from stacmr.text import words

# This fastText build reads memory it never initialised: in one process, a training can differ in its last bits from
# the one before it, and after a few trainings it may stop with "Encountered NaN" or end with exploded weights (seen
# here in the test suite, never at the default config). A fresh interpreter starts from the same state every time, so
# each training runs in its own spawned process: the same inputs give the same model, and a failure is a property of
# the inputs and params, reported as such.
_MAX_WEIGHT = 1e3  # a sane model's weights are O(1); the stores keep float16 (max 65504)

FASTTEXT_FILE = "ocr_fasttext.bin"  # the model the features stage trains, inside its output folder


def fasttext_model_path(features_dir: str | os.PathLike, params: FastTextParams) -> Path:
    """The fastText model the stores' OCR vectors came from: the user's (`features.fasttext.model`), else the one
    the features stage trained into `features_dir`."""
    return Path(params.model) if params.model is not None else Path(features_dir) / FASTTEXT_FILE


def _train_in_child(corpus: str, options: dict, out: str, conn: Connection) -> None:
    """Runs in a spawned process: train, check the weights, save; send None, or the reason it failed."""
    try:
        model = fasttext.train_unsupervised(corpus, **options)
    except RuntimeError as exc:
        conn.send(str(exc))
        return
    largest = float(np.abs(model.get_input_matrix()).max())
    if not (np.isfinite(largest) and largest < _MAX_WEIGHT):
        conn.send(f"diverged: largest weight {largest:.3g}")
        return
    model.save_model(out)
    conn.send(None)


def _train_model(corpus: Path, params: FastTextParams, out: Path) -> None:
    options = {
        "model": "skipgram",
        "dim": params.dim,
        "epoch": params.epoch,
        "lr": params.lr,
        "ws": params.ws,
        "minCount": params.min_count,
        "minn": params.minn,
        "maxn": params.maxn,
        "bucket": params.bucket,
        # fastText's Hogwild updates are reproducible only on one thread; the Python binding fixes the seed (0)
        # and does not expose it
        "thread": 1,
        "verbose": 0,
    }
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_train_in_child, args=(str(corpus), options, str(out), sender))
    child.start()
    sender.close()
    try:
        error = receiver.recv()
    except EOFError:
        error = "the training process died"
    child.join()
    if error is not None or child.exitcode != 0:
        reason = error or f"exit code {child.exitcode}"
        raise StacmrError(
            f"features: fastText training failed ({reason}); lower features.fasttext.lr (now {params.lr})"
        )


def normalise_token(token: str) -> str:
    """The form of an OCR token that is looked up: lower case, surrounding whitespace removed."""
    return token.strip().lower()


class OcrEmbedder:
    """Maps OCR token strings to fixed-size vectors with a fastText model."""

    def __init__(self, model: fasttext.FastText._FastText, source: Path, name: str) -> None:
        self._model = model
        self.source = source  # the .bin file the vectors come from
        # what the stores' provenance calls it: a trained model's file name inside the features folder, a user's
        # model as configured (`source` of a trained model is a temporary path until the folder is renamed)
        self.name = name
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
        return cls(model, path, str(path))

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
            with atomic_path(out_path) as tmp_model:
                _train_model(corpus, params, tmp_model)
                model = fasttext.load_model(str(tmp_model))
        return cls(model, Path(out_path), Path(out_path).name)

    def vector(self, token: str) -> np.ndarray:
        """(dim,) float32 vector of one token, normalised as OCR tokens are (so a caption word and the same word read
        by OCR get the same vector)."""
        return self._model.get_word_vector(normalise_token(token)).astype(np.float32)

    def embed(self, tokens: Sequence[str], slots: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """Vectors of the first `slots` non-empty tokens: ((slots, dim) float32, (slots,) bool mask, kept indices)."""
        vectors = np.zeros((slots, self.dim), dtype=np.float32)
        mask = np.zeros(slots, dtype=bool)
        kept = token_slots(tokens, slots)
        for slot, i in enumerate(kept):
            vectors[slot] = self.vector(tokens[i])
            mask[slot] = True
        return vectors, mask, kept


def token_slots(tokens: Sequence[str], slots: int) -> list[int]:
    """Indices of the tokens that fill the OCR slots, in slot order: the first `slots` non-empty ones."""
    return [i for i, token in enumerate(tokens) if normalise_token(token)][:slots]
