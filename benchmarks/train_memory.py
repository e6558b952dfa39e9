"""Peak memory of training at two dataset sizes: streaming from the store keeps it flat as the data grows.

Builds two training stores in a temp dir, the default training set once and `--factor` times over (with
`build_trainset`, the `trainset` stage's library call), then trains each family for `--batches` batches drawn from
the whole store in a fresh process, and prints each process's peak RSS and the ratio large/small, measured in
this run. A loader that held the data in memory would show a ratio near the size ratio.

Usage (after `make repro` built artifacts/): .venv/bin/python benchmarks/train_memory.py [--factor 4]
"""

from __future__ import annotations

import argparse
import functools
import resource
import subprocess
import sys
import tempfile
from pathlib import Path


def train_some(store_path: str, family: str, batches: int) -> None:
    import torch

    from stacmr.features.store import FeatureStore
    from stacmr.features.vocab import Vocabulary
    from stacmr.losses import hinge_triplet
    from stacmr.models import build_model
    from stacmr.stages.common import load_checked_params
    from stacmr.training.batches import epoch_order, training_batches
    from stacmr.training.checkpoint import data_dims

    params = load_checked_params("params.yaml")
    vocab = Vocabulary.load("artifacts/vocab.json")
    t = params.train
    criterion = functools.partial(hinge_triplet, margin=t.margin, max_violation=t.max_violation)
    with FeatureStore(store_path) as store:
        torch.manual_seed(0)
        dims = data_dims(store, vocab)
        model = build_model(family, params.models[family], dims)
        optimizer = torch.optim.Adam(model.parameters(), lr=t.lr)
        for i, (images, captions) in enumerate(
            training_batches(
                store,
                vocab,
                t.batch_size,
                epoch_order(len(store) * store.sizes["C"], 0, 0),
                32,
                characters=model.reads_characters,
            )
        ):
            if i == batches:
                break
            loss = model.loss(images, captions, criterion)["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trainset", default="artifacts/trainset.h5", type=Path)
    p.add_argument("--factor", type=int, default=4, help="the large store is the training set this many times over")
    p.add_argument("--batches", type=int, default=40)
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        train_some(args.child[0], args.child[1], args.batches)
        return

    from stacmr.features.store import FeatureStore
    from stacmr.features.trainset import build_trainset

    with tempfile.TemporaryDirectory(prefix="stacmr-bench-") as tmp:
        large = Path(tmp) / "large.h5"
        build_trainset([args.trainset] * args.factor, large, 2048, {"benchmark": True})
        with FeatureStore(args.trainset) as a, FeatureStore(large) as b:
            sizes = {"small": (str(args.trainset), len(a)), "large": (str(large), len(b))}
        print(f"stores: small {sizes['small'][1]} images, large {sizes['large'][1]} images ({args.factor}×)")
        for family in ("vsrn", "starnet"):
            peaks = {}
            for name, (path, _) in sizes.items():
                cmd = [sys.executable, __file__, "--batches", str(args.batches), "--child", path, family]
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                peaks[name] = int(out.split()[-1]) / 1024
            ratio = peaks["large"] / peaks["small"]
            small, large = peaks["small"], peaks["large"]
            print(f"{family:8s} peak RSS small {small:7.1f} MiB, large {large:7.1f} MiB, ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
