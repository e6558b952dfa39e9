"""The claims check's verdicts as a reader sees them: what they mean for this data, a one-line summary, the
directional verdicts (what synthetic data can check) as a short table, the published numbers as an appendix, a
terminal view that fits 120 columns (`stacmr verify`), and the files `reports/claims/verdicts.{md,tex,csv,json}`.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from stacmr.atomic import write_text
from stacmr.evaluation.metrics import RSUM_TERMS
from stacmr.jsonfile import read_json
from stacmr.params import ReportParams
from stacmr.reporting.claims import NOT_COMPARABLE, NOT_REPRODUCED, REPRODUCED, WITHIN_TOLERANCE, Verdict
from stacmr.reporting.render import Table, write_table

TERMINAL_WIDTH = 120


def meaning(data_source: str, report: ReportParams) -> str:
    """What the verdicts mean for this run's data, in plain words."""
    test = (
        "Directions are tested over every training run of the two ablations (params.yaml `replicates`) with a "
        f"bootstrap that draws seeds, then test images ({report.permutations} resamples, α = {report.alpha:g})."
    )
    if data_source == "synthetic":
        return (
            "These results come from the embedded synthetic CTC world, not from the real CTC data: their absolute "
            'numbers are not comparable to the paper\'s, and every published number reads "not comparable". What '
            "synthetic data can check is the direction of a claim (e.g. scene-text aware beats visual only on "
            f"CTC-1K). {test}"
        )
    return (
        "These results come from the real CTC data: absolute numbers are comparable to the paper's. A published "
        f'number is "reproduced" when it lies in our 95% bootstrap CI, "within tolerance" when it is within '
        f'{report.tolerance:g} points (rsum: {len(RSUM_TERMS) * report.tolerance:g}), else "not reproduced". {test}'
    )


def _count(verdicts: list[Verdict]) -> str:
    counts = [
        (kind, sum(v.verdict == kind for v in verdicts))
        for kind in (REPRODUCED, WITHIN_TOLERANCE, NOT_REPRODUCED, NOT_COMPARABLE)
    ]
    return ", ".join(f"{n} {kind}" for kind, n in counts if n) or "none"


def summary(verdicts: list[Verdict]) -> str:
    """One line: the directions' verdicts, then the published numbers'."""
    directions = [v for v in verdicts if v.kind != "number"]
    numbers = [v for v in verdicts if v.kind == "number"]
    return (
        f"Directional claims ({len(directions)}): {_count(directions)}. "
        f"Published numbers ({len(numbers)}): {_count(numbers)}."
    )


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:+.1f}" if signed else f"{value:.1f}"


def _ours(v: Verdict, signed: bool = False) -> str:
    return _fmt(v.reproduced, signed) + (f" [{v.ci95[0]:.1f}, {v.ci95[1]:.1f}]" if v.ci95 else "")


def _p(v: Verdict) -> str:
    return "—" if v.p_value is None else f"{v.p_value:.3g}"


def direction_table(verdicts: list[Verdict]) -> Table:
    """The directional claims: the paper's effect, ours with its 95% interval, the seed-aware p and the verdict."""
    chosen = [v for v in verdicts if v.kind != "number"]
    wide = pd.DataFrame(
        [
            {
                "claim": v.claim,
                "paper": _fmt(v.claimed, signed=True),
                "ours [95% CI]": _ours(v, signed=True),
                "p": _p(v),
                "verdict": v.verdict,
                "how": v.note,
            }
            for v in chosen
        ]
    )
    notes = (
        "paper: the published difference (better − worse) where the paper gives both numbers; ours: the "
        "difference of the seed means, its interval from the same bootstrap as p.",
    )
    return Table("Directional claims", pd.DataFrame([asdict(v) for v in chosen]), wide, notes)


def number_table(verdicts: list[Verdict]) -> Table:
    """The published numbers beside ours: the appendix of the report."""
    chosen = [v for v in verdicts if v.kind == "number"]
    wide = pd.DataFrame(
        [
            {
                "claim": v.claim,
                "paper": _fmt(v.claimed),
                "ours [95% CI]": _ours(v),
                "difference": _fmt(v.difference, signed=True),
                "verdict": v.verdict,
                "source": v.source,
            }
            for v in chosen
        ]
    )
    return Table("Published numbers", pd.DataFrame([asdict(v) for v in chosen]), wide, ())


def verdict_table(verdicts: list[Verdict], data_source: str, report: ReportParams) -> Table:
    """Every verdict, one row each (the files `verdicts.{md,tex,csv}`), with the summary and meaning as notes."""
    wide = pd.DataFrame(
        [
            {
                "claim": v.claim,
                "source": v.source,
                "claimed": _fmt(v.claimed),
                "reproduced [95% CI]": _ours(v),
                "difference": _fmt(v.difference, signed=True),
                "p": _p(v),
                "verdict": v.verdict,
                "note": v.note,
            }
            for v in verdicts
        ]
    )
    long = pd.DataFrame([asdict(v) for v in verdicts])
    return Table("Paper claims: verdicts", long, wide, (summary(verdicts), meaning(data_source, report)))


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def terminal(verdicts: list[Verdict], data_source: str, report: ReportParams) -> str:
    """The verdicts for a terminal, every line at most `TERMINAL_WIDTH` characters: the summary first, the
    directions, then the published numbers (one line each on real data; counted on synthetic data)."""
    width = TERMINAL_WIDTH
    lines = [*textwrap.wrap(summary(verdicts), width), "", *textwrap.wrap(meaning(data_source, report), width)]
    lines += ["", f"{'verdict':<15} {'ours [95% CI]':<24} {'p':>7}  claim"]
    for v in verdicts:
        if v.kind != "number":
            lines.append(_cut(f"{v.verdict:<15} {_ours(v, signed=True):<24} {_p(v):>7}  {v.claim}", width))
    numbers = [v for v in verdicts if v.kind == "number"]
    if data_source == "synthetic":
        lines += [
            "",
            f"{len(numbers)} published numbers: not comparable on synthetic data "
            "(ours beside each: `stacmr verify --format md`).",
        ]
    elif numbers:
        lines += ["", f"{'verdict':<17} {'paper':>7} {'ours [95% CI]':<22} claim"]
        lines += [_cut(f"{v.verdict:<17} {_fmt(v.claimed):>7} {_ours(v):<22} {v.id}", width) for v in numbers]
    return "\n".join(lines) + "\n"


def to_json(verdicts: list[Verdict], data_source: str, report: ReportParams) -> str:
    return (
        json.dumps(
            {
                "data_source": data_source,
                "summary": summary(verdicts),
                "meaning": meaning(data_source, report),
                "verdicts": [asdict(v) for v in verdicts],
            },
            indent=2,
        )
        + "\n"
    )


def write_verdicts(verdicts: list[Verdict], data_source: str, report: ReportParams, out_dir: Path) -> list[Path]:
    """`<out_dir>/verdicts.{md,tex,csv,json}`, each written atomically."""
    paths = write_table(verdict_table(verdicts, data_source, report), out_dir, "verdicts")
    write_text(Path(out_dir) / "verdicts.json", to_json(verdicts, data_source, report))
    return [*paths, Path(out_dir) / "verdicts.json"]


def read_verdicts(path: Path) -> list[Verdict]:
    """The verdicts written by `write_verdicts` (`verdicts.json`), e.g. for the report notebook."""
    raw = read_json(path, "verdicts file (`stacmr verify --out` / the report stage writes it)")
    return [Verdict(**{**v, "ci95": tuple(v["ci95"]) if v["ci95"] else None}) for v in raw["verdicts"]]
