"""A few training steps of every family on a small store, in one process or as one of several under torch.distributed
(gloo), for the test that N processes with a global batch of B take the steps of one process with batch B."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import torch

from stacmr.features.store import FeatureStore, create_store
from stacmr.features.vocab import Vocabulary
from stacmr.models import build_model, config_class
from stacmr.models.shards import Shards
from stacmr.stages.common import load_checked_params
from stacmr.training import processes
from stacmr.training.checkpoint import data_dims
from stacmr.training.loop import Learner, TrainingData, train_epoch
from tests.helpers.store import SIZES, store_block

IMAGES, BATCH = 11, 8  # 22 captions: batches of 8, 8 and 6 (a last batch that splits 3 + 3)
WORDS = ["a", "red", "bus", "stop", "sign", "on", "the", "street", "cafe", "open"]
# Each family with its random draws turned off (dropout, CHAN's augmentation): random draws are each process's own,
# so only without them are the runs equal number for number.
FAMILIES = {
    "vsrn": {"caption_dropout": 0.0},
    "starnet": {"caption_dropout": 0.0},
    "chan": {"region_drop": 0.0, "token_mask": 0.0},
    "chan_st": {"region_drop": 0.0, "token_mask": 0.0},
    "dsve": {"dropout": 0.0},
    "qformer": {},
    "qformer_st": {},
}


def make_training_store(folder: Path) -> tuple[Path, Vocabulary]:
    """A store of `IMAGES` images with captions of 1 to 6 words (so the ranks' batches pad to different lengths),
    and the vocabulary of its words."""
    rng = np.random.default_rng(7)
    block = store_block(0, IMAGES)
    block["captions"] = np.array(
        [[" ".join(rng.choice(WORDS, rng.integers(1, 7))) for _ in range(SIZES["C"])] for _ in range(IMAGES)],
        dtype=object,
    )
    path = folder / "train.h5"
    with create_store(path, "ctc/train", {**SIZES, "N": IMAGES}, {"p": 1}, {"in.npy": "abc"}) as out:
        out.write(0, **block)
    return path, Vocabulary(["<pad>", "<start>", "<end>", "<unk>", *WORDS])


def run_steps(params_path: Path, store_path: Path, vocab: Vocabulary, shards: Shards) -> dict[str, dict]:
    """family → its epoch's mean losses, its weights after one epoch (3 steps) of the global batch `BATCH` and the
    gradients of the last step, the hardest negative from the first step on; every family starts from the same
    seed."""
    params = load_checked_params(params_path)
    train = dataclasses.replace(
        params.train, batch_size=BATCH, epochs=1, warmup_epochs=0, max_violation=True, sampler="random", seed=0
    )
    results = {}
    with FeatureStore(store_path) as store:
        for family, overrides in FAMILIES.items():
            config = dataclasses.replace(params.models[family], **overrides)
            assert isinstance(config, config_class(family))
            torch.manual_seed(0)
            model = build_model(family, config, data_dims(store, vocab))
            learner = Learner.start(None, model, train, torch.device("cpu"), shards)  # type: ignore[arg-type]
            losses = train_epoch(learner, TrainingData(store, store, vocab), train, epoch=0)
            grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
            state = {name: value.clone() for name, value in model.state_dict().items()}
            results[family] = {"losses": losses, "state": state, "grads": grads, "lr": train.lr, "steps": 3}
    return results


def worker(rank: int, size: int, port: int, folder: Path) -> None:
    """One of `size` processes (torch.multiprocessing's spawn): torchrun's environment, the process group, the steps
    of every family; its results in folder/rank<r>.pt."""
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(size), "LOCAL_RANK": str(rank), "MASTER_ADDR": "127.0.0.1"})
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    shards, local_rank = processes.from_environment()
    processes.start(shards, local_rank, "cpu")
    try:
        vocab = Vocabulary.load(folder / "vocab.json")
        results = run_steps(folder / "params.yaml", folder / "train.h5", vocab, shards)
        torch.save(results, folder / f"rank{rank}.pt")
    finally:
        processes.stop(shards)
