"""Speed and memory of the retrieval metrics on a CTC-5K-shaped problem: 5,000 images × 25,000 captions, dim 1024.

Times, in this run and on this machine, on the host: (a) the bare similarity product `img @ cap.T` in numpy (the
floor: any exact method computes it); (b) our sharded exact ranks, both directions (the numpy path: one similarity
pass per direction, `max_block_mb` of memory at a time); (c) the release-style oracle: the full matrix, then a full
argsort per query. Prints (c)/(b), (b)/(a) and the peak RSS of (b) (measured before (a) and (c) allocate the full
matrix). Then on `--device` (cuda when one is visible, else cpu), in torch: (d) the similarity product on the device;
(e) our ranks counted there (`device_ranking.device_ranks`: one pass, only the ranks copied back), without and with
each caption's top-5 images. Prints (e)/(d) (the target on a GPU, at dim 2048: ≤ 2×), the peak device memory of (e)
on a GPU, and how many ranks (e) shares with (b) (the two products may round differently). Each time is the best of
`--repeats` runs (the first also warms the device up).

Usage: .venv/bin/python benchmarks/metrics_speed.py [--images 5000] [--dim 1024] [--max-block-mb 64]
       [--device cuda|cpu] [--device-only] [--repeats 2]
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from stacmr.evaluation.device_ranking import DeviceSimilarity, device_ranks
from stacmr.evaluation.metrics import ranks
from stacmr.evaluation.ranking import dense_similarity

TOP_K = 5  # the evaluate stage's `top_k`


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def release_loop(img: np.ndarray, cap: np.ndarray, c: int) -> tuple[np.ndarray, np.ndarray]:
    """The release's evaluation (VSRN/StacMR `evaluation.i2t` / `t2i`): per query a similarity row, a full argsort
    and a position lookup; t2i takes the captions of one image at a time, as the release does."""
    n = len(img)
    i2t = np.empty(n, dtype=np.int64)
    for i in range(n):
        order = np.argsort(img[i] @ cap.T, kind="stable")[::-1]
        i2t[i] = min(np.flatnonzero(order == j)[0] for j in range(c * i, c * i + c))
    t2i = np.empty(n * c, dtype=np.int64)
    for i in range(n):
        d = cap[c * i : c * i + c] @ img.T
        for k in range(c):
            order = np.argsort(d[k], kind="stable")[::-1]
            t2i[c * i + k] = np.flatnonzero(order == i)[0]
    return i2t, t2i


def best_time(run: Callable[[], Any], device: torch.device, repeats: int) -> tuple[Any, float]:
    """(the result, the best wall time of `repeats` runs), the device synchronised around each."""
    cuda = device.type == "cuda"
    times = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        out = run()
        if cuda:
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return out, min(times)


def host_paths(img: np.ndarray, cap: np.ndarray, caption_image: np.ndarray, c: int, block_mb: int) -> tuple:
    """(a), (b), (c) on the host: their report lines and (b)'s ranks."""
    n = len(img)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    fast = ranks(dense_similarity(img, cap), n, caption_image, block_mb << 20)
    t_fast = time.perf_counter() - start
    fast_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    start = time.perf_counter()
    sim = img @ cap.T
    t_floor = time.perf_counter() - start

    start = time.perf_counter()
    expected = release_loop(img, cap, c)
    t_oracle = time.perf_counter() - start
    # per-query products may round differently from the blocked ones: compare, do not assert equality
    same = np.mean(np.concatenate([a == b for a, b in zip(fast, expected, strict=True)]))
    lines = [
        f"host, numpy: similarity product (floor)   {t_floor:8.3f} s",
        f"host, numpy: sharded exact ranks (ours)   {t_fast:8.3f} s   {t_fast / t_floor:5.2f}× the floor",
        f"release per-query loop                    {t_oracle:8.3f} s   {t_oracle / t_fast:5.1f}× slower than ours"
        f" (same ranks for {100 * same:.3f}% of queries)",
        f"peak RSS: inputs {base_rss:.0f} MiB, after our ranks {fast_rss:.0f} MiB (+{fast_rss - base_rss:.0f} MiB);"
        f" the full matrix alone is {sim.nbytes / 2**20:.0f} MiB",
    ]
    return lines, fast


def device_paths(
    img: np.ndarray, cap: np.ndarray, caption_image: np.ndarray, block_mb: int, device: torch.device, repeats: int
) -> tuple:
    """(d) and (e) on `device`: their report lines and (e)'s ranks."""
    n, m = len(img), len(cap)
    img_t, cap_t = torch.from_numpy(img).to(device), torch.from_numpy(cap).to(device)
    similarity = DeviceSimilarity.dense(img_t, cap_t)
    with torch.inference_mode():
        t_floor = best_time(lambda: img_t @ cap_t.T, device, repeats)[1]  # the matrix freed at once
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    inputs = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
    got, t_ranks = best_time(lambda: device_ranks(similarity, n, caption_image, block_mb << 20), device, repeats)
    peak = torch.cuda.max_memory_allocated(device) - inputs if device.type == "cuda" else None
    top = np.empty((m, TOP_K), dtype=np.int64)
    t_top = best_time(lambda: device_ranks(similarity, n, caption_image, block_mb << 20, top), device, repeats)[1]
    lines = [
        f"{device}, torch: similarity product (floor)   {t_floor:8.3f} s",
        f"{device}, torch: ranks counted there (ours)   {t_ranks:8.3f} s   {t_ranks / t_floor:5.2f}× the floor"
        " (target on a GPU ≤ 2×)",
        f"{device}, torch: ranks + top-{TOP_K} images        {t_top:8.3f} s   {t_top / t_floor:5.2f}× the floor",
    ]
    if peak is not None:
        lines.append(
            f"peak device memory of our ranks beyond the embeddings: {peak / 2**20:.0f} MiB"
            f" (block ≤ {block_mb} MiB; the full matrix alone is {4 * n * m / 2**20:.0f} MiB)"
        )
    return lines, got


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=5000)
    p.add_argument("--captions-per-image", type=int, default=5)
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--max-block-mb", type=int, default=64)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--device-only", action="store_true", help="only (d) and (e): no host path, no release loop")
    p.add_argument("--repeats", type=int, default=2, help="runs of each device timing, the best kept")
    args = p.parse_args()
    rng = np.random.default_rng(0)
    n, c = args.images, args.captions_per_image
    img = _unit(rng.standard_normal((n, args.dim), dtype=np.float32))
    caption_image = np.repeat(np.arange(n), c)
    cap = _unit(img[caption_image] + 1.5 * rng.standard_normal((n * c, args.dim), dtype=np.float32))

    print(f"{n} images × {n * c} captions, dim {args.dim}, block ≤ {args.max_block_mb} MiB")
    if not args.device_only:
        lines, host = host_paths(img, cap, caption_image, c, args.max_block_mb)
        print("\n".join(lines))
    lines, on_device = device_paths(img, cap, caption_image, args.max_block_mb, torch.device(args.device), args.repeats)
    print("\n".join(lines))
    if not args.device_only:
        same = np.mean(np.concatenate([a == b for a, b in zip(on_device, host, strict=True)]))
        print(
            f"{args.device} ranks equal to the host's for {100 * same:.3f}% of queries (the products may round apart)"
        )


if __name__ == "__main__":
    main()
