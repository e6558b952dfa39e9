"""The real inputs of `data.source: release`: find or download them, verify, unpack, and lay out the release format.

Each input of `params.release` is taken from `data/<file>` when the user placed it there (and checked against its
sha256 when one is known), else downloaded into the downloads folder when it has a URL, http(s) or a Google Drive
`gdrive://<file id>` (resumable, verified; without a known sha256 the first download's digest is recorded beside it,
checked on later runs, and logged with the params.yaml line that pins it), else reported: one message lists every
missing required file, where to get it, where to put it and how to `dvc add` it.
Archives are unpacked safely (`archive.py`) into `<downloads>/extracted/<key>/`, once per archive digest.

Writes under the output folder, for `features`:
  <source>/{split}_ims.npy, _caps.txt, _ids.txt (and _ocr_feats.npy, _boxes.npy where the archive has them)
                              hard links into the unpacked archives (copies where the file system cannot link)
  <source>/annotations.json   CTC: scene text from COCO-Text v2, metadata (coco_url) from CTC_anns.json or the COCO
                              captions; Flickr30K and TextCaps: ids only (no scene-text ground truth)
  ctc/rebuild_check.json      with the COCO captions: the CTC list rebuilt from COCO + COCO-Text vs the release splits
  manifest.json               every input used: url, size, sha256, whether it was verified, when
and, when `release.download_images` is set, the CTC images by coco_url into `<downloads>/images/`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from stacmr.atomic import write_text
from stacmr.checksum import sha256_file
from stacmr.data.annotations import ANNOTATIONS_FILE, ImageAnnotation, write_annotations
from stacmr.data.archive import extract_archive
from stacmr.data.coco import CocoImage, read_coco_captions, read_ctc_images
from stacmr.data.cocotext import read_cocotext
from stacmr.data.ctc_build import build_ctc, cross_check, split_annotations
from stacmr.data.download import (
    DownloadPolicy,
    FetchRecord,
    download_checked,
    download_many,
    fetch_record,
    recorded_path,
    write_manifest,
)
from stacmr.data.release import boxes_file, ocr_feats_file, split_files
from stacmr.data.sources import CTC, SOURCES
from stacmr.errors import StacmrError
from stacmr.params import ReleaseParams

log = logging.getLogger("stacmr")

REQUIRED = ("ctc_features", "train_features", "cocotext")
OPTIONAL = ("ctc_annotations", "coco_captions")
MANIFEST_FILE = "manifest.json"
CHECK_FILE = "rebuild_check.json"
_ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


def _locate(
    release: ReleaseParams, data_dir: Path, downloads: Path, policy: DownloadPolicy
) -> tuple[dict[str, Path], list[FetchRecord]]:
    paths: dict[str, Path] = {}
    records: list[FetchRecord] = []
    missing = []
    for key in REQUIRED + OPTIONAL:
        spec = getattr(release, key)
        placed = data_dir / spec.file
        if placed.is_file():
            digest = sha256_file(placed)
            if spec.sha256 is not None and digest != spec.sha256:
                raise StacmrError(
                    f"{placed}: sha256 {digest} differs from release.{key}.sha256 {spec.sha256}: another or a damaged"
                    " file; replace it or correct the hash"
                )
            paths[key] = placed
            records.append(fetch_record("placed by the user", placed, digest, spec.sha256 is not None))
        elif spec.url is not None:
            try:
                record, first = download_checked(spec.url, downloads / spec.file, spec.sha256, policy)
                records.append(record)
                paths[key] = downloads / spec.file
                if first:
                    log.warning(
                        "release.%s: no sha256 in params.yaml; the first download's digest is recorded in %s and"
                        " checked on later runs. To pin it, put this line under `%s:` in params.yaml's `release:`"
                        " section:\n    sha256: %s",
                        key,
                        recorded_path(downloads / spec.file),
                        key,
                        record.sha256,
                    )
            except StacmrError as exc:
                if key in REQUIRED:
                    raise
                log.warning("optional input release.%s not fetched, going on without it: %s", key, exc)
        elif key in REQUIRED:
            missing.append(f"{spec.file} ({spec.origin}) at {placed}")
    if missing:
        raise StacmrError(
            "data.source release: these files cannot be downloaded automatically; put "
            + "; ".join(missing)
            + f"; then run `dvc add {data_dir}` and `dvc repro` (README, 'Real data')"
        )
    return paths, records


def _unpacked(key: str, archive: Path, digest: str, downloads: Path, max_bytes: int) -> Path:
    """The unpacked tree of `archive`, extracted once per archive digest (a stamp file records which)."""
    root = downloads / "extracted" / key
    stamp = downloads / "extracted" / f"{key}.sha256"
    if root.is_dir() and stamp.is_file() and stamp.read_text().strip() == digest:
        return root
    log.info("unpacking %s into %s", archive, root)
    stamp.unlink(missing_ok=True)
    extract_archive(archive, root, max_bytes)
    write_text(stamp, digest + "\n")
    return root


def _find(root: Path, prefix: str, where: str) -> dict[str, Path]:
    """The release files `<prefix>_*` of one split inside an unpacked archive (prefix may name folders)."""
    wanted = f"{prefix}_ims.npy"
    name = wanted.rsplit("/", 1)[-1]
    hits = [
        p for p in root.rglob(name) if (rel := p.relative_to(root).as_posix()) == wanted or rel.endswith("/" + wanted)
    ]
    if len(hits) != 1:
        found = sorted(p.relative_to(root).as_posix() for p in root.rglob("*_ims.npy"))
        raise StacmrError(
            f"{root}: {len(hits) or 'no'} file(s) matching {wanted} for release.layout.{where}; the archive holds"
            f' {found[:12] or "no *_ims.npy"}: set release.layout.{where} to "<archive>:<prefix>" accordingly'
        )
    base = str(hits[0])[: -len("_ims.npy")]
    files = {"ims": hits[0], "caps": Path(base + "_caps.txt"), "ids": Path(base + "_ids.txt")}
    for path in files.values():
        if not path.is_file():
            raise StacmrError(f"{path}: release file is missing (release.layout.{where})")
    for kind, suffix in (("ocr", "_ocr_feats.npy"), ("boxes", "_boxes.npy")):  # optional
        if Path(base + suffix).is_file():
            files[kind] = Path(base + suffix)
    return files


def _place(source: Path, target: Path) -> None:
    """`target` becomes the same file as `source`: a hard link (no copy of tens of GB) or, across devices, a copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _json_inside(path: Path, key: str, downloads: Path, digest: str, max_bytes: int, pattern: str) -> list[Path]:
    """The annotation file(s) of an input: the file itself, or those matching `pattern` in the unpacked archive."""
    if not path.name.endswith(_ARCHIVE_SUFFIXES):
        return [path]
    found = sorted(_unpacked(key, path, digest, downloads, max_bytes).rglob(pattern))
    if not found:
        raise StacmrError(f"{path}: the archive holds no {pattern}")
    return found


def fetch_release(
    release: ReleaseParams, captions_per_image: int, data_dir: Path, downloads: Path, out: Path
) -> dict[str, int]:
    """Assemble the release format in `out` (see the module doc); returns {source/split: images}."""
    policy = DownloadPolicy(release.timeout_s, release.retries, release.backoff_s)
    paths, records = _locate(release, data_dir, downloads, policy)
    digests = {r.file: r.sha256 for r in records}
    digest = {key: digests[path.name] for key, path in paths.items()}
    summary: dict[str, int] = {}
    release_ids: dict[str, dict[str, list[str]]] = {source.name: {} for source in SOURCES}
    for source in SOURCES:
        folder = out / source.name
        for split in source.split_names:
            name = source.store(split)
            archive, _, prefix = release.layout[name].partition(":")
            root = _unpacked(archive, paths[archive], digest[archive], downloads, release.max_unpacked_bytes)
            files = _find(root, prefix, name)
            targets = {
                **split_files(folder, split),
                "ocr": ocr_feats_file(folder, split),
                "boxes": boxes_file(folder, split),
            }
            for kind, path in files.items():
                _place(path, targets[kind])
            ids = files["ids"].read_text(encoding="utf-8").splitlines()
            release_ids[source.name][split] = ids
            summary[name] = len(ids)

    cocotext = _json_inside(
        paths["cocotext"], "cocotext", downloads, digest["cocotext"], release.max_unpacked_bytes, "*.json"
    )
    scene_text = read_cocotext(cocotext[0])
    images: dict[str, CocoImage] = {}
    if "coco_captions" in paths:
        captions: dict[str, CocoImage] = {}
        for path in _json_inside(
            paths["coco_captions"],
            "coco_captions",
            downloads,
            digest["coco_captions"],
            release.max_unpacked_bytes,
            "captions_*2014.json",
        ):
            captions.update(read_coco_captions(path))
        rebuilt = build_ctc(captions, scene_text, captions_per_image)
        check = cross_check(rebuilt, release_ids[CTC.name])
        write_text(out / CTC.name / CHECK_FILE, json.dumps({"rebuilt_images": len(rebuilt), "splits": check}, indent=1))
        log.info("CTC rebuilt from COCO + COCO-Text: %d images; per release split: %s", len(rebuilt), check)
        images.update(captions)
    if "ctc_annotations" in paths:
        images.update(read_ctc_images(paths["ctc_annotations"]))
    info = {"source": "release", "scene_text": "COCO-Text v2, legible English", "inputs": sorted(paths)}
    ctc = split_annotations(release_ids[CTC.name], scene_text, images)
    write_annotations(out / CTC.name / ANNOTATIONS_FILE, ctc, info)
    for source in SOURCES:
        if source is not CTC:  # no scene-text ground truth for the other sources: their image ids only
            entries = [ImageAnnotation(id=i, split=s) for s, ids in release_ids[source.name].items() for i in ids]
            write_annotations(out / source.name / ANNOTATIONS_FILE, entries, {**info, "scene_text": "none"})

    if release.download_images:
        urls = sorted({a.coco_url for a in ctc if a.coco_url})
        if len(urls) < len({a.id for a in ctc}):
            log.warning("%d CTC images have no coco_url and are not downloaded", len({a.id for a in ctc}) - len(urls))
        items = [(url, downloads / "images" / url.rsplit("/", 1)[-1], None) for url in urls]
        write_manifest(downloads / "images" / MANIFEST_FILE, download_many(items, policy, release.workers))
    write_manifest(downloads / MANIFEST_FILE, records)
    write_manifest(out / MANIFEST_FILE, records)
    return summary
