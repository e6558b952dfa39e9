"""The `evaluate` stage: a model rebuilt from its checkpoint alone, metrics with CIs and the explicit subset, ranks
saved, and the metrics mirrored into the ablation's MLflow training run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stacmr.cli import main
from stacmr.evaluation.metrics import RECALL_KEYS, summarize
from tests.test_training import _argv


def _evaluate(root, out, ablation, split, params):
    return main([
        "evaluate", "--params", str(params), "--ablation", ablation, "--split", split,
        "--neighbours", str(root / "neighbours"),
        "--models", str(out / "models" / ablation), "--features", str(root / "features"),
        "--metrics", str(out / "eval" / ablation / f"{split}.json"), "--ranks", str(out / "ranks" / f"{split}.npz"),
    ])  # fmt: skip


@pytest.fixture
def trained(pipeline, tmp_path, monkeypatch, tiny_raw, write_params):
    root, _ = pipeline
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    tiny_raw["evaluate"]["splits"] = ["dev", "test", "val"]
    params = write_params(tiny_raw)
    assert main(_argv(root, tmp_path, "starnet_all", params)) == 0
    return root, tmp_path, params, uri


def test_evaluate_writes_metrics_cis_ranks_and_mirrors_to_mlflow(trained):
    root, out, params, uri = trained
    for split in ("dev", "test"):
        assert _evaluate(root, out, "starnet_all", split, params) == 0
        metrics = json.loads((out / "eval" / "starnet_all" / f"{split}.json").read_text())
        for key in (*RECALL_KEYS, "rsum", "i2t_medr", "i2t_meanr", "t2i_medr", "t2i_meanr"):
            assert key in metrics and key in metrics["explicit"]
        for key, (low, high) in metrics["ci95"].items():
            assert low <= metrics[key] <= high
        saved = np.load(out / "ranks" / f"{split}.npz")
        assert summarize(saved["i2t"], saved["t2i"])["rsum"] == pytest.approx(metrics["rsum"])
    dev = np.load(out / "ranks" / "dev.npz")
    assert len(dev["explicit_images"]) == len(dev["i2t"])  # CTC-1K is all explicit

    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("stacmr").experiment_id])
    assert run.data.metrics["test_rsum"] == pytest.approx(metrics["rsum"])
    assert "dev_explicit_i2t_r1" in run.data.metrics
    assert run.info.status == "FINISHED"


def test_checkpoint_alone_reproduces_the_validation_metrics(trained):
    root, out, params, _ = trained
    assert _evaluate(root, out, "starnet_all", "val", params) == 0
    evaluated = json.loads((out / "eval" / "starnet_all" / "val.json").read_text())
    selected = json.loads((out / "metrics" / "starnet_all.json").read_text())
    for key in (*RECALL_KEYS, "rsum", "i2t_meanr"):
        assert evaluated[key] == pytest.approx(selected[key])
        assert evaluated["explicit"][key] == pytest.approx(selected[f"explicit_{key}"])


def test_unknown_split_is_refused(trained, capsys):
    root, out, params, _ = trained
    assert _evaluate(root, out, "starnet_all", "tset", params) == 2
    assert "--split 'tset': not in params.yaml evaluate.splits" in capsys.readouterr().err
