"""Data-parallel training under `torchrun` (torch.distributed): the process group, each process's device, and what
the processes exchange besides the embeddings (`stacmr.models.shards`).

`torchrun --nproc-per-node N -m stacmr train …` starts N copies of the train stage; torchrun's environment
(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) says which one each is. Without it a run is one process and
nothing here communicates. The backend is gloo on CPUs and NCCL on CUDA devices, one device per process
(`cuda:LOCAL_RANK`).

`train.batch_size` stays the global batch: each process reads its contiguous share of every batch of the epoch's
order (`training.batches`), the loss is the global batch's (`shards`), and `reduce_gradients` sums the processes'
parameter gradients, so N processes take the steps of one process with the whole batch. The run's identity
(`RunSpec`) does not name N. Only the first process (rank 0) validates, writes checkpoints and logs to MLflow; every
process resumes from the checkpoint it wrote. Random draws (dropout, CHAN's augmentation) are each process's own:
each reseeds from (seed, epoch, rank) at the start of every epoch, so a resumed run ends as an uninterrupted one, but
runs with random draws agree with a one-process run in distribution, not bit for bit.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable

import numpy as np
import torch
import torch.distributed as dist

from stacmr.errors import StacmrError
from stacmr.models.shards import SINGLE, Shards
from stacmr.training.device import resolve_device

# how long a process waits for the others at a collective: the first process validates and checkpoints alone
TIMEOUT = datetime.timedelta(hours=2)
TORCHRUN = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def from_environment() -> tuple[Shards, int]:
    """(this process's shards, its local rank) from torchrun's environment; one process when it is not set."""
    values = [os.environ.get(name) for name in TORCHRUN]
    if all(value is None for value in values):
        return SINGLE, 0
    try:
        rank, size, local_rank = (int(value) for value in values)  # type: ignore[arg-type]
        return Shards(rank, size), local_rank
    except (TypeError, ValueError):
        shown = ", ".join(f"{name}={value!r}" for name, value in zip(TORCHRUN, values, strict=True))
        raise StacmrError(f"torchrun's environment is incomplete or invalid ({shown})") from None


def start(shards: Shards, local_rank: int, device_name: str) -> torch.device:
    """This process's device for `train.device` (`auto`, `cpu`, `cuda`), with the process group started when there
    are several processes: NCCL and `cuda:<local rank>` on CUDA, gloo on the CPU."""
    device = resolve_device(device_name)
    if shards.size == 1:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=shards.rank, world_size=shards.size, timeout=TIMEOUT)
    return device


def stop(shards: Shards) -> None:
    """Leave the process group (after the last collective)."""
    if shards.size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def barrier(shards: Shards) -> None:
    """Wait until every process gets here (while the first validates and checkpoints)."""
    if shards.size > 1:
        dist.barrier()


def epoch_seed(shards: Shards, seed: int, epoch: int) -> None:
    """Several processes: seed torch's generators from (seed, epoch, rank), so that each process's random draws of
    an epoch are its own and a resumed run repeats them; one process keeps its generator running (checkpointed)."""
    if shards.size > 1:
        torch.manual_seed(int(np.random.SeedSequence([seed, epoch, shards.rank]).generate_state(1)[0]))


def reduce_gradients(shards: Shards, parameters: Iterable[torch.nn.Parameter]) -> None:
    """Sum every parameter's gradient over the processes, in one all-reduce. A parameter without a gradient on some
    process gets zeros there; one without a gradient on every process keeps none (the optimiser skips it, as one
    process with the whole batch would)."""
    if shards.size == 1:
        return
    params = list(parameters)
    if not params:
        return
    device = params[0].device
    has = torch.tensor([p.grad is not None for p in params], dtype=torch.int32, device=device)
    dist.all_reduce(has)
    used = [p for p, n in zip(params, has.tolist(), strict=True) if n > 0]
    if not used:
        return
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in used])
    dist.all_reduce(flat)
    offset = 0
    for p in used:
        p.grad = flat[offset : offset + p.numel()].view_as(p).clone()
        offset += p.numel()


def summed(shards: Shards, values: dict[str, torch.Tensor]) -> dict[str, float]:
    """Each loss term summed over the processes (their shares: the global batch's value), as floats."""
    if shards.size == 1:
        return {key: float(value.detach()) for key, value in values.items()}
    stacked = torch.stack([value.detach().float() for value in values.values()])
    dist.all_reduce(stacked)
    return dict(zip(values, stacked.tolist(), strict=True))
