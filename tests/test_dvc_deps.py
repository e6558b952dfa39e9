"""Every DVC stage declares the package code it runs (issue #14): a stage whose module imports a file that its
`deps` miss stays "up to date" after that file changes, with stale numbers.

A stage's code is the import closure (`stacmr.checksum.import_closure`, which the code fingerprint of a
training run reads too), within `stacmr`, of the console entry (`stacmr.cli`), the stage's module
(`stacmr <stage>` → `stacmr.cli.STAGES`) and the notebooks it executes (code cells of `.ipynb` files among its
deps). Imports are read with `ast`, those inside functions included; importing `stacmr.a.b` runs the `__init__.py`
of `stacmr` and `stacmr.a` too. A dep covers a file when it names it or a directory above it.

Every stage also waits for the params check (`stacmr check-params`, the stage `params`), which reads the whole params
file: DVC deletes a stage's outputs before running it, so a typo must stop the pipeline before any other stage runs.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import yaml

from stacmr.checksum import import_closure, imported
from stacmr.cli import STAGES
from tests.helpers import REPO

DVC_FILES = [p for p in (REPO / "dvc.yaml", REPO / "pipelines" / "extract" / "dvc.yaml") if p.exists()]


# Imports that run code no stage output depends on: the stages' common start imports the model registry only to
# validate the `models` settings (a typo stops every stage), so a data stage (fetch, features, ...) is not rerun for a
# model change. The params check is that validation: its closure keeps them.
VALIDATION_ONLY = {"stacmr.stages.common": "stacmr.models"}
CHECK, CHECK_OUT = "check-params", "artifacts/params.ok"


def _notebook_imports(notebook: Path) -> set[str]:
    cells = json.loads(notebook.read_text())["cells"]
    names: set[str] = set()
    for cell in cells:
        if cell["cell_type"] == "code":
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
            names |= imported(ast.parse("\n".join(lines), str(notebook)), "")
    return names


def _stages() -> list[tuple[Path, str, dict]]:
    """(dvc.yaml, stage name, definition with `cmd` and `deps`) for every stage, templated ones by their `do`."""
    found = []
    for dvc_file in DVC_FILES:
        for name, stage in yaml.safe_load(dvc_file.read_text())["stages"].items():
            found.append((dvc_file, name, stage.get("do", stage)))
    return found


@pytest.mark.parametrize(
    ("dvc_file", "name", "stage"),
    _stages(),
    ids=[f"{f.relative_to(REPO)}:{n}" for f, n, _ in _stages()],
)
def test_stage_deps_cover_the_code_it_imports(dvc_file, name, stage):
    commands = stage["cmd"] if isinstance(stage["cmd"], list) else [stage["cmd"]]
    words = [c.split() for c in commands]
    entries = [w[1] for w in words if len(w) > 1 and w[0] == "stacmr"]
    assert entries, f"{dvc_file}:{name}: no `stacmr <stage>` command in {commands}"
    assert set(entries) <= set(STAGES), f"{dvc_file}:{name}: unknown stacmr stage in {entries}"
    wdir = (dvc_file.parent / stage.get("wdir", ".")).resolve()
    deps = [(wdir / dep).resolve() for dep in stage.get("deps", [])]
    roots = {"stacmr.cli", *(STAGES[e].module for e in entries)}
    for dep in deps:
        for notebook in [dep] if dep.suffix == ".ipynb" else sorted(dep.rglob("*.ipynb")) if dep.is_dir() else []:
            roots |= _notebook_imports(notebook)
    closure = import_closure(roots, {} if CHECK in entries else VALIDATION_ONLY)
    missed = sorted(str(path.relative_to(REPO)) for path in closure if not any(path.is_relative_to(d) for d in deps))
    assert not missed, f"{dvc_file.relative_to(REPO)}: stage {name!r} runs code its deps miss: {missed}"


def _runs_the_check(stage: dict) -> bool:
    return str(stage["cmd"]).split()[:2] == ["stacmr", CHECK]


def test_one_params_check_reads_the_whole_params_file():
    (check,) = [(f, stage) for f, _, stage in _stages() if _runs_the_check(stage)]
    dvc_file, stage = check
    assert dvc_file == REPO / "dvc.yaml"
    assert "params.yaml" in stage["deps"]  # the file, not `params:` sections: an edit of any section reruns it
    assert stage["outs"] == [CHECK_OUT] and f"--out {CHECK_OUT}" in stage["cmd"]


_WAITING = [(f, n, stage) for f, n, stage in _stages() if not _runs_the_check(stage)]


@pytest.mark.parametrize(
    ("dvc_file", "name", "stage"), _WAITING, ids=[f"{f.relative_to(REPO)}:{n}" for f, n, _ in _WAITING]
)
def test_every_stage_waits_for_the_params_check(dvc_file, name, stage):
    wdir = (dvc_file.parent / stage.get("wdir", ".")).resolve()
    deps = {(wdir / dep).resolve() for dep in stage.get("deps", [])}
    assert REPO / CHECK_OUT in deps, f"{dvc_file.relative_to(REPO)}: stage {name!r} does not depend on {CHECK_OUT}"
