"""The synthetic CTC world: a deterministic (seeded) generator of the release format for every source.

Sources and splits:
  ctc       train, val, test (CTC-5K-like) and dev (CTC-1K-like): every image carries scene text
  f30k      train: everyday scenes, no scene text (Flickr30K-like)
  textcaps  train: every image carries text and most captions read it (TextCaps-like)

CTC images come in groups of `group_size` that share their scene (same objects, attributes and place; fresh region
noise) and differ only by their scene text. In an *explicit* group (share `explicit_fraction`) two of each
image's captions name one of its scene-text words, so only the scene text tells the group's images apart; in the
other groups no caption reads the text. `dev` is drawn from whole explicit groups of `test` (1K ⊂ 5K, as CTC-1K is
drawn from CTC-5K's explicit images). The explicit flag itself is never stored: `data.explicit` recomputes it from the
captions and the ground-truth scene text, as the CTC criterion does.

Every image also gets a box per region slot (`layout.py`), in `{split}_boxes.npy`. Every source draws from its own
child of one SeedSequence, so changing one source's size leaves the others as they were, and its boxes from another
child, so the boxes change nothing else (the files written before boxes existed are as they were); the same params
give byte-identical files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from stacmr.data.annotations import ANNOTATIONS_FILE, ImageAnnotation, OcrToken, write_annotations
from stacmr.data.explicit import is_explicit
from stacmr.data.release import boxes_file, write_split
from stacmr.data.sources import CTC, F30K, TEXTCAPS, Source
from stacmr.data.synthetic.captions import describe
from stacmr.data.synthetic.layout import Box, region_boxes
from stacmr.data.synthetic.lexicon import SCENE_TEXT
from stacmr.data.synthetic.ocr import read_word, spurious_token
from stacmr.data.synthetic.scenes import ConceptSpace, Scene, draw_scene, region_slots, render_regions
from stacmr.errors import StacmrError
from stacmr.params import SyntheticParams, params_dict
from stacmr.progress import progress

_WIDTH, _HEIGHT = 640, 480  # nominal image size for OCR and region boxes (COCO images are about this size)


@dataclass(frozen=True)
class _Image:
    group: int
    scene: Scene
    text_words: tuple[str, ...]  # ground-truth scene text
    reads_text: bool  # whether some captions name the scene text


def _ocr_tokens(
    words: tuple[str, ...], rng: np.random.Generator, p: SyntheticParams
) -> tuple[tuple[OcrToken, ...], list[Box]]:
    """What OCR reads off an image with scene text `words`, and the boxes of the words it read (not the spurious
    token's)."""
    tokens: list[OcrToken] = []
    for word in words:
        if rng.random() < p.ocr_miss_rate:
            continue
        text, errors = read_word(word, rng, p.ocr_char_error)
        w = min(_WIDTH - 1, 12 * len(text) + int(rng.integers(0, 40)))
        h = int(rng.integers(12, 60))
        box = (float(rng.integers(0, _WIDTH - w)), float(rng.integers(0, _HEIGHT - h)), float(w), float(h))
        conf = float(np.clip(0.98 - 0.15 * errors - 0.1 * rng.random(), 0.05, 1.0))
        tokens.append(OcrToken(text=text, bbox=box, confidence=round(conf, 3)))
    text_boxes = [token.bbox for token in tokens]
    if rng.random() < p.ocr_spurious_rate:
        w, h = int(rng.integers(8, 40)), int(rng.integers(8, 30))
        box = (float(rng.integers(0, _WIDTH - w)), float(rng.integers(0, _HEIGHT - h)), float(w), float(h))
        spurious = OcrToken(text=spurious_token(rng), bbox=box, confidence=round(float(rng.uniform(0.1, 0.5)), 3))
        tokens.insert(int(rng.integers(0, len(tokens) + 1)), spurious)
    return tuple(tokens), text_boxes


def _captions(image: _Image, n: int, n_reading: int, rng: np.random.Generator) -> list[str]:
    reading = set(rng.choice(n, size=min(n_reading, n), replace=False).tolist()) if image.reads_text else set()
    return [describe(image.scene, image.text_words, k in reading, rng) for k in range(n)]


def _text_words(rng: np.random.Generator, first: str, max_words: int) -> tuple[str, ...]:
    n_more = int(rng.integers(0, max_words))
    more = [SCENE_TEXT[i] for i in rng.choice(len(SCENE_TEXT), size=n_more, replace=False)]
    return (first, *[w for w in more if w != first])


def _ctc_groups(rng: np.random.Generator, n_images: int, forced_explicit: int, p: SyntheticParams) -> list[_Image]:
    """`n_images` CTC images in groups; the first groups are explicit until `forced_explicit` images are."""
    images: list[_Image] = []
    group = 0
    while len(images) < n_images:
        size = min(p.group_size, n_images - len(images))
        explicit = len(images) < forced_explicit or rng.random() < p.explicit_fraction
        scene = draw_scene(rng, p.max_objects, with_text=True)
        # distinct prominent words within a group: the text is what tells its images apart
        firsts = rng.choice(len(SCENE_TEXT), size=size, replace=False)
        for first in firsts:
            words = _text_words(rng, SCENE_TEXT[first], p.max_text_words)
            images.append(_Image(group=group, scene=scene, text_words=words, reads_text=explicit))
        group += 1
    return images


def _plain_images(rng: np.random.Generator, n_images: int, p: SyntheticParams, with_text: bool) -> list[_Image]:
    images = []
    for i in range(n_images):
        scene = draw_scene(rng, p.max_objects, with_text=with_text)
        words = ()
        if with_text:
            first = SCENE_TEXT[rng.integers(len(SCENE_TEXT))]
            words = _text_words(rng, first, p.textcaps_text_words)
        images.append(_Image(group=i, scene=scene, text_words=words, reads_text=with_text))
    return images


@dataclass(frozen=True)
class _Written:
    index: int  # row in the split's region array
    annotation: ImageAnnotation
    image: _Image

    @property
    def explicit(self) -> bool:
        return is_explicit(self.annotation.scene_text, self.annotation.captions)


class _SourceWriter:
    """Renders images of one source into release splits and collects their annotations."""

    def __init__(self, source: Source, out_dir: Path, space: ConceptSpace, p: SyntheticParams, captions: int) -> None:
        self.source, self.space, self.p, self.n_captions = source, space, p, captions
        self.directory = out_dir / source.name
        self.annotations: list[ImageAnnotation] = []
        self._next_id = source.id_base
        self.directory.mkdir(parents=True)

    def write(
        self, split: str, images: list[_Image], rng: np.random.Generator, box_rng: np.random.Generator, n_reading: int
    ) -> list[_Written]:
        """Render `images` (in this order) as `split`; their region boxes are drawn from `box_rng`."""
        p = self.p
        written = []
        with write_split(self.directory, split, len(images), p.regions, p.region_dim, boxes=True) as out:
            for index, image in enumerate(progress(images, desc=f"synthetic {self.source.store(split)}", unit="img")):
                image_id = str(self._next_id)
                self._next_id += 1
                slots = region_slots(image.scene, rng, p.regions)
                regions = render_regions(
                    image.scene, self.space, rng, p.regions, p.region_noise, p.attribute_weight, slots
                )
                captions = _captions(image, self.n_captions, n_reading, rng)
                ocr_tokens, text_boxes = _ocr_tokens(image.text_words, rng, p)
                ann = ImageAnnotation(
                    id=image_id,
                    split=split,
                    file_name=f"{self.source.name}_{image_id}.jpg",
                    width=_WIDTH,
                    height=_HEIGHT,
                    scene_text=image.text_words,
                    ocr_tokens=ocr_tokens,
                    captions=tuple(captions),
                    group=image.group if self.source is CTC else None,
                )
                boxes = region_boxes(image.scene, slots, text_boxes, box_rng, _WIDTH, _HEIGHT)
                out.add(regions, captions, image_id, boxes)
                self.annotations.append(ann)
                written.append(_Written(index, ann, image))
        return written

    def write_subset(self, split: str, parent: str, rows: list[_Written]) -> None:
        """Write images already written as `parent` (same ids, features, captions, boxes) as `split`, e.g. dev ⊂
        test."""
        p = self.p
        parent_ims = np.load(self.directory / f"{parent}_ims.npy", mmap_mode="r")
        parent_boxes = np.load(boxes_file(self.directory, parent), mmap_mode="r")
        with write_split(self.directory, split, len(rows), p.regions, p.region_dim, boxes=True) as out:
            for row in rows:
                out.add(
                    parent_ims[row.index], list(row.annotation.captions), row.annotation.id, parent_boxes[row.index]
                )
                self.annotations.append(replace(row.annotation, split=split))

    def finish(self) -> None:
        info = {"source": self.source.name, "generator": "stacmr synthetic world", "params": params_dict(self.p)}
        write_annotations(self.directory / ANNOTATIONS_FILE, self.annotations, info)


def _shuffled(rng: np.random.Generator, images: list[_Image]) -> list[_Image]:
    return [images[i] for i in rng.permutation(len(images))]


def _draw_dev(rng: np.random.Generator, test: list[_Written], n_dev: int) -> list[_Written]:
    """`n_dev` explicit images of `test`, taken group by group in random group order, kept in test order."""
    by_group: dict[int, list[_Written]] = {}
    for row in test:
        if row.image.reads_text and row.explicit:
            by_group.setdefault(row.image.group, []).append(row)
    dev: list[_Written] = []
    for group in rng.permutation(sorted(by_group)).tolist():
        dev.extend(by_group[group][: n_dev - len(dev)])
        if len(dev) == n_dev:
            break
    if len(dev) < n_dev:
        raise StacmrError(f"synthetic: ctc test has {len(dev)} explicit images, fewer than ctc_images.dev={n_dev}")
    return sorted(dev, key=lambda row: row.index)


def generate_world(p: SyntheticParams, captions_per_image: int, out_dir: str | os.PathLike) -> dict[str, int]:
    """Write every source of the synthetic world under `out_dir/<source>/`; returns image counts per split and the
    number of explicit images (by the CTC criterion) per split."""
    out_dir = Path(out_dir)
    # children 0: concepts, 1-3: CTC, F30K, TextCaps; 4-6: their region boxes (spawned after the first four, which
    # are as they were before boxes existed)
    seeds = np.random.SeedSequence(p.seed).spawn(7)
    space = ConceptSpace.draw(np.random.default_rng(seeds[0]), p.region_dim)
    summary: dict[str, int] = {}

    def count(name: str, rows: list[_Written]) -> None:
        summary[name] = len(rows)
        summary[f"{name}/explicit"] = sum(row.explicit for row in rows)

    rng, box_rng = np.random.default_rng(seeds[1]), np.random.default_rng(seeds[4])
    ctc = _SourceWriter(CTC, out_dir, space, p, captions_per_image)
    sizes = p.ctc_images
    for split, n, forced in (("train", sizes.train, 0), ("val", sizes.val, 0), ("test", sizes.test, sizes.dev)):
        rows = ctc.write(split, _shuffled(rng, _ctc_groups(rng, n, forced, p)), rng, box_rng, n_reading=2)
        count(CTC.store(split), rows)
        if split == "test":
            dev = _draw_dev(rng, rows, sizes.dev)
            ctc.write_subset("dev", "test", dev)
            count(CTC.store("dev"), dev)
    ctc.finish()

    for k, (source, n, with_text) in enumerate(((F30K, p.f30k_images, False), (TEXTCAPS, p.textcaps_images, True))):
        rng, box_rng = np.random.default_rng(seeds[2 + k]), np.random.default_rng(seeds[5 + k])
        writer = _SourceWriter(source, out_dir, space, p, captions_per_image)
        images = _plain_images(rng, n, p, with_text)
        rows = writer.write("train", images, rng, box_rng, n_reading=max(1, captions_per_image - 1))
        writer.finish()
        count(source.store("train"), rows)
    return summary
