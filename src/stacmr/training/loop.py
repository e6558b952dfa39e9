"""The one training loop, for every model family: Adam, step decay, gradient clipping, validation each epoch on the
CTC validation split (`evaluation.evaluate.evaluate_split`, without CIs), model selection on
`metrics.selection_score` (R@1 + R@5 both ways, as the release), best and last checkpoints, resume.

`fit` composes `restore` (a resumed run's state), `train_epoch`, `validate` and `save` (checkpoints and history).
Precision (`train.precision`, `stacmr.models.precision`): an epoch runs in its `float32_mode`, a batch's forward and
loss under its `autocast` (the hinge in float32), the validation encodes at the run's precision and ranks in float32.
Determinism: the model is initialised after `torch.manual_seed(seed)`, the batch order is a function of
(seed, epoch) (`batches.epoch_order`), and the last checkpoint carries the torch RNG state, so a run resumed from it
ends with exactly the result of an uninterrupted one. Checkpoints are written at the end of every epoch.
Data-parallel (`Learner.shards`, under torchrun: `stacmr.training.processes`): each process steps on its share of
every batch with the global batch's loss (`stacmr.models.shards`) and the summed gradients; the first process
validates, checkpoints and reports while the others wait.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from stacmr.atomic import write_text
from stacmr.evaluation.evaluate import Budget, evaluate_split, flat_metrics
from stacmr.evaluation.metrics import selection_score
from stacmr.features.store import FeatureStore
from stacmr.features.vocab import Vocabulary
from stacmr.losses import hinge_triplet
from stacmr.models import RetrievalModel
from stacmr.models.precision import autocast, float32_mode, run_precision
from stacmr.models.shards import SINGLE, Shards, sharded
from stacmr.params import TrainParams
from stacmr.progress import progress
from stacmr.training import processes
from stacmr.training.batches import epoch_order, n_batches, training_batches
from stacmr.training.checkpoint import (
    BestCheckpoint,
    LastCheckpoint,
    OtherVersion,
    RunSpec,
    check_store_fits,
    data_dims,
    load_checkpoint,
    save_checkpoint,
)
from stacmr.training.sampler import neighbour_order

log = logging.getLogger("stacmr")

BEST, LAST = "best.pt", "last.pt"
VAL = "val_"  # the prefix of a history row's validation metrics


@dataclass(frozen=True)
class TrainingData:
    """The stores a run trains and validates on, with their vocabulary."""

    train: FeatureStore
    val: FeatureStore
    vocab: Vocabulary
    clusters: np.ndarray | None = None  # (N,) the training store's visual-neighbour clusters (sampler)


@dataclass(frozen=True)
class Outputs:
    """Where a run writes: `best.pt` and `last.pt` in `folder`, the per-epoch history CSV; `resume`: continue from
    `last.pt` when it is this run's."""

    folder: Path
    history: Path
    resume: bool = False


@dataclass(frozen=True)
class Learner:
    """What a run trains and a resume restores besides its progress: the model (on `device`) and its optimiser."""

    spec: RunSpec
    model: RetrievalModel
    optimizer: torch.optim.Adam
    scheduler: torch.optim.lr_scheduler.StepLR
    device: torch.device
    shards: Shards = SINGLE  # the processes a batch is split over (`stacmr.training.processes`)

    @classmethod
    def start(
        cls, spec: RunSpec, model: RetrievalModel, params: TrainParams, device: torch.device, shards: Shards = SINGLE
    ) -> Learner:
        """`model` (on `device`) with a fresh Adam optimiser and its step decay of the learning rate."""
        optimizer = torch.optim.Adam(model.parameters(), lr=params.lr)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=params.lr_decay_every, gamma=params.lr_decay)
        return cls(spec, model, optimizer, scheduler, device, shards)

    @property
    def leader(self) -> bool:
        """The process that validates, checkpoints and reports (the only one of a one-process run)."""
        return self.shards.rank == 0


@dataclass(frozen=True)
class Progress:
    """What the epochs done so far leave, and a last checkpoint keeps."""

    epoch: int = 0  # epochs done
    best_score: float = -math.inf  # the best epoch's selection score
    history: list[dict[str, float]] = field(default_factory=list)  # a row per epoch done


def restore(learner: Learner, path: Path) -> Progress:
    """The progress in `path`, with the learner's weights, optimiser and RNG state set from it, when it is a last
    checkpoint of this very run (the same `RunSpec`); else a fresh start."""
    if not path.exists():
        return Progress()
    try:
        last = load_checkpoint(path, LastCheckpoint)
    except OtherVersion as exc:  # made by other code, so by another run (DVC keeps it between runs: `persist`)
        log.info("%s; training from scratch", exc)
        return Progress()
    if last.spec != learner.spec:
        log.info("%s was made by another configuration; training from scratch", path)
        return Progress()
    learner.model.load_state_dict(last.model)
    learner.optimizer.load_state_dict(last.optimizer)
    learner.scheduler.load_state_dict(last.scheduler)
    torch.set_rng_state(last.rng_cpu)
    if learner.device.type == "cuda" and last.rng_cuda is not None:
        torch.cuda.set_rng_state(last.rng_cuda, learner.device)
    log.info("resuming from %s after epoch %d", path, last.epoch)
    return Progress(last.epoch, last.best_score, last.history)


def train_epoch(learner: Learner, data: TrainingData, params: TrainParams, epoch: int) -> dict[str, float]:
    """One pass over the training captions (0-based `epoch`), then the learning-rate step; each loss term's mean
    over the batches. Each forward and loss runs under the precision's `autocast`; the caller sets its
    `float32_mode` (`fit`: around the whole epoch, backward and optimiser steps included)."""
    model, optimizer, shards = learner.model, learner.optimizer, learner.shards
    model.train()
    processes.epoch_seed(shards, params.seed, epoch)
    # hardest negatives from the start can collapse every embedding onto one point (the loss sticks at
    # 2·B·margin); a warm-up on the sum over negatives avoids it (VSE∞; CHAN's one warm-up epoch)
    margin, max_violation = model.hinge(params.margin, params.max_violation)
    hardest = max_violation and epoch >= params.warmup_epochs

    def criterion(sim: torch.Tensor) -> torch.Tensor:
        # in float32 on the similarities as computed (bfloat16 under bf16 autocast), as autocast runs its own losses
        return hinge_triplet(sim.float(), margin, hardest)

    per_image = data.train.sizes["C"]
    order = (
        epoch_order(len(data.train) * per_image, params.seed, epoch)
        if data.clusters is None
        else neighbour_order(data.clusters, per_image, params.seed, epoch)
    )
    batches = training_batches(
        data.train,
        data.vocab,
        params.batch_size,
        order,
        params.max_caption_words,
        model.reads_characters,
        device=learner.device,
        shards=shards,
    )
    steps = n_batches(data.train, params.batch_size, shards)
    sums: dict[str, float] = {}
    bar = progress(
        batches,
        total=steps,
        desc=f"epoch {epoch + 1}/{params.epochs}",
        unit="batch",
        disable=None if learner.leader else True,
    )
    for images, captions in bar:
        # bf16: the forward and the loss, never the backward; several processes: the global batch's loss, shared
        with autocast(params.precision, learner.device), sharded(shards):
            losses = model.loss(images, captions, criterion)  # on the device already
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        processes.reduce_gradients(shards, model.parameters())
        if params.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), params.grad_clip)
        optimizer.step()
        values = processes.summed(shards, losses)
        for key, value in values.items():
            sums[key] = sums.get(key, 0.0) + value
        bar.set_postfix(loss=f"{values['loss']:.3f}")
    learner.scheduler.step()
    return {key: value / steps for key, value in sums.items()}


def validate(learner: Learner, data: TrainingData, budget: Budget) -> dict[str, float]:
    """Metrics on the validation split and, prefixed `explicit_`, on its explicit images (with their captions)."""
    max_words = learner.spec.max_caption_words
    precision = run_precision(learner.spec.train)
    metrics, _ = evaluate_split(learner.model, data.val, data.vocab, max_words, learner.device, precision, budget)
    return flat_metrics(metrics)


def val_metrics(row: dict[str, float]) -> dict[str, float]:
    """The validation metrics of a history row, unprefixed (as `validate` gave them)."""
    return {k.removeprefix(VAL): v for k, v in row.items() if k.startswith(VAL)}


def save(learner: Learner, done: Progress, outputs: Outputs, vocab: Vocabulary, best: dict[str, float] | None) -> None:
    """After an epoch: `best.pt` when it is the best so far (`best`: its validation metrics), `last.pt` and the
    history CSV."""
    model = learner.model
    if best is not None:
        save_checkpoint(
            outputs.folder / BEST, BestCheckpoint(learner.spec, model.state_dict(), done.epoch, best, vocab.itos)
        )
    cuda = learner.device.type == "cuda"
    last = LastCheckpoint(
        learner.spec,
        model.state_dict(),
        learner.optimizer.state_dict(),
        learner.scheduler.state_dict(),
        torch.get_rng_state(),
        torch.cuda.get_rng_state(learner.device) if cuda else None,
        done.epoch,
        done.best_score,
        done.history,
        vocab.itos,
    )
    save_checkpoint(outputs.folder / LAST, last)
    write_text(outputs.history, _history_csv(done.history))


def _history_csv(history: list[dict[str, float]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(history[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return buf.getvalue()


def fit(
    learner: Learner,
    params: TrainParams,
    data: TrainingData,
    outputs: Outputs,
    budget: Budget,
    on_epoch: Callable[[dict[str, float]], None] = lambda row: None,
) -> list[dict[str, float]]:
    """Train the learner's model (already seeded and on its device); returns the per-epoch history, each row also
    given to `on_epoch`. A validation store whose data sizes differ from the training store's is refused before the
    first epoch; so are clusters without the `visual_neighbours` sampler, and that sampler without them."""
    check_store_fits(data.val, data_dims(data.train, data.vocab), f"the training store {data.train.path}")
    if (params.sampler == "visual_neighbours") != (data.clusters is not None):
        raise ValueError(f"sampler {params.sampler!r} {'needs' if data.clusters is None else 'takes no'} clusters")
    done = restore(learner, outputs.folder / LAST) if outputs.resume else Progress()
    for epoch in range(done.epoch, params.epochs):
        lr = learner.optimizer.param_groups[0]["lr"]
        with float32_mode(params.precision):
            losses = train_epoch(learner, data, params, epoch)
        if not learner.leader:  # the others wait while the first validates and checkpoints
            done = Progress(epoch + 1)
            processes.barrier(learner.shards)
            continue
        val = validate(learner, data, budget)
        row = {"epoch": epoch + 1, "lr": lr, **{f"loss_{k}": v for k, v in losses.items()}}
        row.update({f"{VAL}{k}": v for k, v in val.items()})
        score = selection_score(val)
        log.info("epoch %d: loss %.4f, val rsum %.1f, selection %.1f", epoch + 1, row["loss_loss"], val["rsum"], score)
        improved = score > done.best_score
        done = Progress(epoch + 1, score if improved else done.best_score, [*done.history, row])
        save(learner, done, outputs, data.vocab, val if improved else None)
        processes.barrier(learner.shards)
        on_epoch(row)
    if (
        done.history and learner.leader and not outputs.history.exists()
    ):  # resumed a finished run whose history file was removed
        write_text(outputs.history, _history_csv(done.history))
    return done.history
