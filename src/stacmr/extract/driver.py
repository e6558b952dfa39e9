"""The extraction driver: one split's image folder → its release-format files, batched, resumable, memory-bounded.

Writes into `out_dir`: `{split}_ims.npy` float32 (N, R, D), `{split}_ids.txt`, `{split}_caps.txt` (when captions are
given) and `{split}_ocr_feats.npy` float32 (N, T, E) (when a fastText model is given); returns the split's
annotation entries (OCR tokens with boxes and confidences) and its report. N counts the readable images only.

Resuming: every batch is committed to `work_dir` as a shard, `shard-K.npy` (its regions) then `shard-K.json` (its
images' tokens, sizes and read errors; written last, so a shard without it never counts). A rerun skips every image
a committed shard holds, as long as `work_dir/fingerprint.json` (backbone, engine, filter params) still matches;
otherwise the shards are stale and are discarded. Memory holds one batch of images and regions, never the split:
the final arrays are filled shard by shard through memory maps. An unreadable image is logged once, recorded in the
report and left out; it does not stop the run.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stacmr.atomic import atomic_path, write_text
from stacmr.data.annotations import ImageAnnotation, OcrToken
from stacmr.errors import StacmrError
from stacmr.extract.backbone import Backbone
from stacmr.extract.images import load_image
from stacmr.extract.ocr import clean_token
from stacmr.extract.ocr_engine import OcrEngine
from stacmr.features.ocr_embedding import OcrEmbedder
from stacmr.params import OcrFilterParams
from stacmr.progress import progress

log = logging.getLogger("stacmr.extract")

_FINGERPRINT = "fingerprint.json"


@dataclass(frozen=True)
class SplitJob:
    split: str
    images: list[tuple[str, Path]]  # (id, file), in output order
    folder: Path  # file names in the annotations are relative to it
    captions: dict[str, list[str]] | None  # id → its captions; None: no `{split}_caps.txt`
    batch_size: int
    max_ocr_tokens: int  # T of `{split}_ocr_feats.npy`


def _shards(work_dir: Path) -> Iterator[tuple[int, list[dict]]]:
    for meta in sorted(work_dir.glob("shard-*.json")):
        yield int(meta.stem.removeprefix("shard-")), json.loads(meta.read_text(encoding="utf-8"))


def _prepare_work(work_dir: Path, fingerprint: dict) -> None:
    marker = work_dir / _FINGERPRINT
    if marker.is_file() and json.loads(marker.read_text(encoding="utf-8")) != fingerprint:
        log.warning("%s: made with another backbone, engine or filter; starting this split afresh", work_dir)
        shutil.rmtree(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    write_text(marker, json.dumps(fingerprint, sort_keys=True))


def _read_batch(
    batch: list[tuple[str, Path]], job: SplitJob, backbone: Backbone, engine: OcrEngine, ocr: OcrFilterParams
) -> tuple[list[dict], np.ndarray]:
    records, images, ids = [], [], []
    for image_id, path in batch:
        record = {"id": image_id, "file": path.relative_to(job.folder).as_posix()}
        image = load_image(path)
        if isinstance(image, str):
            records.append({**record, "error": image})
            continue
        tokens = []
        for word in engine.read(image):
            text = clean_token(word, ocr)
            if text is not None:
                tokens.append({"text": text, "bbox": list(word.box), "confidence": word.confidence})
        records.append({**record, "width": image.width, "height": image.height, "tokens": tokens})
        images.append(image)
        ids.append(image_id)
    regions = np.zeros((0, backbone.regions, backbone.dim), dtype=np.float32)
    if images:
        regions = np.asarray(backbone.regions_of(images, ids), dtype=np.float32)
    if regions.shape != (len(images), backbone.regions, backbone.dim):
        raise ValueError(f"backbone {backbone.name} returned {regions.shape} for {len(images)} images")
    if not np.isfinite(regions).all():
        raise StacmrError(f"{job.folder}: backbone {backbone.name} gave NaN or infinite features for {ids}")
    return records, regions


def _commit(work_dir: Path, index: int, records: list[dict], regions: np.ndarray) -> None:
    with atomic_path(work_dir / f"shard-{index:06d}.npy") as tmp, open(tmp, "wb") as f:
        np.save(f, regions)
    write_text(work_dir / f"shard-{index:06d}.json", json.dumps(records))


def extract_split(
    job: SplitJob,
    backbone: Backbone,
    engine: OcrEngine,
    ocr: OcrFilterParams,
    embedder: OcrEmbedder | None,
    out_dir: Path,
    work_dir: Path,
    fingerprint: dict,
) -> tuple[list[ImageAnnotation], dict]:
    """Extract `job` (resuming from `work_dir`) and write its release files into `out_dir`; see the module doc."""
    _prepare_work(work_dir, fingerprint)
    done = {record["id"] for _, records in _shards(work_dir) for record in records}
    todo = [(i, p) for i, p in job.images if i not in done]
    resumed = len(job.images) - len(todo)
    if resumed:
        log.info("%s: %d of %d images already extracted, resuming", job.split, resumed, len(job.images))
    next_index = max((k for k, _ in _shards(work_dir)), default=-1) + 1
    with progress(total=len(job.images), initial=resumed, desc=f"extract {job.split}", unit="image") as bar:
        for start in range(0, len(todo), job.batch_size):
            batch = todo[start : start + job.batch_size]
            records, regions = _read_batch(batch, job, backbone, engine, ocr)
            _commit(work_dir, next_index, records, regions)
            next_index += 1
            bar.update(len(batch))
    return _assemble(job, backbone, embedder, out_dir, work_dir, resumed)


def _assemble(
    job: SplitJob, backbone: Backbone, embedder: OcrEmbedder | None, out_dir: Path, work_dir: Path, resumed: int
) -> tuple[list[ImageAnnotation], dict]:
    """Gather the shards, in the order of `job.images`, into the split's release files."""
    where: dict[str, tuple[int, int, dict]] = {}  # id → (shard, row in its regions, record)
    for index, records in _shards(work_dir):
        row = 0
        for record in records:
            where[record["id"]] = (index, -1 if "error" in record else row, record)
            row += "error" not in record
    wanted = [where[i] for i, _ in job.images]  # ids no longer in the folder are dropped
    readable = [w for w in wanted if w[1] >= 0]
    unreadable = [{"file": r["file"], "error": r["error"]} for _, row, r in wanted if row < 0]
    if not readable:
        raise StacmrError(f"{job.folder}: none of its {len(job.images)} images could be read")
    n = len(readable)
    with atomic_path(out_dir / f"{job.split}_ims.npy") as tmp:
        ims = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, backbone.regions, backbone.dim))
        shard, shard_regions = -1, None
        for k, (index, row, _) in enumerate(readable):
            if index != shard:
                shard, shard_regions = index, np.load(work_dir / f"shard-{index:06d}.npy", mmap_mode="r")
            ims[k] = shard_regions[row]
        ims.flush()
        del ims
    write_text(out_dir / f"{job.split}_ids.txt", "".join(f"{r['id']}\n" for _, _, r in readable))
    if job.captions is not None:
        write_text(
            out_dir / f"{job.split}_caps.txt", "".join(c + "\n" for *_, r in readable for c in job.captions[r["id"]])
        )
    annotations = [
        ImageAnnotation(
            id=r["id"],
            split=job.split,
            file_name=r["file"],
            width=r["width"],
            height=r["height"],
            ocr_tokens=tuple(OcrToken(t["text"], tuple(t["bbox"]), t["confidence"]) for t in r["tokens"]),
            captions=tuple(job.captions[r["id"]]) if job.captions is not None else (),
        )
        for *_, r in readable
    ]
    if embedder is not None:
        with atomic_path(out_dir / f"{job.split}_ocr_feats.npy") as tmp:
            feats = np.lib.format.open_memmap(
                tmp, mode="w+", dtype=np.float32, shape=(n, job.max_ocr_tokens, embedder.dim)
            )
            for k, ann in enumerate(annotations):
                feats[k] = embedder.embed([t.text for t in ann.ocr_tokens], job.max_ocr_tokens)[0]
            feats.flush()
            del feats
    for item in unreadable:
        log.warning("%s: left out (%s)", job.folder / item["file"], item["error"])
    report = {"images": len(job.images), "extracted": n, "resumed": resumed, "unreadable": unreadable}
    return annotations, report
