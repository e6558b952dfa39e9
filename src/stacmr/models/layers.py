"""Layers of more than one model family: normalisation, masked pooling and batch norm, graph reasoning (VSRN,
STARNet), the caption GRU encoder (VSRN, STARNet, DSVE). A layer of one family lives in its family's module.

Masks are bool, True = real. Padding never reaches a real output: graph blocks do not attend to padded nodes, batch
statistics are taken over real entries only, and pooling divides by the real count. Everything is device-agnostic.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from stacmr.models.shards import current, global_sum
from stacmr.tokens import PAD


def l2norm(x: Tensor, dim: int = -1) -> Tensor:
    """Unit vectors along `dim`. A zero vector stays zero with a finite gradient (the release divided by the norm
    itself, which is NaN there)."""
    return F.normalize(x, dim=dim)


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of the real rows: x (B, N, E), mask (B, N) → (B, E); zero for a row with no real entry."""
    total = torch.where(mask[..., None], x, 0).sum(dim=1)
    return total / mask.sum(dim=1, keepdim=True).clamp(min=1).to(x.dtype)


def masked_batch_norm(bn: nn.BatchNorm1d, x: Tensor, mask: Tensor) -> Tensor:
    """`bn` (its parameters, running statistics and mode) on x (B, C, L) with statistics over the real entries only
    (`MaskedBatchNorm1d`); mask bool, broadcastable to x → float32."""
    x = x.float()
    mask = mask.expand_as(x)
    if bn.training:
        # over the global batch when it is split over processes (`global_sum`: the sums of every share)
        count = global_sum(mask.sum(dim=(0, 2)).to(x.dtype))
        n = count.clamp(min=1)
        batch_mean = global_sum(torch.where(mask, x, 0).sum(dim=(0, 2))) / n
        batch_var = global_sum(torch.where(mask, x - batch_mean[None, :, None], 0).pow(2).sum(dim=(0, 2))) / n
        enough = count > 1
        mean = torch.where(enough, batch_mean, bn.running_mean)
        var = torch.where(enough, batch_var, bn.running_var)
        with torch.no_grad():
            # As nn.BatchNorm1d: normalise with the biased variance, track the unbiased one.
            unbiased = batch_var * n / (n - 1).clamp(min=1)
            bn.running_mean.copy_(torch.where(enough, bn.running_mean.lerp(batch_mean, bn.momentum), bn.running_mean))
            bn.running_var.copy_(torch.where(enough, bn.running_var.lerp(unbiased, bn.momentum), bn.running_var))
            bn.num_batches_tracked.add_(1)
    else:
        mean, var = bn.running_mean, bn.running_var
    y = (x - mean[None, :, None]) * torch.rsqrt(var[None, :, None] + bn.eps)
    return torch.where(mask, y * bn.weight[None, :, None] + bn.bias[None, :, None], 0)


class MaskedBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d over channel axis 1 of x (B, C, L), with statistics over the real entries only.

    A padded entry does not move the batch statistics and comes out as zero. With every entry real this is
    nn.BatchNorm1d exactly (same parameters, buffers and running-stat update). A channel with fewer than two real
    entries in a training batch has no batch variance (nn.BatchNorm1d refuses such a batch); it is normalised
    with the running statistics and leaves them unchanged. It computes in float32 whatever x's type (bfloat16 under
    autocast: `stacmr.models.precision`), as autocast runs normalisations, and its float32 running statistics take
    float32 batch statistics only.
    """

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x (B, C, L); mask bool, broadcastable to x (e.g. (B, 1, L) for nodes, (B, C, 1) for slots) → float32."""
        return masked_batch_norm(self, x, mask)


class BatchNorm1d(nn.BatchNorm1d):
    """nn.BatchNorm1d on x (B, C), whose training statistics are the global batch's when a batch is split over
    processes (`stacmr.models.shards`: `masked_batch_norm` with every entry real); nn.BatchNorm1d's own kernel for
    one process, so one process computes what nn.BatchNorm1d does, bit for bit."""

    def forward(self, x: Tensor) -> Tensor:
        if self.training and current().size > 1:
            return masked_batch_norm(self, x[:, :, None], torch.ones_like(x[:1, :1, None], dtype=torch.bool))[:, :, 0]
        return super().forward(x)


class GraphReasoning(nn.Module):
    """VSRN's graph reasoning block (`Rs_GCN`, a non-local block over nodes), with node masks.

    x (B, N, E) → x + BN(W(A · g(x))), A = θ(x) φ(x)ᵀ / N_real with padded nodes' columns zeroed. θ, φ, g, W are
    Linear(E, E) (1×1 convolutions in the release, the same map). The affinity is linear, not a softmax, as
    released. BN's weight and bias start at zero, so the block starts as the identity (release: `nn.init.constant`
    on W[1]). Padded rows come out as they went in.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.theta = nn.Linear(dim, dim)
        self.phi = nn.Linear(dim, dim)
        self.g = nn.Linear(dim, dim)
        self.w = nn.Linear(dim, dim)
        self.bn = MaskedBatchNorm1d(dim)
        nn.init.zeros_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x (B, N, E), mask (B, N) → (B, N, E)."""
        affinity = self.theta(x) @ self.phi(x).transpose(1, 2)  # (B, N, N): row i attends to column j
        # The release divides by all N slots (it had no padding); here by the real nodes, so a padded batch row
        # reasons exactly as the same image alone.
        real = mask.sum(dim=1).clamp(min=1).to(x.dtype)
        affinity = torch.where(mask[:, None, :], affinity, 0) / real[:, None, None]
        y = self.w(affinity @ self.g(x))
        return x + self.bn(y.transpose(1, 2), mask[:, None, :]).transpose(1, 2)


class CaptionEncoder(nn.Module):
    """Caption → joint space (VSE++/VSRN `EncoderText`): word embedding, one-layer GRU, its state at the last real
    word, l2-norm. tokens (B, L), lengths (B,) → (B, E)."""

    def __init__(self, vocab_size: int, word_dim: int, embed_dim: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, word_dim, padding_idx=PAD)
        self.gru = nn.GRU(word_dim, embed_dim, batch_first=True)
        # Release: uniform ±0.1 word vectors; the padding row stays zero (it is never read: the GRU is packed).
        with torch.no_grad():
            nn.init.uniform_(self.embed.weight, -0.1, 0.1)
            self.embed.weight[PAD].zero_()

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        packed = pack_padded_sequence(self.embed(tokens), lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, hidden = self.gru(packed)  # (1, B, E), back in batch order
        return l2norm(hidden[0])
