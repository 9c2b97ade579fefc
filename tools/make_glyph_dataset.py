"""A second small dataset of another kind: brush-style Chinese glyphs, one channel, 32x32.

    apt-get install fonts-arphic-ukai            # Debian's AR PL UKai font (Arphic Public License)
    python tools/make_glyph_dataset.py --dest=datasets/glyphs32

Renders the first --num_images CJK Unified Ideographs (U+4E00 on) that the font draws, black
on white, centred and scaled to fill --resolution, and writes them with progan_tf's dataset
writer. Used to check that a recipe tuned on the bundled emoji is not fitted to emoji
(docs/quality.md). Nothing is downloaded at run time.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from absl import app, flags
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from progan_tf import cli, dataset_io  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("font", "/usr/share/fonts/truetype/arphic/ukai.ttc", "TrueType font file.")
flags.DEFINE_string(
    "dest", None, "Output dataset directory (must not exist unless --overwrite).", required=True
)
flags.DEFINE_integer("num_images", 2000, "Glyphs to render.", lower_bound=16)
flags.DEFINE_integer("resolution", 32, "Output resolution, a power of two.")
flags.DEFINE_bool("overwrite", False, "Replace an existing --dest.")


def render(
    font: ImageFont.FreeTypeFont, char: str, resolution: int, scale: int = 4
) -> np.ndarray | None:
    """uint8 [R, R, 1] of `char` (black on white), or None if the font draws nothing for it."""
    size = resolution * scale
    canvas = Image.new("L", (size * 2, size * 2), 255)
    ImageDraw.Draw(canvas).text((size // 2, size // 2), char, font=font, fill=0)
    box = Image.eval(canvas, lambda v: 255 - v).getbbox()
    if box is None:
        return None
    glyph = canvas.crop(box)
    side = max(glyph.size)
    square = Image.new("L", (side, side), 255)
    square.paste(glyph, ((side - glyph.size[0]) // 2, (side - glyph.size[1]) // 2))
    margin = int(side * 0.08)
    framed = Image.new("L", (side + 2 * margin, side + 2 * margin), 255)
    framed.paste(square, (margin, margin))
    return np.asarray(framed.resize((resolution, resolution), Image.LANCZOS), np.uint8)[..., None]


def main(argv):
    cli.quiet_tensorflow()
    del argv
    try:
        font = ImageFont.truetype(FLAGS.font, FLAGS.resolution * 4)
    except OSError:
        print(
            f"error: --font={FLAGS.font} cannot be read (apt-get install fonts-arphic-ukai)",
            file=sys.stderr,
        )
        sys.exit(1)
    # a private-use point: the font's "no glyph" box
    missing = render(font, chr(0xE000), FLAGS.resolution)
    glyphs, code = [], 0x4E00
    while len(glyphs) < FLAGS.num_images and code <= 0x9FFF:
        image = render(font, chr(code), FLAGS.resolution)
        if (
            image is not None
            and image.min() < 128
            and not (missing is not None and np.array_equal(image, missing))
        ):
            glyphs.append(image)
        code += 1
    meta = dataset_io.write_arrays(
        FLAGS.dest, np.stack(glyphs), None, name=Path(FLAGS.dest).name, overwrite=FLAGS.overwrite
    )
    print(
        f"wrote {meta['num_images']} glyphs at {FLAGS.resolution}x{FLAGS.resolution} to "
        f"{FLAGS.dest}"
    )


if __name__ == "__main__":
    app.run(main)
