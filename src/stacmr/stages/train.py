"""`train`: train one ablation (`--ablation`, its train seed or `--seed`) with the one loop; checkpoints, history,
best validation metrics, and one MLflow run, tagged with the sha256 of the best checkpoint by which the evaluate
stages and the report find it. Under `torchrun` (`stacmr.training.processes`) every process trains its share of each
batch and the first one does all the rest."""

from __future__ import annotations

import resource
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import torch

from stacmr.atomic import write_text
from stacmr.checksum import sha256_file
from stacmr.data.sources import TRAINSET, VALIDATION
from stacmr.errors import StacmrError
from stacmr.evaluation.evaluate import Budget
from stacmr.features.neighbours import neighbours_file
from stacmr.features.ocr_embedding import fasttext_model_path
from stacmr.features.store import FeatureStore, store_file
from stacmr.features.vocab import Vocabulary
from stacmr.models import build_model, model_config
from stacmr.stages.common import log, parser, start
from stacmr.tracking import CHECKPOINT_TAG, EXPERIMENT, Tracker, extraction_tags, provenance_tags
from stacmr.training import processes
from stacmr.training.checkpoint import data_dims
from stacmr.training.loop import BEST, Learner, Outputs, TrainingData, fit
from stacmr.training.run import best_row, metrics_json, run_params, run_spec, run_tags, training_clusters
from stacmr.training.word_init import initialise_word_vectors, ocr_fasttext_word_vectors


def main(argv: list[str] | None = None) -> None:
    p = parser("train", __doc__)
    p.add_argument("--ablation", required=True, help="a key of params.yaml: ablations")
    p.add_argument("--features", required=True, type=Path, help="directory of per-split feature stores")
    p.add_argument("--trainset", required=True, type=Path, help="the combined training store")
    p.add_argument("--vocab", required=True, type=Path, help="the caption vocabulary")
    p.add_argument("--neighbours", required=True, type=Path, help="visual-neighbour clusters per store (sampler)")
    p.add_argument("--out", required=True, type=Path, help="checkpoint directory (best.pt, last.pt)")
    p.add_argument("--history", required=True, type=Path, help="per-epoch history CSV (DVC plots)")
    p.add_argument("--metrics", required=True, type=Path, help="best validation metrics JSON (the report reads it)")
    p.add_argument("--resume", action="store_true", help="continue from --out/last.pt when it matches this run")
    p.add_argument("--seed", type=int, help="train with this seed instead of the ablation's (a seed replicate)")
    args = p.parse_args(argv)
    params = start("train", args)
    started = time.monotonic()
    if args.ablation not in params.ablations:
        raise StacmrError(f"--ablation {args.ablation!r}: not in params.yaml ablations {sorted(params.ablations)}")
    if args.seed is not None and args.seed < 0:
        raise StacmrError(f"--seed {args.seed}: must be >= 0")
    ablation = params.ablations[args.ablation]
    config = model_config(params, args.ablation)
    train_params = params.train_params(args.ablation)
    if args.seed is not None:
        train_params = replace(train_params, seed=args.seed)  # in the run spec: the checkpoint records it
    shards, local_rank = processes.from_environment()
    device = processes.start(shards, local_rank, train_params.device)
    try:
        if train_params.precision == "tf32" and device.type == "cpu":
            log.info("train.precision tf32: TF32 is a GPU format, on the CPU this run computes in fp32")
        vocab = Vocabulary.load(args.vocab)
        train_path = (
            args.trainset if ablation.train_data == TRAINSET else store_file(args.features, ablation.train_data)
        )
        with FeatureStore(train_path) as train_store, FeatureStore(store_file(args.features, VALIDATION)) as val_store:
            inputs = {ablation.train_data: train_path, VALIDATION: val_store.path, "vocab": args.vocab}
            clusters = None
            if train_params.sampler == "visual_neighbours":
                inputs["neighbours"] = neighbours_file(args.neighbours, ablation.train_data)
                clusters = training_clusters(inputs["neighbours"], train_store)
            dims = data_dims(train_store, vocab)
            torch.manual_seed(train_params.seed)
            model = build_model(ablation.family, config, dims).to(device)
            word_init = {"source": "random"}
            if config.word_init == "ocr_fasttext":
                fasttext_path = fasttext_model_path(args.features, params.features.fasttext)
                vectors, word_init = ocr_fasttext_word_vectors(vocab, fasttext_path, config.word_dim)
                initialise_word_vectors(model, vectors)
            spec = run_spec(ablation.family, config, dims, train_params, inputs, word_init)
            args.out.mkdir(parents=True, exist_ok=True)
            run = partial(
                fit,
                Learner.start(spec, model, train_params, device, shards),
                train_params,
                TrainingData(train_store, val_store, vocab, clusters),
                Outputs(args.out, args.history, args.resume),
                Budget.from_params(params.evaluate),
            )
            if shards.rank > 0:  # one of torchrun's other processes: it trains its share, the first one reports
                run()
                return
            with Tracker(EXPERIMENT, f"{args.ablation} s{train_params.seed}") as tracker:
                tracker.log_params(run_params(ablation, spec))
                tracker.set_tags(
                    {**provenance_tags(), **run_tags(args.ablation, ablation, spec, params.data.source, device)}
                )
                tracker.set_tags(extraction_tags({**train_store.extraction, **val_store.extraction}))
                history = run(on_epoch=lambda row: tracker.log_metrics(row, step=int(row["epoch"])))
                best = best_row(history)
                # timing and memory differ on every run: MLflow only, never in the DVC metrics (issue #14)
                usage = {"train_seconds": round(time.monotonic() - started, 1), "peak_rss_mib": _peak_rss_mib()}
                write_text(args.metrics, metrics_json(best))
                tracker.set_tags({k: str(v) for k, v in usage.items()})
                tracker.log_artifact(args.history)
                tracker.log_artifact(args.metrics)
                # best.pt is byte-stable: the evaluate stages and the report find the run by it
                tracker.set_tags({CHECKPOINT_TAG: sha256_file(args.out / BEST)})
        log.info(
            "%s: best epoch %d, validation rsum %.1f; %.0f s, peak RSS %.0f MiB",
            args.ablation,
            best["epoch"],
            best["val_rsum"],
            usage["train_seconds"],
            usage["peak_rss_mib"],
        )
    finally:
        processes.stop(shards)


def _peak_rss_mib() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
