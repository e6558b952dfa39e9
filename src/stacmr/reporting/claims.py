"""The paper's claims checked against the reproduced results: `stacmr verify` and the report's claims section.

Reads the claims YAML (`paper_claims.yaml`: every published number with its source, plus the directional claims)
and the `Results`; returns one `Verdict` per claim and renders them as Markdown and JSON.

Claims file:
  sources: {key: where the numbers were read}
  numbers: one entry per (method, split): method, ablation (our counterpart, or null), train_data (null when the
           source does not say), split (dev = CTC-1K, test = CTC-5K), source (a key of `sources`), where (table and
           row), i2t: [R@1, R@5, R@10], t2i: [R@1, R@5, R@10], rsum
  directions: id, claim (in words), source, split, metric (rsum or a recall key), better and worse (ablations),
           and for kind `gap` a second split `than`: the better−worse gap on `split` exceeds the gap on `than`.

Verdicts. A number: "reproduced" when the paper's value lies in our 95% CI, "within tolerance" when it is within
`report.tolerance` points (six times that for rsum, which sums six recalls), else "not reproduced"; "not
comparable" when our run is on synthetic data (its absolute numbers mean nothing for the paper's) or has no
counterpart. A direction: "reproduced" when ours points the same way and the paired test says p < `report.alpha`
(for a gap: the gap is larger on `split` than on `than`, and significant on `split`); else "not reproduced". Those
are checkable on synthetic data, since the synthetic world is built so that scene text matters as in the paper.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml

from stacmr.atomic import write_text
from stacmr.errors import StacmrError
from stacmr.evaluation.metrics import RECALL_KS
from stacmr.params import ReportParams
from stacmr.reporting.comparison import paired_difference
from stacmr.reporting.labels import split_label
from stacmr.reporting.render import Table, write_table
from stacmr.reporting.results import METRIC_KEYS, Results

REPRODUCED = "reproduced"
WITHIN_TOLERANCE = "within tolerance"
NOT_REPRODUCED = "not reproduced"
NOT_COMPARABLE = "not comparable"


@dataclass(frozen=True)
class NumberClaim:
    id: str  # e.g. "STARNet/dev/i2t_r1"
    method: str
    ablation: str | None
    train_data: str | None
    split: str
    metric: str
    value: float
    source: str  # where the number was read: source key, table, row and column


@dataclass(frozen=True)
class DirectionClaim:
    id: str
    claim: str
    source: str
    split: str
    metric: str
    better: str
    worse: str
    than: str | None  # a gap claim: the gap on `split` exceeds the gap on this split


@dataclass(frozen=True)
class Claims:
    sources: dict[str, str]
    numbers: tuple[NumberClaim, ...]
    directions: tuple[DirectionClaim, ...]


@dataclass(frozen=True)
class Verdict:
    id: str
    kind: Literal["number", "direction", "gap"]
    claim: str
    source: str
    split: str
    metric: str
    claimed: float | None  # the paper's number (for a direction: the paper's difference, when it has both numbers)
    reproduced: float | None  # ours (for a direction: our difference)
    ci95: tuple[float, float] | None
    difference: float | None  # reproduced − claimed
    p_value: float | None
    verdict: str
    note: str


def _need(entry: dict, key: str, where: str) -> Any:
    if key not in entry:
        raise StacmrError(f"{where}: missing key {key!r}")
    return entry[key]


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StacmrError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _split(value: Any, where: str) -> str:
    if value not in ("dev", "test"):
        raise StacmrError(f"{where}: split must be dev (CTC-1K) or test (CTC-5K), got {value!r}")
    return value


def _numbers(path: Path, i: int, entry: dict, sources: dict[str, str]) -> list[NumberClaim]:
    where = f"{path}: numbers[{i}]"
    method, split = str(_need(entry, "method", where)), _split(_need(entry, "split", where), where)
    source_key = _need(entry, "source", where)
    if source_key not in sources:
        raise StacmrError(f"{where}: source {source_key!r} is not a key of `sources`")
    claims = []
    for direction, arrow in (("i2t", "image→text"), ("t2i", "text→image")):
        values = _need(entry, direction, where)
        if not isinstance(values, list) or len(values) != len(RECALL_KS):
            raise StacmrError(f"{where}.{direction}: expected [R@1, R@5, R@10], got {values!r}")
        for k, value in zip(RECALL_KS, values, strict=True):
            column = f"{split_label(split)} {arrow} R@{k}"
            claims.append((f"{direction}_r{k}", _number(value, f"{where}.{direction}"), column))
    claims.append(("rsum", _number(_need(entry, "rsum", where), f"{where}.rsum"), f"{split_label(split)} rsum"))
    table_row = _need(entry, "where", where)
    ablation, train_data = entry.get("ablation"), entry.get("train_data")
    return [
        NumberClaim(
            f"{method}/{split}/{metric}",
            method,
            ablation,
            train_data,
            split,
            metric,
            value,
            f"{table_row}, column {column} [{source_key}]",
        )
        for metric, value, column in claims
    ]


def _direction(path: Path, i: int, entry: dict, sources: dict[str, str]) -> DirectionClaim:
    where = f"{path}: directions[{i}]"
    metric = _need(entry, "metric", where)
    if metric not in METRIC_KEYS:
        raise StacmrError(f"{where}: metric must be one of {list(METRIC_KEYS)}, got {metric!r}")
    if _need(entry, "source", where) not in sources:
        raise StacmrError(f"{where}: source {entry['source']!r} is not a key of `sources`")
    than = entry.get("than")
    return DirectionClaim(
        str(_need(entry, "id", where)), str(_need(entry, "claim", where)), entry["source"],
        _split(_need(entry, "split", where), where), metric, str(_need(entry, "better", where)),
        str(_need(entry, "worse", where)), None if than is None else _split(than, f"{where}.than"),
    )  # fmt: skip


def load_claims(path: Path) -> Claims:
    """Parse and validate the claims file; a problem is one StacmrError naming the file and the entry."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise StacmrError(f"{path}: cannot read claims file: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise StacmrError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict) or set(raw) != {"sources", "numbers", "directions"}:
        raise StacmrError(f"{path}: expected exactly the keys sources, numbers, directions")
    if not isinstance(raw["sources"], dict):
        raise StacmrError(f"{path}: sources: expected a mapping of source key → description")
    for key in ("numbers", "directions"):
        if not isinstance(raw[key], list) or not all(isinstance(e, dict) for e in raw[key]):
            raise StacmrError(f"{path}: {key}: expected a list of mappings")
    sources = {str(k): str(v) for k, v in raw["sources"].items()}
    numbers = [c for i, e in enumerate(raw["numbers"]) for c in _numbers(path, i, e, sources)]
    directions = [_direction(path, i, e, sources) for i, e in enumerate(raw["directions"])]
    ids = [c.id for c in (*numbers, *directions)]
    if len(set(ids)) != len(ids):
        raise StacmrError(f"{path}: a claim id appears twice ({sorted({i for i in ids if ids.count(i) > 1})})")
    return Claims(sources, tuple(numbers), tuple(directions))


def _check_number(claim: NumberClaim, results: Results, report: ReportParams) -> Verdict:
    words = f"{claim.method} {split_label(claim.split)} {claim.metric} = {claim.value:g}"
    ours = results.get(claim.ablation, claim.split) if claim.ablation else None
    base = dict(id=claim.id, kind="number", claim=words, source=claim.source, split=claim.split, metric=claim.metric,
                claimed=claim.value, p_value=None)  # fmt: skip
    if ours is None:
        note = "no counterpart in this project" if claim.ablation is None else f"{claim.ablation} not evaluated"
        return Verdict(**base, reproduced=None, ci95=None, difference=None, verdict=NOT_COMPARABLE, note=note)
    value, (low, high) = ours.value(claim.metric), ours.ci(claim.metric)
    numbers = dict(reproduced=value, ci95=(low, high), difference=value - claim.value)
    if results.params.data.source == "synthetic":
        note = f"{ours.ablation} on synthetic data: absolute numbers are not comparable to the paper's"
        return Verdict(**base, **numbers, verdict=NOT_COMPARABLE, note=note)
    tolerance = report.tolerance * (len(METRIC_KEYS) - 1 if claim.metric == "rsum" else 1)
    if low <= claim.value <= high:
        verdict = REPRODUCED
    elif abs(value - claim.value) <= tolerance:
        verdict = WITHIN_TOLERANCE
    else:
        verdict = NOT_REPRODUCED
    return Verdict(**base, **numbers, verdict=verdict, note=f"{ours.ablation}; tolerance ±{tolerance:g} points")


def _paper_difference(claims: Claims, claim: DirectionClaim, split: str) -> float | None:
    """The paper's better − worse difference on `split`, when the claims file has both numbers."""
    by_ablation = {(c.ablation, c.split, c.metric): c.value for c in claims.numbers}
    better, worse = (
        by_ablation.get((claim.better, split, claim.metric)),
        by_ablation.get((claim.worse, split, claim.metric)),
    )
    return None if better is None or worse is None else better - worse


def _check_direction(claim: DirectionClaim, claims: Claims, results: Results, report: ReportParams) -> Verdict:
    splits = [claim.split] + ([claim.than] if claim.than else [])
    kind = "gap" if claim.than else "direction"
    missing = [f"{a}-{s}" for a in (claim.better, claim.worse) for s in splits if results.get(a, s) is None]
    paper = [_paper_difference(claims, claim, s) for s in splits]
    claimed = None if None in paper else (paper[0] - paper[1] if claim.than else paper[0])
    base = dict(id=claim.id, kind=kind, claim=claim.claim, source=claim.source, split=claim.split,
                metric=claim.metric, claimed=claimed, ci95=None)  # fmt: skip
    if missing:
        return Verdict(**base, reproduced=None, difference=None, p_value=None, verdict=NOT_COMPARABLE,
                       note=f"not evaluated here: {', '.join(missing)}")  # fmt: skip
    diffs = [paired_difference(results, claim.better, claim.worse, s, claim.metric, report.permutations, report.seed)
             for s in splits]  # fmt: skip
    (gap, p), significant = diffs[0], diffs[0][1] < report.alpha
    if claim.than:
        other = diffs[1][0]
        ours = gap - other
        holds = ours > 0 and gap > 0 and significant
        note = (f"gap {gap:+.2f} on {split_label(claim.split)} (p = {p:.3g}) vs {other:+.2f} on "
                f"{split_label(claim.than)}; {claim.better} − {claim.worse}")  # fmt: skip
    else:
        ours, holds = gap, gap > 0 and significant
        note = f"{claim.better} − {claim.worse}, paired sign-flip test over the same queries"
    if not holds and ours > 0 and gap > 0 and not significant:
        note += f"; right direction but not significant at α = {report.alpha:g}"
    difference = None if claimed is None else ours - claimed
    return Verdict(**base, reproduced=ours, difference=difference, p_value=p,
                   verdict=REPRODUCED if holds else NOT_REPRODUCED, note=note)  # fmt: skip


def verify(claims: Claims, results: Results, report: ReportParams) -> list[Verdict]:
    """One verdict per claim: the directions first (what synthetic data can check), then the numbers, in file
    order."""
    return [
        *(_check_direction(c, claims, results, report) for c in claims.directions),
        *(_check_number(c, results, report) for c in claims.numbers),
    ]


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:+.1f}" if signed else f"{value:.1f}"


def preamble(results: Results, report: ReportParams) -> str:
    """What the verdicts mean for this run, in plain words."""
    if results.params.data.source == "synthetic":
        return (
            "These results come from the embedded synthetic CTC world, not from the real CTC data. Their absolute "
            'numbers are not comparable to the paper\'s, so every published number below reads "not comparable" '
            "(ours are shown beside it for the record). What synthetic data can check is the direction of a claim "
            "(e.g. scene-text aware beats visual only on CTC-1K): those are tested with a paired sign-flip "
            f"permutation test over the same queries ({report.permutations} sign flips, α = {report.alpha:g}) and "
            'read "reproduced" or "not reproduced".'
        )
    return (
        f'A published number is "reproduced" when it lies in our 95% bootstrap CI, "within tolerance" when it '
        f'is within {report.tolerance:g} points (rsum: {6 * report.tolerance:g}), else "not reproduced". '
        f"Directions are tested with a paired sign-flip permutation test (α = {report.alpha:g})."
    )


def verdict_table(verdicts: list[Verdict], results: Results, report: ReportParams) -> Table:
    """The verdicts as a table (long form: every field of `Verdict`), with what they mean as its note."""
    rows = [
        {"claim": v.claim, "source": v.source, "claimed": _fmt(v.claimed),
         "reproduced [95% CI]": _fmt(v.reproduced) + (f" [{v.ci95[0]:.1f}, {v.ci95[1]:.1f}]" if v.ci95 else ""),
         "difference": _fmt(v.difference, signed=True), "p": "—" if v.p_value is None else f"{v.p_value:.3g}",
         "verdict": v.verdict, "note": v.note}
        for v in verdicts
    ]  # fmt: skip
    counts = {kind: sum(v.verdict == kind for v in verdicts) for kind in
              (REPRODUCED, WITHIN_TOLERANCE, NOT_REPRODUCED, NOT_COMPARABLE)}  # fmt: skip
    summary = "Summary: " + ", ".join(f"{n} {kind}" for kind, n in counts.items()) + "."
    long = pd.DataFrame([asdict(v) for v in verdicts])
    return Table("Paper claims: verdicts", long, pd.DataFrame(rows), (preamble(results, report), summary))


def to_json(verdicts: list[Verdict], results: Results, report: ReportParams) -> str:
    return json.dumps(
        {"data_source": results.params.data.source, "meaning": preamble(results, report),
         "verdicts": [asdict(v) for v in verdicts]}, indent=2,
    ) + "\n"  # fmt: skip


def write_verdicts(verdicts: list[Verdict], results: Results, report: ReportParams, out_dir: Path) -> list[Path]:
    """`<out_dir>/verdicts.{md,tex,csv,json}`, each written atomically."""
    paths = write_table(verdict_table(verdicts, results, report), out_dir, "verdicts")
    write_text(Path(out_dir) / "verdicts.json", to_json(verdicts, results, report))
    return [*paths, Path(out_dir) / "verdicts.json"]
