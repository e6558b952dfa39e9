"""`configure OVERLAY`: merge a partial params file (e.g. configs/release.yaml) into `--params`, validated first.

Mappings merge key by key; any other value replaces the old one. The result is validated whole before it replaces
the params file (atomically), so a bad overlay changes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from stacmr.atomic import write_text
from stacmr.errors import StacmrError
from stacmr.models import check_models
from stacmr.params import ParamsError, parse_params
from stacmr.stages.common import load_checked_params, log, parser


def merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overlay.items():
        out[key] = merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def main(argv: list[str] | None = None) -> None:
    p = parser("configure", __doc__)
    p.add_argument("overlay", type=Path, help="a partial params file whose values win")
    args = p.parse_args(argv)
    load_checked_params(args.params)
    try:
        base = yaml.safe_load(Path(args.params).read_text(encoding="utf-8"))
        overlay = yaml.safe_load(args.overlay.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise StacmrError(f"{args.overlay}: cannot read overlay: {exc}") from None
    if not isinstance(overlay, dict):
        raise StacmrError(f"{args.overlay}: expected a mapping of params sections")
    merged = merge(base, overlay)
    try:
        check_models(parse_params(merged))
    except ParamsError as exc:
        raise ParamsError(f"{args.overlay} applied to {args.params}: {exc}") from None
    write_text(args.params, yaml.safe_dump(merged, sort_keys=False, allow_unicode=True))
    log.info("merged %s into %s", args.overlay, args.params)
