"""Training the restoration networks of the ``+nn`` codecs (``mlcompress train restore-<base>``).

Data: every photo of the training folder gives ``per_image`` pairs. For each pair the photo is
downscaled by a random factor in 0.7..1.0 (which washes out the photo's own JPEG artefacts), a
random CROP x CROP square is cut, the square is encoded with the base codec at a random quality
(stratified over the base's benchmark range, one quality band per pair) and decoded again. The
pairs are made once and cached outside the repository (``$XDG_CACHE_HOME/mlcompress`` or
``~/.cache/mlcompress``), keyed by the base codec, the recipe and the photo list: no step ever
encodes. ``VAL_IMAGES`` photos, drawn with a fixed seed, are held out for validation; Kodak is
never used.

Steps: random ``crop`` x ``crop`` windows of the cached squares (offsets on the 8-pixel block grid
the base codec used, one of the 8 flips/transposes), loss MSE on the 0..255 scale, Adam, the
learning rate dropped tenfold for the last quarter of the steps. Every ``eval_every`` steps the
held-out pairs are restored whole and the mean PSNR gain over the base is logged; the checkpoint
keeps the model with the best validation gain, and export writes that one.

A checkpoint (written atomically every ``checkpoint_minutes``, and at the end or on Ctrl-C) holds
the config, model, Adam state, step, RNG states, history and the best model, so ``resume``
continues where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..heap import retained_heap
from ..interrupt import grad_mode_restored, sigterm_as_interrupt

#: base codecs with a restoration network
BASES = ("avif", "jpeg", "webp")
VAL_IMAGES = 32
#: the seed that picks the held-out photos (fixed: resumed and repeated runs validate on the same ones)
VAL_SEED = 20261204
SQUARE = 256
#: squares per training photo when --pairs-per-image is not given (every run before the flag used it,
#: so a recorded earlier run without the field had this many)
DEFAULT_PAIRS = 4
CACHE_VERSION = 1


@dataclass
class RestoreConfig:
    base: str
    data: str
    out: str
    steps: int = 20000
    batch: int = 16
    crop: int = 128
    lr: float = 1e-3
    threads: int = 1
    seed: int = 0
    resume: bool = False
    init: str | None = None  # start from these exported weights (restore-<base>.safetensors)
    # None: the resumed checkpoint's, else --init's network's, else nn.restore.WIDTH / DEPTH (resolve_shape)
    width: int | None = None
    depth: int | None = None
    per_image: int = DEFAULT_PAIRS
    cache: str | None = None
    eval_every: int = 500
    checkpoint_minutes: float = 5.0
    time_limit_minutes: float | None = None
    progress: bool = True
    bf16: bool = False  # the forward pass under bfloat16 autocast (about twice as fast on a CPU with native bfloat16)


def drop_step(steps: int) -> int:
    """The first step of a run of ``--steps`` ``steps`` that trains at a tenth of the lr (75 % in)."""
    return math.ceil(0.75 * steps)


def resolve_shape(cfg: RestoreConfig, ck: dict | None = None) -> RestoreConfig:
    """``cfg`` with ``width`` and ``depth`` filled in where they were left out: those of ``ck``,
    the checkpoint being resumed, else the ``--init`` network's (so continuing a network keeps its
    shape; it grows only when asked to), else the shipped architecture's (nn.restore.WIDTH, DEPTH)."""
    from dataclasses import replace

    if cfg.width is not None and cfg.depth is not None:
        return cfg
    shape = {}
    if ck is not None:
        shape = ck.get("config", {})
    elif cfg.init and str(cfg.init).endswith(".safetensors") and Path(cfg.init).is_file():
        from ..weights import read_safetensors

        _, meta, _ = read_safetensors(cfg.init)
        shape = {k: int(meta[k]) for k in ("width", "depth") if str(meta.get(k, "")).isdigit()}
    if not shape.get("width") or not shape.get("depth"):  # the checks in train_restore name what is wrong
        from ..nn.restore import DEPTH, WIDTH

        shape = {"width": WIDTH, "depth": DEPTH}
    return replace(cfg, width=shape["width"] if cfg.width is None else cfg.width,
                   depth=shape["depth"] if cfg.depth is None else cfg.depth)


def check_config(cfg: RestoreConfig) -> None:
    from ..errors import require_at_least, require_positive

    if cfg.base not in BASES:
        raise UsageError(f"no restoration network for base codec {cfg.base!r} (have {', '.join(BASES)})")
    for name in ("steps", "batch", "threads", "width"):
        require_at_least(f"--{name}", getattr(cfg, name), 1)
    require_at_least("--pairs-per-image", cfg.per_image, 1)
    require_at_least("--depth", cfg.depth, 2)
    require_at_least("--eval-every", cfg.eval_every, 0)
    require_at_least("--seed", cfg.seed, 0)
    require_positive("--lr", cfg.lr)
    require_positive("--checkpoint-minutes", cfg.checkpoint_minutes)
    require_positive("--time-limit", cfg.time_limit_minutes)
    if cfg.crop % 16 or not 16 <= cfg.crop <= SQUARE:
        raise UsageError(f"--crop must be a multiple of 16 in 16..{SQUARE}, got {cfg.crop}")


def quality_bands(base: str, k: int) -> list[tuple[int, int]]:
    """k equal integer bands covering the base codec's benchmark quality range."""
    from ..registry import get

    qs = get(base).bench_qualities
    lo, hi = int(min(qs)), int(max(qs))
    edges = np.linspace(lo, hi + 1, k + 1)
    return [(int(math.ceil(edges[i])), max(int(math.ceil(edges[i])), int(math.ceil(edges[i + 1])) - 1)) for i in range(k)]


def _cache_root() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "mlcompress"


def _photos(folder: str) -> list[Path]:
    from ..fileio import require_folder
    from ..image import IMAGE_EXTENSIONS

    root = require_folder(folder, "training data folder")
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if len(files) < VAL_IMAGES + 1:
        raise UsageError(f"{root} holds {len(files)} images; restoration training needs more than {VAL_IMAGES} "
                         f"({VAL_IMAGES} are held out for validation)")
    return files


def split(files: list[Path]) -> tuple[list[Path], list[Path]]:
    """(training photos, the VAL_IMAGES held-out photos), the held-out ones drawn with VAL_SEED."""
    held = set(np.random.default_rng(VAL_SEED).choice(len(files), VAL_IMAGES, replace=False).tolist())
    return [f for i, f in enumerate(files) if i not in held], [f for i, f in enumerate(files) if i in held]


def _make_pairs(files: list[Path], base: str, per_image: int, seed: int, log) -> dict:
    """Encode and decode ``per_image`` squares of every photo: originals, decoded (uint8
    n x k x S x S x 3) and the quality of each (n x k)."""
    from PIL import Image

    from ..image import read_image
    from ..registry import get

    codec = get(base)
    codec.require_available()
    bands = quality_bands(base, per_image)
    rng = np.random.default_rng(seed)
    n = len(files)
    orig = np.empty((n, per_image, SQUARE, SQUARE, 3), np.uint8)
    dec = np.empty_like(orig)
    qual = np.empty((n, per_image), np.float32)
    t0 = time.monotonic()
    for i, path in enumerate(files):
        img = read_image(path)
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        im = Image.fromarray(np.ascontiguousarray(img[:, :, :3]))
        for j, (lo, hi) in enumerate(bands):
            w, h = im.size
            s = float(rng.uniform(0.7, 1.0))
            s = max(s, SQUARE / min(w, h))
            side = SQUARE / s
            x0, y0 = float(rng.uniform(0, w - side)), float(rng.uniform(0, h - side))
            sq = np.asarray(im.resize((SQUARE, SQUARE), Image.BICUBIC, box=(x0, y0, x0 + side, y0 + side)))
            q = int(rng.integers(lo, hi + 1))
            orig[i, j] = sq
            dec[i, j] = codec.decode(codec.encode(sq, q))
            qual[i, j] = q
        if log and (i + 1) % 50 == 0:
            log(f"cache: {i + 1}/{n} photos encoded with {base} ({time.monotonic() - t0:.0f} s)")
    return {"orig": orig, "dec": dec, "quality": qual}


def load_pairs(cfg: RestoreConfig, log=print) -> tuple[dict, dict, Path]:
    """(training pairs, held-out pairs, cache folder), made once and then read from the cache."""
    files = _photos(cfg.data)
    train_files, val_files = split(files)
    from ..registry import get

    key = json.dumps({"v": CACHE_VERSION, "base": cfg.base, "k": cfg.per_image, "square": SQUARE,
                      "codec": get(cfg.base).description, "files": [f.name for f in files],
                      "sizes": [f.stat().st_size for f in files]}, sort_keys=True)
    folder = Path(cfg.cache) if cfg.cache else _cache_root() / f"restore-{cfg.base}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    out = []
    for part, part_files, seed in (("train", train_files, 1), ("val", val_files, 2)):
        path = folder / f"{part}.npz"
        if not path.is_file():
            log(f"cache: encoding {len(part_files)} {part} photos with {cfg.base} into {folder}")
            pairs = _make_pairs(part_files, cfg.base, cfg.per_image, seed, log)
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{part}.part.npz"
            np.savez(tmp, **pairs)
            os.replace(tmp, path)
            (folder / "key.json").write_text(key)
        with np.load(path) as z:
            out.append({k: z[k] for k in z.files})
    return out[0], out[1], folder


def _batch(pairs: dict, rng: np.random.Generator, n: int, crop: int, base: str):
    """(decoded, original, quality) tensors of n random crops: float N x 3 x crop x crop in 0..1."""
    import torch

    from ..codecs.restored import normalised_quality
    from .loop import to_tensor

    count, k = pairs["quality"].shape
    xs, ys, qs = [], [], []
    for _ in range(n):
        i, j = int(rng.integers(count)), int(rng.integers(k))
        y0, x0 = (int(rng.integers((SQUARE - crop) // 8 + 1)) * 8 for _ in range(2))
        a = pairs["dec"][i, j, y0 : y0 + crop, x0 : x0 + crop]
        b = pairs["orig"][i, j, y0 : y0 + crop, x0 : x0 + crop]
        t = int(rng.integers(8))
        if t & 1:
            a, b = a[:, ::-1], b[:, ::-1]
        if t & 2:
            a, b = a[::-1], b[::-1]
        if t & 4:
            a, b = a.transpose(1, 0, 2), b.transpose(1, 0, 2)
        xs.append(a)
        ys.append(b)
        qs.append(normalised_quality(base, pairs["quality"][i, j]))
    return to_tensor(np.stack(xs)), to_tensor(np.stack(ys)), torch.tensor(qs)


def validate(model, pairs: dict, base: str) -> dict:
    """Mean PSNR (dB, RGB, peak 255) of the held-out squares before and after restoration,
    measured on the uint8 images the codec would write."""
    import torch

    from ..codecs.restored import normalised_quality
    from ..metrics import psnr
    from ..nn.restore import run_views
    from .loop import to_tensor

    count, k = pairs["quality"].shape
    before, after = [], []
    model.eval()
    with torch.no_grad():
        for j in range(k):
            x = to_tensor(pairs["dec"][:, j])
            q = torch.tensor([normalised_quality(base, v) for v in pairs["quality"][:, j]])
            for s in range(0, count, 8):
                y = run_views(model, x[s : s + 8], q[s : s + 8]).mul(255).round().clamp(0, 255).to(torch.uint8)
                y = y.permute(0, 2, 3, 1).numpy()
                for t in range(len(y)):
                    before.append(psnr(pairs["orig"][s + t, j], pairs["dec"][s + t, j]))
                    after.append(psnr(pairs["orig"][s + t, j], y[t]))
    model.train()
    b, a = float(np.mean(before)), float(np.mean(after))
    return {"psnr_base": round(b, 4), "psnr": round(a, 4), "gain_db": round(a - b, 4)}


def train_restore(cfg: RestoreConfig, log=print) -> dict:
    """Train (or resume) a restoration network; returns the final summary."""
    import torch

    from ..nn.restore import build
    from .loop import load_checkpoint, save_checkpoint

    out = Path(cfg.out)
    ck = load_checkpoint(out) if cfg.resume and out.exists() else None
    cfg = resolve_shape(cfg, ck)
    check_config(cfg)
    torch.set_num_threads(cfg.threads)
    out.parent.mkdir(parents=True, exist_ok=True)
    if ck is not None:
        saved = ck["config"]
        if saved.get("kind") != "restore":
            raise UsageError(f"--resume: {out} is not a restoration checkpoint")
        for key in ("base", "width", "depth", "per_image"):
            if saved.get(key) != getattr(cfg, key):
                raise UsageError(f"--resume: checkpoint has {key}={saved.get(key)}, asked for {getattr(cfg, key)}")
    elif out.exists():
        raise UsageError(f"{out} exists (use --resume to continue it)")

    train_pairs, val_pairs, cache = load_pairs(cfg, log)
    torch.manual_seed(cfg.seed)
    model = build(cfg.width, cfg.depth)
    earlier = ck.get("earlier", []) if ck is not None else []  # the runs behind --init's weights
    if ck is None and cfg.init:  # exported weights: a run continued in another session
        from ..weights import read_safetensors

        tensors, meta, _ = read_safetensors(cfg.init)
        if meta.get("model") != "restore" or meta.get("base") != cfg.base \
                or not all(str(meta.get(k, "")).isdigit() for k in ("width", "depth")) \
                or int(meta["width"]) > cfg.width or int(meta["depth"]) > cfg.depth:
            raise UsageError(f"--init: {cfg.init} is not a restoration network of {cfg.base} with at most "
                             f"{cfg.depth} layers and {cfg.width} channels")
        from ..nn.restore import grow

        model.load_state_dict(grow({k: v.float() for k, v in tensors.items()}, cfg.width, cfg.depth))
        grown = [f"{a} -> {b} {what}" for what, a, b in (("channels", int(meta["width"]), cfg.width),
                                                         ("layers", int(meta["depth"]), cfg.depth)) if a < b]
        log(f"init: {cfg.init}" + (f" (grown {', '.join(grown)})" if grown else ""))
        earlier = earlier_runs(cfg.init)
    model = model.to(memory_format=torch.channels_last).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    step, elapsed, history, evals, best = 0, 0.0, [], [], None
    stages = []
    if ck is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        rng.bit_generator.state = ck["numpy_rng"]
        torch.set_rng_state(ck["torch_rng"])
        step, elapsed, history, evals, best = ck["step"], ck["elapsed"], ck["history"], ck["evals"], ck["best"]
        stages = ck["stages"]
    cfg_dict = {**asdict(cfg), "kind": "restore"}
    stages.append({"from_step": step, "to_step": step, "lr": cfg.lr, "batch": cfg.batch, "crop": cfg.crop,
                   "threads": cfg.threads, "seed": cfg.seed, "steps": cfg.steps, "bf16": cfg.bf16,
                   "init": cfg.init if ck is None else None})

    def lr_at(s: int) -> float:
        return cfg.lr if s < drop_step(cfg.steps) else cfg.lr / 10

    def evaluate():
        nonlocal best
        e = {"step": step, **validate(model, val_pairs, cfg.base)}
        evals.append(e)
        if best is None or e["gain_db"] > best["gain_db"]:
            best = {"step": step, "gain_db": e["gain_db"],
                    "model": {k: v.detach().clone() for k, v in model.state_dict().items()}}
        log(f"step {step}: held-out PSNR {e['psnr_base']:.3f} -> {e['psnr']:.3f} dB ({e['gain_db']:+.3f})")

    def state():
        stages[-1]["to_step"] = step
        return {"config": cfg_dict, "stages": stages, "model": model.state_dict(), "optimizer": opt.state_dict(),
                "numpy_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(), "step": step,
                "elapsed": elapsed, "history": history, "evals": evals, "best": best,
                "data_images": int(train_pairs["quality"].shape[0]), "cache": str(cache), "earlier": earlier}

    if cfg.eval_every and (not evals or evals[-1]["step"] != step):
        evaluate()
    bar = None
    if cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=step, mininterval=10, ascii=True)
    start = time.monotonic()
    run_start = elapsed
    last_ck = start
    acc, n_acc = 0.0, 0
    with sigterm_as_interrupt(), grad_mode_restored(), retained_heap():
        try:
            while step < cfg.steps:
                if cfg.time_limit_minutes is not None and time.monotonic() - start > 60 * cfg.time_limit_minutes:
                    break
                for g in opt.param_groups:
                    g["lr"] = lr_at(step)
                x, y, q = _batch(train_pairs, rng, cfg.batch, cfg.crop, cfg.base)
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
                    pred = model(x, q)
                loss = torch.nn.functional.mse_loss(pred * 255, y * 255)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                acc += float(loss.detach())
                n_acc += 1
                elapsed = run_start + time.monotonic() - start
                if step % 50 == 0 or step == cfg.steps:
                    mse = acc / n_acc
                    history.append({"step": step, "elapsed": round(elapsed, 1), "mse": round(mse, 4),
                                    "psnr": round(10 * math.log10(255**2 / max(mse, 1e-12)), 4)})
                    acc, n_acc = 0.0, 0
                if cfg.eval_every and step % cfg.eval_every == 0:
                    evaluate()
                if bar is not None:
                    bar.update(1)
                    if step % 10 == 0:
                        bar.set_postfix(mse=f"{float(loss.detach()):.2f}", refresh=False)
                if time.monotonic() - last_ck > 60 * cfg.checkpoint_minutes:
                    save_checkpoint(out, state())
                    last_ck = time.monotonic()
            if cfg.eval_every and evals[-1]["step"] != step:
                evaluate()
        finally:
            if bar is not None:
                bar.close()
            if step > 0:
                save_checkpoint(out, state())
    return {"step": step, "elapsed": elapsed, "best": None if best is None else {k: best[k] for k in ("step", "gain_db")}}


def _other_squares(theirs: int, ours: int) -> str:
    """A card's note that an earlier run's held-out gain was measured on other held-out squares."""
    return "" if theirs == ours else f" (on its own held-out squares, {theirs} per photo)"


def earlier_runs(init: str | Path) -> list[dict]:
    """The training history behind exported weights ``init``: the runs recorded in the recipe
    beside them (``<name>.json``), oldest first; [] when there is none."""
    path = Path(init).with_suffix(".json")
    if not path.is_file():
        return []
    try:
        rec = json.loads(path.read_text())
        return [*rec.get("earlier", []), {k: rec[k] for k in ("steps", "wall_time_s", "width", "depth",
                                                               "held_out_gain_db", "weights_sha256",
                                                               "pairs_per_image")}]
    except (ValueError, KeyError, TypeError):
        return []


def views_gain(state: dict, cfg: dict, views: int) -> float | None:
    """Held-out PSNR gain (dB) of the network ``state`` decoding with ``views`` orientations, on
    the training run's held-out squares; None when its data is not here."""
    import torch

    from ..nn.restore import build

    try:
        _, val, _ = load_pairs(RestoreConfig(**{k: cfg[k] for k in ("base", "data", "out", "per_image", "cache")}),
                               log=lambda *_: None)
    except (OSError, UsageError):
        return None
    net = build(cfg["width"], cfg["depth"], views)
    net.load_state_dict(state)
    with torch.no_grad():
        return validate(net.to(memory_format=torch.channels_last), val, cfg["base"])["gain_db"]


def export_restore(ck: dict, ckpt: str | Path, name: str, out_dir: str | Path, force: bool = True,
                   views: int = 1) -> dict:
    """Write the checkpoint's best (held-out) network to ``out_dir/<name>.safetensors`` (float32
    weights; metadata model=restore, base, width, depth, views) and its recipe ``<name>.json``.
    With ``views`` > 1 the recipe also gives the held-out gain decoding with that many views."""
    from ..errors import CorruptDataError
    from ..fileio import write_atomic
    from ..nn.restore import VIEWS

    cfg = ck["config"]
    best = ck.get("best")
    if not best:
        raise CorruptDataError(f"{ckpt} holds no validated network (train with --eval-every)")
    if views not in VIEWS:
        raise UsageError(f"--views must be 1..{max(VIEWS)}, got {views}")
    blob = write_restore_weights(best["model"], cfg["base"], cfg["width"], cfg["depth"], name, out_dir, force,
                                 views)
    recipe = {
        "name": name, "model": "restore", "base": cfg["base"], "width": cfg["width"], "depth": cfg["depth"],
        "views": views,
        **({"held_out_gain_views_db": views_gain(best["model"], cfg, views)} if views > 1 else {}),
        "loss": "MSE on the 0..255 scale", "data": str(cfg["data"]), "data_images": ck.get("data_images"),
        "held_out_images": VAL_IMAGES, "pairs_per_image": cfg["per_image"], "square": SQUARE,
        "qualities": quality_bands(cfg["base"], cfg["per_image"]),
        "crop": cfg["crop"], "batch": cfg["batch"], "lr": cfg["lr"], "lr_schedule": "tenfold drop at 75 % of steps",
        "seed": cfg["seed"], "threads": cfg["threads"], "steps": ck["step"], "wall_time_s": round(ck["elapsed"], 1),
        "earlier": ck.get("earlier", []),
        "total_steps": ck["step"] + sum(e["steps"] for e in ck.get("earlier", [])),
        "total_wall_time_s": round(ck["elapsed"] + sum(e["wall_time_s"] for e in ck.get("earlier", [])), 1),
        "stages": ck.get("stages"), "exported_step": best["step"], "held_out_gain_db": best["gain_db"],
        "held_out_curve": ck.get("evals"),
        "train_curve": [r for r in ck.get("history", []) if r["step"] % 500 == 0],
        "weights_sha256": hashlib.sha256(blob).hexdigest(), "weights_bytes": len(blob),
    }
    write_atomic(Path(out_dir) / f"{name}.json", (json.dumps(recipe, indent=2) + "\n").encode(), force=force)
    return recipe


def write_restore_weights(state: dict, base: str, width: int, depth: int, name: str,
                          out_dir: str | Path, force: bool = True, views: int = 1) -> bytes:
    """Write a restoration network's state dict as ``out_dir/<name>.safetensors`` (float32, sorted
    header, so the same weights give the same bytes and hash); returns the file's bytes."""
    from safetensors.torch import save

    from ..fileio import write_atomic
    from .export import _canonical

    tensors = {k: v.detach().float().contiguous() for k, v in state.items()}
    meta = {"model": "restore", "base": base, "width": str(width), "depth": str(depth), "name": name,
            **({"views": str(views)} if views > 1 else {})}
    blob = _canonical(save(tensors, metadata=meta))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.safetensors"
    if not (force and path.is_file() and path.read_bytes() == blob):
        write_atomic(path, blob, force=force)
    return blob


def _kodak_curves(cells_path: str | Path, codec: str, weights: tuple = ()) -> dict:
    """quality -> mean bpp, PSNR, and the weights tags measured, over the cells of ``codec`` in a
    bench cells.jsonl (only those measured with one of the tags ``weights`` where given; errors
    skipped)."""
    rows: dict = {}
    for line in Path(cells_path).read_text().splitlines():
        c = json.loads(line)
        if c.get("codec") != codec or c.get("error") or (weights and c.get("weights") not in weights):
            continue
        rows.setdefault(c["quality"], {})[c["image"]] = c
    return {q: {"images": len(r), "bpp": float(np.mean([c["bpp"] for c in r.values()])),
                "psnr": float(np.mean([c["psnr"] for c in r.values()])),
                "tags": {c.get("weights") for c in r.values()}} for q, r in sorted(rows.items())}


def _stage_lines(stages: list) -> list:
    """The card's line on how a run went when it was resumed with another ``--steps`` (which moves
    the lr drop, at 75 % of each stage's ``--steps``) or ran under bfloat16 autocast; none for a
    plain single-stage run."""
    parts = []
    for st in stages:
        drop = drop_step(st["steps"])
        lr = (f"lr {st['lr']:g}" if st["to_step"] <= drop else f"lr {st['lr'] / 10:g}" if st["from_step"] >= drop
              else f"lr {st['lr']:g}, {st['lr'] / 10:g} from step {drop:,}")
        parts.append(f"steps {st['from_step']:,}-{st['to_step']:,} with `--steps {st['steps']}` ({lr}"
                     + (", bfloat16 autocast" if st.get("bf16") else "") + ")")
    if len(stages) < 2 and not any(st.get("bf16") for st in stages):
        return []
    return ["- Stages (each start or `--resume` of the run): " + "; ".join(parts) + "."]


def model_card(recipe: dict, cells_path: str | Path, command: str) -> str:
    """The model card of an exported restoration network: recipe, held-out curve, and the Kodak
    numbers of its codec against its base codec from a bench cells.jsonl."""
    from ..bench.bdrate import bd_rate

    base = recipe["base"]
    codec = f"{base}+nn"
    from ..codecs.restored import weights_tags

    tags = weights_tags(recipe["weights_sha256"][:16], base)
    mine = _kodak_curves(cells_path, codec, tags)
    measured = set().union(*(m["tags"] for m in mine.values()))
    anchors = {base: _kodak_curves(cells_path, base)}
    if base == "avif":
        anchors["avif444"] = _kodak_curves(cells_path, "avif444")
    lines = [f"# {recipe['name']}: the restoration network of `{codec}`", "",
             f"Decodes `{base}` files better: a CNN of {recipe['depth']} layers and {recipe['width']} channels "
             f"at half resolution, conditioned on the {base} quality "
             f"(docs/CODECS.md, \"Restored classical codecs\"). "
             + (f"It decodes with {recipe['views']} views (the image's first {recipe['views']} orientations "
                "of: as it is, mirrored, upside down, both, transposed, ...; outputs averaged), which "
                f"raise the held-out gain from {recipe['held_out_gain_db']:+.3f} to "
                f"{recipe['held_out_gain_views_db']:+.3f} dB at {recipe['views']}x the network's time. "
                if recipe.get("views", 1) > 1 and recipe.get("held_out_gain_views_db") is not None else "")
             + ("The decoder then keeps the restored image inside the JPEG file's quantisation bins "
                "(codecs/jpegbins.py). " if base == "jpeg" else "")
             + f"Weights: `{recipe['name']}.safetensors`, SHA-256 `{recipe['weights_sha256'][:16]}...`, "
             f"{recipe['weights_bytes']:,} bytes.", "",
             "## Training", "",
             f"- Data: {recipe['data_images']} BSDS500 training photos (`{recipe['data']}`), "
             f"{recipe['pairs_per_image']} squares of {recipe['square']} px each, downscaled 0.7-1.0 and coded with "
             f"{base} at qualities stratified over {recipe['qualities']}; {recipe['held_out_images']} photos held out "
             "for validation. Kodak was not used for training or for choosing the checkpoint.",
             f"- Loss: {recipe['loss']}. Adam, lr {recipe['lr']} ({recipe['lr_schedule']}), batch {recipe['batch']}, "
             f"crops {recipe['crop']}, {recipe['threads']} CPU thread(s), seed {recipe['seed']}.",
             f"- Steps: {recipe['steps']:,} in {recipe['wall_time_s'] / 3600:.2f} h of wall time on a shared 2-core CPU; "
             f"GPU minutes: 0. Exported: step {recipe['exported_step']:,}, the best held-out gain "
             f"({recipe['held_out_gain_db']:+.3f} dB).",
             *_stage_lines(recipe.get("stages") or []),
             *([f"- Started from earlier exported weights (`--init`): "
                + "; ".join(f"{e['steps']:,} steps, {e['wall_time_s'] / 3600:.2f} h, width {e['width']}"
                            + (f", depth {e['depth']}" if "depth" in e else "") + ", held-out gain "
                            f"{e['held_out_gain_db']:+.3f} dB"
                            + _other_squares(e.get("pairs_per_image", DEFAULT_PAIRS), recipe["pairs_per_image"])
                            for e in recipe["earlier"])
                + f". In all: {recipe['total_steps']:,} steps, {recipe['total_wall_time_s'] / 3600:.2f} h of CPU wall time."]
               if recipe.get("earlier") else []), "",
             "Held-out PSNR gain over the base decoder (mean over the held-out squares):", "",
             "| step | base dB | restored dB | gain |", "|---:|---:|---:|---:|"]
    for e in recipe.get("held_out_curve") or []:
        lines.append(f"| {e['step']:,} | {e['psnr_base']:.3f} | {e['psnr']:.3f} | {e['gain_db']:+.3f} |")
    precision = " and ".join(p for t, p in zip(tags, ("float32", "bfloat16")) if t in measured)
    lines += ["", "## Kodak (24 images; bpp from the whole .mlc file"
              + (f"; network in {precision}" if precision else "") + ")", "",
              f"| quality | {base} bpp | {base} dB | {codec} bpp | {codec} dB | gain dB |", "|---:|---:|---:|---:|---:|---:|"]
    for q, m in mine.items():
        b = anchors[base].get(q)
        if b:
            lines.append(f"| {q} | {b['bpp']:.4f} | {b['psnr']:.2f} | {m['bpp']:.4f} | {m['psnr']:.2f} | "
                         f"{m['psnr'] - b['psnr']:+.2f} |")
    lines += ["", "BD-rate of the whole curve (negative: fewer bits at equal PSNR):", ""]
    curve = ([m["bpp"] for m in mine.values()], [m["psnr"] for m in mine.values()])
    refs = dict(anchors)
    if base == "avif" and anchors.get("avif444"):
        both = list(anchors["avif"].values()) + list(anchors["avif444"].values())
        refs["the better of avif and avif444 at each rate"] = {i: v for i, v in enumerate(both)}
    for name, ref in refs.items():
        if not ref or not mine:
            continue
        r = ([v["bpp"] for v in ref.values()], [v["psnr"] for v in ref.values()])
        for rng in ((29.0, 35.0), None):
            bd = bd_rate(*r, *curve, rng)
            where = f"{bd.lo:.2f}-{bd.hi:.2f} dB" if not math.isnan(bd.lo) else "no overlap"
            val = "n/a" if math.isnan(bd.percent) else f"{bd.percent:+.1f} %"
            lines.append(f"- against {name}, {'29-35 dB' if rng else 'whole overlap'}: {val} (over {where})")
    lines += ["", f"Measured by `mlcompress bench` (cells in `{cells_path}`); card written by `{command}`.", ""]
    return "\n".join(lines)
