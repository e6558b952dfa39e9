"""The combined training set: several feature stores concatenated, in order, into one store of the same schema.

The paper trains on Flickr30K + TextCaps + the CTC training part; `trainset.sources` names the stores and their order.
Images are copied in blocks of `chunk_images`, so memory does not grow with the data. The stores must agree on every
size but N (regions R × D, OCR slots T × E, captions per image C); the producer attribute records which rows came
from which store. A block with NaN/inf regions or OCR vectors stops the copy, naming the store, field and image.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from stacmr.checksum import sha256_file
from stacmr.data.sources import TRAINSET
from stacmr.errors import StacmrError
from stacmr.features.store import FIELDS, FeatureStore, create_store
from stacmr.progress import progress


def build_trainset(stores: list[Path], out_path: str | os.PathLike, chunk_images: int, producer: dict) -> None:
    """Concatenate the stores at `stores` (in order) into a new store at `out_path`."""
    with contextlib.ExitStack() as stack:
        opened = [stack.enter_context(FeatureStore(p)) for p in stores]
        first = opened[0]
        for store in opened[1:]:
            for dim in ("R", "D", "T", "E", "C"):
                if store.sizes[dim] != first.sizes[dim]:
                    raise StacmrError(
                        f"{store.path}: size {dim}={store.sizes[dim]} differs from {dim}={first.sizes[dim]} of"
                        f" {first.path}; the stores of one training set must agree"
                    )
        sizes = {**first.sizes, "N": sum(len(s) for s in opened)}
        ranges, start = [], 0
        for store in opened:
            ranges.append({"name": store.name, "start": start, "stop": start + len(store)})
            start += len(store)
        inputs = {s.path.name: sha256_file(s.path) for s in opened}  # names in the features folder: no absolute path
        extraction = {k: v for s in opened for k, v in s.extraction.items()}
        with create_store(out_path, TRAINSET, sizes, {**producer, "sources": ranges}, inputs, extraction) as out:
            offset = 0
            for store in opened:
                for a in progress(range(0, len(store), chunk_images), desc=f"trainset {store.name}", unit="chunk"):
                    b = min(a + chunk_images, len(store))
                    block = {name: store[name][a:b] for name in FIELDS}
                    store.check_finite(np.arange(a, b), **{k: v for k, v in block.items() if FIELDS[k].finite})
                    out.write(offset + a, **block)
                offset += len(store)
