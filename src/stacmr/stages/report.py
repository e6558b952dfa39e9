"""`report`: the paper artifact. Checks the claims (verdicts.md/.json), writes the headline metrics DVC shows
(`--summary`), then executes the notebooks with papermill: they write the tables (Markdown, LaTeX, CSV) and figures
(PNG, PDF), and are exported to HTML."""

from __future__ import annotations

from pathlib import Path

from stacmr.reporting.claims import load_claims, verify
from stacmr.reporting.notebooks import run_notebooks
from stacmr.reporting.results import load_results
from stacmr.reporting.scope import scoped
from stacmr.reporting.seeds import seed_runs
from stacmr.reporting.summary import summary, write_summary
from stacmr.reporting.verdicts import write_verdicts
from stacmr.stages.common import log, parser, start
from stacmr.stages.verify import add_input_flags


def main(argv: list[str] | None = None) -> None:
    p = parser("report", __doc__)
    add_input_flags(p)
    p.add_argument("--features", required=True, type=Path, help="feature stores (captions, OCR tokens)")
    p.add_argument("--history", required=True, type=Path, help="training history CSVs (the training figure)")
    p.add_argument("--neighbours", required=True, type=Path, help="the neighbours stage's folder (cluster agreement)")
    p.add_argument("--sweep", required=True, type=Path, help="the OCR-noise sweep table (drawn when it exists)")
    p.add_argument("--notebooks", required=True, type=Path, help="folder of the report notebooks")
    p.add_argument("--verdicts", required=True, type=Path, help="output folder of the claims verdicts")
    p.add_argument("--tables", required=True, type=Path, help="output folder of the tables")
    p.add_argument("--figures", required=True, type=Path, help="output folder of the figures")
    p.add_argument("--executed", required=True, type=Path, help="output folder of executed notebooks and HTML")
    p.add_argument("--summary", required=True, type=Path, help="headline metrics JSON to write (the DVC metric)")
    args = p.parse_args(argv)
    params = scoped(start("report", args), args.scope)
    results = load_results(params, args.metrics, args.models, args.ranks)
    verdicts = verify(load_claims(args.claims), results, seed_runs(results, args.metrics), params.report)
    write_verdicts(verdicts, params.data.source, params.report, args.verdicts)
    write_summary(summary(results, args.metrics / "train"), args.summary)
    inputs = (
        "scope",
        "params",
        "claims",
        "metrics",
        "models",
        "ranks",
        "features",
        "history",
        "neighbours",
        "sweep",
        "verdicts",
        "tables",
        "figures",
    )
    # paths as given (relative in dvc.yaml): the kernel runs in this cwd; the executed notebook holds no absolute path
    pages = run_notebooks(args.notebooks, args.executed, {k: str(getattr(args, k)) for k in inputs})
    log.info("report: %s", ", ".join(str(page) for page in pages))
