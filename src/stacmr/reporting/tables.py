"""The report's tables: the main table (the paper's numbers beside ours, with 95% CIs and the difference) and the
ablation table (training data × scene text, paired tests against the visual-only baseline).

Every number carries its provenance: the long form (the CSV) has `checkpoint_sha256` (the evaluated best.pt, which
also finds its MLflow training run) and `dvc_stage` columns, the
reading layout (Markdown, LaTeX, HTML) a provenance column per row. Written by `render.write_table`.
"""

from __future__ import annotations

import pandas as pd

from stacmr.data.sources import split_label, train_data_label
from stacmr.evaluation.metrics import CI_KEYS, METRICS, RSUM
from stacmr.params import ReportParams
from stacmr.reporting.claims import Claims
from stacmr.reporting.comparison import paired_difference
from stacmr.reporting.render import Table
from stacmr.reporting.results import Results

METRIC_LABELS = {**{m.name: m.label for m in METRICS}, RSUM: RSUM}


def _num(value: float | None) -> str:
    return "—" if value is None or pd.isna(value) else f"{value:.1f}"


def _checkpoint(row: pd.Series) -> str:
    return "—" if pd.isna(row.checkpoint_sha256) else f"checkpoint sha256 {row.checkpoint_sha256[:12]}"


def _cell(paper: float | None, ours: float | None, low: float | None, high: float | None) -> str:
    """ "paper → ours [low, high] (Δ)", with the parts that exist."""
    if ours is None or pd.isna(ours):
        return _num(paper)
    text = f"{_num(ours)} [{_num(low)}, {_num(high)}]"
    if paper is None or pd.isna(paper):
        return text
    return f"{_num(paper)} → {text} ({ours - paper:+.1f})"


def main_table(results: Results, claims: Claims) -> Table:
    """Per method and split (CTC-1K, CTC-5K): R@1/5/10 both directions and rsum, the paper's value beside ours."""
    paper = {(c.ablation, c.method, c.split, c.metric): c.value for c in claims.numbers}
    methods = {(c.ablation, c.method) for c in claims.numbers}
    rows = []
    for split in results.params.evaluate.splits:
        for ablation in results.params.evaluate.ablations:
            ours = results.get(ablation, split)
            names = sorted(m for a, m in methods if a == ablation) or [None]
            for name in names:
                for metric in CI_KEYS:
                    low, high = ours.ci(metric)
                    rows.append(
                        {
                            "method": ours.method,
                            "paper_row": name,
                            "ablation": ablation,
                            "train_data": train_data_label(ours.train_data),
                            "split": split_label(split),
                            "metric": metric,
                            "paper": paper.get((ablation, name, split, metric)),
                            "reproduced": ours.value(metric),
                            "ci_low": low,
                            "ci_high": high,
                            "checkpoint_sha256": ours.checkpoint_sha256,
                            "dvc_stage": ours.stage,
                        }
                    )
        evaluated = set(results.params.evaluate.ablations)
        for ablation, name in sorted(methods, key=lambda m: m[1]):
            if ablation in evaluated or (ablation, name, split, "rsum") not in paper:
                continue
            for metric in CI_KEYS:
                rows.append(
                    {
                        "method": f"{name} (paper only)",
                        "paper_row": name,
                        "ablation": None,
                        "train_data": None,
                        "split": split_label(split),
                        "metric": metric,
                        "paper": paper[ablation, name, split, metric],
                        "reproduced": None,
                        "ci_low": None,
                        "ci_high": None,
                        "checkpoint_sha256": None,
                        "dvc_stage": None,
                    }
                )
    long = pd.DataFrame(rows)
    long["difference"] = long["reproduced"] - long["paper"]
    wide_rows = []
    for (method, paper_row, split), group in long.groupby(["method", "paper_row", "split"], sort=False, dropna=False):
        row = {"split": split, "method": method, "paper row": paper_row if isinstance(paper_row, str) else "—"}
        for r in group.itertuples():
            row[METRIC_LABELS[r.metric]] = _cell(r.paper, r.reproduced, r.ci_low, r.ci_high)
        first = group.iloc[0]
        row["provenance"] = "paper" if pd.isna(first.dvc_stage) else f"{_checkpoint(first)}; DVC {first.dvc_stage}"
        wide_rows.append(row)
    notes = (
        "Cells: paper → ours [95% bootstrap CI] (ours − paper); ours alone where the paper has no such row. "
        "Recalls in percent; i→t = image→text, t→i = text→image; CTC-1K = split dev, CTC-5K = split test.",
        "Paper numbers: " + "; ".join(f"[{k}] {v}" for k, v in claims.sources.items()),
        _data_note(results),
    )
    return Table("Main table: the paper's numbers and ours", long, pd.DataFrame(wide_rows), notes)


def _data_note(results: Results) -> str:
    if results.params.data.source == "synthetic":
        return (
            "Ours were trained and evaluated on the embedded synthetic CTC world: their absolute values are not "
            "comparable to the paper's, and the differences are shown for the record only."
        )
    return f"Ours were trained and evaluated on data source {results.params.data.source!r}."


def ablation_table(results: Results, report: ReportParams) -> Table:
    """Per ablation (training data × scene text) and split: rsum with its CI, and the paired test of its rsum
    against the visual-only baseline on the same queries."""
    rows = []
    for ablation in results.params.evaluate.ablations:
        for split in results.params.evaluate.splits:
            ours = results.get(ablation, split)
            low, high = ours.ci("rsum")
            diff, p = (None, None)
            if ablation != report.baseline:
                diff, p = paired_difference(
                    results, ablation, report.baseline, split, "rsum", report.permutations, report.seed
                )
            counterpart = results.params.ablations[ablation].counterpart
            cdiff, cp = (None, None)
            if counterpart in results.params.evaluate.ablations:
                cdiff, cp = paired_difference(
                    results, ablation, counterpart, split, "rsum", report.permutations, report.seed
                )
            rows.append(
                {
                    "ablation": ablation,
                    "family": ours.label,
                    "train_data": train_data_label(ours.train_data),
                    "scene_text": ours.scene_text,
                    "split": split_label(split),
                    "rsum": ours.value("rsum"),
                    "ci_low": low,
                    "ci_high": high,
                    "diff_vs_baseline": diff,
                    "p_value": p,
                    "counterpart": counterpart,
                    "diff_vs_counterpart": cdiff,
                    "p_counterpart": cp,
                    "checkpoint_sha256": ours.checkpoint_sha256,
                    "dvc_stage": ours.stage,
                }
            )
    long = pd.DataFrame(rows)
    wide_rows = []
    for ablation, group in long.groupby("ablation", sort=False):
        first = group.iloc[0]
        row = {
            "ablation": ablation,
            "family": first.family,
            "training data": first.train_data,
            "scene text": "yes" if first.scene_text else "no",
        }
        for r in group.itertuples():
            row[f"{r.split} rsum"] = _cell(None, r.rsum, r.ci_low, r.ci_high)
            row[f"{r.split} vs baseline"] = (
                "baseline"
                if r.p_value is None or pd.isna(r.p_value)
                else f"{r.diff_vs_baseline:+.1f} (p = {r.p_value:.3g})"
            )
            row[f"{r.split} vs counterpart"] = (
                "—"
                if r.p_counterpart is None or pd.isna(r.p_counterpart)
                else f"{r.diff_vs_counterpart:+.1f} vs {r.counterpart} (p = {r.p_counterpart:.3g})"
            )
        row["provenance"] = f"{_checkpoint(first)}; DVC train@{ablation}, evaluate@{ablation}-*"
        wide_rows.append(row)
    notes = (
        f"Baseline: {report.baseline} (visual only). 'vs baseline': rsum difference over the same queries and its "
        f"two-sided paired sign-flip permutation p-value ({report.permutations} sign flips). 'vs counterpart': the "
        "same against the visual-only row trained under the same changes (params.yaml `counterpart`): a gain there "
        "is the scene text's, not the change's.",
        _data_note(results),
    )
    return Table("Ablation table: training data × scene text", long, pd.DataFrame(wide_rows), notes)
