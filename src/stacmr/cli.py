"""`stacmr <stage> [flags]`: the one console entry point; each stage's flags are its own (`stacmr <stage> -h`).

`stacmr --help` lists the stages from the table below, without importing any of them (most import torch).
"""

from __future__ import annotations

import difflib
import importlib
import logging
import sys
from typing import NamedTuple

from stacmr.errors import StacmrError


class Stage(NamedTuple):
    module: str  # its `main(argv)` runs the stage
    summary: str  # one line for `stacmr --help`


STAGES = {
    "check-params": Stage("stacmr.stages.check", "validate params.yaml whole, first: a typo deletes no output"),
    "fetch": Stage("stacmr.stages.fetch", "raw inputs in the release format: the synthetic world or the real release"),
    "features": Stage("stacmr.stages.features", "release format → one HDF5 feature store per split (+ OCR fastText)"),
    "trainset": Stage("stacmr.stages.trainset", "the training stores concatenated into one, the caption vocabulary"),
    "neighbours": Stage("stacmr.stages.neighbours", "model-free visual neighbours and clusters of every store"),
    "train": Stage("stacmr.stages.train", "train one ablation: checkpoints, history, validation metrics, MLflow run"),
    "evaluate": Stage("stacmr.stages.evaluate", "one checkpoint on one CTC split: metrics with CIs, per-query ranks"),
    "headroom": Stage("stacmr.stages.headroom", "the text-match control fused with the visual baseline, evaluated"),
    "configure": Stage("stacmr.stages.configure", "merge a partial params file (e.g. configs/release.yaml) into it"),
    "extract": Stage("stacmr.stages.extract", "a folder of images → one release-format split (regions, OCR tokens)"),
    "ocr-quality": Stage("stacmr.stages.ocr_quality", "word recall and precision of the OCR engine on rendered scenes"),
    "verify": Stage("stacmr.stages.verify", "check the paper's claims against the evaluated metrics and ranks"),
    "compare": Stage("stacmr.stages.compare", "a rerun's metrics vs the committed ones: same, seed noise or differs"),
    "report": Stage("stacmr.stages.report", "the paper artifact: claims, tables, figures, the executed notebook"),
    "sweep": Stage("stacmr.stages.sweep", "collect the OCR-noise sweep's DVC experiments into one CSV table"),
}

USAGE = "usage: stacmr <stage> [flags]   (stacmr <stage> -h for a stage's flags)"


def _help() -> str:
    width = max(map(len, STAGES))
    return "\n".join([USAGE, "", "stages:", *(f"  {name:<{width}}  {stage.summary}" for name, stage in STAGES.items())])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(_help())
        return 0
    if argv[0] not in STAGES:
        close = difflib.get_close_matches(argv[0], list(STAGES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        print(f"{USAGE}\nstacmr: error: unknown stage {argv[0]!r}{hint}; `stacmr --help` lists them", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        importlib.import_module(STAGES[argv[0]].module).main(argv[1:])
    except StacmrError as exc:
        print(f"stacmr {argv[0]}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"stacmr {argv[0]}: interrupted; no partial output was kept", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
