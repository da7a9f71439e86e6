"""How long an `+nn` codec takes to decode a Kodak image (issue 30: base decoder plus network in
1 s or less for a 768x512 image on one core).

Run from the repository root as

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/nn_decode_cost.py [KODAK_DIR] [--codec jpeg+nn] [--quality 50]

Every image is encoded once at the quality, then its whole .mlc file is decoded (container
checks, the base decoder, the network with the weights' views) and the decode's CPU time taken.
The network is loaded and run once before timing. Prints the mean and the slowest image.
"""

from __future__ import annotations

import time

from nn_encode_cost import _arg, _kodak  # its sibling in benchmarks/: the same arguments

from mlcompress.image import read_image
from mlcompress.registry import get


def main() -> None:
    kodak = _kodak()
    codec = get(_arg("--codec", "jpeg+nn"))
    quality = float(_arg("--quality", str(codec.default_quality)))
    quality = int(quality) if codec.quality_integer else quality
    files = sorted(kodak.glob("*.png"))
    if not files:
        raise SystemExit(f"no PNG images in {kodak}")
    codec.decode(codec.encode(read_image(files[0])[:64, :64], quality))  # torch import, weights load, first run
    times = []
    for f in files:
        blob = codec.encode(read_image(f), quality)
        t0 = time.process_time()
        codec.decode(blob)
        times.append(time.process_time() - t0)
        print(f"{f.name}: {times[-1]:.3f} s", flush=True)
    print(f"{codec.name} at quality {quality}, {len(times)} images from {kodak}: mean {sum(times) / len(times):.3f} s, "
          f"slowest {max(times):.3f} s of CPU per decode")


if __name__ == "__main__":
    main()
