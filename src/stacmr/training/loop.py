"""The one training loop, for every model family: Adam, step decay, gradient clipping, validation each epoch on the
CTC validation split, model selection on R@1 + R@5 both ways (as the release), best and last checkpoints, resume.

Determinism: the model is initialised after `torch.manual_seed(seed)`, the batch order is a function of
(seed, epoch) (`batches.epoch_order`), and the last checkpoint carries the torch RNG state, so a run resumed from it
ends with exactly the result of an uninterrupted one. Checkpoints are written at the end of every epoch.
"""

from __future__ import annotations

import csv
import functools
import io
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stacmr.atomic import write_text
from stacmr.evaluation.encode import encode_store
from stacmr.evaluation.finegrained import DEFAULT_TILE_BYTES, ranking_scores
from stacmr.evaluation.metrics import ranks, summarize
from stacmr.features.store import FeatureStore
from stacmr.features.vocab import Vocabulary
from stacmr.losses import hinge_triplet
from stacmr.models import RetrievalModel
from stacmr.params import TrainParams
from stacmr.progress import progress
from stacmr.training.batches import epoch_order, n_batches, training_batches
from stacmr.training.checkpoint import check_store_fits, load_checkpoint, save_checkpoint, store_dims
from stacmr.training.sampler import neighbour_order

log = logging.getLogger("stacmr")

BEST, LAST = "best.pt", "last.pt"


def selection_score(metrics: dict[str, float]) -> float:
    """R@1 + R@5 in both directions: the release's model-selection criterion."""
    return metrics["i2t_r1"] + metrics["i2t_r5"] + metrics["t2i_r1"] + metrics["t2i_r5"]


def validate(
    model: RetrievalModel, store: FeatureStore, vocab: Vocabulary, max_words: int, device: torch.device
) -> dict[str, float]:
    """Metrics on the whole split and, prefixed `explicit_`, on its explicit images (with their captions)."""
    enc = encode_store(model, store, vocab, max_words, device)
    scores = ranking_scores(model, enc, DEFAULT_TILE_BYTES)
    metrics = summarize(*ranks(scores, len(enc.img_emb), enc.caption_image))
    explicit = np.flatnonzero(store["explicit"][:])
    if len(explicit):
        sub = enc.subset(explicit)
        sub_metrics = summarize(
            *ranks(ranking_scores(model, sub, DEFAULT_TILE_BYTES), len(explicit), sub.caption_image)
        )
        metrics.update({f"explicit_{k}": v for k, v in sub_metrics.items()})
    return metrics


@dataclass(frozen=True)
class RunSpec:
    """What identifies a run: a checkpoint is resumed only when all of this matches."""

    family: str
    model_config: dict[str, Any]
    dims: dict[str, int]  # build_model's data sizes (vocab_size, region_dim, ocr_dim, ocr_slots)
    train: dict[str, Any]  # the ablation's `train` params (its overrides applied)
    data: dict[str, str]  # store name → sha256 of the training and validation stores (and the neighbour clusters)
    word_init: dict[str, Any]  # how the caption word vectors started (`stacmr.training.word_init`: the fitted map)
    code: str  # sha256 of the package source (`checksum.package_source_sha256`): other code never resumes this run


def _history_csv(history: list[dict[str, float]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(history[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return buf.getvalue()


def fit(
    model: RetrievalModel,
    spec: RunSpec,
    params: TrainParams,
    train_store: FeatureStore,
    val_store: FeatureStore,
    vocab: Vocabulary,
    device: torch.device,
    out_dir: Path,
    history_path: Path,
    resume: bool,
    clusters: np.ndarray | None = None,
    on_epoch: Callable[[dict[str, float]], None] = lambda row: None,
) -> list[dict[str, float]]:
    """Train `model` (already seeded and on `device`); returns the per-epoch history. Writes `best.pt`, `last.pt` to
    `out_dir` and the history CSV to `history_path` after every epoch. `clusters` (N,): the training store's
    visual-neighbour cluster per image, for `params.sampler: visual_neighbours`. A validation store whose data sizes
    differ from the training store's is refused before the first epoch."""
    check_store_fits(val_store, store_dims(train_store), f"the training store {train_store.path}")
    if (params.sampler == "visual_neighbours") != (clusters is not None):
        raise ValueError(f"sampler {params.sampler!r} {'needs' if clusters is None else 'takes no'} clusters")
    optimizer = torch.optim.Adam(model.parameters(), lr=params.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=params.lr_decay_every, gamma=params.lr_decay)
    start_epoch, best_score, history = 0, -math.inf, []
    spec_dict = asdict(spec)
    last_path = out_dir / LAST
    if resume and last_path.exists():
        state = load_checkpoint(last_path)
        if state["spec"] == spec_dict:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng_cpu"])
            if device.type == "cuda" and state.get("rng_cuda") is not None:
                torch.cuda.set_rng_state(state["rng_cuda"], device)
            start_epoch, best_score, history = state["epoch"], state["best_score"], state["history"]
            log.info("resuming from %s after epoch %d", last_path, start_epoch)
        else:
            log.info("%s was made by another configuration; training from scratch", last_path)

    steps = n_batches(train_store, params.batch_size)
    for epoch in range(start_epoch, params.epochs):
        model.train()
        lr = optimizer.param_groups[0]["lr"]
        # hardest negatives from the start can collapse every embedding onto one point (the loss sticks at
        # 2·B·margin); a warm-up on the sum over negatives avoids it (VSE∞; CHAN's one warm-up epoch)
        margin, max_violation = model.hinge(params.margin, params.max_violation)
        hardest = max_violation and epoch >= params.warmup_epochs
        criterion = functools.partial(hinge_triplet, margin=margin, max_violation=hardest)
        sums: dict[str, float] = {}
        n_captions = len(train_store) * train_store.sizes["C"]
        order = (
            epoch_order(n_captions, params.seed, epoch)
            if clusters is None
            else neighbour_order(clusters, train_store.sizes["C"], params.seed, epoch)
        )
        batches = training_batches(
            train_store, vocab, params.batch_size, order, params.max_caption_words, model.reads_characters
        )
        bar = progress(batches, total=steps, desc=f"epoch {epoch + 1}/{params.epochs}", unit="batch")
        for images, captions in bar:
            losses = model.loss(images.to(device), captions.to(device), criterion)
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            if params.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), params.grad_clip)
            optimizer.step()
            values = {key: float(value.detach()) for key, value in losses.items()}
            for key, value in values.items():
                sums[key] = sums.get(key, 0.0) + value
            bar.set_postfix(loss=f"{values['loss']:.3f}")
        scheduler.step()
        val = validate(model, val_store, vocab, params.max_caption_words, device)
        row = {"epoch": epoch + 1, "lr": lr, **{f"loss_{k}": v / steps for k, v in sums.items()}}
        row.update({f"val_{k}": v for k, v in val.items()})
        history.append(row)
        score = selection_score(val)
        log.info("epoch %d: loss %.4f, val rsum %.1f, selection %.1f", epoch + 1, row["loss_loss"], val["rsum"], score)
        if score > best_score:
            best_score = score
            best = {"spec": spec_dict, "model": model.state_dict(), "epoch": epoch + 1, "val": val, "vocab": vocab.itos}
            save_checkpoint(out_dir / BEST, best)
        save_checkpoint(
            last_path,
            {
                "spec": spec_dict,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng_cpu": torch.get_rng_state(),
                "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                "epoch": epoch + 1,
                "best_score": best_score,
                "history": history,
                "vocab": vocab.itos,
            },
        )
        write_text(history_path, _history_csv(history))
        on_epoch(row)
    if history and not history_path.exists():  # resumed a finished run whose history file was removed
        write_text(history_path, _history_csv(history))
    return history
