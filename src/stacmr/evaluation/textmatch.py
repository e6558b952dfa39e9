"""The headroom control: a model-free text-match score between captions and an image's OCR strings, fused with a
visual baseline's similarity.

How far does plain string matching take retrieval once scene text is read? For image i and caption j the match is
the number of distinct caption words (`stacmr.text.words`) equal to a word of one of image i's OCR strings, or, when
fuzzy, within Levenshtein distance 1 of one (both words at least `min_fuzzy_len` characters: shorter words are too
easily one edit apart, "pi"/"po"). The fused score is base + weight × match, where `weight` is chosen on the
validation split (`choose_weight`).

Reads OCR strings and captions (`store_text`, from a `stacmr.features.store.FeatureStore`); writes nothing. The match
is sparse (most pairs share no word) and built through an inverted index word → images, so the CTC-5K gallery
(5,000 images × 25,000 captions) never needs a dense N × M matrix: `block` densifies only the (rows, cols) block that
the sharded ranking of `ranking.py` asks for.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from stacmr.evaluation.metrics import DEFAULT_BLOCK_BYTES, ranks, summarize
from stacmr.evaluation.ranking import Similarity
from stacmr.features.store import FeatureStore
from stacmr.text import words

# cosine similarities lie in [-1, 1]; one matched word is worth `weight` of them
DEFAULT_WEIGHTS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


@dataclass(frozen=True, eq=False)
class TextMatch:
    """The nonzero (image, caption, count) entries of the match, sorted by (image, caption), with a second ordering
    by (caption, image) so that a block of few images or of few captions reads only its own entries."""

    n_images: int
    n_captions: int
    image: np.ndarray  # (nnz,) int32
    caption: np.ndarray  # (nnz,) int32
    count: np.ndarray  # (nnz,) int32, ≥ 1: matched distinct caption words
    image_ptr: np.ndarray  # (n_images + 1,) int64: image i's entries are [image_ptr[i], image_ptr[i + 1])
    by_caption: np.ndarray  # (nnz,) int64: entry indices sorted by (caption, image)
    caption_ptr: np.ndarray  # (n_captions + 1,) int64: caption j's are by_caption[caption_ptr[j] : caption_ptr[j + 1]]

    def block(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """(len(rows), len(cols)) float32 match counts of images `rows` × captions `cols` (any order, repeats
        allowed)."""
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        urows, row_inverse = _unique(rows)
        ucols, col_inverse = _unique(cols)
        out = np.zeros((len(urows), len(ucols)), dtype=np.float32)
        by_rows = int(np.sum(self.image_ptr[urows + 1] - self.image_ptr[urows]))
        by_cols = int(np.sum(self.caption_ptr[ucols + 1] - self.caption_ptr[ucols]))
        # gather the entries of the shorter side, keep those that fall in the other
        if by_rows <= by_cols:
            entries = _segments(self.image_ptr, urows)
            entries = entries[_member(ucols, self.caption[entries])]
        else:
            entries = self.by_caption[_segments(self.caption_ptr, ucols)]
            entries = entries[_member(urows, self.image[entries])]
        r = np.searchsorted(urows, self.image[entries])
        c = np.searchsorted(ucols, self.caption[entries])
        out[r, c] = self.count[entries]
        if row_inverse is not None:
            out = out[row_inverse]
        if col_inverse is not None:
            out = out[:, col_inverse]
        return out


def _unique(index: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(sorted unique values, inverse or None when `index` is already strictly increasing, as ranking's are)."""
    if np.all(index[1:] > index[:-1]):
        return index, None
    return np.unique(index, return_inverse=True)


def _segments(ptr: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """The concatenated ranges [ptr[k], ptr[k + 1]) of `keys`, without a Python loop."""
    starts = ptr[keys]
    lengths = ptr[keys + 1] - starts
    offsets = np.cumsum(lengths) - lengths
    return np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(starts - offsets, lengths)


def _member(sorted_values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """(len(queries),) bool: which queries occur in `sorted_values`."""
    if len(sorted_values) == 0:
        return np.zeros(len(queries), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_values, queries), len(sorted_values) - 1)
    return sorted_values[pos] == queries


def _from_entries(
    n_images: int, n_captions: int, image: np.ndarray, caption: np.ndarray, count: np.ndarray
) -> TextMatch:
    """A `TextMatch` from entries already sorted by (image, caption)."""
    by_caption = np.argsort(caption, kind="stable")  # stable: images stay sorted within a caption
    return TextMatch(
        n_images=n_images,
        n_captions=n_captions,
        image=image,
        caption=caption,
        count=count,
        image_ptr=np.searchsorted(image, np.arange(n_images + 1)).astype(np.int64),
        by_caption=by_caption.astype(np.int64),
        caption_ptr=np.searchsorted(caption[by_caption], np.arange(n_captions + 1)).astype(np.int64),
    )


def _deletions(word: str) -> set[str]:
    """The word and its one-deletion variants: two words within one edit share one of these keys (symmetric delete,
    Garbe's SymSpell), so the fuzzy index never compares all pairs."""
    return {word} | {word[:k] + word[k + 1 :] for k in range(len(word))}


def _within_one_edit(a: str, b: str) -> bool:
    """Levenshtein distance(a, b) ≤ 1, in one pass."""
    if a == b:
        return True
    if len(a) > len(b):
        a, b = b, a
    if len(b) - len(a) > 1:
        return False
    k = next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), len(a))
    # substitution at k (same length), or b has one extra character at k
    return a[k + 1 :] == b[k + 1 :] if len(a) == len(b) else a[k:] == b[k + 1 :]


def distinct_words(texts: Iterable[str]) -> set[str]:
    """The distinct `words` of several strings (an image's OCR strings)."""
    return {w for text in texts for w in words(text)}


def _image_words(ocr_tokens: list[list[str]]) -> tuple[list[str], list[np.ndarray]]:
    """(the distinct OCR words, each word's images (sorted int64)): the inverted index."""
    ids: dict[str, int] = {}
    postings: list[list[int]] = []
    for image, strings in enumerate(ocr_tokens):
        for word in sorted(distinct_words(strings)):
            if word not in ids:
                ids[word] = len(postings)
                postings.append([])
            postings[ids[word]].append(image)
    return list(ids), [np.array(p, dtype=np.int64) for p in postings]


def text_match(ocr_tokens: list[list[str]], captions: list[str], fuzzy: bool, min_fuzzy_len: int = 4) -> TextMatch:
    """The match of N images (`ocr_tokens[i]`: image i's OCR strings) × M captions (any order: the caller's
    `caption_image` says whose they are)."""
    ocr_words, postings = _image_words(ocr_tokens)
    exact = {w: k for k, w in enumerate(ocr_words)}
    deletion_index: dict[str, list[int]] = {}
    if fuzzy:
        for k, w in enumerate(ocr_words):
            if len(w) >= min_fuzzy_len:
                for key in _deletions(w):
                    deletion_index.setdefault(key, []).append(k)

    def matched_images(word: str) -> np.ndarray:
        found = {exact[word]} if word in exact else set()
        if fuzzy and len(word) >= min_fuzzy_len:
            candidates = {k for key in _deletions(word) for k in deletion_index.get(key, ())}
            found |= {k for k in candidates if _within_one_edit(word, ocr_words[k])}
        return np.unique(np.concatenate([postings[k] for k in found])) if found else np.empty(0, dtype=np.int64)

    memo: dict[str, np.ndarray] = {}
    images: list[np.ndarray] = []
    caption_ids: list[np.ndarray] = []
    for j, text in enumerate(captions):
        for word in set(words(text)):
            if word not in memo:
                memo[word] = matched_images(word)
            if len(memo[word]):
                images.append(memo[word])
                caption_ids.append(np.full(len(memo[word]), j, dtype=np.int64))
    n, m = len(ocr_tokens), len(captions)
    if not images:
        empty = np.empty(0, dtype=np.int32)
        return _from_entries(n, m, empty, empty, empty)
    # one (image, caption) key per matched word: counting equal keys counts the caption's matched distinct words,
    # and the sorted keys are the (image, caption) order
    keys, count = np.unique(np.concatenate(images) * m + np.concatenate(caption_ids), return_counts=True)
    return _from_entries(n, m, (keys // m).astype(np.int32), (keys % m).astype(np.int32), count.astype(np.int32))


def _as_block(similarity: Similarity | np.ndarray) -> Similarity:
    if isinstance(similarity, np.ndarray):
        matrix = similarity
        return lambda rows, cols: matrix[np.ix_(rows, cols)]
    return similarity


def fused_similarity(base: Similarity | np.ndarray, match: TextMatch, weight: float) -> Similarity:
    """The block function of base + weight × match, for `metrics.ranks`. `base` is a full (N, M) matrix or a block
    function of the same gallery. A block holds the base block, the match block and their sum (12 bytes per
    element, against the 5 that `max_block_bytes` assumes): halve the budget where that matters."""
    if isinstance(base, np.ndarray) and base.shape != (match.n_images, match.n_captions):
        raise ValueError(f"base similarity of shape {base.shape}, match of {(match.n_images, match.n_captions)}")
    base_block = _as_block(base)
    scale = np.float32(weight)

    def block(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        scores = np.asarray(base_block(rows, cols), dtype=np.float32)
        # a new array, never in place: the base block may be a view of the caller's matrix
        return scores + scale * match.block(rows, cols) if weight else scores

    return block


def choose_weight(
    base: Similarity | np.ndarray,
    match: TextMatch,
    n_images: int,
    caption_image: np.ndarray,
    weights: tuple[float, ...] = DEFAULT_WEIGHTS,
    max_block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> tuple[float, dict[float, float]]:
    """(the weight of best rsum, {weight: rsum} for every weight); ties go to the smallest weight. Call it on the
    VALIDATION split only and report the test split at the chosen weight: choosing on test would report the best of
    `weights` test scores. Every weight ranks the gallery again (2 × len(weights) passes of `base`), so pass a
    precomputed matrix when `base` is expensive and fits. `max_block_bytes` bounds the ranking as in `metrics.ranks`;
    blocks are sized for half of it, since a fused block holds three float32 arrays (`fused_similarity`)."""
    if not weights:
        raise ValueError("choose_weight needs at least one weight")
    rsums: dict[float, float] = {}
    for weight in weights:
        i2t, t2i = ranks(fused_similarity(base, match, weight), n_images, caption_image, max_block_bytes // 2)
        rsums[weight] = summarize(i2t, t2i)["rsum"]
    best = min(rsums, key=lambda w: (-rsums[w], w))
    return best, rsums


def store_text(store: FeatureStore) -> tuple[list[list[str]], list[str]]:
    """(each image's OCR strings (real slots only, in slot order), every caption image-major: caption j belongs to
    image j // C)."""
    mask = store["ocr_mask"][:]
    tokens = store["ocr_tokens"].asstr()[:]
    ocr_tokens = [row[real].tolist() for row, real in zip(tokens, mask, strict=True)]
    return ocr_tokens, list(store.iter_captions())
