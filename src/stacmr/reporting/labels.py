"""Display names of model families, training data and splits in tables and figures, and which families read the
scene text (the ablation table's "scene text" axis and the claims' scene-text aware vs visual-only comparisons)."""

from __future__ import annotations

from dataclasses import dataclass

from stacmr.errors import StacmrError


@dataclass(frozen=True)
class Family:
    label: str  # how tables and figures name the family
    scene_text: bool  # True: the model reads the OCR tokens


FAMILIES: dict[str, Family] = {
    "vsrn": Family("VSRN", scene_text=False),
    "starnet": Family("STARNet", scene_text=True),
    "chan": Family("CHAN", scene_text=False),
    "chan_st": Family("CHAN + scene-text tokens (new combination)", scene_text=True),
    "dsve": Family("DSVE-style (region features)", scene_text=False),
    "chan_char": Family("oCLIP-style character-aware words + CHAN", scene_text=False),
    "chan_char_st": Family("oCLIP-style character-aware words and OCR tokens + CHAN", scene_text=True),
}

SPLITS = {"dev": "CTC-1K", "test": "CTC-5K", "val": "CTC val"}

TRAIN_DATA = {
    "trainset": "full mix",
    "f30k/train": "Flickr30K",
    "textcaps/train": "TextCaps",
    "ctc/train": "CTC train",
}


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise StacmrError(f"model family {name!r} has no display label: add it to stacmr/reporting/labels.py")
    return FAMILIES[name]


def split_label(split: str) -> str:
    return SPLITS.get(split, split)


def train_data_label(train_data: str) -> str:
    return TRAIN_DATA.get(train_data, train_data)
