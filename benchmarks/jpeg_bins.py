"""What keeping `jpeg+nn`'s restored image inside the JPEG file's quantisation bins gains, on the
training set's held-out photos (never Kodak: this is how codecs/jpegbins.py's SHRINK was chosen).

Run from the repository root as

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/jpeg_bins.py [TRAIN_DIR] [--photos 32]
        [--qualities 5,10,30,50,70,90] [--shrink 0.8]

Every held-out photo (train/restore.py's split of TRAIN_DIR, default ../shared/data/train) is coded
with `jpeg` at each quality, decoded and restored by the installed `restore-jpeg` network, and
then kept in the bins with each SHRINK given (a comma-separated list). Prints, per quality, the
restored PSNR and each SHRINK's gain over it: mean, smallest and largest over the photos.
"""

from __future__ import annotations

import numpy as np
from nn_encode_cost import _arg, _kodak  # its sibling in benchmarks/: the same arguments

from mlcompress.codecs import jpegbins
from mlcompress.codecs.restored import load_network, restore
from mlcompress.image import read_image
from mlcompress.metrics import psnr
from mlcompress.registry import get
from mlcompress.train.restore import _photos, split


def main() -> None:
    folder = _kodak("../shared/data/train")
    held = split(_photos(str(folder)))[1][: int(_arg("--photos", "32"))]
    qualities = [int(q) for q in _arg("--qualities", "5,10,30,50,70,90").split(",")]
    shrinks = [float(s) for s in _arg("--shrink", str(jpegbins.SHRINK)).split(",")]
    jpeg = get("jpeg")
    net, _ = load_network("jpeg")
    rows: dict = {}
    for f in held:
        img = read_image(f)
        for q in qualities:
            data = jpeg.encode(img, q)
            out = restore(jpeg.decode(data), "jpeg", q, net=net)
            gains = [psnr(img, jpegbins.constrain(data, out, s)) - psnr(img, out) for s in shrinks]
            rows.setdefault(q, []).append((psnr(img, out), *gains))
    print(f"{len(held)} held-out photos from {folder}; gain of the bins over the network's image (dB)")
    for q, r in rows.items():
        r = np.array(r)
        parts = [f"SHRINK {s}: mean {r[:, i + 1].mean():+.4f} min {r[:, i + 1].min():+.4f} max {r[:, i + 1].max():+.4f}"
                 for i, s in enumerate(shrinks)]
        print(f"quality {q}: restored {r[:, 0].mean():.3f} dB; " + "; ".join(parts))


if __name__ == "__main__":
    main()
