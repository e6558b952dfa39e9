"""Layers shared by the model families: normalisation, masked pooling, graph reasoning, the caption GRU encoder,
VSRN's attention GRU caption decoder, CHAN's per-word BiGRU and region self-attention, and DSVE's WELDON pooling.

Masks are bool, True = real. Padding never reaches a real output: graph blocks do not attend to padded nodes, batch
statistics are taken over real entries only, and pooling divides by the real count. Everything is device-agnostic.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from stacmr.features.vocab import END, PAD, START


def l2norm(x: Tensor, dim: int = -1) -> Tensor:
    """Unit vectors along `dim`. A zero vector stays zero with a finite gradient (the release divided by the norm
    itself, which is NaN there)."""
    return F.normalize(x, dim=dim)


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of the real rows: x (B, N, E), mask (B, N) → (B, E); zero for a row with no real entry."""
    total = torch.where(mask[..., None], x, 0).sum(dim=1)
    return total / mask.sum(dim=1, keepdim=True).clamp(min=1).to(x.dtype)


class MaskedBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d over channel axis 1 of x (B, C, L), with statistics over the real entries only.

    A padded entry does not move the batch statistics and comes out as zero. With every entry real this is
    nn.BatchNorm1d exactly (same parameters, buffers and running-stat update). A channel with fewer than two real
    entries in a training batch has no batch variance (nn.BatchNorm1d refuses such a batch); it is normalised
    with the running statistics and leaves them unchanged.
    """

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x (B, C, L); mask bool, broadcastable to x (e.g. (B, 1, L) for nodes, (B, C, 1) for slots)."""
        mask = mask.expand_as(x)
        if self.training:
            count = mask.sum(dim=(0, 2)).to(x.dtype)
            n = count.clamp(min=1)
            batch_mean = torch.where(mask, x, 0).sum(dim=(0, 2)) / n
            batch_var = torch.where(mask, x - batch_mean[None, :, None], 0).pow(2).sum(dim=(0, 2)) / n
            enough = count > 1
            mean = torch.where(enough, batch_mean, self.running_mean)
            var = torch.where(enough, batch_var, self.running_var)
            with torch.no_grad():
                # As nn.BatchNorm1d: normalise with the biased variance, track the unbiased one.
                unbiased = batch_var * n / (n - 1).clamp(min=1)
                self.running_mean.copy_(
                    torch.where(enough, self.running_mean.lerp(batch_mean, self.momentum), self.running_mean)
                )
                self.running_var.copy_(
                    torch.where(enough, self.running_var.lerp(unbiased, self.momentum), self.running_var)
                )
                self.num_batches_tracked.add_(1)
        else:
            mean, var = self.running_mean, self.running_var
        y = (x - mean[None, :, None]) * torch.rsqrt(var[None, :, None] + self.eps)
        return torch.where(mask, y * self.weight[None, :, None] + self.bias[None, :, None], 0)


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


def teacher_forcing(tokens: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """Decoder inputs and targets of captions: tokens (B, L), lengths (B,) → inputs (B, L+1) = <start> w1 .. wn,
    targets (B, L+1) = w1 .. wn <end>, both padded with <pad> (whatever `tokens` holds past `lengths`)."""
    b, length = tokens.shape
    words = torch.where(torch.arange(length, device=tokens.device)[None, :] < lengths[:, None], tokens, PAD)
    inputs = torch.cat([words.new_full((b, 1), START), words], dim=1)
    targets = torch.cat([words, words.new_full((b, 1), PAD)], dim=1).scatter(1, lengths[:, None], END)
    return inputs, targets


class CaptionDecoder(nn.Module):
    """VSRN's caption generator (its auxiliary loss): a GRU that reads the previous word and an attention context
    over the reasoned regions, and predicts the next word.

    Attention is additive (Bahdanau), as the release's `Attention`: score_r = wᵀ tanh(K r + H h) with the hidden
    state before the step, softmax over the real regions. The initial state is Linear(mean of the real regions).
    The release instead ran a second GRU over the regions (`EncoderRNN`, 2048 → 512) for the initial state and the
    attended memory; this attends the reasoned regions directly. Dropout acts on the GRU output before the word
    classifier.
    """

    def __init__(self, vocab_size: int, region_dim: int, word_dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, word_dim, padding_idx=PAD)
        self.init_hidden = nn.Linear(region_dim, hidden)
        self.attend_regions = nn.Linear(region_dim, hidden)
        self.attend_hidden = nn.Linear(hidden, hidden, bias=False)
        self.attend_score = nn.Linear(hidden, 1, bias=False)
        self.cell = nn.GRUCell(word_dim + region_dim, hidden)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, vocab_size)
        nn.init.xavier_normal_(self.out.weight)  # release: DecoderRNN._init_weights

    def forward(self, regions: Tensor, region_mask: Tensor, inputs: Tensor) -> Tensor:
        """regions (B, R, E), region_mask (B, R), inputs (B, S) word ids (teacher forcing) → logits (B, S, V)."""
        keys = self.attend_regions(regions)  # (B, R, H), once for every step
        # finfo.min, not -inf: a softmax over finite scores stays finite even for a row with no real region.
        hide = torch.finfo(keys.dtype).min
        hidden = self.init_hidden(masked_mean(regions, region_mask))
        words = self.embed(inputs)
        states = []
        for step in range(inputs.shape[1]):
            scores = self.attend_score(torch.tanh(keys + self.attend_hidden(hidden)[:, None, :])).squeeze(-1)
            weights = torch.softmax(scores.masked_fill(~region_mask, hide), dim=-1)  # (B, R)
            context = torch.bmm(weights[:, None, :], regions).squeeze(1)  # (B, E)
            hidden = self.cell(torch.cat([words[:, step], context], dim=-1), hidden)
            states.append(hidden)
        return self.out(self.dropout(torch.stack(states, dim=1)))


class WordEncoder(nn.Module):
    """Caption → one unit vector per word (CHAN's BiGRU text encoder): word embedding, bidirectional GRU, the forward
    and backward states of each word averaged, l2-norm. tokens (B, L), lengths (B,) → (B, L, E), zero past a
    caption's length."""

    def __init__(self, vocab_size: int, word_dim: int, embed_dim: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, word_dim, padding_idx=PAD)
        self.gru = nn.GRU(word_dim, embed_dim, batch_first=True, bidirectional=True)
        with torch.no_grad():
            nn.init.uniform_(self.embed.weight, -0.1, 0.1)
            self.embed.weight[PAD].zero_()

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        return self.contextualise(self.embed(tokens), lengths)

    def contextualise(self, vectors: Tensor, lengths: Tensor) -> Tensor:
        """The BiGRU part on given word vectors (B, L, word_dim) (a family may build its own: `chan_char` adds each
        word's spelling to its embedding) → (B, L, E)."""
        packed = pack_padded_sequence(vectors, lengths.cpu(), batch_first=True, enforce_sorted=False)
        states, _ = pad_packed_sequence(self.gru(packed)[0], batch_first=True, total_length=vectors.shape[1])
        forward, backward = states.chunk(2, dim=-1)
        return l2norm((forward + backward) / 2)


class SelfAttentionBlock(nn.Module):
    """One pre-norm residual single-head self-attention block over a set: x + Attention(LN(x)), padded slots never
    attended to. x (B, N, E), mask (B, N) with at least one real slot per row → (B, N, E)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, 1, batch_first=True)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        y = self.norm(x)
        return x + self.attention(y, y, y, key_padding_mask=~mask, need_weights=False)[0]


def weldon_pool(x: Tensor, mask: Tensor, k: int) -> Tensor:
    """WELDON pooling over a set (Durand et al. CVPR 2016; DSVE's spatial pooling): per channel, the mean of the k
    highest plus the mean of the k lowest real activations (k capped at each row's real count).
    x (B, N, H), mask (B, N) with at least one real slot per row → (B, H)."""
    k = min(k, x.shape[1])
    real = mask[..., None]
    top = torch.where(real, x, float("-inf")).topk(k, dim=1).values  # (B, k, H), real values first
    bottom = torch.where(real, x, float("inf")).topk(k, dim=1, largest=False).values
    count = mask.sum(dim=1).clamp(max=k)  # (B,)
    kept = (torch.arange(k, device=x.device)[None, :] < count[:, None])[..., None]  # (B, k, 1)
    total = torch.where(kept, top, 0).sum(dim=1) + torch.where(kept, bottom, 0).sum(dim=1)
    return total / count[:, None].to(x.dtype)
