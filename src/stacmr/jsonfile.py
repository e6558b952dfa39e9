"""Reading a JSON input file the way every stage must: one message naming the file when it is missing or not JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from stacmr.errors import StacmrError


def read_json(path: str | os.PathLike, what: str) -> Any:
    """The parsed content of `path`; `what` names the file in the message when it is missing ("annotation file")."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StacmrError(f"{path}: {what} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StacmrError(f"{path}: not valid JSON ({exc})") from None
