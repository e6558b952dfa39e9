import copy
import dataclasses

import pytest

from stacmr.data.sources import TEST_SPLITS, VALIDATION, split_label, store_names, train_data_label
from stacmr.models import check_models, model_config
from stacmr.params import ParamsError, load_params, parse_params
from tests.helpers import REPO


def test_repo_params_are_valid():
    params = load_params(REPO / "params.yaml")
    assert params.data.source == "synthetic"
    assert params.synthetic.ctc_images.dev <= params.synthetic.ctc_images.test
    assert params.trainset.sources == ("f30k/train", "textcaps/train", "ctc/train")


def test_params_are_frozen(repo_params):
    params = parse_params(repo_params)
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.synthetic.seed = 1  # type: ignore[misc]


def _edit(raw: dict, dotted: str, value=None, delete: bool = False) -> dict:
    raw = copy.deepcopy(raw)
    *parents, leaf = dotted.split(".")
    node = raw
    for key in parents:
        node = node[key]
    if delete:
        del node[leaf]
    else:
        node[leaf] = value
    return raw


@pytest.mark.parametrize(
    ("dotted", "value", "message"),
    [
        ("synthetic.regions", "ten", "synthetic.regions: expected an integer, got 'ten' (str)"),
        ("synthetic.regions", 12.5, "synthetic.regions: expected an integer, got 12.5 (float)"),
        ("synthetic.regions", True, "synthetic.regions: expected an integer, got True (bool)"),
        ("synthetic.region_noise", "high", "synthetic.region_noise: expected a number, got 'high' (str)"),
        ("synthetic.region_noise", -0.5, "synthetic.region_noise: must be >= 0.0, got -0.5"),
        ("synthetic.explicit_fraction", 1.5, "synthetic.explicit_fraction: must be <= 1.0, got 1.5"),
        ("synthetic.regions", 2, "synthetic.regions: must be >= 4, got 2"),
        ("data.source", "relase", "data.source: must be one of ['synthetic', 'release'], got 'relase' (did you mean"),
        ("synthetic.ctc_images", [1, 2], "synthetic.ctc_images: expected a mapping of keys, got [1, 2] (list)"),
        ("trainset.sources", "ctc/train", "trainset.sources: expected a list, got 'ctc/train' (str)"),
        ("trainset.sources", ["ctc/train", "f30k/tran"], "trainset.sources: unknown source 'f30k/tran' (did you mean"),
        ("trainset.sources", ["ctc/train", "ctc/train"], "trainset.sources: a source is listed twice"),
        ("features.fasttext.model", 3, "features.fasttext.model: expected a string, got 3 (int)"),
        ("synthetic.ctc_images.dev", 5000, "synthetic.ctc_images.dev: must be <= test"),
        ("features.fasttext.minn", 9, "features.fasttext.minn: must be <= maxn"),
        ("release.layout.ctc/val", "val", 'release.layout.ctc/val: expected "<archive>:<prefix>" with <archive> one'),
        ("release.layout.ctc/vall", "ctc_features:val", "release.layout.ctc/vall: unknown source split"),
        ("release.cocotext.sha256", "abc", "release: sha256 of 'cocotext.v2.zip' must be 64 lower-case hex digits"),
        ("release.retries", -1, "release.retries: must be >= 0, got -1"),
        ("train.precision", "fp16", "train.precision: must be one of ['fp32', 'tf32', 'bf16'], got 'fp16' (did you"),
    ],
)
def test_bad_values_name_the_key(repo_params, dotted, value, message):
    with pytest.raises(ParamsError) as info:
        parse_params(_edit(repo_params, dotted, value))
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_unknown_key_suggests_the_known_one(repo_params):
    raw = copy.deepcopy(repo_params)
    raw["synthetic"]["region_dimm"] = raw["synthetic"].pop("region_dim")
    with pytest.raises(ParamsError, match=r"^synthetic.region_dimm: unknown key \(did you mean 'region_dim'\?\)$"):
        parse_params(raw)


@pytest.mark.parametrize(
    ("dotted", "value", "message"),
    [
        ("extract.gird", 6, "extract.gird: unknown key (did you mean 'grid'?)"),
        ("extract.ocr.scrpit", "latin", "extract.ocr.scrpit: unknown key (did you mean 'script'?)"),
        ("extract.rendered.blur_radius", [1.0], "extract.rendered.blur_radius: unknown key (did you mean"),
        ("extract.backbone", "efficientnet_lite", "extract.backbone: must be one of"),
        ("extract.ocr.engine", "rapid", "extract.ocr.engine: must be one of ['rapidocr']"),
        ("extract.grid", 0, "extract.grid: must be >= 1, got 0"),
        ("extract.rendered.size", [640], "extract.rendered.size: expected [width, height]"),
    ],
)
def test_extract_typos_are_refused(repo_params, dotted, value, message):
    """`extract` is read by no stage of dvc.yaml, only by pipelines/extract: its typos passed `dvc repro` unseen until
    the `params` stage (`stacmr check-params`, on the whole file) checked them with the rest."""
    with pytest.raises(ParamsError) as info:
        parse_params(_edit(repo_params, dotted, value))
    assert str(info.value).startswith(message), str(info.value)


def test_unknown_section(repo_params):
    with pytest.raises(ParamsError, match=r"^trian: unknown key"):
        parse_params({**repo_params, "trian": {}})


def test_missing_key(repo_params):
    with pytest.raises(ParamsError, match=r"^features.fasttext.bucket: missing key$"):
        parse_params(_edit(repo_params, "features.fasttext.bucket", delete=True))


def test_null_model_is_allowed_and_path_is_kept(repo_params):
    assert parse_params(_edit(repo_params, "features.fasttext.model", None)).features.fasttext.model is None
    params = parse_params(_edit(repo_params, "features.fasttext.model", "data/cc.en.300.bin"))
    assert params.features.fasttext.model == "data/cc.en.300.bin"


def test_int_is_accepted_as_float(repo_params):
    assert parse_params(_edit(repo_params, "synthetic.region_noise", 1)).synthetic.region_noise == 1.0


def test_file_errors_name_the_file(tmp_path, repo_params, write_params):
    path = write_params(_edit(repo_params, "synthetic.seed", "x"))
    with pytest.raises(ParamsError, match=rf"^{path}: synthetic.seed: expected an integer"):
        load_params(path)
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("data: [unclosed\n")
    with pytest.raises(ParamsError, match=rf"^{bad_yaml}: not valid YAML"):
        load_params(bad_yaml)
    with pytest.raises(ParamsError, match="cannot read params file"):
        load_params(tmp_path / "absent.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ParamsError, match="the top level: expected a mapping of keys, got None"):
        load_params(empty)


@pytest.mark.parametrize(
    ("dotted", "value", "message"),
    [
        ("models.vsrn.embed_dimm", 8, "models.vsrn.embed_dimm: unknown key (did you mean 'embed_dim'?)"),
        ("models.vsrm", {}, "models.vsrm: unknown model family (did you mean 'vsrn'?)"),
        ("ablations.vsrn_all.family", "starnt", "ablations.vsrn_all.family: no `models` entry 'starnt'"),
        ("ablations.vsrn_all.train_data", "ctc/tran", "ablations.vsrn_all.train_data: unknown 'ctc/tran'"),
        ("ablations.vsrn_all.model", {"gcn_layer": 2}, "ablations.vsrn_all.model.gcn_layer: unknown key"),
        ("ablations.vsrn_all.model", {"embed_dim": "big"}, "ablations.vsrn_all.model.embed_dim: expected an integer"),
        (
            "ablations.Bad-Name",
            {"family": "vsrn", "train_data": "trainset", "model": {}, "train": {}, "counterpart": None},
            "ablations.Bad-Name: names",
        ),
        ("ablations.vsrn_all.train", {"sampler": "rnd"}, "ablations.vsrn_all.train.sampler: must be one of"),
        ("ablations.starnet_all.counterpart", "vsrn", "ablations.starnet_all.counterpart: unknown ablation 'vsrn'"),
        ("train.device", "gpu", "train.device: must be one of ['auto', 'cpu', 'cuda']"),
        ("models.starnet.fusion", "concat", "models.starnet.fusion: must be one of"),
    ],
)
def test_model_and_ablation_errors(repo_params, dotted, value, message):
    with pytest.raises(ParamsError) as info:
        check_models(parse_params(_edit(repo_params, dotted, value)))
    assert str(info.value).startswith(message), str(info.value)


def test_ablation_overrides_apply(repo_params):
    raw = _edit(repo_params, "ablations.starnet_all.model", {"fusion": "sum", "embed_dim": 64})
    params = check_models(parse_params(raw))
    config = model_config(params, "starnet_all")
    assert config.fusion == "sum" and config.embed_dim == 64
    assert model_config(params, "starnet_ctc").fusion == "product_residual"


def test_the_source_table_names_the_stores_splits_and_labels():
    assert store_names() == ["ctc/train", "ctc/val", "ctc/dev", "ctc/test", "f30k/train", "textcaps/train"]
    assert VALIDATION == "ctc/val" and TEST_SPLITS == ("dev", "test")
    assert [split_label(s) for s in ("val", "dev", "test", "train")] == ["CTC val", "CTC-1K", "CTC-5K", "train"]
    names = ("trainset", "f30k/train", "textcaps/train", "ctc/train", "ctc/val")
    assert [train_data_label(n) for n in names] == ["full mix", "Flickr30K", "TextCaps", "CTC train", "ctc/val"]
