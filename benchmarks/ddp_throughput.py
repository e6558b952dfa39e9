"""Data-parallel training throughput: captions/s of one epoch of the loop (`training.loop.train_epoch`) with 1
process against N (torch.distributed: NCCL and one GPU each on CUDA, gloo on the CPU), the same global batch.

The epoch runs on the first `--images` images of the training store (copied into a temporary store, deleted
afterwards), for each family of `--families` at its `params.yaml` settings; each process is started the way torchrun
starts one (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) and joins the group through
`training.processes`. Captions/s counts the epoch's captions over its wall time, the slowest process's; "scaling" is
N processes' captions/s over one process's. On a CPU the processes share its cores (each gets cores / N threads):
there it measures the cost of the collectives, not a speed-up.

Usage (after `make repro` built artifacts/): .venv/bin/python benchmarks/ddp_throughput.py [--processes 2]
[--families vsrn,chan] [--images 1000] [--device auto]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import socket
import tempfile
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

from stacmr.features.store import FIELDS, FeatureStore, create_store
from stacmr.features.vocab import Vocabulary
from stacmr.models import build_model
from stacmr.stages.common import load_checked_params
from stacmr.training import processes
from stacmr.training.checkpoint import data_dims
from stacmr.training.loop import Learner, TrainingData, train_epoch


def copy_head(source: Path, dest: Path, images: int) -> int:
    """The first `images` images of the store `source` as a new store `dest`; returns how many there are."""
    with FeatureStore(source) as store:
        n = min(images, len(store))
        fields = {name: store[name][:n] for name in FIELDS}
        with create_store(dest, store.name, {**store.sizes, "N": n}, {"benchmark": "ddp_throughput"}, {}) as out:
            out.write(0, **fields)
    return n


def worker(rank: int, size: int, port: int, args: argparse.Namespace, store: Path, out: Path) -> None:
    """One of `size` processes: one epoch of every family; the seconds of each in out/<rank>.json."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(size), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1")
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // size))
    shards, local_rank = processes.from_environment()
    device = processes.start(shards, local_rank, args.device)
    try:
        params = load_checked_params(args.params)
        vocab = Vocabulary.load(args.vocab)
        train = dataclasses.replace(params.train, epochs=1, sampler="random")
        seconds = {}
        with FeatureStore(store) as data:
            for family in args.families.split(","):
                torch.manual_seed(0)
                model = build_model(family, params.models[family], data_dims(data, vocab)).to(device)
                learner = Learner.start(None, model, train, device, shards)  # type: ignore[arg-type]
                processes.barrier(shards)
                started = time.perf_counter()
                train_epoch(learner, TrainingData(data, data, vocab), train, epoch=0)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                seconds[family] = time.perf_counter() - started
        (out / f"{rank}.json").write_text(json.dumps(seconds))
    finally:
        processes.stop(shards)


def epoch_seconds(size: int, args: argparse.Namespace, store: Path, out: Path) -> dict[str, float]:
    """family → the epoch's wall time with `size` processes (the slowest one's)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(worker, args=(size, port, args, store, out), nprocs=size, start_method="spawn")
    times = [json.loads((out / f"{rank}.json").read_text()) for rank in range(size)]
    return {family: max(t[family] for t in times) for family in times[0]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--trainset", default="artifacts/trainset.h5", type=Path)
    p.add_argument("--vocab", default="artifacts/vocab.json", type=Path)
    p.add_argument("--processes", type=int, default=max(2, torch.cuda.device_count()))
    p.add_argument("--families", default="vsrn,chan")
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "head.h5"
        images = copy_head(args.trainset, store, args.images)
        with FeatureStore(store) as data:
            captions = len(data) * data.sizes["C"]
        results: dict = {"images": images, "captions": captions, "processes": args.processes}
        runs = {}
        for size in (1, args.processes):
            out = Path(tmp) / f"n{size}"
            out.mkdir()
            runs[size] = epoch_seconds(size, args, store, out)
        for family, one in runs[1].items():
            many = runs[args.processes][family]
            results[family] = {
                "captions_per_s_1": round(captions / one, 1),
                f"captions_per_s_{args.processes}": round(captions / many, 1),
                "scaling": round(one / many, 2),
            }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
