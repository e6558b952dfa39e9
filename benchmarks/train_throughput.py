"""Training throughput (captions/s) of each model family on the default config, against a plain forward+backward.

For each family: (1) the real thing, `training_batches` streaming (image, caption) batches from the HDF5 training
store into the model's loss, backward and an Adam step; (2) the floor, the same steps on one batch already in memory
(no data loading). The ratio (1)/(2) shows what data loading costs. Both are measured in this run, on this machine.

Usage (after `make repro` built artifacts/): .venv/bin/python benchmarks/train_throughput.py [--batches 30]
"""

from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

import torch

from stacmr.features.store import FeatureStore
from stacmr.features.vocab import Vocabulary
from stacmr.losses import hinge_triplet
from stacmr.models import build_model
from stacmr.stages.common import load_checked_params
from stacmr.training.batches import epoch_order, training_batches
from stacmr.training.checkpoint import data_dims


def _step(model, optimizer, criterion, images, captions) -> None:
    losses = model.loss(images, captions, criterion)
    optimizer.zero_grad(set_to_none=True)
    losses["loss"].backward()
    optimizer.step()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--trainset", default="artifacts/trainset.h5", type=Path)
    p.add_argument("--vocab", default="artifacts/vocab.json", type=Path)
    p.add_argument("--batches", type=int, default=30, help="timed batches per measurement (after 3 warm-up ones)")
    args = p.parse_args()
    params = load_checked_params(args.params)
    vocab = Vocabulary.load(args.vocab)
    t = params.train
    criterion = functools.partial(hinge_triplet, margin=t.margin, max_violation=t.max_violation)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {t.batch_size}")
    print(f"{'family':10s} {'streamed cap/s':>15s} {'in-memory cap/s':>16s} {'ratio':>7s}")
    with FeatureStore(args.trainset) as store:
        dims = data_dims(store, vocab)
        for family, config in params.models.items():
            torch.manual_seed(0)
            model = build_model(family, config, dims)
            optimizer = torch.optim.Adam(model.parameters(), lr=t.lr)
            batches = training_batches(
                store,
                vocab,
                t.batch_size,
                epoch_order(len(store) * store.sizes["C"], t.seed, 0),
                t.max_caption_words,
                characters=model.reads_characters,
            )
            first = [next(batches) for _ in range(3)]
            for images, captions in first:
                _step(model, optimizer, criterion, images, captions)

            start = time.perf_counter()
            for _ in range(args.batches):
                images, captions = next(batches)
                _step(model, optimizer, criterion, images, captions)
            streamed = args.batches * t.batch_size / (time.perf_counter() - start)

            images, captions = first[0]
            start = time.perf_counter()
            for _ in range(args.batches):
                _step(model, optimizer, criterion, images, captions)
            in_memory = args.batches * t.batch_size / (time.perf_counter() - start)
            print(f"{family:10s} {streamed:15.0f} {in_memory:16.0f} {streamed / in_memory:7.2f}")


if __name__ == "__main__":
    main()
