"""`extract`: a folder of images → one split in the release format (`--out`), with OCR tokens and region features.

Writes `{split}_ims.npy`, `{split}_ids.txt`, `{split}_caps.txt` (with `--captions`), `{split}_ocr_feats.npy` (when
`extract.fasttext_model` is set), `annotations.json` (OCR tokens with boxes and confidences; the engine and backbone
in its `info`) and `extract_report.json` (counts and every unreadable image). Finished batches are kept in `--work`
(default: `<out>.partial`) until the run completes, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from stacmr.atomic import atomic_dir, write_text
from stacmr.data.annotations import ANNOTATIONS_FILE, write_annotations
from stacmr.extract.backbone import make_backbone
from stacmr.extract.captions import read_captions
from stacmr.extract.driver import SplitJob, extract_split
from stacmr.extract.images import list_images
from stacmr.extract.ocr import make_engine
from stacmr.features.ocr_embedding import OcrEmbedder
from stacmr.params import params_dict
from stacmr.stages.common import log, parser, start

REPORT_FILE = "extract_report.json"


def main(argv: list[str] | None = None) -> None:
    p = parser("extract", __doc__)
    p.add_argument("--images", required=True, type=Path, help="folder of images (searched recursively)")
    p.add_argument("--split", default="test", help="release split the images form (default: %(default)s)")
    p.add_argument("--out", required=True, type=Path, help="release-format directory to write")
    p.add_argument("--captions", type=Path, help="JSON {image id: [captions]}; writes {split}_caps.txt")
    p.add_argument("--regions", type=Path, help="BUTD {split}_ims.npy (with its _ids.txt) for backbone precomputed")
    p.add_argument("--work", type=Path, help="where finished batches wait (default: <out>.partial)")
    args = p.parse_args(argv)
    params = start("extract", args)
    images = list_images(args.images)
    ids = [image_id for image_id, _ in images]
    captions = None if args.captions is None else read_captions(args.captions, ids, params.data.captions_per_image)
    embedder = None if params.extract.fasttext_model is None else OcrEmbedder.load(params.extract.fasttext_model)
    backbone = make_backbone(params.extract, args.regions)
    engine = make_engine(params.extract)
    provenance = {
        "ocr_engine": {"name": engine.name, "version": engine.version},
        "backbone": {"name": backbone.name, "version": backbone.version, "regions": backbone.regions},
    }
    # what a finished batch depends on: a change here makes the kept batches stale (threads or batch size do not)
    e = params.extract
    fingerprint = {
        **provenance,
        "image_size": e.image_size,
        "grid": e.grid,
        "max_side": e.max_side,
        "ocr": params_dict(e.ocr),
    }
    work = args.work or args.out.with_name(args.out.name + ".partial")
    job = SplitJob(args.split, images, args.images, captions, params.extract.batch_size, params.features.max_ocr_tokens)
    with atomic_dir(args.out) as out:
        annotations, report = extract_split(job, backbone, engine, params.extract.ocr, embedder, out, work, fingerprint)
        info = {"source": "extract", **provenance, "params": params_dict(params.extract)}
        write_annotations(out / ANNOTATIONS_FILE, annotations, info)
        write_text(out / REPORT_FILE, json.dumps({"split": args.split, **provenance, **report}, indent=2) + "\n")
    shutil.rmtree(work)
    log.info(
        "%s: %d of %d images extracted (%d resumed, %d unreadable) with %s %s and %s",
        args.split,
        report["extracted"],
        report["images"],
        report["resumed"],
        len(report["unreadable"]),
        engine.name,
        engine.version,
        backbone.name,
    )
