"""STARNet (StacMR, WACV 2021): VSRN plus a scene-text branch fused into the image embedding, as released
(AndresPMD/StacMR `model.py`, `EncoderImagePrecompAttn`).

Scene text: OCR vectors (B, T, E_ocr) → BatchNorm over the T slots → Linear → LeakyReLU → l2-norm → graph reasoning
blocks → l2-norm → mean over the real tokens = t (B, E), zero for an image without text. Fusion with VSRN's visual
vector v (the region GRU's final state): v ⊙ t + v (release) or v + t, then (data_name f30k_precomp, the release's
training command) BatchNorm1d and l2-norm. The caption decoder and the loss are VSRN's, on the visual regions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stacmr.models.base import DataDims, ImageBatch, config_range
from stacmr.models.layers import GraphReasoning, MaskedBatchNorm1d, l2norm, masked_mean
from stacmr.models.registry import register
from stacmr.models.vsrn import Vsrn, VsrnConfig

# Release: F.leaky_relu with PyTorch's default slope.
_LEAKY_SLOPE = 0.01


@dataclass(frozen=True)
class StarnetConfig(VsrnConfig):
    text_gcn_layers: int = config_range(0, 16)  # graph reasoning blocks over the OCR tokens (release: 4)
    fusion: Literal["product_residual", "sum"]  # product_residual: v ⊙ t + v (release); sum: v + t


@register("starnet")
class Starnet(Vsrn):
    """STARNet. `dims.ocr_slots` (T) sizes the per-slot BatchNorm, so batches must have exactly T OCR slots."""

    label = "STARNet"
    scene_text = True
    config_class = StarnetConfig
    config: StarnetConfig

    def __init__(self, config: StarnetConfig, dims: DataDims) -> None:
        super().__init__(config, dims)
        dim = config.embed_dim
        # Release `bn_scene_text = nn.BatchNorm1d(text_number)` on (B, T, E_ocr): the slots are the channels, each
        # normalised over the batch and the vector dims. Here over the real tokens only (the release averaged its
        # zero padding into the statistics).
        self.ocr_norm = MaskedBatchNorm1d(dims.ocr_slots)
        self.ocr_fc = nn.Linear(dims.ocr_dim, dim)
        self.text_graph = nn.ModuleList(GraphReasoning(dim) for _ in range(config.text_gcn_layers))

    def text_vector(self, images: ImageBatch) -> Tensor:
        """t (B, E): mean of the reasoned, unit-norm OCR tokens; zero where an image has none."""
        mask = images.ocr_mask
        if images.ocr.shape[1] != self.ocr_norm.num_features:
            raise ValueError(f"STARNet was built for {self.ocr_norm.num_features} OCR slots, got {images.ocr.shape[1]}")
        tokens = self.ocr_norm(torch.where(mask[..., None], images.ocr, 0), mask[..., None])
        x = l2norm(F.leaky_relu(self.ocr_fc(tokens), _LEAKY_SLOPE))
        for block in self.text_graph:
            x = block(x, mask)
        # The release averages all T slots, padding included; here only the real tokens count.
        return masked_mean(l2norm(x), mask)

    def embed_images(self, images: ImageBatch, reasoned: Tensor) -> Tensor:
        v = self.visual_vector(reasoned, images.region_mask)
        t = self.text_vector(images)
        fused = v * t + v if self.config.fusion == "product_residual" else v + t
        return self.joint_vector(fused)
