"""Speed of `stacmr extract` on 2 CPU cores: images/s of the visual backbone and of the OCR engine, measured
separately on rendered scenes, and the OCR word recall and precision on them.

Baseline, measured in the same run on the same images: reading each PNG and resizing it to the backbone's input
(the floor of any extraction). Prints backbone and OCR throughput as ratios of it. Torch and onnxruntime are held to
`--threads` (default 2) intra-op threads. The default run samples 16 scenes (640 × 480) of the rendered set of
params.yaml; `--images N` for more.

Usage: .venv/bin/python benchmarks/extract_speed.py [--params params.yaml] [--images 16] [--threads 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import torch

from stacmr.extract.backbone import make_backbone
from stacmr.extract.efficientnet import image_tensor
from stacmr.extract.images import load_image
from stacmr.extract.ocr import make_engine
from stacmr.extract.ocr_quality import ocr_quality
from stacmr.extract.rendered import render_set
from stacmr.params import load_params


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--images", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    params = load_params(args.params).extract
    params = dataclasses.replace(params, threads=args.threads, backbone="efficientnet_lite0")
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="stacmr-bench-") as tmp:
        rendered = dataclasses.replace(params.rendered, images=args.images)
        truth = render_set(rendered, 5, Path(tmp))
        paths = [Path(tmp) / "images" / f"{image_id}.png" for image_id in sorted(truth)]
        backbone = make_backbone(params, None)
        engine = make_engine(params)

        start = time.perf_counter()
        for path in paths:
            image_tensor(load_image(path), params.image_size)
        t_read = time.perf_counter() - start

        images = [load_image(path) for path in paths]
        backbone.regions_of(images[:1], ["warm-up"])
        start = time.perf_counter()
        for k in range(0, len(images), params.batch_size):
            backbone.regions_of(images[k : k + params.batch_size], [str(i) for i in range(k, k + params.batch_size)])
        t_backbone = time.perf_counter() - start

        engine.read(images[0])
        start = time.perf_counter()
        for image in images:
            engine.read(image)
        t_ocr = time.perf_counter() - start

        quality = ocr_quality(engine, params.ocr, Path(tmp) / "images", truth)

    n = len(images)
    w, h = rendered.size
    print(f"{n} rendered scenes {w}×{h} (sampled; seed {rendered.seed}), {args.threads} threads")
    print(f"read + resize to {params.image_size}² (baseline)  {n / t_read:8.1f} images/s")
    print(
        f"backbone {backbone.name} {backbone.version} ({backbone.regions}×{backbone.dim}, batch {params.batch_size})"
        f"  {n / t_backbone:8.2f} images/s   {t_backbone / t_read:6.1f}× the baseline's time"
    )
    print(f"OCR {engine.name} {engine.version}  {n / t_ocr:8.2f} images/s   {t_ocr / t_read:6.1f}× the baseline's time")
    print(
        f"OCR word recall {quality['word_recall']}, precision {quality['word_precision']}"
        f" ({quality['truth_words']} words drawn, {quality['read_words']} kept)"
    )
    print(f"OCR word recall by font {quality['recall_by_font']}")


if __name__ == "__main__":
    main()
