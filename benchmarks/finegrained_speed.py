"""Speed and peak memory of fine-grained (CHAN) evaluation on a CTC-1K-shaped problem, extrapolated to CTC-5K.

Problem (random unit vectors): 1,000 images × 5,000 captions, 36 regions + 15 OCR tokens per image (51 slots, a
random number of them real), 12 word slots per caption (4..12 real), dim 1024. Three paths, measured in this run, on
`--device` (cuda when one is visible, else cpu), all in float32 but the original's float64:
  ours    `stacmr.evaluation.finegrained.sharded_similarity` with CHAN's kernel (float32 tiles of at most --tile-mb,
          the gallery allocated once) into the (N, M) float32 score matrix on the device, then the exact ranks both
          ways counted there with each caption's top-5 images (`device_ranking.device_ranks`), as the evaluate stage
          does on a GPU;
  floor   the dense product of all region vectors with all word vectors, (N·51, 1024) × (1024, M·12), in
          4096 × 4096 chunks and nothing else: the FLOPs every exact method must do, at the same precision;
  shards  the original's approach: 128 × 128 image × caption shards, each copied to float64, the whole
          (128, 128, 51, 12) tensor formed, max over regions, LogSumExp over words, into a float64 (N, M) host matrix.
Each path runs in its own subprocess, with the whole gallery allocated, so its peak memory is its own working set
(host RSS; on a GPU, device memory too). On 2 shared CPU cores the full problem takes minutes per path, so on the CPU
each path computes a sample (image rows of the score matrix, product chunks, shards) and its time is extrapolated
linearly in the number of image-caption pairs (ours: plus the ranks, run in full); on a GPU ours and the floor run in
full. CTC-5K (5,000 × 25,000, 25× the pairs) time is extrapolated the same way, and its peak memory measured on a
real 5K-sized working set (our path, a sample of one tile row); on a GPU our path scores and ranks CTC-5K whole, its
time measured against the floor's extrapolation (the target: ≤ 1.5×).

Usage: .venv/bin/python benchmarks/finegrained_speed.py [--images 1000] [--tile-mb 64] [--device cuda|cpu]
       [--sample-rows 80] [--sample-chunks 6] [--sample-shards 3]
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

from stacmr.evaluation.device_ranking import DeviceSimilarity, device_ranks
from stacmr.evaluation.finegrained import sharded_similarity, tile_shape
from stacmr.evaluation.metrics import DEFAULT_BLOCK_BYTES
from stacmr.models import VectorSets
from stacmr.models.alignment import hard_assignment_similarity

REGIONS, OCR, WORDS, DIM, CAPTIONS_PER_IMAGE, TEMPERATURE = 36, 15, 12, 1024, 5, 0.1
SHARD, CHUNK, TOP_K = 128, 4096, 5


def _memory(device: torch.device) -> dict:
    """Peak host RSS, and peak device memory on a GPU, in MiB."""
    out = {"rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.type == "cuda":
        out["device_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def _sync(device: torch.device) -> None:
    """Wait for the device's queued work (a GPU's kernels run asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _sets(n: int, slots: int, min_real: int, max_real: np.ndarray | int, seed: int) -> VectorSets:
    """n sets of unit float32 vectors, zero past a random real count; normalised in place (no full-size temporary)."""
    generator = torch.Generator().manual_seed(seed)
    emb = torch.randn(n, slots, DIM, generator=generator)
    emb.div_(emb.norm(dim=-1, keepdim=True))
    counts = torch.randint(min_real, int(np.max(max_real)) + 1, (n,), generator=generator)
    mask = torch.arange(slots)[None, :] < counts[:, None]
    emb.mul_(mask[..., None])
    return VectorSets(emb, mask)


def gallery(images: int, device: torch.device) -> tuple[VectorSets, VectorSets]:
    regions = _sets(images, REGIONS, 10, REGIONS, seed=0)
    ocr = _sets(images, OCR, 0, OCR, seed=1)
    img = VectorSets(torch.cat([regions.emb, ocr.emb], dim=1), torch.cat([regions.mask, ocr.mask], dim=1))
    del regions, ocr
    cap = _sets(images * CAPTIONS_PER_IMAGE, WORDS, 4, WORDS, seed=2)
    return VectorSets(img.emb.to(device), img.mask.to(device)), VectorSets(cap.emb.to(device), cap.mask.to(device))


def _score(img: VectorSets, cap: VectorSets) -> torch.Tensor:
    return hard_assignment_similarity(img, cap, "lse", TEMPERATURE)


def run_ours(images: int, sample_rows: int, sample_cols: int | None, tile_mb: int, device: torch.device) -> dict:
    img, cap = gallery(images, device)
    n, m = len(img), len(cap)
    cols = slice(0, m if sample_cols is None else sample_cols)
    blocks = sharded_similarity(_score, img, cap, tile_mb << 20)
    blocks.block(slice(0, 1), slice(0, 1))  # warm-up (thread pool, first allocations), untimed as in every path
    _sync(device)
    start = time.perf_counter()
    scores = blocks.block(slice(0, sample_rows), cols)  # the whole matrix (`DeviceSimilarity.held`), or a sample
    _sync(device)
    sampled = time.perf_counter() - start
    if scores.shape != (n, m):  # a sample: the rest of the matrix zero, for the ranks
        sample, scores = scores, torch.zeros((n, m), device=device)
        scores[:sample_rows, cols] = sample
    top = np.empty((m, TOP_K), dtype=np.int64)
    start = time.perf_counter()
    device_ranks(DeviceSimilarity.of_matrix(scores), n, np.arange(m) // CAPTIONS_PER_IMAGE, DEFAULT_BLOCK_BYTES, top)
    ranking = time.perf_counter() - start  # ends with the ranks on the host: synchronised
    pairs = sample_rows * (cols.stop - cols.start)
    return {
        "seconds": sampled * n * m / pairs + ranking,
        "sampled_pairs": pairs,
        "check": scores[:4, :4].tolist(),
        "ranks_seconds": ranking,
        **_memory(device),
    }


def run_floor(images: int, sample_chunks: int | None, device: torch.device) -> dict:
    img, cap = gallery(images, device)
    a, b = img.emb.reshape(-1, DIM), cap.emb.reshape(-1, DIM)
    starts = [(i, j) for i in range(0, len(a), CHUNK) for j in range(0, len(b), CHUNK)][:sample_chunks]
    done = 0
    a[:CHUNK] @ b[:1].T  # warm-up, untimed
    _sync(device)
    start = time.perf_counter()
    for i, j in starts:
        product = a[i : i + CHUNK] @ b[j : j + CHUNK].T
        done += product.numel()
    _sync(device)
    sampled = time.perf_counter() - start
    return {"seconds": sampled * len(a) * len(b) / done, "sampled_products": done, **_memory(device)}


def run_shards(images: int, sample_shards: int, device: torch.device) -> dict:
    img, cap = gallery(images, device)
    n, m = len(img), len(cap)
    d = np.zeros((n, m))  # float64 on the host, as the original
    starts = [(i, j) for i in range(0, n, SHARD) for j in range(0, m, SHARD)][:sample_shards]
    pairs = 0
    img.emb[:1].double() @ cap.emb[0].double().T  # warm-up, untimed
    _sync(device)
    start = time.perf_counter()
    for i, j in starts:
        im = img.emb[i : i + SHARD].double()  # the per-shard copies
        ca = cap.emb[j : j + SHARD].double()
        full = torch.einsum("are,cle->acrl", im, ca)  # (128, 128, R, L) float64
        region_mask = img.mask[i : i + SHARD][:, None, :, None]
        best = full.masked_fill(~region_mask, float("-inf")).amax(dim=2)  # (128, 128, L)
        word_mask = cap.mask[j : j + SHARD][None]
        pooled = TEMPERATURE * torch.logsumexp(best.masked_fill(~word_mask, float("-inf")) / TEMPERATURE, dim=-1)
        d[i : i + SHARD, j : j + SHARD] = pooled.cpu().numpy()
        pairs += pooled.numel()
    sampled = time.perf_counter() - start
    return {"seconds": sampled * n * m / pairs, "sampled_pairs": pairs, "check": d[:4, :4].tolist(), **_memory(device)}


def _child(argv: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *argv], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--tile-mb", type=int, default=64)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--sample-rows", type=int, help="image rows of our sample (default: one tile row; GPU: all)")
    p.add_argument(
        "--sample-chunks", type=int, help="4096 × 4096 product chunks of the floor's sample (default: 6; GPU: all)"
    )
    p.add_argument("--sample-shards", type=int, default=3, help="128 × 128 shards of the original's sample")
    p.add_argument("--path", choices=["ours", "floor", "shards"], help=argparse.SUPPRESS)
    p.add_argument("--sample-cols", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    device = torch.device(args.device)
    if args.path == "ours":
        print(json.dumps(run_ours(args.images, args.sample_rows, args.sample_cols, args.tile_mb, device)))
        return
    if args.path == "floor":
        print(json.dumps(run_floor(args.images, args.sample_chunks, device)))
        return
    if args.path == "shards":
        print(json.dumps(run_shards(args.images, args.sample_shards, device)))
        return

    n, big, gpu = args.images, 5 * args.images, device.type == "cuda"
    rows = args.sample_rows or (n if gpu else tile_shape(REGIONS + OCR, WORDS, n, args.tile_mb << 20)[0])
    chunks = args.sample_chunks or (None if gpu else 6)
    common = ["--tile-mb", str(args.tile_mb), "--device", args.device]
    ours = _child([*common, "--images", str(n), "--path", "ours", "--sample-rows", str(rows)])
    floor = _child(
        [*common, "--images", str(n), "--path", "floor", *(["--sample-chunks", str(chunks)] if chunks else [])]
    )
    shards = _child([*common, "--images", str(n), "--path", "shards", "--sample-shards", str(args.sample_shards)])
    # CTC-5K: a GPU scores it whole, a CPU one tile row of 2,000 captions
    sample_5k = ["--sample-rows", str(big)] if gpu else ["--sample-rows", str(rows), "--sample-cols", "2000"]
    ours_5k = _child([*common, "--images", str(big), "--path", "ours", *sample_5k])
    agree = np.max(np.abs(np.array(ours["check"]) - np.array(shards["check"])))
    scale = 25  # 5× the images and 5× the captions (CTC-1K → CTC-5K)
    memory = "peak RSS MiB" + (" / device MiB" if gpu else "")

    def row(label: str, result: dict) -> str:
        peak = f"{result['rss_mib']:.0f}" + (f" / {result['device_mib']:.0f}" if gpu else "")
        return f"{label:<36}{result['seconds']:14.2f}{result['seconds'] * scale:16.1f}{peak:>26}"

    print(
        f"fine-grained evaluation on {args.device}: {n} images × {n * CAPTIONS_PER_IMAGE} captions, {REGIONS}+{OCR}"
        f" regions, {WORDS} words, dim {DIM}, tiles ≤ {args.tile_mb} MiB; random data"
    )
    print(
        f"sampled and extrapolated linearly in image-caption pairs: ours {ours['sampled_pairs']} pairs"
        f" ({rows} image rows; ranks and top-{TOP_K} in full: {ours['ranks_seconds']:.2f} s), floor"
        f" {floor['sampled_products']} region-word products, original {shards['sampled_pairs']} pairs"
        f" ({args.sample_shards} shards)"
    )
    print(f"{'path':<36}{f'{n}×{5 * n} s':>14}{f'{big}×{5 * big} s':>16}{memory:>26}")
    print(row("(a) floor: one dense product", floor))
    print(row("ours: float32 tiles + ranks", ours))
    print(row("(b) 128×128 float64 shard copies", shards))
    print(
        f"ours / floor: {ours['seconds'] / floor['seconds']:.2f}× (target ≤ 1.5×);"
        f" (b) / ours: {shards['seconds'] / ours['seconds']:.1f}× (target > 1×)"
    )
    if gpu:
        print(
            f"CTC-5K ({big} × {big * CAPTIONS_PER_IMAGE}) measured whole: ours {ours_5k['seconds']:.2f} s"
            f" (ranks {ours_5k['ranks_seconds']:.2f} s), {ours_5k['seconds'] / (floor['seconds'] * scale):.2f}×"
            f" the floor's (target ≤ 1.5×); peak device memory {ours_5k['device_mib']:.0f} MiB"
        )
    else:
        print(
            f"peak RSS of ours on a real CTC-5K working set ({big} × {big * CAPTIONS_PER_IMAGE}: gallery, score"
            f" matrix, one tile): {ours_5k['rss_mib']:.0f} MiB (target < 4096 MiB)"
        )
    print(f"ours vs (b) on their common scores: max |difference| {agree:.2e}")


if __name__ == "__main__":
    main()
