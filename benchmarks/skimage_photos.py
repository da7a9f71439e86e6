"""Write scikit-image's colour photos as PNGs into a folder: a second benchmark set of photos that
no network here was trained on (issue 30 asks for BD-rates on them beside Kodak).

    python benchmarks/skimage_photos.py /tmp/skimage
    mlcompress bench --data /tmp/skimage --out bench/results-skimage \
        --codecs jpeg,jpeg+nn,webp,webp+nn,avif,avif444,avif+nn --view-points 0

``cat`` is left out (the same photo as ``chelsea``), and so are the synthetic and grey images.
"""

from __future__ import annotations

import sys
from pathlib import Path

PHOTOS = ("astronaut", "chelsea", "coffee", "hubble_deep_field", "immunohistochemistry", "retina", "rocket")


def main(folder: str) -> None:
    from PIL import Image
    from skimage import data

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for name in PHOTOS:
        Image.fromarray(getattr(data, name)()).save(out / f"{name}.png")
        print(out / f"{name}.png")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "skimage-photos")
