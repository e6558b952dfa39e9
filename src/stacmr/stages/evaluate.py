"""`evaluate`: one ablation's best checkpoint on one CTC split → metrics JSON (with CIs, the explicit subset and the
"does it read?" diagnostics over visual-neighbour groups, and over the true groups where the data has them),
per-query ranks (.npz), and the same metrics mirrored into the MLflow run that trained the checkpoint (found by its
sha256 in this checkout's store; none found: one info line). The store is encoded at the precision the checkpoint
was trained at; the "does it read?" diagnostics run in fp32 (they score beside the encoding, with `model.similarity`,
which autocast would run in bfloat16, with ties). `--qpert FORM`: the same checkpoint with Q-Pert on at inference (a
Q-Pert host family only; the projector form recorded in the metrics, the MLflow metrics prefixed `qpert_<form>_`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import numpy as np

from stacmr.atomic import atomic_path, write_text
from stacmr.checksum import sha256_file
from stacmr.data.sources import CTC
from stacmr.errors import StacmrError
from stacmr.evaluation.evaluate import Bootstrap, Budget, evaluate_split
from stacmr.evaluation.reading import reading_diagnostics
from stacmr.features.neighbours import load_neighbours, load_true_groups, neighbours_file
from stacmr.features.store import FeatureStore, store_file
from stacmr.models.precision import float32_mode, run_precision
from stacmr.models.qformer import Qformer
from stacmr.models.qpert import Projector
from stacmr.stages.common import log, parser, start
from stacmr.tracking import EXPERIMENT, Tracker, checkpoint_run
from stacmr.training.checkpoint import BestCheckpoint, check_store_fits, load_checkpoint, rebuild_model
from stacmr.training.device import resolve_device


def main(argv: list[str] | None = None) -> None:
    p = parser("evaluate", __doc__)
    p.add_argument("--ablation", required=True, help="a key of params.yaml: ablations")
    p.add_argument("--split", required=True, help="a CTC split: dev (CTC-1K) or test (CTC-5K)")
    p.add_argument("--models", required=True, type=Path, help="the ablation's checkpoint directory")
    p.add_argument("--features", required=True, type=Path, help="directory of per-split feature stores")
    p.add_argument("--metrics", required=True, type=Path, help="metrics JSON to write (DVC metrics)")
    p.add_argument("--ranks", required=True, type=Path, help="per-query ranks to write (.npz)")
    p.add_argument("--neighbours", required=True, type=Path, help="the neighbours stage's folder (groups)")
    p.add_argument("--qpert", choices=get_args(Projector), help="Q-Pert on at inference, with this projector form")
    args = p.parse_args(argv)
    params = start("evaluate", args)
    if args.split not in params.evaluate.splits:
        raise StacmrError(f"--split {args.split!r}: not in params.yaml evaluate.splits {list(params.evaluate.splits)}")
    checkpoint = args.models / "best.pt"
    best = load_checkpoint(checkpoint, BestCheckpoint)
    model, vocab = rebuild_model(best)
    if args.qpert:
        if not isinstance(model, Qformer):
            raise StacmrError(f"--qpert: {checkpoint} is a {best.spec.family} model, not a Q-Pert host (qformer)")
        model.use_qpert(args.qpert)
    device = resolve_device(params.train.device)
    model.to(device)
    e = params.evaluate
    max_words, precision = best.spec.max_caption_words, run_precision(best.spec.train)
    budget, bootstrap = Budget.from_params(e), Bootstrap.from_params(e)
    name = CTC.store(args.split)
    groups = {"visual": load_neighbours(neighbours_file(args.neighbours, name))["cluster"]}
    groups.update(load_true_groups(args.neighbours, name))
    with FeatureStore(store_file(args.features, name)) as store:
        check_store_fits(store, best.spec.dims, f"checkpoint {checkpoint}")
        metrics, ranks = evaluate_split(model, store, vocab, max_words, device, precision, budget, bootstrap, e.top_k)
        with float32_mode("fp32"):
            reading = {k: reading_diagnostics(model, store, vocab, max_words, device, g) for k, g in groups.items()}
    metrics = {
        "ablation": args.ablation,
        "seed": best.spec.seed,
        "split": args.split,
        "checkpoint_epoch": best.epoch,
        **({"qpert": args.qpert} if args.qpert else {}),
        **metrics,
        "reading": reading,
    }
    write_text(args.metrics, json.dumps(metrics, indent=2) + "\n")
    args.ranks.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.ranks) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **ranks)
    run_id = checkpoint_run(sha256_file(checkpoint))
    if run_id is not None:
        with Tracker(EXPERIMENT, args.ablation, run_id=run_id) as tracker:
            flat = {k: v for k, v in metrics.items() if isinstance(v, float)}
            flat.update({f"explicit_{k}": v for k, v in metrics.get("explicit", {}).items() if isinstance(v, float)})
            prefix = f"qpert_{args.qpert}_" if args.qpert else ""
            tracker.log_metrics({f"{prefix}{args.split}_{k}": v for k, v in flat.items()}, step=best.epoch)
    log.info(
        "%s%s on %s: rsum %.1f (explicit %.1f)",
        args.ablation,
        f" + Q-Pert ({args.qpert})" if args.qpert else "",
        args.split,
        metrics["rsum"],
        metrics.get("explicit", {}).get("rsum", float("nan")),
    )
