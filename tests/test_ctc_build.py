"""CTC from its sources: COCO-Text v2 + COCO captions → the CTC image list. Uses real samples of both when a folder
`shared/data` beside the checkout holds them, and skips those tests when absent; small layout fixtures live in
tmp_path."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from stacmr.data.coco import coco_image_id, read_coco_captions
from stacmr.data.cocotext import read_cocotext
from stacmr.data.ctc_build import build_ctc, cross_check, split_annotations
from stacmr.errors import StacmrError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
COCOTEXT = SHARED / "cocotext_v2" / "cocotext_v2_per_image.jsonl.gz"
CAPTIONS = SHARED / "coco_captions" / "captions_train2014.json_samples.json"
real = pytest.mark.skipif(not (COCOTEXT.exists() and CAPTIONS.exists()), reason="../shared/data samples absent")


@pytest.fixture(scope="module")
def scene_text():
    return read_cocotext(COCOTEXT)


def _plain_scan():
    """Oracle: a plain loop over the raw lines. (legible with any text, any language: the SOURCES.md count),
    (legible English with text that is not blank)."""
    legible, english = set(), {}
    with gzip.open(COCOTEXT, "rt") as f:
        for line in f:
            doc = json.loads(line)
            for ann in doc["annotations"]:
                if ann["legibility"] == 0 and ann["text"]:
                    legible.add(str(doc["image_id"]))
                    if ann["language"] == 0 and ann["text"].strip():
                        english.setdefault(str(doc["image_id"]), []).append(ann["text"].strip())
    return legible, english


@real
def test_cocotext_keeps_legible_english_text(scene_text):
    legible, english = _plain_scan()
    assert len(legible) == 16_171  # SOURCES.md: images with at least one legible transcribed instance
    assert {k: list(v) for k, v in scene_text.items()} == english
    assert scene_text["64"] == ("ST",)  # image 64: one legible English "ST"; its other legible word is non-English


@real
def test_builder_on_the_real_caption_sample(scene_text):
    captions = read_coco_captions(CAPTIONS)
    images = build_ctc(captions, scene_text, min_captions=1)
    expected = sorted((set(captions) & set(scene_text)), key=int)
    assert [im.id for im in images] == expected and images
    for im in images:
        assert im.scene_text == scene_text[im.id] and list(im.captions) == captions[im.id].captions
        caption_words = {w for c in im.captions for w in re.findall(r"[a-z0-9]+", c.lower())}
        text_words = {w for t in im.scene_text for w in re.findall(r"[a-z0-9]+", t.lower())}
        assert im.explicit == bool(caption_words & text_words)
    assert build_ctc(captions, scene_text, min_captions=5) == [im for im in images if len(im.captions) >= 5]


@real
def test_explicit_images_on_real_scene_text(tmp_path, scene_text):
    # real COCO-Text words (image 151 reads "STOP", image 9945 "STOP" and "EXIT"), captions written here
    doc = {
        "images": [{"id": 151, "file_name": "COCO_train2014_000000000151.jpg", "coco_url": "http://x/151.jpg"}],
        "annotations": [
            {"image_id": 151, "caption": "A red stop sign at a corner."},
            {"image_id": 9945, "caption": "A green sign over a highway."},
            {"image_id": 9, "caption": "A plate of food."},  # image 9 has no COCO-Text words: not CTC
        ],
    }
    (tmp_path / "captions.json").write_text(json.dumps(doc))
    images = build_ctc(read_coco_captions(tmp_path / "captions.json"), scene_text, min_captions=1)
    assert [(im.id, im.explicit) for im in images] == [("151", True), ("9945", False)]
    assert images[0].coco_url == "http://x/151.jpg" and images[1].coco_url is None
    release = {"dev": ["151"], "test": ["COCO_train2014_000000009945.jpg", "151", "424242"]}
    assert cross_check(images, release) == {
        "dev": {"images": 1, "rebuilt": 1, "explicit": 1},
        "test": {"images": 3, "rebuilt": 2, "explicit": 1},
    }
    anns = split_annotations(release, scene_text, read_coco_captions(tmp_path / "captions.json"))
    assert [(a.split, a.id, a.scene_text, a.coco_url) for a in anns] == [
        ("dev", "151", ("STOP",), "http://x/151.jpg"),
        ("test", "COCO_train2014_000000009945.jpg", scene_text["9945"], None),
        ("test", "151", ("STOP",), "http://x/151.jpg"),
        ("test", "424242", (), None),
    ]


def test_official_cocotext_layout(tmp_path):
    doc = {
        "anns": {
            "1": {"image_id": 5, "utf8_string": "OPEN", "legibility": "legible", "language": "english"},
            "2": {"image_id": 5, "utf8_string": "ZU", "legibility": "legible", "language": "not english"},
            "3": {"image_id": 7, "utf8_string": "", "legibility": "legible", "language": "english"},
            "4": {"image_id": 8, "utf8_string": "EXIT", "legibility": "illegible", "language": "english"},
        },
        "imgs": {},
    }
    (tmp_path / "cocotext.v2.json").write_text(json.dumps(doc))
    assert read_cocotext(tmp_path / "cocotext.v2.json") == {"5": ("OPEN",)}


def test_bad_sources_name_the_file(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"annotations": [{"image_id": 1}]}))
    with pytest.raises(StacmrError, match=r"c.json: annotations\[0\]: needs 'image_id' .* and 'caption'"):
        read_coco_captions(tmp_path / "c.json")
    (tmp_path / "t.json").write_text(json.dumps({"imgs": {}}))
    with pytest.raises(StacmrError, match=r"t.json: field 'anns'"):
        read_cocotext(tmp_path / "t.json")
    with pytest.raises(StacmrError, match="COCO-Text annotation file is missing"):
        read_cocotext(tmp_path / "none.json")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(57870, "57870"), ("57870", "57870"), ("COCO_train2014_000000057870.jpg", "57870"), ("x", None), (True, None)],
)
def test_coco_image_ids(raw, expected):
    assert coco_image_id(raw) == expected
