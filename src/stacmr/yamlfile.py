"""Reading a YAML input file (params, claims): one message naming the file when it cannot be read or is not YAML."""

from __future__ import annotations

import os
from typing import Any

import yaml

from stacmr.errors import StacmrError


def read_yaml(path: str | os.PathLike, what: str, error: type[StacmrError] = StacmrError) -> Any:
    """The parsed content of `path`; a problem raises `error`, `what` naming the file ("params file")."""
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
