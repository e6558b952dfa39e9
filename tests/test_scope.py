"""A report's scope: the claims scope has report.baseline and report.scene_text only, in grid order; the grid has
every evaluated ablation; the note says which rows a report has and where the others are; `verify` reads only the
rows of its scope, so the claims check runs without the rest of the grid's checkpoints."""

from __future__ import annotations

import pytest

from stacmr.errors import StacmrError
from stacmr.params import parse_params
from stacmr.reporting.scope import CLAIMS, GRID, scope_note, scope_rows, scoped
from stacmr.stages.verify import main as verify


@pytest.fixture
def params(repo_params):
    return parse_params(repo_params)


def test_the_claims_scope_is_the_baseline_and_the_scene_text_row_in_grid_order(params):
    assert scope_rows(params, CLAIMS) == ("vsrn_all", "starnet_all")
    assert scope_rows(params, GRID) == params.evaluate.ablations
    claims = scoped(params, CLAIMS)
    assert claims.evaluate.ablations == ("vsrn_all", "starnet_all")
    assert claims.evaluate.splits == params.evaluate.splits and claims.ablations == params.ablations
    with pytest.raises(ValueError, match="scope 'all'"):
        scope_rows(params, "all")


def test_the_note_names_the_rows_their_seeds_and_where_the_others_are(params):
    note = scope_note(params, CLAIMS)
    others = len(params.evaluate.ablations) - 2
    assert "`vsrn_all` (seeds 0, 1, 2), `starnet_all` (seeds 0, 1, 2)" in note
    assert f"the other {others} ablations" in note and "reports/grid/" in note
    grid = scope_note(params, GRID)
    assert f"{len(params.evaluate.ablations)} ablations" in grid and "`chan_all`," in grid
    assert "`chan_all` (seeds" not in grid  # only replicated rows list their seeds


def test_verify_reads_only_the_rows_of_its_scope(tmp_path, tiny_raw, write_params):
    # no checkpoint anywhere: the error names the first row of the scope, which is not the grid's first
    path = write_params(tiny_raw)
    args = ["--params", str(path), "--models", str(tmp_path / "none"), "--metrics", str(tmp_path / "none")]
    with pytest.raises(StacmrError, match=r"vsrn_f30k/best\.pt"):
        verify([*args, "--scope", "grid"])
    with pytest.raises(StacmrError, match=r"vsrn_all/best\.pt"):
        verify(args)
