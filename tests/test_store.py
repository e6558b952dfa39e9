"""The HDF5 feature store: schema round trip, and one clear message for every kind of broken file."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from stacmr.errors import StacmrError
from stacmr.features.store import FIELDS, SCHEMA_VERSION, FeatureStore, create_store
from tests.helpers.store import SIZES, make_store, store_block


def test_round_trip(tmp_path):
    with FeatureStore(make_store(tmp_path / "s.h5")) as store:
        assert len(store) == 5 and store.sizes == SIZES
        assert store.name == "ctc/test" and store.producer == {"p": 1} and store.inputs_sha256 == {"in.npy": "abc"}
        assert store["regions"].dtype == np.float16 and store["regions"].chunks == (1, 3, 4)
        assert store["ocr_emb"].chunks == (1, 2, 6)
        np.testing.assert_array_equal(store["regions"][3:5], store_block(3, 5)["regions"])
        assert store["ocr_tokens"].asstr()[4].tolist() == ["W4", ""]
        assert store["captions"].asstr()[1].tolist() == ["cap 1.0", "cap 1.1"]


def test_optional_fields_round_trip_or_read_as_their_fill(tmp_path):
    boxes = np.full((5, 3, 4), np.nan, dtype=np.float32)
    boxes[:, 0] = [1, 2, 30, 40]
    sizes = np.array([[640, 480]] * 5, dtype=np.int32)
    path = tmp_path / "given.h5"
    with create_store(path, "ctc/test", SIZES, {}, {}) as out:
        out.write(0, **store_block(0, 5), region_boxes=boxes, image_size=sizes)
    with FeatureStore(path) as store:
        np.testing.assert_array_equal(store["region_boxes"][:], boxes)
        np.testing.assert_array_equal(store["image_size"][:], sizes)
    with FeatureStore(make_store(tmp_path / "left_out.h5")) as store:  # a writer that leaves them out
        assert np.isnan(store["region_boxes"][:]).all() and store["region_boxes"].shape == (5, 3, 4)
        assert not store["image_size"][:].any()
    older = make_store(tmp_path / "older.h5")  # a store made before the optional fields existed
    _tamper(older, lambda h5: (h5.__delitem__("region_boxes"), h5.__delitem__("image_size")))
    with FeatureStore(older) as store:
        assert store["region_boxes"].shape == (5, 3, 4) and np.isnan(store["region_boxes"][[4, 0]]).all()
        assert store["image_size"].dtype == np.int32 and not store["image_size"][2:4].any()
    with pytest.raises(ValueError, match=r"unknown \['boxes'\]"), create_store(path, "x", SIZES, {}, {}) as out:
        out.write(0, **store_block(0, 5), boxes=boxes)


def test_incomplete_or_failed_write_leaves_no_file(tmp_path):
    path = tmp_path / "s.h5"
    with pytest.raises(ValueError, match="closed before every image"), create_store(path, "x", SIZES, {}, {}) as out:
        out.write(0, **store_block(0, 3))
    with pytest.raises(ValueError, match="block of shape"), create_store(path, "x", SIZES, {}, {}) as out:
        out.write(0, **{**store_block(0, 3), "regions": np.zeros((3, 3, 5))})
    assert list(tmp_path.iterdir()) == []


def test_truncated_file(tmp_path):
    path = make_store(tmp_path / "s.h5")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(StacmrError, match=rf"^{path}: not a readable HDF5 feature store \(truncated or corrupt\?\)"):
        FeatureStore(path)


def test_not_hdf5_and_missing(tmp_path):
    path = tmp_path / "s.h5"
    path.write_text("hello")
    with pytest.raises(StacmrError, match=rf"^{path}: not a readable HDF5 feature store"):
        FeatureStore(path)
    with pytest.raises(StacmrError, match="feature store is missing"):
        FeatureStore(tmp_path / "absent.h5")


def _tamper(path, action):
    with h5py.File(path, "a") as h5:
        action(h5)


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (lambda h5: h5.attrs.__setitem__("schema_version", SCHEMA_VERSION + 1), "attribute 'schema_version' is"),
        (lambda h5: h5.attrs.__delitem__("inputs_sha256"), "attribute 'inputs_sha256' is missing"),
        (lambda h5: h5.__delitem__("ocr_mask"), "field 'ocr_mask' is missing"),
        (
            lambda h5: (h5.__delitem__("regions"), h5.create_dataset("regions", data=np.zeros((5, 3, 4)))),
            "field 'regions': dtype float64, expected float16",
        ),
        (
            lambda h5: (h5.__delitem__("explicit"), h5.create_dataset("explicit", data=np.zeros(4, dtype=bool))),
            "field 'explicit': shape \\(4,\\) disagrees with N=5",
        ),
        (
            lambda h5: (h5.__delitem__("captions"), h5.create_dataset("captions", data=np.zeros((5, 2)))),
            "field 'captions': dtype float64, expected",
        ),
    ],
)
def test_schema_violations_name_file_and_field(tmp_path, action, message):
    path = make_store(tmp_path / "s.h5")
    _tamper(path, action)
    with pytest.raises(StacmrError, match=rf"^{path}: {message}"):
        FeatureStore(path)


def test_schema_fields_are_documented():
    import stacmr.features.store as module

    for name in FIELDS:
        assert f"\n  {name} " in module.__doc__


@pytest.mark.parametrize("field", ["regions", "ocr_emb"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused_as_they_are_read(tmp_path, field, bad):
    path = make_store(tmp_path / "s.h5")
    with h5py.File(path, "r+") as h5:
        h5[field][3, 1, 2] = bad
        h5[field][4, 0, 0] = bad
    rows = np.array([4, 0, 3, 3])  # as a batch asks for them: any order, repeats
    unique, inverse = np.unique(rows, return_inverse=True)
    with FeatureStore(path) as store:
        store.check_finite(np.array([0, 1, 2]), regions=store["regions"][:3], ocr_emb=store["ocr_emb"][:3])
        with pytest.raises(StacmrError) as info:
            store.check_finite(rows, **{field: store[field][unique][inverse]})
    assert str(info.value).startswith(f"{path}: field {field!r}: NaN or infinite value at image 3 (id '3')")


def test_batches_read_through_the_check(tmp_path):
    from stacmr.features.reader import read_images

    path = make_store(tmp_path / "s.h5")
    with h5py.File(path, "r+") as h5:
        h5["ocr_emb"][2, 0, 0] = np.nan
    with FeatureStore(path) as store:
        read_images(store, np.array([0, 1]))
        with pytest.raises(StacmrError, match="field 'ocr_emb': NaN or infinite value at image 2"):
            read_images(store, np.array([4, 2, 0]))
