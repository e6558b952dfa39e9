"""A shared tracking server for a team: `mlflow server` with a SQL backend (SQLite here, PostgreSQL in the README) and
an artifact root it serves, on 127.0.0.1. Two training stages run at the same time against it through
`MLFLOW_TRACKING_URI`; both runs, their metrics and their artifacts are read back over its REST API. The server is
stopped by its own process id (`tests.helpers.mlflow_server.serving`)."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.parse
import urllib.request

import pytest

from tests.helpers.mlflow_server import get, post, serving
from tests.helpers.stages import train_argv

ABLATIONS = ("vsrn_all", "starnet_all")


@pytest.mark.slow
def test_two_trainings_at_once_log_to_a_shared_server(pipeline, tmp_path):
    root, params = pipeline
    backend, artifacts = f"sqlite:///{tmp_path}/server.db", tmp_path / "artifacts"
    command = ["server", "--backend-store-uri", backend, "--artifacts-destination", str(artifacts)]
    with serving(command, tmp_path, tmp_path / "server.log") as base:
        env = {**os.environ, "MLFLOW_TRACKING_URI": base}
        trainings = [
            subprocess.Popen(
                [sys.executable, "-m", "stacmr", *train_argv(root, tmp_path / name, name)],
                env=env,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name in ABLATIONS
        ]
        for training in trainings:
            _, err = training.communicate(timeout=600)
            assert training.returncode == 0, err[-3000:]
            assert "MLflow tracking at" not in err, err[-3000:]  # tracking's one warning on any server error

        api = f"{base}/api/2.0/mlflow"
        experiment = get(f"{api}/experiments/get-by-name?experiment_name=stacmr")["experiment"]
        runs = post(f"{api}/runs/search", {"experiment_ids": [experiment["experiment_id"]]})["runs"]
        by_ablation = {{t["key"]: t["value"] for t in r["data"]["tags"]}["ablation"]: r for r in runs}
        assert len(runs) == 2 and set(by_ablation) == set(ABLATIONS)
        for name, run in by_ablation.items():
            info = run["info"]
            assert info["status"] == "FINISHED"
            query = urllib.parse.urlencode({"run_id": info["run_id"], "metric_key": "val_rsum"})
            history = get(f"{api}/metrics/get-history?{query}")["metrics"]
            assert [m["step"] for m in history] == list(range(1, params.train.epochs + 1))
            listed = get(f"{api}/artifacts/list?{urllib.parse.urlencode({'run_id': info['run_id']})}")
            assert {f["path"] for f in listed["files"]} == {f"{name}.csv", f"{name}.json"}
            for path in (tmp_path / name / "plots" / f"{name}.csv", tmp_path / name / "metrics" / f"{name}.json"):
                query = urllib.parse.urlencode({"path": path.name, "run_uuid": info["run_id"]})
                with urllib.request.urlopen(f"{base}/get-artifact?{query}", timeout=10) as response:
                    assert response.read() == path.read_bytes(), path.name
        assert any(artifacts.rglob(f"{ABLATIONS[0]}.csv"))  # the server keeps the artifacts under its root
