"""What every stage entry point shares: the `--params` flag, logging, and the DVC context of the run."""

from __future__ import annotations

import argparse
import logging
import os

from stacmr.params import Params, load_params

log = logging.getLogger("stacmr")


def parser(stage: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"stacmr {stage}", description=description)
    p.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    return p


def start(stage: str, args: argparse.Namespace) -> Params:
    """Validate params (before any I/O) and log where and under which DVC stage this runs."""
    params = load_params(args.params)
    log.info(
        "stage %s (DVC_STAGE=%s, DVC_ROOT=%s)", stage, os.environ.get("DVC_STAGE", "-"), os.environ.get("DVC_ROOT", "-")
    )
    return params
