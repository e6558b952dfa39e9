"""Training throughput (captions/s) of each model family on the default config, against a plain forward+backward.

For each family, the same steps (the model's loss, backward and an Adam step) on batches from: (1) `training_batches`
as the loop runs it (the store's features held in RAM, batches read ahead in a thread); (2) `training_batches` reading
from the file in the step's thread (`memory_budget=0, read_ahead=0`); (3) the floor, one batch already in memory (no
data loading). "waits" is the share of the time the steps wait for their batches: what loading costs an epoch. All
measured in this run, on this machine; on 2 shared CPU cores, run it twice.

Usage (after `make repro` built artifacts/): .venv/bin/python benchmarks/train_throughput.py [--batches 30]
[--families vsrn,starnet] [--precision bf16]  (`train.precision`: the loop's float32 mode and autocast)
"""

from __future__ import annotations

import argparse
import functools
import itertools
import time
import typing
from pathlib import Path

import torch

from stacmr.features.store import FeatureStore
from stacmr.features.vocab import Vocabulary
from stacmr.losses import hinge_triplet
from stacmr.models import build_model
from stacmr.models.precision import autocast, float32_mode
from stacmr.params import TrainParams
from stacmr.stages.common import load_checked_params
from stacmr.training.batches import epoch_order, training_batches
from stacmr.training.checkpoint import data_dims


def _step(model, optimizer, criterion, precision, images, captions) -> None:
    with autocast(precision, images.regions.device):
        losses = model.loss(images, captions, criterion)
    optimizer.zero_grad(set_to_none=True)
    losses["loss"].backward()
    optimizer.step()


def _rate(step, batches, count: int, batch_size: int) -> tuple[float, float]:
    """Captions/s of `count` steps on the next batches of `batches`, and the share of that time spent waiting for
    them."""
    waited, start = 0.0, time.perf_counter()
    for _ in range(count):
        asked = time.perf_counter()
        images, captions = next(batches)
        waited += time.perf_counter() - asked
        step(images, captions)
    elapsed = time.perf_counter() - start
    return count * batch_size / elapsed, waited / elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--trainset", default="artifacts/trainset.h5", type=Path)
    p.add_argument("--vocab", default="artifacts/vocab.json", type=Path)
    p.add_argument("--batches", type=int, default=30, help="timed batches per measurement (after 3 warm-up ones)")
    p.add_argument("--families", help="comma-separated families (default: every family of params.yaml: models)")
    precisions = typing.get_args(typing.get_type_hints(TrainParams)["precision"])
    p.add_argument("--precision", choices=precisions, help="train.precision (default: params.yaml's)")
    args = p.parse_args()
    params = load_checked_params(args.params)
    vocab = Vocabulary.load(args.vocab)
    t = params.train
    criterion = functools.partial(hinge_triplet, margin=t.margin, max_violation=t.max_violation)
    families = args.families.split(",") if args.families else list(params.models)
    precision = args.precision or t.precision
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {t.batch_size}, precision {precision}")
    print(
        f"{'family':12s} {'loader cap/s':>13s} {'waits':>6s} {'file cap/s':>11s} {'waits':>6s} {'in-memory cap/s':>16s}"
    )
    # two handles on the store: what one holds in RAM, the other does not see
    with FeatureStore(args.trainset) as store, FeatureStore(args.trainset) as from_file, float32_mode(precision):
        dims = data_dims(store, vocab)
        order = epoch_order(len(store) * store.sizes["C"], t.seed, 0)
        for family in families:
            torch.manual_seed(0)
            model = build_model(family, params.models[family], dims)
            optimizer = torch.optim.Adam(model.parameters(), lr=t.lr)
            step = functools.partial(_step, model, optimizer, criterion, precision)
            read = functools.partial(
                training_batches, vocab=vocab, batch_size=t.batch_size, order=order, max_words=t.max_caption_words
            )
            loader = read(store, characters=model.reads_characters)
            file = read(from_file, characters=model.reads_characters, memory_budget=0, read_ahead=0)
            first = [next(loader) for _ in range(3)]
            for images, captions in first:
                step(images, captions)
            (fed, fed_waits), (streamed, streamed_waits), (floor, _) = (
                _rate(step, batches, args.batches, t.batch_size)
                for batches in (loader, file, itertools.repeat(first[0]))
            )
            print(f"{family:12s} {fed:13.0f} {fed_waits:6.0%} {streamed:11.0f} {streamed_waits:6.0%} {floor:16.0f}")


if __name__ == "__main__":
    main()
