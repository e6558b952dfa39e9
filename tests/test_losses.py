"""Retrieval and caption losses against hand-computed values and brute-force oracles."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from stacmr.losses import caption_generation_loss, hinge_triplet, info_nce

# 3×3 case worked by hand, margin 0.2 (rows: images, columns: captions, diagonal 0.9, 0.5, 0.7).
# Image→caption costs: (0,1) 0.1, (1,2) 0.3, the rest 0: sum 0.4, row maxima 0.1 + 0.3 + 0 = 0.4.
# Caption→image costs: (0,1) 0.5, (2,1) 0.1, (1,2) 0.1, the rest 0: sum 0.7, column maxima 0 + 0.5 + 0.1 = 0.6.
SIM_3 = torch.tensor([[0.9, 0.8, 0.1], [0.2, 0.5, 0.6], [0.3, 0.4, 0.7]], dtype=torch.float64)


def hinge_oracle(sim: torch.Tensor, margin: float, max_violation: bool) -> float:
    """Per-query loop, as the VSE++ paper writes the loss."""
    n = sim.shape[0]
    total = 0.0
    for q in range(n):
        to_captions = [max(0.0, margin + sim[q, j].item() - sim[q, q].item()) for j in range(n) if j != q]
        to_images = [max(0.0, margin + sim[i, q].item() - sim[q, q].item()) for i in range(n) if i != q]
        for costs in (to_captions, to_images):
            total += (max(costs) if costs else 0.0) if max_violation else sum(costs)
    return total


@pytest.mark.parametrize(("max_violation", "expected"), [(False, 1.1), (True, 1.0)])
def test_hinge_hand_computed(max_violation, expected):
    assert hinge_triplet(SIM_3, 0.2, max_violation).item() == pytest.approx(expected)


@pytest.mark.parametrize("max_violation", [False, True])
def test_hinge_matches_loop_oracle(max_violation):
    sim = torch.randn(7, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64).tanh()
    assert hinge_triplet(sim, 0.2, max_violation).item() == pytest.approx(hinge_oracle(sim, 0.2, max_violation))


@pytest.mark.parametrize("max_violation", [False, True])
def test_hinge_zero_when_positives_win_by_the_margin(max_violation):
    sim = torch.full((5, 5), 0.3) + 0.2 * torch.eye(5) + 1e-3 * torch.eye(5)
    assert hinge_triplet(sim, 0.2, max_violation).item() == 0.0


def test_hardest_negative_never_exceeds_the_sum():
    generator = torch.Generator().manual_seed(1)
    for _ in range(20):
        sim = torch.rand(6, 6, generator=generator) * 2 - 1
        assert hinge_triplet(sim, 0.2, True) <= hinge_triplet(sim, 0.2, False) + 1e-6


@pytest.mark.parametrize("max_violation", [False, True])
def test_hinge_single_pair_is_zero(max_violation):
    assert hinge_triplet(torch.tensor([[0.1]]), 0.2, max_violation).item() == 0.0


@pytest.mark.parametrize("max_violation", [False, True])
def test_hinge_gradients_are_finite(max_violation):
    sim = torch.randn(4, 4, generator=torch.Generator().manual_seed(2)).requires_grad_()
    hinge_triplet(sim, 0.2, max_violation).backward()
    assert torch.isfinite(sim.grad).all()
    assert sim.grad.abs().sum() > 0


def test_losses_refuse_a_non_square_similarity():
    with pytest.raises(ValueError, match="square"):
        hinge_triplet(torch.zeros(2, 3), 0.2, True)
    with pytest.raises(ValueError, match="square"):
        info_nce(torch.zeros(2, 3), 0.05)


def test_info_nce_perfect_diagonal_is_near_zero():
    assert info_nce(torch.eye(4), temperature=0.01).item() < 1e-6


def test_info_nce_is_symmetric_and_matches_the_log_softmax_oracle():
    sim = torch.randn(5, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    t = 0.1
    rows = -sum(math.log(math.exp(sim[i, i] / t) / sum(math.exp(sim[i, j] / t) for j in range(5))) for i in range(5))
    cols = -sum(math.log(math.exp(sim[i, i] / t) / sum(math.exp(sim[j, i] / t) for j in range(5))) for i in range(5))
    assert info_nce(sim, t).item() == pytest.approx((rows + cols) / 10)
    assert info_nce(sim, t).item() == pytest.approx(info_nce(sim.T, t).item())


def test_caption_loss_ignores_pad_targets():
    generator = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 4, 7, generator=generator)
    targets = torch.tensor([[5, 6, 2, 0], [4, 2, 0, 0]])
    loss = caption_generation_loss(logits, targets)
    changed = logits.clone()
    changed[targets == 0] = torch.randn(3, 7, generator=generator) * 10
    assert caption_generation_loss(changed, targets).item() == pytest.approx(loss.item())
    real = targets != 0
    assert loss.item() == pytest.approx(F.cross_entropy(logits[real], targets[real]).item())
