"""Shared fixtures: the repo's own params.yaml, shrunk to a tiny synthetic world (`tests.helpers.params.shrink`).

A test that asks for `pipeline` is marked `slow`: the fixture trains fastText (the `features` stage), and the tests
that use it train models on its output."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO
from tests.helpers.params import shrink


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "pipeline" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def repo_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory, repo_params):
    """fetch → features → trainset → neighbours run once on the tiny config: (root directory, its Params)."""
    from stacmr.cli import main
    from stacmr.stages.common import load_checked_params

    root = tmp_path_factory.mktemp("pipeline")
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump(shrink(repo_params)))
    assert main(["fetch", "--params", str(params), "--out", str(root / "raw")]) == 0
    assert main(["features", "--params", str(params), "--raw", str(root / "raw"), "--out", str(root / "features")]) == 0
    trainset = ["trainset", "--params", str(params), "--features", str(root / "features")]
    assert main([*trainset, "--out", str(root / "trainset.h5"), "--vocab", str(root / "vocab.json")]) == 0
    neighbours = ["neighbours", "--params", str(params), "--features", str(root / "features")]
    assert (
        main(
            [
                *neighbours,
                "--trainset",
                str(root / "trainset.h5"),
                "--raw",
                str(root / "raw"),
                "--out",
                str(root / "neighbours"),
            ]
        )
        == 0
    )
    return root, load_checked_params(params)


@pytest.fixture
def tiny_raw(repo_params: dict) -> dict:
    return shrink(repo_params)


@pytest.fixture
def write_params(tmp_path: Path):
    def write(raw: dict, name: str = "params.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(raw))
        return path

    return write


@pytest.fixture
def tiny_params_file(tiny_raw: dict, write_params) -> Path:
    return write_params(tiny_raw)
