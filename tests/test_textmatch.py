"""The text-match control: hand-built exact and fuzzy cases, the sparse blocks against a brute-force double loop, the
fused ranking, the weight choice, and reading the OCR strings and captions from a store."""

from __future__ import annotations

import numpy as np
import pytest

from stacmr.evaluation.metrics import ranks, summarize
from stacmr.evaluation.textmatch import choose_weight, fused_similarity, store_text, text_match
from stacmr.features.store import FeatureStore, create_store
from stacmr.text import words


def levenshtein(a: str, b: str) -> int:
    """Plain dynamic programme (the oracle)."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def loop_match(ocr_tokens: list[list[str]], captions: list[str], fuzzy: bool, min_fuzzy_len: int = 4) -> np.ndarray:
    """(N, M) by a double loop over every image, caption, caption word and OCR word."""
    out = np.zeros((len(ocr_tokens), len(captions)), dtype=np.float32)
    for i, strings in enumerate(ocr_tokens):
        scene = [w for s in strings for w in words(s)]
        for j, caption in enumerate(captions):
            for w in set(words(caption)):
                out[i, j] += any(
                    o == w or (fuzzy and len(w) >= min_fuzzy_len and len(o) >= min_fuzzy_len and levenshtein(w, o) <= 1)
                    for o in scene
                )
    return out


def full(match) -> np.ndarray:
    return match.block(np.arange(match.n_images), np.arange(match.n_captions))


def test_exact_match_counts_distinct_caption_words():
    ocr = [["Pizza-Hut", "PIZZA"], ["hotel"], []]
    captions = ["pizza pizza hut", "the hotel, a hotel", "a pizzeria", "Hut 42"]
    got = full(text_match(ocr, captions, fuzzy=False))
    np.testing.assert_array_equal(got, [[2, 0, 0, 1], [0, 1, 0, 0], [0, 0, 0, 0]])


def test_fuzzy_match_is_one_edit_between_long_words():
    ocr = [["pizza"], ["pi"], ["cat"]]
    captions = ["pizzq", "piza", "pizzas", "pziza", "pazzq", "po", "cats", "pizza"]
    exact = full(text_match(ocr, captions, fuzzy=False))
    fuzzy = full(text_match(ocr, captions, fuzzy=True))
    np.testing.assert_array_equal(exact[0], [0, 0, 0, 0, 0, 0, 0, 1])
    # substitution, deletion, insertion match; a transposition and two substitutions are two edits
    np.testing.assert_array_equal(fuzzy[0], [1, 1, 1, 0, 0, 0, 0, 1])
    # "pi"/"po" and "cat"/"cats" are one edit apart but too short
    np.testing.assert_array_equal(fuzzy[1:], 0)
    assert full(text_match(ocr, ["cats"], fuzzy=True, min_fuzzy_len=3))[2, 0] == 1


@pytest.mark.parametrize("fuzzy", [False, True])
def test_blocks_equal_a_double_loop(fuzzy):
    rng = np.random.default_rng(0)
    # short words over a small alphabet: many exact and one-edit coincidences, of every length around the cut-off
    vocabulary = sorted({"".join(rng.choice(list("abc"), size=rng.integers(1, 7))) for _ in range(60)})
    for trial in range(8):
        n, m = rng.integers(1, 12), rng.integers(1, 30)
        ocr = [
            [" ".join(rng.choice(vocabulary, size=rng.integers(0, 3))) for _ in range(rng.integers(0, 3))]
            for _ in range(n)
        ]
        captions = [" ".join(rng.choice(vocabulary, size=rng.integers(1, 6))) for _ in range(m)]
        match = text_match(ocr, captions, fuzzy, min_fuzzy_len=3)
        oracle = loop_match(ocr, captions, fuzzy, min_fuzzy_len=3)
        np.testing.assert_array_equal(full(match), oracle, err_msg=f"trial {trial}")
        # any order, repeats, and blocks thin on either side (both gathering paths)
        for rows, cols in [
            (rng.integers(0, n, 2 * n), rng.integers(0, m, 3)),
            (rng.integers(0, n, 1), rng.permutation(m)),
            (np.arange(n)[::-1], np.arange(m)[: m // 2]),
            (np.empty(0, dtype=np.int64), np.arange(m)),
        ]:
            np.testing.assert_array_equal(match.block(rows, cols), oracle[np.ix_(rows, cols)])


def identity_world(n: int) -> tuple[list[list[str]], list[str], np.ndarray]:
    """n images with one distinct shop name each, two captions per image; the first names its shop."""
    names = [f"shop{i}name" for i in range(n)]
    ocr = [[name] for name in names]
    captions = [text for name in names for text in (f"a sign saying {name}", "a street at night")]
    return ocr, captions, np.arange(2 * n) // 2


def test_the_text_decides_when_the_base_is_uninformative():
    ocr, captions, caption_image = identity_world(5)
    match = text_match(ocr, captions, fuzzy=False)
    base = np.zeros((5, 10), dtype=np.float32)
    blind = summarize(*ranks(fused_similarity(base, match, 0.0), 5, caption_image))
    i2t, t2i = ranks(fused_similarity(base, match, 0.1), 5, caption_image)
    assert blind["i2t_r1"] < 100
    # i2t: each image's naming caption comes first; t2i: every naming caption finds its image (the other captions
    # name nothing and stay tied)
    assert summarize(i2t, t2i)["i2t_r1"] == 100 and np.all(t2i[0::2] == 0)


def test_fused_block_function_equals_fused_matrix():
    rng = np.random.default_rng(1)
    ocr, captions, _ = identity_world(4)
    match = text_match(ocr, captions, fuzzy=True)
    base = rng.standard_normal((4, 8)).astype(np.float32)
    from_matrix = fused_similarity(base, match, 0.5)
    from_blocks = fused_similarity(lambda rows, cols: base[np.ix_(rows, cols)], match, 0.5)
    rows, cols = np.array([3, 0]), np.array([7, 1, 1])
    expected = base[np.ix_(rows, cols)] + 0.5 * full(match)[np.ix_(rows, cols)]
    np.testing.assert_allclose(from_matrix(rows, cols), expected)
    np.testing.assert_allclose(from_blocks(rows, cols), expected)
    with pytest.raises(ValueError, match="shape"):
        fused_similarity(base[:3], match, 0.5)


def test_choose_weight_takes_the_text_only_when_it_helps():
    ocr, captions, caption_image = identity_world(6)
    match = text_match(ocr, captions, fuzzy=False)
    flat = np.zeros((6, 12), dtype=np.float32)
    weight, rsums = choose_weight(flat, match, 6, caption_image)
    assert weight == 0.01  # every positive weight is as good: the smallest wins the tie
    assert rsums[0.01] > rsums[0.0] and set(rsums) == {0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0}
    # a perfect base, and text naming the next image's shop: the text can only hurt
    perfect = (np.arange(6)[:, None] == caption_image[None, :]).astype(np.float32)
    noise = text_match(np.roll(np.array(ocr, dtype=object), 1, axis=0).tolist(), captions, fuzzy=False)
    weight, rsums = choose_weight(perfect, noise, 6, caption_image, max_block_bytes=64)
    assert weight == 0.0 and rsums[0.0] == max(rsums.values()) and rsums[1.0] < rsums[0.0]
    with pytest.raises(ValueError, match="at least one weight"):
        choose_weight(perfect, noise, 6, caption_image, weights=())


def test_store_text_reads_real_ocr_slots_and_captions_image_major(tmp_path):
    sizes = {"N": 2, "R": 1, "D": 2, "T": 3, "E": 2, "C": 2}
    tokens = np.array([["EXIT", "", "stale"], ["", "", ""]], dtype=object)
    with create_store(tmp_path / "s.h5", "x/test", sizes, {}, {}) as out:
        out.write(
            0,
            regions=np.zeros((2, 1, 2), dtype=np.float16),
            region_count=np.ones(2, dtype=np.int32),
            ocr_emb=np.zeros((2, 3, 2), dtype=np.float16),
            ocr_mask=np.array([[True, False, False], [False, False, False]]),
            ocr_tokens=tokens,
            ocr_boxes=np.full((2, 3, 4), np.nan, dtype=np.float32),
            captions=np.array([["a", "b"], ["c", "d"]], dtype=object),
            image_ids=np.array(["0", "1"], dtype=object),
            explicit=np.zeros(2, dtype=bool),
        )
    with FeatureStore(tmp_path / "s.h5") as store:
        ocr, captions = store_text(store)
    # "stale" sits in a masked slot: not a reading
    assert ocr == [["EXIT"], []] and captions == ["a", "b", "c", "d"]
