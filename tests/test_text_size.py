"""Small-text bins: the text size of an image from its OCR boxes and size, its bin by `report.text_bins` (no box: a bin
of its own), and R@K per bin and direction from hand-made ranks and a store written here."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from stacmr.features.store import create_store, store_file
from stacmr.params import ParamsError, parse_params
from stacmr.reporting.results import Evaluated, Results
from stacmr.reporting.text_size import NO_BOX, bin_labels, text_area, text_bins, text_size_table
from tests.helpers.params import shrink
from tests.helpers.store import SIZES, store_block

NAN_BOX = [np.nan] * 4
# five images of 640 × 480, two OCR slots each: 1% of the image (small text); 25% beside a small box (large text);
# no box; exactly 10% (large: a size equal to a cut goes above it); a box on an image of unknown size
OCR_BOXES = np.array(
    [
        [[10, 10, 64, 48], NAN_BOX],
        [[0, 0, 10, 10], [5, 5, 320, 240]],
        [NAN_BOX, NAN_BOX],
        [[0, 0, 640, 48], NAN_BOX],
        [[0, 0, 64, 48], NAN_BOX],
    ],
    dtype=np.float32,
)
IMAGE_SIZE = np.array([[640, 480]] * 4 + [[0, 0]], dtype=np.int32)
# per ablation: i2t ranks (5 images), t2i ranks (10 captions, two per image)
RANKS = {
    "vsrn_all": ([0, 3, 12, 0, 7], [0, 1, 4, 6, 0, 20, 9, 10, 2, 0]),
    "starnet_all": ([0, 0, 0, 0, 0], [0] * 10),
}


@pytest.fixture
def results(tmp_path, repo_params):
    """vsrn_all and starnet_all evaluated on CTC-1K (dev), with the store of its five images."""
    with create_store(store_file(tmp_path / "features", "ctc/dev"), "ctc/dev", SIZES, {}, {}) as out:
        out.write(0, **{**store_block(0, 5), "ocr_boxes": OCR_BOXES, "image_size": IMAGE_SIZE})
    params = parse_params(shrink(repo_params))
    params = dataclasses.replace(
        params, evaluate=dataclasses.replace(params.evaluate, ablations=tuple(RANKS), splits=("dev",))
    )
    evaluated = {}
    for ablation, (i2t, t2i) in RANKS.items():
        (tmp_path / "ranks" / ablation).mkdir(parents=True)
        np.savez(tmp_path / "ranks" / ablation / "dev.npz", i2t=i2t, t2i=t2i, caption_image=np.arange(10) // 2)
        spec = params.ablations[ablation]
        evaluated[ablation, "dev"] = Evaluated(ablation, "dev", spec.family, spec.train_data, {}, "0" * 64)
    return Results(params, evaluated, tmp_path / "ranks")


def _with_bins(results: Results, cuts: tuple[float, ...]) -> Results:
    report = dataclasses.replace(results.params.report, text_bins=cuts)
    return dataclasses.replace(results, params=dataclasses.replace(results.params, report=report))


def test_text_area_is_the_largest_box_over_the_image():
    area = text_area(OCR_BOXES, IMAGE_SIZE)
    np.testing.assert_allclose(area[[0, 1, 3]], [0.01, 0.25, 0.1])
    assert np.isnan(area[2]) and np.isnan(area[4])  # no box; a box but no known size
    assert text_bins(area, (0.1,)).tolist() == [0, 1, 2, 1, 2]
    assert text_bins(area, (0.05, 0.2)).tolist() == [0, 2, 3, 1, 3]


def test_bin_labels():
    assert bin_labels((0.1,)) == ("under 10%", "10% or more", NO_BOX)
    assert bin_labels((0.05, 0.1, 0.25)) == ("under 5%", "5 to 10%", "10 to 25%", "25% or more", NO_BOX)


def test_recall_per_bin_and_direction(results, tmp_path):
    table = text_size_table(_with_bins(results, (0.1,)), tmp_path / "features")
    long = table.long.set_index(["ablation", "text_size", "metric"])
    expected = {  # vsrn_all's ranks by hand: small = image 0, large = images 1 and 3, no box = images 2 and 4
        "under 10%": (1, 2, [100, 100, 100, 50, 100, 100]),
        "10% or more": (2, 4, [50, 100, 100, 0, 25, 75]),
        NO_BOX: (2, 4, [0, 0, 50, 50, 75, 75]),
    }
    recalls = ["i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10"]
    for label, (images, captions, values) in expected.items():
        got = [long.loc[("vsrn_all", label, m), "value"] for m in recalls]
        np.testing.assert_allclose(got, values)
        assert long.loc[("vsrn_all", label, "rsum"), "value"] == pytest.approx(sum(values))
        assert long.loc[("vsrn_all", label, "i2t_r1"), "images"] == images
        assert long.loc[("vsrn_all", label, "i2t_r1"), "captions"] == captions
        assert long.loc[("starnet_all", label, "rsum"), "value"] == pytest.approx(600)
    row = table.wide.iloc[1]
    assert (row["split"], row["ablation"], row["text size"], row["images"], row["captions"]) == (
        "CTC-1K",
        "vsrn_all",
        "10% or more",
        2,
        4,
    )
    assert (row["t→i R@5"], row["rsum"]) == ("25.0", "350.0")
    assert set(table.long["dvc_stage"]) == {"evaluate@vsrn_all-dev", "evaluate@starnet_all-dev"}
    assert any("1 images with OCR boxes but no known size" in note for note in table.notes)


def test_bins_follow_the_params(results, tmp_path):
    table = text_size_table(_with_bins(results, (0.3,)), tmp_path / "features")
    wide = table.wide[table.wide["ablation"] == "vsrn_all"]
    assert wide["text size"].tolist() == ["under 30%", "30% or more", NO_BOX]
    assert wide["images"].tolist() == [3, 0, 2]
    assert wide.iloc[1]["i→t R@1"] == "—"  # an empty bin has no recall
    table = text_size_table(_with_bins(results, (0.05, 0.2)), tmp_path / "features")
    assert table.wide["images"].tolist()[:4] == [1, 1, 1, 2]


@pytest.mark.parametrize("cuts", [[], [0.2, 0.1], [0.1, 0.1], [0.0], [1.0], [1.5]])
def test_text_bins_must_be_increasing_area_fractions(repo_params, cuts):
    raw = shrink(repo_params)
    raw["report"]["text_bins"] = cuts
    with pytest.raises(ParamsError, match=r"report.text_bins: expected increasing area fractions in \(0, 1\)"):
        parse_params(raw)
