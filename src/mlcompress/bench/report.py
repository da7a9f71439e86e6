"""report.md: the answer to "which codec should I use?", with the numbers behind it.

Sections: summary, RD plots, BD-rate table (against JPEG and the best classical codec measured),
lossless table, speed table, RD points per codec, published anchors, failures, method, machine and
library versions. Everything in it is computed from the cells of the run; nothing is typed in.
"""

from __future__ import annotations

import math
import os
import platform
from pathlib import Path

from ..fileio import write_atomic
from . import bdrate
from .bdrate import BDRate, TARGET_PSNR, bd_rate, msssim_db
from .plots import plot_all
from .results import Curve, safe_filename


# ---------------------------------------------------------------- environment


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, str]:
    """The machine the numbers were measured on."""
    return {
        "CPU": _cpu_model(),
        "CPU count (os.cpu_count)": str(os.cpu_count()),
        "platform": platform.platform(),
        "Python": platform.python_version(),
    }


def library_versions() -> dict[str, str]:
    """Versions of the Python packages and codec libraries that produced the numbers."""
    from importlib import metadata

    out: dict[str, str] = {}
    for pkg in ("numpy", "pillow", "imagecodecs", "scipy", "scikit-image", "matplotlib",
                "bjontegaard", "pytorch-msssim", "torch", "constriction"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    try:
        from PIL import features

        for feat, label in (("libjpeg_turbo", "libjpeg-turbo"), ("jpg", "libjpeg API"), ("webp", "libwebp"),
                            ("jpg_2000", "OpenJPEG"), ("avif", "libavif"), ("zlib", "zlib")):
            try:
                v = features.version(feat)
            except ValueError:
                v = None
            out[f"{label} (Pillow)"] = v or "not available"
    except ImportError:
        pass
    try:
        import imagecodecs

        for fn, label in (("jpegxl_version", "libjxl (imagecodecs)"), ("qoi_version", "qoi (imagecodecs)")):
            try:
                out[label] = str(getattr(imagecodecs, fn)()).split(" ", 1)[-1]
            except Exception:  # noqa: BLE001  (a missing codec library is only reported)
                out[label] = "not available"
    except ImportError:
        pass
    return out


def _kv_table(d: dict[str, str], head=("", "")) -> list[str]:
    lines = [f"| {head[0]} | {head[1]} |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in d.items()]
    return lines


# ---------------------------------------------------------------- numbers


def _fmt(v: float, spec: str = ".2f", none: str = "n/a") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return none
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return format(v, spec)


def _mps(v: float) -> str:
    """Megapixels per second: one decimal, or two significant digits below 1 (a slow learned
    encoder's 0.014 MP/s must not print as 0.0)."""
    if isinstance(v, float) and math.isfinite(v) and 0 < v < 1:
        return format(v, ".2g")
    return _fmt(v, ".1f")


def _pct(b: BDRate) -> str:
    """A BD-rate with the interval it was integrated over, or why there is none."""
    return b.text()


def psnr_bd(anchor: Curve, test: Curve, quality_range=None) -> BDRate:
    ra, qa = anchor.points("psnr")
    rt, qt = test.points("psnr")
    return bd_rate(ra, qa, rt, qt, quality_range)


def msssim_bd(anchor: Curve, test: Curve) -> BDRate:
    ra, qa = anchor.points("ms_ssim")
    rt, qt = test.points("ms_ssim")
    return bd_rate(ra, msssim_db(qa), rt, msssim_db(qt))


def best_classical(lossy: list[Curve], jpeg: Curve | None) -> Curve | None:
    """The classical (non-native) lossy codec with the lowest BD-rate against JPEG at 29-35 dB."""
    classical = [c for c in lossy if not c.native]
    if jpeg is None:
        return classical[0] if classical else None
    scored = []
    for c in classical:
        b = psnr_bd(jpeg, c, TARGET_PSNR)
        if not b.defined:
            b = psnr_bd(jpeg, c)
        scored.append((b.percent if b.defined else math.inf, c.name, c))
    scored.sort(key=lambda t: (t[0], t[1]))
    return scored[0][2] if scored else None


def build_report(data_dir, plan, curves: list[Curve], anchors: list[Curve], failures: list, jobs: int = 1,
                 command: str | None = None, run_seconds: float | None = None, computed: int = 0,
                 cached: int = 0, plot_files: tuple[str, str] = ("rd-psnr", "rd-ms-ssim")) -> str:
    """The markdown text of report.md."""
    lossy = [c for c in curves if not c.lossless and len(c.points("psnr")[0]) >= 1]
    lossless = [c for c in curves if c.lossless]
    by_name = {c.name: c for c in curves}
    jpeg = by_name.get("jpeg")
    best = best_classical(lossy, jpeg)
    n = len(plan.images)

    L: list[str] = []
    L.append("# Benchmark: which codec should I use?")
    L.append("")
    L.append(f"{n} images from `{data_dir}`, {len(curves)} codecs. Generated by "
             f"`{command or 'mlcompress bench'}`; regenerate it, do not edit it by hand.")
    L.append("")

    # ------------------------------------------------ summary
    L.append("## Summary")
    L.append("")
    ranked = []
    if jpeg is not None:
        for c in lossy:
            b = psnr_bd(jpeg, c, TARGET_PSNR)
            if b.defined:
                ranked.append((b.percent, c.name, b))
    ranked.sort()
    if ranked:
        pct, name, b = ranked[0]
        L.append(f"- **Fewest bits at equal PSNR:** `{name}`, BD-rate {_pct(b)} against JPEG. "
                 "Ranking: " + ", ".join(f"`{nm}` {_pct(bb)}" for _, nm, bb in ranked) + ".")
    if jpeg is not None:
        ms = [(msssim_bd(jpeg, c), c.name) for c in lossy]
        ms = sorted(((b.percent, nm, b) for b, nm in ms if b.defined), key=lambda t: t[:2])
        if ms:
            L.append(f"- **Fewest bits at equal MS-SSIM:** `{ms[0][1]}`, BD-rate {ms[0][2].text('dB MS-SSIM')} "
                     "against JPEG.")
    if lossy:
        fast = max(lossy, key=lambda c: _nan0(c.overall_mps(cpu=True)[0]))
        L.append(f"- **Fastest lossy encoder (CPU time):** `{fast.name}`, {fast.overall_mps(cpu=True)[0]:.1f} MP/s "
                 f"(decode {fast.overall_mps(cpu=True)[1]:.1f} MP/s).")
    if lossless:
        ok = [c for c in lossless if c.bpp]
        if ok:
            small = min(ok, key=lambda c: c.bpp[0])
            fast = max(ok, key=lambda c: _nan0(c.overall_mps(cpu=True)[0]))
            L.append(f"- **Lossless:** smallest `{small.name}` ({small.bpp[0]:.3f} bpp); fastest `{fast.name}` "
                     f"({fast.overall_mps(cpu=True)[0]:.1f} MP/s encode, CPU time).")
    if failures:
        L.append(f"- **{len(failures)} cells failed** (see Failures below).")
    L.append("")

    # ------------------------------------------------ plots
    L.append("## Rate-distortion curves")
    L.append("")
    L.append("Mean over the images at each quality setting; bpp from the real file bytes. "
             "Dashed curves marked (published) are other projects' measurements on Kodak, for orientation only.")
    L.append("")
    L.append(f"![PSNR vs bpp]({plot_files[0]}.png)")
    L.append("")
    L.append(f"![MS-SSIM vs bpp]({plot_files[1]}.png)")
    L.append("")

    # ------------------------------------------------ BD-rate
    L.append("## BD-rate")
    L.append("")
    L.append(f"Average bitrate difference at equal quality; negative = fewer bits. Interpolation: "
             f"{bdrate.METHOD.upper()} of log10(bpp) over quality (bjontegaard package), integrated over the "
             f"overlap of the two curves' quality ranges, or over that overlap clipped to "
             f"{TARGET_PSNR[0]:g}-{TARGET_PSNR[1]:g} dB PSNR (the issue's target range). MS-SSIM in dB. "
             f"Each figure gives the interval it was integrated over; under {bdrate.MIN_OVERLAP:g} dB "
             "there is none (n/a, with the overlap).")
    L.append("")
    if jpeg is None:
        L.append("JPEG was not measured in this run, so there is no BD-rate table.")
    else:
        bname = best.name if best else "n/a"
        L.append(f"Best classical codec measured (lowest BD-rate against JPEG at "
                 f"{TARGET_PSNR[0]:g}-{TARGET_PSNR[1]:g} dB): **{bname}**.")
        L.append("")
        L.append(f"| codec | vs JPEG, PSNR {TARGET_PSNR[0]:g}-{TARGET_PSNR[1]:g} dB | vs JPEG, PSNR overlap "
                 f"| overlap range | vs {bname}, PSNR {TARGET_PSNR[0]:g}-{TARGET_PSNR[1]:g} dB "
                 f"| vs {bname}, PSNR overlap | vs JPEG, MS-SSIM overlap |")
        L.append("|---|---:|---:|---|---:|---:|---:|")
        for c in lossy:
            a = psnr_bd(jpeg, c, TARGET_PSNR)
            o = psnr_bd(jpeg, c)
            bb = psnr_bd(best, c, TARGET_PSNR) if best else bdrate.NO_OVERLAP
            bo = psnr_bd(best, c) if best else bdrate.NO_OVERLAP
            m = msssim_bd(jpeg, c)
            L.append(f"| {c.name} | {_pct(a)} | {_pct(o)} | {o.range_text()} | {_pct(bb)} | {_pct(bo)} "
                     f"| {m.text('dB MS-SSIM')} |")
    L.append("")

    # ------------------------------------------------ lossless
    if lossless:
        L.append("## Lossless codecs")
        L.append("")
        L.append("| codec | bpp | ratio vs 24-bit raw | encode MP/s CPU | decode MP/s CPU |")
        L.append("|---|---:|---:|---:|---:|")
        for c in lossless:
            if not c.bpp:
                L.append(f"| {c.name} | failed | | | |")
                continue
            e, d = c.overall_mps(cpu=True)
            exact = "" if math.isinf(c.psnr[0]) else f" (not exact: PSNR {c.psnr[0]:.2f} dB)"
            L.append(f"| {c.name}{exact} | {c.bpp[0]:.3f} | {24 / c.bpp[0]:.2f} | {_mps(e)} | {_mps(d)} |")
        L.append("")

    # ------------------------------------------------ speed
    L.append("## Speed")
    L.append("")
    L.append(f"Megapixels per second: all pixels over all encode (decode) time of the codec's cells, one image "
             f"at a time, {jobs} worker process{'es' if jobs > 1 else ''}. *Wall* is elapsed time, which other "
             "load on a shared machine inflates; *CPU* is the process's CPU time summed over its threads (the "
             "better guide on a busy machine; a multi-threaded codec scores lower on CPU than on wall). "
             "Compare codecs within one run, not across machines. Metrics are not timed.")
    L.append("")
    L.append("| codec | kind | encode MP/s wall | decode MP/s wall | encode MP/s CPU | decode MP/s CPU "
             "| mean encode s/image | mean decode s/image |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|")
    for c in curves:
        if not c.bpp:
            continue
        e, d = c.overall_mps()
        ec, dc = c.overall_mps(cpu=True)
        kind = ("lossless" if c.lossless else "lossy") + (", native" if c.native else ", classical")
        es = sum(c.encode_s) / len(c.encode_s)
        ds = sum(c.decode_s) / len(c.decode_s)
        L.append(f"| {c.name} | {kind} | {_mps(e)} | {_mps(d)} | {_mps(ec)} | {_mps(dc)} "
                 f"| {es:.3f} | {ds:.3f} |")
    L.append("")

    # ------------------------------------------------ points
    L.append("## Rate-distortion points")
    L.append("")
    for c in curves:
        L.append(f"### {c.name}")
        L.append("")
        L.append(f"{c.description}. JSON: `json/{safe_filename(c.name)}.json`.")
        if c.incomplete:
            L.append(f"Left out (an image failed): quality {', '.join(str(q) for q in c.incomplete)}.")
        L.append("")
        L.append("| quality | bpp | PSNR dB | MS-SSIM | encode ms | decode ms |")
        L.append("|---:|---:|---:|---:|---:|---:|")
        for i, q in enumerate(c.qualities):
            L.append(f"| {'-' if q is None else q} | {c.bpp[i]:.4f} | {_fmt(c.psnr[i])} | {_fmt(c.ms_ssim[i], '.4f')} "
                     f"| {c.encode_s[i] * 1e3:.1f} | {c.decode_s[i] * 1e3:.1f} |")
        L.append("")

    # ------------------------------------------------ anchors
    if anchors:
        L.append("## Published anchors")
        L.append("")
        L.append("Curves measured by other projects on the same 24 Kodak images (files in ../shared/anchors), "
                 "drawn dashed. BD-rate of each against *our* JPEG measurement, for orientation:")
        L.append("")
        L.append(f"| anchor | vs our JPEG, PSNR {TARGET_PSNR[0]:g}-{TARGET_PSNR[1]:g} dB | vs our JPEG, PSNR overlap |")
        L.append("|---|---:|---:|")
        for a in anchors:
            if jpeg is None:
                L.append(f"| {a.label} | n/a | n/a |")
                continue
            L.append(f"| {a.label} | {_pct(psnr_bd(jpeg, a, TARGET_PSNR))} | {_pct(psnr_bd(jpeg, a))} |")
        L.append("")

    # ------------------------------------------------ failures
    if failures or plan.skipped:
        L.append("## Failures and skipped codecs")
        L.append("")
        for name, why in plan.skipped.items():
            L.append(f"- `{name}` skipped: {why}")
        for f in failures:
            L.append(f"- `{f.codec}` quality {f.quality} on {f.image}: {f.error}")
        L.append("")

    # ------------------------------------------------ method
    L.append("## Method")
    L.append("")
    L.append("- Each image is encoded at each quality of the codec's `bench_qualities` (lossless codecs once), "
             "decoded, and compared with the original: bpp = 8 x file bytes / pixels (`metrics.bpp`), "
             "PSNR-RGB with peak 255 over all channels (`metrics.psnr`), MS-SSIM with 5 scales "
             "(`metrics.ms_ssim`, pytorch-msssim). Values are means over the images, as in CompressAI's results.")
    L.append("- A decoded image must have the original's shape and dtype; a codec that fails on an image is "
             "reported and its quality point left out of the curve.")
    L.append("- Encode and decode times are wall-clock (`time.perf_counter`) and process CPU time "
             "(`time.process_time`) around `codec.encode` / "
             "`codec.decode` only, after one untimed warm-up call per codec and process; torch runs on one "
             "thread, so learned codecs are timed single-threaded like the classical libraries.")
    codec_s = sum(sum(c.encode_s) + sum(c.decode_s) for c in curves) * n
    L.append(f"- {sum(len(c.qualities) for c in curves) * n} cells; encode + decode time in them: "
             f"{codec_s:.0f} s wall (metrics, file reading and plots come on top).")
    if run_seconds is not None:
        L.append(f"- This invocation: {computed} cells measured, {cached} reused from `cells.jsonl`, "
                 f"{run_seconds:.0f} s.")
    L.append("")

    # ------------------------------------------------ machine
    L.append("## Machine and libraries")
    L.append("")
    L += _kv_table(machine(), ("machine", ""))
    L.append("")
    L += _kv_table(library_versions(), ("library", "version"))
    L.append("")
    return "\n".join(L)


def _nan0(v: float) -> float:
    return v if v is not None and math.isfinite(v) else -1.0


def write_report(out_dir: Path, data_dir, plan, curves, anchors, failures, jobs: int = 1,
                 command: str | None = None, run_seconds: float | None = None, computed: int = 0,
                 cached: int = 0) -> list[Path]:
    """Plots and report.md into ``out_dir``; returns the paths written."""
    out_dir = Path(out_dir)
    title = f"{Path(str(data_dir)).name} ({len(plan.images)} images)"
    paths = plot_all(curves, anchors, out_dir, title)
    text = build_report(data_dir, plan, curves, anchors, failures, jobs, command, run_seconds, computed, cached)
    report = out_dir / "report.md"
    write_atomic(report, text.encode(), force=True)
    return paths + [report]
