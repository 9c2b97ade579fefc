"""Builds the bundled demo datasets, progan_tf/demo_data/emoji32 and emoji64, from Twemoji graphics.

The images come from the npm package `emoji-datasource-twitter` (Twemoji graphics by Twitter,
Inc. and other contributors, CC-BY 4.0): every emoji outside the Component category (skin-tone
variants excluded), composited on white and resized to 32x32, labelled by its Unicode category
(Flags included), with the 25 hearts of "Smileys & Emotion" as a class of their own: 10 classes,
so that a conditional model draws faces, hearts and flags in rows of their own. Written
GZIP-compressed to stay small.

    npm pack emoji-datasource-twitter@16.0.0 && tar xzf emoji-datasource-twitter-16.0.0.tgz
    python tools/make_demo_dataset.py --package=package --overwrite
    python tools/make_demo_dataset.py --package=package --resolution=64 --overwrite \\
        --dest=progan_tf/demo_data/emoji64
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from absl import app, flags

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from progan_tf import cli, dataset_io  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "package", None, "The extracted npm package folder (holds emoji.json).", required=True
)
flags.DEFINE_string(
    "dest",
    str(Path(__file__).resolve().parents[1] / "progan_tf" / "demo_data" / "emoji32"),
    "Output.",
)
flags.DEFINE_integer("resolution", 32, "Output resolution.")
flags.DEFINE_bool("overwrite", False, "Replace an existing --dest.")

EXCLUDED = ("Component",)  # hair and skin-tone swatches, not emoji


def main(argv):
    cli.quiet_tensorflow()
    del argv
    package = Path(FLAGS.package)
    emoji = json.loads((package / "emoji.json").read_text())
    chosen = [e for e in emoji if e["category"] not in EXCLUDED and e.get("has_img_twitter")]

    def label(entry: dict) -> str:
        return "Hearts" if entry["subcategory"] == "heart" else entry["category"]

    categories = sorted({label(e) for e in chosen})
    images, labels = [], []
    for entry in sorted(chosen, key=lambda e: e["sort_order"]):
        path = package / "img" / "twitter" / "64" / entry["image"]
        images.append(dataset_io.load_image(path, FLAGS.resolution, 3, "center"))
        labels.append(categories.index(label(entry)))
    meta = dataset_io.write_arrays(
        FLAGS.dest,
        np.stack(images),
        labels,
        name="emoji",
        num_labels=len(categories),
        label_names=categories,
        overwrite=FLAGS.overwrite,
        compression="GZIP",
    )
    print(f"wrote {meta['num_images']} emoji in {len(categories)} categories to {FLAGS.dest}")


if __name__ == "__main__":
    app.run(main)
