"""Which rows a report has. `claims`: the part of the grid that answers the paper's claims, `report.baseline` and
`report.scene_text` (with their seed replicates, and the headroom control built on the baseline): what `make repro`
runs in minutes. `grid`: every ablation of `evaluate.ablations` (`make grid`). A report, `stacmr verify` and their
tables read the rows of their scope only, and say which they have.
"""

from __future__ import annotations

from dataclasses import replace

from stacmr.params import Params

CLAIMS, GRID = "claims", "grid"
SCOPES = (CLAIMS, GRID)


def scope_rows(params: Params, scope: str) -> tuple[str, ...]:
    """The ablations of `scope`, in `evaluate.ablations` order."""
    if scope not in SCOPES:
        raise ValueError(f"scope {scope!r}: one of {list(SCOPES)}")
    if scope == GRID:
        return params.evaluate.ablations
    claim_bearing = {params.report.baseline, params.report.scene_text}
    return tuple(a for a in params.evaluate.ablations if a in claim_bearing)


def scoped(params: Params, scope: str) -> Params:
    """`params` whose `evaluate.ablations` are the rows of `scope`: what everything downstream iterates over."""
    return replace(params, evaluate=replace(params.evaluate, ablations=scope_rows(params, scope)))


def scope_note(params: Params, scope: str) -> str:
    """One Markdown sentence: the rows this report has, and where the others are."""
    rows = scope_rows(params, scope)
    seeds = ", ".join(str(s) for s in (params.train.seed, *params.replicates.seeds))
    replicated = [a for a in rows if a in params.replicates.ablations]
    listed = ", ".join(f"`{a}`" + (f" (seeds {seeds})" if a in replicated else "") for a in rows)
    if scope == GRID:
        return f"Rows: the whole grid (`make grid`; files in `reports/grid/`), {len(rows)} ablations: {listed}."
    others = len(params.evaluate.ablations) - len(rows)
    return (
        f"Rows: the claim-bearing part of the grid (`make repro`; files in `reports/`), {listed}; the other {others} "
        "ablations of the grid are in the grid report (`make grid` → `reports/grid/`)."
    )
