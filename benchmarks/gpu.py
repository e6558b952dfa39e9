"""The GPU path in one run (issue #15): training throughput and peak memory per family and precision, fed by the real
loader from a release-shaped store; dense and fine-grained CTC-5K ranking against their floors; the estimated wall
time of a 30-epoch release run. Prints one JSON object. Needs torch, numpy, h5py and PyYAML only (no MLflow, DVC or
fastText): on a GPU machine, `PYTHONPATH=src python benchmarks/gpu.py`.

Sizes: release (`configs/release.yaml` over `params.yaml` for each family that has release sizes, else the embedded
ones, as the output says), a store of `--images` images of 36 × 2048 float16 regions and 15 × 300 OCR vectors
(`loader_speed.write_store`, in a temporary folder, deleted after), batch 128, the loader holding the store in RAM
and reading ahead (`training_batches(device=...)`), `--steps` timed steps after `--warmup`. Ranking: CTC-5K-shaped
random unit embeddings, 5,000 images × 25,000 captions, dim 2048, counted on the device
(`device_ranking.device_ranks`) against the similarity product alone; fine-grained CHAN scoring + ranks
(`finegrained_speed.run_ours`) against the bare GEMM of the same products (`finegrained_speed.run_floor`), both at
fp32 and, on a GPU, TF32.

`--smoke`: tiny sizes (the embedded model sizes, 64 images, 2 steps, 200-image ranking problems) so that it runs on a
CPU in the tests; its numbers mean nothing but that every path runs.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from finegrained_speed import run_floor, run_ours
from loader_speed import BATCH, VOCAB, write_store
from metrics_speed import best_time

from stacmr.evaluation.device_ranking import DeviceSimilarity, device_ranks
from stacmr.features.store import FeatureStore
from stacmr.losses import hinge_triplet
from stacmr.models import FAMILIES, build_model, config_class
from stacmr.models.precision import autocast, float32_mode
from stacmr.params import build_section
from stacmr.training.batches import epoch_order, training_batches
from stacmr.training.checkpoint import data_dims
from stacmr.yamlfile import read_yaml

REPO = Path(__file__).resolve().parent.parent
PRECISIONS = ("fp32", "tf32", "bf16")
RELEASE_CAPTIONS = 300_000  # captions of one epoch of the release training mix (Flickr30K + TextCaps + CTC train)
RELEASE_EPOCHS = 30
MAX_WORDS = 32


def family_config(family: str, smoke: bool) -> tuple[Any, bool]:
    """The family's config: release sizes over the embedded ones (not in `--smoke`); whether release sizes apply."""
    embedded = read_yaml(REPO / "params.yaml", "params")["models"][family]
    release = {} if smoke else read_yaml(REPO / "configs" / "release.yaml", "release config")["models"].get(family)
    merged = {**embedded, **(release or {})}
    return build_section(config_class(family), merged, f"models.{family}"), bool(release)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_rate(
    family: str, precision: str, store: FeatureStore, device: torch.device, steps: int, warmup: int, smoke: bool
) -> dict[str, Any]:
    """Captions/s of `steps` training steps (loss, backward, Adam) fed by the loader, and peak device memory."""
    config, release_sizes = family_config(family, smoke)
    torch.manual_seed(0)
    model = build_model(family, config, data_dims(store, VOCAB)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    criterion = functools.partial(hinge_triplet, margin=0.2, max_violation=True)
    order = epoch_order(len(store) * store.sizes["C"], 0, 0)
    batches = itertools.cycle(
        training_batches(store, VOCAB, BATCH, order, MAX_WORDS, model.reads_characters, device=device, read_ahead=2)
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with float32_mode(precision):
        for step in range(warmup + steps):
            if step == warmup:
                sync(device)
                start = time.perf_counter()
            images, captions = next(batches)
            with autocast(precision, device):
                losses = model.loss(images, captions, criterion)
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            optimizer.step()
        sync(device)
    rate = steps * BATCH / (time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {
        "captions_per_s": round(rate, 1),
        "peak_gib": None if peak is None else round(peak, 2),
        "release_sizes": release_sizes,
        "release_run_hours": round(RELEASE_CAPTIONS * RELEASE_EPOCHS / rate / 3600, 2),
    }


def dense_ranking(images: int, dim: int, device: torch.device, precision: str) -> dict[str, float]:
    """Exact ranks of a CTC-5K-shaped dense problem counted on the device, against the similarity product alone."""
    generator = torch.Generator().manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(images, dim, generator=generator), dim=1).to(device)
    cap = torch.nn.functional.normalize(torch.randn(5 * images, dim, generator=generator), dim=1).to(device)
    caption_image = np.arange(5 * images) // 5
    with float32_mode(precision), torch.inference_mode():
        floor = best_time(lambda: img @ cap.T, device, 3)[1]
        ours = best_time(
            lambda: device_ranks(DeviceSimilarity.dense(img, cap), images, caption_image, 64 << 20), device, 3
        )[1]
    return {"floor_s": round(floor, 4), "ranks_s": round(ours, 4), "ratio": round(ours / floor, 2)}


def finegrained_ranking(images: int, device: torch.device, precision: str) -> dict[str, float]:
    """CHAN's fine-grained scoring and ranks on the device against the bare GEMM of the same products."""
    with float32_mode(precision):
        ours = run_ours(images, images, None, 64, device)["seconds"]
        floor = run_floor(images, None, device)["seconds"]
    return {"floor_s": round(floor, 3), "scores_and_ranks_s": round(ours, 3), "ratio": round(ours / floor, 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: every path runs (the tests, on a CPU)")
    p.add_argument("--images", type=int, help="images in the release-shaped store (default 4,000; smoke 64)")
    p.add_argument("--steps", type=int, help="timed training steps per family and precision (default 20; smoke 2)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    p.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    args = p.parse_args()
    device = torch.device(args.device)
    images = args.images or (64 if args.smoke else 4000)
    steps = args.steps or (2 if args.smoke else 20)
    warmup = 1 if args.smoke else args.warmup
    out: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "smoke": args.smoke,
        "date": time.strftime("%Y-%m-%d"),
        "store_images": images,
        "training": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "release.h5"
        write_store(path, images)
        with FeatureStore(path) as store:
            for family, precision in itertools.product(args.families, args.precisions):
                out["training"].setdefault(family, {})[precision] = train_rate(
                    family, precision, store, device, steps, warmup, args.smoke
                )
    ranking_images = 200 if args.smoke else 5000
    floats = ("fp32", "tf32") if device.type == "cuda" else ("fp32",)
    out["dense_ctc5k"] = {p: dense_ranking(ranking_images, 64 if args.smoke else 2048, device, p) for p in floats}
    fine_images = 20 if args.smoke else 5000
    out["finegrained_ctc5k"] = {p: finegrained_ranking(fine_images, device, p) for p in floats}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
