"""What DVC shows a researcher: one small metrics file per report (`reports/summary.json` by `report`, the claims
scope; `reports/grid/summary.json` by `report_grid`) as the only DVC metrics of every pipeline, and a `dvc plots
show` page that renders offline: the page template named by `.dvc/config` carries Vega, Vega-Lite and vega-embed,
and the training-curve template draws validation rsum and training loss. Headless Chromium renders a page made
with both templates, every network request refused (skipped without `chromium` on PATH)."""

from __future__ import annotations

import configparser
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from dvc_render import VegaRenderer, render_html

from tests.helpers import REPO

DVC_FILES = (REPO / "dvc.yaml", REPO / "pipelines" / "extract" / "dvc.yaml")
PLOTS = REPO / ".dvc" / "plots"


def _metrics(definition: dict) -> list[str]:
    """The paths a stage (or a dvc.yaml's top level) declares as DVC metrics."""
    return [next(iter(m)) if isinstance(m, dict) else m for m in definition.get("metrics", [])]


def test_the_summaries_are_the_only_dvc_metrics():
    declared = []
    for dvc_file in DVC_FILES:
        pipeline = yaml.safe_load(dvc_file.read_text())
        declared += _metrics(pipeline)
        for stage in pipeline["stages"].values():
            declared += _metrics(stage.get("do", stage))
    assert declared == ["reports/summary.json", "reports/grid/summary.json"]
    stages = yaml.safe_load(DVC_FILES[0].read_text())["stages"]
    for name, scope, summary in (("report", "claims", "reports"), ("report_grid", "grid", "reports/grid")):
        assert f"--scope {scope} " in stages[name]["cmd"] and f"--summary {summary}/summary.json" in stages[name]["cmd"]


def _page(tmp_path: Path) -> Path:
    """A `dvc plots show` page of one training history, made as DVC makes it, with the repo's templates."""
    config = configparser.ConfigParser()
    config.read(REPO / ".dvc" / "config")
    template = REPO / ".dvc" / config["plots"]["html_template"]
    rows = [{"epoch": e, "val_rsum": 100.0 * e, "loss_loss": 10.0 / e, "rev": "workspace"} for e in (1, 2, 3)]
    renderer = VegaRenderer(
        rows,
        "reports/plots/train/x.csv",
        template="training",
        template_dir=str(PLOTS),
        x="epoch",
        y="val_rsum",
        title="reports/plots/train/x.csv",
    )
    return Path(render_html([renderer], tmp_path / "dvc_plots" / "index.html", html_template=template))


def test_the_plots_page_needs_no_network(tmp_path):
    html = _page(tmp_path).read_text()
    assert "<script src=" not in html and "cdn.jsdelivr" not in html  # DVC's own page loads Vega from a CDN
    for library in ("vega@5", "vega-lite@5", "vega-embed@6"):
        assert f"<!-- {library}." in html, library
    spec = json.loads(html.split("var spec = ", 1)[1].split(";\n", 1)[0])
    panels = [panel["encoding"]["y"]["field"] for panel in spec["hconcat"]]
    assert panels == ["val_rsum", "loss_loss"] and len(spec["data"]["values"]) == 3


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no chromium on PATH (apt-get install -y chromium)")
def test_headless_chromium_draws_the_plots_offline(tmp_path):
    page = _page(tmp_path)
    browser = [
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--proxy-server=http://127.0.0.1:9",
        "--proxy-bypass-list=<-loopback>",  # every request refused
        "--virtual-time-budget=5000",
        "--dump-dom",
        page.as_uri(),
    ]
    dom = subprocess.run(browser, capture_output=True, text=True, timeout=120, check=True).stdout
    assert 'class="vega-embed' in dom and "<canvas" in dom, "vega-embed drew nothing: the page needs the network"
