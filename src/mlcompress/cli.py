"""The `mlcompress` command line: the only place that parses arguments or exits.

Exit codes: 0 success; 1 bad data (not an image, corrupt or truncated file, over a limit);
2 bad usage (unknown codec, bad quality, missing input, existing output without --force,
unwritable output); 130 interrupted. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .errors import CorruptDataError, Error, UsageError

EXIT_OK, EXIT_DATA, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(message)


def _read_input(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{path}: no such file")
    if p.is_dir():
        raise UsageError(f"{path} is a directory")
    try:
        return p.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def _write_output(path: str, data: bytes, force: bool) -> None:
    from .fileio import write_atomic

    if path == "-":
        if sys.stdout.isatty():
            raise UsageError("refusing to write binary data to a terminal; use -o FILE or a pipe")
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    write_atomic(path, data, force=force)


def _default_output(inp: str, suffix: str, fallback: str) -> str:
    """photo.png -> photo<suffix>; never the input itself."""
    if inp == "-":
        return "-"
    p = Path(inp)
    out = p.with_name(p.stem + suffix)
    if out.resolve() == p.resolve():
        out = p.with_name(p.stem + fallback + suffix)
    return str(out)


def _check_not_same(inp: str, out: str) -> None:
    if inp != "-" and out != "-" and Path(out).exists() and Path(out).resolve() == Path(inp).resolve():
        raise UsageError("the output would overwrite the input")


def _quality(text: str | None):
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"quality must be a number, got {text!r}") from None


# ---------------------------------------------------------------- commands


def cmd_compress(args) -> int:
    import mlcompress
    from .image import read_image

    codec = mlcompress.get_codec(args.codec or mlcompress.default_codec())
    codec.check_quality(_quality(args.quality))  # bad usage before reading anything
    out = args.output or _default_output(args.input, codec.extension, ".compressed")
    _check_not_same(args.input, out)
    if out != "-" and Path(out).exists() and not args.force:
        raise UsageError(f"{out} exists (use --force to overwrite)")
    img = read_image(_read_input(args.input))
    data = codec.encode(img, _quality(args.quality))
    _write_output(out, data, args.force)
    if out != "-" and not args.quiet:
        from .metrics import bpp

        h, w = img.shape[:2]
        print(f"{args.input} -> {out}: {codec.name}, {len(data)} bytes, {bpp(len(data), w, h):.4f} bpp")
    return EXIT_OK


def cmd_decompress(args) -> int:
    import mlcompress

    out = args.output or _default_output(args.input, ".decoded.png", "")
    _check_not_same(args.input, out)
    if out != "-" and Path(out).exists() and not args.force:
        raise UsageError(f"{out} exists (use --force to overwrite)")
    img = mlcompress.decode(_read_input(args.input))
    png = mlcompress.get_codec("png").encode(img)
    _write_output(out, png, args.force)
    if out != "-" and not args.quiet:
        print(f"{args.input} -> {out}: {img.shape[1]}x{img.shape[0]}")
    return EXIT_OK


def info_dict(data: bytes) -> dict:
    """What `mlcompress info` reports about file bytes."""
    import mlcompress

    from . import container
    from .metrics import bpp

    if container.is_mlc(data):
        c = container.unpack(data)
        return {
            "format": "mlc", "format_version": container.VERSION, "codec": c.codec,
            "width": c.width, "height": c.height, "channels": c.channels, "params": c.params,
            "model": c.model or None, "weights_sha256": c.weights_hash.hex() or None,
            "payload_bytes": len(c.payload), "bytes": len(data),
            "bpp": bpp(len(data), c.width, c.height),
        }
    codec = mlcompress.identify(data)
    img = codec.decode(data)
    h, w = img.shape[:2]
    return {
        "format": codec.name, "codec": codec.name, "width": w, "height": h,
        "channels": 1 if img.ndim == 2 else img.shape[2], "bytes": len(data),
        "bpp": bpp(len(data), w, h),
    }


def cmd_info(args) -> int:
    info = info_dict(_read_input(args.file))
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            if value is not None:
                print(f"{key:>15}: {value}")
    return EXIT_OK


def cmd_codecs(args) -> int:
    import mlcompress

    from . import registry

    default = mlcompress.default_codec()
    rows = []
    for c in registry.codecs():
        rows.append({
            "name": c.name, "available": c.available(), "unavailable_reason": c.unavailable_reason(),
            "lossless": c.lossless, "native": c.native, "extension": c.extension,
            "quality": c.quality_help, "default_quality": c.default_quality,
            "default": c.name == default, "description": c.description,
        })
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    for r in rows:
        flags = ("default " if r["default"] else "") + ("lossless" if r["lossless"] else "lossy")
        state = "" if r["available"] else f"  [unavailable: {r['unavailable_reason']}]"
        print(f"{r['name']:<14}{r['extension']:<7}{flags:<17}{r['description']}{state}")
        print(f"{'':<21}{r['quality']}")
    return EXIT_OK


def _open_any(path: str):
    import mlcompress

    from .image import read_image

    data = _read_input(path)
    try:
        mlcompress.identify(data)
    except CorruptDataError:
        return read_image(data)
    return mlcompress.decode(data)


def cmd_compare(args) -> int:
    from . import metrics

    ref, dist = _open_any(args.reference), _open_any(args.distorted)
    res = {
        "mse": metrics.mse(ref, dist), "psnr": metrics.psnr(ref, dist),
        "ssim": metrics.ssim(ref, dist), "ms_ssim": metrics.ms_ssim(ref, dist),
    }
    if args.json:
        print(json.dumps({k: (None if v != v or v == float("inf") else v) for k, v in res.items()}, indent=2))
    else:
        for k, v in res.items():
            print(f"{k:>8}: {v:.6g}")
    return EXIT_OK


def cmd_demo(args) -> int:
    from . import demo

    rows = demo.run(args.out, codec=args.codec, quality=_quality(args.quality))
    print(demo.format_table(rows))
    print(f"\nwrote {args.out}/astronaut.decoded.png and {args.out}/astronaut.comparison.png "
          f"(original | {rows[0].codec} | jpeg)")
    return EXIT_OK


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="mlcompress", description="Image compression with machine-learning methods.")
    p.add_argument("--version", action="version", version=f"mlcompress {__version__}")
    p.add_argument("--max-pixels", type=int, default=None,
                   help="refuse images with more pixels than this (default 89478485)")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    c = sub.add_parser("compress", help="compress an image file")
    c.add_argument("input", help="image file, or - for stdin")
    c.add_argument("-o", "--output", help="output file (default: input name with the codec's extension; - for stdout)")
    c.add_argument("-c", "--codec", help="codec name (see `mlcompress codecs`)")
    c.add_argument("-q", "--quality", help="the codec's quality knob")
    c.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
    c.add_argument("--quiet", action="store_true")
    c.set_defaults(func=cmd_compress)

    d = sub.add_parser("decompress", help="decompress a file to PNG")
    d.add_argument("input", help=".mlc (or JPEG, WebP, ...) file, or - for stdin")
    d.add_argument("-o", "--output", help="output PNG (default: NAME.decoded.png; - for stdout)")
    d.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=cmd_decompress)

    i = sub.add_parser("info", help="describe a compressed file")
    i.add_argument("file")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_info)

    k = sub.add_parser("codecs", help="list codecs")
    k.add_argument("--json", action="store_true")
    k.set_defaults(func=cmd_codecs)

    m = sub.add_parser("compare", help="PSNR, SSIM and MS-SSIM between two images")
    m.add_argument("reference")
    m.add_argument("distorted")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=cmd_compare)

    e = sub.add_parser("demo", help="compress scikit-image's astronaut photo and compare with JPEG")
    e.add_argument("--out", default="out")
    e.add_argument("-c", "--codec")
    e.add_argument("-q", "--quality")
    e.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.max_pixels is not None:
            from .limits import set_max_pixels

            set_max_pixels(args.max_pixels)
        return args.func(args)
    except UsageError as exc:
        print(f"mlcompress: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Error as exc:
        print(f"mlcompress: error: {exc}", file=sys.stderr)
        return EXIT_DATA
    except KeyboardInterrupt:
        print("mlcompress: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except MemoryError:
        print("mlcompress: error: out of memory", file=sys.stderr)
        return EXIT_DATA


if __name__ == "__main__":
    sys.exit(main())
