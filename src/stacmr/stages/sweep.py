"""`sweep`: collect the OCR-noise sweep's DVC experiments (`dvc exp run -S synthetic.ocr_char_error=...`, README
"OCR-noise sweep") into one table, `--out` (CSV): rsum and the "does it read?" scores per noise level, ablation and
split, read from each experiment's `<metrics>/<ablation>/<split>.json`. The report draws it when the file exists."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stacmr.atomic import write_text
from stacmr.errors import StacmrError
from stacmr.reporting.sweep import sweep_rows
from stacmr.stages.common import log, parser, start


def main(argv: list[str] | None = None) -> None:
    p = parser("sweep", __doc__)
    p.add_argument("--ablations", nargs="+", required=True, help="the ablations the sweep compares")
    p.add_argument("--metrics", required=True, type=Path, help="the evaluate stages' metrics folder (repo-relative)")
    p.add_argument("--out", required=True, type=Path, help="the sweep table to write (CSV)")
    p.add_argument("--commits", type=int, default=1, help="experiments of the last N commits (default: %(default)s)")
    args = p.parse_args(argv)
    params = start("sweep", args)
    unknown = [a for a in args.ablations if a not in params.ablations]
    if unknown:
        raise StacmrError(f"--ablations: not in params.yaml ablations: {unknown}")
    import dvc.api  # only here: collecting experiments is the one thing in stacmr that needs DVC's API
    from dvc.exceptions import PathMissingError

    def read(rev: str, ablation: str, split: str) -> dict[str, Any] | None:
        path = args.metrics / ablation / f"{split}.json"
        try:  # the workspace's file as it is, an experiment's as committed
            return json.loads(dvc.api.read(path.as_posix(), rev=None if rev == "workspace" else rev))
        except PathMissingError:
            return None

    table = sweep_rows(dvc.api.exp_show(num=args.commits), tuple(args.ablations), params.evaluate.splits, read)
    if table.empty:
        raise StacmrError(f"no DVC experiment with `synthetic.ocr_char_error` and metrics of {args.ablations}")
    write_text(args.out, table.to_csv(index=False, float_format="%.4f"))
    log.info("%s: %d rows from %d experiments", args.out, len(table), table["experiment"].nunique())
