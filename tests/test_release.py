"""Release-format reader: every malformed file gives one message naming the file; writers leave no partial file;
the optional region boxes are read when present."""

from __future__ import annotations

import numpy as np
import pytest

from stacmr.data.release import boxes_file, read_split, split_files, write_split
from stacmr.errors import StacmrError


def _boxes(i):
    """Image i's boxes of its 3 region slots: the last slot has none."""
    return np.array([[i, 0, 10, 20], [i, 5, 1, 1], [np.nan] * 4], dtype=np.float32)


def _write(directory, n=4, c=2, boxes=False):
    with write_split(directory, "test", n, 3, 5, boxes=boxes) as out:
        for i in range(n):
            captions = [f"caption {k} of image {i}" for k in range(c)]
            out.add(np.full((3, 5), i, dtype=np.float32), captions, str(10 + i), _boxes(i) if boxes else None)


def test_round_trip(tmp_path):
    _write(tmp_path)
    release = read_split(tmp_path, "test", 2)
    assert release.ims.shape == (4, 3, 5)
    assert isinstance(release.ims, np.memmap)
    assert release.ids == ["10", "11", "12", "13"]
    assert release.image_captions(2) == ["caption 0 of image 2", "caption 1 of image 2"]
    assert release.boxes is None and "boxes" not in release.files  # no box file: no box known


def test_region_boxes_round_trip(tmp_path):
    _write(tmp_path, boxes=True)
    release = read_split(tmp_path, "test", 2)
    assert isinstance(release.boxes, np.memmap) and release.boxes.shape == (4, 3, 4)
    np.testing.assert_array_equal(release.boxes[2], _boxes(2))  # NaN rows stay NaN
    assert release.files["boxes"] == boxes_file(tmp_path, "test")


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((4, 3), np.float32), r"expected region boxes of shape \(4, 3, 4\) .*got shape \(4, 3\)"),
        (np.zeros((5, 3, 4), np.float32), r"expected region boxes of shape \(4, 3, 4\) .*got shape \(5, 3, 4\)"),
        (np.zeros((4, 36, 4), np.float32), r"expected region boxes of shape \(4, 3, 4\) .*got shape \(4, 36, 4\)"),
        (np.zeros((4, 3, 4), np.int64), "expected float region boxes, got dtype int64"),
    ],
)
def test_bad_region_boxes_name_the_file(tmp_path, array, message):
    _write(tmp_path, boxes=True)
    path = boxes_file(tmp_path, "test")
    np.save(path, array)
    with pytest.raises(StacmrError, match=rf"^{path}: {message}"):
        read_split(tmp_path, "test", 2)


def test_truncated_region_boxes_name_the_file(tmp_path):
    _write(tmp_path, boxes=True)
    path = boxes_file(tmp_path, "test")
    path.write_bytes(path.read_bytes()[:-9])
    with pytest.raises(StacmrError, match=rf"^{path}: not a readable .npy array"):
        read_split(tmp_path, "test", 2)


def test_boxes_for_every_image_or_none(tmp_path):
    with (
        pytest.raises(ValueError, match="for every image of a split or for none"),
        write_split(tmp_path, "t", 1, 3, 5) as out,
    ):
        out.add(np.zeros((3, 5), np.float32), ["a caption"], "1", _boxes(0))
    with (
        pytest.raises(ValueError, match="for every image of a split or for none"),
        write_split(tmp_path, "t", 1, 3, 5, boxes=True) as out,
    ):
        out.add(np.zeros((3, 5), np.float32), ["a caption"], "1")
    assert list(tmp_path.iterdir()) == []


def test_wrong_caption_line_count(tmp_path):
    _write(tmp_path)
    caps = split_files(tmp_path, "test")["caps"]
    caps.write_text("".join(caps.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(StacmrError, match=rf"^{caps}: 7 lines, expected 2 per image × 4 images = 8"):
        read_split(tmp_path, "test", 2)


def test_captions_per_image_is_not_guessed(tmp_path):
    _write(tmp_path, c=2)
    with pytest.raises(StacmrError, match="8 lines, expected 5 per image"):
        read_split(tmp_path, "test", 5)


def test_wrong_shape(tmp_path):
    _write(tmp_path)
    ims = split_files(tmp_path, "test")["ims"]
    np.save(ims, np.zeros((4, 15), dtype=np.float32))
    with pytest.raises(StacmrError, match=rf"^{ims}: expected region features of shape \(N, R, D\), got shape"):
        read_split(tmp_path, "test", 2)


def test_wrong_dtype(tmp_path):
    _write(tmp_path)
    ims = split_files(tmp_path, "test")["ims"]
    np.save(ims, np.zeros((4, 3, 5), dtype=np.int64))
    with pytest.raises(StacmrError, match=rf"^{ims}: expected float32 region features, got dtype int64"):
        read_split(tmp_path, "test", 2)


def test_truncated_array(tmp_path):
    _write(tmp_path)
    ims = split_files(tmp_path, "test")["ims"]
    ims.write_bytes(ims.read_bytes()[:-17])
    with pytest.raises(StacmrError, match=rf"^{ims}: not a readable .npy array"):
        read_split(tmp_path, "test", 2)


def test_ids_count_and_uniqueness(tmp_path):
    _write(tmp_path)
    ids = split_files(tmp_path, "test")["ids"]
    ids.write_text("1\n2\n3\n")
    with pytest.raises(StacmrError, match=rf"^{ids}: 3 ids for 4 images"):
        read_split(tmp_path, "test", 2)
    ids.write_text("1\n2\n3\n3\n")
    with pytest.raises(StacmrError, match=rf"^{ids}: image ids are not unique"):
        read_split(tmp_path, "test", 2)


def test_missing_and_binary_files(tmp_path):
    _write(tmp_path)
    files = split_files(tmp_path, "test")
    files["caps"].write_bytes(b"\xff\xfe caption\n" * 8)
    with pytest.raises(StacmrError, match=rf"^{files['caps']}: not UTF-8 text"):
        read_split(tmp_path, "test", 2)
    files["caps"].unlink()
    with pytest.raises(StacmrError, match=rf"^{files['caps']}: release file is missing"):
        read_split(tmp_path, "test", 2)


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), write_split(tmp_path, "train", 3, 2, 2) as out:
        out.add(np.zeros((2, 2), dtype=np.float32), ["a caption"], "1")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with (
        pytest.raises(ValueError, match="1 images written, 3 declared"),
        write_split(tmp_path, "train", 3, 2, 2) as out,
    ):
        out.add(np.zeros((2, 2), dtype=np.float32), ["a caption"], "1")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="single non-empty lines"), write_split(tmp_path, "train", 1, 2, 2) as out:
        out.add(np.zeros((2, 2), dtype=np.float32), ["two\nlines"], "1")
    assert list(tmp_path.iterdir()) == []
