"""Kodak rate-distortion numbers of the shipped learned weights, for recipes and model cards.

``kodak_rd("hyperprior", [1, 2, 3], kodak_dir)`` encodes every image with the registered codec
and reports mean bpp from the real file bytes, mean PSNR (metrics.psnr) and the model's own
estimated bpp. ``classical_at(rows, cells)`` puts JPEG/WebP/AVIF beside each point: their PSNR
at the same bpp, interpolated on their mean RD curve from a bench cells.jsonl (bench/results).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np


def kodak_rd(codec_name: str, qualities, folder: str | Path, weights_dir: str | Path | None = None) -> list[dict]:
    """One row per quality: {quality, model, bpp, psnr, estimated_bpp, encode_s, decode_s, images}.

    ``weights_dir`` points the codec at other weights than the installed ones for the run.
    Timed on one core (one torch and one BLAS thread), as the benchmark times its cells.
    """
    from .. import registry
    from ..threads import one_core

    codec = registry.get(codec_name)
    with _weights_in(codec, weights_dir), one_core():
        return _kodak_rd(codec, qualities, folder)


@contextmanager
def _weights_in(codec, weights_dir: str | Path | None):
    """Point a learned codec at the weights in ``weights_dir`` (None: the installed ones) for a block."""
    saved = codec.weights_dir
    codec.weights_dir = Path(weights_dir) if weights_dir is not None else saved
    try:
        yield codec
    finally:
        codec.weights_dir = saved


def _kodak_rd(codec, qualities, folder) -> list[dict]:
    import torch

    from .. import container as mlc
    from ..codecs.learned import load_model, weights_path
    from ..image import read_image
    from ..metrics import bpp, psnr

    files = sorted(Path(folder).glob("kodim*.png"))
    rows = []
    for q in qualities:
        path = weights_path(codec.model_name(q), codec.weights_dir)
        if not path.is_file():
            continue
        model, _ = load_model(path)
        bpps, psnrs, est, enc_s, dec_s = [], [], [], 0.0, 0.0
        for f in files:
            img = read_image(f)
            t = time.perf_counter()
            data = codec.encode(img, q)
            enc_s += time.perf_counter() - t
            t = time.perf_counter()
            out = codec.decode(data)
            dec_s += time.perf_counter() - t
            h, w = img.shape[:2]
            bpps.append(bpp(len(data), w, h))
            psnrs.append(psnr(img, out))
            m = model.multiple
            pad = np.pad(img, ((0, -h % m), (0, -w % m), (0, 0)), mode="edge")
            x = torch.from_numpy(pad).permute(2, 0, 1)[None].float() / 255
            est.append(model.estimate_bits(x) / (h * w))
            assert len(mlc.unpack(data).payload) > 0
        rows.append({
            "quality": q, "model": codec.model_name(q), "images": len(files),
            "bpp": float(np.mean(bpps)), "psnr": float(np.mean(psnrs)),
            "estimated_bpp": float(np.mean(est)),
            "encode_s": enc_s / len(files), "decode_s": dec_s / len(files),
        })
    return rows


def classical_at(rows: list[dict], cells: str | Path, images: int, codecs=("jpeg", "webp", "avif")) -> None:
    """Add ``<codec>_psnr_at_bpp`` to each row from a bench cells.jsonl (mean curve over the levels
    measured on all ``images`` images, interpolated; None outside it)."""
    from ..bench.runner import load_cells

    per: dict = {}
    for c in load_cells(Path(cells)).values():  # successful cells, the last measurement of each wins
        if c.codec in codecs:
            per.setdefault(c.codec, {}).setdefault(c.quality, []).append((c.bpp, c.psnr))
    for codec, by_q in per.items():
        pts = sorted(tuple(np.mean(v, axis=0)) for v in by_q.values() if len(v) == images)
        if len(pts) < 2:
            continue
        xs, ys = np.array(pts).T
        for row in rows:
            inside = xs[0] <= row["bpp"] <= xs[-1]
            row[f"{codec}_psnr_at_bpp"] = float(np.interp(row["bpp"], xs, ys)) if inside else None


def variant_rows(arch: str, levels, cells: str | Path, images: int, weights_dir: str | Path | None = None) -> list[dict]:
    """Kodak rows of the other registered encoders that write ``arch``'s files (hyperprior-sga for
    hyperprior), read from a bench cells.jsonl: only cells measured with exactly these weights
    (the codec's weights tag) and only levels measured on all ``images`` images.
    -> [{codec, quality, images, bpp, psnr, encode_s, decode_s}]."""
    from .. import registry
    from ..bench.runner import load_cells

    per: dict = {}
    tags = {}
    for codec in registry.codecs():
        if getattr(codec, "file_codec", None) != arch or codec.name == arch:
            continue
        with _weights_in(codec, weights_dir):
            tags.update({(codec.name, q): codec.weights_tag(q) for q in levels})
    for c in load_cells(Path(cells)).values():  # successful cells, the last measurement of each wins
        key = (c.codec, c.quality)
        if tags.get(key) and c.weights == tags[key]:
            per.setdefault(key, []).append(c)
    rows = []
    for (name, q), v in sorted(per.items()):
        if len(v) != images:
            continue
        rows.append({"codec": name, "quality": q, "images": images,
                     **{k: float(np.mean([getattr(c, k) for c in v])) for k in ("bpp", "psnr", "encode_s", "decode_s")}})
    return rows


def model_card(arch: str, rows: list[dict], recipes: list[dict], command: str, variants: list[dict] = ()) -> str:
    """Markdown model card: architecture, training recipe per level, measured Kodak numbers."""
    from ..bench.report import _fmt

    titles = {
        "hyperprior": "mean-scale hyperprior (Minnen, Ballé, Toderici 2018, mbt2018-mean, no context model)",
        "factorized": "factorized prior (Ballé et al. 2017/2018, bmshj2018-factorized)",
        "hyperprior-ctx": "mean-scale hyperprior with a channel-group and checkerboard context model "
                          "(Minnen & Singh 2020, He et al. 2021)",
    }
    lines = [f"# `{arch}` weights: {titles.get(arch, arch)}", ""]
    if recipes:
        r0 = recipes[0]
        lines += [
            f"Architecture: N={r0['N']}, M={r0['M']}; GDN/IGDN transforms, 4 stride-2 5x5 (transposed) convs"
            + (f"; context model: channel groups {_groups(r0)} x 2 checkerboard passes (docs/CODECS.md)."
               if arch == "hyperprior-ctx" else "."),
            f"Training data: {r0['data']} ({r0['data_images']} images), random downscale 0.6-1.0, "
            f"{r0['crop']}x{r0['crop']} crops, horizontal flips, batch {r0['batch']}; loss lambda*255^2*MSE + bpp;",
            "Adam, gradient-norm clip 1.0; CPU only (2 shared cores). Weights stored as float16, entropy",
            "tables frozen (16-bit integers) after rounding. Recipes: the `.json` file beside each weights file.",
            "",
            "| file | lambda | init | steps | schedule (steps: learning rate) | wall time | train loss | train bpp | train PSNR |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in recipes:
            f = r.get("final_train") or {}
            lines.append(
                f"| {r['name']} | {r['lambda']} | {_init_text(r)} | {r['steps']} | {_schedule_text(r)} | "
                f"{r['wall_time_s'] / 60:.0f} min | {_fmt(f.get('loss'), '.3f', '-')} | {_fmt(f.get('bpp'), '.3f', '-')} | "
                f"{_fmt(f.get('psnr'), '.2f', '-')} |"
            )
        lines += _curve_lines(recipes)
    if rows:
        cl = [k for k in rows[0] if k.endswith("_psnr_at_bpp")]
        lines += [
            "", f"## Kodak ({rows[0]['images']} images), measured with this codec",
            "",
            "bpp from the real .mlc file bytes (container and post-filter included), PSNR RGB (metrics.psnr) of",
            "the decoded (post-filtered) image, mean over images; estimated bpp = the model's own -log2 likelihood",
            "of the latents; classical PSNR at the same bpp interpolated on their mean Kodak curve from",
            "bench/results/cells.jsonl (empty when outside their measured range).",
            "",
            "| level | bpp | PSNR dB | estimated bpp | encode s | decode s | " + " | ".join(
                c.replace("_psnr_at_bpp", " PSNR @bpp") for c in cl) + " |",
            "|---|---|---|---|---|---|" + "---|" * len(cl),
        ]
        for r in rows:
            cls = " | ".join("" if r[c] is None else f"{r[c]:.2f}" for c in cl)
            lines.append(
                f"| q{r['quality']} | {r['bpp']:.4f} | {r['psnr']:.2f} | {r['estimated_bpp']:.4f} | "
                f"{r['encode_s']:.2f} | {r['decode_s']:.2f} | {cls} |"
            )
    if variants:
        cl = [k for k in variants[0] if k.endswith("_psnr_at_bpp")]
        lines += [
            "", "### Other encoders of these weights, from the benchmark", "",
            "Registered codecs that write this model's files with another encoder (any decoder of it reads",
            "them), from bench/results/cells.jsonl cells measured with exactly these weights files; mean over",
            f"{variants[0]['images']} images. Encode and decode seconds are the benchmark's (one core per job).", "",
            "| encoder | level | bpp | PSNR dB | encode s | decode s | " + " | ".join(
                c.replace("_psnr_at_bpp", " PSNR @bpp") for c in cl) + " |",
            "|---|---|---|---|---|---|" + "---|" * len(cl),
        ]
        for r in variants:
            cls = " | ".join("" if r[c] is None else f"{r[c]:.2f}" for c in cl)
            lines.append(f"| {r['codec']} | q{r['quality']} | {r['bpp']:.4f} | {r['psnr']:.2f} | "
                         f"{r['encode_s']:.1f} | {r['decode_s']:.2f} | {cls} |")
    lines += ["", f"Measured with: `{command}`", ""]
    return "\n".join(lines)


def _groups(recipe: dict) -> str:
    """A context model's channel groups as its recipe records them (sizes; 4 equal ones by default)."""
    from ..nn.models import check_groups

    return ",".join(map(str, check_groups(recipe["M"], recipe.get("groups"))))


def _init_text(recipe: dict) -> str:
    stages = recipe.get("stages") or []
    init = (stages[0].get("init") if stages else None) or ({"path": recipe["init"], "step": None} if recipe.get("init") else None)
    if not init:
        return "scratch"
    text = _source_text(init) if init.get("path") else "scratch"
    if init.get("refiner"):
        text += f"; Refiner from {_source_text(init['refiner'])}"
    return text


def _source_text(init: dict) -> str:
    step = f" at step {init['step']}" if init.get("step") is not None else ""
    path = Path(init["path"])
    if init.get("sha256"):  # an exported weights file, perhaps since replaced by this one
        made = f", {init['recipe']['steps']} steps" if "steps" in (init.get("recipe") or {}) else ""
        return f"{path.name} (sha256 {init['sha256'][:8]}{made})"
    return f"{path.parent.name}/{path.name}{step}"


def _schedule_text(recipe: dict) -> str:
    stages = recipe.get("stages") or []
    parts = []
    for st in stages:
        if st["to_step"] > st["from_step"]:
            mark = "*" if st.get("note") else ""
            quant = " round" if st.get("quant", "noise") != "noise" else ""
            frozen = {"transforms": " (g_a, g_s frozen)", "all-but-synthesis": " (g_s only)",
                      "all-but-refiner": " (Refiner only)"}.get(st.get("freeze"), "")
            parts.append(f"{st['from_step']}-{st['to_step']}: {st['lr']:g}{quant}{frozen}{mark}")
    return "; ".join(parts) or f"{recipe.get('lr', '')}"


def _curve_lines(recipes: list[dict]) -> list[str]:
    """The training-curve tables (loss at doublings of steps) and what the last doubling bought."""
    train = _curve_table(recipes, "loss_curve")
    if not train:
        return []
    out = ["", "`*`: one entry for runs made before the schedule was recorded (its learning rate is the last run's).",
           "", "### Training curves", "",
           "Train loss (lambda*255^2*MSE + bpp on the training crops; the bpp alone where g_a and g_s were",
           "frozen) at doublings of the step count, mean of the last fifth of the steps up to each point; then",
           "what the last doubling changed.", "",
           ] + train
    fixed = _curve_table(recipes, "fixed_crop_curve")
    if fixed:
        out += ["", "The same loss on a fixed set of training crops, through the rounded latents the decoder sees,",
                "at the last measurement (every 500 steps) up to each point. The crops do not change between",
                "steps, so this curve, unlike the one above, shows what steps bought; runs from before it was",
                "measured have no entry.", ""] + fixed
    return out


def _curve_table(recipes: list[dict], key: str) -> list[str]:
    curves = [(r, r.get(key) or []) for r in recipes]
    curves = [(r, c) for r, c in curves if len(c) >= 2]
    if not curves:
        return []
    points = sorted({p["step"] for _, c in curves for p in c[:-1]})
    out = ["| file | " + " | ".join(f"step {p}" for p in points) + " | final | last doubling |",
           "|---|" + "---|" * (len(points) + 2)]
    for r, c in curves:
        at = {p["step"]: p for p in c[:-1]}
        a, b = c[-2], c[-1]
        cells = [f"{at[p]['loss']:.3f}" if p in at else "" for p in points]
        change = f"{a['step']}->{b['step']}: loss {100 * (b['loss'] - a['loss']) / a['loss']:+.1f} %, bpp {b['bpp'] - a['bpp']:+.3f}"
        if a["psnr"] is not None and b["psnr"] is not None:
            change += f", PSNR {b['psnr'] - a['psnr']:+.2f} dB"
        out.append(f"| {r['name']} | " + " | ".join(cells) + f" | {b['loss']:.3f} (step {b['step']}) | {change} |")
    return out


def publish(arch: str, runs_dir: str | Path, kodak_dir: str | Path | None, cells: str | Path | None = None,
            command: str = "", out_dir: str | Path | None = None) -> dict:
    """Export ``runs_dir/q<level>.pt`` for every level present, measure Kodak, write the model card.

    Writes ``weights/<arch>-q<level>.{safetensors,json}`` and ``weights/<arch>.md``. A level with
    no checkpoint in ``runs_dir`` but shipped weights keeps them, with the recipe beside them
    (a run folder need not hold every level, nor outlive the machine it trained on). The card
    ends with ``weights/<arch>.notes.md`` and ``runs_dir/NOTES.md``, where they exist. Returns
    {"recipes": [...], "kodak": [...], "variants": [...]} (variants: :func:`variant_rows`).
    """
    import json

    from ..codecs.learned import weights_hash
    from ..errors import UsageError
    from ..fileio import require_folder, write_atomic
    from .export import WEIGHTS_DIR, export

    runs_dir = require_folder(runs_dir, "runs folder")
    out_dir = Path(out_dir) if out_dir else WEIGHTS_DIR
    if not any((runs_dir / f"q{q}.pt").is_file() for q in range(1, 10)):
        # nothing to export: rewriting the card from the shipped levels alone would only lose what
        # it holds (its Kodak table when --kodak is not given)
        raise UsageError(f"no checkpoint q1.pt..q9.pt in {runs_dir}: nothing to export")
    recipes = []
    for q in range(1, 10):
        ck, name = runs_dir / f"q{q}.pt", f"{arch}-q{q}"
        if ck.is_file():
            recipes.append(export(ck, name, out_dir))
        elif (out_dir / f"{name}.safetensors").is_file() and (out_dir / f"{name}.json").is_file():
            recipe = json.loads((out_dir / f"{name}.json").read_text())
            if recipe.get("weights_sha256") != weights_hash(out_dir / f"{name}.safetensors").hex():
                raise UsageError(f"{name}.json is not the recipe of {name}.safetensors (weights hash differs)")
            recipes.append(recipe)
    levels = [int(r["name"].rsplit("-q", 1)[1]) for r in recipes]
    rows = kodak_rd(arch, levels, kodak_dir, out_dir) if kodak_dir else []
    variants = []
    if rows and cells and Path(cells).is_file():
        variants = variant_rows(arch, levels, cells, rows[0]["images"], out_dir)
        classical_at([*rows, *variants], cells, rows[0]["images"])
    card = model_card(arch, rows, recipes, command, variants)
    # what the runs' owners know that the checkpoints do not record
    notes = [f.read_text().strip() for f in (out_dir / f"{arch}.notes.md", runs_dir / "NOTES.md") if f.is_file()]
    if notes:
        card = card.rstrip("\n") + "\n\n## Notes from the training runs\n\n" + "\n\n".join(notes) + "\n"
    write_atomic(out_dir / f"{arch}.md", card.encode(), force=True)
    return {"recipes": recipes, "kodak": rows, "variants": variants}
