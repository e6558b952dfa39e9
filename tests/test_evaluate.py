"""The `evaluate` stage: a model rebuilt from its checkpoint alone, metrics with CIs and the explicit subset, ranks
saved, and the metrics mirrored into the MLflow run that trained the checkpoint (a seed replicate's into its own)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from stacmr.checksum import sha256_file
from stacmr.cli import main
from stacmr.evaluation.metrics import CI_KEYS, METRICS, summarize
from stacmr.features.store import store_file
from stacmr.params import load_params
from stacmr.training.checkpoint import BestCheckpoint, load_checkpoint, save_checkpoint
from tests.helpers.params import shrink
from tests.helpers.stages import evaluate_argv, train_argv


def _evaluate(root, out, ablation, split, params):
    metrics, ranks = out / "eval" / ablation / f"{split}.json", out / "ranks" / f"{split}.npz"
    return main(evaluate_argv(params, ablation, split, root, out / "models" / ablation, metrics, ranks))


@pytest.fixture
def trained(pipeline, tmp_path, monkeypatch, tiny_raw, write_params):
    root, _ = pipeline
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    tiny_raw["evaluate"]["splits"] = ["dev", "test", "val"]
    params = write_params(tiny_raw)
    assert main(train_argv(root, tmp_path, "starnet_all", params)) == 0
    return root, tmp_path, params, uri


def test_evaluate_writes_metrics_cis_ranks_and_mirrors_to_mlflow(trained):
    root, out, params, uri = trained
    seed = load_params(params).train_params("starnet_all").seed
    for split in ("dev", "test"):
        assert _evaluate(root, out, "starnet_all", split, params) == 0
        metrics = json.loads((out / "eval" / "starnet_all" / f"{split}.json").read_text())
        assert (metrics["ablation"], metrics["seed"]) == ("starnet_all", seed)
        for key in (*(m.name for m in METRICS), "rsum"):
            assert key in metrics and key in metrics["explicit"]
        assert list(metrics["ci95"]) == list(CI_KEYS)
        for key, (low, high) in metrics["ci95"].items():
            assert low <= metrics[key] <= high
        saved = np.load(out / "ranks" / f"{split}.npz")
        assert summarize(saved["i2t"], saved["t2i"])["rsum"] == pytest.approx(metrics["rsum"])
        keys = {"i2t", "t2i", "t2i_top", "caption_image", "explicit_images", "explicit_i2t", "explicit_t2i"}
        assert set(saved.files) == keys
        n_images = len(saved["i2t"])
        assert saved["caption_image"].dtype.kind == "i"
        np.testing.assert_array_equal(saved["caption_image"], np.arange(len(saved["t2i"])) // 5)  # image-major
        assert saved["caption_image"].max() == n_images - 1
    dev = np.load(out / "ranks" / "dev.npz")
    assert len(dev["explicit_images"]) == len(dev["i2t"])  # CTC-1K is all explicit

    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("stacmr").experiment_id])
    assert run.data.metrics["test_rsum"] == pytest.approx(metrics["rsum"])
    assert "dev_explicit_i2t_r1" in run.data.metrics
    assert run.info.status == "FINISHED"


def test_checkpoint_alone_reproduces_the_validation_metrics(trained):
    """Validation and the evaluate stage are one computation: the same numbers, bit for bit (CIs aside)."""
    root, out, params, _ = trained
    assert _evaluate(root, out, "starnet_all", "val", params) == 0
    evaluated = json.loads((out / "eval" / "starnet_all" / "val.json").read_text())
    selected = json.loads((out / "metrics" / "starnet_all.json").read_text())
    assert selected["epoch"] == evaluated["checkpoint_epoch"]
    assert {k: v for k, v in evaluated.items() if k in selected and k != "explicit"} == {
        k: v for k, v in selected.items() if k not in ("epoch", "explicit")
    }
    assert {k: v for k, v in evaluated["explicit"].items() if k != "ci95"} == selected["explicit"]


def test_a_seed_replicate_is_mirrored_into_its_own_run(trained, monkeypatch, caplog):
    root, out, params, uri = trained
    replicate = out / "replicate"
    assert main([*train_argv(root, replicate, "starnet_all", params), "--seed", "4"]) == 0
    assert _evaluate(root, replicate, "starnet_all", "dev", params) == 0
    metrics = json.loads((replicate / "eval" / "starnet_all" / "dev.json").read_text())
    assert (metrics["ablation"], metrics["seed"]) == ("starnet_all", 4)

    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    runs = {r.info.run_name: r for r in client.search_runs([client.get_experiment_by_name("stacmr").experiment_id])}
    own = f"starnet_all s{load_params(params).train_params('starnet_all').seed}"
    assert set(runs) == {own, "starnet_all s4"}
    assert runs["starnet_all s4"].data.metrics["dev_rsum"] == pytest.approx(metrics["rsum"])
    assert not [key for key in runs[own].data.metrics if key.startswith("dev_")]

    # the store of another checkout has no run of this checkpoint: one info line, and the evaluation stands
    elsewhere = out / "elsewhere" / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{elsewhere}")
    with caplog.at_level(logging.INFO, logger="stacmr"):
        assert _evaluate(root, replicate, "starnet_all", "test", params) == 0
    sha = sha256_file(replicate / "models" / "starnet_all" / "best.pt")
    said = [r.getMessage() for r in caplog.records if r.name == "stacmr" and "MLflow" in r.getMessage()]
    assert said == [f"no MLflow store at sqlite:///{elsewhere}: checkpoint {sha[:12]} has no run to find"]
    assert not elsewhere.exists() and (replicate / "eval" / "starnet_all" / "test.json").exists()


def test_unknown_split_is_refused(trained, capsys):
    root, out, params, _ = trained
    assert _evaluate(root, out, "starnet_all", "tset", params) == 2
    assert "--split 'tset': not in params.yaml evaluate.splits" in capsys.readouterr().err


# Bad stores at evaluation time (issue #14): every path that encodes a store (evaluate for a dense and a fine-grained
# family, the headroom control, training's validation) stops with one message naming the store, no traceback.
FAMILIES = ("vsrn_all", "chan_all")  # dense and fine-grained; vsrn_all is also report.baseline, read by headroom


@pytest.fixture(scope="module")
def one_epoch(pipeline, tmp_path_factory):
    """Checkpoints of `FAMILIES` after one epoch: (pipeline root, output folder, params file)."""
    root, _ = pipeline
    out = tmp_path_factory.mktemp("bad_stores")
    raw = shrink(yaml.safe_load((root / "params.yaml").read_text()))
    raw["train"]["epochs"] = 1
    params = out / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{out}/mlflow.db")
        for ablation in FAMILIES:
            assert main(train_argv(root, out, ablation, params)) == 0
    return root, out, params


def _error(capsys) -> str:
    """The one error line of the stage's stderr (progress bars aside)."""
    errors = [line for line in capsys.readouterr().err.splitlines() if ": error: " in line]
    assert len(errors) == 1, errors
    return errors[0]


def _features_with(root: Path, tmp: Path, name: str, edit) -> tuple[Path, Path]:
    """A copy of the pipeline's features folder in which `edit(h5py file)` changed store `name`: (folder, store)."""
    features = tmp / "features"
    shutil.copytree(root / "features", features)
    path = store_file(features, name)
    with h5py.File(path, "r+") as h5:
        edit(h5)
    return features, path


def _nan(h5) -> None:
    h5["regions"][3, 1, 2] = np.nan


def _wider(h5) -> None:
    """Region vectors 4 dims longer, as from another feature extractor."""
    regions = h5["regions"][:]
    del h5["regions"]
    h5.create_dataset("regions", data=np.pad(regions, ((0, 0), (0, 0), (0, 4))), chunks=(1, *regions.shape[1:]))


def _evaluate_in(one_epoch, features: Path, ablation: str, out: Path) -> int:
    root, models, params = one_epoch
    return main(
        evaluate_argv(
            params, ablation, "dev", root, models / "models" / ablation, out / "dev.json", out / "dev.npz", features
        )
    )


def _headroom_in(one_epoch, features: Path, out: Path) -> int:
    _, models, params = one_epoch
    return main(
        [
            "headroom",
            "--params",
            str(params),
            "--models",
            str(models / "models"),
            "--features",
            str(features),
            "--metrics",
            str(out / "metrics"),
            "--ranks",
            str(out / "ranks"),
        ]
    )


def _train_in(one_epoch, features: Path, out: Path, monkeypatch) -> int:
    """`train` of vsrn_all into `out` with the stores of `features` (e.g. a damaged validation store)."""
    root, _, params = one_epoch
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{out}/mlflow.db")
    argv = train_argv(root, out, "vsrn_all", params)
    argv[argv.index("--features") + 1] = str(features)
    return main(argv)


@pytest.mark.parametrize("ablation", FAMILIES)
def test_nan_in_a_store_stops_evaluate(one_epoch, tmp_path, capsys, ablation):
    features, store = _features_with(one_epoch[0], tmp_path, "ctc/dev", _nan)
    assert _evaluate_in(one_epoch, features, ablation, tmp_path / "eval") == 2
    assert f"{store}: field 'regions': NaN or infinite value at image 3" in _error(capsys)
    assert not (tmp_path / "eval").exists()


@pytest.mark.parametrize("ablation", ["vsrn_all", "chan_all"])
def test_a_checkpoint_with_nan_weights_stops_evaluate(one_epoch, tmp_path, capsys, ablation):
    """A diverged checkpoint (NaN weights) on finite features: one message, not ranking's raw ValueError."""
    root, models, params = one_epoch
    damaged = tmp_path / "models" / ablation
    shutil.copytree(models / "models" / ablation, damaged)
    best = load_checkpoint(damaged / "best.pt", BestCheckpoint)
    for tensor in best.model.values():
        if tensor.is_floating_point():
            tensor.fill_(float("nan"))
    save_checkpoint(damaged / "best.pt", best)
    assert _evaluate_in((root, tmp_path, params), root / "features", ablation, tmp_path / "eval") == 2
    assert "embeddings of this store are NaN or infinite" in _error(capsys)
    assert not (tmp_path / "eval").exists()


def test_nan_in_a_store_stops_headroom(one_epoch, tmp_path, capsys):
    features, store = _features_with(one_epoch[0], tmp_path, "ctc/val", _nan)
    assert _headroom_in(one_epoch, features, tmp_path / "headroom") == 2
    assert f"{store}: field 'regions': NaN or infinite value at image 3" in _error(capsys)
    assert not (tmp_path / "headroom").exists()


def test_nan_in_the_validation_store_stops_training(one_epoch, tmp_path, capsys, monkeypatch):
    features, store = _features_with(one_epoch[0], tmp_path, "ctc/val", _nan)
    assert _train_in(one_epoch, features, tmp_path, monkeypatch) == 2
    assert f"{store}: field 'regions': NaN or infinite value at image 3" in _error(capsys)
    assert not list((tmp_path / "models" / "vsrn_all").glob("*.pt"))


@pytest.mark.parametrize("ablation", FAMILIES)
def test_a_store_of_another_region_size_than_the_checkpoint_stops_evaluate(
    pipeline, one_epoch, tmp_path, capsys, ablation
):
    features, store = _features_with(one_epoch[0], tmp_path, "ctc/dev", _wider)
    dim = pipeline[1].synthetic.region_dim
    assert _evaluate_in(one_epoch, features, ablation, tmp_path / "eval") == 2
    checkpoint = one_epoch[1] / "models" / ablation / "best.pt"
    assert f"{store}: region size {dim + 4}, but checkpoint {checkpoint} has {dim}" in _error(capsys)
    assert not (tmp_path / "eval").exists()


def test_a_store_of_another_region_size_than_the_checkpoint_stops_headroom(pipeline, one_epoch, tmp_path, capsys):
    features, store = _features_with(one_epoch[0], tmp_path, "ctc/val", _wider)
    dim = pipeline[1].synthetic.region_dim
    assert _headroom_in(one_epoch, features, tmp_path / "headroom") == 2
    checkpoint = one_epoch[1] / "models" / "vsrn_all" / "best.pt"
    assert f"{store}: region size {dim + 4}, but checkpoint {checkpoint} has {dim}" in _error(capsys)
    assert not (tmp_path / "headroom").exists()


def test_a_validation_store_of_another_region_size_stops_training(pipeline, one_epoch, tmp_path, capsys, monkeypatch):
    root = one_epoch[0]
    features, store = _features_with(root, tmp_path, "ctc/val", _wider)
    dim = pipeline[1].synthetic.region_dim
    assert _train_in(one_epoch, features, tmp_path, monkeypatch) == 2
    assert f"{store}: region size {dim + 4}, but the training store {root / 'trainset.h5'} has {dim}" in _error(capsys)
    assert not list((tmp_path / "models" / "vsrn_all").glob("*.pt"))
