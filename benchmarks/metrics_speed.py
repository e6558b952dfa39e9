"""Speed and memory of the retrieval metrics on a CTC-5K-shaped problem: 5,000 images × 25,000 captions, dim 1024.

Times, in this run and on this machine: (a) the bare similarity product `img @ cap.T` (the floor: any exact method
computes it); (b) our sharded exact ranks, both directions (one similarity pass per direction, `max_block_mb` of
memory at a time); (c) the release-style oracle: the full matrix, then a full argsort per query. Prints (c)/(b),
(b)/(a) and the peak RSS of (b) (measured before (a) and (c) allocate the full matrix).

Usage: .venv/bin/python benchmarks/metrics_speed.py [--images 5000] [--dim 1024] [--max-block-mb 64]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from stacmr.evaluation.metrics import ranks
from stacmr.evaluation.ranking import dense_similarity


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=5000)
    p.add_argument("--captions-per-image", type=int, default=5)
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--max-block-mb", type=int, default=64)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    n, c = args.images, args.captions_per_image
    img = _unit(rng.standard_normal((n, args.dim), dtype=np.float32))
    caption_image = np.repeat(np.arange(n), c)
    cap = _unit(img[caption_image] + 1.5 * rng.standard_normal((n * c, args.dim), dtype=np.float32))
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    start = time.perf_counter()
    fast = ranks(dense_similarity(img, cap), n, caption_image, args.max_block_mb << 20)
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

    print(f"{n} images × {n * c} captions, dim {args.dim}, block ≤ {args.max_block_mb} MiB")
    print(f"similarity product (floor)   {t_floor:8.2f} s")
    print(f"sharded exact ranks (ours)   {t_fast:8.2f} s   {t_fast / t_floor:5.2f}× the floor")
    print(
        f"release per-query loop       {t_oracle:8.2f} s   {t_oracle / t_fast:5.1f}× slower than ours"
        f" (same ranks for {100 * same:.3f}% of queries)"
    )
    print(
        f"peak RSS: inputs {base_rss:.0f} MiB, after our ranks {fast_rss:.0f} MiB (+{fast_rss - base_rss:.0f} MiB);"
        f" the full matrix alone is {sim.nbytes / 2**20:.0f} MiB"
    )


if __name__ == "__main__":
    main()
