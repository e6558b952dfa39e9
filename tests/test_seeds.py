"""Training-seed replicates in the report: every run of an ablation found, mean ± sd over seeds, the claims check
over seeds, and `stacmr compare` judging a rerun against the committed metrics with the seed variance."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from stacmr.cli import main
from stacmr.evaluation.metrics import summarize
from stacmr.evaluation.statistics import bootstrap_ci
from stacmr.params import ParamsError, parse_params
from stacmr.reporting.claims import REPRODUCED, load_claims, verify
from stacmr.reporting.rerun import DIFFERS, GONE, SAME, WITHIN, compare, numeric_leaves, seed_sd, workspace_metrics
from stacmr.reporting.results import load_results
from stacmr.reporting.seeds import seed_runs, seed_table
from stacmr.reporting.verdicts import terminal
from tests.helpers.params import shrink

N, PER = 150, 5
SEEDS = (0, 1, 2)


def _write_run(root: Path, folder: str, split: str, i2t: np.ndarray, t2i: np.ndarray, seed: int) -> None:
    caption_image = np.repeat(np.arange(N), PER)
    metrics = {
        "ablation": folder,
        "split": split,
        "seed": seed,
        **summarize(i2t, t2i),
        "ci95": bootstrap_ci(i2t, t2i, caption_image, 100, 0),
    }
    path = root / "metrics" / folder / f"{split}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2))
    ranks = root / "ranks" / folder / f"{split}.npz"
    ranks.parent.mkdir(parents=True, exist_ok=True)
    np.savez(ranks, i2t=i2t, t2i=t2i, caption_image=caption_image)


@pytest.fixture
def seeded(tmp_path: Path, repo_params: dict):
    """vsrn_all and starnet_all, three seeds each; starnet_all is better on dev by a margin that varies by seed."""
    rng = np.random.default_rng(11)
    for split in ("dev", "test"):
        for seed in SEEDS:
            i2t, t2i = rng.integers(0, 20, N), rng.integers(0, 40, N * PER)
            better = (i2t // (2 + seed), t2i // (2 + seed)) if split == "dev" else (i2t, t2i)
            for ablation, (a, b) in (("vsrn_all", (i2t, t2i)), ("starnet_all", better)):
                folder = ablation if seed == 0 else f"replicates/{ablation}-s{seed}"
                _write_run(tmp_path, folder, split, a, b, seed)
    raw = shrink(repo_params)
    raw["train"]["seed"] = 0
    raw["evaluate"].update(ablations=["vsrn_all", "starnet_all"], splits=["dev", "test"])
    raw["replicates"].update(ablations=["vsrn_all", "starnet_all"], seeds=[1, 2])
    raw["report"].update(baseline="vsrn_all", scene_text="starnet_all", permutations=1000)
    for ablation in ("vsrn_all", "starnet_all"):  # the report names each row's checkpoint by its sha256
        (tmp_path / "models" / ablation).mkdir(parents=True)
        (tmp_path / "models" / ablation / "best.pt").write_bytes(ablation.encode())
    return tmp_path, raw


def _results(root: Path, raw: dict):
    return load_results(parse_params(raw), root / "metrics", root / "models", root / "ranks")


def test_seed_runs_and_their_table(seeded):
    root, raw = seeded
    results = _results(root, raw)
    runs = seed_runs(results, root / "metrics")
    dev = runs["starnet_all", "dev"]
    assert dev.seeds == SEEDS and len(dev.ranks()[0]) == 3
    values = dev.values("rsum")
    mean, sd = dev.mean_sd("rsum")
    assert (mean, sd) == pytest.approx((values.mean(), values.std(ddof=1)))
    table = seed_table(results, runs)
    row = table.long[(table.long.ablation == "starnet_all") & (table.long.split == "CTC-1K")].iloc[0]
    assert row.seeds == 3 and row.rsum_mean == pytest.approx(mean) and row.rsum_sd == pytest.approx(sd)
    assert f"{mean:.1f} ± {sd:.1f}" in set(table.wide.rsum)
    raw["replicates"]["seeds"] = [1, 2, 3]
    with pytest.raises(Exception, match=r"replicates/vsrn_all-s3/dev.json: replicate metrics .* is missing"):
        seed_runs(_results(root, raw), root / "metrics")


def test_directions_are_tested_over_seeds(seeded):
    root, raw = seeded
    results = _results(root, raw)
    claims = {
        "sources": {"f": "fixture"},
        "numbers": [],
        "directions": [
            {
                "id": "d",
                "claim": "aware > visual on CTC-1K",
                "source": "f",
                "split": "dev",
                "metric": "rsum",
                "better": "starnet_all",
                "worse": "vsrn_all",
            }
        ],
    }
    (root / "claims.yaml").write_text(yaml.safe_dump(claims))
    runs = seed_runs(results, root / "metrics")
    (v,) = verify(load_claims(root / "claims.yaml"), results, runs, results.params.report)
    expected = runs["starnet_all", "dev"].values("rsum").mean() - runs["vsrn_all", "dev"].values("rsum").mean()
    assert v.reproduced == pytest.approx(expected) and v.verdict == REPRODUCED
    assert "3 + 3 training seeds" in v.note and v.ci95[0] < expected < v.ci95[1]
    text = terminal([v], "synthetic", results.params.report)
    assert text.startswith("Directional claims (1): 1 reproduced.")
    assert max(len(line) for line in text.splitlines()) <= 120


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def test_compare_judges_a_rerun_against_the_committed_metrics(seeded, write_params, capsys, monkeypatch):
    root, raw = seeded
    params = parse_params(raw)
    metrics = root / "metrics"
    sd = seed_sd(params, workspace_metrics(metrics))
    spread = sd["dev", "rsum"]
    own = np.std(
        [
            json.loads((metrics / f).read_text())["rsum"]
            for f in ("vsrn_all/dev.json", "replicates/vsrn_all-s1/dev.json", "replicates/vsrn_all-s2/dev.json")
        ],
        ddof=1,
    )
    assert spread >= own * 0.99 and ("dev", "ci95.rsum") not in sd
    _git(root, "init", "-q")
    _git(root, "-c", "user.email=t@t", "-c", "user.name=t", "add", "metrics")
    _git(root, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "committed run")
    path = metrics / "vsrn_all" / "dev.json"
    data = json.loads(path.read_text())
    data["rsum"] += 0.5 * spread  # a drift within seed variance
    data["t2i_r1"] += 10 * sd["dev", "t2i_r1"]  # far beyond it
    data["explicit"] = {"rsum": 1.0}  # a metric the committed file has not
    path.write_text(json.dumps(data))
    leaves = numeric_leaves(data)
    assert leaves["explicit.rsum"] == 1.0 and "ci95.rsum" not in leaves and "seed" not in leaves
    monkeypatch.chdir(root)
    monkeypatch.setenv("DVC_ROOT", str(root))
    assert main(["compare", "--params", str(write_params(raw)), "--metrics", "metrics", "--all"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].endswith(
        "1 within seed variance, 1 differ (1 new and 0 gone: metrics only one side has)."
    )
    assert "compared with HEAD" in out and "vsrn_all/dev.json:seed" not in out
    assert "new" in out and "vsrn_all/dev.json:explicit.rsum" in out and "vsrn_all/dev.json:rsum" in out
    assert main(["compare", "--params", str(write_params(raw)), "--metrics", "metrics", "--strict"]) == 2


def test_compare_verdicts():
    sd = {("dev", "rsum"): 1.0}
    before = {"a/dev.json": {"rsum": 100.0, "epoch": 3.0}, "gone/dev.json": {"rsum": 1.0}}
    after = {"a/dev.json": {"rsum": 102.7, "epoch": 3.0}}
    verdicts = {(c.file, c.key): c.verdict for c in compare(before, after, sd)}
    assert verdicts == {("a/dev.json", "rsum"): WITHIN, ("a/dev.json", "epoch"): SAME, ("gone/dev.json", "rsum"): GONE}
    after["a/dev.json"]["rsum"] = 102.8  # beyond 1.96·√2·1 = 2.77
    assert {c.verdict for c in compare(before, after, sd) if c.key == "rsum" and c.file == "a/dev.json"} == {DIFFERS}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seeds": [1, 1]}, r"replicates.seeds: expected distinct seeds >= 0"),
        ({"seeds": [0, 1]}, r"replicates.seeds: 0 is already the train seed of 'vsrn_all'"),
        ({"ablations": ["vsrn_f30k"]}, r"replicates.ablations: 'vsrn_f30k' is not in evaluate.ablations"),
        ({"seed": [1]}, r"replicates.seed: unknown key"),
    ],
)
def test_replicates_params_are_validated(seeded, change, message):
    _, raw = seeded
    raw["replicates"].update(change)
    with pytest.raises(ParamsError, match=message):
        parse_params(raw)


def test_ablation_names_must_not_shadow_other_outputs(seeded):
    _, raw = seeded
    raw["ablations"]["replicates"] = raw["ablations"]["vsrn_all"]
    with pytest.raises(ParamsError, match=r"ablations.replicates: a reserved name"):
        parse_params(raw)
