"""The numeric precision a model computes at (`train.precision`): what each setting means, in one place.

  fp32  IEEE float32 throughout. On a GPU, TF32 is off for CUDA matmuls and for cuDNN (convolutions and RNNs: the
        GRUs), whose PyTorch default is TF32 on; so fp32 is float32 there too, and a GPU run matches a CPU run to
        float32 rounding
  tf32  CUDA matmuls and cuDNN in TF32 (inputs rounded to a 10-bit mantissa, float32 accumulation): the tensor cores
        of Ampere and later GPUs. A CPU has no TF32: there tf32 computes exactly as fp32
  bf16  fp32's flags, and autocast to bfloat16 around the forward and its loss (torch's CUDA or CPU autocast); the
        weights, their gradients and the optimiser stay float32

`float32_mode` sets the TF32 flags for a scope (in training: the forward, the backward and the optimiser step),
`autocast` the bfloat16 autocast for a forward and its loss (never the backward); `computing` both, for code that
only runs forwards (encoding a store for evaluation). The flags are process-wide and are restored on leaving; on a
CPU they change nothing, so fp32 on a CPU is the plain float32 path.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import torch

_ALLOW_TF32 = {"fp32": False, "tf32": True, "bf16": False}  # each `train.precision` → TF32 allowed in its scopes


@contextmanager
def float32_mode(precision: str) -> Iterator[None]:
    """TF32 allowed (tf32) or not (fp32, bf16) for CUDA matmuls and cuDNN inside; the flags as before after."""
    allow = _ALLOW_TF32[precision]
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = matmul.allow_tf32, cudnn.allow_tf32
    matmul.allow_tf32 = cudnn.allow_tf32 = allow
    try:
        yield
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = saved


def autocast(precision: str, device: torch.device) -> AbstractContextManager[Any]:
    """bf16: autocast to bfloat16 on `device`'s kind (cuda or cpu); fp32 and tf32: nothing."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextmanager
def computing(precision: str, device: torch.device) -> Iterator[None]:
    """`float32_mode` and `autocast` together: forwards (no backward) at `precision` on `device`."""
    with float32_mode(precision), autocast(precision, device):
        yield


def run_precision(train: Mapping[str, Any]) -> str:
    """The precision of a run from its recorded `train` params (a checkpoint's `RunSpec.train`); fp32 for a run
    recorded before `train.precision` existed (it computed without autocast)."""
    return train.get("precision", "fp32")
