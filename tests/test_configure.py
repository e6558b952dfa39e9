import shutil

import yaml

from stacmr.cli import main
from stacmr.params import load_params
from stacmr.stages.common import load_checked_params
from tests.helpers import REPO


def test_release_overlay_is_one_command_away(tmp_path):
    params = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params)
    assert main(["configure", "--params", str(params), str(REPO / "configs" / "release.yaml")]) == 0
    merged = load_checked_params(params)
    assert merged.data.source == "release" and merged.train.epochs == 30
    assert merged.models["starnet"].embed_dim == 2048 and merged.models["starnet"].retrieval_weight == 2.0
    assert merged.models["vsrn"].retrieval_weight == 1.0
    assert merged.synthetic == load_params(REPO / "params.yaml").synthetic  # untouched sections keep their values


def test_a_bad_overlay_changes_nothing(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params)
    before = params.read_bytes()
    overlay = tmp_path / "bad.yaml"
    overlay.write_text(yaml.safe_dump({"train": {"epochz": 3}}))
    assert main(["configure", "--params", str(params), str(overlay)]) == 2
    assert "train.epochz: unknown key (did you mean 'epochs'?)" in capsys.readouterr().err
    assert params.read_bytes() == before
