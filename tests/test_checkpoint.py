"""Checkpoints: the same state gives the same bytes whatever the file is called (issue #14), and reads back; a store
of other data sizes than a checkpoint's model is refused with one message naming both."""

from __future__ import annotations

import pytest
import torch

from stacmr.errors import StacmrError
from stacmr.features.store import FeatureStore
from stacmr.training.checkpoint import check_store_fits, load_checkpoint, save_checkpoint, store_dims
from tests.test_store import make_store


def test_same_state_same_bytes_under_any_name(tmp_path):
    state = {"model": {"w": torch.arange(6.0).reshape(2, 3)}, "epoch": 3, "history": [{"epoch": 1, "loss": 0.5}]}
    save_checkpoint(tmp_path / "a" / "best.pt", state)
    save_checkpoint(tmp_path / "b" / "other_name.pt", state)
    assert (tmp_path / "a" / "best.pt").read_bytes() == (tmp_path / "b" / "other_name.pt").read_bytes()
    loaded = load_checkpoint(tmp_path / "a" / "best.pt")
    assert torch.equal(loaded["model"]["w"], state["model"]["w"]) and loaded["history"] == state["history"]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["best.pt"]


@pytest.mark.parametrize(
    ("key", "what", "size"),
    [("region_dim", "region size", 4), ("ocr_dim", "OCR vector size", 6), ("ocr_slots", "OCR slots", 2)],
)
def test_a_store_of_other_sizes_than_the_model_is_refused_naming_both(tmp_path, key, what, size):
    with FeatureStore(make_store(tmp_path / "s.h5")) as store:
        dims = store_dims(store)
        assert dims == {"region_dim": 4, "ocr_dim": 6, "ocr_slots": 2}
        check_store_fits(store, dims, "checkpoint best.pt")  # the sizes it was built for: accepted
        with pytest.raises(StacmrError) as info:
            check_store_fits(store, {**dims, key: size + 1}, "checkpoint best.pt")
    assert str(info.value).startswith(f"{tmp_path / 's.h5'}: {what} {size}, but checkpoint best.pt has {size + 1};")


def test_the_package_source_fingerprint_follows_the_code(tmp_path, monkeypatch):
    """Any source edit changes it (a resume then trains afresh); the same source gives the same digest."""
    import stacmr.checksum as checksum

    package = tmp_path / "stacmr"
    (package / "models").mkdir(parents=True)
    (package / "checksum.py").write_text("# stand-in\n")
    (package / "models" / "m.py").write_text("x = 1\n")
    monkeypatch.setattr(checksum, "__file__", str(package / "checksum.py"))
    first = checksum.package_source_sha256()
    assert checksum.package_source_sha256() == first
    (package / "models" / "m.py").write_text("x = 2\n")
    assert checksum.package_source_sha256() != first
