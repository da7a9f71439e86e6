"""A training checkpoint as a folder of pieces small enough to travel to and from a lent GPU.

A lent device machine (docs/GPU.md) gives back at most 8 files of at most 16 MiB, 64 MiB in
all, and takes a working tree of at most 64 MiB. A checkpoint (train.loop's state dict) is
written there as a folder::

    manifest.json          {"format": "mlcompress-checkpoint-pieces", "version": 1, "step",
                            "bytes", "sha256" (of the whole), "optimizer": "fp32"|"bf16"|"dropped",
                            "pieces": [{"name", "bytes", "sha256"}, ...]}
    checkpoint.000 ...     the bytes of ``torch.save(state)``, cut into pieces in order

The model weights always stay float32. To fit, the optimizer state (Adam's moments, twice the
weights) is kept as it is, stored as bfloat16 (its range is float32's, so tiny second moments
do not underflow as they would in float16; they come back as float32), or dropped (the run
that resumes starts Adam afresh and warms its learning rate up again: train.loop).

:func:`read_pieces` checks every piece against the manifest before unpickling anything, so a
missing, truncated or mixed-up piece is a CorruptDataError, never a half-loaded checkpoint.
``train.loop.load_checkpoint`` reads such a folder wherever it reads a checkpoint file
(``train --resume``, ``export``); :func:`join` writes it back as one ordinary file.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

FORMAT = "mlcompress-checkpoint-pieces"
VERSION = 1
MANIFEST = "manifest.json"
#: the device tool's limits on what comes back (docs/GPU.md): one manifest + at most 7 pieces
PIECE_BYTES = 16 << 20
MAX_FILES = 8
MAX_BYTES = 62 << 20  # leaves 2 MiB of the 64 for the manifest and a log beside the pieces
#: what ``optimizer="auto"`` tries, best first
OPTIMIZER_MODES = ("fp32", "bf16", "dropped")


def is_pieces(path: str | Path) -> bool:
    """Whether ``path`` is a folder of checkpoint pieces (it holds a manifest)."""
    return (Path(path) / MANIFEST).is_file()


def _optimizer_as(opt_state: dict | None, mode: str):
    """Adam's state dict with its floating-point moment tensors as ``mode`` stores them (None for
    "dropped"); counters (``step``) and hyper-parameters are kept as they are."""
    import torch

    if mode == "dropped" or opt_state is None:
        return None
    if mode == "fp32":
        return opt_state
    state = {i: {k: (v.to(torch.bfloat16) if isinstance(v, torch.Tensor) and v.is_floating_point() and v.ndim
                     else v) for k, v in s.items()} for i, s in opt_state["state"].items()}
    return {**opt_state, "state": state}


def _optimizer_back(opt_state: dict | None):
    """The inverse of :func:`_optimizer_as` for "bf16": every bfloat16 moment back to float32."""
    import torch

    if opt_state is None:
        return None
    state = {i: {k: (v.float() if isinstance(v, torch.Tensor) and v.dtype == torch.bfloat16 else v)
                 for k, v in s.items()} for i, s in opt_state["state"].items()}
    return {**opt_state, "state": state}


def serialise(state: dict, optimizer: str = "auto", max_bytes: int = MAX_BYTES,
              piece_bytes: int = PIECE_BYTES, max_files: int = MAX_FILES) -> tuple[bytes, str]:
    """(torch.save bytes of ``state``, the optimizer mode used) within ``max_bytes`` and
    ``max_files - 1`` pieces of ``piece_bytes``; ``optimizer`` "auto" takes the first mode of
    OPTIMIZER_MODES that fits. Raises UsageError when even the weights alone do not fit."""
    import torch

    from ..errors import UsageError

    if optimizer not in ("auto", *OPTIMIZER_MODES):
        raise UsageError(f"optimizer state must be auto or one of {', '.join(OPTIMIZER_MODES)}, not {optimizer!r}")
    limit = min(max_bytes, (max_files - 1) * piece_bytes)
    blob, mode = b"", ""
    for mode in OPTIMIZER_MODES if optimizer == "auto" else (optimizer,):
        buf = io.BytesIO()
        torch.save({**state, "optimizer": _optimizer_as(state.get("optimizer"), mode), "optimizer_storage": mode}, buf)
        blob = buf.getvalue()
        if len(blob) <= limit:
            return blob, mode
    raise UsageError(f"the checkpoint takes {len(blob) / 2**20:.1f} MiB with its optimizer state {mode}: more than "
                     f"{limit / 2**20:.0f} MiB in {max_files - 1} pieces of {piece_bytes / 2**20:.0f} MiB")


def write_pieces(folder: str | Path, state: dict, optimizer: str = "auto", max_bytes: int = MAX_BYTES,
                 piece_bytes: int = PIECE_BYTES, max_files: int = MAX_FILES) -> dict:
    """Write ``state`` (a train.loop checkpoint dict) into ``folder`` as pieces; -> the manifest.

    Each piece is written atomically, the manifest last; pieces of an earlier, larger save that
    the new manifest does not list are removed after it. The folder is created if missing."""
    from ..errors import UsageError
    from ..fileio import write_atomic

    blob, mode = serialise(state, optimizer, max_bytes, piece_bytes, max_files)
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} is a file, not a folder of checkpoint pieces")
    folder.mkdir(parents=True, exist_ok=True)
    pieces = []
    for i, start in enumerate(range(0, len(blob), piece_bytes)):
        chunk = blob[start : start + piece_bytes]
        name = f"checkpoint.{i:03d}"
        write_atomic(folder / name, chunk, force=True)
        pieces.append({"name": name, "bytes": len(chunk), "sha256": hashlib.sha256(chunk).hexdigest()})
    manifest = {"format": FORMAT, "version": VERSION, "step": state.get("step"), "bytes": len(blob),
                "sha256": hashlib.sha256(blob).hexdigest(), "optimizer": mode, "pieces": pieces}
    write_atomic(folder / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode(), force=True)
    keep = {p["name"] for p in pieces}
    for old in folder.glob("checkpoint.[0-9][0-9][0-9]"):
        if old.name not in keep:
            old.unlink()
    return manifest


def read_pieces(folder: str | Path) -> dict:
    """The checkpoint dict a pieces folder holds, its optimizer state back in float32 (None when
    it was dropped). Raises CorruptDataError when the manifest or any piece does not check out."""
    import torch

    from ..errors import CorruptDataError

    folder = Path(folder)
    if not is_pieces(folder):
        raise CorruptDataError(f"{folder} is not a folder of checkpoint pieces (it has no {MANIFEST})")
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        pieces = manifest["pieces"]
        ok = manifest.get("format") == FORMAT and isinstance(pieces, list) and pieces
    except (OSError, ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise CorruptDataError(f"{folder}/{MANIFEST} is not a checkpoint-pieces manifest")
    if manifest.get("version") != VERSION:
        raise CorruptDataError(f"{folder}: checkpoint pieces version {manifest.get('version')} (this reads {VERSION})")
    parts = []
    for p in pieces:
        path = folder / str(p.get("name"))
        data = path.read_bytes() if path.is_file() and path.parent == folder else None
        if data is None or len(data) != p.get("bytes") or hashlib.sha256(data).hexdigest() != p.get("sha256"):
            raise CorruptDataError(f"{folder}: piece {p.get('name')} is missing or not the one the manifest lists")
        parts.append(data)
    blob = b"".join(parts)
    if hashlib.sha256(blob).hexdigest() != manifest.get("sha256"):
        raise CorruptDataError(f"{folder}: the pieces together are not the checkpoint the manifest lists")
    state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=False)
    state["optimizer"] = _optimizer_back(state.get("optimizer"))
    return state


def join(folder: str | Path, out: str | Path, force: bool = False) -> dict:
    """Write the checkpoint of a pieces folder as one file ``out`` (train.loop.save_checkpoint);
    -> {"step", "optimizer"}. A dropped optimizer state stays dropped (None): resuming from the
    file starts Adam afresh with a warm-up, as resuming from the pieces would."""
    import torch

    from ..errors import UsageError
    from ..fileio import write_atomic

    if Path(out).exists() and not force:
        raise UsageError(f"{out} exists (use --force to overwrite)")
    state = read_pieces(folder)
    buf = io.BytesIO()
    torch.save(state, buf)
    write_atomic(out, buf.getvalue(), force=force)
    return {"step": state.get("step"), "optimizer": state.get("optimizer_storage", "fp32")}
