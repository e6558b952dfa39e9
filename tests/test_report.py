"""The `report` stage end to end on the tiny config: two tiny trainings, their evaluations, then the claims check and
the notebook under papermill → tables, figures, the executed notebook and its HTML; and the HTML rendered by headless
Chromium (skipped when no `chromium` is on PATH; `.ci/run` installs Debian's)."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess

import matplotlib.image
import nbformat
import numpy as np
import pytest
import yaml

from stacmr.checksum import sha256_file
from stacmr.cli import main
from tests.helpers import REPO
from tests.helpers.params import shrink
from tests.helpers.stages import evaluate_argv, train_argv

pytestmark = pytest.mark.slow
ABLATIONS = ("vsrn_all", "starnet_all")
FIGURES = ("recall", "ranks", "training", "qualitative")


@pytest.fixture(scope="module")
def report(pipeline, tmp_path_factory, repo_params):
    root, _ = pipeline
    out = tmp_path_factory.mktemp("report")
    raw = shrink(repo_params)
    raw["evaluate"]["ablations"] = list(ABLATIONS)
    raw["replicates"] = {"ablations": list(ABLATIONS), "seeds": [1]}  # one seed replicate each
    params = out / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{out}/mlflow.db")
        for ablation in ABLATIONS:
            for run, extra in ((ablation, []), (f"replicates/{ablation}-s1", ["--seed", "1"])):
                argv = train_argv(root, out, ablation, params)
                argv[argv.index("--out") + 1] = str(out / "models" / run)
                argv[argv.index("--history") + 1] = str(out / "plots" / f"{run}.csv")
                train_json = (
                    out / "eval" / "train" / f"{ablation}.json"
                    if run == ablation
                    else out / "eval" / run / "train.json"
                )
                argv[argv.index("--metrics") + 1] = str(train_json)
                assert main([*argv, *extra]) == 0
                for split in ("dev", "test"):
                    assert (
                        main(
                            evaluate_argv(
                                params,
                                ablation,
                                split,
                                root,
                                out / "models" / run,
                                out / "eval" / run / f"{split}.json",
                                out / "ranks" / run / f"{split}.npz",
                            )
                        )
                        == 0
                    )
        assert (
            main(
                [
                    "headroom",
                    "--params",
                    str(params),
                    "--models",
                    str(out / "models"),
                    "--features",
                    str(root / "features"),
                    "--metrics",
                    str(out / "eval" / "headroom"),
                    "--ranks",
                    str(out / "ranks" / "headroom"),
                ]
            )
            == 0
        )
        assert main(_report_argv(params, root, out)) == 0
    return out


def _report_argv(params, root, out) -> list[str]:
    return [
        "report",
        "--params",
        str(params),
        "--claims",
        str(REPO / "paper_claims.yaml"),
        "--metrics",
        str(out / "eval"),
        "--models",
        str(out / "models"),
        "--ranks",
        str(out / "ranks"),
        "--features",
        str(root / "features"),
        "--history",
        str(out / "plots"),
        "--neighbours",
        str(root / "neighbours"),
        "--sweep",
        str(out / "no_sweep.csv"),
        "--notebooks",
        str(REPO / "notebooks"),
        "--verdicts",
        str(out / "reports" / "claims"),
        "--tables",
        str(out / "reports" / "tables"),
        "--figures",
        str(out / "reports" / "figures"),
        "--executed",
        str(out / "reports" / "notebooks"),
        "--summary",
        str(out / "reports" / "summary.json"),
    ]


def test_report_writes_tables_figures_claims_and_the_executed_notebook(report):
    reports = report / "reports"
    for name in ("main", "ablation"):
        for ext in ("md", "tex", "csv"):
            assert (reports / "tables" / f"{name}.{ext}").stat().st_size > 0
    checkpoints = {sha256_file(report / "models" / ab / "best.pt") for ab in ABLATIONS}
    with open(reports / "tables" / "main.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["checkpoint_sha256"] for r in rows if r["dvc_stage"]} == checkpoints
    assert {r["dvc_stage"] for r in rows if r["dvc_stage"]} == {
        f"evaluate@{a}-{s}" for a in ABLATIONS for s in ("dev", "test")
    }
    for name in FIGURES:
        for ext in ("png", "pdf"):
            assert (reports / "figures" / f"{name}.{ext}").stat().st_size > 1000
    summary = json.loads((reports / "summary.json").read_text())
    assert list(summary) == list(ABLATIONS) and {"ctc1k_rsum", "val_rsum"} <= set(summary["starnet_all"])
    verdicts = (reports / "claims" / "verdicts.md").read_text()
    assert "not comparable to the paper's" in verdicts and "scene-text aware (STARNet) > visual only" in verdicts
    executed = nbformat.read(reports / "notebooks" / "report.ipynb", as_version=4)
    outputs = [o for cell in executed.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error" or o.get("name") == "stderr"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == len(FIGURES)
    html = (reports / "notebooks" / "report.html").read_text()
    assert html.count("<table") >= 3 and html.count("<img") >= len(FIGURES)
    assert "Rows: the claim-bearing part of the grid" in html  # the report says which rows it has
    text = (reports / "notebooks" / "report.ipynb").read_text()
    # no run details inside: timings, or the temporary folder the notebook was executed into (paths are the flags')
    assert "end_time" not in text and "duration" not in text and ".tmp" not in text
    assert (reports / "tables" / "seeds.md").read_text().count("± ") >= 7 * 2


def test_the_first_screen_gives_the_verdicts_before_any_published_number(report):
    html = (report / "reports" / "notebooks" / "report.html").read_text()
    verdicts, appendix = html.index("<h3>Directional claims</h3>"), html.index("<details")
    first_number = re.search(r"STARNet CTC-1K i2t_r1 = ", html).start()
    assert verdicts < html.index("Main table") < appendix < first_number
    assert html.index("Directional claims (3):") < verdicts  # the summary line comes first


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
    subprocess.run(
        [*browser, f"--screenshot={shot}", "--window-size=1280,4000", page],
        capture_output=True,
        timeout=120,
        check=True,
    )
    pixels = matplotlib.image.imread(shot)[..., :3]
    non_white = np.mean(pixels.min(axis=2) < 0.9)
    assert pixels.std() > 0.05 and non_white > 0.02, "the screenshot is blank"


def test_rerunning_the_report_gives_the_same_bytes(report, pipeline):
    """Same inputs, same outputs: the executed notebook, its HTML, tables, figures and verdicts (last in this file:
    it rewrites the fixture's reports/ in place)."""
    root, _ = pipeline
    first = report / "reports_first"
    shutil.copytree(report / "reports", first)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{report}/mlflow.db")
        assert main(_report_argv(report / "params.yaml", root, report)) == 0
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert len(files) > 20
    assert [f for f in files if (first / f).read_bytes() != (report / "reports" / f).read_bytes()] == []
