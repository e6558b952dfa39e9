"""The Q-Pert table: the host's metrics (the evaluate stage's) beside the same checkpoint's with Q-Pert on, per
projector form (the evaluate_qpert stages' files), the difference in rsum; nothing for a scope without the ablation;
a missing Q-Pert file is one message naming it."""

from __future__ import annotations

import dataclasses
import json

import pytest

from stacmr.errors import StacmrError
from stacmr.params import parse_params
from stacmr.reporting.qpert import qpert_table
from stacmr.reporting.results import Evaluated, Results

KEYS = ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10")


def metrics(base: float) -> dict:
    values = {key: base + i for i, key in enumerate(KEYS)}
    rsum = sum(values.values())
    return {**values, "rsum": rsum, "ci95": {"rsum": [rsum - 5, rsum + 5]}}


@pytest.fixture
def setup(tmp_path, repo_params):
    params = parse_params(repo_params)
    params = dataclasses.replace(
        params, evaluate=dataclasses.replace(params.evaluate, ablations=("qformer_st_all",), splits=("dev",))
    )
    spec = params.ablations["qformer_st_all"]
    host = Evaluated("qformer_st_all", "dev", spec.family, spec.train_data, metrics(10.0), "a" * 64)
    for form, base in (("intended", 12.0), ("released", 9.0)):
        path = tmp_path / "qpert" / f"qformer_st_all-{form}" / "dev.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(metrics(base)))
    return Results(params, {("qformer_st_all", "dev"): host}, tmp_path / "ranks"), tmp_path


def test_the_host_beside_each_projector_form(setup):
    results, metrics_dir = setup
    table = qpert_table(results, metrics_dir)
    assert list(table.wide["Q-Pert"]) == ["off (host)", "on, intended projector", "on, released projector"]
    assert list(table.wide["Δ rsum"]) == ["—", "+12.0", "-6.0"]  # 6 recalls, each 2 higher / 1 lower
    assert table.wide["rsum (95% CI)"].iloc[0] == "75.0 [70.0, 80.0]"
    assert set(table.long["checkpoint_sha256"]) == {"a" * 64} and len(table.long) == 3 * 7


def test_nothing_outside_the_scope_and_a_missing_file_named(setup):
    results, metrics_dir = setup
    without = dataclasses.replace(results.params, evaluate=dataclasses.replace(results.params.evaluate, ablations=()))
    assert qpert_table(dataclasses.replace(results, params=without), metrics_dir).wide.empty
    (metrics_dir / "qpert" / "qformer_st_all-released" / "dev.json").unlink()
    with pytest.raises(StacmrError, match=r"qformer_st_all-released/dev\.json"):
        qpert_table(results, metrics_dir)
