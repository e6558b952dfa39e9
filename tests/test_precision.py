"""`train.precision` (`stacmr.models.precision`): the TF32 flags each setting sets and restores, bf16's autocast, the
loop's fp32 path unchanged (tf32 on a CPU too), an epoch of every family under bf16 autocast, its evaluation, the
precision in a run's identity (run spec, MLflow params), and a bf16 run through the train and evaluate stages."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import typing

import numpy as np
import pytest
import torch

from stacmr.cli import main
from stacmr.evaluation.encode import encode_store
from stacmr.evaluation.evaluate import Budget, evaluate_split
from stacmr.features.store import FeatureStore
from stacmr.features.vocab import Vocabulary
from stacmr.losses import hinge_triplet
from stacmr.models import FAMILIES, build_model, check_models
from stacmr.models.precision import autocast, computing, float32_mode, run_precision
from stacmr.params import TrainParams, params_dict, parse_params
from stacmr.tokens import SPECIALS
from stacmr.tracking import flatten
from stacmr.training.batches import epoch_order, training_batches
from stacmr.training.checkpoint import BestCheckpoint, RunSpec, data_dims, load_checkpoint
from stacmr.training.loop import Learner, TrainingData, train_epoch
from stacmr.training.run import run_params, run_spec
from tests.helpers.params import shrink
from tests.helpers.stages import evaluate_argv, train_argv
from tests.helpers.store import make_store

CPU = torch.device("cpu")
PRECISIONS = typing.get_args(typing.get_type_hints(TrainParams)["precision"])
BUDGET = Budget(1 << 20, 1 << 20, 1 << 20)


def _tf32_flags() -> tuple[bool, bool]:
    return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32


@pytest.fixture
def flags():
    """The TF32 flags as a test found them, restored after it."""
    saved = _tf32_flags()
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.parametrize(("precision", "allowed"), [("fp32", False), ("tf32", True), ("bf16", False)])
def test_a_precision_sets_both_tf32_flags_inside_its_scope_and_restores_them(flags, precision, allowed):
    for before in ((True, True), (False, False), (False, True)):  # (False, True): PyTorch's defaults
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
        with float32_mode(precision):
            assert _tf32_flags() == (allowed, allowed)
        assert _tf32_flags() == before
    with pytest.raises(RuntimeError, match="inside"), float32_mode(precision):
        raise RuntimeError("inside")
    assert _tf32_flags() == before


def test_every_setting_of_the_schema_has_a_meaning(flags):
    assert PRECISIONS == ("fp32", "tf32", "bf16")
    for precision in PRECISIONS:
        with computing(precision, CPU):
            x = torch.ones(2, 2) @ torch.ones(2, 2)
            assert torch.is_autocast_enabled("cpu") == (precision == "bf16")
        assert x.dtype == (torch.bfloat16 if precision == "bf16" else torch.float32)
        assert not torch.is_autocast_enabled("cpu")
    with autocast("bf16", CPU):
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16


def test_a_run_recorded_before_the_setting_computed_in_fp32():
    assert run_precision({"seed": 0}) == "fp32"
    assert run_precision({"seed": 0, "precision": "bf16"}) == "bf16"


@pytest.fixture(scope="module")
def tiny(repo_params, tmp_path_factory):
    """(params of the shrunk config, a store of five images, its vocabulary)."""
    params = check_models(parse_params(shrink(repo_params)))
    path = make_store(tmp_path_factory.mktemp("precision") / "store.h5")
    with FeatureStore(path) as store:
        yield params, store, Vocabulary([*SPECIALS, "cap", "0", "1", "2", "3", "4"])  # its captions: "cap 3.1"


def _learner(tiny, family: str, precision: str) -> tuple[Learner, TrainParams, TrainingData]:
    params, store, vocab = tiny
    train = dataclasses.replace(params.train_params("vsrn_all"), batch_size=4, precision=precision)
    config = params.models[family]
    torch.manual_seed(train.seed)
    dims = data_dims(store, vocab)
    model = build_model(family, config, dims)
    spec = RunSpec(family, dataclasses.asdict(config), dims, params_dict(train), {}, {}, "test")
    return Learner.start(spec, model, train, CPU), train, TrainingData(store, store, vocab)


def _epoch(learner: Learner, train: TrainParams, data: TrainingData) -> dict[str, float]:
    with float32_mode(train.precision):  # as `fit` runs an epoch
        return train_epoch(learner, data, train, 0)


def _reference_epoch(learner: Learner, train: TrainParams, data: TrainingData) -> None:
    """The loop's first epoch as it was before the precision setting: plain float32 steps."""
    model, optimizer = learner.model, learner.optimizer
    model.train()
    margin, max_violation = model.hinge(train.margin, train.max_violation)
    hardest = max_violation and train.warmup_epochs == 0
    criterion = functools.partial(hinge_triplet, margin=margin, max_violation=hardest)
    order = epoch_order(len(data.train) * data.train.sizes["C"], train.seed, 0)
    words, characters = train.max_caption_words, model.reads_characters
    batches = training_batches(data.train, data.vocab, train.batch_size, order, words, characters)
    for images, captions in batches:
        losses = model.loss(images, captions, criterion)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
        optimizer.step()
    learner.scheduler.step()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_fp32_and_tf32_train_on_the_cpu_exactly_as_plain_float32(tiny, family):
    reference, train, data = _learner(tiny, family, "fp32")
    assert train.grad_clip > 0
    _reference_epoch(reference, train, data)
    for precision in ("fp32", "tf32"):  # a CPU has no TF32
        learner, train, data = _learner(tiny, family, precision)
        _epoch(learner, train, data)
        state, expected = learner.model.state_dict(), reference.model.state_dict()
        assert all(torch.equal(state[k], expected[k]) for k in expected), (family, precision)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_trains_an_epoch_under_bf16_autocast(tiny, family):
    learner, train, data = _learner(tiny, family, "bf16")
    before = {k: v.clone() for k, v in learner.model.state_dict().items()}
    losses = _epoch(learner, train, data)
    assert losses and all(math.isfinite(v) for v in losses.values()), losses
    after = learner.model.state_dict()
    # float32 master weights and optimiser state, moved by the steps
    assert all(v.dtype == before[k].dtype for k, v in after.items())
    assert all(p.dtype == torch.float32 for p in learner.model.parameters())
    moments = [s["exp_avg"] for s in learner.optimizer.state.values()]
    assert moments and all(m.dtype == torch.float32 and torch.isfinite(m).all() for m in moments)
    assert any(not torch.equal(after[k], before[k]) for k in before)
    assert losses != _epoch(*_learner(tiny, family, "fp32"))  # autocast did compute in bfloat16


@pytest.mark.parametrize("family", ["starnet", "chan_st"])
def test_bf16_evaluation_encodes_under_autocast_and_ranks_float32_scores(tiny, family):
    learner, _, data = _learner(tiny, family, "bf16")
    model, store, vocab = learner.model.eval(), data.val, data.vocab
    with computing("bf16", CPU):
        enc = encode_store(model, store, vocab, 8, CPU)
    if family == "chan_st":  # sets of vectors, kept as tensors
        assert enc.img_emb.emb.dtype == enc.cap_emb.emb.dtype == torch.float32
    else:
        assert enc.img_emb.dtype == enc.cap_emb.dtype == np.float32
    for precision in ("fp32", "bf16"):
        metrics, ranks = evaluate_split(model, store, vocab, 8, CPU, precision, BUDGET)
        assert math.isfinite(metrics["rsum"]) and (ranks["t2i"] >= 0).all()


def test_the_precision_is_part_of_the_run_spec_and_of_the_mlflow_params(tiny):
    params, store, vocab = tiny
    ablation = params.ablations["starnet_all"]
    config, dims = params.models["starnet"], data_dims(store, vocab)
    specs = {
        precision: run_spec(
            "starnet", config, dims, dataclasses.replace(params.train, precision=precision), {}, {"source": "random"}
        )
        for precision in PRECISIONS
    }
    assert params.train.precision == "fp32"  # params.yaml's default
    assert {p: spec.train["precision"] for p, spec in specs.items()} == {p: p for p in PRECISIONS}
    assert len(set(map(repr, specs.values()))) == 3  # another precision is another run: never resumed from
    assert flatten(run_params(ablation, specs["bf16"]))["train.precision"] == "bf16"


def test_a_bf16_run_through_the_train_and_evaluate_stages(
    pipeline, tmp_path, monkeypatch, tiny_raw, write_params, caplog
):
    root, _ = pipeline
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    tiny_raw["train"]["precision"] = "bf16"
    params = write_params(tiny_raw)
    assert main(train_argv(root, tmp_path, "starnet_all", params)) == 0
    models = tmp_path / "models" / "starnet_all"
    best = load_checkpoint(models / "best.pt", BestCheckpoint)
    assert best.spec.train["precision"] == "bf16"
    assert all(v.dtype != torch.bfloat16 for v in best.model.values())  # float32 weights
    metrics, ranks = tmp_path / "dev.json", tmp_path / "dev.npz"
    assert main(evaluate_argv(params, "starnet_all", "dev", root, models, metrics, ranks)) == 0
    assert math.isfinite(json.loads(metrics.read_text())["rsum"])

    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("stacmr").experiment_id])
    assert run.data.params["train.precision"] == "bf16"

    tiny_raw["train"].update(precision="tf32", epochs=1)
    with caplog.at_level(logging.INFO, logger="stacmr"):
        assert main(train_argv(root, tmp_path / "tf32", "vsrn_all", write_params(tiny_raw, "tf32.yaml"))) == 0
    assert "train.precision tf32: TF32 is a GPU format, on the CPU this run computes in fp32" in caplog.text
