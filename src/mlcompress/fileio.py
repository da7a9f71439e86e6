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


_PART = ".part"


def _temporary_beside(path: Path, force: bool) -> tuple[int, str]:
    """(fd, name) of a new temporary file in ``path``'s folder, after the checks every write makes:
    UsageError when ``path`` exists (without ``force``) or is a folder, or its folder is missing or
    unwritable."""
    if path.exists() and not force:
        raise UsageError(f"{path} exists (use --force to overwrite)")
    if path.is_dir():
        raise UsageError(f"{path} is a directory")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise UsageError(f"output folder {folder} does not exist")
    try:
        return tempfile.mkstemp(prefix=f".{path.name}.", suffix=_PART, dir=folder)
    except OSError as exc:
        raise UsageError(f"cannot write to {folder}: {exc.strerror or exc}") from None


def require_writable(path: str | Path, force: bool = False) -> None:
    """The checks of :func:`write_atomic`, made before the work that produces the data (a slow
    encoder must not run for minutes to learn that its output folder is read-only): a temporary
    file is created beside ``path`` and removed. URLs are left to the write itself."""
    from . import storage

    path = storage.location(path)
    if storage.is_url(path):
        return
    fd, tmp = _temporary_beside(path, force)
    os.close(fd)
    os.unlink(tmp)


def write_atomic(path: str | Path, data: bytes, force: bool = False) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename.

    Raises UsageError when the file exists and ``force`` is false, or the folder is missing or
    unwritable. On any failure the target is untouched and no temporary file is left behind
    (unless the process is killed outright: :func:`remove_temporaries`). ``path`` may be an
    fsspec URL (storage.write_url_atomic).
    """
    from . import storage

    path = storage.location(path)
    if storage.is_url(path):
        storage.write_url_atomic(path, data, force)
        return
    fd, tmp = _temporary_beside(path, force)
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


def remove_temporaries(paths) -> int:
    """Remove the temporary files that :func:`write_atomic` left beside ``paths`` (local files)
    when its process was killed mid-write (SIGKILL, a lost worker: no cleanup ran). One listing
    per folder; returns how many were removed. Only for when no writer of ``paths`` is running."""
    by_folder: dict[Path, set[str]] = {}
    for p in paths:
        if isinstance(p, Path):
            by_folder.setdefault(p.parent, set()).add(p.name)
    removed = 0
    for folder, names in by_folder.items():
        try:
            entries = [e.name for e in os.scandir(folder)]
        except OSError:
            continue
        for entry in entries:
            # mkstemp's random part has no dot: ".NAME.XXXXXXXX.part" -> NAME
            if entry.startswith(".") and entry.endswith(_PART) and entry[1:-len(_PART)].rpartition(".")[0] in names:
                try:
                    os.unlink(folder / entry)
                    removed += 1
                except FileNotFoundError:
                    pass
    return removed
