"""The scene-text stages end to end on the tiny world: neighbours (clusters that find the true groups), training with
neighbour batches and the shared word space, evaluation with the "does it read?" diagnostics, and the headroom
control."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from stacmr.cli import main
from stacmr.features.neighbours import load_neighbours, load_true_groups, neighbours_file
from stacmr.training.checkpoint import BestCheckpoint, load_checkpoint
from tests.helpers.stages import evaluate_argv, train_argv

ABLATION = "chan_st_ws_nb"


def test_neighbours_stage_writes_every_store_and_agrees_with_the_true_groups(pipeline):
    root, params = pipeline
    out = root / "neighbours"
    for name in ("ctc/train", "ctc/val", "ctc/dev", "ctc/test", "f30k/train", "textcaps/train", "trainset"):
        saved = load_neighbours(neighbours_file(out, name))
        assert saved["neighbours"].shape[1] == params.neighbours.k
        assert np.bincount(saved["cluster"]).max() <= params.neighbours.cluster_size
    assert (
        load_true_groups(out, "ctc/dev")["true"].shape
        == load_neighbours(neighbours_file(out, "ctc/dev"))["cluster"].shape
    )
    assert load_true_groups(out, "f30k/train") == {}  # no groups in that source: the diagnostics use visual ones
    agreement = json.loads((out / "agreement.json").read_text())
    assert set(agreement) == {"ctc/train", "ctc/val", "ctc/dev", "ctc/test"}
    # tiny world (6 regions of 16 dims): still far above chance ((g - 1) / (N - 1) ≈ 0.05)
    assert agreement["ctc/train"]["neighbour_precision"] > 0.5


@pytest.fixture(scope="module")
def trained(pipeline, tmp_path_factory):
    root, _ = pipeline
    out = tmp_path_factory.mktemp("scene_text")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{out}/mlflow.db")
        assert main(train_argv(root, out, ABLATION)) == 0
        assert main(train_argv(root, out / "again", ABLATION)) == 0
    return root, out


def test_training_with_neighbour_batches_and_the_shared_word_space_is_recorded_and_deterministic(trained):
    _, out = trained
    state = load_checkpoint(out / "models" / ABLATION / "best.pt", BestCheckpoint)
    spec = state.spec
    assert spec.train["sampler"] == "visual_neighbours"
    assert spec.word_init["source"] == "ocr_fasttext" and len(spec.word_init["components"]) == 8
    assert len(spec.data["neighbours"]) == 64  # the clusters' sha256: other clusters, another run
    again = load_checkpoint(out / "again" / "models" / ABLATION / "best.pt", BestCheckpoint)
    assert all(torch.equal(state.model[k], again.model[k]) for k in state.model)
    assert (out / "models" / ABLATION / "best.pt").read_bytes() == (
        out / "again" / "models" / ABLATION / "best.pt"
    ).read_bytes()


def test_evaluate_reports_the_reading_diagnostics_for_visual_and_true_groups(trained):
    root, out = trained
    metrics = out / "eval.json"
    assert (
        main(
            evaluate_argv(
                root / "params.yaml", ABLATION, "dev", root, out / "models" / ABLATION, metrics, out / "ranks.npz"
            )
        )
        == 0
    )
    reading = json.loads(metrics.read_text())["reading"]
    assert set(reading) == {"visual", "true"}
    for diag in reading.values():
        assert diag["within_group_queries"] > 0 and 0 <= diag["within_group"] <= 1
        assert 0 < diag["within_group_chance"] <= 0.5 and 0 < diag["ocr_swap_chance"] <= 0.5


def test_headroom_chooses_its_weight_on_val_and_evaluates_every_split(trained):
    root, out = trained
    argv = ["headroom", "--params", str(root / "params.yaml"), "--models", str(out / "models")]
    argv += ["--features", str(root / "features"), "--metrics", str(out / "headroom"), "--ranks", str(out / "hr")]
    # the control fuses report.baseline's similarity: train it under that name
    baseline = "vsrn_all"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{out}/mlflow.db")
        assert main(train_argv(root, out, baseline)) == 0
    assert main(argv) == 0
    for split in ("dev", "test"):
        metrics = json.loads((out / "headroom" / f"{split}.json").read_text())
        assert metrics["baseline"] == baseline and metrics["validation"] == "ctc/val"
        for variant in ("exact", "fuzzy"):
            control = metrics[variant]
            assert control["weight"] in (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
            assert set(control["val_rsum_by_weight"]) == {"0", "0.01", "0.02", "0.05", "0.1", "0.2", "0.5", "1"}
            low, high = control["ci95"]["rsum"]
            assert low <= control["rsum"] <= high
        saved = np.load(out / "hr" / f"{split}.npz")
        assert set(saved.files) == {"exact_i2t", "exact_t2i", "fuzzy_i2t", "fuzzy_t2i"}
    dev = json.loads((out / "headroom" / "dev.json").read_text())
    # CTC-1K is the explicit split: every image's captions name its text, so reading it must help there
    assert dev["exact"]["weight"] > 0 or dev["fuzzy"]["weight"] > 0
