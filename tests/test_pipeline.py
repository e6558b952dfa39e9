"""fetch → features → trainset on a tiny synthetic config, and the bad inputs each stage must refuse cleanly."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from stacmr.cli import main
from stacmr.features.store import FeatureStore, store_file
from stacmr.features.vocab import Vocabulary
from stacmr.params import SOURCE_SPLITS
from stacmr.text import words


def run(*argv: str) -> int:
    return main([str(a) for a in argv])


def test_stores_have_the_schema_shapes(pipeline):
    root, params = pipeline
    syn = params.synthetic
    for source, splits in SOURCE_SPLITS.items():
        for split in splits:
            with FeatureStore(store_file(root / "features", f"{source}/{split}")) as store:
                n = len(store)
                assert store["regions"].shape == (n, syn.regions, syn.region_dim)
                assert store["regions"].dtype == np.float16
                assert store["ocr_emb"].shape == (n, params.features.max_ocr_tokens, params.features.fasttext.dim)
                assert store["captions"].shape == (n, 5)
                mask = store["ocr_mask"][:]
                tokens = store["ocr_tokens"].asstr()[:]
                assert np.array_equal(mask, tokens != "")
                emb = store["ocr_emb"][:]
                assert not emb[~mask].any()
                assert (np.abs(emb[mask]).sum(axis=-1) > 0).mean() > 0.5  # unseen n-grams give zero vectors
                assert np.isfinite(store["regions"][:]).all()
                assert set(store.inputs_sha256) >= {f"{source}/{split}_ims.npy", f"{source}/annotations.json"}
                assert "ocr_fasttext.bin" in store.inputs_sha256  # the model's name inside the features folder


def test_ctc_1k_is_a_subset_of_5k_in_the_stores(pipeline):
    root, _ = pipeline
    with (
        FeatureStore(store_file(root / "features", "ctc/dev")) as dev,
        FeatureStore(store_file(root / "features", "ctc/test")) as test,
    ):
        test_ids = list(test["image_ids"].asstr()[:])
        dev_ids = list(dev["image_ids"].asstr()[:])
        assert set(dev_ids) < set(test_ids)
        assert dev["explicit"][:].all() and not test["explicit"][:].all()
        rows = [test_ids.index(i) for i in dev_ids]
        np.testing.assert_array_equal(dev["regions"][:], test["regions"][rows])
        np.testing.assert_array_equal(dev["ocr_emb"][:], test["ocr_emb"][rows])


def test_trainset_concatenates_sources_in_order(pipeline):
    root, params = pipeline
    with FeatureStore(root / "trainset.h5") as train:
        start = 0
        for name, rng in zip(params.trainset.sources, train.producer["sources"], strict=True):
            with FeatureStore(store_file(root / "features", name)) as part:
                assert rng == {"name": name, "start": start, "stop": start + len(part)}
                for field in ("regions", "ocr_emb", "ocr_mask", "explicit"):
                    np.testing.assert_array_equal(train[field][start : start + len(part)], part[field][:])
                assert list(train["image_ids"].asstr()[start : start + len(part)]) == list(part["image_ids"].asstr()[:])
                start += len(part)
        assert len(train) == start
        vocab = Vocabulary.load(root / "vocab.json")
        assert vocab.itos[:4] == ["<pad>", "<start>", "<end>", "<unk>"]
        caption_words = {w for c in train.iter_captions(5) for w in words(c)}
        assert set(vocab.itos[4:]) == caption_words


def test_features_are_reproducible(pipeline, tmp_path):
    """Same inputs, same model and stores (fastText trains in a fresh process each time), byte for byte: no
    temporary path or timestamp inside the files (issue #14)."""
    root, _ = pipeline
    assert run("features", "--params", root / "params.yaml", "--raw", root / "raw", "--out", tmp_path / "f") == 0
    for name in ("ctc/test", "textcaps/train"):
        with (
            FeatureStore(store_file(root / "features", name)) as a,
            FeatureStore(store_file(tmp_path / "f", name)) as b,
        ):
            for field in ("regions", "ocr_mask", "explicit"):
                np.testing.assert_array_equal(a[field][:], b[field][:])
            assert list(a["ocr_tokens"].asstr()[:].ravel()) == list(b["ocr_tokens"].asstr()[:].ravel())
            np.testing.assert_array_equal(a["ocr_emb"][:], b["ocr_emb"][:])
    first, second = sorted((root / "features").iterdir()), sorted((tmp_path / "f").iterdir())
    assert [p.name for p in first] == [p.name for p in second]
    assert [p.name for p in first if p.read_bytes() != (tmp_path / "f" / p.name).read_bytes()] == []


def _one_error_line(capsys, *needles: str) -> str:
    """The stage's stderr holds exactly one error line (progress bars aside), naming what is wrong."""
    errors = [line for line in capsys.readouterr().err.splitlines() if ": error: " in line]
    assert len(errors) == 1, errors
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def raw_copy(pipeline, tmp_path) -> Path:
    root, _ = pipeline
    shutil.copytree(root / "raw", tmp_path / "raw")
    return tmp_path / "raw"


def _features(pipeline, raw: Path, out: Path) -> int:
    root, _ = pipeline
    return run("features", "--params", root / "params.yaml", "--raw", raw, "--out", out)


def test_nan_in_region_features(pipeline, raw_copy, tmp_path, capsys):
    ims_path = raw_copy / "ctc" / "test_ims.npy"
    ims = np.load(ims_path)
    ims[7, 2, 3] = np.nan
    np.save(ims_path, ims)
    assert _features(pipeline, raw_copy, tmp_path / "out") == 2
    _one_error_line(capsys, str(ims_path), "NaN or infinite value in image row 7")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["raw"]


def test_release_file_with_the_wrong_shape(pipeline, raw_copy, tmp_path, capsys):
    ims_path = raw_copy / "ctc" / "val_ims.npy"
    np.save(ims_path, np.load(ims_path)[:, :, :5].reshape(-1, 5))
    assert _features(pipeline, raw_copy, tmp_path / "out") == 2
    _one_error_line(capsys, str(ims_path), "expected region features of shape (N, R, D)")
    assert not (tmp_path / "out").exists()


def test_caption_file_with_the_wrong_line_count(pipeline, raw_copy, tmp_path, capsys):
    caps = raw_copy / "f30k" / "train_caps.txt"
    caps.write_text(caps.read_text() + "one caption too many\n")
    assert _features(pipeline, raw_copy, tmp_path / "out") == 2
    _one_error_line(capsys, str(caps), "201 lines, expected 5 per image × 40 images")
    assert not (tmp_path / "out").exists()


def test_truncated_store_for_trainset(pipeline, tmp_path, capsys):
    root, _ = pipeline
    shutil.copytree(root / "features", tmp_path / "features")
    store = store_file(tmp_path / "features", "textcaps/train")
    store.write_bytes(store.read_bytes()[:4096])
    out = tmp_path / "trainset.h5"
    argv = ("trainset", "--params", root / "params.yaml", "--features", tmp_path / "features", "--out", out)
    assert run(*argv, "--vocab", tmp_path / "vocab.json") == 2
    _one_error_line(capsys, str(store), "not a readable HDF5 feature store")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features"]


def test_nan_in_a_feature_store_stops_trainset(pipeline, tmp_path, capsys):
    root, _ = pipeline
    shutil.copytree(root / "features", tmp_path / "features")
    store = store_file(tmp_path / "features", "ctc/train")
    with h5py.File(store, "r+") as h5:
        h5["regions"][9, 0, 0] = np.nan
    out = tmp_path / "trainset.h5"
    argv = ("trainset", "--params", root / "params.yaml", "--features", tmp_path / "features", "--out", out)
    assert run(*argv, "--vocab", tmp_path / "vocab.json") == 2
    _one_error_line(capsys, str(store), "field 'regions': NaN or infinite value at image 9")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features"]


def test_params_typo_stops_before_any_output(tiny_raw, write_params, tmp_path, capsys):
    tiny_raw["synthetic"]["seeed"] = tiny_raw["synthetic"].pop("seed")
    params = write_params(tiny_raw)
    assert run("fetch", "--params", params, "--out", tmp_path / "raw") == 2
    _one_error_line(capsys, str(params), "synthetic.seeed: unknown key (did you mean 'seed'?)")
    assert not (tmp_path / "raw").exists()


def test_release_source_without_its_files_says_what_to_place(tiny_raw, write_params, tmp_path, capsys):
    tiny_raw["data"]["source"] = "release"
    for spec in tiny_raw["release"].values():
        if isinstance(spec, dict) and "url" in spec:
            spec["url"] = None  # offline: nothing to download
    (tmp_path / "data").mkdir()
    flags = ("--data", tmp_path / "data", "--downloads", tmp_path / "downloads", "--out", tmp_path / "raw")
    assert run("fetch", "--params", write_params(tiny_raw), *flags) == 2
    message = _one_error_line(capsys, "cannot be downloaded automatically; put ctc_features.zip", "dvc add")
    assert "train_features.zip" in message and "cocotext.v2.zip" in message
    assert "CTC_anns.json" not in message  # optional: rebuilt from COCO + COCO-Text when absent
    assert not (tmp_path / "raw").exists()
    assert run("fetch", "--params", write_params(tiny_raw), "--out", tmp_path / "raw") == 2
    _one_error_line(capsys, "data.source release", "needs --data and --downloads")


def test_unknown_stage_and_help(capsys):
    assert main(["fetsh"]) == 2
    assert "unknown stage 'fetsh'" in capsys.readouterr().err
    assert main([]) == 0


def test_diverging_fasttext_training_is_explained(pipeline, tiny_raw, write_params, tmp_path, capsys):
    root, _ = pipeline
    tiny_raw["features"]["fasttext"].update(lr=1.0, epoch=20)  # weights reach 1e9 on this corpus
    params = write_params(tiny_raw)
    assert run("features", "--params", params, "--raw", root / "raw", "--out", tmp_path / "out") == 2
    _one_error_line(
        capsys, "fastText training failed (diverged: largest weight", "lower features.fasttext.lr (now 1.0)"
    )
    assert not (tmp_path / "out").exists()


class _Conn:
    def __init__(self) -> None:
        self.sent = []

    def send(self, value) -> None:
        self.sent.append(value)


def test_the_training_child_reports_nan_and_saves_nothing(monkeypatch, tmp_path):
    import fasttext

    from stacmr.features import ocr_embedding

    def nan(*args, **kwargs):
        raise RuntimeError("Encountered NaN.")

    monkeypatch.setattr(fasttext, "train_unsupervised", nan)
    conn = _Conn()
    ocr_embedding._train_in_child("corpus.txt", {}, str(tmp_path / "model.bin"), conn)
    assert conn.sent == ["Encountered NaN."] and not (tmp_path / "model.bin").exists()
