"""The report's library on fixture metrics and ranks written here: the main and ablation tables (values, CIs,
differences, provenance; Markdown, LaTeX, CSV), the claims check with every verdict kind, `stacmr verify` and its
`--strict` exit status, the paired rsum test against summarize(), and the MLflow history reader with its fallback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from stacmr.cli import main
from stacmr.errors import StacmrError
from stacmr.evaluation.metrics import summarize
from stacmr.evaluation.statistics import bootstrap_ci, paired_rsum_test
from stacmr.params import ParamsError, parse_params
from stacmr.reporting.claims import (
    NOT_COMPARABLE,
    NOT_REPRODUCED,
    REPRODUCED,
    WITHIN_TOLERANCE,
    load_claims,
    verify,
)
from stacmr.reporting.history import training_histories
from stacmr.reporting.render import write_table
from stacmr.reporting.results import load_results
from stacmr.reporting.tables import ablation_table, main_table
from tests.conftest import shrink

N_IMAGES, PER_IMAGE = 200, 5
RUN_IDS = {"vsrn_all": "run-visual-0001", "starnet_all": "run-aware-0002"}


def _fixture_ranks() -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """Visual-only ranks at random; the scene-text aware model is much better on dev and identical on test."""
    rng = np.random.default_rng(7)
    out = {}
    for split in ("dev", "test"):
        i2t, t2i = rng.integers(0, 20, N_IMAGES), rng.integers(0, 40, N_IMAGES * PER_IMAGE)
        out["vsrn_all", split] = (i2t, t2i)
        out["starnet_all", split] = (i2t // 4, t2i // 4) if split == "dev" else (i2t.copy(), t2i.copy())
    return out


@pytest.fixture
def report_dirs(tmp_path: Path, repo_params: dict):
    """metrics/, models/ (MLflow run ids), ranks/ and plots/ for vsrn_all and starnet_all on dev and test."""
    ranks = _fixture_ranks()
    for (ablation, split), (i2t, t2i) in ranks.items():
        caption_image = np.repeat(np.arange(N_IMAGES), PER_IMAGE)
        metrics = {**summarize(i2t, t2i), "ci95": bootstrap_ci(i2t, t2i, caption_image, 200, 0)}
        path = tmp_path / "metrics" / ablation / f"{split}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"ablation": ablation, "split": split, **metrics}))
        (tmp_path / "ranks" / ablation).mkdir(parents=True, exist_ok=True)
        np.savez(tmp_path / "ranks" / ablation / f"{split}.npz", i2t=i2t, t2i=t2i)
        (tmp_path / "models" / ablation).mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{tmp_path}/no-such-store.db"
        (tmp_path / "models" / ablation / "mlflow_run.json").write_text(
            json.dumps({"run_id": RUN_IDS[ablation], "uri": uri})
        )
        (tmp_path / "plots").mkdir(exist_ok=True)
        pd.DataFrame({"epoch": [1, 2], "val_rsum": [100.0, 150.0], "loss_loss": [3.0, 2.0]}).to_csv(
            tmp_path / "plots" / f"{ablation}.csv", index=False
        )
    raw = shrink(repo_params)
    raw["evaluate"].update(ablations=["vsrn_all", "starnet_all"], splits=["dev", "test"])
    raw["report"].update(baseline="vsrn_all", scene_text="starnet_all", permutations=2000, tolerance=10.0)
    return tmp_path, raw


def _results(root: Path, raw: dict):
    return load_results(parse_params(raw), root / "metrics", root / "models", root / "ranks")


def _entry(method, ablation, split, values, rsum):
    return {"method": method, "ablation": ablation, "train_data": None, "split": split, "source": "fixture",
            "where": f"table 1, row {method}", "i2t": values[:3], "t2i": values[3:], "rsum": rsum}  # fmt: skip


def _claims_file(root: Path, results) -> Path:
    """One number entry per verdict kind, derived from the fixture's own metrics and CIs, and three directions."""
    ours = results.get("starnet_all", "dev")
    keys = ["i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10"]
    exact = [ours.value(k) for k in keys]
    above_ci = [ours.ci(k)[1] + 0.5 for k in keys]  # outside the CI, within the tolerance of 10 points
    far = [ours.value(k) + 70 for k in keys]  # beyond 10 points (rsum: beyond 60)
    claims = {
        "sources": {"fixture": "written by the test"},
        "numbers": [
            _entry("Exact", "starnet_all", "dev", exact, ours.value("rsum")),
            _entry("Close", "starnet_all", "dev", above_ci, ours.ci("rsum")[1] + 0.5),
            _entry("Far", "starnet_all", "dev", far, ours.value("rsum") + 70),
            _entry("Absent", None, "dev", exact, 1.0),
            _entry("Unevaluated", "chan_all", "test", exact, 1.0),
        ],
        "directions": [
            {"id": "aware_wins_1k", "claim": "aware > visual on CTC-1K", "source": "fixture", "split": "dev",
             "metric": "rsum", "better": "starnet_all", "worse": "vsrn_all"},
            {"id": "aware_wins_5k", "claim": "aware > visual on CTC-5K", "source": "fixture", "split": "test",
             "metric": "t2i_r1", "better": "starnet_all", "worse": "vsrn_all"},
            {"id": "gap", "claim": "gap larger on CTC-1K", "source": "fixture", "split": "dev", "than": "test",
             "metric": "rsum", "better": "starnet_all", "worse": "vsrn_all"},
            {"id": "unevaluated", "claim": "chan > visual", "source": "fixture", "split": "dev",
             "metric": "rsum", "better": "chan_all", "worse": "vsrn_all"},
        ],
    }  # fmt: skip
    path = root / "claims.yaml"
    path.write_text(yaml.safe_dump(claims, allow_unicode=True))
    return path


def test_number_verdicts_on_real_data(report_dirs):
    root, raw = report_dirs
    raw["data"]["source"] = "release"
    results = _results(root, raw)
    verdicts = {v.id: v for v in verify(load_claims(_claims_file(root, results)), results, results.params.report)}
    for metric in ("i2t_r1", "t2i_r10", "rsum"):
        assert verdicts[f"Exact/dev/{metric}"].verdict == REPRODUCED
        assert verdicts[f"Close/dev/{metric}"].verdict == WITHIN_TOLERANCE
        assert verdicts[f"Far/dev/{metric}"].verdict == NOT_REPRODUCED
        assert verdicts[f"Absent/dev/{metric}"].verdict == NOT_COMPARABLE
        assert verdicts[f"Unevaluated/test/{metric}"].verdict == NOT_COMPARABLE
    far = verdicts["Far/dev/i2t_r5"]
    assert far.difference == pytest.approx(-70) and far.reproduced == pytest.approx(
        results.get("starnet_all", "dev").value("i2t_r5")
    )
    assert "column CTC-1K image→text R@5" in far.source


def test_synthetic_runs_are_not_comparable_but_directions_are_checked(report_dirs):
    root, raw = report_dirs
    results = _results(root, raw)
    verdicts = {v.id: v for v in verify(load_claims(_claims_file(root, results)), results, results.params.report)}
    assert {verdicts[f"{m}/dev/rsum"].verdict for m in ("Exact", "Close", "Far")} == {NOT_COMPARABLE}
    assert "synthetic" in verdicts["Exact/dev/rsum"].note
    assert verdicts["aware_wins_1k"].verdict == REPRODUCED and verdicts["aware_wins_1k"].p_value < 0.01
    assert verdicts["aware_wins_5k"].verdict == NOT_REPRODUCED  # identical ranks on test: no difference
    assert verdicts["aware_wins_5k"].reproduced == 0 and verdicts["aware_wins_5k"].p_value == 1.0
    assert verdicts["gap"].verdict == REPRODUCED
    assert verdicts["unevaluated"].verdict == NOT_COMPARABLE


def test_verify_cli_prints_writes_and_fails_only_when_strict(report_dirs, write_params, capsys):
    root, raw = report_dirs
    claims = _claims_file(root, _results(root, raw))
    argv = ["verify", "--params", str(write_params(raw)), "--claims", str(claims), "--metrics", str(root / "metrics"),
            "--models", str(root / "models"), "--ranks", str(root / "ranks")]  # fmt: skip
    assert main([*argv, "--out", str(root / "verdicts")]) == 0
    out = capsys.readouterr().out
    assert "not comparable to the paper's" in out and "| aware > visual on CTC-5K |" in out
    saved = json.loads((root / "verdicts" / "verdicts.json").read_text())
    assert {v["verdict"] for v in saved["verdicts"]} == {REPRODUCED, NOT_REPRODUCED, NOT_COMPARABLE}
    assert main([*argv, "--strict"]) == 2
    assert "1 claim(s) not reproduced: aware_wins_5k" in capsys.readouterr().err


def test_report_models_must_be_evaluated(report_dirs):
    _, raw = report_dirs
    raw["report"]["baseline"] = "vsrn_f30k"
    with pytest.raises(ParamsError, match=r"report.baseline: 'vsrn_f30k' is not in evaluate.ablations"):
        parse_params(raw)


def test_a_broken_claims_file_is_one_message(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"sources": {"s": "x"}, "numbers": [{"method": "M", "split": "dev"}],
                                    "directions": []}))  # fmt: skip
    with pytest.raises(StacmrError, match=r"bad.yaml: numbers\[0\]: missing key 'source'"):
        load_claims(path)
    path.write_text(yaml.safe_dump({"sources": {"s": "x"}, "numbers": ["VSRN 38.2"], "directions": []}))
    with pytest.raises(StacmrError, match=r"bad\.yaml: numbers: expected a list of mappings"):
        load_claims(path)


def test_main_table_puts_the_paper_beside_ours_with_provenance(report_dirs):
    root, raw = report_dirs
    results = _results(root, raw)
    table = main_table(results, load_claims(_claims_file(root, results)))
    long = table.long
    row = long[(long.paper_row == "Far") & (long.split == "CTC-1K") & (long.metric == "t2i_r5")].iloc[0]
    ours = results.get("starnet_all", "dev")
    assert row.reproduced == pytest.approx(ours.value("t2i_r5"))
    assert (row.ci_low, row.ci_high) == pytest.approx(ours.ci("t2i_r5"))
    assert row.difference == pytest.approx(-70)
    assert (row.mlflow_run_id, row.dvc_stage) == (RUN_IDS["starnet_all"], "evaluate@starnet_all-dev")
    visual = long[(long.ablation == "vsrn_all") & (long.split == "CTC-5K")]
    assert len(visual) == 7 and visual.paper.isna().all()  # no paper row maps to vsrn_all here
    absent = long[long.paper_row == "Absent"]
    assert absent.reproduced.isna().all() and set(absent.split) == {"CTC-1K"}
    paths = write_table(table, root / "tables", "main")
    assert [p.name for p in paths] == ["main.md", "main.tex", "main.csv"]
    markdown = paths[0].read_text()
    assert f"MLflow run {RUN_IDS['starnet_all']}; DVC evaluate@starnet_all-dev" in markdown
    assert "→" in markdown and r"\toprule" in paths[1].read_text()
    csv = pd.read_csv(paths[2])
    assert {"mlflow_run_id", "dvc_stage", "paper", "reproduced", "ci_low", "ci_high", "difference"} <= set(csv.columns)


def test_ablation_table_p_values_are_paired_tests_against_the_baseline(report_dirs):
    root, raw = report_dirs
    results = _results(root, raw)
    long = ablation_table(results, results.params.report).long
    aware = long[(long.ablation == "starnet_all") & (long.split == "CTC-1K")].iloc[0]
    ranks = _fixture_ranks()
    diff, p = paired_rsum_test(ranks["starnet_all", "dev"], ranks["vsrn_all", "dev"], 2000, 0)
    assert (aware.diff_vs_baseline, aware.p_value) == pytest.approx((diff, p))
    assert bool(aware.scene_text) and aware.train_data == "full mix"
    assert long[long.ablation == "vsrn_all"].p_value.isna().all()


def test_paired_rsum_difference_is_the_rsum_difference():
    ranks = _fixture_ranks()
    (a_i2t, a_t2i), (b_i2t, b_t2i) = ranks["starnet_all", "dev"], ranks["vsrn_all", "dev"]
    diff, p = paired_rsum_test((a_i2t, a_t2i), (b_i2t, b_t2i), 500, 1)
    assert diff == pytest.approx(summarize(a_i2t, a_t2i)["rsum"] - summarize(b_i2t, b_t2i)["rsum"])
    assert p == pytest.approx(1 / 501)
    assert paired_rsum_test((a_i2t, a_t2i), (a_i2t, a_t2i), 500, 1) == (0.0, 1.0)


def test_training_curves_fall_back_to_the_dvc_csv(report_dirs):
    root, raw = report_dirs
    histories = training_histories(_results(root, raw), root / "plots")
    assert [h.ablation for h in histories] == ["vsrn_all", "starnet_all"]
    assert "DVC plots" in histories[0].source and "not in the store" in histories[0].source
    assert list(histories[0].frame["val_rsum"]) == [100.0, 150.0]
    assert not (root / "no-such-store.db").exists()  # reading never creates a store


def test_metric_history_reads_a_run_back(tmp_path):
    from stacmr.tracking import Tracker, metric_history

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    with Tracker("stacmr", "t", uri=uri) as tracker:
        for epoch in (2, 1):
            tracker.log_metrics({"val_rsum": 10.0 * epoch, "lr": 0.1}, step=epoch)
    history = metric_history(tracker.run_id, uri)
    assert history["val_rsum"] == [(1, 10.0), (2, 20.0)]
    assert metric_history("0" * 32, uri) is None
