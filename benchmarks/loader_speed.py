"""Captions/s of the training loader alone, on a release-shaped store: the reader before the loader against the
loader from the file and from RAM, with and without reading ahead.

Writes a store with the project's writer (`create_store`) in a temporary directory (deleted afterwards): `--images`
images (default 20,000) of 36 × 2048 float16 regions and 15 × 300 float16 OCR vectors, 5 captions each (≈ 160 KB
per image, 3.2 GB at the default size). Then each loader reads `--batches` batches of 128 captions of a random epoch
order (`epoch_order`) and does nothing else:
  indexed     the reader before the loader: per batch, one HDF5 read by index array per field, in the caller's thread;
  file        `training_batches` reading from the file (`memory_budget=0`), chunk-aware;
  ram         `training_batches` from the features held in RAM (`stacmr.features.memory.hold`, timed once: hold_s);
the last two also with `--read-ahead` batches read ahead in a thread. "captions_per_s": with nothing else to do;
"waits": the share of the time a consumer spends waiting for its next batch when each step takes `--step-ms` with the
host idle (a GPU step; default: a batch of 128 at 15,000 captions/s, the fastest GPU step measured, CHAN/DSVE in
fp32): 0 means the steps never wait for data. Each loader is measured `--repeats` times, interleaved, and the median
kept (the machine may be shared). The file is read warm (just written, in the page cache) unless `--cold` drops it
from the page cache before each measurement. Prints a JSON object.

Usage: .venv/bin/python benchmarks/loader_speed.py [--images 20000] [--batches 40] [--step-ms 8.5] [--cold]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from stacmr.features.memory import hold
from stacmr.features.reader import encode_captions
from stacmr.features.store import FeatureStore, create_store
from stacmr.features.vocab import Vocabulary
from stacmr.models import ImageBatch
from stacmr.training.batches import epoch_order, training_batches

SIZES = {"R": 36, "D": 2048, "T": 15, "E": 300, "C": 5}  # BUTD regions, the release's 15 fastText OCR vectors
BATCH = 128
WORDS = [
    "a",
    "man",
    "woman",
    "sign",
    "shop",
    "bus",
    "stop",
    "street",
    "red",
    "blue",
    "with",
    "the",
    "on",
    "of",
    "in",
    "near",
]
VOCAB = Vocabulary(["<pad>", "<start>", "<end>", "<unk>", *WORDS])


def write_store(path: Path, images: int) -> None:
    """A release-shaped store of random features: uniform float16 in [0, 1), all 36 regions real, 3 OCR tokens."""
    rng = np.random.default_rng(0)
    sizes = {"N": images, **SIZES}
    with create_store(path, "bench/train", sizes, {"benchmark": True}, {}) as out:
        for start in range(0, images, 500):
            n = min(500, images - start)
            tokens = np.full((n, SIZES["T"]), "", dtype=object)
            tokens[:, :3] = rng.choice(WORDS, (n, 3))
            captions = [" ".join(rng.choice(WORDS, 10)) for _ in range(n * SIZES["C"])]
            out.write(
                start,
                regions=rng.random((n, SIZES["R"], SIZES["D"]), dtype=np.float32).astype(np.float16),
                region_count=np.full(n, SIZES["R"], dtype=np.int32),
                ocr_emb=np.where(tokens[..., None] != "", rng.random((n, SIZES["T"], SIZES["E"])), 0).astype(
                    np.float16
                ),
                ocr_mask=tokens != "",
                ocr_tokens=tokens,
                ocr_boxes=np.zeros((n, SIZES["T"], 4), dtype=np.float32),
                captions=np.array(captions, dtype=object).reshape(n, SIZES["C"]),
                image_ids=np.array([str(i) for i in range(start, start + n)], dtype=object),
                explicit=np.zeros(n, dtype=bool),
            )


def indexed_batches(store: FeatureStore, order: np.ndarray) -> Iterator[tuple]:
    """The reader before the loader: one HDF5 read by index array per field and batch, in the caller's thread."""
    c = store.sizes["C"]
    for start in range(0, len(order), BATCH):
        rows = order[start : start + BATCH]
        unique, inverse = np.unique(rows // c, return_inverse=True)
        regions = store["regions"][unique].astype(np.float32)[inverse]
        ocr = store["ocr_emb"][unique].astype(np.float32)[inverse]
        store.check_finite(rows // c, regions=regions, ocr_emb=ocr)
        counts = store["region_count"][unique][inverse]
        region_mask = np.arange(regions.shape[1])[None, :] < counts[:, None]
        images = ImageBatch(*map(torch.from_numpy, (regions, region_mask, ocr, store["ocr_mask"][unique][inverse])))
        texts = store["captions"].asstr()[unique][inverse, rows % c]
        yield images, encode_captions(list(texts), VOCAB, 32)


def drop_from_cache(path: Path) -> None:
    """Evict `path` from the page cache (this file only), so that the next read comes from the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def measure(batches: Iterator, count: int, step_s: float) -> dict[str, float]:
    """Captions/s of `count` batches taken with nothing else to do, then the share of the time spent waiting for the
    next `count` when each step sleeps `step_s`."""
    next(batches)  # warm-up: thread start, first touch
    start = time.perf_counter()
    for _ in range(count):
        next(batches)
    alone = count * BATCH / (time.perf_counter() - start)
    waited, start = 0.0, time.perf_counter()
    for _ in range(count):
        asked = time.perf_counter()
        next(batches)
        waited += time.perf_counter() - asked
        time.sleep(step_s)
    return {"captions_per_s": alone, "waits": waited / (time.perf_counter() - start)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=20_000, help="images in the store (≥ 20,000 at release scale)")
    p.add_argument("--batches", type=int, default=40, help="timed batches per measurement, after one warm-up")
    p.add_argument("--read-ahead", type=int, default=2, help="batches read ahead in a thread")
    p.add_argument("--step-ms", type=float, default=BATCH / 15_000 * 1e3, help="a step's time for 'waits'")
    p.add_argument("--repeats", type=int, default=3, help="measurements per loader, interleaved: the median is kept")
    p.add_argument("--cold", action="store_true", help="drop the store from the page cache before each measurement")
    p.add_argument("--tmp", type=Path, default=None, help="where the temporary store goes (default: the system's)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="stacmr-loader-", dir=args.tmp) as tmp:
        path = Path(tmp) / "store.h5"
        start = time.perf_counter()
        write_store(path, args.images)
        result = {
            "images": args.images,
            "store_gb": round(path.stat().st_size / 1e9, 2),
            "write_s": round(time.perf_counter() - start, 1),
            "cold": args.cold,
            "step_ms": round(args.step_ms, 2),
            "torch_threads": torch.get_num_threads(),
        }
        order = epoch_order(args.images * SIZES["C"], 0, 0)[: (args.batches * 2 + 1) * BATCH]
        read = functools.partial(training_batches, vocab=VOCAB, batch_size=BATCH, order=order, max_words=32)
        # two handles on the store: what one holds in RAM, the other does not see
        with FeatureStore(path) as in_ram, FeatureStore(path) as from_file:
            runs = {
                "indexed": lambda: indexed_batches(from_file, order),
                "file": lambda: read(from_file, memory_budget=0, read_ahead=0),
                f"file_read_ahead_{args.read_ahead}": lambda: read(
                    from_file, memory_budget=0, read_ahead=args.read_ahead
                ),
                "ram": lambda: read(in_ram, read_ahead=0),
                f"ram_read_ahead_{args.read_ahead}": lambda: read(in_ram, read_ahead=args.read_ahead),
            }
            if args.cold:
                drop_from_cache(path)
            start = time.perf_counter()
            if not hold(in_ram):
                result["hold"] = "over the memory budget: the ram rows are read from the file"
            result["hold_s"] = round(time.perf_counter() - start, 1)
            samples: dict[str, list[dict[str, float]]] = {name: [] for name in runs}
            for _ in range(args.repeats):
                for name, batches in runs.items():
                    if args.cold:
                        drop_from_cache(path)
                    samples[name].append(measure(batches(), args.batches, args.step_ms / 1e3))
        for name, values in samples.items():
            rate, waits = (statistics.median(v[key] for v in values) for key in ("captions_per_s", "waits"))
            result[name] = {"captions_per_s": round(rate), "waits": round(waits, 3)}
        base = result["indexed"]["captions_per_s"]
        result["speedup_vs_indexed"] = {
            name: round(result[name]["captions_per_s"] / base, 1) for name in runs if name != "indexed"
        }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
