"""Where the folder commands read and write: local paths, globs, and fsspec URLs.

A *location* is a :class:`pathlib.Path` for a local file (a ``file://`` URL becomes one) or a URL
string for any other fsspec protocol: ``s3://bucket/photos`` (with s3fs installed),
``gs://...``, ``memory://...`` (one process's memory, for tests). A folder command's input may
also be a glob (``photos/*.jpg``, ``s3://bucket/**/*.png``): the files it matches, named relative
to the part before the first wildcard. fsspec (the ``cluster`` extra) is imported only for URLs.

Writes to a URL are atomic like local ones (fileio.write_atomic): an object store publishes an
object only when its upload is complete, and other stores get a temporary name, then a rename.
"""

from __future__ import annotations

import glob as globmod
import os
import secrets
from pathlib import Path, PurePosixPath

from .errors import UsageError

Location = Path | str

GLOB_CHARS = frozenset("*?[")
#: fsspec protocols whose writes appear whole or not at all (one PUT, or a completed multipart upload)
OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss"})


def location(text: str | Path) -> Location:
    """A Path for a local path or a ``file://`` URL; the URL string itself for other protocols."""
    if isinstance(text, Path):
        return text
    if text.startswith("file://"):
        return Path(text[len("file://"):])
    return text if "://" in text else Path(text)


def is_url(loc) -> bool:
    """Whether ``loc`` is a URL of a non-local fsspec protocol (``file://`` is a local path)."""
    return isinstance(location(loc), str)


def is_glob(loc) -> bool:
    """Whether ``loc`` holds a wildcard (``*``, ``?``, ``[``) and is not an existing local folder."""
    loc = location(loc)
    if not GLOB_CHARS & set(str(loc)):
        return False
    return is_url(loc) or not Path(loc).is_dir()


def in_this_process_only(loc) -> bool:
    """Whether ``loc`` lives in this process's memory (``memory://``): no other process sees it."""
    return is_url(loc) and str(loc).startswith("memory://")


def filesystem(url: str):
    """(fsspec filesystem, path inside it) of a URL; UsageError when fsspec, or the protocol's
    package (s3fs, gcsfs, ...), is not installed or the protocol is unknown."""
    try:
        import fsspec
    except ImportError:
        raise UsageError(f"{url}: URLs need fsspec (pip install 'mlcompress[cluster]')") from None
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise UsageError(f"{url}: {exc}") from None


def join(root: Location, rel: PurePosixPath | Path) -> Location:
    """``root`` / ``rel`` for a Path or a URL."""
    if isinstance(root, str):
        return root.rstrip("/") + "/" + PurePosixPath(rel).as_posix()
    return root / rel


def _url(fs, path: str) -> str:
    return fs.unstrip_protocol(path)


# ---------------------------------------------------------------- reading


def read_bytes(loc: Location) -> bytes:
    """The bytes of a file; UsageError "cannot read: ..." when it cannot be read."""
    try:
        if is_url(loc):
            fs, path = filesystem(str(loc))
            return fs.cat_file(path)
        return Path(loc).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read: {exc.strerror or exc}") from None


def size(loc: Location) -> int:
    """The size of a file in bytes."""
    if is_url(loc):
        fs, path = filesystem(str(loc))
        return int(fs.size(path))
    return Path(loc).stat().st_size


def exists(loc: Location) -> bool:
    if is_url(loc):
        fs, path = filesystem(str(loc))
        return fs.exists(path)
    return Path(loc).exists()


def existing(locs: list[Location]) -> set[Location]:
    """Those of ``locs`` that exist: one listing per folder for URLs (not one request per file),
    a stat per file for local paths."""
    found: set[Location] = set()
    by_folder: dict[tuple, list[str]] = {}
    for loc in locs:
        if not is_url(loc):
            if Path(loc).exists():
                found.add(loc)
            continue
        fs, path = filesystem(str(loc))
        by_folder.setdefault((fs, fs._parent(path)), []).append(loc)
    for (fs, folder), members in by_folder.items():
        try:
            listed = {fs._strip_protocol(p) for p in fs.ls(folder, detail=False)}
        except FileNotFoundError:
            continue
        found.update(m for m in members if filesystem(m)[1] in listed)
    return found


def same_file(a: Location, b: Location) -> bool:
    """Whether two existing locations are the same file (links resolved for local paths)."""
    if is_url(a) or is_url(b):
        return is_url(a) and is_url(b) and filesystem(str(a)) == filesystem(str(b))
    return Path(a).resolve() == Path(b).resolve()


# ---------------------------------------------------------------- listing


def _walk(root: Path, recursive: bool, exclude: Path | None) -> list[Path]:
    """Every non-directory entry under ``root`` (broken links included), sorted; skips ``exclude``."""
    found: list[Path] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        here = Path(folder)
        if exclude is not None:
            dirs[:] = [d for d in dirs if (here / d).resolve() != exclude]
        dirs.sort()
        found.extend(here / f for f in files)
        if not recursive:
            break
    return sorted(found)


def _glob_root(pattern: str) -> str:
    """The part of a glob before its first component with a wildcard ("" when it starts with one)."""
    parts = pattern.split("/")
    fixed = []
    for part in parts[:-1]:
        if GLOB_CHARS & set(part):
            break
        fixed.append(part)
    return "/".join(fixed)


def list_files(src: Location, recursive: bool, exclude: Location | None = None) -> list[tuple[Location, PurePosixPath]]:
    """The files of a folder (its subfolders too with ``recursive``) or of a glob, as
    (location, path relative to the folder or to the glob's fixed part), sorted; nothing under
    ``exclude`` (an output folder inside the input). UsageError when ``src`` is not a folder or
    a glob matches nothing."""
    src = location(src)
    if is_glob(src):
        return _list_glob(src, exclude)
    if isinstance(src, Path):
        if not src.is_dir():
            raise UsageError(f"{src} is not a folder")
        paths = _walk(src, recursive, _local_exclude(src, exclude))
        return [(p, PurePosixPath(p.relative_to(src).as_posix())) for p in paths]
    fs, root = filesystem(src)
    root = root.rstrip("/")
    if not fs.isdir(root):
        raise UsageError(f"{src} is not a folder")
    skip = _under(fs, root, exclude)
    paths = sorted(fs.find(root, maxdepth=None if recursive else 1, withdirs=False, detail=False))
    return [(_url(fs, p), PurePosixPath(p[len(root):].lstrip("/"))) for p in paths
            if not (skip and (p + "/").startswith(skip))]


def _local_exclude(root: Path, exclude) -> Path | None:
    """The resolved local folder ``exclude`` when it is a folder other than ``root``."""
    if not isinstance(exclude, Path):
        return None
    out = exclude.resolve()
    return out if out != root.resolve() else None


def _under(fs, root: str, exclude) -> str | None:
    """The path prefix ("folder/") of ``exclude`` when it is a folder of ``fs`` other than ``root``."""
    if exclude is None or not is_url(exclude):
        return None
    other, path = filesystem(str(exclude))
    prefix = path.rstrip("/") + "/"
    return prefix if other == fs and prefix != root.rstrip("/") + "/" else None


def _list_glob(pattern: Location, exclude: Location | None) -> list[tuple[Location, PurePosixPath]]:
    if isinstance(pattern, Path):
        text = pattern.as_posix()
        root = Path(_glob_root(text) or ".")
        out = _local_exclude(root, exclude)
        found = []
        for name in globmod.glob(text, recursive=True):
            p = Path(name)
            if p.is_dir() or (out is not None and out in p.resolve().parents):
                continue
            found.append((p, PurePosixPath(p.relative_to(root).as_posix())))
    else:
        fs, path = filesystem(pattern)
        root = _glob_root(path).rstrip("/")
        skip = _under(fs, root, exclude)
        found = [(_url(fs, p), PurePosixPath(p[len(root):].lstrip("/")))
                 for p, info in fs.glob(path, detail=True).items()
                 if info.get("type") != "directory" and not (skip and p.startswith(skip))]
    if not found:
        raise UsageError(f"{pattern} matches no file")
    return sorted(found)


# ---------------------------------------------------------------- writing


def make_folder(loc: Location) -> None:
    """Create a folder and its parents (a no-op on object stores); UsageError on failure."""
    try:
        if is_url(loc):
            fs, path = filesystem(str(loc))
            fs.makedirs(path, exist_ok=True)
        else:
            Path(loc).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create output folder {loc}: {exc.strerror or exc}") from None


def make_parent(loc: Location) -> None:
    """Create the folder that ``loc`` goes into."""
    if is_url(loc):
        fs, path = filesystem(str(loc))
        fs.makedirs(fs._parent(path), exist_ok=True)
    else:
        Path(loc).parent.mkdir(parents=True, exist_ok=True)


def write_url_atomic(url: str, data: bytes, force: bool = False) -> None:
    """fileio.write_atomic for a URL: an object store's single upload, elsewhere a temporary
    ``.NAME.XXXXXXXX.part`` beside the target, then a rename. UsageError when the target exists
    and ``force`` is false, or the write fails; no temporary object is left behind."""
    fs, path = filesystem(url)
    if fs.exists(path):
        if not force:
            raise UsageError(f"{url} exists (use --force to overwrite)")
        if fs.isdir(path):
            raise UsageError(f"{url} is a directory")
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    try:
        if protocols & OBJECT_STORES:
            fs.pipe_file(path, data)
            return
        parent, name = fs._parent(path), path.rstrip("/").rpartition("/")[2]
        tmp = f"{parent.rstrip('/')}/.{name}.{secrets.token_hex(4)}.part"
        try:
            fs.pipe_file(tmp, data)
            fs.mv(tmp, path)
        finally:
            if fs.exists(tmp):
                fs.rm(tmp)
    except OSError as exc:
        raise UsageError(f"cannot write {url}: {exc.strerror or exc}") from None
