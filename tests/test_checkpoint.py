"""Checkpoints: typed, the same state gives the same bytes whatever the file is called (issue #14), and reads back; a
file of another version or kind is refused with one message; a store of other data sizes than a checkpoint's model
is refused with one message naming both; the code fingerprint a run spec records follows code, not comments."""

from __future__ import annotations

import dataclasses
import textwrap

import pytest
import torch

from stacmr.errors import StacmrError
from stacmr.features.store import FeatureStore
from stacmr.features.vocab import Vocabulary
from stacmr.models import DataDims
from stacmr.tokens import SPECIALS
from stacmr.training.checkpoint import (
    BestCheckpoint,
    LastCheckpoint,
    RunSpec,
    check_store_fits,
    data_dims,
    load_checkpoint,
    save_checkpoint,
)
from tests.helpers.store import make_store

SPEC = RunSpec(
    family="vsrn",
    model_config={"embed_dim": 16},
    dims=DataDims(region_dim=4, ocr_dim=6, ocr_slots=2, vocab_size=10),
    train={"seed": 3, "max_caption_words": 12},
    data={"trainset": "ab" * 32},
    word_init={"source": "random"},
    code="cd" * 32,
)


def _best() -> BestCheckpoint:
    return BestCheckpoint(SPEC, {"w": torch.arange(6.0).reshape(2, 3)}, 3, {"rsum": 100.0}, ["<pad>", "a"])


def test_same_checkpoint_same_bytes_under_any_name(tmp_path):
    save_checkpoint(tmp_path / "a" / "best.pt", _best())
    save_checkpoint(tmp_path / "b" / "other_name.pt", _best())
    assert (tmp_path / "a" / "best.pt").read_bytes() == (tmp_path / "b" / "other_name.pt").read_bytes()
    loaded = load_checkpoint(tmp_path / "a" / "best.pt", BestCheckpoint)
    assert torch.equal(loaded.model["w"], _best().model["w"])
    assert dataclasses.replace(loaded, model={}) == dataclasses.replace(_best(), model={})
    assert (loaded.spec.seed, loaded.spec.max_caption_words) == (3, 12)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["best.pt"]


def test_other_versions_and_kinds_are_refused(tmp_path):
    path = tmp_path / "best.pt"
    save_checkpoint(path, _best())
    with pytest.raises(StacmrError, match=r"best.pt: not a LastCheckpoint \(it holds spec, model, epoch, val, vocab\)"):
        load_checkpoint(path, LastCheckpoint)
    torch.save({**_best().to_dict(), "checkpoint_version": 1}, path)
    with pytest.raises(StacmrError, match=r"best.pt: checkpoint version 1, this stacmr reads 2"):
        load_checkpoint(path, BestCheckpoint)


@pytest.mark.parametrize(
    ("key", "what", "size"),
    [("region_dim", "region size", 4), ("ocr_dim", "OCR vector size", 6), ("ocr_slots", "OCR slots", 2)],
)
def test_a_store_of_other_sizes_than_the_model_is_refused_naming_both(tmp_path, key, what, size):
    with FeatureStore(make_store(tmp_path / "s.h5")) as store:
        dims = data_dims(store, Vocabulary([*SPECIALS, "a", "b"]))
        assert dims == DataDims(region_dim=4, ocr_dim=6, ocr_slots=2, vocab_size=len(SPECIALS) + 2)
        check_store_fits(store, dims, "checkpoint best.pt")  # the sizes it was built for: accepted
        with pytest.raises(StacmrError) as info:
            check_store_fits(store, dataclasses.replace(dims, **{key: size + 1}), "checkpoint best.pt")
    assert str(info.value).startswith(f"{tmp_path / 's.h5'}: {what} {size}, but checkpoint best.pt has {size + 1};")


def test_the_code_fingerprint_follows_the_code_of_the_import_closure(tmp_path, monkeypatch):
    """Comments, docstrings and formatting leave it; a code edit in the closure changes it; a module outside the
    closure never counts."""
    import stacmr.checksum as checksum

    package = tmp_path / "stacmr"
    (package / "stages").mkdir(parents=True)
    files = {
        "__init__.py": '"""The package."""\n',
        "stages/__init__.py": "",
        "stages/train.py": "from stacmr import helper\n\n\ndef main():\n    return helper.value()\n",
        "helper.py": "def value():\n    from stacmr.deep import x\n\n    return x\n",
        "deep.py": "x = 1\n",
        "outside.py": "y = 1\n",
    }
    for name, text in files.items():
        (package / name).write_text(text)
    monkeypatch.setattr(checksum, "SRC", tmp_path)
    first = checksum.code_sha256("stacmr.stages.train")
    assert checksum.code_sha256("stacmr.stages.train") == first

    (package / "helper.py").write_text(
        textwrap.dedent('''\
        """Gives the value."""


        def value( ):  # the value of deep
            """The value."""
            from stacmr.deep import (
                x,
            )
            return x
        ''')
    )
    (package / "outside.py").write_text("y = 2\n")
    assert checksum.code_sha256("stacmr.stages.train") == first

    (package / "deep.py").write_text("x = 2\n")  # imported inside a function: still in the closure
    assert checksum.code_sha256("stacmr.stages.train") != first
