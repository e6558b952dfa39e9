"""A training batch split over processes (data-parallel training, `stacmr.training.processes`): what a model
computes across them.

Under `torchrun` each of N processes holds a contiguous share of the global batch of B pairs. The loss is kept the
loss of the global batch, so N processes give the loss and gradients of one process with batch B:

- `all_gathered`: the embeddings of the whole batch, all-gathered with their gradients, so the hinge takes its
  negatives from all B pairs, in the global batch's order;
- `share`: a loss term every process computes whole (the hinge on the gathered batch) counts 1/N on each, and the
  all-gather's backward sums the N shares' gradients into each process's own embeddings;
- `global_sum`: a sum over the global batch (batch-norm statistics, the number of target words a mean divides by), an
  all-reduce whose backward is one too.

So each process's loss is its share, the shares sum to the one-process loss, and the gradients of the parameters are
summed over the processes (`stacmr.training.processes.reduce_gradients`). One process (`SINGLE`, the default)
computes exactly what the model computed before sharding existed: each function returns its input itself.

The shards in force are set by the training loop around a forward (`sharded`); a model never holds them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class Shards:
    """This process's place among the `size` processes that share a batch (torchrun's RANK and WORLD_SIZE)."""

    rank: int = 0
    size: int = 1

    def __post_init__(self) -> None:
        if not (self.size >= 1 and 0 <= self.rank < self.size):
            raise ValueError(f"rank {self.rank} of {self.size} processes")


SINGLE = Shards()
_current = SINGLE


@contextlib.contextmanager
def sharded(shards: Shards) -> Iterator[None]:
    """Models compute over `shards` inside the block (the loop's forward and loss)."""
    global _current
    before, _current = _current, shards
    try:
        yield
    finally:
        _current = before


def current() -> Shards:
    return _current


def global_sum(x: Tensor) -> Tensor:
    """x summed over the processes (each holds its share's sum), differentiable; x itself for one process."""
    if _current.size == 1:
        return x
    return _Sum.apply(x)


def share(x: Tensor) -> Tensor:
    """This process's share of a loss term that every process computes whole: x / N; x itself for one process."""
    return x if _current.size == 1 else x / _current.size


def all_gathered(x: Tensor) -> Tensor:
    """The rows of every process's x (B_rank, *rest), concatenated in rank order, with gradients; the ranks may
    hold different numbers of rows and different sizes of every other axis (padded with zeros to the largest, which
    a padded set's mask covers). x itself for one process."""
    if _current.size == 1:
        return x
    if x.dtype == torch.bool:  # a set's mask: gathered as bytes
        return all_gathered(x.to(torch.uint8)).bool()
    if x.dtype == torch.bfloat16 and x.device.type == "cpu":  # bf16 autocast on CPUs: gloo moves float32
        return all_gathered(x.float()).to(x.dtype)
    shape = torch.tensor(x.shape, dtype=torch.int64, device=x.device)  # NCCL moves CUDA tensors only
    shapes = [torch.empty_like(shape) for _ in range(_current.size)]
    dist.all_gather(shapes, shape)
    largest = torch.stack(shapes).amax(dim=0).tolist()
    padding = [p for axis in reversed(range(x.dim())) for p in (0, largest[axis] - x.shape[axis])]
    padded = F.pad(x, padding) if any(padding) else x
    rows = _Gather.apply(padded.contiguous(), _current.rank, _current.size).split(largest[0])
    return torch.cat([part[: int(s[0])] for part, s in zip(rows, shapes, strict=True)])


class _Sum(torch.autograd.Function):
    """All-reduce (sum) whose backward sums the gradients: every process uses the sum, each gets its share's."""

    @staticmethod
    def forward(ctx: object, x: Tensor) -> Tensor:
        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx: object, grad: Tensor) -> Tensor:
        summed = grad.clone()
        dist.all_reduce(summed)
        return summed


class _Gather(torch.autograd.Function):
    """All-gather of equal shapes along axis 0, in rank order; backward: the gradient summed over the processes (each
    computed the loss whole, as `share`s), this process's rows of it."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor, rank: int, size: int) -> Tensor:
        ctx.rows = (rank * x.shape[0], (rank + 1) * x.shape[0])
        parts = [torch.empty_like(x) for _ in range(size)]
        dist.all_gather(parts, x)
        return torch.cat(parts)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> tuple[Tensor, None, None]:
        summed = grad.contiguous().clone()
        dist.all_reduce(summed)
        start, stop = ctx.rows
        return summed[start:stop], None, None
