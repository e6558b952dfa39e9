"""oCLIP-style CHAN (`chan_char`, `chan_char_st`): the character vocabulary, the character encoder's EOS pooling and
masking, the batches' char ids, one encoder shared by caption words and OCR tokens, images without text, the
masked-character loss, and a tiny batch each family learns."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from stacmr.errors import StacmrError
from stacmr.evaluation.encode import encode_store
from stacmr.features.reader import read_captions, read_images
from stacmr.features.store import FeatureStore, create_store
from stacmr.features.vocab import UNK, Vocabulary
from stacmr.models import FAMILIES, CaptionBatch, ImageBatch, VectorSets, build_model, config_class
from stacmr.models.char_encoder import IGNORE, CharEncoder, mask_one_character
from stacmr.models.characters import ALPHABET, CHAR_VOCAB, EOS, FIRST_CHAR, MASK, MAX_CHARS, PAD, encode_strings
from stacmr.models.characters import UNK as CHAR_UNK
from stacmr.models.precision import float32_mode
from stacmr.training.batches import training_batches
from tests.helpers.models import CHAN, DIMS, HINGE, OCR_DIM, REGION_DIM, SLOTS, finite_grads, make_captions, make_images

# Spellings of the test vocabulary's ids 4..19 (make_captions draws ids from 4 to VOCAB - 1).
WORDS = ["bus", "stop", "cafe", "open", "main", "street", "sale", "hotel"]
WORDS += ["pizza", "bar", "exit", "taxi", "bank", "park", "shop", "zoo"]
CHAN_CHAR = {**CHAN, "char_dim": 16, "char_layers": 2, "char_heads": 4, "mlm_weight": 1.0}


def make(family: str, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    config_cls = config_class(family)
    names = {f.name for f in dataclasses.fields(config_cls)}
    config = config_cls(**{k: v for k, v in {**CHAN_CHAR, **overrides}.items() if k in names})
    return build_model(family, config, DIMS).eval()


def spelt_captions(b: int = 4, seed: int = 0) -> CaptionBatch:
    captions = make_captions(b, seed)
    real = torch.arange(captions.tokens.shape[1])[None, :] < captions.lengths[:, None]
    spellings = [
        WORDS[t - 4] if ok else ""
        for t, ok in zip(captions.tokens.ravel().tolist(), real.ravel().tolist(), strict=True)
    ]
    chars = torch.from_numpy(encode_strings(spellings)).view(*captions.tokens.shape, -1)
    return dataclasses.replace(captions, word_chars=chars)


def spelt_images(b: int = 4, seed: int = 0, ocr_counts: tuple[int, ...] | None = None) -> ImageBatch:
    images = make_images(b, seed, ocr_counts)
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(len(WORDS), images.ocr_mask.shape, generator=generator)
    # OCR engines read capitals; padded slots hold no string
    spellings = [
        WORDS[p].upper() if ok else ""
        for p, ok in zip(picks.ravel().tolist(), images.ocr_mask.ravel().tolist(), strict=True)
    ]
    chars = torch.from_numpy(encode_strings(spellings)).view(*images.ocr_mask.shape, -1)
    return dataclasses.replace(images, ocr_chars=chars)


def char_id(c: str) -> int:
    return FIRST_CHAR + ALPHABET.index(c)


# --- characters ----------------------------------------------------------------------------------------------------


def test_strings_are_spelt_with_eos_then_padding():
    out = encode_strings(["bus", "", "  Cafe\n"])
    assert out.shape == (3, MAX_CHARS + 1) and out.dtype == np.int64
    assert out[0, :4].tolist() == [char_id("b"), char_id("u"), char_id("s"), EOS] and (out[0, 4:] == PAD).all()
    assert (out[1] == PAD).all()  # an empty string (a padded OCR slot) has no EOS
    assert out[2, :5].tolist() == [char_id("c"), char_id("a"), char_id("f"), char_id("e"), EOS]


def test_strings_are_case_folded_truncated_and_unknown_characters_kept_as_unk():
    stop, upper, mixed = encode_strings(["stop", "STOP", "StOp"])
    assert (stop == upper).all() and (stop == mixed).all()
    long = encode_strings(["abcdefghijklmnopqrstuvwxyz0123"])[0]
    assert long[:MAX_CHARS].tolist() == [char_id(c) for c in "abcdefghijklmnopqrstuvwxy"] and long[MAX_CHARS] == EOS
    exactly = encode_strings(["a" * MAX_CHARS])[0]
    assert exactly[MAX_CHARS] == EOS and (exactly[:MAX_CHARS] == char_id("a")).all()
    odd = encode_strings(["café bar"])[0]
    assert odd[:9].tolist() == [char_id(c) for c in "caf"] + [CHAR_UNK, CHAR_UNK] + [char_id(c) for c in "bar"] + [EOS]
    assert set(ALPHABET) == {chr(c) for c in range(33, 127)} - {chr(c) for c in range(65, 91)}
    assert CHAR_VOCAB == FIRST_CHAR + 68 and len({PAD, EOS, MASK, CHAR_UNK}) == 4 and FIRST_CHAR == 4


# --- the character encoder -----------------------------------------------------------------------------------------


def test_eos_pooling_ignores_padding_and_the_rest_of_the_batch():
    torch.manual_seed(0)
    encoder = CharEncoder(8, layers=2, heads=4, width=16).eval()
    chars = torch.from_numpy(encode_strings(["bus", "pizzeria", "", "stop", "bus"]))
    with torch.no_grad():
        batch = encoder(chars)
        alone = encoder(chars[:1, :4])  # "bus" + EOS, no padding at all
        wide = encoder(chars[:1])  # the same with 22 PAD after its EOS
        shuffled = encoder(chars[[3, 0]])
    assert batch.shape == (5, 8)
    torch.testing.assert_close(alone[0], batch[0])
    torch.testing.assert_close(wide[0], batch[0])
    torch.testing.assert_close(shuffled[1], batch[0])
    torch.testing.assert_close(batch[4], batch[0])
    assert (batch[2] == 0).all() and not torch.allclose(batch[0], batch[3])
    nested = encoder(chars.view(5, 1, -1))  # leading dims are kept
    assert nested.shape == (5, 1, 8)


def test_empty_strings_give_zero_vectors_with_finite_gradients():
    torch.manual_seed(0)
    encoder = CharEncoder(8, layers=1, heads=2, width=8).train()
    empty = torch.zeros(3, MAX_CHARS + 1, dtype=torch.int64)
    out = encoder(empty)
    assert (out == 0).all()
    mixed = encoder(torch.from_numpy(encode_strings(["", "a", ""])))
    mixed.sum().backward()
    assert torch.isfinite(mixed).all() and (mixed[[0, 2]] == 0).all()
    assert all(torch.isfinite(p.grad).all() for p in encoder.parameters() if p.grad is not None)


def test_repeated_strings_give_the_same_gradients_on_every_backward():
    # thousands of rows spelling 8 words: the repeats' gradients are summed into each distinct string. Summed by an
    # accumulating index_put (what `encoded[inverse]` does backward), the order followed the threads and the bits
    # changed from run to run (the chan_char ablations were not reproducible); index_select sums in a fixed order
    torch.manual_seed(0)
    encoder = CharEncoder(32)
    draw = torch.Generator().manual_seed(1)
    picks = torch.randint(0, 8, (4000,), generator=draw).tolist()
    chars = torch.from_numpy(encode_strings([WORDS[i] for i in picks]))
    weights = torch.randn(4000, 32, generator=draw)
    grads = []
    for _ in range(4):
        encoder.zero_grad()
        (encoder(chars) * weights).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in encoder.parameters()]))
    assert all(torch.equal(grads[0], g) for g in grads[1:])


def test_masking_replaces_exactly_one_real_character_per_string():
    chars = torch.from_numpy(encode_strings(["bus", "", "a", "é", "pizzeria", "x" * 30]))
    masked, positions, targets = mask_one_character(chars, torch.Generator().manual_seed(0))
    changed = masked != chars
    assert changed.sum(dim=1).tolist() == [1, 0, 1, 0, 1, 1]
    assert (masked[changed] == MASK).all()
    has = changed.any(dim=1)
    assert positions[~has].tolist() == [-1, -1] and targets[~has].tolist() == [IGNORE, IGNORE]
    rows = torch.nonzero(has).squeeze(1)
    assert (changed[rows, positions[rows]]).all()
    assert torch.equal(targets[rows], chars[rows, positions[rows]]) and (targets[rows] >= FIRST_CHAR).all()
    assert (positions[rows] < (chars[rows] != PAD).sum(dim=1) - 1).all()  # never the EOS
    # uniform over the string's characters: every position of "pizzeria" gets drawn
    seen = {int(mask_one_character(chars[4:5], torch.Generator().manual_seed(s))[1]) for s in range(200)}
    assert seen == set(range(8))
    again = mask_one_character(chars, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(again, (masked, positions, targets), strict=True))


# --- batches -------------------------------------------------------------------------------------------------------


def test_batches_check_and_move_their_characters():
    images, captions = spelt_images(), spelt_captions()
    with pytest.raises(ValueError, match="ocr_chars"):
        dataclasses.replace(images, ocr_chars=images.ocr_chars[:, :2])
    with pytest.raises(ValueError, match="word_chars"):
        dataclasses.replace(captions, word_chars=captions.word_chars.int())
    with pytest.raises(ValueError, match="word_chars"):
        dataclasses.replace(captions, word_chars=captions.word_chars[..., :MAX_CHARS])
    moved_images, moved_captions = images.to("cpu"), captions.to("cpu")
    assert torch.equal(moved_images.ocr_chars, images.ocr_chars)
    assert torch.equal(moved_captions.word_chars, captions.word_chars)
    assert make_images().to("cpu").ocr_chars is None and make_captions().to("cpu").word_chars is None


def _write_store(path):
    sizes = {"N": 3, "R": 5, "D": REGION_DIM, "T": SLOTS, "E": OCR_DIM, "C": 2}
    rng = np.random.default_rng(0)
    tokens = np.full((3, SLOTS), "", dtype=object)
    tokens[0, :2] = ["STOP", "Bus"]
    tokens[2, 1] = "Cafe"
    mask = tokens != ""
    with create_store(path, "ctc/test", sizes, {}, {}) as out:
        out.write(
            0,
            regions=rng.standard_normal((3, 5, REGION_DIM)).astype(np.float16),
            region_count=np.array([5, 3, 4], dtype=np.int32),
            ocr_emb=np.where(mask[..., None], rng.standard_normal((3, SLOTS, OCR_DIM)), 0).astype(np.float16),
            ocr_mask=mask,
            ocr_tokens=tokens,
            ocr_boxes=np.full((3, SLOTS, 4), np.nan, dtype=np.float32),
            captions=np.array([["a bus stop", "the stop"], ["a zebra", ""], ["cafe au lait", "a bus"]], dtype=object),
            image_ids=np.array(["0", "1", "2"], dtype=object),
            explicit=np.array([True, False, True]),
        )
    return FeatureStore(path)


def test_batches_read_the_strings_only_when_asked(tmp_path):
    vocab = Vocabulary(["<pad>", "<start>", "<end>", "<unk>", "a", "bus", "stop", "the", "cafe"])
    with _write_store(tmp_path / "s.h5") as store:
        plain = read_images(store, np.array([2, 0, 2]))
        assert plain.ocr_chars is None and read_captions(store, np.array([0, 3]), vocab, 10).word_chars is None
        images = read_images(store, np.array([2, 0, 2]), characters=True)
        assert images.ocr_chars.shape == (3, SLOTS, MAX_CHARS + 1)
        assert torch.equal(images.ocr_chars[1, :2], torch.from_numpy(encode_strings(["stop", "bus"])))
        assert torch.equal(images.ocr_chars[0], images.ocr_chars[2])
        assert torch.equal((images.ocr_chars[..., 0] != PAD), images.ocr_mask)
        for field in ("regions", "region_mask", "ocr", "ocr_mask"):
            assert torch.equal(getattr(images, field), getattr(plain, field))
        captions = read_captions(store, np.array([2, 3, 4]), vocab, 2, characters=True)
        # "a zebra": <unk> keeps its spelling; "" is one <unk> with none; "cafe au lait" cut at 2 words
        assert captions.tokens.tolist() == [[4, UNK], [UNK, 0], [8, UNK]]
        expected = [encode_strings(["a", "zebra"]), np.zeros((2, MAX_CHARS + 1)), encode_strings(["cafe", "au"])]
        assert captions.word_chars.tolist() == np.stack(expected).tolist()
        pairs = list(training_batches(store, vocab, 4, np.array([5, 0, 3, 1]), 10, characters=True))
        assert len(pairs) == 1 and pairs[0][0].ocr_chars is not None and pairs[0][1].word_chars is not None
        assert all(p[0].ocr_chars is None for p in training_batches(store, vocab, 4, np.arange(6), 10))


def test_encoding_a_store_gives_spelling_families_their_characters(tmp_path):
    vocab = Vocabulary(["<pad>", "<start>", "<end>", "<unk>", "a", "bus", "stop", "the", "cafe"])
    model = make("chan_char_st")
    with _write_store(tmp_path / "s.h5") as store:
        encoded = encode_store(model, store, vocab, 10, torch.device("cpu"), batch_size=2)
    assert isinstance(encoded.img_emb, VectorSets) and encoded.img_emb.emb.shape == (3, 5 + SLOTS, 16)
    assert encoded.img_emb.mask[:, 5:].sum(dim=1).tolist() == [2, 0, 1]
    assert encoded.cap_emb.emb.shape[0] == 6


def test_spelling_families_refuse_batches_without_characters():
    model = make("chan_char_st")
    with pytest.raises(ValueError, match="no word_chars"):
        model.encode_captions(make_captions())
    with pytest.raises(ValueError, match="no ocr_chars"):
        model.encode_images(make_images())


# --- the families --------------------------------------------------------------------------------------------------


def test_families_are_registered_and_read_characters():
    assert {"chan_char", "chan_char_st"} <= set(FAMILIES)
    assert FAMILIES["chan_char_st"].scene_text and not FAMILIES["chan_char"].scene_text
    assert make("chan_char").reads_characters and make("chan_char_st").reads_characters
    assert not make("chan").reads_characters  # the other families never pay for reading the strings
    with pytest.raises(StacmrError, match="multiple of char_heads"):
        config_class("chan_char")(**{k: v for k, v in {**CHAN_CHAR, "char_dim": 10}.items() if k != "mlm_weight"})


@pytest.mark.parametrize("family", ["chan_char", "chan_char_st"])
def test_loss_is_finite_with_gradients(family):
    model = make(family).train()
    out = model.loss(spelt_images(), spelt_captions(), HINGE)
    assert set(out) == ({"loss", "retrieval", "mlm"} if family == "chan_char_st" else {"loss", "retrieval"})
    assert all(v.dim() == 0 and torch.isfinite(v) for v in out.values())
    out["loss"].backward()
    assert finite_grads(model)
    assert all(p.grad is not None for p in model.char_encoder.parameters())
    if family == "chan_char_st":
        torch.testing.assert_close(out["loss"], out["retrieval"] + model.config.mlm_weight * out["mlm"])
        assert all(p.grad is not None for p in model.char_decoder.parameters())


def test_mlm_is_zero_without_any_ocr_token():
    model = make("chan_char_st").train()
    out = model.loss(spelt_images(ocr_counts=(0, 0, 0, 0)), spelt_captions(), HINGE)
    assert out["mlm"] == 0
    out["loss"].backward()
    assert finite_grads(model)


@pytest.mark.parametrize("family", ["chan_char", "chan_char_st"])
def test_sets_are_unit_and_ignore_padding(family):
    model = make(family)
    images, captions = spelt_images(), spelt_captions()
    with torch.no_grad():
        img, cap = model.encode_images(images), model.encode_captions(captions)
        norms = img.emb.norm(dim=-1)
        torch.testing.assert_close(norms[img.mask], torch.ones(int(img.mask.sum())))
        assert (norms[~img.mask] == 0).all()
        torch.testing.assert_close(cap.mask.sum(dim=1), captions.lengths)
        # garbage in padded regions, OCR slots (vectors and strings) and caption positions changes nothing
        real_words = cap.mask
        garbled_images = dataclasses.replace(
            images,
            regions=torch.where(images.region_mask[..., None], images.regions, 50.0),
            ocr_chars=torch.where(images.ocr_mask[..., None], images.ocr_chars, spelt_images(seed=7).ocr_chars),
        )
        garbled_captions = dataclasses.replace(
            captions,
            tokens=torch.where(real_words, captions.tokens, 5),
            word_chars=torch.where(real_words[..., None], captions.word_chars, spelt_captions(seed=7).word_chars),
        )
        sim = model.similarity(img, cap)
        garbled = model.similarity(model.encode_images(garbled_images), model.encode_captions(garbled_captions))
    torch.testing.assert_close(garbled, sim)


def test_a_word_and_its_ocr_reading_meet_in_one_char_encoder():
    model = make("chan_char_st")
    assert sum(isinstance(m, CharEncoder) for m in model.modules()) == 1
    outputs = []
    handle = model.char_encoder.register_forward_hook(lambda module, args, out: outputs.append((args[0], out)))
    stop = torch.from_numpy(encode_strings(["stop"]))[0]
    captions = spelt_captions()
    word_chars = captions.word_chars.clone()
    word_chars[0, 0] = stop
    images = spelt_images(ocr_counts=(1, 0, 0, 0))
    ocr_chars = images.ocr_chars.clone()
    ocr_chars[0, images.ocr_mask[0]] = torch.from_numpy(encode_strings(["STOP"]))[0]
    with torch.no_grad():
        model.encode_captions(dataclasses.replace(captions, word_chars=word_chars))
        img = model.encode_images(dataclasses.replace(images, ocr_chars=ocr_chars))
    handle.remove()
    (cap_in, cap_out), (ocr_in, ocr_out) = outputs
    slot = int(torch.nonzero(images.ocr_mask[0])[0])
    assert torch.equal(cap_in[0, 0], ocr_in[0, slot])
    torch.testing.assert_close(cap_out[0, 0], ocr_out[0, slot])
    # and the OCR region is that vector, projected and normalised
    expected = torch.nn.functional.normalize(model.ocr_fc(ocr_out[0, slot]), dim=-1)
    torch.testing.assert_close(img.emb[0, 5 + slot], expected)


def test_an_unseen_word_keeps_its_spelling():
    captions = spelt_captions()
    unk = dataclasses.replace(captions, tokens=torch.where(captions.tokens > 0, UNK, 0))
    other = dataclasses.replace(unk, word_chars=spelt_captions(seed=3).word_chars)
    model = make("chan_char")
    with torch.no_grad():
        first, second = model.encode_captions(unk), model.encode_captions(other)
    assert not torch.allclose(first.emb[0, 0], second.emb[0, 0])
    with torch.no_grad():
        model.char_encoder.proj.weight.zero_()  # without its spelling every <unk> is alike, as for CHAN
        torch.testing.assert_close(model.encode_captions(unk).emb, model.encode_captions(other).emb)


def test_images_without_ocr_tokens_score_as_regions_only():
    with_text = make("chan_char_st")
    visual = make("chan_char", seed=5)
    visual.load_state_dict(
        {k: v for k, v in with_text.state_dict().items() if not k.startswith(("ocr_fc", "char_decoder"))}
    )
    captions = spelt_captions()
    no_text = spelt_images(ocr_counts=(0, 0, 0, 0))
    some_text = spelt_images(ocr_counts=(0, 3, 0, 2))
    # a real OCR slot whose string is unknown (release vectors without tokens) is not read either
    unspelt = dataclasses.replace(
        some_text, ocr_chars=torch.where(some_text.ocr_mask[..., None], 0, some_text.ocr_chars)
    )
    with torch.no_grad():
        expected = visual.similarity(visual.encode_images(no_text), visual.encode_captions(captions))
        for images in (no_text, unspelt):
            scored = with_text.similarity(with_text.encode_images(images), with_text.encode_captions(captions))
            torch.testing.assert_close(scored, expected)
        read = with_text.similarity(with_text.encode_images(some_text), with_text.encode_captions(captions))
    # images 0 and 2 have no token: regions only; tokens can only raise a word's best match
    torch.testing.assert_close(read[[0, 2]], expected[[0, 2]])
    assert (read[[1, 3]] >= expected[[1, 3]] - 1e-6).all()


@pytest.mark.parametrize("family", ["chan_char", "chan_char_st"])
def test_each_family_learns_a_tiny_batch(family):
    model = make(family, region_drop=0.0, token_mask=0.0, max_violation=False).train()
    images, captions = spelt_images(b=8, seed=1), spelt_captions(b=8, seed=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    history = []
    for _ in range(40):
        torch.manual_seed(0)  # the same masked characters at every step: a fixed batch
        out = model.loss(images, captions, HINGE)
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        history.append({k: v.item() for k, v in out.items()})
    assert history[-1]["retrieval"] < 0.5 * history[0]["retrieval"]
    if family == "chan_char_st":
        assert history[-1]["mlm"] < 0.5 * history[0]["mlm"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("family", ["chan_char", "chan_char_st"])
def test_cuda_matches_cpu(family):
    # fp32 precision: TF32 off, cuDNN's BiGRU included (on by default). The scores (pooled word-region cosines, within
    # 1.2 of 0) of both devices are then float32 roundings of the same values: the CPU's within 1.1e-7 of float64's
    # (measured, 5 seeds of both families), so the two within ≈ 2e-7; 1e-5 as tests/test_models.py argues.
    model = make(family)
    images, captions = spelt_images(), spelt_captions()
    with torch.no_grad():
        cpu = model.similarity(model.encode_images(images), model.encode_captions(captions))
    model.cuda()
    images, captions = images.to("cuda"), captions.to("cuda")
    with float32_mode("fp32"):
        with torch.no_grad():
            cuda = model.similarity(model.encode_images(images), model.encode_captions(captions))
        torch.testing.assert_close(cuda.cpu(), cpu, atol=1e-5, rtol=0)
        model.train()
        model.loss(images, captions, HINGE)["loss"].backward()
    assert finite_grads(model)
