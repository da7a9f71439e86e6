"""How long `mlcompress decompress` takes for a 12-megapixel file, against its parts (issue 26, item 7).

Run from the repository root as

    nice -n 19 .venv/bin/python benchmarks/decompress_png.py [KODAK_DIR] [--codec NAME]

A Kodak photo (kodim01) is enlarged to 4000 x 3000 (bicubic), coded once with the codec (default:
the default codec), and then timed: its base decode (``mlcompress.decode``), a PNG write of the
decoded image at Pillow's default zlib level, and the whole ``decompress`` command (read, decode,
PNG, atomic write) at its default level and at ``--png-level 9``. Prints a Markdown table and the
target: ``decompress`` at most 2x (base decode + default-level PNG write). Times are wall-clock
and CPU seconds of this process, one run each (the level-9 write alone takes tens of seconds).
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import mlcompress
from mlcompress import cli

_ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
KODAK = Path(_ARGS[0]) if _ARGS else Path("../shared/data/kodak")
CODEC = sys.argv[sys.argv.index("--codec") + 1] if "--codec" in sys.argv else mlcompress.default_codec()
SIZE = (4000, 3000)


def timed(fn):
    """(wall seconds, CPU seconds, result) of one call."""
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


def main() -> None:
    photo = Image.open(KODAK / "kodim01.png").convert("RGB").resize(SIZE, Image.Resampling.BICUBIC)
    img = np.asarray(photo)
    data = mlcompress.encode(img, CODEC)
    mlcompress.decode(mlcompress.encode(img[:64, :64], CODEC))  # lazy imports outside the timings
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / f"photo{mlcompress.get_codec(CODEC).extension}"
        src.write_bytes(data)
        wall, cpu, decoded = timed(lambda: mlcompress.decode(data))
        rows.append(("base decode (mlcompress.decode)", wall, cpu, ""))

        def pillow_default():
            buf = io.BytesIO()
            Image.fromarray(decoded).save(buf, format="PNG")
            return len(buf.getvalue())

        wall, cpu, size = timed(pillow_default)
        rows.append(("PNG write, Pillow's default level", wall, cpu, f"{size:,}"))
        reference = rows[0][1] + rows[1][1], rows[0][2] + rows[1][2]
        for label, extra in (("`decompress` (default level)", []), ("`decompress --png-level 9`", ["--png-level", "9"])):
            out = Path(tmp) / "out.png"
            argv = ["decompress", str(src), "-o", str(out), "--force", "--quiet", *extra]
            wall, cpu, code = timed(lambda: cli.main(argv))
            assert code == 0, argv
            rows.append((label, wall, cpu, f"{out.stat().st_size:,}"))
    print(f"{CODEC}, {SIZE[0]}x{SIZE[1]} ({SIZE[0] * SIZE[1] / 1e6:.0f} MP), file {len(data):,} bytes\n")
    print("| step | wall s | CPU s | PNG bytes |")
    print("|---|---:|---:|---:|")
    for label, wall, cpu, size in rows:
        print(f"| {label} | {wall:.2f} | {cpu:.2f} | {size} |")
    ratio_wall, ratio_cpu = rows[2][1] / reference[0], rows[2][2] / reference[1]
    verdict = "met" if ratio_cpu <= 2.0 else "NOT met"
    print(f"\n`decompress` / (base decode + default-level PNG write): {ratio_wall:.2f}x wall, {ratio_cpu:.2f}x CPU "
          f"(target at most 2x: {verdict})")


if __name__ == "__main__":
    main()
