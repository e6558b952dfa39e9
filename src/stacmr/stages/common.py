"""What every stage entry point shares: the `--params` flag, logging, and the DVC context of the run."""

from __future__ import annotations

import argparse
import logging
import os

from stacmr.models import check_models
from stacmr.params import Params, ParamsError, load_params

log = logging.getLogger("stacmr")


def parser(stage: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"stacmr {stage}", description=description)
    p.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    return p


def load_checked_params(path: str | os.PathLike) -> Params:
    """`load_params`, then the model families' settings (`stacmr.models.check_models`), named with the file too."""
    params = load_params(path)
    try:
        return check_models(params)
    except ParamsError as exc:
        raise ParamsError(f"{path}: {exc}") from None


def start(stage: str, args: argparse.Namespace) -> Params:
    """Validate params, the families' settings included (before any I/O), and log where and under which DVC stage
    this runs."""
    params = load_checked_params(args.params)
    log.info(
        "stage %s (DVC_STAGE=%s, DVC_ROOT=%s)", stage, os.environ.get("DVC_STAGE", "-"), os.environ.get("DVC_ROOT", "-")
    )
    return params
