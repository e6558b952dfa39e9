"""Readers for the real release arrays, on fixtures in the exact release shapes: regions (N, 36, 2048), OCR vectors
(N, T, 300) whose padding slots are all zero, optional region boxes (N, 36, 4), and the store `features` builds from
them."""

from __future__ import annotations

import numpy as np
import pytest

from stacmr.data.annotations import ImageAnnotation
from stacmr.data.release import boxes_file, ocr_feats_file, ocr_slots, read_ocr_feats, read_split, split_files
from stacmr.errors import StacmrError
from stacmr.features.build import build_store
from stacmr.features.store import FeatureStore

N, T, E = 3, 20, 300


def _release(directory, split="test"):
    """A release split in the real shapes; image 0 has 2 tokens, image 1 none, image 2 all 20 slots filled."""
    rng = np.random.default_rng(0)
    directory.mkdir(exist_ok=True)
    files = split_files(directory, split)
    np.save(files["ims"], rng.standard_normal((N, 36, 2048)).astype(np.float32))
    files["caps"].write_text("".join(f"caption {k} of image {i}\n" for i in range(N) for k in range(5)))
    files["ids"].write_text("".join(f"{391895 + i}\n" for i in range(N)))
    ocr = np.zeros((N, T, E), dtype=np.float32)
    ocr[0, :2] = rng.standard_normal((2, E))
    ocr[2] = rng.standard_normal((T, E))
    ocr[2, 3, 0] = 0.0  # a zero component does not make a row padding; only a row of zeros does
    np.save(ocr_feats_file(directory, split), ocr)
    return ocr


def test_release_split_with_ocr_vectors_is_memory_mapped(tmp_path):
    ocr = _release(tmp_path)
    release = read_split(tmp_path, "test", 5)
    assert release.ims.shape == (N, 36, 2048) and isinstance(release.ims, np.memmap)
    assert release.ocr_feats.shape == (N, T, E) and isinstance(release.ocr_feats, np.memmap)
    assert np.array_equal(release.ocr_feats, ocr)
    assert release.files["ocr"] == ocr_feats_file(tmp_path, "test")


def test_zero_rows_are_padding_and_slots_are_cut_or_padded():
    block = np.zeros((2, 4, 3), dtype=np.float32)
    block[0, 1] = [1, 0, 2]  # a token after a padding slot stays a token
    block[1, 3] = [0, 0, 5]
    emb, mask = ocr_slots(block, 6)
    expected_mask = [[False, True, False, False, False, False], [False, False, False, True, False, False]]
    assert emb.shape == (2, 6, 3) and mask.tolist() == expected_mask
    assert np.array_equal(emb[:, :4], block) and not emb[:, 4:].any()
    emb, mask = ocr_slots(block, 2)  # the release code keeps the first slots
    assert emb.shape == (2, 2, 3) and mask.tolist() == [[False, True], [False, False]]


def test_split_without_ocr_vectors_has_none(tmp_path):
    _release(tmp_path)
    ocr_feats_file(tmp_path, "test").unlink()
    release = read_split(tmp_path, "test", 5)
    assert release.ocr_feats is None and "ocr" not in release.files


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((N, E), np.float32), r"expected OCR vectors of shape \(N, T, E\)"),
        (np.zeros((N + 1, T, E), np.float32), rf"{N + 1} rows of OCR vectors for {N} images"),
        (np.zeros((N, T, E), np.int32), "expected float OCR vectors, got dtype int32"),
    ],
)
def test_bad_ocr_vectors_name_the_file(tmp_path, array, message):
    _release(tmp_path)
    path = ocr_feats_file(tmp_path, "test")
    np.save(path, array)
    with pytest.raises(StacmrError, match=rf"^{path}: {message}"):
        read_ocr_feats(path, N)


def test_truncated_ocr_vectors_name_the_file(tmp_path):
    _release(tmp_path)
    path = ocr_feats_file(tmp_path, "test")
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(StacmrError, match=rf"^{path}: not a readable .npy array"):
        read_split(tmp_path, "test", 5)


def test_store_from_released_vectors_masks_the_padding(tmp_path):
    ocr = _release(tmp_path / "raw")
    release = read_split(tmp_path / "raw", "test", 5)
    anns = {("test", i): ImageAnnotation(id=i, split="test", scene_text=("caption",)) for i in release.ids}
    (tmp_path / "raw" / "annotations.json").write_text("{}")
    out = tmp_path / "ctc_test.h5"
    build_store("ctc/test", release, anns, tmp_path / "raw" / "annotations.json", None, 15, out, {}, block=2)
    with FeatureStore(out) as store:
        assert store.sizes["E"] == E and store.sizes["T"] == 15 and store.sizes["R"] == 36
        mask = store["ocr_mask"][:]
        assert mask.sum(axis=1).tolist() == [2, 0, 15]
        assert np.allclose(store["ocr_emb"][:], ocr[:, :15].astype(np.float16))
        assert store["explicit"][:].all()  # "caption" is a word of every caption here
        assert str(ocr_feats_file(tmp_path / "raw", "test")) in store.inputs_sha256
        assert np.isnan(store["region_boxes"][:]).all()  # the release has no box file: no box is known
        assert store["region_boxes"].shape == (N, 36, 4)
        assert not store["image_size"][:].any()  # nor the image sizes (annotations without width and height)


def test_store_carries_region_boxes_and_image_sizes(tmp_path):
    _release(tmp_path / "raw")
    boxes = np.full((N, 36, 4), np.nan, dtype=np.float32)
    boxes[:, :2] = [[0, 0, 640, 480], [10.5, 20, 30, 40]]  # two boxed slots per image, the rest without a box
    np.save(boxes_file(tmp_path / "raw", "test"), boxes)
    release = read_split(tmp_path / "raw", "test", 5)
    sizes = {release.ids[0]: {"width": 640, "height": 480}, release.ids[1]: {"width": 500, "height": 375}}
    anns = {("test", i): ImageAnnotation(id=i, split="test", **sizes.get(i, {})) for i in release.ids}  # 2: unknown
    (tmp_path / "raw" / "annotations.json").write_text("{}")
    out = tmp_path / "ctc_test.h5"
    build_store("ctc/test", release, anns, tmp_path / "raw" / "annotations.json", None, 15, out, {}, block=2)
    with FeatureStore(out) as store:
        np.testing.assert_array_equal(store["region_boxes"][:], boxes)
        assert store["image_size"][:].tolist() == [[640, 480], [500, 375], [0, 0]]
        assert str(boxes_file(tmp_path / "raw", "test")) in store.inputs_sha256
