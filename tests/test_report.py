"""The `report` stage end to end on the tiny config: two tiny trainings, their evaluations, then the claims check and
the notebook under papermill → tables, figures, the executed notebook and its HTML; and the HTML rendered by headless
Chromium (skipped when no `chromium` is on PATH; `.ci/run` installs Debian's)."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess

import matplotlib.image
import nbformat
import numpy as np
import pytest
import yaml

from stacmr.cli import main
from tests.conftest import REPO, shrink
from tests.test_training import _argv

pytestmark = pytest.mark.slow
ABLATIONS = ("vsrn_all", "starnet_all")
FIGURES = ("recall", "ranks", "training", "qualitative")


@pytest.fixture(scope="module")
def report(pipeline, tmp_path_factory, repo_params):
    root, _ = pipeline
    out = tmp_path_factory.mktemp("report")
    raw = shrink(repo_params)
    raw["evaluate"]["ablations"] = list(ABLATIONS)
    params = out / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{out}/mlflow.db")
        for ablation in ABLATIONS:
            assert main(_argv(root, out, ablation, params)) == 0
            for split in ("dev", "test"):
                assert main([
                    "evaluate", "--params", str(params), "--ablation", ablation, "--split", split,
                    "--neighbours", str(root / "neighbours"),
                    "--models", str(out / "models" / ablation), "--features", str(root / "features"),
                    "--metrics", str(out / "eval" / ablation / f"{split}.json"),
                    "--ranks", str(out / "ranks" / ablation / f"{split}.npz"),
                ]) == 0  # fmt: skip
        assert main([
            "headroom", "--params", str(params), "--models", str(out / "models"), "--features", str(root / "features"),
            "--metrics", str(out / "eval" / "headroom"), "--ranks", str(out / "ranks" / "headroom"),
        ]) == 0  # fmt: skip
        assert main([
            "report", "--params", str(params), "--claims", str(REPO / "paper_claims.yaml"),
            "--metrics", str(out / "eval"), "--models", str(out / "models"), "--ranks", str(out / "ranks"),
            "--features", str(root / "features"), "--history", str(out / "plots"),
            "--neighbours", str(root / "neighbours"), "--sweep", str(out / "no_sweep.csv"),
            "--notebooks", str(REPO / "notebooks"), "--verdicts", str(out / "reports" / "claims"),
            "--tables", str(out / "reports" / "tables"), "--figures", str(out / "reports" / "figures"),
            "--executed", str(out / "reports" / "notebooks"),
        ]) == 0  # fmt: skip
    return out


def test_report_writes_tables_figures_claims_and_the_executed_notebook(report):
    reports = report / "reports"
    for name in ("main", "ablation"):
        for ext in ("md", "tex", "csv"):
            assert (reports / "tables" / f"{name}.{ext}").stat().st_size > 0
    run_ids = {json.loads((report / "models" / ab / "mlflow_run.json").read_text())["run_id"] for ab in ABLATIONS}
    with open(reports / "tables" / "main.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["mlflow_run_id"] for r in rows if r["dvc_stage"]} == run_ids
    assert {r["dvc_stage"] for r in rows if r["dvc_stage"]} == {
        f"evaluate@{a}-{s}" for a in ABLATIONS for s in ("dev", "test")
    }
    for name in FIGURES:
        for ext in ("png", "pdf"):
            assert (reports / "figures" / f"{name}.{ext}").stat().st_size > 1000
    verdicts = (reports / "claims" / "verdicts.md").read_text()
    assert "not comparable to the paper's" in verdicts and "scene-text aware (STARNet) > visual only" in verdicts
    executed = nbformat.read(reports / "notebooks" / "report.ipynb", as_version=4)
    outputs = [o for cell in executed.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error" or o.get("name") == "stderr"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == len(FIGURES)
    html = (reports / "notebooks" / "report.html").read_text()
    assert html.count("<table") >= 3 and html.count("<img") >= len(FIGURES)


def test_evaluate_saves_each_captions_top_images(report):
    saved = np.load(report / "ranks" / "starnet_all" / "dev.npz")
    top, t2i = saved["t2i_top"], saved["t2i"]
    assert top.shape == (len(t2i), 5)
    caption_image = np.arange(len(t2i)) // (len(t2i) // len(saved["i2t"]))
    np.testing.assert_array_equal((top == caption_image[:, None]).any(axis=1), t2i < 5)
    np.testing.assert_array_equal(top[t2i == 0, 0], caption_image[t2i == 0])


def test_figures_are_deterministic(report, tmp_path):
    """Same inputs, same bytes: rerunning the figure code gives identical PNG and PDF files."""
    from stacmr.params import load_params
    from stacmr.reporting import figures
    from stacmr.reporting.results import load_results

    results = load_results(load_params(report / "params.yaml"), report / "eval", report / "models", report / "ranks")
    figures.save_figure(figures.recall_figure(results), tmp_path, "recall")
    for ext in ("png", "pdf"):
        again = (tmp_path / f"recall.{ext}").read_bytes()
        assert again == (report / "reports" / "figures" / f"recall.{ext}").read_bytes()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no chromium on PATH (apt-get install -y chromium)")
def test_headless_chromium_renders_the_report(report, tmp_path):
    page = (report / "reports" / "notebooks" / "report.html").as_uri()
    browser = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*browser, "--dump-dom", page], capture_output=True, text=True, timeout=120, check=True).stdout
    assert "<table" in dom and "<img" in dom
    shot = tmp_path / "report.png"
    subprocess.run([*browser, f"--screenshot={shot}", "--window-size=1280,4000", page],
                   capture_output=True, timeout=120, check=True)  # fmt: skip
    pixels = matplotlib.image.imread(shot)[..., :3]
    non_white = np.mean(pixels.min(axis=2) < 0.9)
    assert pixels.std() > 0.05 and non_white > 0.02, "the screenshot is blank"
