"""A store's image features held in RAM, so that a training epoch's random rows cost a numpy take instead of a file
read per image.

`hold(store)` reads the fields a batch of images reads (`HELD`: regions and OCR vectors in float16 as stored, region
counts, OCR masks; ≈ 160 KB per image at release sizes, ≈ 9 GB for the real training mix) whole, once per store
object, when they fit a memory budget: by default half the memory available when it is called (Linux's
MemAvailable, within the cgroup's limit when one is set), so a store that fits is held and one that does not is read
from the file (`stacmr.features.reader`) without a setting to tune. The held values are checked finite as they are
read (`FeatureStore.check_finite` names the store's first bad image), so a batch taken from RAM needs no check of its
own. They live as long as the store object. The path a store takes changes no value a reader returns: results do not
depend on the machine's memory. The captions and OCR strings stay in the file (one read per batch of a contiguous
dataset, fast).
"""

from __future__ import annotations

import logging
import os
import weakref
from pathlib import Path

import numpy as np

from stacmr.features.store import FIELDS, FeatureStore

log = logging.getLogger("stacmr")

HELD = ("regions", "region_count", "ocr_emb", "ocr_mask")
_BLOCK = 64  # images per read while holding (10 MB at release sizes): one read of a whole field runs ~15× slower
_CGROUP = Path("/sys/fs/cgroup")  # cgroup v2: memory.max ("max" or bytes) and memory.current of this container

_held: weakref.WeakKeyDictionary[FeatureStore, dict[str, np.ndarray]] = weakref.WeakKeyDictionary()


def memory_available() -> int:
    """Bytes this process may still allocate without swapping or being killed: Linux's MemAvailable, capped by the
    room left under the cgroup's memory limit; elsewhere the machine's physical memory."""
    try:
        meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        available = int(meminfo["MemAvailable"].split()[0]) * 1024  # kB
    except (OSError, KeyError, ValueError):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        limit = (_CGROUP / "memory.max").read_text().strip()
        used = int((_CGROUP / "memory.current").read_text())
    except OSError:
        return available
    return available if limit == "max" else min(available, int(limit) - used)


def held_size(store: FeatureStore) -> int:
    """Bytes the held fields of `store` take in RAM."""
    return sum(store[name].size * store[name].dtype.itemsize for name in HELD)


def hold(store: FeatureStore, budget: int | None = None) -> bool:
    """Hold the `HELD` fields of `store` in RAM when they take at most `budget` bytes (None: half of
    `memory_available()`); True when they are held, now or by an earlier call. A NaN or infinite value is refused as
    `FeatureStore.check_finite` refuses it, and nothing is held."""
    if store in _held:
        return True
    size = held_size(store)
    budget = memory_available() // 2 if budget is None else budget
    if size > budget:
        log.info(
            "%s: read from the file (its features take %.2f GB, over the %.2f GB budget)",
            store.path,
            size / 1e9,
            budget / 1e9,
        )
        return False
    log.info("%s: holding its features in RAM (%.2f GB)", store.path, size / 1e9)
    arrays = {name: np.empty(store[name].shape, store[name].dtype) for name in HELD}
    for start in range(0, len(store), _BLOCK):
        block = slice(start, start + _BLOCK)
        for name, array in arrays.items():
            store[name].read_direct(array, block, block)
        checked = {name: array[block] for name, array in arrays.items() if FIELDS[name].finite}
        store.check_finite(np.arange(len(store))[block], **checked)
    _held[store] = arrays
    return True


def held(store: FeatureStore) -> dict[str, np.ndarray] | None:
    """The `HELD` fields of `store` by name, when `hold` holds them."""
    return _held.get(store)
