"""`features`: release format (`--raw`) → one HDF5 feature store per source split, plus the OCR fastText model."""

from __future__ import annotations

from pathlib import Path

from stacmr.atomic import atomic_dir
from stacmr.data.annotations import ANNOTATIONS_FILE, read_annotation_info, read_annotations
from stacmr.data.release import check_sizes_agree, ocr_feats_file, read_split
from stacmr.data.sources import SOURCES
from stacmr.errors import StacmrError
from stacmr.features.build import build_store, training_text
from stacmr.features.ocr_embedding import FASTTEXT_FILE, OcrEmbedder
from stacmr.features.store import store_file
from stacmr.params import params_dict
from stacmr.stages.common import log, parser, start


def main(argv: list[str] | None = None) -> None:
    p = parser("features", __doc__)
    p.add_argument("--raw", required=True, type=Path, help="release-format sources written by `fetch`")
    p.add_argument("--out", required=True, help="directory for the feature stores")
    args = p.parse_args(argv)
    params = start("features", args)
    # open and validate every input before the first output is made
    annotations = {s.name: read_annotations(args.raw / s.name / ANNOTATIONS_FILE) for s in SOURCES}
    releases = {
        source.store(split): read_split(args.raw / source.name, split, params.data.captions_per_image)
        for source in SOURCES
        for split in source.split_names
    }
    check_sizes_agree(args.raw)
    producer = {"data": params_dict(params.data), "features": params_dict(params.features)}
    released = [name for name, release in releases.items() if release.ocr_feats is not None]
    if released and len(released) != len(releases):
        source, split = next(name for name, r in releases.items() if r.ocr_feats is None).split("/")
        raise StacmrError(
            f"{ocr_feats_file(args.raw / source, split)}: missing, while {', '.join(released)} have released OCR"
            " vectors; one source of OCR vectors must serve every split"
        )
    with atomic_dir(args.out) as out:
        if released:
            log.info("using the released OCR vectors ({split}_ocr_feats.npy); no fastText model is needed")
            embedder = None
        elif params.features.fasttext.model is None:
            log.info("training a fastText model on the training text of %s", ", ".join(params.trainset.sources))
            lines = training_text({name: releases[name] for name in params.trainset.sources}, annotations)
            embedder = OcrEmbedder.train(lines, params.features.fasttext, out / FASTTEXT_FILE)
        else:
            embedder = OcrEmbedder.load(params.features.fasttext.model)
        for name, release in releases.items():
            source = name.split("/")[0]
            annotations_path = args.raw / source / ANNOTATIONS_FILE
            build_store(
                name,
                release,
                annotations[source],
                annotations_path,
                embedder,
                params.features.max_ocr_tokens,
                store_file(out, name),
                producer,
                read_annotation_info(annotations_path),
                inputs_root=args.raw,
            )
            log.info("%-16s %6d images", name, len(release.ids))
