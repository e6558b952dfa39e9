"""sha256 of files, streamed in blocks (release arrays can be tens of GB), recorded as provenance in the stores; and of
the package's own source, which identifies the code a checkpoint was trained with."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_BLOCK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of the file at `path`."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def package_source_sha256() -> str:
    """Hex sha256 over every Python source file of the `stacmr` package (relative path and bytes, in path order).
    A training run records it, so that a resume never continues, or reuses, a checkpoint made by other code: DVC
    reruns a train stage when its code changed, and the stage must then train afresh, not resume the old run."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()
