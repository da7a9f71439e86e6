"""The `mlcompress` command line: the only place that parses arguments or exits.

Exit codes: 0 success; 1 bad data (not an image, corrupt or truncated file, over a limit);
2 bad usage (unknown codec, bad quality, missing input, existing output without --force,
unwritable output); 130 interrupted. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import contextmanager
from pathlib import Path

from . import __version__
from .errors import Error, UsageError
from .interrupt import sigterm_as_interrupt

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


def _check_output(path: str, force: bool) -> None:
    """Refuse an output that cannot be written before the work starts: a terminal as stdout, an
    existing file without --force, a missing or unwritable folder."""
    from .fileio import require_writable

    if path == "-":
        if sys.stdout.isatty():
            raise UsageError("refusing to write binary data to a terminal; use -o FILE or a pipe")
        return
    require_writable(path, force)


#: file extensions that name one format, and those that mean the same format as a codec's extension
_SAME_FORMAT = {".jpg": (".jpeg", ".jpe", ".jfif"), ".jp2": (".j2k", ".jpx", ".jpf"), ".tif": (".tiff",)}


def _check_suffix(path: str, extension: str, writer: str, force: bool) -> None:
    """Refuse (without --force) an output named with another format's extension than the
    ``extension`` of what ``writer`` writes: `-c jpeg -o x.mlc` would put JPEG bytes in a .mlc file."""
    from . import registry
    from .image import IMAGE_EXTENSIONS

    suffix = Path(path).suffix.lower()
    if path == "-" or force or suffix in (extension, *_SAME_FORMAT.get(extension, ())):
        return
    known = {".mlc", *IMAGE_EXTENSIONS, *(c.extension for c in registry.codecs())}
    known |= {alias for aliases in _SAME_FORMAT.values() for alias in aliases}
    if suffix in known:
        raise UsageError(f"{path}: {writer} writes {extension} files, not {suffix}; name the output "
                         f"*{extension}, or add --force to keep this name")


@contextmanager
def _about(path: str):
    """Name ``path`` in the message of an mlcompress error raised while it is read or coded."""
    try:
        yield
    except Error as exc:
        if path == "-" or str(exc).startswith(f"{path}"):
            raise
        raise type(exc)(f"{path}: {exc}") from None


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


def _cmd_folder(args, compress: bool | None) -> int:
    """compress (True), decompress (False) or enhance (None) with a folder as input: every file
    in it, resumable (batch.py)."""
    from . import batch

    if not args.output or args.output == "-":
        raise UsageError(f"{args.input} is a folder: name an output folder with -o OUTDIR")
    show = not args.quiet and sys.stderr.isatty()

    def report(r) -> None:
        if r.status == batch.FAILED:
            from tqdm import tqdm

            tqdm.write(f"mlcompress: failed: {r.source}: {r.message}", file=sys.stderr)

    common = dict(recursive=args.recursive, jobs=args.jobs, force=args.force, progress=show, on_result=report)
    if getattr(args, "cluster", None):
        common["cluster"] = args.cluster
    if compress:
        summary = batch.compress_tree(args.input, args.output, args.codec, _quality(args.quality), **common)
    elif compress is None:
        summary = batch.enhance_tree(args.input, args.output, **common)
    else:
        summary = batch.decompress_tree(args.input, args.output, png_level=args.png_level, **common)
    if not args.quiet or summary.failed:
        print(summary.format(), file=sys.stderr if summary.failed else sys.stdout)
    return EXIT_OK if summary.ok else EXIT_DATA


def _many_files(args) -> bool:
    """Whether the input names many files for batch.py: a folder, a glob, a URL of either, or
    anything given with --cluster."""
    from . import storage

    if args.input == "-":
        if getattr(args, "cluster", None):
            raise UsageError("--cluster works on folders, globs and URLs of them, not on stdin")
        return False
    return (bool(getattr(args, "cluster", None)) or storage.is_url(args.input) or storage.is_glob(args.input)
            or Path(args.input).is_dir())


def cmd_compress(args) -> int:
    import mlcompress

    resize = getattr(args, "resize", None)
    if resize is not None and _many_files(args):
        raise UsageError("--resize (the thesis protocol) works on single files only")
    if _many_files(args):
        return _cmd_folder(args, compress=True)
    from .image import read_image

    codec = mlcompress.get_codec(args.codec or mlcompress.default_codec())
    if resize is not None and not getattr(codec, "supports_resize", False):
        raise UsageError(f"--resize is the thesis's protocol of cae-thesis only, not of {codec.name!r}")
    codec.check_quality(_quality(args.quality))  # bad usage before reading anything
    out = args.output or _default_output(args.input, codec.extension, ".compressed")
    _check_not_same(args.input, out)
    _check_suffix(out, codec.extension, f"codec {codec.name!r}", args.force)
    _check_output(out, args.force)
    with _about(args.input):
        img = read_image(_read_input(args.input))
        if resize is not None:
            data = codec.encode(img, _quality(args.quality), resize=resize)
        else:
            data = codec.encode(img, _quality(args.quality))
    _write_output(out, data, args.force)
    if out != "-" and not args.quiet:
        from .metrics import bpp

        h, w = img.shape[:2]
        print(f"{args.input} -> {out}: {codec.name}, {len(data)} bytes, {bpp(len(data), w, h):.4f} bpp")
    return EXIT_OK


def cmd_decompress(args) -> int:
    import mlcompress

    if getattr(args, "base", False):
        return _decompress_base(args)
    from .image import PNG_LEVEL, check_png_level, png_bytes

    if args.png_level is None:
        args.png_level = PNG_LEVEL
    check_png_level(args.png_level)
    if _many_files(args):
        return _cmd_folder(args, compress=False)

    out = args.output or _default_output(args.input, ".decoded.png", "")
    _check_not_same(args.input, out)
    _check_suffix(out, ".png", "decompress", args.force)
    _check_output(out, args.force)
    with _about(args.input):
        img = mlcompress.decode(_read_input(args.input))
    png = png_bytes(img, args.png_level)
    _write_output(out, png, args.force)
    if out != "-" and not args.quiet:
        print(f"{args.input} -> {out}: {img.shape[1]}x{img.shape[0]}")
    return EXIT_OK


def _decompress_base(args) -> int:
    """`decompress --base FILE.mlc`: the base file of an +nn file, byte for byte (photo.avif)."""
    from .codecs.restored import base_file

    if args.input != "-" and Path(args.input).is_dir():
        raise UsageError("--base works on single files only")
    with _about(args.input):
        data, ext = base_file(_read_input(args.input))
    out = args.output or _default_output(args.input, ext, ".base")
    _check_not_same(args.input, out)
    _check_output(out, args.force)
    _write_output(out, data, args.force)
    if out != "-" and not args.quiet:
        print(f"{args.input} -> {out}: {len(data)} bytes")
    return EXIT_OK


def cmd_enhance(args) -> int:
    """`enhance FILE|DIR`: a JPEG, WebP or AVIF file restored by its base's network, as PNG."""
    if _many_files(args):
        return _cmd_folder(args, compress=None)
    from .codecs.restored import enhance

    out = args.output or _default_output(args.input, ".enhanced.png", "")
    _check_not_same(args.input, out)
    _check_output(out, args.force)
    from .image import PNG_LEVEL, png_bytes

    with _about(args.input):
        img = enhance(_read_input(args.input))
    _write_output(out, png_bytes(img, PNG_LEVEL), args.force)
    if out != "-" and not args.quiet:
        print(f"{args.input} -> {out}: {img.shape[1]}x{img.shape[0]}")
    return EXIT_OK


def info_dict(data: bytes) -> dict:
    """What `mlcompress info` reports about file bytes."""
    import mlcompress

    from . import container
    from .metrics import bpp

    if container.is_mlc(data):
        from . import registry

        c = container.unpack(data)
        try:
            describe = getattr(registry.get(c.codec), "describe_payload", None)
        except UsageError:  # a codec this installation does not know: the header is all there is
            describe = None
        return {
            "format": "mlc", "format_version": container.VERSION, "codec": c.codec,
            "width": c.width, "height": c.height, "channels": c.channels, "params": c.params,
            "model": c.model or None, "weights_sha256": c.weights_hash.hex() or None,
            "payload_bytes": len(c.payload), **(describe(c) if describe else {}),
            "bytes": len(data), "bpp": bpp(len(data), c.width, c.height),
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
    with _about(args.file):
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
    width = max(len(r["name"]) for r in rows) + 2
    for r in rows:
        flags = ("default " if r["default"] else "") + ("lossless" if r["lossless"] else "lossy")
        state = "" if r["available"] else f"  [unavailable: {r['unavailable_reason']}]"
        print(f"{r['name']:<{width}}{r['extension']:<7}{flags:<17}{r['description']}{state}")
        print(f"{'':<{width + 7}}{r['quality']}")
    return EXIT_OK


def _open_any(path: str):
    import mlcompress

    with _about(path):
        return mlcompress.decode_any(_read_input(path))


def cmd_compare(args) -> int:
    from . import metrics

    ref, dist = _open_any(args.reference), _open_any(args.distorted)
    res = {
        "mse": metrics.mse(ref, dist), "psnr": metrics.psnr(ref, dist),
        "ssim": metrics.ssim(ref, dist), "ms_ssim": metrics.ms_ssim(ref, dist),
    }
    identical = res["mse"] == 0
    if args.json:
        out = {k: (None if v != v or v == float("inf") else v) for k, v in res.items()}
        print(json.dumps({**out, "identical": identical}, indent=2))
        return EXIT_OK
    # NaN means undefined at this size (metrics.ssim / ms_ssim), inf the PSNR of identical images
    why = {"ssim": f"n/a (image too small for SSIM: under {metrics.SSIM_MIN_SIDE} px a side)",
           "ms_ssim": f"n/a (image too small for MS-SSIM: under {metrics.MS_SSIM_MIN_SIDE} px a side)"}
    for k, v in res.items():
        text = why[k] if v != v else f"{v:.6g}" + (" (identical images)" if k == "psnr" and identical else "")
        print(f"{k:>8}: {text}")
    return EXIT_OK


def cmd_demo(args) -> int:
    from . import demo

    res = demo.run(args.out, codec=args.codec, quality=_quality(args.quality))
    print(demo.format_table(res.rows))
    print("\nwrote " + ", ".join(str(p) for p in res.files[:-1]))
    print(f"open {res.page.resolve()} in a browser to compare them")
    return EXIT_OK


def cmd_view(args) -> int:
    from .view import compare

    if len(args.images) > 1:
        if args.codecs is not None or args.bpp is not None:
            raise UsageError("--codecs and --bpp take one image; with several files view compares them as they are")
        page, rows = compare.view_files(args.images, args.output, args.force)
    else:
        target = compare.DEFAULT_BPP if args.bpp is None else _positive(args.bpp, "--bpp")
        show = not args.quiet and sys.stderr.isatty()
        progress = (lambda name: print(f"encoding with {name} ...", file=sys.stderr)) if show else None
        page, rows = compare.view_codecs(args.images[0], _names(args.codecs), target, args.output, args.force,
                                         progress=progress)
    if not args.quiet:
        print(compare.format_table(rows))
    print(f"wrote {page}")
    return EXIT_OK


def _positive(text: str, flag: str) -> float:
    from .errors import require_positive

    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{flag} must be a number, got {text!r}") from None
    require_positive(flag, value)
    return value


def cmd_vq_experiments(args) -> int:
    from . import experiments

    images = [n for n in args.images.split(",") if n] if args.images else None
    if args.out and Path(args.out).exists() and not args.force:
        raise UsageError(f"{args.out} exists (use --force to overwrite)")

    def progress(r):
        if not args.quiet:
            print(f"{r.image} {r.method:<7} k={r.n_clusters} n_init={r.n_init}: {r.file_bytes} B, "
                  f"{r.rate_percent:.1f} %, {r.psnr:.2f} dB, {r.encode_s:.2f} s", file=sys.stderr)

    grid = experiments.parse_grid(args.grid) if args.grid else experiments.THESIS_GRID
    rows = experiments.run_vq_experiments(args.data, images, grid, progress=progress)
    command = "mlcompress vq-experiments" + (f" --data {args.data}" if args.data else "") + \
        (f" --images {args.images}" if args.images else "") + (f" --grid {args.grid}" if args.grid else "") + \
        (f" --out {args.out} --force" if args.out else "")
    text = experiments.format_markdown(rows, command)
    if args.out:
        from .fileio import write_atomic

        write_atomic(args.out, text.encode(), force=args.force)
        print(f"wrote {args.out}")
    else:
        print(text)
    return EXIT_OK


def cmd_fuzz(args) -> int:
    from . import fuzz

    return fuzz.run_args(args)


def _names(text: str | None) -> list[str] | None:
    """A comma-separated list argument (None when absent)."""
    return None if text is None else [n.strip() for n in text.split(",") if n.strip()]


def cmd_bench(args) -> int:
    import shlex

    from .bench import run_bench

    qualities = [_quality(q) for q in _names(args.qualities)] if args.qualities else None
    anchors = True if args.anchors == "default" else _names(args.anchors)
    parts = ["mlcompress", "bench", "--out", args.out]
    for flag, value in (("--data", args.data), ("--codecs", args.codecs), ("--qualities", args.qualities), ("--limit", args.limit)):
        if value is not None:
            parts += [flag, str(value)]
    if args.anchors is not None:
        parts += ["--anchors"] + ([] if args.anchors == "default" else [args.anchors])
    if args.jobs != 1:
        parts += ["--jobs", str(args.jobs)]
    if args.cluster:
        parts += ["--cluster", args.cluster]
    for flag, value in (("--view-points", args.view_points), ("--view-images", args.view_images)):
        if value is not None:
            parts += [flag, str(value)]
    summary = run_bench(args.data, args.out, codecs=_names(args.codecs), qualities=qualities, jobs=args.jobs,
                        cluster=args.cluster,
                        anchors=anchors, limit=args.limit, recompute=args.recompute,
                        progress=not args.quiet and sys.stderr.isatty(),
                        command=" ".join(shlex.quote(p) for p in parts),
                        view_points=args.view_points, view_images=args.view_images)
    print(summary.describe())
    return EXIT_OK


def cmd_thesis_tables(args) -> int:
    from .bench import thesis

    path = thesis.write_tables(args.out, codecs=_names(args.codecs), data_dir=args.data, kodak_images=args.images)
    print(f"wrote {path}")
    return EXIT_OK


def _or(value, default):
    """An option's value, or the default when it was not given (0 is a value, checked as such)."""
    return default if value is None else value


def _train_cae_thesis(args) -> int:
    """`mlcompress train cae-thesis`: the thesis recipe (train/cae.py), defaults from CAERecipe."""
    from .train.cae import CAERecipe, train_cae

    d = CAERecipe()
    recipe = CAERecipe(
        data=args.data or d.data, epochs=_or(args.epochs, d.epochs), batch=_or(args.batch, d.batch),
        lr=_or(args.lr, d.lr), val_split=_or(args.val_split, d.val_split), seed=_or(args.seed, d.seed),
        threads=_or(args.threads, d.threads), max_steps=args.max_steps,
    )
    out = args.out or "checkpoints/cae-thesis"
    res = train_cae(recipe, out_dir=out, progress=None if args.quiet else print)
    print(f"cae-thesis: {res.steps} steps, {res.epochs_run} epochs, val MSE {res.val_loss[-1]:.6f}, "
          f"{res.wall_seconds:.0f} s -> {out}/cae-thesis.safetensors (sha256 {res.weights_sha256[:12]})")
    return EXIT_OK


def _train_learned(args) -> int:
    """`mlcompress train factorized|hyperprior|hyperprior-ctx[-vr]`: the rate-distortion loop
    (train/loop.py); the variable-rate model takes no --lambda (it trains every level's)."""
    from .train.loop import TrainConfig, train, variable_rate

    data = args.data or args.crops  # a crops pack stands for the folder it was made from
    need_lambda = not variable_rate(args.model)
    missing = [o for o, v in (("--data", data), ("--lambda", args.lmbda if need_lambda else 0), ("--steps", args.steps),
                              ("--out", args.out)) if v is None]
    if missing:
        raise UsageError(f"train {args.model} needs {', '.join(missing)}")
    d = TrainConfig(model=args.model, data=data, lmbda=args.lmbda, steps=args.steps, out=args.out)
    cfg = TrainConfig(
        model=args.model, data=data, lmbda=args.lmbda, steps=args.steps, out=args.out,
        N=_or(args.N, d.N), M=_or(args.M, d.M), refine=_or(args.refine, d.refine), groups=args.groups,
        batch=_or(args.batch, d.batch), crop=_or(args.crop, d.crop),
        lr=_or(args.lr, d.lr), threads=_or(args.threads, d.threads), seed=_or(args.seed, d.seed),
        resume=args.resume, init=args.init, init_refiner=args.init_refiner, init_gains=args.init_gains,
        level_weights=args.level_weights,
        checkpoint_minutes=args.checkpoint_minutes,
        time_limit_minutes=args.time_limit, progress=not args.quiet, quant=args.quant or d.quant, freeze=args.freeze or "",
        eval_every=_or(args.eval_every, d.eval_every), device=args.device or d.device,
        crops=args.crops, bf16=args.bf16, compile=args.compile, pieces=args.pieces,
    )
    res = train(cfg)
    print(f"stopped at step {res['step']} after {res['elapsed']:.0f} s; checkpoint {args.out}: {res['last']}")
    return EXIT_OK


def _train_restore(args) -> int:
    """`mlcompress train restore-avif|restore-jpeg|restore-webp`: the restoration networks of the
    +nn codecs (train/restore.py)."""
    from .train.restore import RestoreConfig, train_restore

    missing = [o for o, v in (("--data", args.data), ("--steps", args.steps), ("--out", args.out)) if v is None]
    if missing:
        raise UsageError(f"train {args.model} needs {', '.join(missing)}")
    d = RestoreConfig(base="", data="", out="")
    cfg = RestoreConfig(
        base=args.model.removeprefix("restore-"), data=args.data, out=args.out, steps=args.steps,
        batch=_or(args.batch, d.batch), crop=_or(args.crop, d.crop), lr=_or(args.lr, d.lr),
        threads=_or(args.threads, d.threads), seed=_or(args.seed, d.seed), resume=args.resume, init=args.init,
        width=args.width, depth=args.depth,
        per_image=_or(args.pairs_per_image, d.per_image), eval_every=_or(args.eval_every, d.eval_every),
        checkpoint_minutes=args.checkpoint_minutes,
        time_limit_minutes=args.time_limit, progress=not args.quiet, bf16=args.bf16,
    )
    res = train_restore(cfg)
    best = res["best"]
    print(f"stopped at step {res['step']} after {res['elapsed']:.0f} s; checkpoint {args.out}; best held-out "
          f"gain {best['gain_db']:+.3f} dB at step {best['step']}" if best else f"stopped at step {res['step']}")
    return EXIT_OK


def _comma_list(kind, example: str):
    """argparse type of a comma-separated list of ``kind`` (int for --groups' sizes, float for
    --level-weights); train checks that the values fit."""
    import argparse

    def parse(text: str) -> tuple:
        try:
            return tuple(kind(v) for v in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a list like {example}") from None

    return parse


#: `mlcompress train MODEL`: one entry per trainable model (other trainers add theirs here).
TRAINERS = {"cae-thesis": _train_cae_thesis, "factorized": _train_learned, "hyperprior": _train_learned,
            "hyperprior-ctx": _train_learned, "hyperprior-ctx-vr": _train_learned, "restore-avif": _train_restore, "restore-jpeg": _train_restore,
            "restore-webp": _train_restore}


#: options that only one kind of trainer reads (argparse dest -> flag); given to the other kind
#: they are refused rather than silently ignored
_CAE_ONLY = {"epochs": "--epochs", "val_split": "--val-split", "max_steps": "--max-steps"}
_LOOP_ONLY = {"lmbda": "--lambda", "steps": "--steps", "resume": "--resume", "init": "--init",
              "init_refiner": "--init-refiner", "init_gains": "--init-gains",
              "level_weights": "--level-weights", "N": "--N", "M": "--M", "refine": "--refine", "groups": "--groups",
              "crop": "--crop", "quant": "--quant", "freeze": "--freeze", "eval_every": "--eval-every",
              "time_limit": "--time-limit", "device": "--device", "crops": "--crops", "bf16": "--bf16",
              "compile": "--compile", "pieces": "--pieces"}


#: options only the restoration trainer reads
_RESTORE_ONLY = {"width": "--width", "depth": "--depth", "pairs_per_image": "--pairs-per-image"}

#: options of the rate-distortion loop that a restoration network has no use for
_RD_ONLY = {k: _LOOP_ONLY[k] for k in ("lmbda", "init_refiner", "init_gains", "level_weights", "N", "M", "refine", "groups", "quant", "freeze", "device",
                                        "crops", "compile", "pieces")}


def cmd_train(args) -> int:
    trainer = TRAINERS.get(args.model)
    if trainer is None:
        raise UsageError(f"unknown model {args.model!r}; trainable models: {', '.join(sorted(TRAINERS))}")
    foreign = ({**_LOOP_ONLY, **_RESTORE_ONLY} if trainer is _train_cae_thesis
               else {**_CAE_ONLY, **_RD_ONLY} if trainer is _train_restore else {**_CAE_ONLY, **_RESTORE_ONLY})
    given = [flag for dest, flag in foreign.items() if getattr(args, dest) not in (None, False)]
    if given:
        hint = "" if trainer is _train_cae_thesis else " (--steps is the total step count)"
        raise UsageError(f"train {args.model} does not take {', '.join(given)}{hint}")
    return trainer(args)


def cmd_crops(args) -> int:
    from .train.crops import pack

    res = pack(args.data, args.out, args.crop, args.eval_crops, args.max_mib, args.force)
    print(f"{args.out}: {res['images']} images ({res['left_out']} left out by --max-mib), "
          f"{res['bytes'] / 2**20:.1f} MiB, {res['eval_crops']} fixed crops of {res['crop']} px")
    return EXIT_OK


def cmd_pieces(args) -> int:
    from .train import pieces

    if args.action == "join":
        res = pieces.join(args.source, args.out, args.force)
        print(f"{args.out}: step {res['step']}, optimizer state {res['optimizer']}")
        return EXIT_OK
    from .errors import require_positive
    from .train.loop import load_checkpoint

    require_positive("--max-mib", args.max_mib)
    if pieces.is_pieces(args.source):
        raise UsageError(f"{args.source} is already a folder of pieces")
    out = Path(args.out)
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise UsageError(f"{args.out} exists and is not an empty folder")
    man = pieces.write_pieces(args.out, load_checkpoint(args.source), args.optimizer, int(args.max_mib * 2**20))
    print(f"{args.out}: step {man['step']}, {len(man['pieces'])} pieces, {man['bytes'] / 2**20:.1f} MiB, "
          f"optimizer state {man['optimizer']}")
    return EXIT_OK


def cmd_export(args) -> int:
    if args.runs:
        from .train.evaluate import publish

        cmd = "mlcompress export " + " ".join(
            f"--{k} {v}" for k, v in (("runs", args.runs), ("arch", args.arch), ("kodak", args.kodak),
                                       ("cells", args.cells)) if v)
        res = publish(args.arch, args.runs, args.kodak, args.cells, command=cmd)
        print(json.dumps(res["kodak"], indent=2))
        return EXIT_OK
    from .train.export import WEIGHTS_DIR, export

    if not (args.checkpoint and args.name):
        raise UsageError("export needs CHECKPOINT --name NAME, or --runs DIR --arch ARCH")
    rec = export(args.checkpoint, args.name, args.out_dir or WEIGHTS_DIR, views=args.views)
    if rec.get("model") == "restore" and args.cells:  # a restoration network's card, from bench cells
        from .fileio import write_atomic
        from .train.restore import model_card

        cmd = (f"mlcompress export {args.checkpoint} --name {args.name}"
               + (f" --views {args.views}" if args.views else "") + f" --cells {args.cells}")
        card = model_card(rec, args.cells, cmd)
        write_atomic(Path(args.out_dir or WEIGHTS_DIR) / f"{args.name}.md", card.encode(), force=True)
    print(json.dumps({k: v for k, v in rec.items() if k not in ("held_out_curve", "train_curve")}, indent=2))
    return EXIT_OK


def _add_cluster(parser, what: str = "with a folder: run") -> None:
    parser.add_argument("--cluster", metavar="ADDRESS",
                        help=f"{what} on a Dask cluster: a scheduler (tcp://HOST:8786), or local / local:N for "
                             "N worker processes on this machine (needs mlcompress[cluster]; see README)")


def _add_file_options(parser) -> None:
    """The options that compress, decompress and enhance share: output safety and folder runs."""
    parser.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("-r", "--recursive", action="store_true", help="with a folder: include subfolders")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="with a folder: worker processes")
    _add_cluster(parser)


MAX_PIXELS_HELP = "refuse images with more pixels than this (default 89478485; also $MLCOMPRESS_MAX_PIXELS)"


def build_parser() -> argparse.ArgumentParser:
    from . import fuzz  # numpy only, as the package itself
    from .entropy.quantize import QUANT_MODES  # no torch at import
    from .train.loop import DEVICES, FREEZE_MODES  # no torch at import

    p = _Parser(prog="mlcompress", description="Image compression with machine-learning methods.")
    p.add_argument("--version", action="version", version=f"mlcompress {__version__}")
    p.add_argument("--max-pixels", type=int, default=None, help=MAX_PIXELS_HELP)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    c = sub.add_parser("compress", help="compress an image file")
    c.add_argument("input", help="image file, a folder of images (with -o OUTDIR), or - for stdin")
    c.add_argument("-o", "--output", help="output file (default: input name with the codec's extension; - for stdout)")
    c.add_argument("-c", "--codec", help="codec name (see `mlcompress codecs`)")
    c.add_argument("-q", "--quality", help="the codec's quality knob")
    _add_file_options(c)
    c.add_argument("--resize", type=int, metavar="N",
                   help="cae-thesis only: the thesis's NON-honest protocol, shrink to NxN (e.g. 32) before coding")
    c.set_defaults(func=cmd_compress)

    d = sub.add_parser("decompress", help="decompress a file to PNG")
    d.add_argument("input", help=".mlc (or JPEG, WebP, ...) file, a folder of them (with -o OUTDIR), or - for stdin")
    d.add_argument("-o", "--output", help="output PNG (default: NAME.decoded.png; - for stdout)")
    _add_file_options(d)
    d.add_argument("--png-level", type=int, metavar="0-9",
                   help="zlib level of the PNG (default 6, Pillow's; 9: about 8 %% smaller, 8x the time)")
    d.add_argument("--base", action="store_true",
                   help="write the embedded AVIF/JPEG/WebP file of an +nn file, byte for byte")
    d.set_defaults(func=cmd_decompress)

    n = sub.add_parser("enhance", help="restore a JPEG, WebP or AVIF file with a learned network, to PNG")
    n.add_argument("input", help="JPEG/WebP/AVIF file, a folder of them (with -o OUTDIR), or - for stdin")
    n.add_argument("-o", "--output", help="output PNG (default: NAME.enhanced.png; - for stdout)")
    _add_file_options(n)
    n.set_defaults(func=cmd_enhance)

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

    z = sub.add_parser("fuzz", help="fuzz the .mlc decoders with mutated files (developer tool)")
    fuzz.add_arguments(z)  # the options of `python -m mlcompress.fuzz`, defined once
    z.set_defaults(func=cmd_fuzz)

    t = sub.add_parser("train", help="train a model (e.g. cae-thesis) and write its weights")
    t.add_argument("model", help="model to train: " + ", ".join(sorted(TRAINERS)))
    t.add_argument("--data", help="training images (cae-thesis: ../shared/data/cifar10)")
    t.add_argument("--epochs", type=int, help="cae-thesis: epochs (default 50)")
    t.add_argument("--batch", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--val-split", type=float, help="cae-thesis: validation share (default 0.05)")
    t.add_argument("--seed", type=int)
    t.add_argument("--threads", type=int, help="torch threads (default 1)")
    t.add_argument("--max-steps", type=int, help="cae-thesis: stop after this many optimiser steps")
    t.add_argument("--out", help="output folder (default checkpoints/MODEL)")
    t.add_argument("--quiet", action="store_true")
    # factorized / hyperprior (train/loop.py)
    t.add_argument("--lambda", dest="lmbda", type=float,
                   help="factorized/hyperprior: rate-distortion weight (hyperprior-ctx-vr takes none: it trains "
                        "every level's, one per batch)")
    t.add_argument("--steps", type=int,
                   help="factorized/hyperprior/restore-*: total steps (a resumed run counts done ones)")
    t.add_argument("--resume", action="store_true", help="continue the checkpoint given by --out")
    t.add_argument("--init", help="start from these weights (.pt checkpoint or .safetensors)")
    t.add_argument("--init-refiner",
                   help="factorized/hyperprior: start the Refiner (--refine) from these weights' Refiner, "
                        "e.g. another quality level's (the rest comes from --init)")
    t.add_argument("--init-gains",
                   help="hyperprior-ctx-vr: start every level's gain vectors from these variable-rate weights' "
                        "(the rest comes from --init; without it the gains start from sqrt(lambda ratio))")
    t.add_argument("--level-weights", type=_comma_list(float, "2,1,1,1,1,2"),
                   help="hyperprior-ctx-vr: how often each of the 6 levels is drawn, e.g. 2,1,1,1,1,2 "
                        "(default: uniformly)")
    t.add_argument("--N", type=int, help="factorized/hyperprior: transform channels (default 64)")
    t.add_argument("--M", type=int, help="factorized/hyperprior: latent channels (default 96); "
                   "larger than --init's hyperprior: its weights are widened, decoding as before")
    t.add_argument("--refine", type=int,
                   help="factorized/hyperprior: end g_s with a residual CNN of this many channels at full "
                        "resolution (nn.models.Refiner; 0: none, the default); with --init from weights "
                        "without one it starts as the identity")
    t.add_argument("--groups", type=_comma_list(int, "8,8,16,32,32"),
                   help="hyperprior-ctx(-vr): the context model's channel groups, sizes in channel order "
                        "summing to M (e.g. 8,8,16,32,32; default: 4 equal groups); with --init from "
                        "weights with other groups the context nets start afresh")
    t.add_argument("--crop", type=int, help="factorized/hyperprior/restore-*: crop size (default 128)")
    t.add_argument("--width", type=int, help="restore-*: channels of the network (default: --init's, else 32); wider "
                   "than --init's network: it is widened, computing the same image until trained further")
    t.add_argument("--depth", type=int, help="restore-*: convolution layers of the network (default: --init's, "
                   "else 7); deeper than --init's network: identity layers go in before its output layer")
    t.add_argument("--pairs-per-image", type=int,
                   help="restore-*: squares cut from each training photo and coded once, one quality band "
                        "each (default 4); more gives the network more distinct data")
    t.add_argument("--quant", choices=QUANT_MODES,
                   help="factorized/hyperprior: the latent the decoder trains on: noisy (default) or rounded "
                        "with a straight-through gradient (the rate always uses the noisy one)")
    t.add_argument("--freeze", choices=[m for m in FREEZE_MODES if m],
                   help="transforms: keep g_a and g_s as --init gave them and train only the entropy model on "
                        "the rate (e.g. a hyperprior-ctx context model on a trained hyperprior); "
                        "all-but-synthesis: train only g_s, on the distortion of the rounded latents "
                        "(with --quant round; files' bytes stay the same, their decoding improves); "
                        "all-but-refiner: train only the Refiner that --refine adds, likewise")
    t.add_argument("--eval-every", type=int,
                   help="factorized/hyperprior: steps between losses on fixed crops; restore-*: between held-out "
                        "gains, the best of which is kept (default 500; 0: never)")
    t.add_argument("--device", choices=DEVICES,
                   help="factorized/hyperprior: train on the CPU (default) or a CUDA GPU; checkpoints resume on either")
    t.add_argument("--checkpoint-minutes", type=float, default=5.0)
    t.add_argument("--time-limit", type=float,
                   help="factorized/hyperprior/restore-*: stop (and checkpoint) after this many minutes")
    t.add_argument("--crops", help="factorized/hyperprior: cut the batches on --device from this crops pack "
                   "(`mlcompress crops`) instead of reading --data (docs/GPU.md)")
    t.add_argument("--bf16", action="store_true",
                   help="factorized/hyperprior: run g_a's and g_s's bodies under bfloat16 autocast (train/accel.py); "
                        "restore-*: the network's forward pass (about twice as fast where the CPU has bfloat16)")
    t.add_argument("--compile", action="store_true", help="factorized/hyperprior: torch.compile the training step")
    t.add_argument("--pieces", action="store_true",
                   help="factorized/hyperprior: --out is a folder of checkpoint pieces of at most 16 MiB "
                        "(`mlcompress pieces`; docs/GPU.md)")
    t.set_defaults(func=cmd_train)

    k = sub.add_parser("crops", help="pack a training folder into one file whose crops a GPU cuts itself (docs/GPU.md)")
    k.add_argument("--data", required=True, help="training images, e.g. ../shared/data/train")
    k.add_argument("--out", required=True, help="the crops pack to write (.safetensors)")
    k.add_argument("--crop", type=int, default=256, help="crop size of the fixed evaluation crops (default 256)")
    k.add_argument("--eval-crops", type=int, default=8, help="how many fixed evaluation crops (default 8)")
    k.add_argument("--max-mib", type=float, default=40.0, help="size limit of the pack (default 40 MiB)")
    k.add_argument("-f", "--force", action="store_true", help="overwrite an existing --out")
    k.set_defaults(func=cmd_crops)

    g = sub.add_parser("pieces", help="cut a training checkpoint into pieces of at most 16 MiB, or join them back")
    g.add_argument("action", choices=["split", "join"])
    g.add_argument("source", help="split: a checkpoint (.pt); join: a folder of pieces")
    g.add_argument("--out", required=True, help="split: the folder of pieces; join: the checkpoint to write")
    g.add_argument("--optimizer", choices=["auto", "fp32", "bf16", "dropped"], default="auto",
                   help="split: how the optimizer state is kept (auto: the best that fits --max-mib)")
    g.add_argument("--max-mib", type=float, default=64.0, help="split: size limit of all pieces (default 64 MiB)")
    g.add_argument("-f", "--force", action="store_true", help="join: overwrite an existing --out")
    g.set_defaults(func=cmd_pieces)

    e = sub.add_parser("demo", help="compress scikit-image's astronaut photo and compare with JPEG")
    e.add_argument("--out", default="out")
    e.add_argument("-c", "--codec")
    e.add_argument("-q", "--quality")
    e.set_defaults(func=cmd_demo)

    w = sub.add_parser("view", help="compare images in a browser: one image through several codecs at one bpp, "
                                    "or existing files side by side")
    w.add_argument("images", nargs="+", metavar="IMAGE",
                   help="one image to encode, or several files to compare (the first is the reference)")
    w.add_argument("--codecs", help="comma-separated codecs (default: the default codec, jpeg and avif)")
    w.add_argument("--bpp", help="the target bits per pixel each codec's quality is searched for (default 0.5)")
    w.add_argument("-o", "--output", default="view.html",
                   help="the page (default view.html; its images go to view_files/ beside it)")
    w.add_argument("-f", "--force", action="store_true", help="overwrite an existing page")
    w.add_argument("--quiet", action="store_true", help="print only the page's path")
    w.set_defaults(func=cmd_view)

    v = sub.add_parser("vq-experiments", help="the thesis's RLE/VQ experiments (n_clusters/n_init grid) as a table")
    v.add_argument("--data", help="folder of images (default: ../shared/data/kodak if present)")
    v.add_argument("--images", help="comma-separated image names (default kodim01,kodim07,kodim23)")
    v.add_argument("--grid", help="n_clusters/n_init settings, e.g. 64/10,5/5 (default: the thesis's 64/10,128/10,5/5,64/5)")
    v.add_argument("--out", help="write the Markdown table here (default: print it)")
    v.add_argument("-f", "--force", action="store_true", help="overwrite an existing --out file")
    v.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    v.set_defaults(func=cmd_vq_experiments)

    b = sub.add_parser("bench", help="rate-distortion and speed of every codec on a folder of images")
    b.add_argument("--data", help="folder of images (default: ../shared/data/kodak beside the repository)")
    b.add_argument("--codecs", help="comma-separated codec names (default: every available codec)")
    b.add_argument("--qualities", help="comma-separated qualities replacing each lossy codec's default sweep")
    b.add_argument("--out", default="bench/results", help="output folder (default bench/results)")
    b.add_argument("--jobs", type=int, default=1, help="parallel worker processes (default 1)")
    _add_cluster(b, "measure")
    b.add_argument("--anchors", nargs="?", const="default", metavar="NAMES",
                   help="draw published curves: the default set, or comma-separated names "
                        "(e.g. compressai-kodak/vtm,tfc-kodak/bpg444)")
    b.add_argument("--limit", type=int, help="use only the first N images")
    b.add_argument("--recompute", action="store_true", help="measure the chosen codecs again, ignoring the cache")
    b.add_argument("--view-points", type=int, metavar="N",
                   help="report.html's viewer keeps at most N decoded images per codec and image (default 4; "
                        "0: no per-image viewer)")
    b.add_argument("--view-images", type=int, metavar="N",
                   help="report.html's viewer shows the first N images (default 4)")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=cmd_bench)

    t = sub.add_parser("thesis-tables", help="reproduce the thesis's tables beside proper measurements")
    t.add_argument("--out", default="docs/THESIS_TABLES.md")
    t.add_argument("--codecs", help="comma-separated codecs, for every table (default: jpeg, webp and "
                   "cae-thesis when available; the Kodak tables add the thesis's pipelines and the other codecs)")
    t.add_argument("--data", help="Kodak folder (default: ../shared/data/kodak beside the repository)")
    t.add_argument("--images", type=int, default=4, help="how many Kodak images (default 4)")
    t.set_defaults(func=cmd_thesis_tables)

    x = sub.add_parser("export", help="freeze a factorized/hyperprior checkpoint into shipped weights")
    x.add_argument("checkpoint", nargs="?", help="a training checkpoint (.pt)")
    x.add_argument("--name", help="weights name, e.g. hyperprior-q3")
    x.add_argument("--out-dir", help="default: the package's weights/ folder")
    x.add_argument("--runs", help="export every RUNS/q<level>.pt of --arch and write the model card")
    x.add_argument("--arch", choices=["factorized", "hyperprior", "hyperprior-ctx"], default="hyperprior")
    x.add_argument("--kodak", help="with --runs: measure these Kodak images for the model card")
    x.add_argument("--views", type=int, help="with a restore-* checkpoint: orientations its decoder averages "
                   "(1..8: flips, then transposes; default 1; each costs one more pass of the network)")
    x.add_argument("--cells", help="with --runs: bench cells.jsonl for JPEG/WebP/AVIF at the same bpp; with a restore-* checkpoint: the cells its model card reads")
    x.set_defaults(func=cmd_export)
    for name, command in sub.choices.items():  # also after the command: `compress x.png --max-pixels N`
        if name != "fuzz":  # which has its own --fuzz-max-pixels
            command.add_argument("--max-pixels", type=int, default=argparse.SUPPRESS, help=MAX_PIXELS_HELP)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.max_pixels is not None:
            from .limits import set_max_pixels

            set_max_pixels(args.max_pixels)
        with sigterm_as_interrupt():  # `kill`, `timeout`: the same clean stop as Ctrl-C
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
