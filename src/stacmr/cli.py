"""`stacmr <stage> [flags]`: the one console entry point; each stage's flags are its own (`stacmr <stage> -h`)."""

from __future__ import annotations

import importlib
import logging
import sys

from stacmr.errors import StacmrError

STAGES = {
    "fetch": "stacmr.stages.fetch",
    "features": "stacmr.stages.features",
    "trainset": "stacmr.stages.trainset",
    "neighbours": "stacmr.stages.neighbours",
    "train": "stacmr.stages.train",
    "evaluate": "stacmr.stages.evaluate",
    "headroom": "stacmr.stages.headroom",
    "configure": "stacmr.stages.configure",
    "extract": "stacmr.stages.extract",
    "ocr-quality": "stacmr.stages.ocr_quality",
    "verify": "stacmr.stages.verify",
    "report": "stacmr.stages.report",
    "sweep": "stacmr.stages.sweep",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in STAGES:
        print(f"usage: stacmr {{{','.join(STAGES)}}} [flags]   (stacmr <stage> -h for a stage's flags)")
        if argv and argv[0] not in ("-h", "--help"):
            print(f"stacmr: error: unknown stage {argv[0]!r}", file=sys.stderr)
            return 2
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        importlib.import_module(STAGES[argv[0]]).main(argv[1:])
    except StacmrError as exc:
        print(f"stacmr {argv[0]}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"stacmr {argv[0]}: interrupted; no partial output was kept", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
