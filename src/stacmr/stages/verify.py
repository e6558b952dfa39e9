"""`verify`: check the paper's claims (the claims YAML) against the evaluated metrics and ranks, and print the
verdicts: the summary first, then the directional claims, then the published numbers. The paths default to the
pipeline's (dvc.yaml); `--out` also writes verdicts.{md,tex,csv,json}. Exit status 2 only with `--strict` when a
claim is "not reproduced"."""

from __future__ import annotations

import argparse
from pathlib import Path

from stacmr.errors import StacmrError
from stacmr.reporting.claims import NOT_REPRODUCED, load_claims, verify
from stacmr.reporting.render import markdown
from stacmr.reporting.results import load_results
from stacmr.reporting.scope import CLAIMS, SCOPES, scoped
from stacmr.reporting.seeds import seed_runs
from stacmr.reporting.verdicts import terminal, verdict_table, write_verdicts
from stacmr.stages.common import log, parser, start


def add_input_flags(p: argparse.ArgumentParser) -> None:
    """The flags `verify` and `report` share: which rows (`--scope`), where the claims, metrics, checkpoints and ranks
    are (defaults: the pipeline's paths, as dvc.yaml gives them)."""
    rows = "claims: report.baseline and report.scene_text (`make repro`); grid: every evaluated ablation (`make grid`)"
    p.add_argument("--scope", choices=SCOPES, default=CLAIMS, help=f"{rows} (default: %(default)s)")
    p.add_argument("--claims", default=Path("paper_claims.yaml"), type=Path, help="the paper's claims (%(default)s)")
    p.add_argument(
        "--metrics",
        default=Path("reports/metrics"),
        type=Path,
        help="metrics: <ablation>/<split>.json and replicates/ (%(default)s)",
    )
    p.add_argument("--models", default=Path("artifacts/models"), type=Path, help="checkpoint directories (%(default)s)")
    p.add_argument(
        "--ranks",
        default=Path("artifacts/ranks"),
        type=Path,
        help="per-query ranks: <ablation>/<split>.npz and replicates/ (%(default)s)",
    )


def main(argv: list[str] | None = None) -> None:
    p = parser("verify", __doc__)
    add_input_flags(p)
    formats = "text: fits 120 columns; md: the full Markdown table with every note (default: %(default)s)"
    p.add_argument("--format", choices=("text", "md"), default="text", help=formats)
    p.add_argument("--out", type=Path, help="directory to write verdicts.{md,tex,csv,json} into")
    p.add_argument("--strict", action="store_true", help="exit with status 2 when a claim is not reproduced")
    args = p.parse_args(argv)
    params = scoped(start("verify", args), args.scope)
    claims = load_claims(args.claims)
    results = load_results(params, args.metrics, args.models, args.ranks)
    verdicts = verify(claims, results, seed_runs(results, args.metrics), params.report)
    source = params.data.source
    if args.format == "md":
        print(markdown(verdict_table(verdicts, source, params.report)), end="")
    else:
        print(terminal(verdicts, source, params.report), end="")
    if args.out:
        for path in write_verdicts(verdicts, source, params.report, args.out):
            log.info("wrote %s", path)
    failed = [v.id for v in verdicts if v.verdict == NOT_REPRODUCED]
    if args.strict and failed:
        raise StacmrError(f"--strict: {len(failed)} claim(s) not reproduced: {', '.join(failed)}")
