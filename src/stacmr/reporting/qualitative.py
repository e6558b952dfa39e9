"""Caption queries for the qualitative figure: for a few captions of a split, each model's top images (from the
`t2i_top` array the evaluate stage saves) with their OCR tokens and the ground truth marked.

Queries are chosen deterministically where the two models disagree most, both ways: n − ⌊n/2⌋ captions whose
ground truth the scene-text aware model ranks first and the visual-only baseline lowest, then ⌊n/2⌋ the other way
round (ties: lower caption index first). They illustrate disagreements; they are not a sample of the split, and the
figure says so. Reads the ranks through `Results.ranks` and the split's
feature store (captions, image ids, OCR tokens).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stacmr.data.sources import CTC
from stacmr.errors import StacmrError
from stacmr.features.store import FeatureStore, store_file
from stacmr.reporting.results import Results


@dataclass(frozen=True)
class Hit:
    image_id: str
    ocr_tokens: tuple[str, ...]
    ground_truth: bool


@dataclass(frozen=True)
class Query:
    caption: str
    image_id: str  # the ground-truth image
    ranks: dict[str, int]  # method (display name) → 1-based rank of the ground truth
    chosen: str  # why this caption was picked: which model it favours
    top: dict[str, tuple[Hit, ...]]  # method → its top images, best first; scene-text aware first


def _top(results: Results, ablation: str, split: str) -> dict[str, np.ndarray]:
    ranks = results.ranks(ablation, split)
    if "t2i_top" not in ranks:
        raise StacmrError(
            f"{results.ranks_dir / ablation / split}.npz: no t2i_top array (made by an older evaluate: "
            f"`dvc repro evaluate@{ablation}-{split}`)"
        )
    return ranks


def caption_queries(results: Results, features_dir: Path) -> list[Query]:
    """`report.queries` caption queries comparing `report.scene_text` with `report.baseline` on CTC-1K (where scene
    text matters most; the first evaluated split when CTC-1K is not evaluated)."""
    report, splits = results.params.report, results.params.evaluate.splits
    split = "dev" if "dev" in splits else splits[0]
    aware, visual, n = report.scene_text, report.baseline, report.queries
    saved = {ab: _top(results, ab, split) for ab in (aware, visual)}
    label = {ab: results.get(ab, split).method for ab in saved}
    t2i_aware, t2i_visual = saved[aware]["t2i"], saved[visual]["t2i"]
    index = np.arange(len(t2i_aware))
    favours_aware = np.lexsort((index, -(t2i_visual - t2i_aware), t2i_aware != 0))
    favours_visual = np.lexsort((index, -(t2i_aware - t2i_visual), t2i_visual != 0))
    picks = [(int(j), label[aware]) for j in favours_aware[: n - n // 2]]
    taken = {j for j, _ in picks}
    picks += [(int(j), label[visual]) for j in favours_visual if int(j) not in taken][: n // 2]
    with FeatureStore(store_file(features_dir, CTC.store(split))) as store:
        captions = store["captions"].asstr()[:]
        image_ids = store["image_ids"].asstr()[:]
        tokens = store["ocr_tokens"].asstr()[:]
        mask = store["ocr_mask"][:]
    per_image = captions.shape[1]
    if len(t2i_aware) != captions.size:
        path = store_file(features_dir, CTC.store(split))
        raise StacmrError(f"{path}: {captions.size} captions but the ranks have {len(t2i_aware)} (stale ranks?)")

    def hit(image: int, gt: int) -> Hit:
        return Hit(image_ids[image], tuple(tokens[image][mask[image]]), image == gt)

    queries = []
    for j, favoured in picks:
        gt = j // per_image
        queries.append(
            Query(
                caption=str(captions[gt, j % per_image]),
                image_id=image_ids[gt],
                ranks={label[ab]: int(saved[ab]["t2i"][j]) + 1 for ab in saved},
                chosen=f"a caption that favours {favoured}",
                top={label[ab]: tuple(hit(int(i), gt) for i in saved[ab]["t2i_top"][j]) for ab in saved},
            )
        )
    return queries
