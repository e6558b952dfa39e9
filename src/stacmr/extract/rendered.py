"""The rendered OCR test set: street-like scenes drawn with Pillow, with the words on their signs known.

No downloaded images: each scene is a coloured background, clutter (ellipses, rectangles, polygons, lines) and one to
three signs, each a board with one word in one of several fonts, sizes (16-60 px) and colours (some of weak
contrast), rotated by up to 20 degrees. Signs sit in
separate horizontal bands, so they never overlap. Image n is then blurred by `blur_radii[n % len]` (a Gaussian
radius in pixels; sharp text alone is too easy for a modern engine to tell engines apart). Everything follows from
`extract.rendered.seed`.

Fonts: DejaVu Sans, Sans Bold, Serif, Serif Bold and Sans Mono Bold (Debian's fonts-dejavu-core, found through
Pillow's font search path) and Pillow's built-in scalable font; DejaVu fonts missing on a machine are skipped, and
the font of every word is recorded.

Writes under `out_dir`: `images/<id>.png`, `truth.json` ({id: [{"word", "font", "size", "angle", "blur"}]}) and
`captions.json` ({id: [captions]}), the format `stacmr extract --captions` reads.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from stacmr.atomic import atomic_path, write_text
from stacmr.params import RenderedParams

FONT_FILES = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSansMono-Bold.ttf",
)
BUILTIN_FONT = "pillow-builtin"
# words seen on shop fronts and street signs (the kind of scene text CTC images hold)
WORDS = (
    "coffee",
    "pizza",
    "hotel",
    "exit",
    "stop",
    "open",
    "parking",
    "bakery",
    "market",
    "bus",
    "taxi",
    "pharmacy",
    "books",
    "diner",
    "cinema",
    "garden",
    "police",
    "station",
    "museum",
    "bank",
    "sale",
    "fresh",
    "fruit",
    "bar",
    "school",
    "library",
    "beach",
    "airport",
    "tickets",
    "salon",
    "grill",
    "bistro",
    "sushi",
    "burger",
    "donuts",
    "street",
    "avenue",
    "welcome",
    "garage",
    "florist",
)
COLOURS = {
    "red": (200, 30, 30),
    "green": (30, 150, 60),
    "blue": (30, 60, 200),
    "yellow": (235, 200, 40),
    "orange": (240, 130, 20),
    "purple": (120, 50, 160),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
    "grey": (128, 128, 128),
    "brown": (120, 75, 35),
}
# ink colours readable on each board colour, from strong contrast to weak (orange on yellow, green on blue)
_INKS = {
    "white": ("black", "red", "blue", "green", "orange"),
    "black": ("yellow", "white", "orange", "grey"),
    "yellow": ("black", "red", "blue", "orange"),
    "blue": ("white", "yellow", "green"),
}
SHAPES = ("circle", "square", "triangle", "line")
_CAPTIONS = (
    "a sign that says {word} near a {colour} {shape}",
    "a {board} board reading {word}",
    "a scene with a {colour} {shape} and the word {word}",
    "the word {word} written on a sign",
    "a {colour} {shape} beside a sign for {word}",
)


def _fonts(size: int) -> list[tuple[str, ImageFont.FreeTypeFont]]:
    fonts = []
    for name in FONT_FILES:
        try:
            fonts.append((name, ImageFont.truetype(name, size)))
        except OSError:
            continue
    fonts.append((BUILTIN_FONT, ImageFont.load_default(size)))
    return fonts


def _clutter(draw: ImageDraw.ImageDraw, rng: np.random.Generator, w: int, h: int) -> tuple[str, str]:
    """Draw clutter; returns (colour, shape) of the largest piece, for the captions."""
    names = list(COLOURS)
    main = (names[int(rng.integers(len(names)))], SHAPES[int(rng.integers(len(SHAPES)))])
    for k in range(int(rng.integers(5, 12))):
        colour, shape = main if k == 0 else (names[int(rng.integers(len(names)))], SHAPES[int(rng.integers(4))])
        size = int(rng.integers(60, 160)) if k == 0 else int(rng.integers(10, 60))
        x, y = int(rng.integers(0, w - size)), int(rng.integers(0, h - size))
        fill = COLOURS[colour]
        if shape == "circle":
            draw.ellipse((x, y, x + size, y + size), fill=fill)
        elif shape == "square":
            draw.rectangle((x, y, x + size, y + size), fill=fill)
        elif shape == "triangle":
            draw.polygon([(x, y + size), (x + size // 2, y), (x + size, y + size)], fill=fill)
        else:
            draw.line((x, y, x + size, y + int(rng.integers(0, size))), fill=fill, width=int(rng.integers(2, 6)))
    return main


def _sign(word: str, font: ImageFont.FreeTypeFont, board: tuple, ink: tuple, angle: float) -> Image.Image:
    """A board with `word` on it, rotated by `angle` degrees, transparent around it (RGBA)."""
    left, top, right, bottom = font.getbbox(word)
    pad = max(8, (bottom - top) // 3)
    sign = Image.new("RGBA", (right - left + 2 * pad, bottom - top + 2 * pad), (*board, 255))
    ImageDraw.Draw(sign).text((pad - left, pad - top), word, font=font, fill=(*ink, 255))
    return sign.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)


def render_set(params: RenderedParams, captions_per_image: int, out_dir: Path) -> dict[str, list[dict]]:
    """Render the set into `out_dir` (see the module doc); returns the truth: {id: [word entries]}."""
    rng = np.random.default_rng(params.seed)
    w, h = params.size
    truth: dict[str, list[dict]] = {}
    captions: dict[str, list[str]] = {}
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    for n in range(params.images):
        image_id = f"scene{n:05d}"
        blur = params.blur_radii[n % len(params.blur_radii)]
        background = tuple(int(v) for v in rng.integers(60, 200, size=3))
        image = Image.new("RGB", (w, h), background)
        colour, shape = _clutter(ImageDraw.Draw(image), rng, w, h)
        signs = int(rng.integers(1, 4))
        band = h // signs
        entries = []
        for s in range(signs):
            word = WORDS[int(rng.integers(len(WORDS)))]
            word = word.upper() if rng.random() < 0.5 else word.capitalize()
            size = int(rng.integers(16, min(60, band // 2)))
            fonts = _fonts(size)
            font_name, font = fonts[int(rng.integers(len(fonts)))]
            board_name = ("white", "black", "yellow", "blue")[int(rng.integers(4))]
            inks = _INKS[board_name]
            ink_name = inks[int(rng.integers(len(inks)))]
            angle = float(rng.uniform(-20, 20))
            sign = _sign(word, font, COLOURS[board_name], COLOURS[ink_name], angle)
            sign.thumbnail((w - 20, band - 4))  # a long word in a large font still fits its band
            x = int(rng.integers(10, max(11, w - sign.width - 10)))
            y = s * band + int(rng.integers(0, max(1, band - sign.height)))
            image.paste(sign, (x, y), sign)
            entries.append({"word": word, "font": font_name, "size": size, "angle": round(angle, 2), "blur": blur})
        if blur > 0:
            image = image.filter(ImageFilter.GaussianBlur(blur))
        first = entries[0]["word"].lower()
        with atomic_path(out_dir / "images" / f"{image_id}.png") as tmp:
            image.save(tmp, format="PNG")
        truth[image_id] = entries
        captions[image_id] = [
            _CAPTIONS[k % len(_CAPTIONS)].format(word=first, colour=colour, shape=shape, board=board_name)
            for k in range(captions_per_image)
        ]
    write_text(out_dir / "truth.json", json.dumps(truth, indent=1, sort_keys=True) + "\n")
    write_text(out_dir / "captions.json", json.dumps(captions, indent=1, sort_keys=True) + "\n")
    return truth
