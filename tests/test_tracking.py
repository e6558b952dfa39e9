"""MLflow tracking: the store location, flattened params, a run read back, failure without a crash, parallel runs
on a fresh database, and a plain `mlflow ui` from the repo root serving our runs. Every test writes to tmp_path."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient

from stacmr.tracking import Tracker, flatten, provenance_tags, repo_root, tracking_uri


@pytest.fixture(autouse=True)
def private_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the default store at tmp_path, so that a test that forgets `uri=` still never writes the user's."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.delenv("DVC_STAGE", raising=False)
    return uri


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "stacmr" and r.levelno == logging.WARNING]


def test_repo_root_prefers_dvc_root_then_nearest_marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "outer" / "inner" / "deep").mkdir(parents=True)
    (tmp_path / "outer" / ".git").mkdir()
    (tmp_path / "outer" / "inner" / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(tmp_path / "outer" / "inner" / "deep")
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "outer"))
    assert repo_root() == (tmp_path / "outer").resolve()

    monkeypatch.delenv("DVC_ROOT")
    assert repo_root() == (tmp_path / "outer" / "inner").resolve()
    (tmp_path / "outer" / "inner" / "dvc.yaml").unlink()
    assert repo_root() == (tmp_path / "outer").resolve()
    (tmp_path / "outer" / ".git").rmdir()
    if not any((d / m).exists() for d in tmp_path.resolve().parents for m in ("dvc.yaml", ".git")):
        assert repo_root() == Path.cwd().resolve()


def test_tracking_uri_is_anchored_to_the_repo_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert tracking_uri() == "http://tracking.example:5000"

    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert tracking_uri().startswith("sqlite:////")


def test_flatten_nested_params() -> None:
    params = {
        "data": {"source": "synthetic", "captions_per_image": 5},
        "trainset": {"sources": ("f30k/train", "ctc/train"), "chunk_images": 7},
        "model": {"layers": [[1, 2], [3]], "dropout": 0.1, "pretrained": None, "frozen": True, "extra": {}},
    }
    assert flatten(params) == {
        "data.source": "synthetic",
        "data.captions_per_image": "5",
        "trainset.sources": "[f30k/train, ctc/train]",
        "trainset.chunk_images": "7",
        "model.layers": "[[1, 2], [3]]",
        "model.dropout": "0.1",
        "model.pretrained": "None",
        "model.frozen": "True",
        "model.extra": "{}",
    }
    assert flatten({"lr": 0.5}, prefix="optim") == {"optim.lr": "0.5"}


def test_run_is_read_back(tmp_path: Path, private_store: str, caplog: pytest.LogCaptureFixture) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("lr: 0.5\n")
    (tmp_path / "history").mkdir()
    (tmp_path / "history" / "epochs.json").write_text("[]")
    with Tracker("stacmr-test", "train", uri=private_store) as tracker:
        tracker.log_params({"optim": {"lr": 0.5, "betas": (0.9, 0.999)}, "note": "x" * 7000})
        tracker.set_tags({"dvc_stage": "train", "seed": "3"})
        for step in range(3):
            tracker.log_metrics({"rsum": 100.0 + step, "loss": 1.0 / (step + 1)}, step=step)
        tracker.log_artifact(config)
        tracker.log_artifact(config, artifact_path="configs")
        tracker.log_artifact(tmp_path / "history")
    assert not _warnings(caplog)

    client = MlflowClient(tracking_uri=private_store)
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "train"
    assert client.get_experiment(run.info.experiment_id).name == "stacmr-test"
    assert run.data.params["optim.lr"] == "0.5"
    assert run.data.params["optim.betas"] == "[0.9, 0.999]"
    assert run.data.params["note"] == "x" * 6000  # MLflow's limit
    assert run.data.tags["dvc_stage"] == "train" and run.data.tags["seed"] == "3"
    history = client.get_metric_history(tracker.run_id, "rsum")
    assert sorted((m.step, m.value) for m in history) == [(0, 100.0), (1, 101.0), (2, 102.0)]
    assert {a.path for a in client.list_artifacts(tracker.run_id)} == {"config.yaml", "configs", "history"}
    assert [a.path for a in client.list_artifacts(tracker.run_id, "history")] == ["history/epochs.json"]
    assert [a.path for a in client.list_artifacts(tracker.run_id, "configs")] == ["configs/config.yaml"]
    # Artifacts sit beside the database, not in the cwd's mlruns/.
    assert run.info.artifact_uri.startswith((tmp_path.resolve() / "mlruns").as_uri() + "/")


def test_exception_marks_the_run_failed_and_propagates(private_store: str) -> None:
    with pytest.raises(RuntimeError, match="diverged"), Tracker("stacmr-test", "train", uri=private_store) as tracker:
        tracker.log_metrics({"loss": float("nan")}, step=0)
        raise RuntimeError("diverged")
    assert MlflowClient(tracking_uri=private_store).get_run(tracker.run_id).info.status == "FAILED"


@pytest.mark.parametrize("uri", ["http://127.0.0.1:9", "nosuchscheme://nowhere"])
def test_unusable_store_warns_once_and_training_goes_on(
    uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    (tmp_path / "history.json").write_text("{}")
    with caplog.at_level(logging.WARNING), Tracker("stacmr-test", "train", uri=uri) as tracker:
        tracker.log_params({"optim": {"lr": 0.5}})
        tracker.set_tags(provenance_tags())
        tracker.log_metrics({"rsum": 1.0}, step=0)
        tracker.log_artifact(tmp_path / "history.json")
    assert tracker.run_id is None
    (warning,) = _warnings(caplog)
    assert uri in warning.getMessage() and "untracked" in warning.getMessage()

    # The user's own error still propagates, and tracking stays silent about it.
    with pytest.raises(ValueError, match="bad batch"), Tracker("stacmr-test", "train", uri=uri):
        raise ValueError("bad batch")
    assert len(_warnings(caplog)) == 2  # one per Tracker


def test_failure_mid_run_disables_the_rest(
    tmp_path: Path, private_store: str, caplog: pytest.LogCaptureFixture
) -> None:
    with Tracker("stacmr-test", "train", uri=private_store) as tracker:
        tracker.log_metrics({"rsum": 1.0}, step=0)
        tracker.log_artifact(tmp_path / "missing.pt")
        tracker.log_metrics({"rsum": 2.0}, step=1)
    (warning,) = _warnings(caplog)
    assert "FileNotFoundError" in warning.getMessage()
    assert tracker.run_id is not None
    history = MlflowClient(tracking_uri=private_store).get_metric_history(tracker.run_id, "rsum")
    assert [m.step for m in history] == [0]


def test_warning_hides_a_password_in_the_uri(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with Tracker("stacmr-test", "train", uri="http://alice:s3cret@127.0.0.1:9"):
        pass
    (warning,) = _warnings(caplog)
    assert "s3cret" not in warning.getMessage() and "http://alice:***@127.0.0.1:9" in warning.getMessage()


def _log_one_run(uri: str, barrier, results) -> None:
    barrier.wait(timeout=120)
    with Tracker("stacmr-race", "worker", uri=uri) as tracker:
        tracker.log_metrics({"rsum": 1.0}, step=0)
    results.put(tracker.run_id)


def test_parallel_runs_on_a_fresh_database(tmp_path: Path, private_store: str) -> None:
    # Without the lock this race fails every time: both processes migrate the new schema at once.
    assert not (tmp_path / "mlflow.db").exists()
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    workers = [ctx.Process(target=_log_one_run, args=(private_store, barrier, results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    run_ids = [results.get(timeout=180) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    assert None not in run_ids and len(set(run_ids)) == 2
    client = MlflowClient(tracking_uri=private_store)
    (experiment,) = [e for e in client.search_experiments() if e.name == "stacmr-race"]
    runs = client.search_runs([experiment.experiment_id])
    assert {r.info.run_id for r in runs} == set(run_ids)
    assert {r.info.status for r in runs} == {"FINISHED"}


def test_provenance_tags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DVC_STAGE", "train@f30k")
    tags = provenance_tags()
    assert tags["git_commit"] == "unknown" and tags["git_dirty"] == "unknown"
    assert tags["dvc_stage"] == "train@f30k"
    assert tags["torch_version"] == torch.__version__
    assert tags["python_version"] == ".".join(map(str, sys.version_info[:3]))

    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "README.md").write_text("a repo\n")
    subprocess.run([*git, "add", "README.md"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    monkeypatch.delenv("DVC_STAGE")
    assert provenance_tags() | {"torch_version": "", "python_version": ""} == {
        "git_commit": head,
        "git_dirty": "false",
        "dvc_stage": "-",
        "torch_version": "",
        "python_version": "",
    }
    (tmp_path / "train.py").write_text("")
    assert provenance_tags()["git_dirty"] == "true"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


@pytest.mark.slow
def test_plain_mlflow_ui_from_the_repo_root_shows_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "dvc.yaml").write_text("stages: {}\n")
    (repo / "history.json").write_text("[]")
    monkeypatch.setenv("DVC_ROOT", str(repo))
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.chdir(repo / "src")  # a stage run from elsewhere still writes to the repo root's store
    with Tracker("stacmr-ui", "train") as tracker:
        tracker.log_params({"optim": {"lr": 0.5}})
        tracker.set_tags({"dvc_stage": "train"})
        for step in range(2):
            tracker.log_metrics({"rsum": 10.0 * (step + 1)}, step=step)
        tracker.log_artifact(repo / "history.json")
    assert tracker.run_id is not None and (repo / "mlflow.db").exists()

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # no job runner (huey) processes for a read-only check
    log_path = tmp_path / "mlflow-ui.log"
    with open(log_path, "wb") as server_log:
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "ui", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            cwd=repo,
            env=env,
            stdout=server_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, f"mlflow ui exited:\n{log_path.read_text()}"
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"mlflow ui did not come up in 60 s:\n{log_path.read_text()}"
            time.sleep(0.5)

        api = f"{base}/api/2.0/mlflow"
        experiment = _get(f"{api}/experiments/get-by-name?experiment_name=stacmr-ui")["experiment"]
        (run,) = _post(f"{api}/runs/search", {"experiment_ids": [experiment["experiment_id"]]})["runs"]
        assert run["info"]["run_id"] == tracker.run_id
        assert run["info"]["status"] == "FINISHED"
        assert {p["key"]: p["value"] for p in run["data"]["params"]} == {"optim.lr": "0.5"}
        assert {m["key"]: (m["value"], m["step"]) for m in run["data"]["metrics"]} == {"rsum": (20.0, 1)}
        assert {t["key"]: t["value"] for t in run["data"]["tags"]}["dvc_stage"] == "train"
        query = urllib.parse.urlencode({"run_id": tracker.run_id})
        assert [f["path"] for f in _get(f"{api}/artifacts/list?{query}")["files"]] == ["history.json"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
