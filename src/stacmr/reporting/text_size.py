"""Small-text bins (issue 18, as Q-Pert reports small-object bins): recall per bin of how large the scene text is.

An image's text size is the area of its largest OCR box over the image's area (`ocr_boxes` w·h over `image_size`
width·height in its feature store). The cuts `report.text_bins` bin it, [0.1] into "under 10%" (small text) and "10%
or more"; an image without any OCR box, or whose size the store does not know (stores made before `image_size`
existed; the note counts them), goes to a bin of its own, "no OCR box". Both directions: an image query (i→t) is
binned by its own text, a caption query (t→i) by its image's. R@1/5/10 and their sum per bin, for every evaluated
ablation and split, from the ranks `evaluate` saved (`Results.ranks`): nothing is retrained or re-evaluated.

The StacMR release ships OCR vectors without boxes: on its splits every image is in "no OCR box", unless `stacmr
extract` made them. Reads the ranks and each split's feature store (`ocr_boxes`, `image_size`).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from stacmr.data.sources import CTC, split_label
from stacmr.errors import StacmrError
from stacmr.evaluation.metrics import METRICS, RSUM
from stacmr.features.store import FeatureStore, store_file
from stacmr.reporting.render import Table
from stacmr.reporting.results import Results

NO_BOX = "no OCR box"
_RECALLS = tuple(m for m in METRICS if m.in_rsum)


def text_area(ocr_boxes: np.ndarray, image_size: np.ndarray) -> np.ndarray:
    """(N,) the largest OCR box's area over the image's area, from `ocr_boxes` (N, T, 4) x, y, w, h (NaN: no box)
    and `image_size` (N, 2) width, height (0: unknown); NaN where an image has no box or no known size."""
    areas = ocr_boxes[..., 2].astype(np.float64) * ocr_boxes[..., 3]
    largest = np.where(np.isnan(areas), -1.0, areas).max(axis=1, initial=-1.0)
    image = image_size[:, 0].astype(np.float64) * image_size[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((largest >= 0) & (image > 0), largest / image, np.nan)


def text_bins(area: np.ndarray, cuts: tuple[float, ...]) -> np.ndarray:
    """(N,) the bin of each text size: 0 .. len(cuts) by the increasing `cuts` (a size equal to a cut goes above
    it), len(cuts) + 1 for NaN (no OCR box)."""
    return np.where(np.isnan(area), len(cuts) + 1, np.searchsorted(cuts, np.nan_to_num(area), side="right"))


def bin_labels(cuts: tuple[float, ...]) -> tuple[str, ...]:
    """The bins' names, in `text_bins` order: "under 10%", "10 to 20%", "20% or more", "no OCR box"."""
    percent = [f"{100 * c:g}%" for c in cuts]
    middle = [f"{a[:-1]} to {b}" for a, b in itertools.pairwise(percent)]
    return (f"under {percent[0]}", *middle, f"{percent[-1]} or more", NO_BOX)


def _split_bins(features_dir: Path, split: str, cuts: tuple[float, ...]) -> tuple[np.ndarray, int]:
    """The bin of each image of `split`, and how many of its images have OCR boxes but no known size."""
    with FeatureStore(store_file(features_dir, CTC.store(split))) as store:
        boxes, sizes = np.asarray(store["ocr_boxes"][:]), np.asarray(store["image_size"][:])
    area = text_area(boxes, sizes)
    unsized = int((np.isnan(area) & ~np.isnan(boxes).all(axis=(1, 2))).sum())
    return text_bins(area, cuts), unsized


def text_size_table(results: Results, features_dir: Path) -> Table:
    """Per split, ablation and text-size bin: its images and captions, R@1/5/10 both ways and their sum."""
    params = results.params
    cuts = params.report.text_bins
    labels = bin_labels(cuts)
    bounds = [*itertools.pairwise((0.0, *cuts, 1.0)), (None, None)]  # of each bin's text size
    rows, unsized = [], {}
    for split in params.evaluate.splits:
        image_bin, unsized[split] = _split_bins(features_dir, split, cuts)
        for ablation in params.evaluate.ablations:
            ours = results.get(ablation, split)
            ranks = results.ranks(ablation, split)
            if len(ranks["i2t"]) != len(image_bin):
                path = store_file(features_dir, CTC.store(split))
                raise StacmrError(f"{path}: {len(image_bin)} images but {ablation}'s ranks have {len(ranks['i2t'])}")
            query_bin = {"i2t": image_bin, "t2i": image_bin[ranks["caption_image"]]}
            for b, label in enumerate(labels):
                chosen = {d: ranks[d][query_bin[d] == b] for d in query_bin}
                values = {
                    m.name: m.value(chosen[m.direction]) if len(chosen[m.direction]) else np.nan for m in _RECALLS
                }
                values[RSUM] = sum(values.values())
                for metric, value in values.items():
                    rows.append(
                        {
                            "ablation": ablation,
                            "family": ours.label,
                            "scene_text": ours.scene_text,
                            "split": split_label(split),
                            "text_size": label,
                            "area_low": bounds[b][0],
                            "area_high": bounds[b][1],
                            "images": len(chosen["i2t"]),
                            "captions": len(chosen["t2i"]),
                            "metric": metric,
                            "value": value,
                            "checkpoint_sha256": ours.checkpoint_sha256,
                            "dvc_stage": ours.stage,
                        }
                    )
    long = pd.DataFrame(rows)
    names = {m.name: m.label for m in _RECALLS} | {RSUM: RSUM}
    wide = []
    for (ablation, split, label), group in long.groupby(["ablation", "split", "text_size"], sort=False):
        first = group.iloc[0]
        row = {
            "split": split,
            "ablation": ablation,
            "scene text": "yes" if first.scene_text else "no",
            "text size": label,
            "images": int(first.images),
            "captions": int(first.captions),
        }
        row |= {names[r.metric]: "—" if np.isnan(r.value) else f"{r.value:.1f}" for r in group.itertuples()}
        wide.append(row)
    notes = [
        "Text size: the area of an image's largest OCR box over the image's area; small text is under "
        f"{100 * cuts[0]:g}% (report.text_bins: {list(cuts)}). An image query (i→t) is binned by its own text, a "
        f"caption query (t→i) by its image's; '{NO_BOX}': the image has no OCR box. Recalls in percent over the "
        "queries of the bin (— where it has none), from the evaluated ranks; rsum: their sum.",
    ]
    notes += [
        f"{split_label(split)}: {n} images with OCR boxes but no known size are counted in '{NO_BOX}' (a store made "
        "before image sizes were stored: `dvc repro features` rebuilds it)."
        for split, n in unsized.items()
        if n
    ]
    return Table("Small text: recall by the size of the scene text", long, pd.DataFrame(wide), tuple(notes))
