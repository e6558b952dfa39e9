"""fetch → features → trainset on a tiny synthetic config, and the bad inputs each stage must refuse cleanly."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from stacmr.cli import STAGES, main
from stacmr.data.sources import SOURCES
from stacmr.features.store import FeatureStore, store_file
from stacmr.features.vocab import Vocabulary
from stacmr.text import words
from tests.helpers import REPO
from tests.helpers.params import shrink


def run(*argv: str) -> int:
    return main([str(a) for a in argv])


def test_stores_have_the_schema_shapes(pipeline):
    root, params = pipeline
    syn = params.synthetic
    for source in SOURCES:
        for split in source.split_names:
            with FeatureStore(store_file(root / "features", source.store(split))) as store:
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
                inputs = {f"{source.name}/{split}_ims.npy", f"{source.name}/annotations.json"}
                assert set(store.inputs_sha256) >= inputs
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
    assert "unknown stage 'fetsh' (did you mean 'fetch'?)" in capsys.readouterr().err
    for argv in ([], ["--help"], ["-h"]):
        assert main(argv) == 0
        shown = capsys.readouterr().out.splitlines()
        for name, stage in STAGES.items():
            (line,) = [x for x in shown if x.split()[:1] == [name]]  # one line per stage: its name, what it does
            assert line.endswith(stage.summary) and len(line) <= 100, line


def test_help_imports_no_stage():
    code = "import sys; from stacmr.cli import main; main(['--help']); print(sorted(m for m in sys.modules if m"
    code += " == 'torch' or m.startswith('stacmr.stages')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines()[-1] == "[]"


def test_check_params_output_does_not_depend_on_the_values(tiny_raw, write_params, tmp_path, capsys):
    first, second = tmp_path / "a.ok", tmp_path / "b.ok"
    assert run("check-params", "--params", write_params(tiny_raw), "--out", first) == 0
    tiny_raw["train"]["epochs"] += 1
    assert run("check-params", "--params", write_params(tiny_raw, "other.yaml"), "--out", second) == 0
    assert first.read_bytes() == second.read_bytes()  # DVC sees no change downstream of a params edit
    # `extract` is read by no stage of dvc.yaml: the check is what catches its typos in `dvc repro`
    tiny_raw["extract"]["ocr"]["scrpit"] = tiny_raw["extract"]["ocr"].pop("script")
    bad = write_params(tiny_raw, "bad.yaml")
    assert run("check-params", "--params", bad, "--out", tmp_path / "c.ok") == 2
    _one_error_line(capsys, str(bad), "extract.ocr.scrpit: unknown key (did you mean 'script'?)")
    assert not (tmp_path / "c.ok").exists()


def _widen(path: Path, extra: int) -> None:
    """Make release array `path` (N, R, D) `extra` dims wider, as a split from another extraction would be."""
    array = np.load(path)
    np.save(path, np.pad(array, ((0, 0), (0, 0), (0, extra))))


def test_a_split_with_another_region_size_stops_features(pipeline, raw_copy, tmp_path, capsys):
    _, params = pipeline
    dim = params.synthetic.region_dim
    _widen(raw_copy / "ctc" / "val_ims.npy", 4)  # a release split among splits of another size
    assert _features(pipeline, raw_copy, tmp_path / "out") == 2
    val, train = raw_copy / "ctc" / "val_ims.npy", raw_copy / "ctc" / "train_ims.npy"
    _one_error_line(capsys, f"{val}: region size {dim + 4}, but {train} has {dim}")
    assert not (tmp_path / "out").exists()


def test_a_split_with_another_ocr_vector_size_stops_features(pipeline, raw_copy, tmp_path, capsys):
    for source in SOURCES:  # released OCR vectors (N, T, E), as the real release ships them
        for split in source.split_names:
            n = len((raw_copy / source.name / f"{split}_ids.txt").read_text().splitlines())
            dim = 12 if source.store(split) == "textcaps/train" else 8
            np.save(raw_copy / source.name / f"{split}_ocr_feats.npy", np.ones((n, 3, dim), np.float32))
    assert _features(pipeline, raw_copy, tmp_path / "out") == 2
    wide, first = raw_copy / "textcaps" / "train_ocr_feats.npy", raw_copy / "ctc" / "train_ocr_feats.npy"
    _one_error_line(capsys, f"{wide}: OCR vector size 12, but {first} has 8")
    assert not (tmp_path / "out").exists()


def test_a_split_with_another_region_size_stops_fetch(pipeline, tmp_path, monkeypatch, capsys):
    root, params = pipeline
    from stacmr.stages import fetch

    def generate(*args):
        summary = generate_world(*args)
        _widen(args[-1] / "f30k" / "train_ims.npy", 4)
        return summary

    generate_world = fetch.generate_world
    monkeypatch.setattr(fetch, "generate_world", generate)
    out = tmp_path / "raw"
    assert run("fetch", "--params", root / "params.yaml", "--out", out) == 2
    dim = params.synthetic.region_dim
    wide, first = out / "f30k" / "train_ims.npy", out / "ctc" / "train_ims.npy"  # named as they would be in --out
    _one_error_line(capsys, f"{wide}: region size {dim + 4}, but {first} has {dim}")
    assert list(tmp_path.iterdir()) == []  # neither the output nor its temporary


def test_features_removes_the_temporaries_of_a_killed_run(pipeline, tmp_path):
    root, _ = pipeline
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)  # a process that has exited
    stale = [tmp_path / f".features.{pid}.k2j4h5g6.tmp", tmp_path / f".features.{pid}.a1b2c3d4.old"]
    for path in stale:
        path.mkdir()
        (path / "ctc_train.h5").write_bytes(b"half a store")
    assert run("features", "--params", root / "params.yaml", "--raw", root / "raw", "--out", tmp_path / "features") == 0
    assert [p.name for p in tmp_path.iterdir()] == ["features"]


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


@pytest.mark.slow
def test_a_params_typo_stops_dvc_repro_before_any_output_is_deleted(tmp_path, repo_params):
    """DVC deletes a stage's outputs before running it: the `params` stage must fail first. Runs `dvc repro fetch` in
    a git repository made of this working tree, on the tiny config."""
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    repo = tmp_path / "repo"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():  # a tracked file deleted in the working tree is not
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, repo / name)
    (repo / "data").mkdir()  # data.dvc records an empty folder (README, "data/ and data.dvc")
    tiny = shrink(repo_params)
    (repo / "params.yaml").write_text(yaml.safe_dump(tiny))
    git = ["git", "-c", "user.name=stacmr", "-c", "user.email=stacmr@localhost"]
    for argv in (["init", "--quiet"], ["add", "--all"], ["commit", "--quiet", "-m", "working tree"]):
        subprocess.run([*git, *argv], cwd=repo, check=True)
    venv_bin = Path(sys.prefix) / "bin"  # the installed environment runs the copy's own sources
    env = {**os.environ, "PYTHONPATH": str(repo / "src"), "PATH": f"{venv_bin}{os.pathsep}{os.environ['PATH']}"}

    def repro(edit=None) -> subprocess.CompletedProcess:
        raw = copy.deepcopy(tiny)
        if edit:
            edit(raw)
        (repo / "params.yaml").write_text(yaml.safe_dump(raw))
        return subprocess.run(["dvc", "repro", "fetch"], cwd=repo, env=env, capture_output=True, text=True, timeout=600)

    first = repro()
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    outputs = repo / "artifacts" / "raw"
    made = sorted((p.relative_to(outputs), p.stat().st_size) for p in outputs.rglob("*"))
    assert made and (repo / "artifacts" / "params.ok").is_file()

    def typo(section: str, key: str):
        return lambda raw: raw[section].update({key + "x": raw[section].pop(key)})

    # `synthetic` is read by fetch (whose stage would run, output deleted first); `extract` by no stage of dvc.yaml
    for section, key in (("synthetic", "seed"), ("extract", "grid")):
        result = repro(typo(section, key))
        assert result.returncode != 0
        assert f"{section}.{key}x: unknown key (did you mean '{key}'?)" in result.stdout + result.stderr
        assert "Running stage 'fetch'" not in result.stdout
        assert sorted((p.relative_to(outputs), p.stat().st_size) for p in outputs.rglob("*")) == made

    # a valid edit of params fetch does not read reruns the check, and nothing downstream (params.ok is unchanged)
    result = repro(lambda raw: raw["train"].update(epochs=raw["train"]["epochs"] + 1))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Running stage 'params'" in result.stdout and "Running stage 'fetch'" not in result.stdout
