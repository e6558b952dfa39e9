"""The shared word space (`word_init: ocr_fasttext`), per-ablation `train` overrides and counterparts, and STARNet in
the release's training setting (`data_name: f30k_precomp`)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from stacmr.features.ocr_embedding import OcrEmbedder, fasttext_model_path
from stacmr.features.vocab import Vocabulary
from stacmr.models import DataDims, ImageBatch, build_model, config_class
from stacmr.models.layers import l2norm
from stacmr.params import ParamsError, parse_params
from stacmr.training.word_init import (
    RANDOM_INIT_STD,
    initialise_word_vectors,
    ocr_fasttext_word_vectors,
    pca_projection,
)


def test_pca_projection_is_orthonormal_sign_fixed_and_explains_planted_variance():
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(20, 3)))[0].T  # 3 orthonormal directions in 20 dims
    data = rng.normal(size=(200, 3)) * [5.0, 3.0, 2.0] @ basis + 0.01 * rng.normal(size=(200, 20)) + 7.0
    mean, components, explained = pca_projection(data, 3)
    assert np.allclose(components @ components.T, np.eye(3), atol=1e-10)
    assert np.allclose(mean, data.mean(axis=0))
    assert explained > 0.999
    # the planted subspace is recovered
    assert np.allclose(np.abs(components @ basis.T).max(axis=1), 1.0, atol=1e-3)
    assert (components[np.arange(3), np.abs(components).argmax(axis=1)] > 0).all()
    _, again, _ = pca_projection(data[::-1].copy(), 3)
    assert np.allclose(components, again)


def test_pca_projection_refuses_more_components_than_data():
    with pytest.raises(Exception, match="cannot project 3 word vectors"):
        pca_projection(np.ones((3, 10)), 5)


@pytest.fixture(scope="module")
def fasttext_path(pipeline):
    root, params = pipeline
    return fasttext_model_path(root / "features", params.features.fasttext)


def test_ocr_fasttext_vectors_share_the_ocr_space(pipeline, fasttext_path):
    root, _ = pipeline
    vocab = Vocabulary.load(root / "vocab.json")
    vectors, record = ocr_fasttext_word_vectors(vocab, fasttext_path, 8)
    assert vectors.shape == (len(vocab) - 4, 8) and vectors.dtype == np.float32
    assert vectors.std() == pytest.approx(RANDOM_INIT_STD, rel=1e-4)
    assert record["source"] == "ocr_fasttext" and len(record["fasttext_sha256"]) == 64
    # the recorded map reproduces the vectors from the fastText vectors: the checkpoint says how words started
    embedder = OcrEmbedder.load(fasttext_path)
    word = vocab.itos[10]
    mapped = (embedder.vector(word) - np.array(record["mean"])) @ np.array(record["components"]).T * record["scale"]
    assert np.allclose(mapped, vectors[10 - 4], atol=1e-4)
    # a caption word and the same word as OCR reads it (capitals) get one vector
    assert np.array_equal(embedder.vector(word.upper()), embedder.vector(word))


@pytest.mark.parametrize("family", ["vsrn", "starnet", "chan", "chan_st", "dsve"])
def test_initialise_word_vectors_fills_every_family_but_the_reserved_ids(pipeline, family):
    root, params = pipeline
    vocab = Vocabulary.load(root / "vocab.json")
    config = params.models[family]
    torch.manual_seed(0)
    model = build_model(family, config, DataDims(region_dim=16, ocr_dim=32, ocr_slots=15, vocab_size=len(vocab)))
    before = model.caption_word_embedding().weight.detach().clone()
    vectors = np.random.default_rng(0).normal(size=(len(vocab) - 4, config.word_dim)).astype(np.float32)
    initialise_word_vectors(model, vectors)
    after = model.caption_word_embedding().weight.detach()
    assert torch.equal(after[:4], before[:4])
    assert torch.equal(after[4:], torch.from_numpy(vectors))
    with pytest.raises(Exception, match="word vectors"):
        initialise_word_vectors(model, vectors[:, :-1])


def test_ablation_train_overrides_and_counterparts_are_validated(tiny_raw):
    tiny_raw["ablations"]["chan_st_nb"]["train"] = {"sampler": "visual_neighbours", "seed": 3}
    params = parse_params(tiny_raw)
    assert params.train_params("chan_st_nb").sampler == "visual_neighbours"
    assert params.train_params("chan_st_nb").seed == 3
    assert params.train_params("chan_st_all") == params.train
    tiny_raw["ablations"]["chan_st_nb"]["train"] = {"smapler": "visual_neighbours"}
    with pytest.raises(
        ParamsError, match=r"ablations\.chan_st_nb\.train\.smapler: unknown key \(did you mean 'sampler'"
    ):
        parse_params(tiny_raw)
    tiny_raw["ablations"]["chan_st_nb"]["train"] = {"sampler": "neighbours"}
    with pytest.raises(ParamsError, match=r"ablations\.chan_st_nb\.train\.sampler: must be one of"):
        parse_params(tiny_raw)
    tiny_raw["ablations"]["chan_st_nb"]["train"] = {}
    tiny_raw["ablations"]["chan_st_nb"]["counterpart"] = "chan_nbb"
    with pytest.raises(ParamsError, match=r"ablations\.chan_st_nb\.counterpart: unknown ablation 'chan_nbb'"):
        parse_params(tiny_raw)


def _images(b: int = 6, r: int = 5, t: int = 4) -> ImageBatch:
    g = torch.Generator().manual_seed(1)
    return ImageBatch(
        regions=torch.randn(b, r, 16, generator=g) * 3,
        region_mask=torch.ones(b, r, dtype=torch.bool),
        ocr=torch.randn(b, t, 32, generator=g),
        ocr_mask=torch.rand(b, t, generator=g) < 0.7,
    )


@pytest.mark.parametrize("data_name", ["f30k_precomp", "precomp"])
def test_starnet_follows_the_release_data_name(pipeline, data_name):
    _, params = pipeline
    config = dataclasses.replace(params.models["starnet"], data_name=data_name, gcn_layers=0)
    torch.manual_seed(0)
    model = build_model("starnet", config, DataDims(region_dim=16, ocr_dim=32, ocr_slots=4, vocab_size=20)).eval()
    images = _images()
    projected = model.region_fc(images.regions)
    reasoned = model.reason_regions(images)
    # no graph block: the reasoned regions are the projected ones, l2-normalised once (precomp) or once at the end
    assert torch.allclose(reasoned, l2norm(projected), atol=1e-6)
    with torch.no_grad():
        v = model.visual_vector(reasoned, images.region_mask)
        t = model.text_vector(images)
        fused = v * t + v
        if data_name == "f30k_precomp":
            assert isinstance(model.image_norm, torch.nn.BatchNorm1d)
            fused = model.image_norm(fused)
        else:
            assert model.image_norm is None
        assert torch.allclose(model.encode_images(images), l2norm(fused), atol=1e-6)


def test_f30k_precomp_skips_the_region_norm_before_the_graph(pipeline):
    _, params = pipeline
    config = dataclasses.replace(params.models["vsrn"], data_name="f30k_precomp", gcn_layers=1)
    torch.manual_seed(0)
    model = build_model("vsrn", config, DataDims(region_dim=16, ocr_dim=32, ocr_slots=4, vocab_size=20)).eval()
    images = _images()
    block = model.region_graph[0]
    with torch.no_grad():
        block.bn.weight.fill_(1.0)  # a graph block that is not the identity, so the input's scale matters
        expected = l2norm(block(model.region_fc(images.regions), images.region_mask))
        assert torch.allclose(model.reason_regions(images), expected, atol=1e-6)
    assert config_class("vsrn") is type(config)
