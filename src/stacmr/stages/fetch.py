"""`fetch`: bring the raw inputs, in the release format, to `--out` (data.source decides from where).

`synthetic` generates them; `release` takes the real files placed under `--data` or downloads them into
`--downloads` (kept between runs, so an interrupted download resumes), unpacks and verifies them
(`stacmr.data.release_sources`). Splits whose region or OCR vector sizes differ are refused before `--out` appears.
"""

from __future__ import annotations

from pathlib import Path

from stacmr.atomic import atomic_dir
from stacmr.data.release import check_sizes_agree
from stacmr.data.release_sources import fetch_release
from stacmr.data.synthetic import generate_world
from stacmr.errors import StacmrError
from stacmr.stages.common import log, parser, start


def main(argv: list[str] | None = None) -> None:
    p = parser("fetch", __doc__)
    p.add_argument("--out", required=True, help="directory to write the release-format sources into")
    p.add_argument("--data", type=Path, help="data.source release: the folder of files the user placed (data/)")
    p.add_argument("--downloads", type=Path, help="data.source release: downloads and unpacked archives, kept")
    args = p.parse_args(argv)
    params = start("fetch", args)
    if params.data.source == "release" and (args.data is None or args.downloads is None):
        raise StacmrError("data.source release: `stacmr fetch` needs --data and --downloads (see dvc.yaml)")
    with atomic_dir(args.out) as tmp:
        if params.data.source == "release":
            summary = fetch_release(params.release, params.data.captions_per_image, args.data, args.downloads, tmp)
        else:
            summary = generate_world(params.synthetic, params.data.captions_per_image, tmp)
        check_sizes_agree(tmp, shown_as=args.out)
    for name, count in summary.items():
        log.info("%-24s %6d images", name, count)
