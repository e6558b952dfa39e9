"""The paper's claims checked against the reproduced results: `stacmr verify` and the report's claims section.

Reads the claims YAML (`paper_claims.yaml`: every published number with its source, plus the directional claims)
and the `Results`; returns one `Verdict` per claim (`reporting/verdicts.py` renders them).

Claims file:
  sources: {key: where the numbers were read}
  numbers: one entry per (method, split): method, ablation (our counterpart, or null), train_data (null when the
           source does not say), split (dev = CTC-1K, test = CTC-5K), source (a key of `sources`), where (table and
           row), i2t: [R@1, R@5, R@10], t2i: [R@1, R@5, R@10], rsum
  directions: id, claim (in words), source, split, metric (rsum or a recall key), better and worse (ablations),
           and for kind `gap` a second split `than`: the better−worse gap on `split` exceeds the gap on `than`.

Verdicts. A number: "reproduced" when the paper's value lies in our 95% CI, "within tolerance" when it is within
`report.tolerance` points (rsum: that times its terms, six recalls), else "not reproduced"; "not
comparable" when our run is on synthetic data (its absolute numbers mean nothing for the paper's) or has no
counterpart. A direction: "reproduced" when ours points the same way and the seed-aware test says p < `report.alpha`
(for a gap: the gap is larger on `split` than on `than`, and significant on `split`); else "not reproduced". The test
takes every training run of both ablations (`seeds.seed_runs`: the replicates of params.yaml `replicates`) and
bootstraps seeds, then images (`statistics.seed_test`), so that seed variance, what moves between the committed
numbers and a rerun, is in it. Directions are checkable on synthetic data, since the synthetic world is built so that
scene text matters as in the paper.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from stacmr.data.sources import TEST_SPLITS, split_label
from stacmr.errors import StacmrError
from stacmr.evaluation.metrics import CI_KEYS, RECALL_KS, RSUM, RSUM_TERMS
from stacmr.params import ReportParams
from stacmr.reporting.comparison import seed_difference
from stacmr.reporting.results import Results
from stacmr.reporting.seeds import SeedRuns
from stacmr.yamlfile import read_yaml

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
    if value not in TEST_SPLITS:
        named = " or ".join(f"{split} ({split_label(split)})" for split in TEST_SPLITS)
        raise StacmrError(f"{where}: split must be {named}, got {value!r}")
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
    if metric not in CI_KEYS:
        raise StacmrError(f"{where}: metric must be one of {list(CI_KEYS)}, got {metric!r}")
    if _need(entry, "source", where) not in sources:
        raise StacmrError(f"{where}: source {entry['source']!r} is not a key of `sources`")
    than = entry.get("than")
    return DirectionClaim(
        str(_need(entry, "id", where)),
        str(_need(entry, "claim", where)),
        entry["source"],
        _split(_need(entry, "split", where), where),
        metric,
        str(_need(entry, "better", where)),
        str(_need(entry, "worse", where)),
        None if than is None else _split(than, f"{where}.than"),
    )


def load_claims(path: Path) -> Claims:
    """Parse and validate the claims file; a problem is one StacmrError naming the file and the entry."""
    raw = read_yaml(path, "claims file")
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


def _about(claim: NumberClaim | DirectionClaim, kind: str, words: str, claimed: float | None) -> dict[str, Any]:
    """The fields of a verdict that say which claim it judges: its id, kind, words, source, split, metric and the
    paper's number."""
    return dict(
        id=claim.id,
        kind=kind,
        claim=words,
        source=claim.source,
        split=claim.split,
        metric=claim.metric,
        claimed=claimed,
    )


def _check_number(claim: NumberClaim, results: Results, report: ReportParams) -> Verdict:
    words = f"{claim.method} {split_label(claim.split)} {claim.metric} = {claim.value:g}"
    ours = results.get(claim.ablation, claim.split) if claim.ablation else None
    base = {**_about(claim, "number", words, claim.value), "p_value": None}
    if ours is None:
        note = "no counterpart in this project" if claim.ablation is None else f"{claim.ablation} not evaluated"
        return Verdict(**base, reproduced=None, ci95=None, difference=None, verdict=NOT_COMPARABLE, note=note)
    value, (low, high) = ours.value(claim.metric), ours.ci(claim.metric)
    numbers = dict(reproduced=value, ci95=(low, high), difference=value - claim.value)
    if results.params.data.source == "synthetic":
        note = f"{ours.ablation} on synthetic data: absolute numbers are not comparable to the paper's"
        return Verdict(**base, **numbers, verdict=NOT_COMPARABLE, note=note)
    tolerance = report.tolerance * (len(RSUM_TERMS) if claim.metric == RSUM else 1)
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


def _check_direction(
    claim: DirectionClaim, claims: Claims, results: Results, runs: dict[tuple[str, str], SeedRuns], report: ReportParams
) -> Verdict:
    splits = [claim.split] + ([claim.than] if claim.than else [])
    kind = "gap" if claim.than else "direction"
    missing = [f"{a}-{s}" for a in (claim.better, claim.worse) for s in splits if results.get(a, s) is None]
    paper = [_paper_difference(claims, claim, s) for s in splits]
    claimed = None if None in paper else (paper[0] - paper[1] if claim.than else paper[0])
    base = _about(claim, kind, claim.claim, claimed)
    if missing:
        return Verdict(
            **base,
            reproduced=None,
            ci95=None,
            difference=None,
            p_value=None,
            verdict=NOT_COMPARABLE,
            note=f"not evaluated here: {', '.join(missing)}",
        )
    diffs = [
        seed_difference(runs[claim.better, s], runs[claim.worse, s], claim.metric, report.permutations, report.seed)
        for s in splits
    ]
    first = diffs[0]
    gap, p, significant = first.difference, first.p_value, first.p_value < report.alpha
    n_better, n_worse = first.seeds
    if max(first.seeds) > 1:
        seeds = f"{n_better} + {n_worse} training seeds, bootstrap over seeds then images"
    else:
        seeds = "one training seed each: seed variance not included; bootstrap over images"
    if claim.than:
        other = diffs[1].difference
        ours = gap - other
        holds = ours > 0 and gap > 0 and significant
        note = (
            f"gap {gap:+.2f} on {split_label(claim.split)} (p = {p:.3g}) vs {other:+.2f} on "
            f"{split_label(claim.than)}; {claim.better} − {claim.worse}; {seeds}"
        )
        ci95 = None
    else:
        ours, holds, ci95 = gap, gap > 0 and significant, first.ci95
        note = f"{claim.better} − {claim.worse}; {seeds}"
    if not holds and ours > 0 and gap > 0 and not significant:
        note += f"; right direction but not significant at α = {report.alpha:g}"
    difference = None if claimed is None else ours - claimed
    return Verdict(
        **base,
        reproduced=ours,
        ci95=ci95,
        difference=difference,
        p_value=p,
        verdict=REPRODUCED if holds else NOT_REPRODUCED,
        note=note,
    )


def verify(
    claims: Claims, results: Results, runs: dict[tuple[str, str], SeedRuns], report: ReportParams
) -> list[Verdict]:
    """One verdict per claim: the directions first (what synthetic data can check), then the numbers, in file
    order. `runs` (`seeds.seed_runs`) gives every training run of each ablation for the direction tests."""
    return [
        *(_check_direction(c, claims, results, runs, report) for c in claims.directions),
        *(_check_number(c, results, report) for c in claims.numbers),
    ]
