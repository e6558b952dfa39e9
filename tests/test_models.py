"""Model families and shared layers: shapes, unit norms, masks, finite gradients, determinism, the registry, and
a tiny batch that each family learns to match."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from stacmr.models import (
    FAMILIES,
    CaptionBatch,
    ImageBatch,
    RetrievalModel,
    VectorSets,
    build_model,
    config_class,
    family_class,
)
from stacmr.models.characters import MAX_CHARS
from stacmr.models.layers import GraphReasoning, MaskedBatchNorm1d, l2norm
from stacmr.models.precision import float32_mode
from stacmr.models.registry import register
from stacmr.models.vsrn import teacher_forcing
from tests.helpers.models import DIMS, HINGE, finite_grads, garble_padding, make_captions, make_images

TINY = {
    "embed_dim": 16,
    "word_dim": 8,
    "gcn_layers": 2,
    "caption_hidden": 12,
    "caption_word_dim": 8,
    "caption_dropout": 0.5,
    "retrieval_weight": 1.0,
    "caption_weight": 1.0,
    "word_init": "random",
    "data_name": "f30k_precomp",
}
FAMILY_SETTINGS = {"vsrn": TINY, "starnet": {**TINY, "text_gcn_layers": 2, "fusion": "product_residual"}}


def make_model(family: str, seed: int = 0, **overrides) -> RetrievalModel:
    torch.manual_seed(seed)
    config = config_class(family)(**{**FAMILY_SETTINGS[family], **overrides})
    return build_model(family, config, DIMS)


def wake(model: nn.Module, seed: int = 1) -> nn.Module:
    """Random weights for the zero-initialised BatchNorms, so that graph blocks are not the identity (as after
    training) and their masking is actually exercised."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, MaskedBatchNorm1d):
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator))
                module.bias.copy_(torch.randn(module.bias.shape, generator=generator))
    return model


# --- shared layers -------------------------------------------------------------------------------------------------


def test_masked_batchnorm_is_batchnorm_when_everything_is_real():
    torch.manual_seed(0)
    x = torch.randn(6, 3, 5) * 3 + 1
    masked, plain = MaskedBatchNorm1d(3), nn.BatchNorm1d(3)
    with torch.no_grad():
        for bn in (masked, plain):
            bn.weight.copy_(torch.tensor([0.5, -1.0, 2.0]))
            bn.bias.copy_(torch.tensor([0.1, 0.2, -0.3]))
    for _ in range(2):
        torch.testing.assert_close(masked(x, torch.ones(6, 1, 5, dtype=torch.bool)), plain(x))
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(masked, name), getattr(plain, name))
    masked.eval()
    plain.eval()
    torch.testing.assert_close(masked(x, torch.ones(6, 1, 5, dtype=torch.bool)), plain(x))


def test_masked_batchnorm_statistics_ignore_padding():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 5)
    mask = torch.rand(4, 1, 5) > 0.4
    bn_a, bn_b = MaskedBatchNorm1d(3), MaskedBatchNorm1d(3)
    out_a = bn_a(x, mask)
    out_b = bn_b(torch.where(mask, x, 1e3 * torch.randn(x.shape)), mask)
    torch.testing.assert_close(out_a, out_b)
    torch.testing.assert_close(bn_a.running_var, bn_b.running_var)
    assert (out_a[~mask.expand_as(x)] == 0).all()
    # The statistics are those of the real entries alone.
    real = x.transpose(0, 1)[mask.expand_as(x).transpose(0, 1)].view(3, -1)
    expected = (real - real.mean(1, keepdim=True)) / torch.sqrt(real.var(1, unbiased=False, keepdim=True) + bn_a.eps)
    torch.testing.assert_close(out_a.transpose(0, 1)[mask.expand_as(x).transpose(0, 1)].view(3, -1), expected)


def test_masked_batchnorm_channel_with_one_real_entry_uses_running_stats():
    bn = MaskedBatchNorm1d(2)
    x = torch.randn(3, 2, 1, requires_grad=True)
    mask = torch.tensor([[True, True], [True, False], [False, False]])[..., None]
    out = bn(x, mask)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()
    torch.testing.assert_close(out[0, 1], x[0, 1].detach() / torch.sqrt(torch.tensor(1 + bn.eps)))
    assert bn.running_mean[1] == 0 and bn.running_var[1] == 1


@pytest.mark.parametrize("train", [False, True])
def test_graph_block_starts_as_the_identity(train):
    torch.manual_seed(0)
    block = GraphReasoning(8).train(train)
    x = torch.randn(3, 5, 8)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    assert torch.equal(block(x, mask), x)


@pytest.mark.parametrize("train", [False, True])
def test_graph_block_padded_nodes_do_not_reach_real_nodes(train):
    torch.manual_seed(0)
    block = wake(GraphReasoning(8)).train(train)
    x = torch.randn(3, 5, 8)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 1, 0, 0]], dtype=torch.bool)
    out = block(x, mask)
    garbled = block(torch.where(mask[..., None], x, 100 * torch.randn(x.shape)), mask)
    torch.testing.assert_close(out[mask], garbled[mask])
    assert not torch.allclose(out[mask], x[mask])  # awake: the block does reason
    assert torch.isfinite(garbled).all()


def test_graph_block_padded_row_reasons_as_the_image_alone():
    torch.manual_seed(0)
    block = wake(GraphReasoning(8)).eval()
    x = torch.randn(1, 5, 8)
    alone = block(x[:, :3], torch.ones(1, 3, dtype=torch.bool))
    padded = block(x, torch.tensor([[1, 1, 1, 0, 0]], dtype=torch.bool))
    torch.testing.assert_close(padded[:, :3], alone)


def test_teacher_forcing_adds_start_and_end():
    tokens = torch.tensor([[7, 8, 9], [5, 6, 0], [4, 11, 12]])
    inputs, targets = teacher_forcing(tokens, torch.tensor([3, 2, 1]))
    assert inputs.tolist() == [[1, 7, 8, 9], [1, 5, 6, 0], [1, 4, 0, 0]]
    assert targets.tolist() == [[7, 8, 9, 2], [5, 6, 2, 0], [4, 2, 0, 0]]


def test_l2norm_of_zero_is_zero_with_finite_gradient():
    x = torch.zeros(2, 4, requires_grad=True)
    out = l2norm(x)
    out.sum().backward()
    assert torch.equal(out, torch.zeros(2, 4)) and torch.isfinite(x.grad).all()


def test_batches_check_their_shapes():
    images = make_images()
    with pytest.raises(ValueError, match="region_mask"):
        dataclasses.replace(images, region_mask=images.region_mask.float())
    with pytest.raises(ValueError, match="ocr_mask"):
        dataclasses.replace(images, ocr_mask=images.ocr_mask[:, :2])
    with pytest.raises(ValueError, match="lengths"):
        CaptionBatch(tokens=torch.zeros(2, 3, dtype=torch.int64), lengths=torch.ones(3, dtype=torch.int64))


# --- families ------------------------------------------------------------------------------------------------------


@pytest.fixture(params=sorted(FAMILY_SETTINGS))
def family(request) -> str:
    return request.param


def test_embeddings_have_the_right_shape_and_unit_norm(family):
    model = make_model(family)
    for train in (True, False):
        model.train(train)
        img_emb, cap_emb = model.encode_images(make_images()), model.encode_captions(make_captions())
        assert img_emb.shape == cap_emb.shape == (4, 16)
        torch.testing.assert_close(img_emb.norm(dim=1), torch.ones(4))
        torch.testing.assert_close(cap_emb.norm(dim=1), torch.ones(4))
        torch.testing.assert_close(model.similarity(img_emb, cap_emb[:3]), img_emb @ cap_emb[:3].T)


def test_loss_terms_are_finite_and_gradients_too(family):
    model = make_model(family)
    out = model.loss(make_images(), make_captions(), HINGE)
    assert set(out) == {"loss", "retrieval", "caption"}
    assert all(v.dim() == 0 and torch.isfinite(v) for v in out.values())
    config = model.config
    torch.testing.assert_close(
        out["loss"], config.retrieval_weight * out["retrieval"] + config.caption_weight * out["caption"]
    )
    out["loss"].backward()
    assert finite_grads(model)


@pytest.mark.parametrize("train", [True, False])
def test_padding_changes_nothing(family, train):
    model = wake(make_model(family)).train(train)
    images, captions = make_images(), make_captions()
    garbled_images, garbled_captions = garble_padding(images, captions)
    with torch.no_grad():
        torch.testing.assert_close(model.encode_images(images), model.encode_images(garbled_images))
        torch.testing.assert_close(model.encode_captions(captions), model.encode_captions(garbled_captions))
        torch.manual_seed(5)  # the decoder's dropout draws the same masks for both
        clean = model.loss(images, captions, HINGE)
        torch.manual_seed(5)
        garbled = model.loss(garbled_images, garbled_captions, HINGE)
    for key in clean:
        torch.testing.assert_close(clean[key], garbled[key])


def test_an_item_embeds_the_same_alone_or_in_a_padded_batch(family):
    """Oracle: each image with only its real regions, each caption with only its words, one at a time."""
    model = wake(make_model(family)).eval()
    images, captions = make_images(), make_captions()
    with torch.no_grad():
        img_emb, cap_emb = model.encode_images(images), model.encode_captions(captions)
        for i in range(4):
            r = int(images.region_mask[i].sum())
            alone = ImageBatch(
                regions=images.regions[i : i + 1, :r],
                region_mask=images.region_mask[i : i + 1, :r],
                ocr=images.ocr[i : i + 1],
                ocr_mask=images.ocr_mask[i : i + 1],
            )
            torch.testing.assert_close(model.encode_images(alone)[0], img_emb[i])
            n = int(captions.lengths[i])
            caption = CaptionBatch(tokens=captions.tokens[i : i + 1, :n], lengths=captions.lengths[i : i + 1])
            torch.testing.assert_close(model.encode_captions(caption)[0], cap_emb[i])


def test_same_seed_same_model_and_outputs(family):
    images, captions = make_images(), make_captions()
    outputs = []
    for _ in range(2):
        model = make_model(family, seed=3)
        torch.manual_seed(4)
        outputs.append((model.loss(images, captions, HINGE)["loss"], model.encode_images(images)))
    assert torch.equal(outputs[0][0], outputs[1][0]) and torch.equal(outputs[0][1], outputs[1][1])
    assert not torch.equal(make_model(family, seed=5).encode_images(images), outputs[0][1])


@pytest.mark.parametrize("ocr_counts", [(0, 2, 0, 1), (0, 0, 0, 0)])
def test_starnet_images_without_text_are_finite(ocr_counts):
    model = wake(make_model("starnet"))
    images = make_images(ocr_counts=ocr_counts)
    img_emb = model.encode_images(images)
    assert torch.isfinite(img_emb).all()
    model.loss(images, make_captions(), HINGE)["loss"].backward()
    assert finite_grads(model)


@pytest.mark.parametrize("fusion", ["product_residual", "sum"])
def test_starnet_without_text_is_its_visual_vector(fusion):
    model = wake(make_model("starnet", fusion=fusion)).eval()
    images = make_images(ocr_counts=(0, 0, 0, 0))
    with torch.no_grad():
        v = model.visual_vector(model.reason_regions(images), images.region_mask)
        torch.testing.assert_close(model.text_vector(images), torch.zeros(4, 16))
        torch.testing.assert_close(model.encode_images(images), l2norm(v))


def test_starnet_reads_the_scene_text():
    model = wake(make_model("starnet")).eval()
    images = make_images(ocr_counts=(2, 2, 2, 2))
    other_text = dataclasses.replace(
        images, ocr=torch.where(images.ocr_mask[..., None], torch.randn(images.ocr.shape), 0)
    )
    with torch.no_grad():
        assert not torch.allclose(model.encode_images(images), model.encode_images(other_text))


def test_starnet_refuses_a_batch_with_other_slot_count():
    images = make_images()
    fewer = dataclasses.replace(images, ocr=images.ocr[:, :3], ocr_mask=images.ocr_mask[:, :3])
    with pytest.raises(ValueError, match="4 OCR slots, got 3"):
        make_model("starnet").encode_images(fewer)


def test_registry_builds_every_family_from_params_yaml(repo_params):
    assert set(FAMILIES) == {
        "vsrn",
        "starnet",
        "chan",
        "chan_st",
        "chan_char",
        "chan_char_st",
        "dsve",
        "qformer",
        "qformer_st",
    }
    for family, settings in repo_params["models"].items():
        small = {k: v for k, v in {"embed_dim": 16, "word_dim": 8, "caption_hidden": 12}.items() if k in settings}
        config = config_class(family)(**{**settings, **small})
        model = build_model(family, config, DIMS)
        assert isinstance(model, FAMILIES[family])
        images = make_images()
        if model.reads_characters:  # OCR strings' char ids, all empty: the images are read on their regions
            images = dataclasses.replace(
                images, ocr_chars=torch.zeros((*images.ocr_mask.shape, MAX_CHARS + 1), dtype=torch.int64)
            )
        img_emb = model.encode_images(images)
        assert (img_emb.emb if isinstance(img_emb, VectorSets) else img_emb).shape[-1] == 16


def test_registry_unknown_family_and_wrong_config():
    with pytest.raises(
        KeyError,
        match=r"unknown model family 'vsnr'; known families: chan, chan_char, chan_char_st, chan_st, dsve, qformer, "
        r"qformer_st, starnet, vsrn",
    ):
        config_class("vsnr")
    with pytest.raises(KeyError, match="unknown model family"):
        build_model("vsnr", None, DIMS)
    starnet_config = config_class("starnet")(**FAMILY_SETTINGS["starnet"])
    with pytest.raises(TypeError, match="takes a VsrnConfig, got StarnetConfig"):
        build_model("vsrn", starnet_config, DIMS)


def test_every_family_declares_its_label_scene_text_config_and_hinge():
    for family, model_cls in FAMILIES.items():
        assert family_class(family) is model_cls
        assert isinstance(model_cls.label, str) and model_cls.label
        assert isinstance(model_cls.scene_text, bool) and dataclasses.is_dataclass(model_cls.config_class)
    assert len({model_cls.label for model_cls in FAMILIES.values()}) == len(FAMILIES)  # tables tell them apart
    assert family_class("starnet").scene_text and not family_class("vsrn").scene_text
    # the `train` hinge, unless the family's config fixes it (CHAN, DSVE and their variants)
    assert make_model("vsrn").hinge(0.3, False) == (0.3, False)
    assert make_model("starnet").hinge(0.1, True) == (0.1, True)


def test_a_family_declares_what_it_is_in_its_own_class():
    vsrn = family_class("vsrn")
    with pytest.raises(TypeError, match="'vsrn_copy': VsrnCopy does not declare label, scene_text, config_class"):
        register("vsrn_copy")(type("VsrnCopy", (vsrn,), {}))
    with pytest.raises(ValueError, match="'vsrn' is registered twice"):
        register("vsrn")(vsrn)
    attributes = {"label": "x", "scene_text": False, "config_class": vsrn.config_class, "hinge_from_config": True}
    with pytest.raises(TypeError, match="hinge_from_config, but its config has no"):
        register("vsrn_hinge")(type("VsrnHinge", (vsrn,), attributes))
    assert "vsrn_copy" not in FAMILIES and "vsrn_hinge" not in FAMILIES


def test_each_family_learns_a_tiny_batch(family):
    model = make_model(family)
    images, captions = make_images(b=8, seed=1), make_captions(b=8, seed=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = last = None
    for _ in range(40):
        out = model.loss(images, captions, HINGE)
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        first = out["retrieval"].item() if first is None else first
        last = out["retrieval"].item()
    assert last < 0.5 * first


# How far a GPU's float32 embeddings may be from the CPU's. PyTorch runs cuDNN, so these families' GRUs, in TF32 by
# default (`torch.backends.cudnn.allow_tf32`): GEMM inputs rounded to a 10-bit mantissa. That moved STARNet's unit
# vectors by 1.4e-4 (the failure of the old atol = rtol = 1e-4); TF32 GRUs simulated on the CPU (inputs of the input
# and recurrent products rounded to nearest, or truncated) move these embeddings by 2.5e-5 to 3.2e-4. Under fp32
# precision (`stacmr.models.precision`: TF32 off) both devices compute IEEE float32 and differ by rounding order only:
# the CPU's embeddings are within 1e-7 of float64's (measured: ≤ 8.5e-8 over 5 seeds of both families), a cuBLAS and
# cuDNN float32 pass is within the same order (the same unit roundoff 2^-24 on ≤ 16-term dot products through a dozen
# layers), so the two differ by ≈ 2e-7. 1e-5 leaves 50× headroom and still catches TF32 (≥ 2.5e-5). Absolute only: the
# entries of unit vectors lie in [-1, 1].
CUDA_ATOL = 1e-5


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(family):
    model = wake(make_model(family)).eval()
    images, captions = make_images(), make_captions()
    cuda = torch.device("cuda")
    with torch.no_grad():
        cpu = model.encode_images(images), model.encode_captions(captions)
    model.cuda()
    images, captions = images.to(cuda), captions.to(cuda)
    with float32_mode("fp32"):
        with torch.no_grad():
            on_gpu = model.encode_images(images), model.encode_captions(captions)
        for a, b in zip(cpu, on_gpu, strict=True):
            torch.testing.assert_close(b.cpu(), a, atol=CUDA_ATOL, rtol=0)
        model.train()
        model.loss(images, captions, HINGE)["loss"].backward()
    assert finite_grads(model)
