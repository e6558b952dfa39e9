"""Captions of synthetic images, from varied templates: objects by synonym, optional attributes, the place, and
(on explicit images) the scene-text words, as a human annotator would write them.

Each caption names at least one object of the scene; captions that read the scene text use the ground-truth word,
not the OCR reading (annotators read the sign, engines misread it).
"""

from __future__ import annotations

import numpy as np

from stacmr.data.synthetic.lexicon import OBJECTS
from stacmr.data.synthetic.scenes import Scene

_PREPOSITIONS = ("on", "in", "at", "near", "by")

# Placeholders: {np0} the scene's first-mentioned object, {np1} {np2} other objects, {place}, {prep};
# text templates add {word} (a scene-text word), {carrier} (the text carrier, bare noun), {np_c} (with article) and
# {word_carrier} ("a delta plane").
_OBJECT_TEMPLATES: dict[int, tuple[str, ...]] = {
    1: (
        "{np0} {prep} the {place}",
        "{np0} sitting {prep} the {place}",
        "close up of {np0}",
        "a photo of {np0} {prep} the {place}",
        "there is {np0} in this picture",
        "{np0} seen from the {place}",
    ),
    2: (
        "{np0} and {np1} {prep} the {place}",
        "there is {np0} next to {np1}",
        "a photo of {np0} with {np1} in the background",
        "{np0} near {np1} on a busy {place}",
    ),
    3: (
        "{np0}, {np1} and {np2} {prep} the {place}",
        "{np0} with {np1} and {np2} nearby",
    ),
}

_TEXT_TEMPLATES: tuple[str, ...] = (
    "{np_c} with the word {word} on it",
    "{np_c} that says {word} {prep} the {place}",
    "{word_carrier} {prep} the {place}",
    "{np_c} reading {word} {prep} the {place}",
    "{np_c} with {word} written on it",
    "the {carrier} says {word}",
    "{np_c} showing {word} in large letters",
)


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _noun_phrase(obj: str, attribute: str, rng: np.random.Generator, with_article: bool = True) -> str:
    synonyms = OBJECTS[obj]
    noun = synonyms[rng.integers(len(synonyms))]
    phrase = f"{attribute} {noun}" if rng.random() < 0.6 else noun
    return _article(phrase) if with_article else phrase


def describe(scene: Scene, text_words: tuple[str, ...], read_text: bool, rng: np.random.Generator) -> str:
    """One caption of an image of `scene`; with `read_text`, it names one of `text_words`."""
    order = rng.permutation(len(scene.objects))
    slots = {
        "place": scene.place,
        "prep": _PREPOSITIONS[rng.integers(len(_PREPOSITIONS))],
    }
    for k, idx in enumerate(order):
        obj, attribute = scene.objects[idx]
        slots[f"np{k}"] = _noun_phrase(obj, attribute, rng)
    if read_text and scene.carrier is not None and text_words:
        obj, attribute = scene.objects[scene.carrier]
        slots["np_c"] = _noun_phrase(obj, attribute, rng)
        slots["carrier"] = _noun_phrase(obj, attribute, rng, with_article=False)
        # the prominent (first) word most of the time, as annotators read the largest text first
        slots["word"] = text_words[0] if rng.random() < 0.7 else text_words[rng.integers(len(text_words))]
        slots["word_carrier"] = _article(f"{slots['word']} {slots['carrier']}")
        template = _TEXT_TEMPLATES[rng.integers(len(_TEXT_TEMPLATES))]
    else:
        templates = _OBJECT_TEMPLATES[min(len(scene.objects), 3)]
        template = templates[rng.integers(len(templates))]
    return template.format(**slots)
