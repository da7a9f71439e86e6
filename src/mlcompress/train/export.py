"""Freeze a trained checkpoint into shipped weights: safetensors + JSON recipe.

``export(ckpt, name)`` rounds the float weights to float16 (halving the file), reloads them as
float32, freezes the entropy tables with ``update()`` *on those weights*, and writes
``<name>.safetensors`` (float16 weights, int32 tables, float32 scale table; metadata: model,
N, M, lambda, or lambdas, a JSON list, for a variable-rate model) and ``<name>.json`` (the training recipe and final training numbers). Reading them back is
:func:`mlcompress.weights.load_weights`, below the codecs that decode with them.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from pathlib import Path

from ..weights import WEIGHTS_DIR


def _half_roundtrip(model) -> None:
    import torch

    with torch.no_grad():
        for t in list(model.parameters()):
            t.copy_(t.half().float())


def _canonical(blob: bytes) -> bytes:
    """A safetensors file with its JSON header rewritten in sorted key order (padded with spaces to
    a multiple of 8, as the format allows). safetensors writes the metadata in hash-map order,
    which changes from run to run, and the container records the SHA-256 of the whole file:
    exporting the same weights twice must give the same bytes."""
    (n,) = struct.unpack_from("<Q", blob)
    header = json.dumps(json.loads(blob[8 : 8 + n]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + blob[8 + n :]


def write_weights(model, name: str, lmbda, out_dir: str | Path = WEIGHTS_DIR, force: bool = True) -> bytes:
    """Freeze ``model`` (float16-rounded, tables from ``update()``) into ``out_dir/<name>.safetensors``.

    ``lmbda``: the lambda it was trained with, or a variable-rate model's lambdas of its levels.

    Returns the file's bytes. ``model`` is modified in place (rounded weights, frozen tables). A file
    already there with the same tensors and metadata is left as it is (and its bytes returned).
    """
    from safetensors.torch import save

    from ..fileio import write_atomic
    from ..nn.models import MODELS

    arch = next(k for k, v in MODELS.items() if type(model) is v)
    model.eval()
    _half_roundtrip(model)
    model.update()
    tensors = {}
    for k, v in model.state_dict().items():
        v = v.detach().contiguous()
        tensors[k] = v.half() if v.is_floating_point() and "scale_table" not in k else v
    meta = {"model": arch, "N": str(model.N), "M": str(model.M), "name": name}
    if isinstance(lmbda, (list, tuple)):
        meta["lambdas"] = json.dumps(list(lmbda))
    else:
        meta["lambda"] = repr(lmbda)
    if model.refine:  # weights without a Refiner keep the metadata (and so the bytes) they had
        meta["refine"] = str(model.refine)
    if getattr(model, "uneven", False):  # and those with the default channel groups likewise
        meta["groups"] = ",".join(map(str, model.groups))
    blob = _canonical(save(tensors, metadata=meta))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.safetensors"
    if force and path.is_file():
        # the same weights written before (perhaps with a header in another key order) keep their
        # file: its hash is in every .mlc file made with them, and re-exporting must not refuse those
        old = path.read_bytes()
        try:
            same = _canonical(old) == blob
        except (ValueError, struct.error):
            same = False
        if same:
            return old
    write_atomic(path, blob, force=force)
    return blob


def loss_curve(history: list[dict]) -> list[dict]:
    """The training curve at doublings of the step count (500, 1000, 2000, ... and the last
    step): mean loss, bpp and PSNR of the logged rows in the last fifth of the steps up to each
    point ((0.8 s, s]), which smooths the batch-to-batch noise of small crops."""
    out = []
    for s in _doublings(history):
        rows = [r for r in history if 0.8 * s < r["step"] <= s]
        if rows:
            out.append({"step": s, **{k: _mean([r[k] for r in rows]) for k in ("loss", "bpp", "psnr")}})
    return out


def _mean(values: list) -> float | None:
    """Mean to 4 decimals of the values that were measured (None: none were, e.g. the PSNR of
    rate-only training with frozen transforms)."""
    vals = [v for v in values if v is not None]
    return round(sum(vals) / len(vals), 4) if vals else None


def fixed_crop_curve(evals: list[dict]) -> list[dict]:
    """The loss on the fixed crops at the same doublings: the last measurement at or before each
    point (its own step is kept), after the measurement at step 0 where there is one (the weights
    a run started from)."""
    out = [dict(evals[0])] if evals and evals[0]["step"] == 0 else []
    for s in _doublings(evals):
        done = [e for e in evals if e["step"] <= s]
        if done and (not out or out[-1]["step"] != done[-1]["step"]):
            out.append(dict(done[-1]))
    return out


def _doublings(rows: list[dict]) -> list[int]:
    """500, 1000, 2000, ... below the last row's step, then that step ([] for no rows)."""
    if not rows:
        return []
    last = rows[-1]["step"]
    points, s = [], 500
    while s < last:
        points.append(s)
        s *= 2
    return points + [last]


def export(ckpt: str | Path, name: str, out_dir: str | Path = WEIGHTS_DIR, force: bool = True,
           views: int | None = None) -> dict:
    """Write ``out_dir/<name>.safetensors`` and ``<name>.json`` from a checkpoint; -> recipe dict.
    ``views``: a restoration network's decoding orientations (train/restore.export_restore)."""
    from ..errors import CorruptDataError, UsageError
    from ..fileio import write_atomic
    from .loop import load_checkpoint, model_from_checkpoint

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", name):
        raise UsageError(f"weights name must be letters, digits and _.+- (e.g. hyperprior-q3), got {name!r}")
    ck = load_checkpoint(ckpt)
    if ck["config"].get("kind") == "restore":  # a restoration network (train/restore.py)
        from .restore import export_restore

        return export_restore(ck, ckpt, name, out_dir, force, 1 if views is None else views)
    if views is not None:
        raise UsageError("--views is for restoration networks (restore-* checkpoints)")
    missing = sorted({"step", "elapsed", "history"} - ck.keys())
    if missing:
        raise CorruptDataError(f"{ckpt} holds weights but not their training record ({', '.join(missing)})")
    cfg = ck["config"]
    model = model_from_checkpoint(ck)
    lambdas = next((s["lambdas"] for s in reversed(ck.get("stages") or []) if "lambdas" in s), None)
    blob = write_weights(model, name, cfg["lmbda"] if lambdas is None else lambdas, out_dir, force)
    hist = ck["history"]
    recipe = {
        "name": name, "model": cfg["model"], "N": cfg["N"], "M": cfg["M"], "refine": cfg.get("refine", 0),
        **({"groups": list(cfg["groups"])} if cfg.get("groups") else {}),
        **({"lambda": cfg["lmbda"]} if lambdas is None else {"lambdas": lambdas}),
        "loss": "lambda * 255^2 * MSE + bpp (estimated)",
        "data": str(cfg["data"]), "data_images": ck.get("data_images"),
        "crop": cfg["crop"], "batch": cfg["batch"], "lr": cfg["lr"], "seed": cfg["seed"],
        "init": cfg.get("init"), "steps": ck["step"], "wall_time_s": round(ck["elapsed"], 1),
        "threads": cfg["threads"],
        "final_train": hist[-1] if hist else None,
        "stages": ck.get("stages"),
        "loss_curve": loss_curve(hist),
        "fixed_crop_curve": fixed_crop_curve(ck.get("evals") or []),
        "weights_sha256": hashlib.sha256(blob).hexdigest(),
        "weights_bytes": len(blob),
    }
    write_atomic(Path(out_dir) / f"{name}.json", (json.dumps(recipe, indent=2) + "\n").encode(), force=force)
    return recipe

