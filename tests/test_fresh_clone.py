"""The README's promise: a fresh clone (no DVC remote, no data/, nothing downloaded) runs the pipeline on the embedded
default through the Makefile's targets, and ends up to date. The data stages run here at full default size; training
is covered on a tiny config by test_training.py (the default's training takes minutes per ablation)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stacmr.data.sources import store_names
from stacmr.features.store import FeatureStore, store_file
from stacmr.params import load_params
from tests.helpers import REPO


@pytest.mark.slow
def test_fresh_clone_runs_the_pipeline(tmp_path):
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    assert not (clone / "data").exists() and not (clone / "artifacts").exists()
    # the installed environment serves the clone; its own sources take precedence over the editable install
    venv_bin = Path(sys.prefix) / "bin"
    env = {**os.environ, "PYTHONPATH": str(clone / "src"), "PATH": f"{venv_bin}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        ["make", "-C", str(clone), "data", "pipeline", f"VENV={Path(sys.prefix)}", "TARGETS=trainset"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    params = load_params(clone / "params.yaml")
    features = clone / "artifacts" / "features"
    for name in store_names():
        with FeatureStore(store_file(features, name)) as store:
            assert store["regions"].shape[1:] == (params.synthetic.regions, params.synthetic.region_dim)
    with FeatureStore(clone / "artifacts" / "trainset.h5") as train:
        syn = params.synthetic
        assert len(train) == syn.f30k_images + syn.textcaps_images + syn.ctc_images.train
    status = subprocess.run(["dvc", "status", "trainset"], cwd=clone, env=env, capture_output=True, text=True)
    assert status.returncode == 0 and "up to date" in status.stdout, status.stdout + status.stderr
