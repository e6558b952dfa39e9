"""`fetch`: bring the raw inputs, in the release format, to `--out` (data.source decides from where)."""

from __future__ import annotations

from stacmr.atomic import atomic_dir
from stacmr.data.synthetic import generate_world
from stacmr.errors import StacmrError
from stacmr.stages.common import log, parser, start


def main(argv: list[str] | None = None) -> None:
    p = parser("fetch", __doc__)
    p.add_argument("--out", required=True, help="directory to write the release-format sources into")
    args = p.parse_args(argv)
    params = start("fetch", args)
    if params.data.source == "release":
        raise StacmrError(
            "params.yaml: data.source 'release' (the real CTC data) is not available yet: the downloader and"
            " readers are tracked in issue #6; use data.source: synthetic"
        )
    with atomic_dir(args.out) as tmp:
        summary = generate_world(params.synthetic, params.data.captions_per_image, tmp)
    for name, count in summary.items():
        log.info("%-24s %6d images", name, count)
