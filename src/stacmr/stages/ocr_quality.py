"""`ocr-quality`: render the OCR test set (`extract.rendered`) and write each engine's word recall and precision
on it to `--out` (JSON). `--rendered DIR` keeps the rendered images and their truth there; otherwise they are
temporary."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from stacmr.atomic import write_text
from stacmr.extract.ocr import ENGINES, make_engine
from stacmr.extract.ocr_quality import ocr_quality
from stacmr.extract.rendered import render_set
from stacmr.params import params_dict
from stacmr.stages.common import log, parser, start


def main(argv: list[str] | None = None) -> None:
    p = parser("ocr-quality", __doc__)
    p.add_argument("--out", required=True, type=Path, help="quality report JSON to write")
    p.add_argument("--rendered", type=Path, help="keep the rendered set in this folder")
    args = p.parse_args(argv)
    params = start("ocr-quality", args)
    with tempfile.TemporaryDirectory(prefix="stacmr-rendered-") as tmp:
        folder = args.rendered or Path(tmp)
        truth = render_set(params.extract.rendered, params.data.captions_per_image, folder)
        results = []
        for name in ENGINES:
            engine = make_engine(params.extract, name)
            results.append(ocr_quality(engine, params.extract.ocr, folder / "images", truth))
            log.info(
                "%s %s: word recall %s, precision %s",
                engine.name,
                engine.version,
                results[-1]["word_recall"],
                results[-1]["word_precision"],
            )
    doc = {
        "rendered": params_dict(params.extract.rendered),
        "filter": params_dict(params.extract.ocr),
        "engines": results,
    }
    write_text(args.out, json.dumps(doc, indent=2) + "\n")
