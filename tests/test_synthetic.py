"""The synthetic world: deterministic, in the release format, 1K ⊂ 5K, explicit where it says, groups that only
scene text tells apart, a box per region slot (objects, their parts, the place) inside the image."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from stacmr.data.annotations import ANNOTATIONS_FILE, read_annotations
from stacmr.data.explicit import is_explicit
from stacmr.data.release import read_split
from stacmr.data.sources import CTC, F30K, SOURCES, TEXTCAPS
from stacmr.data.synthetic import generate_world
from stacmr.data.synthetic.layout import region_boxes
from stacmr.data.synthetic.scenes import ConceptSpace, draw_scene, region_slots, render_regions
from stacmr.params import parse_params


@pytest.fixture(scope="module")
def world(tmp_path_factory, repo_params):
    from tests.helpers.params import shrink

    params = parse_params(shrink(repo_params)).synthetic
    out = tmp_path_factory.mktemp("world")
    summary = generate_world(params, 5, out)
    return params, out, summary


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files(world, tmp_path):
    params, out, _ = world
    generate_world(params, 5, tmp_path / "again")
    first, second = _files(out), _files(tmp_path / "again")
    assert first.keys() == second.keys()
    assert all(first[k] == second[k] for k in first)


def test_other_seed_changes_the_world_and_sources_are_independent(world, tmp_path):
    params, out, _ = world
    generate_world(dataclasses.replace(params, seed=params.seed + 1), 5, tmp_path / "seed")
    assert (tmp_path / "seed/ctc/train_ims.npy").read_bytes() != (out / "ctc/train_ims.npy").read_bytes()
    generate_world(dataclasses.replace(params, f30k_images=params.f30k_images + 3), 5, tmp_path / "f30k")
    assert (tmp_path / "f30k/ctc/test_ims.npy").read_bytes() == (out / "ctc/test_ims.npy").read_bytes()
    assert (tmp_path / "f30k/textcaps/train_caps.txt").read_bytes() == (out / "textcaps/train_caps.txt").read_bytes()


def test_release_format_shapes(world):
    params, out, summary = world
    sizes = {CTC.store(split): n for split, n in dataclasses.asdict(params.ctc_images).items()}
    sizes |= {F30K.store("train"): params.f30k_images, TEXTCAPS.store("train"): params.textcaps_images}
    for source in SOURCES:
        for split in source.split_names:
            release = read_split(out / source.name, split, 5)
            n = sizes[source.store(split)]
            assert release.ims.shape == (n, params.regions, params.region_dim)
            assert release.ims.dtype == np.float32
            assert len(release.captions) == 5 * n and all(c.strip() for c in release.captions)
            assert summary[source.store(split)] == n


def test_dev_is_an_explicit_subset_of_test(world):
    _, out, summary = world
    test = read_split(out / "ctc", "test", 5)
    dev = read_split(out / "ctc", "dev", 5)
    anns = read_annotations(out / "ctc" / ANNOTATIONS_FILE)
    row_of = {image_id: i for i, image_id in enumerate(test.ids)}
    assert set(dev.ids) <= set(test.ids)
    rows = [row_of[i] for i in dev.ids]
    assert rows == sorted(rows)  # kept in test order
    for k, image_id in enumerate(dev.ids):
        np.testing.assert_array_equal(dev.ims[k], test.ims[row_of[image_id]])
        assert dev.image_captions(k) == test.image_captions(row_of[image_id])
        assert is_explicit(anns[("dev", image_id)].scene_text, dev.image_captions(k))
    assert summary["ctc/dev/explicit"] == summary["ctc/dev"]
    # the rest of CTC-5K is mixed, as in the paper: explicit and non-explicit images
    assert 0 < summary["ctc/test/explicit"] < summary["ctc/test"]


def test_scene_text_by_source(world):
    _, out, summary = world
    f30k = read_annotations(out / "f30k" / ANNOTATIONS_FILE)
    assert all(not a.scene_text for a in f30k.values())
    # OCR still reads garbage off some textures, as engines do on Flickr30K photos
    assert all(t.confidence <= 0.5 for a in f30k.values() for t in a.ocr_tokens)
    textcaps = read_annotations(out / "textcaps" / ANNOTATIONS_FILE)
    assert all(a.scene_text for a in textcaps.values())
    assert summary["textcaps/train/explicit"] == summary["textcaps/train"]
    ctc = read_annotations(out / "ctc" / ANNOTATIONS_FILE)
    assert all(a.scene_text for a in ctc.values())


def test_ocr_tokens_are_noisy_readings_with_boxes_inside_the_image(world):
    _, out, _ = world
    anns = list(read_annotations(out / "ctc" / ANNOTATIONS_FILE).values())
    tokens = [t for a in anns for t in a.ocr_tokens]
    assert tokens
    for ann in anns:
        for t in ann.ocr_tokens:
            x, y, w, h = t.bbox
            assert x >= 0 and y >= 0 and x + w <= ann.width and y + h <= ann.height
            assert 0 < t.confidence <= 1
    exact = sum(t.text.lower() in a.scene_text for a in anns for t in a.ocr_tokens)
    assert 0 < exact < len(tokens)  # most readings are right, some are not


def test_groups_share_objects_and_differ_by_text(world):
    """Images of a group have the same caption words apart from their scene text, and their regions are close."""
    _, out, _ = world
    doc = json.loads((out / "ctc" / ANNOTATIONS_FILE).read_text())
    test = read_split(out / "ctc", "test", 5)
    # group members have pairwise-distinct prominent scene-text words but identical region centres: the nearest
    # neighbour (by mean region) of most images shares their objects yet not their first scene-text word
    ims = np.asarray(test.ims).mean(axis=1)
    ims /= np.linalg.norm(ims, axis=1, keepdims=True)
    sims = ims @ ims.T
    np.fill_diagonal(sims, -np.inf)
    nearest = sims.argmax(axis=1)
    by_id = {im["id"]: im for im in doc["images"] if im["split"] == "test"}
    first_words = [by_id[i]["scene_text"][0] for i in test.ids]
    same_word = sum(first_words[i] == first_words[j] for i, j in enumerate(nearest))
    assert same_word == 0
    mean_nearest, mean_all = sims.max(axis=1).mean(), sims[np.isfinite(sims)].mean()
    assert mean_nearest > mean_all + 0.3


def test_captions_vary(world):
    _, out, _ = world
    captions = (out / "ctc" / "train_caps.txt").read_text().splitlines()
    assert len(set(captions)) > 0.8 * len(captions)
    templates = Counter(" ".join(w for w in c.split() if w in {"a", "the", "with", "on", "near"}) for c in captions)
    assert len(templates) > 10


def test_every_region_slot_has_a_box_inside_the_image(world):
    params, out, _ = world
    for source in SOURCES:
        anns = read_annotations(out / source.name / ANNOTATIONS_FILE)
        for split in source.split_names:
            release = read_split(out / source.name, split, 5)
            assert release.boxes.shape == (len(release.ids), params.regions, 4) and release.boxes.dtype == np.float32
            boxes = np.asarray(release.boxes)
            assert not np.isnan(boxes).any()  # no padding slot: each shows an object, a part or the place
            x, y, w, h = np.moveaxis(boxes, 2, 0)
            sizes = np.array([(anns[split, i].width, anns[split, i].height) for i in release.ids])[:, None, :]
            assert (x >= 0).all() and (y >= 0).all() and (w >= 1).all() and (h >= 1).all()
            assert (x + w <= sizes[..., 0]).all() and (y + h <= sizes[..., 1]).all()
    test, dev = read_split(out / "ctc", "test", 5), read_split(out / "ctc", "dev", 5)
    row_of = {image_id: i for i, image_id in enumerate(test.ids)}
    np.testing.assert_array_equal(dev.boxes, test.boxes[[row_of[i] for i in dev.ids]])


def test_parts_lie_inside_their_object_and_the_carrier_around_its_text():
    rng, box_rng = np.random.default_rng(0), np.random.default_rng(1)
    for _ in range(200):
        scene = draw_scene(rng, 3, with_text=True)
        slots = region_slots(scene, rng, 8)
        text = [(100.0, 50.0, 60.0, 20.0), (300.0, 200.0, 40.0, 30.0)]
        boxes = region_boxes(scene, slots, text, box_rng, 640, 480)
        whole = {owner: boxes[s] for s, (owner, part) in enumerate(slots) if part == 0}
        for s, (owner, _) in enumerate(slots):
            x, y, w, h = boxes[s]
            ox, oy, ow, oh = whole[owner]
            assert ox <= x and oy <= y and x + w <= ox + ow and y + h <= oy + oh
        if scene.carrier in whole:
            x, y, w, h = whole[scene.carrier]
            assert x <= 100 and y <= 50 and x + w >= 340 and y + h >= 230
        if -1 in whole:
            assert whole[-1].tolist() == [0, 0, 640, 480]


def test_slots_drawn_apart_render_the_same_regions():
    """The layout's draws are the regions' own, in the same order: drawing the slots first changes no feature."""
    space = ConceptSpace.draw(np.random.default_rng(0), 16)
    scene = draw_scene(np.random.default_rng(1), 3, with_text=True)
    together = render_regions(scene, space, np.random.default_rng(2), 6, 0.8, 0.5)
    rng = np.random.default_rng(2)
    apart = render_regions(scene, space, rng, 6, 0.8, 0.5, region_slots(scene, rng, 6))
    np.testing.assert_array_equal(together, apart)
