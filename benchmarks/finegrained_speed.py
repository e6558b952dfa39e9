"""Speed and peak memory of fine-grained (CHAN) evaluation on a CTC-1K-shaped problem, extrapolated to CTC-5K.

Problem (random unit vectors): 1,000 images × 5,000 captions, 36 regions + 15 OCR tokens per image (51 slots, a
random number of them real), 12 word slots per caption (4..12 real), dim 1024. Three paths, measured in this run:
  ours    `stacmr.evaluation.finegrained.sharded_similarity` with CHAN's kernel (float32 tiles of at most --tile-mb,
          the gallery allocated once, the (N, M) float32 score matrix), then the exact ranks both ways;
  floor   the dense product of all region vectors with all word vectors, (N·51, 1024) × (1024, M·12), in
          4096 × 4096 chunks and nothing else: the FLOPs every exact method must do;
  shards  the original's approach: 128 × 128 image × caption shards, each copied to float64, the whole
          (128, 128, 51, 12) tensor formed, max over regions, LogSumExp over words, into a float64 (N, M) matrix.
Each path runs in its own subprocess, with the whole gallery allocated, so its peak RSS is its own working set. On 2
shared CPU cores the full problem takes minutes per path, so each path computes a sample (image rows of the score
matrix, product chunks, shards) and its time is extrapolated linearly in the number of image-caption pairs (ours:
plus the ranks, run in full). CTC-5K (5,000 × 25,000, 25× the pairs) time is extrapolated the same way; its peak
RSS is measured on a real 5K-sized working set (our path, a sample of one tile row).

Usage: .venv/bin/python benchmarks/finegrained_speed.py [--images 1000] [--tile-mb 64] [--sample-rows 80]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import torch

from stacmr.evaluation.finegrained import sharded_similarity, tile_shape
from stacmr.evaluation.metrics import ranks
from stacmr.models import VectorSets
from stacmr.models.alignment import hard_assignment_similarity

REGIONS, OCR, WORDS, DIM, CAPTIONS_PER_IMAGE, TEMPERATURE = 36, 15, 12, 1024, 5, 0.1
SHARD, CHUNK = 128, 4096


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sets(n: int, slots: int, min_real: int, max_real: np.ndarray | int, seed: int) -> VectorSets:
    """n sets of unit float32 vectors, zero past a random real count; normalised in place (no full-size temporary)."""
    generator = torch.Generator().manual_seed(seed)
    emb = torch.randn(n, slots, DIM, generator=generator)
    emb.div_(emb.norm(dim=-1, keepdim=True))
    counts = torch.randint(min_real, int(np.max(max_real)) + 1, (n,), generator=generator)
    mask = torch.arange(slots)[None, :] < counts[:, None]
    emb.mul_(mask[..., None])
    return VectorSets(emb, mask)


def gallery(images: int) -> tuple[VectorSets, VectorSets]:
    regions = _sets(images, REGIONS, 10, REGIONS, seed=0)
    ocr = _sets(images, OCR, 0, OCR, seed=1)
    img = VectorSets(torch.cat([regions.emb, ocr.emb], dim=1), torch.cat([regions.mask, ocr.mask], dim=1))
    del regions, ocr
    return img, _sets(images * CAPTIONS_PER_IMAGE, WORDS, 4, WORDS, seed=2)


def _score(img: VectorSets, cap: VectorSets) -> torch.Tensor:
    return hard_assignment_similarity(img, cap, "lse", TEMPERATURE)


def run_ours(images: int, sample_rows: int, sample_cols: int | None, tile_mb: int) -> dict:
    img, cap = gallery(images)
    n, m = len(img), len(cap)
    scores = np.zeros((n, m), dtype=np.float32)
    cols = np.arange(m if sample_cols is None else sample_cols)
    block = sharded_similarity(_score, img, cap, tile_mb << 20)
    block(np.arange(1), cols[:1])  # warm-up (thread pool, first allocations), untimed as in every path
    start = time.perf_counter()
    scores[:sample_rows, cols] = block(np.arange(sample_rows), cols)
    sampled = time.perf_counter() - start
    start = time.perf_counter()
    ranks(scores, n, np.arange(m) // CAPTIONS_PER_IMAGE)
    ranking = time.perf_counter() - start
    pairs = sample_rows * len(cols)
    return {
        "seconds": sampled * n * m / pairs + ranking,
        "sampled_pairs": pairs,
        "rss_mib": _rss_mib(),
        "check": scores[:4, :4].tolist(),
        "ranks_seconds": ranking,
    }


def run_floor(images: int, sample_chunks: int) -> dict:
    img, cap = gallery(images)
    a, b = img.emb.reshape(-1, DIM), cap.emb.reshape(-1, DIM)
    starts = [(i, j) for i in range(0, len(a), CHUNK) for j in range(0, len(b), CHUNK)][:sample_chunks]
    done = 0
    a[:CHUNK] @ b[:1].T  # warm-up, untimed
    start = time.perf_counter()
    for i, j in starts:
        product = a[i : i + CHUNK] @ b[j : j + CHUNK].T
        done += product.numel()
    sampled = time.perf_counter() - start
    return {"seconds": sampled * len(a) * len(b) / done, "sampled_products": done, "rss_mib": _rss_mib()}


def run_shards(images: int, sample_shards: int) -> dict:
    img, cap = gallery(images)
    n, m = len(img), len(cap)
    img_np, img_mask, cap_np, cap_mask = img.emb.numpy(), img.mask.numpy(), cap.emb.numpy(), cap.mask.numpy()
    d = np.zeros((n, m))  # float64, as the original
    starts = [(i, j) for i in range(0, n, SHARD) for j in range(0, m, SHARD)][:sample_shards]
    pairs = 0
    torch.from_numpy(img_np[:1]).double() @ torch.from_numpy(cap_np[0]).double().T  # warm-up, untimed
    start = time.perf_counter()
    for i, j in starts:
        im = torch.from_numpy(img_np[i : i + SHARD]).double()  # the per-shard copies
        ca = torch.from_numpy(cap_np[j : j + SHARD]).double()
        full = torch.einsum("are,cle->acrl", im, ca)  # (128, 128, R, L) float64
        region_mask = torch.from_numpy(img_mask[i : i + SHARD])[:, None, :, None]
        best = full.masked_fill(~region_mask, float("-inf")).amax(dim=2)  # (128, 128, L)
        word_mask = torch.from_numpy(cap_mask[j : j + SHARD])[None]
        pooled = TEMPERATURE * torch.logsumexp(best.masked_fill(~word_mask, float("-inf")) / TEMPERATURE, dim=-1)
        d[i : i + SHARD, j : j + SHARD] = pooled.numpy()
        pairs += pooled.numel()
    sampled = time.perf_counter() - start
    return {
        "seconds": sampled * n * m / pairs,
        "sampled_pairs": pairs,
        "rss_mib": _rss_mib(),
        "check": d[:4, :4].tolist(),
    }


def _child(argv: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *argv], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--tile-mb", type=int, default=64)
    p.add_argument("--sample-rows", type=int, default=0, help="image rows of our sample (0: one tile row)")
    p.add_argument("--sample-chunks", type=int, default=6, help="4096 × 4096 product chunks of the floor's sample")
    p.add_argument("--sample-shards", type=int, default=3, help="128 × 128 shards of the original's sample")
    p.add_argument("--path", choices=["ours", "floor", "shards"], help=argparse.SUPPRESS)
    p.add_argument("--sample-cols", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.path == "ours":
        print(json.dumps(run_ours(args.images, args.sample_rows, args.sample_cols, args.tile_mb)))
        return
    if args.path == "floor":
        print(json.dumps(run_floor(args.images, args.sample_chunks)))
        return
    if args.path == "shards":
        print(json.dumps(run_shards(args.images, args.sample_shards)))
        return

    n = args.images
    rows = args.sample_rows or tile_shape(REGIONS + OCR, WORDS, n, args.tile_mb << 20)[0]
    common = ["--images", str(n), "--tile-mb", str(args.tile_mb)]
    ours = _child([*common, "--path", "ours", "--sample-rows", str(rows)])
    floor = _child([*common, "--path", "floor", "--sample-chunks", str(args.sample_chunks)])
    shards = _child([*common, "--path", "shards", "--sample-shards", str(args.sample_shards)])
    big = 5 * n
    ours_5k = _child(
        [
            "--images",
            str(big),
            "--tile-mb",
            str(args.tile_mb),
            "--path",
            "ours",
            "--sample-rows",
            str(rows),
            "--sample-cols",
            str(2000),
        ]
    )
    agree = np.max(np.abs(np.array(ours["check"]) - np.array(shards["check"])))
    scale = 25  # 5× the images and 5× the captions (CTC-1K → CTC-5K)

    print(
        f"fine-grained evaluation: {n} images × {n * CAPTIONS_PER_IMAGE} captions, {REGIONS}+{OCR} regions,"
        f" {WORDS} words, dim {DIM}, tiles ≤ {args.tile_mb} MiB; random data"
    )
    print(
        f"sampled and extrapolated linearly in image-caption pairs: ours {ours['sampled_pairs']} pairs"
        f" ({rows} image rows; ranks in full: {ours['ranks_seconds']:.2f} s), floor {floor['sampled_products']}"
        f" region-word products ({args.sample_chunks} chunks), original {shards['sampled_pairs']} pairs"
        f" ({args.sample_shards} shards)"
    )
    print(f"{'path':<36}{f'{n}×{5 * n} s':>14}{f'{big}×{5 * big} s':>16}{'peak RSS MiB':>14}")
    print(
        f"{'(a) floor: one dense product':<36}{floor['seconds']:14.1f}{floor['seconds'] * scale:16.0f}"
        f"{floor['rss_mib']:14.0f}"
    )
    print(
        f"{'ours: sharded float32 tiles + ranks':<36}{ours['seconds']:14.1f}{ours['seconds'] * scale:16.0f}"
        f"{ours['rss_mib']:14.0f}"
    )
    print(
        f"{'(b) 128×128 float64 shard copies':<36}{shards['seconds']:14.1f}{shards['seconds'] * scale:16.0f}"
        f"{shards['rss_mib']:14.0f}"
    )
    print(
        f"ours / floor: {ours['seconds'] / floor['seconds']:.2f}× (target ≤ 1.5×);"
        f" (b) / ours: {shards['seconds'] / ours['seconds']:.1f}× (target > 1×)"
    )
    print(
        f"peak RSS of ours on a real CTC-5K working set ({big} × {big * CAPTIONS_PER_IMAGE}: gallery, score matrix,"
        f" one tile): {ours_5k['rss_mib']:.0f} MiB (target < 4096 MiB)"
    )
    print(f"ours vs (b) on their common scores: max |difference| {agree:.2e}")


if __name__ == "__main__":
    main()
