"""The data sources and their splits, in one table: the folders `fetch` writes, the feature stores `features` makes
("<source>/<split>"), the split models are selected on, the splits they are tested on, and how tables name them.

A new source or split is an entry here; then `params.synthetic` gives its size and `synthetic/world.py` how its
images are drawn, and `release.layout` in params.yaml where its files are in the release archives.
This module is the bottom layer under `stacmr.params`: it imports nothing from stacmr.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Split:
    name: str  # the prefix of its release files: {name}_ims.npy, {name}_caps.txt, {name}_ids.txt
    label: str  # how tables and figures name it (as training data, or as an evaluation split)
    role: Literal["train", "validation", "test"]  # training data, model selection, or a reported test set


@dataclass(frozen=True)
class Source:
    name: str  # its folder in the release format, and the first part of its store names
    splits: tuple[Split, ...]  # in the order `fetch` writes them and `features` reads them
    id_base: int  # the synthetic world's first image id of this source (ids stay distinct across sources)

    @property
    def split_names(self) -> tuple[str, ...]:
        return tuple(split.name for split in self.splits)

    def store(self, split: str) -> str:
        """The store name of one of its splits, "<source>/<split>"."""
        return f"{self.name}/{split}"


# The StacMR release names: CTC-1K is `dev` (explicit images of CTC-5K), CTC-5K is `test`.
CTC = Source(
    "ctc",
    (
        Split("train", "CTC train", "train"),
        Split("val", "CTC val", "validation"),
        Split("dev", "CTC-1K", "test"),
        Split("test", "CTC-5K", "test"),
    ),
    id_base=100_000,
)
F30K = Source("f30k", (Split("train", "Flickr30K", "train"),), id_base=2_000_000)  # everyday scenes, no scene text
TEXTCAPS = Source("textcaps", (Split("train", "TextCaps", "train"),), id_base=3_000_000)  # text-heavy images
SOURCES = (CTC, F30K, TEXTCAPS)

TRAINSET = "trainset"  # the combined training store: the stores of `trainset.sources` concatenated
VALIDATION = CTC.store(next(split.name for split in CTC.splits if split.role == "validation"))
TEST_SPLITS = tuple(split.name for split in CTC.splits if split.role == "test")

_SPLIT_LABELS = {split.name: split.label for split in CTC.splits if split.role != "train"}
_TRAIN_DATA_LABELS = {TRAINSET: "full mix"} | {
    source.store(split.name): split.label for source in SOURCES for split in source.splits if split.role == "train"
}


def store_names() -> list[str]:
    """Every source split's store name, in table order: "ctc/train", "ctc/val", ..., "textcaps/train"."""
    return [source.store(split) for source in SOURCES for split in source.split_names]


def split_label(split: str) -> str:
    """How tables name a CTC evaluation split ("dev" → "CTC-1K"); any other split by its name."""
    return _SPLIT_LABELS.get(split, split)


def train_data_label(train_data: str) -> str:
    """How tables name an ablation's training data ("f30k/train" → "Flickr30K"); another store by its name."""
    return _TRAIN_DATA_LABELS.get(train_data, train_data)
