"""`compare`: judge a rerun against the committed metrics: every number of the metrics folder is "same",
"within seed variance" (of the training-seed replicates) or "differs" ("new" or "gone" when only one side has it),
summary first. Exit status 2 only with `--strict` when a metric differs or is gone."""

from __future__ import annotations

from pathlib import Path

from stacmr.errors import StacmrError
from stacmr.reporting.rerun import DIFFERS, GONE, compare, render, revision_metrics, seed_sd, workspace_metrics
from stacmr.stages.common import parser, start
from stacmr.workspace import repo_root


def main(argv: list[str] | None = None) -> None:
    p = parser("compare", __doc__)
    p.add_argument("--against", default="HEAD", help="git revision holding the reference metrics (%(default)s)")
    p.add_argument("--metrics", default=Path("reports/metrics"), type=Path, help="metrics folder (%(default)s)")
    p.add_argument("--all", action="store_true", help="also list the changes within seed variance")
    p.add_argument("--strict", action="store_true", help="exit with status 2 when a metric differs or is gone")
    args = p.parse_args(argv)
    params = start("compare", args)
    if not args.metrics.is_dir():
        raise StacmrError(f"{args.metrics}: no metrics folder (run `dvc repro` first)")
    now = workspace_metrics(args.metrics)
    before = revision_metrics(repo_root(), args.against, args.metrics)
    changes = compare(before, now, seed_sd(params, before))  # the reference's seed spread, not the rerun's
    print(render(changes, args.against, args.all), end="")
    differing = sum(c.verdict in (DIFFERS, GONE) for c in changes)
    if args.strict and differing:
        raise StacmrError(f"--strict: {differing} metric(s) differ beyond seed variance or are gone")
