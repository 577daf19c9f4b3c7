"""Draw medviewer's application icon and write it in every size the platforms ask for.

The icon is an axial chest slice (body, two lungs, spine) on a dark rounded square, with one
nodule outlined in the viewer's finding colour: what the application does, at a glance.
It is drawn once at 1024 px with Pillow and reduced with a Lanczos filter, so every size is
the same picture. Output (committed; run again only when the design changes)::

    medviewer/resources/icons/medviewer-<size>.png   16 24 32 48 64 128 256 512
    medviewer/resources/icons/medviewer.ico          Windows (16-256)
    medviewer/resources/icons/medviewer.icns         macOS (16-512)

Usage: ``python scripts/make_icons.py``
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from medviewer.resources import ICON_SIZES

OUT = Path(__file__).resolve().parent.parent / "medviewer" / "resources" / "icons"
BIG = 1024


def draw_master() -> Image.Image:
    """The icon at 1024 x 1024 RGBA (transparent outside the rounded square)."""
    image = Image.new("RGBA", (BIG, BIG), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((40, 40, 984, 984), radius=200, fill=(22, 38, 58, 255))
    draw.ellipse((150, 250, 874, 800), fill=(196, 200, 204, 255))  # body
    draw.ellipse((215, 300, 490, 720), fill=(38, 42, 48, 255))  # right lung (image left)
    draw.ellipse((534, 300, 809, 720), fill=(38, 42, 48, 255))  # left lung
    draw.ellipse((470, 640, 554, 724), fill=(245, 245, 240, 255))  # vertebra
    draw.rounded_rectangle((482, 300, 542, 600), radius=30, fill=(150, 110, 110, 255))  # heart
    draw.ellipse((610, 400, 700, 490), fill=(225, 228, 230, 255))  # nodule
    draw.ellipse((575, 365, 735, 525), outline=(255, 86, 48, 255), width=34)  # AI finding
    return image


def main() -> None:
    """Write the PNGs, the .ico and the .icns."""
    OUT.mkdir(parents=True, exist_ok=True)
    master = draw_master()
    for size in ICON_SIZES:
        master.resize((size, size), Image.Resampling.LANCZOS).save(
            OUT / f"medviewer-{size}.png", optimize=True
        )
    master.save(OUT / "medviewer.ico", sizes=[(s, s) for s in ICON_SIZES if s <= 256])
    master.save(OUT / "medviewer.icns")
    print(f"icons written to {OUT}")


if __name__ == "__main__":
    main()
