"""The image folder: which files are images, their ids, and reading one without letting a bad file stop a run.

An image's id is its path under the folder without the suffix ("shop/0042.jpg" → "shop/0042"), as the release's
`{split}_ids.txt` lists ids; files are taken in sorted order so that every run sees them in the same order.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from PIL import Image

from stacmr.errors import StacmrError

SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def list_images(folder: Path) -> list[tuple[str, Path]]:
    """(id, path) of every image file under `folder`, sorted by path; ids must be unique."""
    if not folder.is_dir():
        raise StacmrError(f"{folder}: image folder is missing")
    found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())
    seen: dict[str, Path] = {}
    for path in found:
        image_id = path.relative_to(folder).with_suffix("").as_posix()
        if image_id in seen:
            raise StacmrError(f"{path}: has the same id {image_id!r} as {seen[image_id]}; ids are paths without suffix")
        seen[image_id] = path
    if not seen:
        raise StacmrError(f"{folder}: no image files ({', '.join(SUFFIXES)})")
    return list(seen.items())


def load_image(path: Path) -> Image.Image | str:
    """The image at `path` as RGB, fully decoded; or, when it cannot be read, the reason as one line."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return image.convert("RGB")  # decodes every pixel: a truncated file fails here, not later
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
