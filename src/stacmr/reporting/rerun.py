"""A rerun judged, not diffed: every metric of the workspace's metrics folder against the same file at a git revision
(by default the committed one), each called "same", "within seed variance" or "differs".

Seed variance comes from the training-seed replicates (params.yaml `replicates`): for each (file kind, metric key)
the sample variance over an ablation's seeds, pooled over the replicated ablations. Two runs with different seeds
differ by sd·√2 on average, so a change is "within seed variance" when |Δ| ≤ 1.96·√2·sd (a 95% band for the
difference of two runs). A file kind is its split (`dev`, `test`) for evaluations and `train` for the best
validation metrics; keys are the metrics JSON's numeric leaves, dotted (`explicit.rsum`, `reading.visual.…`), the
bootstrap intervals (`ci95`) left out: they move with their metric.

Reads `<metrics>/**/*.json` in the workspace and the same files at `<rev>` from git.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stacmr.errors import StacmrError
from stacmr.jsonfile import read_json
from stacmr.params import Params
from stacmr.reporting.seeds import REPLICATES, replicate_name
from stacmr.workspace import GitError, git

SAME = "same"
WITHIN = "within seed variance"
DIFFERS = "differs"
NEW = "new"  # only in the workspace (a metric or file the reference has not)
GONE = "gone"  # only in the reference
IDENTITY_KEYS = frozenset({"seed"})  # numbers that name a run rather than measure it
Z95 = 1.96


@dataclass(frozen=True)
class Change:
    file: str  # relative to the metrics folder
    key: str
    before: float | None  # at the revision; None: the metric is new
    after: float | None  # in the workspace; None: the metric is gone
    band: float | None  # the "within seed variance" half-width, when seed variance is known for this key
    verdict: str

    @property
    def delta(self) -> float | None:
        return None if self.before is None or self.after is None else self.after - self.before


def numeric_leaves(data: Any, prefix: str = "") -> dict[str, float]:
    """Dotted key → value of every number in a metrics JSON, `ci95` subtrees and the run's `seed` left out."""
    out: dict[str, float] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            if key != "ci95":
                out.update(numeric_leaves(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(data, int | float) and not isinstance(data, bool) and prefix not in IDENTITY_KEYS:
        out[prefix] = float(data)
    return out


def _kind(relative: str) -> str:
    """`dev`/`test` for an evaluation, `train` for best validation metrics (train/<ablation>.json or a replicate's
    train.json), else the file's stem."""
    path = Path(relative)
    return "train" if path.parts[0] == "train" or path.name == "train.json" else path.stem


def workspace_metrics(metrics_dir: Path) -> dict[str, dict[str, float]]:
    """Relative path → numeric leaves of every metrics JSON under `metrics_dir`."""
    return {
        path.relative_to(metrics_dir).as_posix(): numeric_leaves(read_json(path, "metrics file"))
        for path in sorted(metrics_dir.rglob("*.json"))
    }


def revision_metrics(repo: Path, rev: str, metrics_dir: Path) -> dict[str, dict[str, float]]:
    """Relative path → numeric leaves of every metrics JSON under `metrics_dir` at git revision `rev` (two git
    commands whatever the number of files: the listing, then every file's content through one `cat-file`)."""
    folder = metrics_dir.resolve().relative_to(repo.resolve()).as_posix()
    try:
        listing = git(repo, "ls-tree", "-r", "-z", "--name-only", rev, "--", folder)
        names = [name for name in listing.split("\0") if name.endswith(".json")]
        contents = _blobs(git(repo, "cat-file", "--batch", stdin="".join(f"{rev}:{n}\n" for n in names)), len(names))
    except GitError as exc:
        raise StacmrError(f"stacmr compare reads the committed metrics with git: {exc}") from None
    out = {}
    for name, content in zip(names, contents, strict=True):
        try:
            data = json.loads(content)
        except json.JSONDecodeError as exc:
            raise StacmrError(f"{rev}:{name}: not valid JSON ({exc})") from None
        out[Path(name).relative_to(folder).as_posix()] = numeric_leaves(data)
    return out


def _blobs(batch: str, count: int) -> list[str]:
    """The `count` contents of a `git cat-file --batch` answer: per object a "<sha> blob <bytes>" line, the
    content, a newline. Sizes count bytes, so the answer is walked as its UTF-8 bytes."""
    data, contents, at = batch.encode(), [], 0
    for _ in range(count):
        header_end = data.index(b"\n", at)
        size = int(data[at:header_end].split()[2])
        contents.append(data[header_end + 1 : header_end + 1 + size].decode())
        at = header_end + 2 + size
    return contents


def seed_sd(params: Params, metrics: dict[str, dict[str, float]]) -> dict[tuple[str, str], float]:
    """(file kind, key) → the pooled sd over training seeds of the replicated ablations, from `metrics` (the
    reference's: a rerun's own changes must not widen the band they are judged by). Kinds without replicates are
    absent."""
    variances: dict[tuple[str, str], list[float]] = defaultdict(list)
    kinds = [*params.evaluate.splits, "train"]
    for ablation in params.replicates.ablations:
        for kind in kinds:
            own = f"train/{ablation}.json" if kind == "train" else f"{ablation}/{kind}.json"
            files = [own] + [f"{REPLICATES}/{replicate_name(ablation, s)}/{kind}.json" for s in params.replicates.seeds]
            runs = [metrics[f] for f in files if f in metrics]
            if len(runs) < 2:
                continue
            for key in set.intersection(*(set(r) for r in runs)):
                values = [r[key] for r in runs]
                mean = sum(values) / len(values)
                variances[kind, key].append(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return {k: math.sqrt(sum(v) / len(v)) for k, v in variances.items()}


def compare(
    before: dict[str, dict[str, float]], after: dict[str, dict[str, float]], sd: dict[tuple[str, str], float]
) -> list[Change]:
    """Every metric of either side, judged."""
    changes = []
    for file in sorted(set(before) | set(after)):
        old, new = before.get(file, {}), after.get(file, {})
        for key in sorted(set(old) | set(new)):
            a, b = old.get(key), new.get(key)
            spread = sd.get((_kind(file), key))
            band = None if spread is None else Z95 * math.sqrt(2) * spread
            if a is None or b is None:
                verdict = NEW if a is None else GONE
            elif a == b:
                verdict = SAME
            elif band is not None and abs(b - a) <= band:
                verdict = WITHIN
            else:
                verdict = DIFFERS
            changes.append(Change(file, key, a, b, band, verdict))
    return changes


def summary(changes: list[Change], rev: str) -> str:
    files = len({c.file for c in changes})
    counts = {v: sum(c.verdict == v for c in changes) for v in (SAME, WITHIN, DIFFERS, NEW, GONE)}
    line = (
        f"{len(changes)} metrics in {files} files compared with {rev}: {counts[SAME]} same, "
        f"{counts[WITHIN]} within seed variance, {counts[DIFFERS]} differ"
    )
    if counts[NEW] or counts[GONE]:
        line += f" ({counts[NEW]} new and {counts[GONE]} gone: metrics only one side has)"
    return line + "."


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def render(changes: list[Change], rev: str, show_all: bool, width: int = 120) -> str:
    """The summary line, then one line per metric that differs (and with `show_all`, per changed, new or gone
    metric)."""
    lines = [summary(changes, rev)]
    shown = [c for c in changes if c.verdict == DIFFERS or (show_all and c.verdict != SAME)]
    if shown:
        lines += ["", f"{'verdict':<21} {'before':>9} {'after':>9} {'Δ':>9} {'±band':>8}  metric"]
        for c in sorted(shown, key=lambda c: (c.verdict != DIFFERS, c.file, c.key)):
            delta = "—" if c.delta is None else f"{c.delta:+.3g}"
            band = "none" if c.band is None else f"{c.band:.3g}"
            line = f"{c.verdict:<21} {_num(c.before):>9} {_num(c.after):>9} {delta:>9} {band:>8}  {c.file}:{c.key}"
            lines.append(line if len(line) <= width else line[: width - 1] + "…")
    if not show_all and any(c.verdict in (WITHIN, NEW, GONE) for c in changes):
        lines += ["", "(`--all` also lists the changes within seed variance and the new and gone metrics)"]
    return "\n".join(lines) + "\n"
