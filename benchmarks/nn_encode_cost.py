"""How much longer an `+nn` codec takes to encode than its base codec (issue 30, item 5: the
default codec becomes `avif+nn` only if it encodes in at most 1.5x avif's time).

Run from the repository root as

    .venv/bin/python benchmarks/nn_encode_cost.py [KODAK_DIR] [--codec avif+nn] [--repeats 1]

Every image is encoded at every benchmark quality by the base codec and by the `+nn` codec,
alternating (base, +nn, base, +nn, ...) in one process, so both see the same machine load; the
bench's own cells are measured at different times under different loads and do not compare to
within tens of percent. The network is loaded and run once before timing. Prints the CPU seconds
of each per quality and in all, and the ratio; the total is the number the condition reads.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from mlcompress.image import read_image
from mlcompress.registry import get


def _arg(name: str, default: str) -> str:
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def _kodak(default: str = "../shared/data/kodak") -> Path:
    """The first argument that is not an option or an option's value, else ``default``."""
    pos = [a for i, a in enumerate(sys.argv[1:], 1) if not a.startswith("--") and not sys.argv[i - 1].startswith("--")]
    return Path(pos[0]) if pos else Path(default)


def main() -> None:
    kodak = _kodak()
    nn = get(_arg("--codec", "avif+nn"))
    base = get(nn.base)
    repeats = int(_arg("--repeats", "1"))
    images = [read_image(p) for p in sorted(kodak.glob("*.png"))]
    if not images:
        raise SystemExit(f"no PNG images in {kodak}")
    nn.encode(images[0][:64, :64], nn.default_quality)  # torch import, weights load, first run
    print(f"{len(images)} images from {kodak}, {repeats} repeat(s); CPU seconds per image\n")
    print(f"| quality | {base.name} | {nn.name} | ratio |\n|---:|---:|---:|---:|")
    total_b = total_n = 0.0
    for q in nn.bench_qualities:
        tb = tn = 0.0
        for _ in range(repeats):
            for img in images:
                t0 = time.process_time()
                base.encode(img, q)
                t1 = time.process_time()
                nn.encode(img, q)
                t2 = time.process_time()
                tb, tn = tb + t1 - t0, tn + t2 - t1
        n = len(images) * repeats
        print(f"| {q} | {tb / n:.3f} | {tn / n:.3f} | {tn / tb:.2f} |")
        total_b, total_n = total_b + tb, total_n + tn
    print(f"| all | {total_b:.1f} s | {total_n:.1f} s | {total_n / total_b:.2f} |")


if __name__ == "__main__":
    main()
