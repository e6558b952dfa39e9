"""MLflow tracking: the store location, flattened params, a run read back, failure without a crash, parallel runs
on a fresh database, the experiment's kind, a run found by its checkpoint's sha256, the provenance tags, and a plain
`mlflow ui` from the repo root serving our runs, its run page drawing a metric chart in headless Chromium. Every test
writes to tmp_path."""

from __future__ import annotations

import logging
import multiprocessing
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

from stacmr.tracking import (
    CHECKPOINT_TAG,
    EXPERIMENT_KIND,
    Tracker,
    checkpoint_run,
    flatten,
    provenance_tags,
    tracking_uri,
)
from stacmr.workspace import repo_root
from tests.helpers.mlflow_server import get, post, serving


@pytest.fixture(autouse=True)
def private_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the default store at tmp_path, so that a test that forgets `uri=` still never writes the user's."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    for name in ("DVC_STAGE", "DVC_EXP_NAME", "DVC_EXP_BASELINE_REV"):
        monkeypatch.delenv(name, raising=False)
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


def _git(repo: Path, *args: str) -> str:
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    return subprocess.run([*git, *args], check=True, capture_output=True, text=True).stdout.strip()


def test_provenance_tags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DVC_STAGE", "train@f30k")
    tags = provenance_tags()
    assert tags["git_commit"] == "unknown" and tags["git_dirty"] == "unknown"
    assert tags["dvc_stage"] == "train@f30k"
    assert tags["torch_version"] == torch.__version__
    assert tags["python_version"] == ".".join(map(str, sys.version_info[:3]))

    _git(tmp_path, "init", "-q")
    (tmp_path / "README.md").write_text("a repo\n")
    _git(tmp_path, "add", "README.md")
    _git(tmp_path, "commit", "-q", "-m", "init")
    monkeypatch.delenv("DVC_STAGE")
    assert provenance_tags() | {"torch_version": "", "python_version": ""} == {
        "git_commit": _git(tmp_path, "rev-parse", "HEAD"),
        "git_dirty": "false",
        "dvc_stage": "-",
        "torch_version": "",
        "python_version": "",
    }
    (tmp_path / "train.py").write_text("")
    assert provenance_tags()["git_dirty"] == "true"


def test_dirty_flag_leaves_out_what_the_pipeline_rewrites(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q")
    for path in ("dvc.lock", "reports/tables/main.csv", "params.yaml", "src/a.py", "src/b.py"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("committed\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "init")
    # what a `dvc repro` of a fresh clone changes: the lock, the reports, outputs, the store and its journal
    rewritten = [
        "dvc.lock",
        "reports/tables/main.csv",
        "reports/figures/new.png",
        "artifacts/models/a/best.pt",
        "dvc_plots/index.html",
        "mlruns/0/meta.yaml",
        "mlflow.db",
        "mlflow.db-journal",
        "mlflow.db.lock",
    ]
    for path in rewritten:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("rewritten\n")
    tags = provenance_tags()
    assert tags["git_dirty"] == "false" and "git_dirty_files" not in tags

    (tmp_path / "params.yaml").write_text("edited\n")
    _git(tmp_path, "mv", "src/b.py", "src/c.py")  # a rename lists its new path once
    (tmp_path / "notes with space.txt").write_text("new\n")
    tags = provenance_tags()
    assert tags["git_dirty"] == "true"
    assert tags["git_dirty_files"] == "notes with space.txt,params.yaml,src/c.py"


def test_dirty_files_are_cut_to_the_tag_length(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q")
    (tmp_path / "README.md").write_text("a repo\n")
    _git(tmp_path, "add", "README.md")
    _git(tmp_path, "commit", "-q", "-m", "init")
    names = [f"{i:03d}-{'x' * 96}.txt" for i in range(120)]  # 120 paths of 104 characters: 12,599 with commas
    for name in names:
        (tmp_path / name).write_text("")
    listed = provenance_tags()["git_dirty_files"]
    assert len(listed) <= MAX_TAG_VAL_LENGTH
    *kept, more = listed.split(",")
    assert kept == names[: len(kept)] and len(kept) >= 70
    assert more == f"… (+{len(names) - len(kept)} more)"


def test_dvc_experiment_tags(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not {"dvc_exp_name", "dvc_exp_baseline_rev"} & set(provenance_tags())  # `dvc repro` sets neither
    monkeypatch.setenv("DVC_EXP_NAME", "ocr-0.15")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "a" * 40)
    tags = provenance_tags()
    assert (tags["dvc_exp_name"], tags["dvc_exp_baseline_rev"]) == ("ocr-0.15", "a" * 40)


def test_the_experiment_opens_as_model_training(private_store: str) -> None:
    kind, value = EXPERIMENT_KIND
    with Tracker("stacmr-new", "train", uri=private_store):
        pass
    client = MlflowClient(tracking_uri=private_store)
    assert client.get_experiment_by_name("stacmr-new").tags[kind] == value
    # an experiment made before the tag existed gets it on its next run
    client.create_experiment("stacmr-old")
    assert kind not in client.get_experiment_by_name("stacmr-old").tags
    with Tracker("stacmr-old", "train", uri=private_store):
        pass
    assert client.get_experiment_by_name("stacmr-old").tags[kind] == value


def _infos(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "stacmr" and r.levelno == logging.INFO]


def _tagged_run(uri: str, name: str, checkpoint: str, experiment: str = "stacmr") -> str:
    with Tracker(experiment, name, uri=uri) as tracker:
        tracker.set_tags({CHECKPOINT_TAG: checkpoint})
    return tracker.run_id


def test_checkpoint_run_is_the_newest_run_of_that_checkpoint(
    tmp_path: Path, private_store: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="stacmr"):
        assert checkpoint_run("a" * 64) is None  # no store yet: none made
    assert not (tmp_path / "mlflow.db").exists()
    assert "no MLflow store" in _infos(caplog)[-1]

    _tagged_run(private_store, "older", "a" * 64)
    time.sleep(0.01)  # MLflow orders by start time in milliseconds
    newer = _tagged_run(private_store, "newer", "a" * 64)
    _tagged_run(private_store, "other", "b" * 64)
    _tagged_run(private_store, "elsewhere", "c" * 64, experiment="stacmr-test")
    assert checkpoint_run("a" * 64) == checkpoint_run("a" * 64, uri=private_store) == newer
    with caplog.at_level(logging.INFO, logger="stacmr"):
        assert checkpoint_run("c" * 64) is None  # only the `stacmr` experiment counts
    assert _infos(caplog)[-1].startswith("no MLflow run of checkpoint cccccccccccc in sqlite:///")


STEPS = 4  # metric steps of the run the UI shows


@pytest.fixture(scope="module")
def mlflow_ui(tmp_path_factory: pytest.TempPathFactory):
    """A plain `mlflow ui` started from a repo root whose store holds one run logged from a subfolder:
    (base URL, experiment id, run id). Stopped by its process group (its workers with it) after the module."""
    tmp = tmp_path_factory.mktemp("ui")
    repo = tmp / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "dvc.yaml").write_text("stages: {}\n")
    (repo / "history.json").write_text("[]")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DVC_ROOT", str(repo))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.chdir(repo / "src")  # a stage run from elsewhere still writes to the repo root's store
        with Tracker("stacmr-ui", "vsrn_all s0") as tracker:
            tracker.log_params({"optim": {"lr": 0.5}})
            tracker.set_tags({"dvc_stage": "train"})
            for step in range(1, STEPS + 1):
                tracker.log_metrics({"rsum": 10.0 * step * step, "loss": 4.0 / step}, step=step)
            tracker.log_artifact(repo / "history.json")
    assert tracker.run_id is not None and (repo / "mlflow.db").exists()
    experiment_id = MlflowClient(tracking_uri=f"sqlite:///{repo}/mlflow.db").get_run(tracker.run_id).info.experiment_id

    with serving(["ui"], repo, tmp / "mlflow-ui.log") as base:
        yield base, experiment_id, tracker.run_id


@pytest.mark.slow
def test_plain_mlflow_ui_from_the_repo_root_shows_the_run(mlflow_ui) -> None:
    base, experiment_id, run_id = mlflow_ui
    api = f"{base}/api/2.0/mlflow"
    experiment = get(f"{api}/experiments/get-by-name?experiment_name=stacmr-ui")["experiment"]
    assert experiment["experiment_id"] == experiment_id
    assert {t["key"]: t["value"] for t in experiment["tags"]}[EXPERIMENT_KIND[0]] == EXPERIMENT_KIND[1]
    (run,) = post(f"{api}/runs/search", {"experiment_ids": [experiment_id]})["runs"]
    assert run["info"]["run_id"] == run_id
    assert run["info"]["status"] == "FINISHED"
    assert {p["key"]: p["value"] for p in run["data"]["params"]} == {"optim.lr": "0.5"}
    assert {m["key"]: (m["value"], m["step"]) for m in run["data"]["metrics"]} == {
        "rsum": (10.0 * STEPS * STEPS, STEPS),
        "loss": (4.0 / STEPS, STEPS),
    }
    assert {t["key"]: t["value"] for t in run["data"]["tags"]}["dvc_stage"] == "train"
    query = urllib.parse.urlencode({"run_id": run_id})
    assert [f["path"] for f in get(f"{api}/artifacts/list?{query}")["files"]] == ["history.json"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="no chromium on PATH (apt-get install -y chromium)")
def test_run_page_draws_the_metric_charts_in_headless_chromium(mlflow_ui, tmp_path: Path) -> None:
    """The run page's "Model metrics" tab, in the model-training view, draws one line of `STEPS` points per metric.

    Its chart cards render (and fetch the metric history) only once an IntersectionObserver reports them in view,
    and Chromium delivers that from a rendering frame: under `--virtual-time-budget` alone, headless Chromium can
    run out the budget before such a frame, dumping cards with no chart (about half the time with mlflow 3.17.2,
    Chromium 156). `--run-all-compositor-stages-before-draw` makes it produce the frames."""
    base, experiment_id, run_id = mlflow_ui
    # the UI takes its view from the address (else the browser's last choice, else GenAI), not from the
    # experiment's kind tag (mlflow 3.17.2)
    page = f"{base}/#/experiments/{experiment_id}/runs/{run_id}/model-metrics?workflowType=machine_learning"
    browser = [
        "chromium",
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--run-all-compositor-stages-before-draw",
        "--virtual-time-budget=30000",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run([*browser, "--dump-dom", page], capture_output=True, text=True, timeout=120, check=True).stdout
    assert "Model registry" in dom  # the model-training view's sidebar; the GenAI view has none
    lines = re.findall(r'<path class="js-line" d="([^"]+)"', dom)
    assert len(lines) >= 2, "no metric chart drawn"
    assert {line.count("L") + 1 for line in lines} == {STEPS}  # each line joins the run's steps
    assert "loss" in dom and "rsum" in dom
    shot = tmp_path / "mlflow_run.png"
    subprocess.run([*browser, f"--screenshot={shot}", page], capture_output=True, timeout=120, check=True)
    pixels = matplotlib.image.imread(shot)[..., :3]
    line_colour = np.abs(pixels - np.array([34, 114, 180]) / 255).max(axis=2) < 0.08  # MLflow's first run colour
    # the page's own buttons and tabs have about 450 such pixels, the two charts' lines, points and legends 750 more
    assert line_colour.sum() > 900, "the screenshot shows no chart"
