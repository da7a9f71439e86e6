"""Reading weights files: below ``codecs/`` (which decode with them) and ``train/`` (which writes them).

Weights are safetensors files; the shipped ones live in the package folder ``weights/``
(:data:`WEIGHTS_DIR`, data files only, no Python). A safetensors file is::

    u64 LE  header length n
    n bytes JSON header: {tensor name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}
    ...     the tensors' bytes

:func:`read_safetensors` reads any such file in one read, so the tensors, the metadata and the
SHA-256 (which the container records for every file coded with the weights) all come from the
same bytes. :func:`load_weights` builds the ``nn.models`` network the metadata names from them.
Writing stays with training (``train.export.write_weights``). torch and safetensors are imported
lazily.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

#: the shipped weights files (``<model>.safetensors``, recipes and model cards beside them)
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def read_safetensors(path: str | Path) -> tuple[dict, dict, bytes]:
    """(tensors, metadata, sha256) of a safetensors file.

    tensors: name -> CPU torch tensor with the dtype stored in the file (float16 weights stay
    float16); metadata: the header's ``__metadata__`` (str -> str, {} when there is none);
    sha256: the 32-byte digest of the whole file. Raises UsageError for a missing file and
    CorruptDataError for bytes that are not a safetensors file.
    """
    from safetensors.torch import load

    from .errors import CorruptDataError, UsageError

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"weights file {path} does not exist")
    blob = path.read_bytes()
    try:
        (n,) = struct.unpack_from("<Q", blob)
        header = json.loads(blob[8 : 8 + n])
        meta = header.get("__metadata__") or {}
        tensors = load(blob)
    except Exception as exc:  # struct, JSON and safetensors errors alike: no tensors to read
        raise CorruptDataError(f"{path} is not a safetensors weights file ({type(exc).__name__})") from None
    if not isinstance(meta, dict):
        raise CorruptDataError(f"{path}: its safetensors metadata is not a table of strings")
    return tensors, meta, hashlib.sha256(blob).digest()


def load_weights(path: str | Path):
    """(model in eval mode with frozen tables, metadata dict, sha256 bytes) of a weights file
    written by ``train.export.write_weights``: float16 tensors come back as float32, the model is
    ``nn.models.build(meta["model"], N, M, refine, groups)`` and needs no gradients."""
    import torch

    from .errors import CorruptDataError
    from .nn.models import MODELS, build

    tensors, meta, digest = read_safetensors(path)
    if meta.get("model") not in MODELS or not {"N", "M"} <= meta.keys():
        raise CorruptDataError(f"{path} does not name a model this version can build "
                               f"(model {meta.get('model')!r}; known: {', '.join(sorted(MODELS))})")
    try:
        groups = tuple(int(g) for g in meta["groups"].split(",")) if "groups" in meta else None
        model = build(meta["model"], int(meta["N"]), int(meta["M"]), int(meta.get("refine", 0)), groups)
    except ValueError as exc:  # sizes that are not numbers or do not fit M, groups on a model without them
        raise CorruptDataError(f"{path}: its metadata does not describe a {meta['model']} model ({exc})") from None
    try:
        model.load_state_dict({k: (v.float() if v.dtype == torch.float16 else v) for k, v in tensors.items()})
    except RuntimeError as exc:  # missing, extra or mis-shaped tensors
        raise CorruptDataError(f"{path}: its tensors do not fit {meta['model']} N={meta['N']} M={meta['M']} "
                               f"({str(exc).splitlines()[0]})") from None
    model.requires_grad_(False)
    model.eval()
    return model, meta, digest
