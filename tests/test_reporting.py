"""The report's library on fixture metrics and ranks written here: the main and ablation tables (values, CIs,
differences, provenance; Markdown, LaTeX, CSV), the claims check with every verdict kind, `stacmr verify` and its
`--strict` exit status, the paired rsum test against summarize(), and the MLflow history reader with its fallback."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import yaml

from stacmr.cli import main
from stacmr.errors import StacmrError
from stacmr.evaluation.metrics import summarize
from stacmr.evaluation.statistics import bootstrap_ci, paired_test
from stacmr.params import ParamsError, parse_params
from stacmr.reporting import figures
from stacmr.reporting.claims import (
    NOT_COMPARABLE,
    NOT_REPRODUCED,
    REPRODUCED,
    WITHIN_TOLERANCE,
    load_claims,
    verify,
)
from stacmr.reporting.history import training_histories
from stacmr.reporting.qualitative import Hit, Query
from stacmr.reporting.render import write_table
from stacmr.reporting.results import load_results
from stacmr.reporting.seeds import seed_runs
from stacmr.reporting.summary import summary, write_summary
from stacmr.reporting.tables import ablation_table, main_table
from tests.helpers.params import shrink

N_IMAGES, PER_IMAGE = 200, 5
CHECKPOINTS = {"vsrn_all": b"visual-only best.pt", "starnet_all": b"scene-text aware best.pt"}  # their bytes


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
def report_dirs(tmp_path: Path, repo_params: dict, monkeypatch: pytest.MonkeyPatch):
    """metrics/, models/ (a best.pt each), ranks/ and plots/ for vsrn_all and starnet_all on dev and test, and an
    MLflow store yet to be made in tmp_path."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    ranks = _fixture_ranks()
    for (ablation, split), (i2t, t2i) in ranks.items():
        caption_image = np.repeat(np.arange(N_IMAGES), PER_IMAGE)
        metrics = {**summarize(i2t, t2i), "ci95": bootstrap_ci(i2t, t2i, caption_image, 200, 0)}
        path = tmp_path / "metrics" / ablation / f"{split}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"ablation": ablation, "split": split, **metrics}))
        (tmp_path / "ranks" / ablation).mkdir(parents=True, exist_ok=True)
        np.savez(tmp_path / "ranks" / ablation / f"{split}.npz", i2t=i2t, t2i=t2i, caption_image=caption_image)
        (tmp_path / "models" / ablation).mkdir(parents=True, exist_ok=True)
        (tmp_path / "models" / ablation / "best.pt").write_bytes(CHECKPOINTS[ablation])
        (tmp_path / "plots").mkdir(exist_ok=True)
        pd.DataFrame({"epoch": [1, 2], "val_rsum": [100.0, 150.0], "loss_loss": [3.0, 2.0]}).to_csv(
            tmp_path / "plots" / f"{ablation}.csv", index=False
        )
    raw = shrink(repo_params)
    raw["evaluate"].update(ablations=["vsrn_all", "starnet_all"], splits=["dev", "test"])
    raw["report"].update(baseline="vsrn_all", scene_text="starnet_all", permutations=2000, tolerance=10.0)
    raw["replicates"].update(ablations=[])  # one training run each here (tests/test_seeds.py has replicates)
    return tmp_path, raw


def _results(root: Path, raw: dict):
    return load_results(parse_params(raw), root / "metrics", root / "models", root / "ranks")


def _verify(root: Path, results):
    runs = seed_runs(results, root / "metrics")
    return {v.id: v for v in verify(load_claims(_claims_file(root, results)), results, runs, results.params.report)}


def _entry(method, ablation, split, values, rsum):
    return {
        "method": method,
        "ablation": ablation,
        "train_data": None,
        "split": split,
        "source": "fixture",
        "where": f"table 1, row {method}",
        "i2t": values[:3],
        "t2i": values[3:],
        "rsum": rsum,
    }


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
            {
                "id": "aware_wins_1k",
                "claim": "aware > visual on CTC-1K",
                "source": "fixture",
                "split": "dev",
                "metric": "rsum",
                "better": "starnet_all",
                "worse": "vsrn_all",
            },
            {
                "id": "aware_wins_5k",
                "claim": "aware > visual on CTC-5K",
                "source": "fixture",
                "split": "test",
                "metric": "t2i_r1",
                "better": "starnet_all",
                "worse": "vsrn_all",
            },
            {
                "id": "gap",
                "claim": "gap larger on CTC-1K",
                "source": "fixture",
                "split": "dev",
                "than": "test",
                "metric": "rsum",
                "better": "starnet_all",
                "worse": "vsrn_all",
            },
            {
                "id": "unevaluated",
                "claim": "chan > visual",
                "source": "fixture",
                "split": "dev",
                "metric": "rsum",
                "better": "chan_all",
                "worse": "vsrn_all",
            },
        ],
    }
    path = root / "claims.yaml"
    path.write_text(yaml.safe_dump(claims, allow_unicode=True))
    return path


def test_number_verdicts_on_real_data(report_dirs):
    root, raw = report_dirs
    raw["data"]["source"] = "release"
    results = _results(root, raw)
    verdicts = _verify(root, results)
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
    verdicts = _verify(root, results)
    assert {verdicts[f"{m}/dev/rsum"].verdict for m in ("Exact", "Close", "Far")} == {NOT_COMPARABLE}
    assert "synthetic" in verdicts["Exact/dev/rsum"].note
    assert verdicts["aware_wins_1k"].verdict == REPRODUCED and verdicts["aware_wins_1k"].p_value < 0.01
    assert verdicts["aware_wins_5k"].verdict == NOT_REPRODUCED  # identical ranks on test: no difference
    assert verdicts["aware_wins_5k"].reproduced == 0 and verdicts["aware_wins_5k"].p_value == 1.0
    assert "one training seed each" in verdicts["aware_wins_1k"].note
    assert verdicts["gap"].verdict == REPRODUCED
    assert verdicts["unevaluated"].verdict == NOT_COMPARABLE


def test_verify_cli_prints_writes_and_fails_only_when_strict(report_dirs, write_params, capsys):
    root, raw = report_dirs
    claims = _claims_file(root, _results(root, raw))
    argv = [
        "verify",
        "--params",
        str(write_params(raw)),
        "--claims",
        str(claims),
        "--metrics",
        str(root / "metrics"),
        "--models",
        str(root / "models"),
        "--ranks",
        str(root / "ranks"),
    ]
    assert main([*argv, "--out", str(root / "verdicts")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Directional claims (4): 2 reproduced, 1 not reproduced, 1 not comparable.")
    assert "embedded synthetic CTC world" in out and "aware > visual on CTC-5K" in out
    assert max(len(line) for line in out.splitlines()) <= 120
    assert main([*argv, "--format", "md"]) == 0
    assert "| aware > visual on CTC-5K |" in capsys.readouterr().out
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
    path.write_text(
        yaml.safe_dump({"sources": {"s": "x"}, "numbers": [{"method": "M", "split": "dev"}], "directions": []})
    )
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
    sha = hashlib.sha256(CHECKPOINTS["starnet_all"]).hexdigest()
    assert (row.checkpoint_sha256, row.dvc_stage) == (sha, "evaluate@starnet_all-dev")
    visual = long[(long.ablation == "vsrn_all") & (long.split == "CTC-5K")]
    assert len(visual) == 7 and visual.paper.isna().all()  # no paper row maps to vsrn_all here
    absent = long[long.paper_row == "Absent"]
    assert absent.reproduced.isna().all() and set(absent.split) == {"CTC-1K"}
    paths = write_table(table, root / "tables", "main")
    assert [p.name for p in paths] == ["main.md", "main.tex", "main.csv"]
    markdown = paths[0].read_text()
    assert f"checkpoint sha256 {sha[:12]}; DVC evaluate@starnet_all-dev" in markdown
    assert "→" in markdown and r"\toprule" in paths[1].read_text()
    csv = pd.read_csv(paths[2])
    assert {"checkpoint_sha256", "dvc_stage", "paper", "reproduced", "ci_low", "ci_high", "difference"} <= set(
        csv.columns
    )


def test_ablation_table_p_values_are_paired_tests_against_the_baseline(report_dirs):
    root, raw = report_dirs
    results = _results(root, raw)
    long = ablation_table(results, results.params.report).long
    aware = long[(long.ablation == "starnet_all") & (long.split == "CTC-1K")].iloc[0]
    ranks = _fixture_ranks()
    caption_image = np.repeat(np.arange(N_IMAGES), PER_IMAGE)
    diff, p = paired_test(ranks["starnet_all", "dev"], ranks["vsrn_all", "dev"], caption_image, "rsum", 2000, 0)
    assert (aware.diff_vs_baseline, aware.p_value) == pytest.approx((diff, p))
    assert bool(aware.scene_text) and aware.train_data == "full mix"
    assert long[long.ablation == "vsrn_all"].p_value.isna().all()


def test_paired_rsum_difference_is_the_rsum_difference():
    ranks = _fixture_ranks()
    (a_i2t, a_t2i), (b_i2t, b_t2i) = ranks["starnet_all", "dev"], ranks["vsrn_all", "dev"]
    caption_image = np.repeat(np.arange(N_IMAGES), PER_IMAGE)
    diff, p = paired_test((a_i2t, a_t2i), (b_i2t, b_t2i), caption_image, "rsum", 500, 1)
    assert diff == pytest.approx(summarize(a_i2t, a_t2i)["rsum"] - summarize(b_i2t, b_t2i)["rsum"])
    assert p == pytest.approx(1 / 501)
    assert paired_test((a_i2t, a_t2i), (a_i2t, a_t2i), caption_image, "rsum", 500, 1) == (0.0, 1.0)


def test_training_curves_come_from_the_history_csvs(report_dirs):
    root, raw = report_dirs
    histories = training_histories(_results(root, raw), root / "plots")
    assert [h.ablation for h in histories] == ["vsrn_all", "starnet_all"]
    assert list(histories[0].frame["val_rsum"]) == [100.0, 150.0]
    (root / "plots" / "starnet_all.csv").write_text("epoch,lr\n1,0.1\n")
    with pytest.raises(StacmrError, match=r"starnet_all.csv: history has no 'val_rsum' column"):
        training_histories(_results(root, raw), root / "plots")


def _query(methods: tuple[str, ...]) -> Query:
    hits = tuple(Hit(f"img{i}", ("OPEN", "cafe"), ground_truth=i == 0) for i in range(5))
    return Query("a cafe sign", "img0", dict.fromkeys(methods, 1), "favours nobody", dict.fromkeys(methods, hits))


def _figures(root: Path, raw: dict, synthetic: bool) -> dict[str, plt.Figure]:
    raw["data"]["source"] = "synthetic" if synthetic else "release"
    results = _results(root, raw)
    return {
        "recall": figures.recall_figure(results),
        "ranks": figures.rank_figure(results),
        "training": figures.training_figure(training_histories(results, root / "plots"), synthetic=synthetic),
        "qualitative": figures.qualitative_figure([_query(("STARNet", "VSRN"))], synthetic=synthetic),
    }


@pytest.mark.parametrize("synthetic", [True, False])
def test_figures_from_the_synthetic_world_say_so(report_dirs, synthetic):
    root, raw = report_dirs
    for name, fig in _figures(root, raw, synthetic).items():
        assert (figures.SYNTHETIC_NOTE in fig.get_suptitle()) == synthetic, name
        plt.close(fig)


def test_legends_sit_beside_the_panels_not_over_the_data(report_dirs):
    root, raw = report_dirs
    drawn = _figures(root, raw, synthetic=True)
    for name in ("recall", "ranks", "training"):
        fig = drawn[name]
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        assert len(fig.legends) == 1 and not any(ax.get_legend() for ax in fig.axes), name
        legend = fig.legends[0].get_window_extent(renderer)
        assert [text.get_text() for text in fig.legends[0].get_texts()] == ["vsrn_all", "starnet_all"], name
        for ax in fig.axes:
            assert not legend.overlaps(ax.get_window_extent(renderer)), f"{name}: legend over {ax.get_title()!r}"
    for fig in drawn.values():
        plt.close(fig)


def test_summary_is_the_headline_numbers_per_ablation(report_dirs):
    root, raw = report_dirs
    results = _results(root, raw)
    train = root / "metrics" / "train"
    with pytest.raises(StacmrError, match=r"vsrn_all\.json: training metrics file"):
        summary(results, train)
    train.mkdir()
    for ablation, rsum in (("vsrn_all", 401.234), ("starnet_all", 412.0)):
        (train / f"{ablation}.json").write_text(json.dumps({"epoch": 2, "rsum": rsum, "i2t_r1": 30.0}))
    rows = summary(results, train)
    assert list(rows) == ["vsrn_all", "starnet_all"]
    assert list(rows["vsrn_all"]) == [
        "ctc1k_rsum",
        "ctc1k_i2t_r1",
        "ctc1k_t2i_r1",
        "ctc5k_rsum",
        "ctc5k_i2t_r1",
        "ctc5k_t2i_r1",
        "val_rsum",
    ]
    ours = results.get("starnet_all", "test")
    assert rows["starnet_all"]["ctc5k_t2i_r1"] == round(ours.value("t2i_r1"), 2)
    assert rows["vsrn_all"]["val_rsum"] == 401.23
    write_summary(rows, root / "summary.json")
    assert json.loads((root / "summary.json").read_text()) == rows
    (train / "vsrn_all.json").write_text(json.dumps({"epoch": 2}))
    with pytest.raises(StacmrError, match="metric 'rsum' missing"):
        summary(results, train)
