"""The "does it read?" probes on a hand-made store: a model that reads by construction (dense, and as vector sets)
passes both, a model blind to OCR fails both, and the OCR rotation moves every OCR field and nothing else."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from stacmr.evaluation import reading
from stacmr.evaluation.reading import naming_captions, reading_diagnostics, rotate_ocr
from stacmr.features.store import FeatureStore, create_store
from stacmr.features.vocab import Vocabulary
from stacmr.models import CaptionBatch, ImageBatch, RetrievalModel, VectorSets
from stacmr.models.characters import encode_strings
from stacmr.models.layers import l2norm

SHOPS = ["pizza", "hotel", "bank", "cafe", "taxi", "museum"]  # image i reads SHOPS[i]
GROUPS = np.array([5, 3, 5, 3, 5, 7])  # interleaved: {0, 2, 4}, {1, 3}, and 5 alone
CAPTIONS = [[f"a sign that says {shop}", "a building by the road"] for shop in SHOPS[:4]] + [
    ["a taxi at the corner", "the taxi stand"],  # two naming captions
    ["the museum entrance", "a building by the road"],  # alone in its group: asks nothing
]
DEVICE = torch.device("cpu")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    n, t, e = len(SHOPS), 2, len(SHOPS)
    ocr_emb = np.zeros((n, t, e), dtype=np.float16)
    ocr_emb[np.arange(n), 0, np.arange(n)] = 1  # slot 0: one-hot of the image's shop; slot 1: padding
    # group mates look identical: regions depend on the group alone
    regions = np.stack([np.full((2, 4), g, dtype=np.float16) + np.arange(4, dtype=np.float16) for g in GROUPS])
    path = tmp_path_factory.mktemp("reading") / "s.h5"
    with create_store(path, "synthetic/test", {"N": n, "R": 2, "D": 4, "T": t, "E": e, "C": 2}, {}, {}) as out:
        out.write(
            0,
            regions=regions,
            region_count=np.full(n, 2, dtype=np.int32),
            ocr_emb=ocr_emb,
            ocr_mask=np.array([[True, False]] * n),
            ocr_tokens=np.array([[shop.upper(), ""] for shop in SHOPS], dtype=object),
            ocr_boxes=np.full((n, t, 4), np.nan, dtype=np.float32),
            captions=np.array(CAPTIONS, dtype=object),
            image_ids=np.array([str(i) for i in range(n)], dtype=object),
            explicit=np.ones(n, dtype=bool),
        )
    with FeatureStore(path) as opened:
        yield opened


@pytest.fixture(scope="module")
def vocab():
    return Vocabulary.build([c for pair in CAPTIONS for c in pair], min_count=1)


def shop_table(vocab: Vocabulary) -> Tensor:
    """(V, E) the OCR one-hot of every caption word that is a shop name, zero for the others."""
    table = torch.zeros(len(vocab), len(SHOPS))
    for k, shop in enumerate(SHOPS):
        table[vocab.stoi[shop], k] = 1
    return table


def valid_words(captions: CaptionBatch) -> Tensor:
    return torch.arange(captions.tokens.shape[1])[None, :] < captions.lengths[:, None]


class Reader(RetrievalModel):
    """Reads by construction: an image is the bag of its OCR tokens, a caption the bag of its shop words (plus a
    constant dimension, so that nothing is a zero vector)."""

    def __init__(self, vocab: Vocabulary) -> None:
        super().__init__()
        self.register_buffer("table", shop_table(vocab))

    def encode_images(self, images: ImageBatch) -> Tensor:
        bag = (images.ocr * images.ocr_mask[..., None]).sum(1)
        return l2norm(torch.cat([bag, torch.ones(len(bag), 1)], 1))

    def encode_captions(self, captions: CaptionBatch) -> Tensor:
        bag = (self.table[captions.tokens] * valid_words(captions)[..., None]).sum(1)
        return l2norm(torch.cat([bag, torch.ones(len(bag), 1)], 1))

    def loss(self, images, captions, retrieval_criterion):
        raise NotImplementedError


class SetReader(Reader):
    """The same reader as a fine-grained family: OCR slots and caption words are sets, a pair scores its best
    slot-word product."""

    def encode_images(self, images: ImageBatch) -> VectorSets:
        return VectorSets(images.ocr * images.ocr_mask[..., None], images.ocr_mask)

    def encode_captions(self, captions: CaptionBatch) -> VectorSets:
        mask = valid_words(captions)
        return VectorSets(self.table[captions.tokens] * mask[..., None], mask)

    def similarity(self, img_emb: VectorSets, cap_emb: VectorSets) -> Tensor:
        products = torch.einsum("ire,cwe->icrw", img_emb.emb, cap_emb.emb)
        mask = img_emb.mask[:, None, :, None] & cap_emb.mask[None, :, None, :]
        return products.masked_fill(~mask, -1).amax(dim=(2, 3))


class Blind(RetrievalModel):
    """Looks only at the regions: group mates, whose regions are identical, tie on every caption."""

    def __init__(self, vocab: Vocabulary) -> None:
        super().__init__()
        self.words = nn.Embedding(len(vocab), 4)

    def encode_images(self, images: ImageBatch) -> Tensor:
        return l2norm((images.regions * images.region_mask[..., None]).sum(1))

    def encode_captions(self, captions: CaptionBatch) -> Tensor:
        return l2norm((self.words(captions.tokens) * valid_words(captions)[..., None]).sum(1))

    def similarity(self, img_emb: Tensor, cap_emb: Tensor) -> Tensor:
        # elementwise, not a matrix product: identical rows give bit-identical scores whatever the BLAS tiling
        return (img_emb[:, None, :] * cap_emb[None, :, :]).sum(-1)

    def loss(self, images, captions, retrieval_criterion):
        raise NotImplementedError


# naming captions of grouped images: images 0-3 one each, image 4 two; group {0, 2, 4} has 4, {1, 3} has 2
QUERIES = 6
CHANCE = (4 / 3 + 2 / 2) / 6


def test_naming_captions_share_a_word_of_three_characters_with_their_own_image():
    ocr = [["Pizza-Hut", "at"], ["Hi"]]
    captions = ["the pizza place", "look at that", "say hi", "Pizza hut"]
    np.testing.assert_array_equal(naming_captions(ocr, captions, 2), [True, False, False, False])
    with pytest.raises(ValueError, match="3 captions for 2 images"):
        naming_captions(ocr, captions[:3], 2)


@pytest.mark.parametrize("family", [Reader, SetReader])
def test_a_reader_picks_its_own_image_and_follows_its_text(store, vocab, family):
    model = family(vocab)
    got = reading_diagnostics(model, store, vocab, 10, DEVICE, GROUPS, batch_size=2)
    assert got == {
        "within_group": 1.0,
        "within_group_chance": pytest.approx(CHANCE),
        "within_group_queries": QUERIES,
        "ocr_swap": 1.0,
        "ocr_swap_chance": pytest.approx(CHANCE),
        "ocr_swap_queries": QUERIES,
    }
    assert model.training  # left as it was found


def test_a_model_blind_to_ocr_never_wins_a_tie(store, vocab):
    torch.manual_seed(0)
    model = Blind(vocab)
    within = reading_diagnostics(model, store, vocab, 10, DEVICE, GROUPS, probes=("within_group",))
    swap = reading_diagnostics(model, store, vocab, 10, DEVICE, GROUPS, probes=("ocr_swap",))
    assert within == {"within_group": 0.0, "within_group_chance": pytest.approx(CHANCE), "within_group_queries": 6}
    assert swap["ocr_swap"] <= swap["ocr_swap_chance"] and swap["ocr_swap_queries"] == QUERIES


def test_no_group_of_two_asks_nothing(store, vocab):
    got = reading_diagnostics(Reader(vocab), store, vocab, 10, DEVICE, np.arange(len(SHOPS)))
    assert got["within_group"] is None and got["ocr_swap_chance"] is None and got["ocr_swap_queries"] == 0
    with pytest.raises(ValueError, match="groups"):
        reading_diagnostics(Reader(vocab), store, vocab, 10, DEVICE, GROUPS[:3])


def test_rotation_moves_every_ocr_field_and_nothing_else():
    images = ImageBatch(
        regions=torch.arange(3.0)[:, None, None].expand(3, 1, 2),
        region_mask=torch.ones(3, 1, dtype=torch.bool),
        ocr=torch.arange(3.0)[:, None, None].expand(3, 2, 2),
        ocr_mask=torch.tensor([[True, False], [False, False], [True, True]]),
    )
    swapped = rotate_ocr(images, torch.tensor([1, 2, 0]))
    assert torch.equal(swapped.regions, images.regions) and torch.equal(swapped.region_mask, images.region_mask)
    assert torch.equal(swapped.ocr[:, 0, 0], torch.tensor([1.0, 2.0, 0.0]))
    assert torch.equal(swapped.ocr_mask, images.ocr_mask[[1, 2, 0]])


class Speller(Reader):
    """Reads the OCR strings' characters instead of their vectors: an image is the bag of the shops it spells."""

    reads_characters = True

    def encode_images(self, images: ImageBatch) -> Tensor:
        shops = torch.from_numpy(encode_strings(SHOPS))  # (S, MAX_CHARS + 1)
        spelt = (images.ocr_chars[:, :, None, :] == shops[None, None]).all(-1)  # (B, T, S)
        bag = (spelt & images.ocr_mask[..., None]).float().sum(1)
        return l2norm(torch.cat([bag, torch.ones(len(bag), 1)], 1))


def test_a_family_that_spells_gets_its_characters_rotated_too(store, vocab, monkeypatch):
    calls = []
    real = reading.read_images

    def read_images(store, rows, characters=False, boxes=False):
        calls.append(characters)
        return real(store, rows, characters, boxes=boxes)

    monkeypatch.setattr(reading, "read_images", read_images)
    # reading the characters, and rotating them with the vectors: else the speller would still find its own text
    assert reading_diagnostics(Speller(vocab), store, vocab, 10, DEVICE, GROUPS)["ocr_swap"] == 1.0
    assert calls and all(calls)
