"""The only name -> codec table. Ids are stable strings; duplicates are rejected.

Codec modules register their instances at import; ``mlcompress.codecs`` imports them all.
Names joined with ``+`` (``vq+rle``) resolve through the chain builder registered by the
pipeline module, so every chain of registered stages is a codec too.
"""

from __future__ import annotations

from typing import Callable

from .errors import UsageError

_CODECS: dict = {}
_chain_builder: Callable | None = None

#: The codec `mlcompress compress` uses without -c: the best available one (one setting).
DEFAULT_CODECS = ("avif+nn", "avif", "jxl", "webp", "jpeg")


def register(codec):
    """Add a codec instance (or class, instantiated) under its ``name``; returns it unchanged."""
    inst = codec() if isinstance(codec, type) else codec
    name = inst.name
    if name in _CODECS:
        raise ValueError(f"codec {name!r} is already registered")
    _CODECS[name] = inst
    return codec


def set_chain_builder(builder: Callable) -> None:
    global _chain_builder
    _chain_builder = builder


def _ensure_loaded() -> None:
    from . import codecs  # noqa: F401  (registers every codec)


def get(name: str):
    """The codec registered as ``name`` (or the chain it spells); UsageError when unknown."""
    _ensure_loaded()
    if not isinstance(name, str):
        raise UsageError(f"codec name must be a string, got {type(name).__name__}")
    codec = _CODECS.get(name)
    if codec is None and "+" in name and _chain_builder is not None:
        codec = _chain_builder(name)
    if codec is None:
        raise UsageError(f"unknown codec {name!r}; known codecs: {', '.join(sorted(_CODECS))}")
    return codec


def list_codecs(available_only: bool = False) -> list[str]:
    """The registered codec names, sorted; with ``available_only`` only those that can run here."""
    _ensure_loaded()
    return sorted(n for n, c in _CODECS.items() if not available_only or c.available())


def codecs() -> list:
    """The registered codec instances, sorted by name."""
    _ensure_loaded()
    return [_CODECS[n] for n in sorted(_CODECS)]


def default_codec() -> str:
    """The first available codec of DEFAULT_CODECS."""
    for name in DEFAULT_CODECS:
        if name in list_codecs() and get(name).available():
            return name
    raise UsageError("no default codec is available")
