"""`stacmr extract`: the rendered set, the token filter, word boxes, resume and unreadable images (with a stub
backbone and engine, no extra needed), and the real engines end to end into the HDF5 store (needs the extract extra)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from stacmr.cli import main
from stacmr.extract.driver import SplitJob, extract_split
from stacmr.extract.images import list_images
from stacmr.extract.ocr import clean_token
from stacmr.extract.ocr_engine import OcrWord
from stacmr.extract.ocr_quality import matched
from stacmr.extract.rapidocr_engine import line_words
from stacmr.extract.rendered import WORDS, render_set
from stacmr.params import OcrFilterParams, RenderedParams, parse_params
from stacmr.tracking import extraction_tags

FILTER = OcrFilterParams(engine="rapidocr", min_confidence=0.5, min_length=2, max_length=10, script="latin")


def _rendered(tmp_path: Path, images: int = 4, seed: int = 3) -> tuple[Path, dict]:
    folder = tmp_path / "rendered"
    truth = render_set(RenderedParams(seed=seed, images=images, size=(320, 240), blur_radii=(0.0,)), 5, folder)
    return folder, truth


def test_rendered_set_is_deterministic_with_known_words(tmp_path):
    folder, truth = _rendered(tmp_path)
    again = render_set(RenderedParams(seed=3, images=4, size=(320, 240), blur_radii=(0.0,)), 5, tmp_path / "again")
    assert truth == again
    for image_id, entries in truth.items():
        a = (folder / "images" / f"{image_id}.png").read_bytes()
        assert a == (tmp_path / "again" / "images" / f"{image_id}.png").read_bytes()
        assert 1 <= len(entries) <= 3
        assert all(e["word"].lower() in WORDS for e in entries)
        assert Image.open(folder / "images" / f"{image_id}.png").size == (320, 240)
    captions = json.loads((folder / "captions.json").read_text())
    assert sorted(captions) == sorted(truth) and all(len(c) == 5 for c in captions.values())
    assert (
        render_set(RenderedParams(seed=4, images=4, size=(320, 240), blur_radii=(0.0,)), 5, tmp_path / "other") != truth
    )


@pytest.mark.parametrize(
    ("text", "confidence", "kept"),
    [
        ("COFFEE", 0.9, "COFFEE"),
        ("(Pizza!)", 0.9, "Pizza"),
        ("McDonald's", 0.9, "McDonald's"),
        ("7-Eleven", 0.9, "7-Eleven"),
        ("COFFEE", 0.4, None),  # below min_confidence
        ("A", 0.9, None),  # shorter than min_length
        ("ABCDEFGHIJK", 0.9, None),  # longer than max_length
        ("咖啡店", 0.9, None),  # not Latin
        ("--", 0.9, None),  # punctuation only
    ],
)
def test_clean_token(text, confidence, kept):
    assert clean_token(OcrWord(text, (0, 0, 1, 1), confidence), FILTER) == kept


def test_any_script_keeps_other_scripts():
    params = OcrFilterParams(engine="rapidocr", min_confidence=0.0, min_length=1, max_length=10, script="any")
    assert clean_token(OcrWord("咖啡店", (0, 0, 1, 1), 0.9), params) == "咖啡店"


def test_line_words_split_the_line_box_by_characters():
    # "AB CDE" spans x 0..60 (10 px a character), y 10..30; a tilted copy must stay inside the image
    quad = np.array([[0, 10], [60, 10], [60, 30], [0, 30]])
    words = line_words("AB CDE", quad, 0.8, 100, 100)
    assert [w.text for w in words] == ["AB", "CDE"]
    assert words[0].box == pytest.approx((0, 10, 20, 20))
    assert words[1].box == pytest.approx((30, 10, 30, 20))
    assert all(w.confidence == 0.8 for w in words)
    tilted = line_words("AB", np.array([[-5, 90], [40, 80], [42, 110], [-3, 120]]), 0.8, 100, 100)
    x, y, w, h = tilted[0].box
    assert x >= 0 and y >= 0 and x + w <= 100 and y + h <= 100


def test_matched_counts_a_multiset_intersection():
    assert matched(["bus", "stop", "bus"], ["bus", "bus", "bus", "taxi"]) == 2
    assert matched(["bus"], []) == 0


def test_extraction_tags_name_engine_and_backbone():
    made = {
        "ocr_engine": {"name": "rapidocr-onnxruntime", "version": "1.4.4"},
        "backbone": {"name": "b", "version": "2"},
    }
    assert extraction_tags({"ctc/test": made}) == {
        "extract.ctc/test.ocr_engine": "rapidocr-onnxruntime 1.4.4",
        "extract.ctc/test.backbone": "b 2",
    }


def test_extract_params_are_validated(repo_params):
    raw = json.loads(json.dumps(repo_params))
    raw["extract"]["ocr"]["min_length"] = 50
    with pytest.raises(Exception, match=r"extract\.ocr\.min_length"):
        parse_params(raw)
    raw = json.loads(json.dumps(repo_params))
    raw["extract"]["ocr"]["engine"] = "tesseract"
    with pytest.raises(Exception, match=r"extract\.ocr\.engine"):
        parse_params(raw)


class GridColours:
    """Stub backbone: the mean colour of each cell of a 2 × 2 grid, (B, 4, 3)."""

    name, version, regions, dim = "grid-colours", "0", 4, 3

    def regions_of(self, images, ids):
        out = []
        for image in images:
            pixels = np.asarray(image.resize((2, 2), Image.Resampling.BOX), dtype=np.float32)
            out.append(pixels.reshape(4, 3))
        return np.stack(out)


class SizeEngine:
    """Stub engine: reads one word naming the image's width; can be told to fail after some images."""

    name, version = "size-engine", "0"

    def __init__(self, fail_after: int | None = None) -> None:
        self.calls: list[tuple[int, int]] = []
        self.fail_after = fail_after

    def read(self, image):
        if self.fail_after is not None and len(self.calls) == self.fail_after:
            raise KeyboardInterrupt
        self.calls.append(image.size)
        return [OcrWord(f"w{image.width}", (1.0, 2.0, 3.0, 4.0), 0.9)]


def _folder(tmp_path: Path, sizes: list[int]) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for k, width in enumerate(sizes):
        Image.new("RGB", (width, 20), (10 * k, 50, 200 - 10 * k)).save(folder / f"im{k}.png")
    return folder


def _run(folder: Path, out: Path, work: Path, engine, batch_size: int = 2, fingerprint: dict | None = None):
    job = SplitJob("test", list_images(folder), folder, None, batch_size, max_ocr_tokens=3)
    out.mkdir(parents=True, exist_ok=True)
    return extract_split(job, GridColours(), engine, FILTER, None, out, work, fingerprint or {"v": 1})


def test_resume_skips_images_already_done(tmp_path):
    folder = _folder(tmp_path, [30, 31, 32, 33, 34])
    interrupted = SizeEngine(fail_after=3)  # batches of 2: the first batch is committed, the second is not
    with pytest.raises(KeyboardInterrupt):
        _run(folder, tmp_path / "out", tmp_path / "work", interrupted)
    resumed = SizeEngine()
    anns, report = _run(folder, tmp_path / "out", tmp_path / "work", resumed)
    assert [w for w, _ in resumed.calls] == [32, 33, 34]
    assert report["resumed"] == 2 and report["extracted"] == 5
    whole = SizeEngine()
    whole_anns, _ = _run(folder, tmp_path / "whole", tmp_path / "work2", whole)
    assert anns == whole_anns
    np.testing.assert_array_equal(np.load(tmp_path / "out/test_ims.npy"), np.load(tmp_path / "whole/test_ims.npy"))
    assert (tmp_path / "out/test_ids.txt").read_text() == "im0\nim1\nim2\nim3\nim4\n"
    assert [a.ocr_tokens[0].text for a in anns] == ["w30", "w31", "w32", "w33", "w34"]


def test_changed_fingerprint_starts_afresh(tmp_path):
    folder = _folder(tmp_path, [30, 31, 32])
    _run(folder, tmp_path / "out", tmp_path / "work", SizeEngine(), fingerprint={"v": 1})
    again = SizeEngine()
    _, report = _run(folder, tmp_path / "out", tmp_path / "work", again, fingerprint={"v": 2})
    assert report["resumed"] == 0 and len(again.calls) == 3


def test_unreadable_images_are_reported_and_skipped(tmp_path):
    folder = _folder(tmp_path, [30, 31, 32])
    (folder / "garbage.jpg").write_bytes(b"not an image at all")
    good = (folder / "im0.png").read_bytes()
    (folder / "truncated.png").write_bytes(good[: len(good) // 2])
    anns, report = _run(folder, tmp_path / "out", tmp_path / "work", SizeEngine())
    assert report["images"] == 5 and report["extracted"] == 3
    assert sorted(u["file"] for u in report["unreadable"]) == ["garbage.jpg", "truncated.png"]
    assert all(u["error"] and "\n" not in u["error"] for u in report["unreadable"])
    assert [a.id for a in anns] == ["im0", "im1", "im2"]
    assert np.load(tmp_path / "out/test_ims.npy").shape == (3, 4, 3)


def test_extract_cli_refuses_a_folder_without_images(tmp_path, tiny_params_file, capsys):
    (tmp_path / "empty").mkdir()
    assert (
        main(
            [
                "extract",
                "--params",
                str(tiny_params_file),
                "--images",
                str(tmp_path / "empty"),
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 2
    )
    assert "no image files" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_rendered_images_end_to_end_into_the_store(tmp_path, tiny_raw, write_params):
    pytest.importorskip("rapidocr_onnxruntime")
    pytest.importorskip("efficientnet_lite_pytorch")
    from stacmr.data.annotations import read_annotation_info, read_annotations
    from stacmr.data.release import read_split
    from stacmr.features.build import build_store
    from stacmr.features.ocr_embedding import OcrEmbedder
    from stacmr.features.store import FeatureStore
    from stacmr.params import FastTextParams

    folder, truth = _rendered(tmp_path, images=4)
    (folder / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    captions = json.loads((folder / "captions.json").read_text())
    captions["broken"] = captions["scene00000"]
    (folder / "captions.json").write_text(json.dumps(captions))
    fasttext = FastTextParams(model=None, dim=32, epoch=2, lr=0.005, ws=2, min_count=1, minn=2, maxn=5, bucket=20000)
    embedder = OcrEmbedder.train([c for caps in captions.values() for c in caps], fasttext, tmp_path / "ft.bin")
    tiny_raw["extract"].update(image_size=192, grid=3, fasttext_model=str(tmp_path / "ft.bin"))
    params = write_params(tiny_raw)
    out = tmp_path / "extracted"
    argv = [
        "extract",
        "--params",
        str(params),
        "--images",
        str(folder / "images"),
        "--out",
        str(out),
        "--captions",
        str(folder / "captions.json"),
        "--split",
        "test",
    ]
    assert main(argv) == 0
    report = json.loads((out / "extract_report.json").read_text())
    assert report["extracted"] == 4 and [u["file"] for u in report["unreadable"]] == ["broken.png"]
    assert report["ocr_engine"]["name"] == "rapidocr-onnxruntime"
    assert not (tmp_path / "extracted.partial").exists()
    feats = np.load(out / "test_ocr_feats.npy")
    assert feats.shape == (4, tiny_raw["features"]["max_ocr_tokens"], 32)

    release = read_split(out, "test", 5)
    annotations = read_annotations(out / "annotations.json")
    store_path = tmp_path / "test.h5"
    info = read_annotation_info(out / "annotations.json")
    build_store("ctc/test", release, annotations, out / "annotations.json", embedder, 15, store_path, {}, info)
    with FeatureStore(store_path) as store:
        assert store.sizes["N"] == 4 and store["regions"].shape == (4, 9, 1280)
        assert np.isfinite(store["regions"][:]).all() and np.abs(store["regions"][:]).sum() > 0
        assert store.extraction["ctc/test"]["ocr_engine"]["version"] == report["ocr_engine"]["version"]
        mask, boxes = store["ocr_mask"][:], store["ocr_boxes"][:]
        tokens = store["ocr_tokens"].asstr()[:]
        ids = store["image_ids"].asstr()[:]
        for k, image_id in enumerate(ids):
            assert mask[k].any(), f"{image_id}: no token read though {truth[image_id]} were drawn"
            x, y, w, h = boxes[k][mask[k]].T
            assert (x >= 0).all() and (y >= 0).all() and (x + w <= 320).all() and (y + h <= 240).all()
            assert (w > 0).all() and (h > 0).all()
        read = {t.lower() for row in tokens for t in row if t}
        drawn = {e["word"].lower() for entries in truth.values() for e in entries}
        assert len(read & drawn) >= len(drawn) // 2  # the engine reads most clean sign words
    assert yaml.safe_load(params.read_text())["extract"]["grid"] == 3


def test_trainset_keeps_the_extraction_of_its_sources(tmp_path):
    from stacmr.features.store import FeatureStore, create_store
    from stacmr.features.trainset import build_trainset
    from tests.helpers.store import SIZES, store_block

    made = {"ocr_engine": {"name": "e", "version": "1"}, "backbone": {"name": "b", "version": "2"}}
    paths = []
    for name, extraction in (("ctc/train", {"ctc/train": made}), ("f30k/train", None)):
        path = tmp_path / f"{name.replace('/', '_')}.h5"
        with create_store(path, name, SIZES, {}, {}, extraction) as out:
            out.write(0, **store_block(0, SIZES["N"]))
        paths.append(path)
    build_trainset(paths, tmp_path / "trainset.h5", 2, {})
    with FeatureStore(tmp_path / "trainset.h5") as store, FeatureStore(paths[1]) as plain:
        assert store.extraction == {"ctc/train": made}
        assert plain.extraction == {}


def test_precomputed_regions_are_matched_by_image_id(tmp_path):
    from stacmr.errors import StacmrError
    from stacmr.extract.precomputed import PrecomputedRegions

    ims = np.arange(3 * 2 * 4, dtype=np.float32).reshape(3, 2, 4)
    np.save(tmp_path / "test_ims.npy", ims)
    (tmp_path / "test_ids.txt").write_text("a\nb\nc\n")
    butd = PrecomputedRegions(tmp_path / "test_ims.npy")
    assert (butd.regions, butd.dim) == (2, 4)
    np.testing.assert_array_equal(butd.regions_of([None, None], ["c", "a"]), ims[[2, 0]])
    with pytest.raises(StacmrError, match=r"no row of test_ims\.npy for image .z."):
        butd.regions_of([None], ["z"])
    (tmp_path / "test_ids.txt").write_text("a\nb\n")
    with pytest.raises(StacmrError, match="2 ids for 3 rows"):
        PrecomputedRegions(tmp_path / "test_ims.npy")
