"""The learned-query host (`qformer`, `qformer_st`) and Q-Pert in its encoder: sets and scores, masks, OCR keys,
boxes in the batches, Q-Pert at inference only (α = 0 and images without objects exactly the host), the tiled
ranking path, and one-epoch smoke runs through the `train` and `evaluate` stages."""

from __future__ import annotations

import dataclasses
import json
import math
from functools import partial

import numpy as np
import pytest
import torch

from stacmr.cli import main
from stacmr.evaluation.finegrained import sharded_similarity
from stacmr.losses import hinge_triplet
from stacmr.models import FAMILIES, ImageBatch, VectorSets, build_model, config_class, family_class
from tests.helpers.models import DIMS, HINGE, finite_grads, garble_padding, make_captions, make_images
from tests.helpers.stages import evaluate_argv, smoke_run

QFORMER = {
    "embed_dim": 16,
    "queries": 6,
    "layers": 2,
    "heads": 4,
    "word_dim": 8,
    "word_init": "random",
    "qpert_enabled": False,
    "qpert_alpha": 8.0,
    "qpert_energy": 0.99,
    "qpert_projector": "intended",
    "qpert_weighting": "constant",
}
FAMILIES_HERE = ["qformer", "qformer_st"]
ALL_NEGATIVES = partial(hinge_triplet, margin=0.2, max_violation=False)


def make(family: str, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    config = config_class(family)(**{**QFORMER, **overrides})
    return build_model(family, config, DIMS).eval()


def with_boxes(images: ImageBatch, seed: int = 0) -> ImageBatch:
    """`images` with a random box for every real region and OCR token, NaN rows in the padded slots."""
    generator = torch.Generator().manual_seed(seed)

    def boxes(mask: torch.Tensor) -> torch.Tensor:
        x0y0 = torch.rand(*mask.shape, 2, generator=generator) * 0.6
        box = torch.cat([x0y0, x0y0 + 0.05 + torch.rand(*mask.shape, 2, generator=generator) * 0.35], dim=-1)
        return torch.where(mask[..., None], box, math.nan)

    return dataclasses.replace(images, region_boxes=boxes(images.region_mask), ocr_boxes=boxes(images.ocr_mask))


def qpert_pair(family: str, **qpert) -> tuple:
    """(host, the same weights with Q-Pert on and `qpert` settings)."""
    host = make(family)
    perturbed = make(family, seed=7, qpert_enabled=True, **qpert)
    perturbed.load_state_dict(host.state_dict())
    return host, perturbed


# --- the host ------------------------------------------------------------------------------------------------------


def test_families_are_registered_labelled_and_read_boxes():
    assert set(FAMILIES_HERE) <= set(FAMILIES)
    host, st = family_class("qformer"), family_class("qformer_st")
    assert st.scene_text and not host.scene_text and host.label != st.label
    assert make("qformer").reads_boxes and make("qformer_st").reads_boxes
    assert make("qformer").hinge(0.2, False) == (0.2, False)  # the `train` hinge
    with pytest.raises(Exception, match="multiple of heads"):
        make("qformer", heads=3)


@pytest.mark.parametrize("family", FAMILIES_HERE)
def test_images_are_unit_query_sets_captions_one_vector_scored_by_their_best_query(family):
    model = make(family)
    images, captions = make_images(), make_captions()
    with torch.no_grad():
        img, cap = model.encode_images(images), model.encode_captions(captions)
        assert isinstance(img, VectorSets) and isinstance(cap, VectorSets)
        assert img.emb.shape == (4, 6, 16) and img.mask.all() and cap.emb.shape == (4, 1, 16) and cap.mask.all()
        torch.testing.assert_close(img.emb.norm(dim=-1), torch.ones(4, 6))
        torch.testing.assert_close(cap.emb.norm(dim=-1), torch.ones(4, 1))
        expected = torch.einsum("ime,ce->icm", img.emb, cap.emb[:, 0]).amax(dim=-1)
        torch.testing.assert_close(model.similarity(img, cap), expected)


@pytest.mark.parametrize("family", FAMILIES_HERE)
@pytest.mark.parametrize("qpert", [False, True])
def test_padding_changes_nothing(family, qpert):
    model = make(family, qpert_enabled=qpert)
    images, captions = with_boxes(make_images()), make_captions()
    garbled_images, garbled_captions = garble_padding(images, captions)
    full = torch.tensor([0.0, 0.0, 1.0, 1.0])  # padded slots with boxes too
    garbled_images = dataclasses.replace(
        garbled_images,
        region_boxes=torch.where(images.region_mask[..., None], images.region_boxes, full),
        ocr_boxes=torch.where(images.ocr_mask[..., None], images.ocr_boxes, full),
    )
    with torch.no_grad():
        clean = model.similarity(model.encode_images(images), model.encode_captions(captions))
        garbled = model.similarity(model.encode_images(garbled_images), model.encode_captions(garbled_captions))
        torch.testing.assert_close(garbled, clean)
        torch.testing.assert_close(
            model.loss(garbled_images, garbled_captions, HINGE)["loss"], model.loss(images, captions, HINGE)["loss"]
        )


@pytest.mark.parametrize("family", FAMILIES_HERE)
def test_an_image_embeds_the_same_alone_without_its_padding(family):
    model = make(family, qpert_enabled=True)
    images = with_boxes(make_images())
    with torch.no_grad():
        batch = model.encode_images(images).emb
        for i in range(4):
            r = int(images.region_mask[i].sum())
            alone = ImageBatch(
                regions=images.regions[i : i + 1, :r],
                region_mask=images.region_mask[i : i + 1, :r],
                ocr=images.ocr[i : i + 1],
                ocr_mask=images.ocr_mask[i : i + 1],
                region_boxes=images.region_boxes[i : i + 1, :r],
                ocr_boxes=images.ocr_boxes[i : i + 1],
            )
            torch.testing.assert_close(model.encode_images(alone).emb[0], batch[i])


def test_qformer_st_without_ocr_tokens_scores_as_qformer():
    st = make("qformer_st")
    host = make("qformer", seed=5)
    host.load_state_dict({k: v for k, v in st.state_dict().items() if not k.startswith("ocr_fc")})
    captions = make_captions()
    with torch.no_grad():
        for counts in ((0, 0, 0, 0), (0, 3, 0, 2)):
            images = make_images(ocr_counts=counts)
            expected = host.similarity(host.encode_images(images), host.encode_captions(captions))
            got = st.similarity(st.encode_images(images), st.encode_captions(captions))
            without = [i for i, n in enumerate(counts) if n == 0]
            torch.testing.assert_close(got[without], expected[without])
    assert not torch.allclose(got, expected)  # images 1 and 3 read their tokens


@pytest.mark.parametrize("family", FAMILIES_HERE)
def test_loss_is_finite_with_gradients_and_learns_a_tiny_batch(family):
    model = make(family).train()
    images, captions = make_images(b=8, seed=1), make_captions(b=8, seed=1)
    out = model.loss(images, captions, HINGE)
    assert set(out) == {"loss", "retrieval"} and torch.isfinite(out["loss"])
    out["loss"].backward()
    assert finite_grads(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = last = None
    for _ in range(40):
        # the sum over negatives, as `train` (from scratch the hardest negative collapses the embeddings first)
        retrieval = model.loss(images, captions, ALL_NEGATIVES)["retrieval"]
        optimizer.zero_grad()
        retrieval.backward()
        optimizer.step()
        first = retrieval.item() if first is None else first
        last = retrieval.item()
    assert last < 0.5 * first


def test_batches_check_and_carry_their_boxes():
    images = with_boxes(make_images())
    with pytest.raises(ValueError, match="region_boxes"):
        dataclasses.replace(images, region_boxes=images.region_boxes.double())
    with pytest.raises(ValueError, match="ocr_boxes"):
        dataclasses.replace(images, ocr_boxes=images.ocr_boxes[:, :2])
    moved = images.to("cpu")
    assert torch.equal(moved.region_boxes.nan_to_num(-1), images.region_boxes.nan_to_num(-1))
    assert torch.equal(moved.ocr_boxes.nan_to_num(-1), images.ocr_boxes.nan_to_num(-1))


def test_tiled_ranking_blocks_equal_the_whole_similarity():
    model = make("qformer_st")
    images, captions = make_images(b=8, seed=2), make_captions(b=8, seed=2)
    with torch.no_grad():
        img, cap = model.encode_images(images), model.encode_captions(captions)
        whole = model.similarity(img, cap).numpy()
    blocks = sharded_similarity(model.similarity, img, cap, max_tile_bytes=4 * 6 * 3)  # tiles of 1 image × 3 captions
    np.testing.assert_allclose(blocks(np.arange(8), np.arange(8)), whole, rtol=1e-6)
    np.testing.assert_allclose(blocks(np.array([5, 1]), np.array([7, 0, 2])), whole[[5, 1]][:, [7, 0, 2]], rtol=1e-6)


# --- Q-Pert in the encoder ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES_HERE)
@pytest.mark.parametrize("form", ["intended", "released"])
def test_alpha_zero_is_the_host_bit_for_bit(family, form):
    host, perturbed = qpert_pair(family, qpert_alpha=0.0, qpert_projector=form)
    images = with_boxes(make_images())
    with torch.no_grad():
        assert torch.equal(perturbed.encode_images(images).emb, host.encode_images(images).emb)


@pytest.mark.parametrize("family", FAMILIES_HERE)
@pytest.mark.parametrize("form", ["intended", "released"])
@pytest.mark.parametrize("weighting", ["constant", "area_minus_half"])
def test_qpert_moves_images_with_objects_and_leaves_the_others(family, form, weighting):
    host, perturbed = qpert_pair(family, qpert_projector=form, qpert_weighting=weighting)
    images = with_boxes(make_images())
    nan = torch.full_like(images.region_boxes[1], math.nan)
    images = dataclasses.replace(
        images,
        region_boxes=torch.cat([images.region_boxes[:1], nan[None], images.region_boxes[2:]]),
        ocr_boxes=torch.cat(
            [images.ocr_boxes[:1], torch.full_like(images.ocr_boxes[1:2], math.nan), images.ocr_boxes[2:]]
        ),
    )
    with torch.no_grad():
        moved, plain = perturbed.encode_images(images).emb, host.encode_images(images).emb
    assert torch.equal(moved[1], plain[1])  # image 1: no box, no object
    # images 0 and 3 have several keys; image 2 one region (its attention is all on it, whatever the query), and
    # four OCR tokens in `qformer_st`
    moves = [0, 2, 3] if family == "qformer_st" else [0, 3]
    assert all(not torch.allclose(moved[i], plain[i], atol=1e-4) for i in moves)
    if family == "qformer":
        torch.testing.assert_close(moved[2], plain[2])
    torch.testing.assert_close(moved.norm(dim=-1), torch.ones(4, 6))


@pytest.mark.parametrize("family", FAMILIES_HERE)
def test_qpert_is_off_in_training_and_in_the_loss(family):
    host, perturbed = qpert_pair(family)
    images, captions = with_boxes(make_images()), make_captions()
    perturbed.train()
    host.train()
    assert torch.equal(perturbed.loss(images, captions, HINGE)["loss"], host.loss(images, captions, HINGE)["loss"])
    # the settings add no weight and draw no random number: the same seed builds the same host
    assert all(torch.equal(a, b) for a, b in zip(make(family).parameters(), perturbed.parameters(), strict=True))
    torch.manual_seed(3)
    make(family, seed=3, qpert_enabled=True, qpert_alpha=2.0)
    drawn = torch.rand(1)
    torch.manual_seed(3)
    make(family, seed=3)
    assert torch.equal(torch.rand(1), drawn)


def test_qpert_reads_the_boxes_it_needs():
    images = make_images()
    with pytest.raises(ValueError, match="region boxes"):
        make("qformer", qpert_enabled=True).encode_images(images)
    regions_only = dataclasses.replace(with_boxes(images), ocr_boxes=None)
    make("qformer", qpert_enabled=True).encode_images(regions_only)  # the host's keys are its regions
    with pytest.raises(ValueError, match="OCR boxes"):
        make("qformer_st", qpert_enabled=True).encode_images(regions_only)
    make("qformer_st").encode_images(images)  # without Q-Pert no box is read


def test_qpert_st_objects_include_the_ocr_tokens():
    host, perturbed = qpert_pair("qformer_st")
    images = with_boxes(make_images(ocr_counts=(2, 2, 2, 2)))
    images = dataclasses.replace(images, region_boxes=torch.full_like(images.region_boxes, math.nan))
    with torch.no_grad():
        moved, plain = perturbed.encode_images(images).emb, host.encode_images(images).emb
    assert not torch.allclose(moved, plain, atol=1e-4)  # only the OCR tokens are objects here


# --- the stages ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES_HERE)
def test_one_epoch_smoke_run_trains_and_evaluates(pipeline, tmp_path, monkeypatch, tiny_raw, write_params, family):
    root, _ = pipeline
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    ablation = f"{family}_all"
    tiny_raw["train"]["epochs"] = 1
    tiny_raw["evaluate"]["finegrained_tile_mb"] = 1
    params = write_params(tiny_raw)
    metrics, ranks = smoke_run(root, tmp_path, params, ablation)
    # the same checkpoint with Q-Pert on at inference (the store's boxes read): recorded, and it moves the ranks
    qpert_out = tmp_path / "eval_qpert.json"
    argv = evaluate_argv(params, ablation, "dev", root, tmp_path / "models" / ablation, qpert_out, tmp_path / "q.npz")
    assert main([*argv, "--qpert", "released"]) == 0
    qpert = json.loads(qpert_out.read_text())
    assert qpert["qpert"] == "released" and "qpert" not in metrics
    assert qpert["checkpoint_epoch"] == metrics["checkpoint_epoch"]
    assert not np.array_equal(np.load(tmp_path / "q.npz")["t2i"], ranks["t2i"])
