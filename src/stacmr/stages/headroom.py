"""`headroom`: the text-match control (caption words vs the image's OCR strings, exact and fuzzy) fused with the
visual baseline (`report.baseline`), its weight chosen on CTC val, evaluated on every `evaluate.splits` split:
`<metrics>/<split>.json` and `<ranks>/<split>.npz` (per-query ranks per control, for the report's comparisons).
The stores are encoded at the precision the baseline was trained at, and scored in float32."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from stacmr.atomic import atomic_path, write_text
from stacmr.data.sources import CTC, VALIDATION
from stacmr.evaluation.encode import encode_store
from stacmr.evaluation.evaluate import Bootstrap, Budget
from stacmr.evaluation.headroom import VARIANTS, control_weight, evaluate_control
from stacmr.evaluation.textmatch import store_text, text_match
from stacmr.features.store import FeatureStore, store_file
from stacmr.models.precision import computing, run_precision
from stacmr.stages.common import log, parser, start
from stacmr.training.checkpoint import BestCheckpoint, check_store_fits, load_checkpoint, rebuild_model
from stacmr.training.device import resolve_device


def main(argv: list[str] | None = None) -> None:
    p = parser("headroom", __doc__)
    p.add_argument("--models", required=True, type=Path, help="checkpoint folders, one per ablation")
    p.add_argument("--features", required=True, type=Path, help="directory of per-split feature stores")
    p.add_argument("--metrics", required=True, type=Path, help="output folder of the metrics JSON (DVC metrics)")
    p.add_argument("--ranks", required=True, type=Path, help="output folder of the per-query ranks (.npz)")
    args = p.parse_args(argv)
    params = start("headroom", args)
    baseline, e, h = params.report.baseline, params.evaluate, params.headroom
    budget, bootstrap = Budget.from_params(e), Bootstrap.from_params(e)
    checkpoint = args.models / baseline / "best.pt"
    best = load_checkpoint(checkpoint, BestCheckpoint)
    model, vocab = rebuild_model(best)
    device = resolve_device(params.train.device)
    model.to(device)
    max_words, precision = best.spec.max_caption_words, run_precision(best.spec.train)

    def encoded(name: str) -> tuple:
        with FeatureStore(store_file(args.features, name)) as store, computing(precision, device):
            check_store_fits(store, best.spec.dims, f"checkpoint {checkpoint}")
            return encode_store(model, store, vocab, max_words, device), store_text(store)

    val, (val_ocr, val_captions) = encoded(VALIDATION)
    chosen = {}
    for variant, fuzzy in VARIANTS.items():
        match = text_match(val_ocr, val_captions, fuzzy, h.min_fuzzy_length)
        chosen[variant] = control_weight(model, val, match, h.weights, budget)
        log.info(
            "%s control: weight %g chosen on %s (rsum by weight %s)",
            variant,
            *chosen[variant][:1],
            VALIDATION,
            chosen[variant][1],
        )
    for split in e.splits:
        enc, (ocr, captions) = encoded(CTC.store(split))
        metrics, saved = {"baseline": baseline, "split": split, "validation": VALIDATION}, {}
        for variant, fuzzy in VARIANTS.items():
            weight, val_rsums = chosen[variant]
            match = text_match(ocr, captions, fuzzy, h.min_fuzzy_length)
            result, ranks = evaluate_control(model, enc, match, weight, budget, bootstrap)
            metrics[variant] = {"weight": weight, "val_rsum_by_weight": val_rsums, **result}
            saved.update({f"{variant}_{key}": value for key, value in ranks.items()})
            log.info("%s on %s: %s control rsum %.1f (weight %g)", baseline, split, variant, result["rsum"], weight)
        write_text(args.metrics / f"{split}.json", json.dumps(metrics, indent=2) + "\n")
        with atomic_path(args.ranks / f"{split}.npz") as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, **saved)
