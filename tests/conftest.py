"""Shared fixtures: the repo's own params.yaml, shrunk to a tiny synthetic world (lightning-hydra style)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def shrink(raw: dict) -> dict:
    """The repo's params with sizes small enough for a unit test (a second or two per stage)."""
    tiny = copy.deepcopy(raw)
    tiny["synthetic"].update(
        ctc_images={"train": 60, "val": 15, "test": 45, "dev": 12},
        f30k_images=40,
        textcaps_images=30,
        regions=6,
        region_dim=16,
    )
    tiny["features"]["fasttext"].update(dim=32, epoch=2, lr=0.005, ws=2, bucket=20000)
    tiny["trainset"]["chunk_images"] = 7
    tiny["train"].update(epochs=2, batch_size=16, lr_decay_every=1)
    small = {"embed_dim": 16, "word_dim": 8, "gcn_layers": 1, "caption_hidden": 16, "caption_word_dim": 8}
    for config in tiny["models"].values():
        config.update({key: value for key, value in small.items() if key in config})
        config.update({key: 1 for key in ("text_gcn_layers", "weldon_k") if key in config})
    return tiny


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory, repo_params):
    """fetch → features → trainset → neighbours run once on the tiny config: (root directory, its Params)."""
    from stacmr.cli import main
    from stacmr.params import load_params

    root = tmp_path_factory.mktemp("pipeline")
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump(shrink(repo_params)))
    assert main(["fetch", "--params", str(params), "--out", str(root / "raw")]) == 0
    assert main(["features", "--params", str(params), "--raw", str(root / "raw"), "--out", str(root / "features")]) == 0
    trainset = ["trainset", "--params", str(params), "--features", str(root / "features")]
    assert main([*trainset, "--out", str(root / "trainset.h5"), "--vocab", str(root / "vocab.json")]) == 0
    neighbours = ["neighbours", "--params", str(params), "--features", str(root / "features")]
    assert main([*neighbours, "--trainset", str(root / "trainset.h5"), "--raw", str(root / "raw"),
                 "--out", str(root / "neighbours")]) == 0  # fmt: skip
    return root, load_params(params)


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
