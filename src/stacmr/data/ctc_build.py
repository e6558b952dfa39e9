"""CTC from its public sources: COCO captions + COCO-Text v2 → the CTC image list, with the explicit flag.

CTC (StacMR, paper README) is the COCO images that have both COCO captions and legible English COCO-Text
transcriptions; an image is explicit when a caption shares a word with its scene text (`stacmr.data.explicit`).
`build_ctc` lists those images; `cross_check` compares the list with a release's `{split}_ids.txt`, so that a user
without CTC_anns.json can rebuild the image list and see how far it agrees with the released splits (which images
were drawn into which split is only in the release). `split_annotations` turns the list into the annotation entries
`features` reads, one per released (split, image id), from COCO-Text and the image metadata.
"""

from __future__ import annotations

from dataclasses import dataclass

from stacmr.data.annotations import ImageAnnotation, ImageMeta
from stacmr.data.coco import CocoImage, coco_image_id
from stacmr.data.explicit import is_explicit


@dataclass(frozen=True, kw_only=True)
class CtcImage(ImageMeta):  # id: the decimal COCO id
    scene_text: tuple[str, ...]  # legible English COCO-Text transcriptions
    captions: tuple[str, ...]  # its COCO captions, in annotation order
    explicit: bool  # a caption shares a word with the scene text


def build_ctc(
    captions: dict[str, CocoImage], scene_text: dict[str, tuple[str, ...]], min_captions: int
) -> list[CtcImage]:
    """The images with at least `min_captions` captions and some legible English scene text, by COCO id."""
    images = []
    for image_id in sorted(captions.keys() & scene_text.keys(), key=int):
        coco = captions[image_id]
        if len(coco.captions) < min_captions:
            continue
        texts = scene_text[image_id]
        images.append(
            CtcImage(
                id=image_id,
                scene_text=texts,
                captions=tuple(coco.captions),
                explicit=is_explicit(texts, coco.captions),
                **coco.metadata(),
            )
        )
    return images


def cross_check(images: list[CtcImage], release_ids: dict[str, list[str]]) -> dict[str, dict[str, int]]:
    """Per released split: its images, how many the rebuilt list has, and how many of those are explicit
    (CTC-1K, split `dev`, was drawn from explicit images only)."""
    by_id = {image.id: image for image in images}
    report = {}
    for split, ids in release_ids.items():
        found = [by_id[i] for i in (coco_image_id(r) for r in ids) if i in by_id]
        report[split] = {"images": len(ids), "rebuilt": len(found), "explicit": sum(im.explicit for im in found)}
    return report


def split_annotations(
    release_ids: dict[str, list[str]], scene_text: dict[str, tuple[str, ...]], images: dict[str, CocoImage]
) -> list[ImageAnnotation]:
    """One annotation per released (split, id), in release order, the id kept as the release writes it: scene text
    from COCO-Text, metadata (file name, coco_url, size) from `images` where known. An image without COCO-Text
    words gets none (it then counts as not explicit)."""
    out = []
    for split, ids in release_ids.items():
        for raw in ids:
            image_id = coco_image_id(raw)
            meta = images.get(image_id) if image_id is not None else None
            out.append(
                ImageAnnotation(
                    id=raw, split=split, scene_text=scene_text.get(image_id, ()), **(meta.metadata() if meta else {})
                )
            )
    return out
