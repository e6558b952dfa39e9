"""`benchmarks/gpu.py --smoke` runs every path on a CPU (tiny sizes): training per family and precision fed by the
loader, dense and fine-grained ranking, the release-run estimate; one JSON object. Its numbers are not checked
(tests check correctness, not time), only that each path ran and measured something."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.slow


def test_the_smoke_run_measures_every_path_on_a_cpu():
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    command = [sys.executable, "benchmarks/gpu.py", "--smoke", "--device", "cpu", "--families", "vsrn", "chan_st"]
    run = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=True)
    out = json.loads(run.stdout)
    assert out["device"] == "cpu" and out["smoke"] is True
    assert set(out["training"]) == {"vsrn", "chan_st"}
    for family in out["training"].values():
        assert set(family) == {"fp32", "tf32", "bf16"}
        for row in family.values():
            assert row["captions_per_s"] > 0 and row["release_run_hours"] > 0 and row["peak_gib"] is None
    for kind, seconds in (("dense_ctc5k", "ranks_s"), ("finegrained_ctc5k", "scores_and_ranks_s")):
        assert set(out[kind]) == {"fp32"}  # TF32 exists on a GPU only
        assert out[kind]["fp32"][seconds] > 0 and out[kind]["fp32"]["floor_s"] > 0
