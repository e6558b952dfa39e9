"""The grid on DVC's queue: a tiny copy of the project queues one experiment per ablation (`dvc exp run --queue`) and
runs them on two workers at once (`dvc queue start -j 2`); both succeed, both ran at the same time, each
left one complete MLflow run in the checkout's store (created before the workers start) without a database error,
and `dvc exp show` lists both. About two minutes on two cores."""

from __future__ import annotations

import json

import pytest
import yaml
from mlflow import MlflowClient

from tests.helpers import REPO
from tests.helpers.project import GIT, make_project, run, run_queue


@pytest.mark.slow
def test_two_queue_workers_train_two_ablations_at_once(tmp_path):
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    root = tmp_path / "project"
    env = make_project(root)
    params = yaml.safe_load((root / "params.yaml").read_text())
    ablations = list(params["ablations"])
    assert len(ablations) == 2
    run(["dvc", "repro", "neighbours"], root, env)  # what both need, once: the experiments take it from the cache
    run([*GIT, "commit", "--quiet", "-am", "upstream"], root, env)

    statuses, most_active = run_queue(root, env, {name: [f"train@{name}"] for name in ablations}, jobs=2)
    assert statuses == dict.fromkeys(ablations, "Success")
    assert most_active == 2  # both experiments ran at the same time, one on each worker
    for name in ablations:
        log = run(["dvc", "queue", "logs", name], root, env)
        assert "MLflow tracking at" not in log, log[-2000:]  # tracking's one warning on any store error
        assert f"Running stage 'train@{name}'" in log

    shown = json.loads(run(["dvc", "exp", "show", "--json"], root, env))
    names = {rev["name"] for entry in shown for exp in entry.get("experiments") or [] for rev in exp["revs"]}
    assert set(ablations) <= names

    client = MlflowClient(f"sqlite:///{root}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("stacmr").experiment_id])
    by_experiment = {r.data.tags.get("dvc_exp_name"): r for r in runs}
    assert len(runs) == 2 and set(by_experiment) == set(ablations)
    epochs = params["train"]["epochs"]
    for name, mlflow_run in by_experiment.items():
        assert mlflow_run.info.status == "FINISHED" and mlflow_run.data.tags["ablation"] == name
        history = client.get_metric_history(mlflow_run.info.run_id, "val_rsum")
        assert [m.step for m in history] == list(range(1, epochs + 1))
        artifacts = {f.path for f in client.list_artifacts(mlflow_run.info.run_id)}
        assert artifacts == {f"{name}.csv", f"{name}.json"}
