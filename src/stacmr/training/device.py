"""`device: auto` → CUDA when a GPU is visible, else CPU; `cpu` / `cuda` force one (cuda without a GPU is an error)."""

from __future__ import annotations

import torch

from stacmr.errors import StacmrError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise StacmrError("train.device: 'cuda' was asked for but no CUDA device is visible (use auto or cpu)")
    return torch.device(name)
