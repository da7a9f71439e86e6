"""Writing files safely: never over an existing file without force, never a partial file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import UsageError


def require_folder(path: str | Path, what: str) -> Path:
    """``path`` as a Path when it is a folder; otherwise UsageError: "<what> <path> does not exist"
    or "... is not a folder"."""
    folder = Path(path)
    if not folder.is_dir():
        raise UsageError(f"{what} {folder} {'is not a folder' if folder.exists() else 'does not exist'}")
    return folder


def write_atomic(path: str | Path, data: bytes, force: bool = False) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename.

    Raises UsageError when the file exists and ``force`` is false, or the folder is missing or
    unwritable. On any failure the target is untouched and no temporary file is left behind.
    """
    path = Path(path)
    if path.exists() and not force:
        raise UsageError(f"{path} exists (use --force to overwrite)")
    if path.is_dir():
        raise UsageError(f"{path} is a directory")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise UsageError(f"output folder {folder} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=folder)
    except OSError as exc:
        raise UsageError(f"cannot write to {folder}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
