"""The BUTD path: region features a user already has (the paper's bottom-up-attention Faster R-CNN regions,
36 × 2048 per image), in the release layout `{split}_ims.npy` (N, R, D) with `{split}_ids.txt` beside it.

Rows are looked up by image id (the image's path under the image folder, without its suffix), so the image folder
and the feature file may list images in different orders; an image without a row is an error naming both files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from stacmr.errors import StacmrError


class PrecomputedRegions:
    name = "precomputed"

    def __init__(self, ims_path: Path) -> None:
        ids_path = ims_path.with_name(ims_path.name.removesuffix("_ims.npy") + "_ids.txt")
        try:
            self._ims = np.load(ims_path, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            raise StacmrError(f"{ims_path}: region feature file is missing (--regions)") from None
        except (ValueError, OSError, EOFError) as exc:
            raise StacmrError(f"{ims_path}: not a readable .npy array: {exc}") from None
        if self._ims.ndim != 3:
            raise StacmrError(f"{ims_path}: expected region features of shape (N, R, D), got {self._ims.shape}")
        if not ids_path.is_file():
            raise StacmrError(f"{ids_path}: image id file of {ims_path.name} is missing")
        ids = ids_path.read_text(encoding="utf-8").splitlines()
        if len(ids) != self._ims.shape[0]:
            raise StacmrError(f"{ids_path}: {len(ids)} ids for {self._ims.shape[0]} rows of {ims_path.name}")
        self._row = {image_id: row for row, image_id in enumerate(ids)}
        self._files = (ims_path, ids_path)
        _, self.regions, self.dim = self._ims.shape
        # the file is the "model"; the features stage records its sha256 as an input, so its name is enough here
        self.version = f"{ims_path.name} ({self._ims.shape[0]} × {self.regions} × {self.dim})"

    def regions_of(self, images: Sequence[Image.Image], ids: Sequence[str]) -> np.ndarray:
        missing = [i for i in ids if i not in self._row]
        if missing:
            ims_path, ids_path = self._files
            raise StacmrError(f"{ids_path}: no row of {ims_path.name} for image {missing[0]!r}")
        return np.stack([np.asarray(self._ims[self._row[i]], dtype=np.float32) for i in ids])
