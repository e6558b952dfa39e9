"""Fine-grained similarity: the hard-assignment kernel against a plain loop, masks, LSE vs mean pooling, WELDON
against a plain top-k/bottom-k reference, and the sharded evaluation path against the dense in-memory matrix, its
ranks counted on the host and with torch (as on a GPU, here on the CPU); `Encoded` subsets of either kind."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import stacmr.evaluation.metrics as metrics_module
from stacmr.evaluation.device_ranking import ALL, DeviceSimilarity, device_ranks
from stacmr.evaluation.encode import Encoded
from stacmr.evaluation.finegrained import ranking_scores, sharded_similarity, tile_shape
from stacmr.evaluation.metrics import ranks
from stacmr.evaluation.ranking import dense_similarity
from stacmr.models import VectorSets
from stacmr.models.alignment import hard_assignment_similarity
from stacmr.models.dsve import weldon_pool
from stacmr.models.layers import l2norm


def random_sets(n: int, slots: int, dim: int, seed: int, min_real: int = 1) -> VectorSets:
    """n sets of unit vectors with a random number of real slots each (real first), zero padding."""
    generator = torch.Generator().manual_seed(seed)
    counts = torch.randint(min_real, slots + 1, (n,), generator=generator)
    mask = torch.arange(slots)[None, :] < counts[:, None]
    emb = l2norm(torch.randn(n, slots, dim, generator=generator))
    return VectorSets(torch.where(mask[..., None], emb, 0), mask)


def loop_similarity(img: VectorSets, cap: VectorSets, pooling: str, temperature: float) -> np.ndarray:
    """Plain per-pair, per-word oracle in float64."""
    out = np.empty((len(img), len(cap)))
    for i in range(len(img)):
        regions = [img.emb[i, r].double() for r in range(img.emb.shape[1]) if img.mask[i, r]]
        for j in range(len(cap)):
            best = []
            for w in range(cap.emb.shape[1]):
                if cap.mask[j, w]:
                    best.append(max(float(region @ cap.emb[j, w].double()) for region in regions))
            if pooling == "mean":
                out[i, j] = sum(best) / len(best)
            else:
                out[i, j] = temperature * math.log(sum(math.exp(b / temperature) for b in best))
    return out


@pytest.mark.parametrize(("pooling", "temperature"), [("lse", 0.1), ("lse", 1.0), ("mean", 0.1)])
def test_hard_assignment_equals_a_plain_loop(pooling, temperature):
    img, cap = random_sets(5, 7, 6, seed=0), random_sets(4, 5, 6, seed=1)
    got = hard_assignment_similarity(img, cap, pooling, temperature)
    np.testing.assert_allclose(got.numpy(), loop_similarity(img, cap, pooling, temperature), rtol=1e-5, atol=1e-6)


def test_padded_regions_and_words_never_win():
    img, cap = random_sets(4, 6, 5, seed=2), random_sets(3, 5, 5, seed=3)
    # padded regions that would match every word perfectly, padded words that every region matches perfectly
    bait = 100 * cap.emb[0, 0]
    garbled_img = VectorSets(torch.where(img.mask[..., None], img.emb, bait), img.mask)
    garbled_cap = VectorSets(torch.where(cap.mask[..., None], cap.emb, 100 * img.emb[0, 0]), cap.mask)
    for pooling in ("lse", "mean"):
        torch.testing.assert_close(
            hard_assignment_similarity(garbled_img, garbled_cap, pooling, 0.1),
            hard_assignment_similarity(img, cap, pooling, 0.1),
        )


def test_lse_pooling_against_mean_and_max():
    img, cap = random_sets(3, 6, 8, seed=4), random_sets(5, 6, 8, seed=5, min_real=2)
    mean = hard_assignment_similarity(img, cap, "mean", 0.1)
    soft = hard_assignment_similarity(img, cap, "lse", 0.1)
    sharp = hard_assignment_similarity(img, cap, "lse", 1e-3)
    assert (soft > mean).all()  # a soft maximum over ≥ 2 words exceeds their mean
    # β → 0: LSE tends to the best word; β·log n bounds the gap
    counts = cap.mask.sum(dim=1).to(torch.float32)
    assert (soft - sharp <= 0.1 * torch.log(counts)[None, :] + 1e-5).all() and (soft >= sharp - 1e-5).all()
    one_word = VectorSets(cap.emb[:, :1], cap.mask[:, :1])
    torch.testing.assert_close(
        hard_assignment_similarity(img, one_word, "lse", 0.1), hard_assignment_similarity(img, one_word, "mean", 0.1)
    )


def weldon_reference(x: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    out = torch.empty(x.shape[0], x.shape[2])
    for b in range(x.shape[0]):
        for c in range(x.shape[2]):
            values = sorted(float(x[b, n, c]) for n in range(x.shape[1]) if mask[b, n])
            kk = min(k, len(values))
            out[b, c] = sum(values[-kk:]) / kk + sum(values[:kk]) / kk
    return out


@pytest.mark.parametrize("k", [1, 2, 3, 8])
def test_weldon_equals_a_top_k_bottom_k_reference(k):
    generator = torch.Generator().manual_seed(k)
    x = torch.randn(5, 6, 4, generator=generator)
    mask = torch.arange(6)[None, :] < torch.tensor([6, 1, 3, 2, 5])[:, None]
    x = torch.where(mask[..., None], x, 1e4)  # padding must never be pooled
    torch.testing.assert_close(weldon_pool(x, mask, k), weldon_reference(x, mask, k))


def test_tile_shape_respects_the_budget():
    for regions, words, budget in [(51, 12, 64 << 20), (31, 20, 1 << 20), (16, 32, 4096)]:
        images, captions = tile_shape(regions, words, 1000, budget)
        assert images >= 1 and captions >= 1
        if images * captions > 1:
            assert images * regions * captions * words * 4 <= budget


def _score(img: VectorSets, cap: VectorSets) -> torch.Tensor:
    return hard_assignment_similarity(img, cap, "lse", 0.1)


@pytest.mark.parametrize("budget", [1, 4096, 64 << 20])
def test_sharded_blocks_equal_the_dense_in_memory_matrix(budget):
    img, cap = random_sets(13, 5, 8, seed=6), random_sets(29, 4, 8, seed=7)
    dense = _score(img, cap).numpy()
    block = sharded_similarity(_score, img, cap, budget)
    np.testing.assert_allclose(block(np.arange(13), np.arange(29)), dense, rtol=1e-6, atol=1e-6)
    rows, cols = np.array([12, 0, 5]), np.array([28, 3, 3, 10])  # any order, repeats: ranking.py's contract
    out = block(rows, cols)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, dense[np.ix_(rows, cols)], rtol=1e-6, atol=1e-6)
    on_device = block.block(slice(2, 9), torch.tensor([28, 3, 3, 10]))  # on the sets' device: ranges and indices
    assert isinstance(on_device, torch.Tensor)
    np.testing.assert_allclose(on_device.numpy(), dense[2:9][:, [28, 3, 3, 10]], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(block.held().block(ALL, ALL).numpy(), block(np.arange(13), np.arange(29)))


class _SetModel(torch.nn.Module):
    def similarity(self, img: VectorSets, cap: VectorSets) -> torch.Tensor:
        return _score(img, cap)


@pytest.mark.parametrize("matrix_bytes", [1 << 20, 1])  # the (N, M) matrix held; too big: blocks
@pytest.mark.parametrize("path", ["numpy", "torch"])
def test_ranks_of_the_sharded_scores_equal_ranks_of_the_dense_matrix(matrix_bytes, path, monkeypatch):
    """On the CPU `ranking_scores` gives the host path a numpy matrix or host blocks (never the torch counting); the
    torch path (a GPU's: a held matrix or tiles on the device, one pass) counts the same blocks to the same ranks."""
    img, cap = random_sets(10, 5, 8, seed=8), random_sets(50, 4, 8, seed=9)
    caption_image = np.arange(50) // 5
    enc = Encoded(img, cap, caption_image)
    scores = ranking_scores(_SetModel(), enc, 2048, matrix_bytes)
    assert isinstance(scores, np.ndarray) == (matrix_bytes > 1)
    assert not (isinstance(scores, DeviceSimilarity) and scores.on_gpu)
    expected_top = np.empty((50, 3), dtype=np.int64)
    expected = ranks(_score(img, cap).numpy(), 10, caption_image, t2i_top=expected_top)
    top = np.empty_like(expected_top)
    if path == "numpy":
        monkeypatch.setattr(metrics_module, "device_ranks", None)  # called: a TypeError
        got = ranks(scores, 10, caption_image, 1024, top)
    else:
        blocks = sharded_similarity(_score, img, cap, 2048)
        got = device_ranks(blocks.held() if matrix_bytes > 1 else blocks, 10, caption_image, 1024, top)
    for a, b in zip((*got, top), (*expected, expected_top), strict=True):
        np.testing.assert_array_equal(a, b)
    sub = enc.subset(np.array([1, 4, 7]))
    assert len(sub.img_emb) == 3 and len(sub.cap_emb) == 15
    kept_captions = np.flatnonzero(np.isin(caption_image, [1, 4, 7]))
    expected_sub = _score(img, cap).numpy()[np.ix_([1, 4, 7], kept_captions)]
    np.testing.assert_allclose(ranking_scores(_SetModel(), sub, 2048), expected_sub, rtol=1e-6, atol=1e-6)


def test_dense_cpu_embeddings_rank_on_the_host_and_subsets_of_either_kind():
    """Dense numpy embeddings (a CPU encoding) get numpy blocks, counted on the host; tensors (a GPU's, here on the
    CPU) get device blocks; `Encoded.subset` keeps each kind, with the same rows."""
    rng = np.random.default_rng(10)
    img, cap = rng.standard_normal((6, 4)).astype(np.float32), rng.standard_normal((18, 4)).astype(np.float32)
    caption_image = np.arange(18) // 3
    host = Encoded(img, cap, caption_image)
    scores = ranking_scores(_SetModel(), host, 2048)
    assert not isinstance(scores, DeviceSimilarity)
    rows, cols = np.arange(6), np.arange(18)
    np.testing.assert_array_equal(scores(rows, cols), dense_similarity(img, cap)(rows, cols))
    tensors = Encoded(torch.from_numpy(img), torch.from_numpy(cap), caption_image)
    assert isinstance(ranking_scores(_SetModel(), tensors, 2048), DeviceSimilarity)
    images = np.array([1, 4])
    for enc, kind in ((host, np.ndarray), (tensors, torch.Tensor)):
        sub = enc.subset(images)
        assert isinstance(sub.img_emb, kind) and isinstance(sub.cap_emb, kind)
        np.testing.assert_array_equal(np.asarray(sub.img_emb), img[images])
        np.testing.assert_array_equal(np.asarray(sub.cap_emb), cap[[3, 4, 5, 12, 13, 14]])
        np.testing.assert_array_equal(sub.caption_image, [0, 0, 0, 1, 1, 1])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_finegrained_ranks_equal_the_host_ranks_of_the_same_scores():
    """The score matrix held on the GPU (forced ties: repeated images and captions, captions in any order), ranked
    there, equals the CPU numpy ranks of the same matrix copied to the host."""
    img, cap = random_sets(40, 6, 8, seed=11), random_sets(200, 5, 8, seed=12)
    img.emb[20:30], img.mask[20:30] = img.emb[:10], img.mask[:10]
    cap.emb[100:150], cap.mask[100:150] = cap.emb[:50], cap.mask[:50]
    caption_image = np.random.default_rng(13).permutation(np.arange(200) // 5)
    on_cuda = [VectorSets(sets.emb.cuda(), sets.mask.cuda()) for sets in (img, cap)]
    scores = ranking_scores(_SetModel(), Encoded(*on_cuda, caption_image), 2048)
    assert isinstance(scores, DeviceSimilarity) and scores.on_gpu
    top, expected_top = np.empty((200, 5), dtype=np.int64), np.empty((200, 5), dtype=np.int64)
    got = ranks(scores, 40, caption_image, 4096, top)
    expected = ranks(scores.block(ALL, ALL).cpu().numpy(), 40, caption_image, 4096, expected_top)
    for a, b in zip((*got, top), (*expected, expected_top), strict=True):
        np.testing.assert_array_equal(a, b)
