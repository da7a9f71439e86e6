"""Measurements behind docs/CODECS.md (rle, vq): run from the repository root as

    .venv/bin/python benchmarks/rle_vq.py [KODAK_DIR] [--reference | --rle] > /tmp/rle_vq.md

Prints Markdown tables: RLE vs imagecodecs PackBits (size and speed), where RLE wins, VQ index
coders (ANS vs LZMA), VQ training time on a ~2-megapixel photo, and colour VQ against
libimagequant and Pillow's median cut at the same palette size (``--rle``: the RLE sections
only). ``--reference`` adds the
comparison with scikit-learn ``KMeans(n_init=10)`` on all pixels (slow: minutes per image). Times are best-of-N CPU
seconds of this process (``time.process_time``; the machine may be shared, which inflates wall time), and for VQ also
the wall-clock seconds of that run.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

import mlcompress
from mlcompress import container, metrics
from mlcompress.codecs.rle import encode_layouts, rle_decode_bytes, rle_encode_bytes
from mlcompress.codecs.vq import VqBlock, VqCodec, quantise
from mlcompress.image import read_image

_ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
KODAK = Path(_ARGS[0]) if _ARGS else Path("../shared/data/kodak")
IMAGES = ("kodim01", "kodim07", "kodim23")


def best(fn, n=5):
    """(wall seconds, best CPU seconds, result) of the run with the least CPU time."""
    out = None
    best_wall, best_cpu = 0.0, float("inf")
    for _ in range(n):
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if cpu < best_cpu:
            best_wall, best_cpu = wall, cpu
    return best_wall, best_cpu, out


def table(header, rows):
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(str(x) for x in r) + " |")
    print()


def rle_vs_packbits(imgs):
    import imagecodecs

    from mlcompress.codecs import rle

    kernels = rle._kernels()
    print("### RLE byte coder vs imagecodecs PackBits (interleaved pixel bytes; MB/s of raw image, CPU time)\n")
    print(f"RLE kernels: {'numba ' + __import__('numba').__version__ if kernels else 'none (numpy fallback)'}; "
          "the numpy column is the fallback without numba.\n")
    rows = []
    for name, img in imgs.items():
        raw = img.tobytes()
        mb = len(raw) / 1e6
        rate = lambda fn, n=7: mb / best(fn, n)[1]  # noqa: E731
        enc = rle_encode_bytes(raw)
        te, td = rate(lambda: rle_encode_bytes(raw)), rate(lambda: rle_decode_bytes(enc, len(raw)))
        penc = imagecodecs.packbits_encode(raw)
        pe, pd = rate(lambda: imagecodecs.packbits_encode(raw)), rate(lambda: imagecodecs.packbits_decode(penc))
        layout, payload = rle.encode_best_layout(img)
        ce, cd = rate(lambda: rle.encode_best_layout(img)), rate(lambda: rle.decode_layout(payload, img.shape))
        rle._kernels = lambda: None  # the numpy fallback
        try:
            ne, nd = rate(lambda: rle_encode_bytes(raw), 3), rate(lambda: rle_decode_bytes(enc, len(raw)), 3)
            assert rle_encode_bytes(raw) == enc and rle.encode_best_layout(img) == (layout, payload)
        finally:
            rle._kernels = lambda: kernels
        rows.append((name, f"{len(raw):,}", f"{len(enc):,}", f"{len(penc):,}", f"{len(payload):,} ({layout})",
                     f"{te:,.0f} / {td:,.0f}", f"{ne:,.0f} / {nd:,.0f}", f"{pe:,.0f} / {pd:,.0f}",
                     f"{ce:,.0f} / {cd:,.0f}"))
    table(["image", "raw B", "rle bytes (interleaved)", "PackBits bytes", "rle codec payload (best layout)",
           "rle enc / dec", "rle numpy enc / dec", "PackBits enc / dec", "rle codec (all layouts) enc / dec"], rows)


def rle_codec_vs_packbits(n=7):
    """The whole rle codec (layout choice + coding) against PackBits on every Kodak image."""
    import imagecodecs

    from mlcompress.codecs import rle

    print("### The rle codec vs imagecodecs PackBits on all 24 Kodak images (MB/s of raw image, CPU time)\n")
    print("`rle codec` is `encode_best_layout` / `decode_layout`: the layout estimate, the palette check, the "
          "coding, and for planar the (de)interleaving. `exact smallest` sizes every layout fully; `chosen` is "
          f"what the codec writes (planar only when estimated <= {rle.SWITCH_RATIO:.0%} of interleaved).\n")
    rows, wins_e, wins_d = [], 0, 0
    paths = sorted(KODAK.glob("kodim*.png"))
    for path in paths:
        img = read_image(path)
        raw = img.tobytes()
        mb = len(raw) / 1e6
        layout, payload = rle.encode_best_layout(img)
        exact = {k: len(v) for k, v in rle.encode_layouts(img).items()}
        smallest = min(exact, key=exact.get)
        penc = imagecodecs.packbits_encode(raw)
        assert np.array_equal(rle.decode_layout(payload, img.shape), img)
        ce, cd, pe, pd = (mb / best(fn, n)[1] for fn in (
            lambda: rle.encode_best_layout(img), lambda: rle.decode_layout(payload, img.shape),
            lambda: imagecodecs.packbits_encode(raw), lambda: imagecodecs.packbits_decode(penc)))
        wins_e += ce >= pe
        wins_d += cd >= pd
        rows.append((path.stem, f"{len(payload):,} ({layout})", f"{exact[smallest]:,} ({smallest})",
                     f"{100 * (len(payload) - exact[smallest]) / exact[smallest]:.1f}", f"{len(penc):,}",
                     f"{ce:,.0f} / {cd:,.0f}", f"{pe:,.0f} / {pd:,.0f}"))
    table(["image", "rle codec payload (chosen)", "exact smallest layout", "% over smallest", "PackBits B",
           "rle codec enc / dec", "PackBits enc / dec"], rows)
    print(f"The rle codec is at least as fast as PackBits on {wins_e} of {len(paths)} images encoding and "
          f"{wins_d} of {len(paths)} decoding.\n")


def _chart() -> np.ndarray:
    """A flat graphic: a bar chart with axes and labels (few colours, long runs)."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (768, 512), "white")
    d = ImageDraw.Draw(im)
    colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
    for i, h in enumerate((300, 180, 420, 250, 350, 120)):
        d.rectangle([80 + i * 110, 460 - h, 160 + i * 110, 460], fill=colours[i])
        d.text((95 + i * 110, 470), f"bar {i}", fill="black")
    d.line([60, 40, 60, 460, 740, 460], fill="black", width=2)
    d.text((300, 10), "A flat graphic: runs everywhere", fill="black")
    return np.asarray(im).copy()


def rle_where_it_wins(imgs):
    print("### Where RLE wins and where it does not (file bytes, .mlc container included)\n")
    kodak = imgs[IMAGES[0]]
    cases = {
        f"{IMAGES[0]} (photo)": kodak,
        "bar chart (flat graphic, 768x512)": _chart(),
        f"{IMAGES[0]} after vq-16 (palette indices)": mlcompress.decode(mlcompress.encode(kodak, "vq", 16)),
    }
    rows = []
    for name, img in cases.items():
        raw = img.size
        sizes = {c: len(mlcompress.encode(img, c)) for c in ("rle", "packbits", "png")}
        layout = container.unpack(mlcompress.encode(img, "rle")).params["layout"]
        rows.append((name, f"{raw:,}", f"{sizes['rle']:,} ({layout})",
                     f"{metrics.compression_rate(8 * raw, 8 * sizes['rle']):.1f}",
                     f"{sizes['packbits']:,}", f"{sizes['png']:,}"))
    table(["image", "raw B", "rle B (layout)", "rle rate % vs raw", "packbits B", "png B"], rows)


def index_coders(imgs):
    print("### VQ index coders: static ANS (order 0) vs LZMA on the index bytes (payload bytes)\n")
    rows = []
    for name, img in imgs.items():
        for label, codec, k in (("vq", VqCodec, 16), ("vq", VqCodec, 64), ("vq", VqCodec, 256),
                                ("vq-block", VqBlock, 256)):
            sizes = {}
            for coder in ("ans", "lzma"):
                sizes[coder] = len(container.unpack(codec(coder=coder).encode(img, k)).payload)
            rows.append((name, label, k, f"{sizes['ans']:,}", f"{sizes['lzma']:,}",
                         f"{100 * (sizes['lzma'] / sizes['ans'] - 1):+.1f}"))
    table(["image", "codec", "codewords", "ANS payload B", "LZMA payload B", "LZMA vs ANS %"], rows)


def vq_speed(imgs):
    print("### Colour VQ training + assignment time on a 2304x1024 (2.36 MP) photo\n")
    tiles = [imgs[n] for n in IMAGES] + [read_image(KODAK / f"kodim{i:02d}.png") for i in (2, 3, 5)]
    big = np.concatenate([np.concatenate(tiles[:3], 1), np.concatenate(tiles[3:], 1)], 0)
    from mlcompress.codecs import vq

    kernels = vq._kernels()
    quantise(big[:64, :64], 8)  # warm up (imports)
    rows = []
    for engine in ("numba", "scikit-learn (fallback)") if kernels else ("scikit-learn",):
        vq._kernels = (lambda: kernels) if engine == "numba" else (lambda: None)
        try:
            for k in (64, 256):
                for n_init in (1, 10) if engine == "numba" else (1,):
                    wall, cpu, (cb, idx) = best(lambda: quantise(big, k, n_init=n_init), 2)
                    p = metrics.psnr(big, cb[idx].reshape(big.shape))
                    rows.append((engine, k, n_init, f"{wall:.2f}", f"{cpu:.2f}", f"{p:.3f}"))
        finally:
            vq._kernels = lambda: kernels
    table(["k-means", "codewords", "n_init", "wall s", "CPU s (best of 2)", "PSNR dB"], rows)


def vq_vs_quantisers(imgs, k=256):
    print(f"### Colour VQ vs palette quantisers at {k} colours, no dithering\n")
    rows = []
    for name, img in imgs.items():
        row = [name]
        for codec in ("vq", "imagequant", "pil-mediancut"):
            data = mlcompress.encode(img, codec, k)
            row.append(f"{metrics.psnr(img, mlcompress.decode(data)):.2f} dB, {len(data):,} B")
        rows.append(row)
    table(["image", f"vq-{k} (.mlc)", f"imagequant-{k} (PNG)", f"pil-mediancut-{k} (PNG)"], rows)


def vq_vs_sklearn(imgs):
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    from mlcompress.codecs.vq import nearest

    print("### Colour VQ vs scikit-learn KMeans(n_init=10) on all pixels (codebooks rounded to uint8)\n")
    rows = []
    for k in (64, 256):
        for name, img in imgs.items():
            flat = img.reshape(-1, img.shape[2])
            c0 = time.process_time()
            with threadpool_limits(1):
                km = KMeans(k, n_init=10, random_state=0).fit(flat.astype(np.float64))
            ref_cpu = time.process_time() - c0
            cb = np.clip(np.rint(km.cluster_centers_), 0, 255).astype(np.uint8)
            ref = metrics.psnr(img, cb[nearest(flat, cb)].reshape(img.shape))
            row = [name, k, f"{ref:.3f} ({ref_cpu:.0f} s)"]
            for n_init in (1, 10):
                c0 = time.process_time()
                cb, idx = quantise(img, k, n_init=n_init)
                cpu = time.process_time() - c0
                p = metrics.psnr(img, cb[idx].reshape(img.shape))
                row.append(f"{p:.3f} ({p - ref:+.3f}; {cpu:.2f} s)")
            rows.append(row)
    table(["image", "codewords", "sklearn all pixels dB (CPU)", "vq n_init=1 dB (diff; CPU)",
           "vq n_init=10 dB (diff; CPU)"], rows)


def main():
    imgs = {n: read_image(KODAK / f"{n}.png") for n in IMAGES}
    rle_vs_packbits(imgs)
    rle_codec_vs_packbits()
    rle_where_it_wins(imgs)
    if "--rle" in sys.argv:  # the RLE sections only
        return
    index_coders(imgs)
    vq_vs_quantisers(imgs)
    vq_speed(imgs)
    if "--reference" in sys.argv:
        vq_vs_sklearn(imgs)


if __name__ == "__main__":
    main()
