"""`check-params`: validate the params file whole, as the first stage of the pipeline; writes `--out` when it is valid.

DVC deletes a stage's outputs before it runs the stage, so a typo that the stage itself finds comes too late: its
outputs are gone. Every stage of dvc.yaml depends on this one's output, and this stage on the whole params file, so
any edit of it (a section no stage reads, such as `extract`, included) is checked before anything is deleted. The
output's content never changes: DVC sees an unchanged dependency and reruns only the stages whose params changed.
"""

from __future__ import annotations

from pathlib import Path

from stacmr.atomic import write_text
from stacmr.stages.common import log, parser, start

CONTENT = "params checked by `stacmr check-params` (this file's content never changes)\n"


def main(argv: list[str] | None = None) -> None:
    p = parser("check-params", __doc__)
    p.add_argument("--out", required=True, type=Path, help="file written once the params are valid")
    args = p.parse_args(argv)
    start("check-params", args)
    write_text(args.out, CONTENT)
    log.info("%s: valid", args.params)
