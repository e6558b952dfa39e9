"""The one training loop through the `train` stage: smoke runs of each family, determinism, resume after a kill,
tracking (the run tagged with its checkpoint's sha256), a seed replicate (`--seed`), and tracking failures that must
not stop training."""

from __future__ import annotations

import csv
import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from stacmr.checksum import sha256_file
from stacmr.cli import main
from stacmr.tracking import CHECKPOINT_TAG
from stacmr.training.checkpoint import CHECKPOINT_VERSION, BestCheckpoint, LastCheckpoint, load_checkpoint
from stacmr.training.loop import val_metrics
from tests.helpers.stages import train_argv


@pytest.fixture
def store_uri(tmp_path, monkeypatch) -> str:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def _states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("ablation", ["vsrn_all", "starnet_all", "starnet_ctc", "vsrn_f30k"])
def test_one_run_per_family_and_data(pipeline, tmp_path, store_uri, ablation):
    root, params = pipeline
    assert main(train_argv(root, tmp_path, ablation)) == 0
    best = load_checkpoint(tmp_path / "models" / ablation / "best.pt", BestCheckpoint)
    last = load_checkpoint(tmp_path / "models" / ablation / "last.pt", LastCheckpoint)
    assert last.epoch == params.train.epochs and best.spec.family == params.ablations[ablation].family
    assert best.val == val_metrics(last.history[best.epoch - 1])
    rows = list(csv.DictReader((tmp_path / "plots" / f"{ablation}.csv").open()))
    assert [int(r["epoch"]) for r in rows] == list(range(1, params.train.epochs + 1))
    metrics = json.loads((tmp_path / "metrics" / f"{ablation}.json").read_text())
    for key in ("i2t_r1", "i2t_r5", "t2i_r1", "t2i_r5", "rsum", "i2t_medr"):
        assert key in metrics and key in metrics["explicit"]  # the evaluate stage's layout
    assert not [key for key in metrics if key.startswith("explicit_")]
    assert 0 <= metrics["i2t_r1"] <= metrics["i2t_r5"] <= metrics["i2t_r10"] <= 100

    from mlflow.tracking import MlflowClient

    client = MlflowClient(store_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("stacmr").experiment_id])
    seed = params.train_params(ablation).seed
    assert run.info.status == "FINISHED" and run.info.run_name == f"{ablation} s{seed}"
    assert run.data.tags["family"] == params.ablations[ablation].family
    assert run.data.tags[CHECKPOINT_TAG] == sha256_file(tmp_path / "models" / ablation / "best.pt")
    assert run.data.params["train.seed"] == str(params.train.seed)
    history = client.get_metric_history(run.info.run_id, "val_rsum")
    assert [m.step for m in history] == list(range(1, params.train.epochs + 1))


def test_seed_flag_trains_a_replicate(pipeline, tmp_path, store_uri, capsys):
    root, params = pipeline
    assert params.train_params("vsrn_all").seed != 3
    assert main([*train_argv(root, tmp_path, "vsrn_all"), "--seed", "3"]) == 0
    best = load_checkpoint(tmp_path / "models" / "vsrn_all" / "best.pt", BestCheckpoint)
    assert best.spec.seed == 3  # the checkpoint records the seed it was trained with

    from mlflow.tracking import MlflowClient

    client = MlflowClient(store_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("stacmr").experiment_id])
    assert run.info.run_name == "vsrn_all s3"
    assert run.data.tags["seed"] == "3" and run.data.params["train.seed"] == "3"

    assert main([*train_argv(root, tmp_path, "vsrn_all"), "--seed", "-1"]) == 2
    assert "--seed -1: must be >= 0" in capsys.readouterr().err


def test_two_runs_are_identical(pipeline, tmp_path, store_uri):
    root, _ = pipeline
    for name in ("a", "b"):
        assert main(train_argv(root, tmp_path / name, "starnet_all")) == 0
    a = load_checkpoint(tmp_path / "a/models/starnet_all/last.pt", LastCheckpoint)
    b = load_checkpoint(tmp_path / "b/models/starnet_all/last.pt", LastCheckpoint)
    assert _states_equal(a.model, b.model)
    assert a.history == b.history
    for checkpoint in ("best.pt", "last.pt"):  # byte-identical, not only equal tensors (issue #14)
        first, second = (tmp_path / name / "models/starnet_all" / checkpoint for name in ("a", "b"))
        assert first.read_bytes() == second.read_bytes(), checkpoint


def test_resume_after_a_kill_equals_an_uninterrupted_run(pipeline, tmp_path, store_uri, tiny_raw, write_params):
    root, _ = pipeline
    tiny_raw["train"]["epochs"] = 4
    params = write_params(tiny_raw)
    assert main(train_argv(root, tmp_path / "whole", "starnet_all", params)) == 0

    argv = [sys.executable, "-m", "stacmr", *train_argv(root, tmp_path / "cut", "starnet_all", params), "--resume"]
    last = tmp_path / "cut/models/starnet_all/last.pt"
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while not last.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # somewhere in epoch 2, after the first checkpoint
    proc.wait()
    killed_at = load_checkpoint(last, LastCheckpoint).epoch
    assert killed_at < 4, "the run finished before it could be killed"
    assert main([*train_argv(root, tmp_path / "cut", "starnet_all", params), "--resume"]) == 0

    whole = load_checkpoint(tmp_path / "whole/models/starnet_all/last.pt", LastCheckpoint)
    cut = load_checkpoint(last, LastCheckpoint)
    assert _states_equal(whole.model, cut.model)
    assert whole.history == cut.history
    best_whole = load_checkpoint(tmp_path / "whole/models/starnet_all/best.pt", BestCheckpoint)
    best_cut = load_checkpoint(tmp_path / "cut/models/starnet_all/best.pt", BestCheckpoint)
    assert best_whole.epoch == best_cut.epoch and _states_equal(best_whole.model, best_cut.model)


def test_resume_ignores_a_checkpoint_of_another_configuration(pipeline, tmp_path, store_uri, tiny_raw, write_params):
    root, _ = pipeline
    assert main(train_argv(root, tmp_path, "vsrn_all")) == 0
    tiny_raw["train"]["lr"] = 1e-3
    assert main([*train_argv(root, tmp_path, "vsrn_all", write_params(tiny_raw)), "--resume"]) == 0
    fresh = tmp_path / "fresh"
    assert main(train_argv(root, fresh, "vsrn_all", write_params(tiny_raw))) == 0
    assert _states_equal(
        load_checkpoint(tmp_path / "models/vsrn_all/last.pt", LastCheckpoint).model,
        load_checkpoint(fresh / "models/vsrn_all/last.pt", LastCheckpoint).model,
    )


def test_resume_ignores_a_checkpoint_of_another_version(pipeline, tmp_path, store_uri, caplog):
    """A last.pt of another checkpoint version (DVC keeps the folder between runs) is not resumed: the run trains
    afresh, to the same bytes."""
    root, _ = pipeline
    assert main(train_argv(root, tmp_path, "vsrn_all")) == 0
    last = tmp_path / "models/vsrn_all/last.pt"
    trained = last.read_bytes()
    torch.save({**torch.load(last, weights_only=True), "checkpoint_version": 1}, last)
    with caplog.at_level(logging.INFO, logger="stacmr"):
        assert main([*train_argv(root, tmp_path, "vsrn_all"), "--resume"]) == 0
    assert f"{last}: checkpoint version 1, this stacmr reads {CHECKPOINT_VERSION}; training from scratch" in caplog.text
    assert last.read_bytes() == trained


def test_training_survives_an_unreachable_tracking_store(pipeline, tmp_path, monkeypatch, caplog):
    root, _ = pipeline
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    assert main(train_argv(root, tmp_path, "vsrn_all")) == 0
    assert (tmp_path / "metrics" / "vsrn_all.json").exists()
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "127.0.0.1:9" in r.getMessage()]
    assert len(warnings) == 1


def test_unknown_ablation_is_refused(pipeline, tmp_path, capsys):
    root, _ = pipeline
    assert main(train_argv(root, tmp_path, "starnet_al")) == 2
    assert "--ablation 'starnet_al': not in params.yaml ablations" in capsys.readouterr().err
