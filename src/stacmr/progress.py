"""Progress bars on a terminal only. In a log (`dvc repro > log`, CI) a bar would write tens of kilobytes of
carriage-return frames per epoch; there the stages' own log lines (one per epoch, one per stage) tell the progress."""

from __future__ import annotations

from typing import Any

from tqdm import tqdm


def progress(iterable: Any = None, **kwargs: Any) -> tqdm:
    """`tqdm(iterable, **kwargs)`, shown only when stderr is a terminal (unless `disable` says otherwise)."""
    return tqdm(iterable, **{"disable": None, **kwargs})
