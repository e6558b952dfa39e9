"""Region boxes: where each region slot of a synthetic image lies, x, y, w, h in whole pixels inside the image.

Every object of the scene is a box; its first slot (part 0) shows it whole, its other slots (its parts) show sub-boxes
inside it, 30-70% of its width and height. An object covers 20-60% of the image's width and height, anywhere in it;
the text carrier is where its scene text is: the bounding box of the OCR boxes of its words (the spurious token
left out), grown by up to 10% of the image's side on each side (a plain object when OCR read none of its words). The
place's first slot is the whole image, its other slots large views of it (50-100% of each side). Every slot of the
synthetic world shows an object, a part or the place, so none is without a box.
"""

from __future__ import annotations

import numpy as np

from stacmr.data.synthetic.scenes import Scene

Box = tuple[float, float, float, float]  # x, y, w, h in pixels


def _inside(rng: np.random.Generator, box: Box, low: float, high: float) -> Box:
    """A box of `low`-`high` of `box`'s width and height, anywhere inside it."""
    x, y, w, h = box
    sw, sh = max(1.0, np.floor(w * rng.uniform(low, high))), max(1.0, np.floor(h * rng.uniform(low, high)))
    return x + float(rng.integers(0, int(w - sw) + 1)), y + float(rng.integers(0, int(h - sh) + 1)), sw, sh


def _around(rng: np.random.Generator, text_boxes: list[Box], width: int, height: int) -> Box:
    """The bounding box of `text_boxes`, each side grown by up to 10% of the image's side, clipped to the image."""
    boxes = np.array(text_boxes)
    x0, y0 = boxes[:, 0].min() - rng.uniform(0, 0.1) * width, boxes[:, 1].min() - rng.uniform(0, 0.1) * height
    x1 = (boxes[:, 0] + boxes[:, 2]).max() + rng.uniform(0, 0.1) * width
    y1 = (boxes[:, 1] + boxes[:, 3]).max() + rng.uniform(0, 0.1) * height
    x0, y0 = max(0.0, np.floor(x0)), max(0.0, np.floor(y0))
    x1, y1 = min(float(width), np.ceil(x1)), min(float(height), np.ceil(y1))
    return x0, y0, x1 - x0, y1 - y0


def region_boxes(
    scene: Scene, slots: np.ndarray, text_boxes: list[Box], rng: np.random.Generator, width: int, height: int
) -> np.ndarray:
    """The boxes (R, 4) float32 of an image's `slots` (`scenes.region_slots`), its carrier around `text_boxes` (the
    OCR boxes of its scene-text words); drawn from `rng`, a stream of their own."""
    image: Box = (0.0, 0.0, float(width), float(height))
    objects = [
        _around(rng, text_boxes, width, height)
        if index == scene.carrier and text_boxes
        else _inside(rng, image, 0.2, 0.6)
        for index in range(len(scene.objects))
    ]
    boxes = []
    for owner, part in slots:
        if part == 0:
            boxes.append(objects[owner] if owner >= 0 else image)
        elif owner >= 0:
            boxes.append(_inside(rng, objects[owner], 0.3, 0.7))
        else:
            boxes.append(_inside(rng, image, 0.5, 1.0))
    return np.array(boxes, dtype=np.float32)
