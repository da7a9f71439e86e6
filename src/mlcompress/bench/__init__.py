"""`mlcompress bench`: which codec should I use? Rate-distortion and speed, measured on real bytes.

One template for every registered codec (CompressAI's ``run -> encode -> decode -> metrics``):

    images (--data) x codecs (registry) x qualities (codec.bench_qualities)
        -> cells           one measurement each, cached in OUT/cells.jsonl (runner.py)
        -> results JSON    CompressAI's schema, one file per codec (results.py)
        -> plots           PSNR / MS-SSIM vs bpp, optional published anchors (plots.py, anchors.py)
        -> BD-rate         against JPEG and the best classical codec (bdrate.py)
        -> report.md       tables, speed, machine and library versions (report.py)

``thesis.py`` reproduces the thesis's PSNR formula and Table 1 protocol beside proper measurements.
"""

from __future__ import annotations

from .runner import BenchSummary, run_bench

__all__ = ["run_bench", "BenchSummary"]
