"""`verify`: check the paper's claims (the claims YAML) against the evaluated metrics and ranks; print one verdict
per claim, optionally write them (`--out`: verdicts.md, .tex, .csv, .json). Exit status 2 only with `--strict` when a
claim is "not reproduced"."""

from __future__ import annotations

import argparse
from pathlib import Path

from stacmr.errors import StacmrError
from stacmr.reporting.claims import NOT_REPRODUCED, load_claims, verdict_table, verify, write_verdicts
from stacmr.reporting.render import markdown
from stacmr.reporting.results import load_results
from stacmr.stages.common import log, parser, start


def add_input_flags(p: argparse.ArgumentParser) -> None:
    """The flags `verify` and `report` share: where the claims, metrics, run ids and ranks are."""
    p.add_argument("--claims", required=True, type=Path, help="the paper's claims (YAML)")
    p.add_argument("--metrics", required=True, type=Path, help="metrics directory: <ablation>/<split>.json")
    p.add_argument("--models", required=True, type=Path, help="checkpoint directories (their MLflow run ids)")
    p.add_argument("--ranks", required=True, type=Path, help="ranks directory: <ablation>/<split>.npz")


def main(argv: list[str] | None = None) -> None:
    p = parser("verify", __doc__)
    add_input_flags(p)
    p.add_argument("--out", type=Path, help="directory to write verdicts.{md,tex,csv,json} into")
    p.add_argument("--strict", action="store_true", help="exit with status 2 when a claim is not reproduced")
    args = p.parse_args(argv)
    params = start("verify", args)
    claims = load_claims(args.claims)
    results = load_results(params, args.metrics, args.models, args.ranks)
    verdicts = verify(claims, results, params.report)
    print(markdown(verdict_table(verdicts, results, params.report)), end="")
    if args.out:
        for path in write_verdicts(verdicts, results, params.report, args.out):
            log.info("wrote %s", path)
    failed = [v.id for v in verdicts if v.verdict == NOT_REPRODUCED]
    if args.strict and failed:
        raise StacmrError(f"--strict: {len(failed)} claim(s) not reproduced: {', '.join(failed)}")
