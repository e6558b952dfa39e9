"""Build `offline.html`, the page template of `dvc plots show` (`.dvc/config`: `plots.html_template`), with Vega,
Vega-Lite and vega-embed inlined: DVC's own page loads them from a CDN and stays blank offline.

The versions are the newest of the majors DVC's page names (vega 5, vega-lite 5, vega-embed 6: its templates are
Vega-Lite v5 specs). `npm pack` fetches each package; its sha512 must match the pin below, and the minified browser
build inside is inlined with its licence. Run from anywhere, with npm: `python .dvc/plots/build_offline.py`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

OUT = Path(__file__).with_name("offline.html")
PACKAGES = (  # name, version, build inside the package, npm integrity of the tarball
    ("vega", "5.33.0", "build/vega.min.js",
     "sha512-jNAGa7TxLojOpMMMrKMXXBos4K6AaLJbCgGDOw1YEkLRjUkh12pcf65J2lMSdEHjcEK47XXjKiOUVZ8L+MniBA=="),
    ("vega-lite", "5.23.0", "build/vega-lite.min.js",
     "sha512-l4J6+AWE3DIjvovEoHl2LdtCUkfm4zs8Xxx7INwZEAv+XVb6kR6vIN1gt3t2gN2gs/y4DYTs/RPoTeYAuEg6mA=="),
    ("vega-embed", "6.29.0", "build/vega-embed.min.js",
     "sha512-PmlshTLtLFLgWtF/b23T1OwX53AugJ9RZ3qPE2c01VFAbgt3/GSNI/etzA/GzdrkceXFma+FDHNXUppKuM0U6Q=="),
)  # fmt: skip
# DVC fills these in the template (dvc_render.html.HTML): none may occur in the inlined code
PLACEHOLDERS = ("{plot_divs}", "{scripts}", "{refresh_tag}")
PAGE = """<!DOCTYPE html>
<!-- dvc plots show page (.dvc/config plots.html_template), written by .dvc/plots/build_offline.py: Vega, Vega-Lite
     and vega-embed inlined so that it renders offline. Their licences:
{licences}
-->
<html>
<head>
    {{refresh_tag}}
    <meta charset="utf-8">
    <title>DVC Plot</title>
{scripts}
    <style>
        table {{
            border-spacing: 15px;
        }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def _fetch(name: str, version: str, member: str, integrity: str, tmp: Path) -> tuple[str, str]:
    """(minified build, licence text) of one package, its tarball checked against `integrity`."""
    packed = subprocess.run(["npm", "pack", "--json", "--pack-destination", str(tmp), f"{name}@{version}"],
                            check=True, capture_output=True, text=True)  # fmt: skip
    info = json.loads(packed.stdout)[0]
    if info["integrity"] != integrity:
        sys.exit(f"{name}@{version}: npm integrity {info['integrity']} is not the pinned {integrity}")
    with tarfile.open(tmp / info["filename"]) as tar:
        code = tar.extractfile(f"package/{member}").read().decode("utf-8")
        licence = tar.extractfile("package/LICENSE").read().decode("utf-8")
    code = "\n".join(line for line in code.splitlines() if not line.startswith("//# sourceMappingURL="))
    for bad in ("</script", "<!--", *PLACEHOLDERS):
        if bad in code:
            sys.exit(f"{name}@{version}: {member} contains {bad!r}, which would break the inlined page")
    return code, licence


def main() -> None:
    scripts, licences = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, version, member, integrity in PACKAGES:
            code, licence = _fetch(name, version, member, integrity, Path(tmp))
            scripts.append(f"    <!-- {name}@{version} {member} -->\n    <script>{code}</script>")
            licences.append(f"{name}@{version}:\n{licence.replace('--', '- -').strip()}\n")
    OUT.write_text(PAGE.format(licences="\n".join(licences), scripts="\n".join(scripts)), encoding="utf-8")
    print(f"{OUT}: {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
