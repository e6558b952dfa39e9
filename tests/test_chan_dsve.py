"""CHAN, chan_st and the DSVE-style model: sets and masks, zero OCR tokens, augmentation, their own hinge settings,
DSVE's region localisation, and one-epoch smoke runs through the `train` and `evaluate` stages."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from stacmr.models import FAMILIES, VectorSets, build_model, config_class, family_class
from tests.helpers.models import CHAN, DIMS, HINGE, SLOTS, garble_padding, make_captions, make_images
from tests.helpers.stages import smoke_run

DSVE = {
    "embed_dim": 16,
    "activation_dim": 12,
    "word_dim": 8,
    "weldon_k": 2,
    "dropout": 0.2,
    "margin": 0.2,
    "max_violation": True,
    "localisation_dims": 4,
    "word_init": "random",
}
SETTINGS = {"chan": CHAN, "chan_st": CHAN, "dsve": DSVE}


def make(family: str, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    config = config_class(family)(**{**SETTINGS[family], **overrides})
    return build_model(family, config, DIMS).eval()


def test_families_are_registered_and_labelled_for_the_report():
    assert {"chan", "chan_st", "dsve"} <= set(FAMILIES)
    assert family_class("dsve").label == "DSVE-style (region features)"
    chan, chan_st = family_class("chan"), family_class("chan_st")
    assert "new" in chan_st.label and chan_st.scene_text and not chan.scene_text


@pytest.mark.parametrize("family", ["chan", "chan_st"])
def test_chan_gives_unit_sets_and_ignores_padding(family):
    model = make(family)
    images, captions = make_images(), make_captions()
    with torch.no_grad():
        img, cap = model.encode_images(images), model.encode_captions(captions)
        assert isinstance(img, VectorSets) and isinstance(cap, VectorSets)
        slots = 5 + (SLOTS if family == "chan_st" else 0)
        assert img.emb.shape == (4, slots, 16) and cap.emb.shape == (4, 6, 16)
        norms = img.emb.norm(dim=-1)
        torch.testing.assert_close(norms[img.mask], torch.ones(int(img.mask.sum())))
        assert (norms[~img.mask] == 0).all()
        torch.testing.assert_close(cap.mask.sum(dim=1), captions.lengths)
        sim = model.similarity(img, cap)
        garbled = garble_padding(images, captions)
        torch.testing.assert_close(
            model.similarity(model.encode_images(garbled[0]), model.encode_captions(garbled[1])), sim
        )


def test_chan_st_without_ocr_tokens_scores_as_chan():
    chan_st = make("chan_st")
    chan = make("chan", seed=5)
    chan.load_state_dict({k: v for k, v in chan_st.state_dict().items() if not k.startswith("ocr_fc")})
    no_text = make_images(ocr_counts=(0, 0, 0, 0))
    some_text = make_images(ocr_counts=(0, 3, 0, 2))
    captions = make_captions()
    with torch.no_grad():
        expected = chan.similarity(chan.encode_images(no_text), chan.encode_captions(captions))
        torch.testing.assert_close(
            chan_st.similarity(chan_st.encode_images(no_text), chan_st.encode_captions(captions)), expected
        )
        with_text = chan_st.similarity(chan_st.encode_images(some_text), chan_st.encode_captions(captions))
    # images 0 and 2 have no token: as CHAN; tokens can only raise a word's best match
    torch.testing.assert_close(with_text[[0, 2]], expected[[0, 2]])
    assert (with_text[[1, 3]] >= expected[[1, 3]] - 1e-6).all() and not torch.allclose(with_text, expected)


def test_chan_st_word_can_align_with_a_scene_text_token():
    model = make("chan_st", region_drop=0.0)
    images, captions = make_images(ocr_counts=(1, 1, 1, 1)), make_captions()
    with torch.no_grad():
        cap = model.encode_captions(captions)
        img = model.encode_images(images)
        # put image 0's token exactly on caption 0's first word: that word's best match becomes 1
        emb = img.emb.clone()
        token = int(torch.nonzero(img.mask[0, 5:])[0]) + 5
        emb[0, token] = cap.emb[0, 0]
        moved = model.similarity(VectorSets(emb, img.mask), cap)
    assert moved[0, 0] > model.similarity(img, cap)[0, 0]


def test_chan_augmentation_is_training_only_and_follows_the_seed():
    model = make("chan", region_drop=0.5, token_mask=0.5).train()
    images, captions = make_images(), make_captions()
    losses = []
    for seed in (1, 1, 2):
        torch.manual_seed(seed)
        losses.append(float(model.loss(images, captions, HINGE)["loss"].detach()))
    assert losses[0] == losses[1] and losses[0] != losses[2]
    torch.manual_seed(3)
    dropped, masked = model.augment(images, captions)
    assert (dropped.region_mask <= images.region_mask).all() and dropped.region_mask.any(dim=1).all()
    assert ((masked.tokens == captions.tokens) | (masked.tokens == 3)).all()
    model.eval()
    with torch.no_grad():
        assert float(model.loss(images, captions, HINGE)["loss"]) == float(model.loss(images, captions, HINGE)["loss"])


def test_families_use_their_published_hinge():
    assert make("chan").hinge(0.2, False) == (0.05, True)
    assert make("dsve", margin=0.3).hinge(0.05, False) == (0.3, True)
    assert make("chan_st", max_violation=False).hinge(0.2, True) == (0.05, False)


@pytest.mark.parametrize("family", ["chan", "chan_st", "dsve"])
def test_loss_is_finite_with_gradients(family):
    model = make(family).train()
    loss = model.loss(make_images(), make_captions(), HINGE)
    loss["loss"].backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads) and torch.isfinite(loss["retrieval"])


def test_dsve_embeddings_are_unit_and_ignore_padding():
    model = make("dsve")
    images, captions = make_images(), make_captions()
    with torch.no_grad():
        img, cap = model.encode_images(images), model.encode_captions(captions)
        torch.testing.assert_close(img.norm(dim=1), torch.ones(4))
        torch.testing.assert_close(cap.norm(dim=1), torch.ones(4))
        torch.testing.assert_close(model.encode_images(garble_padding(images, captions)[0]), img)


def test_dsve_localisation_scores_each_region_and_responds_to_the_phrase():
    model = make("dsve")
    images = make_images()
    phrases = make_captions()
    scores = model.localise(images, phrases)
    assert scores.shape == (4, 5)
    assert torch.isnan(scores[~images.region_mask]).all() and torch.isfinite(scores[images.region_mask]).all()
    one = dataclasses.replace(phrases, tokens=phrases.tokens[:1], lengths=phrases.lengths[:1])
    other = dataclasses.replace(phrases, tokens=phrases.tokens[2:3], lengths=phrases.lengths[2:3])
    first, second = model.localise(images, one), model.localise(images, other)
    assert first.shape == (4, 5) and not torch.allclose(first[images.region_mask], second[images.region_mask])
    # the score is linear in the activations: all channels kept, the regions' scores sum to the pooled channel weights
    full = make("dsve", localisation_dims=12)
    with torch.no_grad():
        weights = full.encode_captions(one) @ full.out.weight
        expected = full.activations(images) @ weights[0]
    torch.testing.assert_close(full.localise(images, one)[images.region_mask], expected[images.region_mask])


@pytest.mark.parametrize("ablation", ["chan_all", "chan_st_all", "dsve_all"])
def test_one_epoch_smoke_run_trains_and_evaluates(pipeline, tmp_path, monkeypatch, tiny_raw, write_params, ablation):
    root, _ = pipeline
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    tiny_raw["train"]["epochs"] = 1
    tiny_raw["evaluate"]["finegrained_tile_mb"] = 1
    smoke_run(root, tmp_path, write_params(tiny_raw), ablation)
