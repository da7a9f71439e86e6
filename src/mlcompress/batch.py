"""Compressing and decompressing whole folders, resumably.

::

    summary = compress_tree("photos", "photos.mlc", codec="vq", quality=64, recursive=True, jobs=2)
    summary = decompress_tree("photos.mlc", "photos.png", recursive=True)
    print(summary.format())

Inputs are found by extension (``image.IMAGE_EXTENSIONS`` to compress; ``.mlc`` and the
classical codecs' extensions but ``.png`` to decompress); other files are counted as ignored. With
``recursive`` the folder tree is mirrored under the output folder (an output folder inside the
input tree is never walked). ``photo.png`` becomes ``photo<codec extension>`` (``photo.png.mlc``
when ``photo.jpg`` sits beside it) and ``photo.mlc`` becomes ``photo.png``.

Every output is written atomically (``fileio.write_atomic``: a temporary file, then a rename), so
an output that exists is complete. An existing output is skipped unless ``force``: an interrupted
run (Ctrl-C) leaves no partial file, and running it again does only the files not yet done. A bad
input (unreadable, not an image, corrupt) is recorded in the summary and skipped; the run goes on.

Inputs and outputs may be fsspec URLs and the input a glob (storage.py); ``cluster`` runs the
files on a Dask cluster (cluster.py) instead of ``jobs`` local processes, with the same per-file
functions and the same bytes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import storage
from .cluster import check_jobs
from .errors import Error, UsageError, require_at_least
from .fileio import remove_temporaries, write_atomic
from .image import IMAGE_EXTENSIONS, PNG_LEVEL, check_png_level, png_bytes
from .interrupt import worker_pool

DONE, SKIPPED, FAILED = "done", "skipped", "failed"


@dataclass(frozen=True)
class FileResult:
    """The outcome for one input file."""

    source: storage.Location  # a Path, or a URL string
    output: storage.Location
    status: str  # DONE, SKIPPED (output already there) or FAILED
    message: str = ""
    bytes_in: int = 0
    bytes_out: int = 0


@dataclass
class BatchSummary:
    """What a folder run did: per-file results, plus the files it did not consider."""

    results: list[FileResult] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)  # files without a matching extension
    seconds: float = 0.0
    #: subfolders a run without ``recursive`` did not enter (subfolders_left_out)
    subfolders: list[Path] = field(default_factory=list)

    def _with(self, status: str) -> list[FileResult]:
        return [r for r in self.results if r.status == status]

    @property
    def done(self) -> list[FileResult]:
        return self._with(DONE)

    @property
    def skipped(self) -> list[FileResult]:
        return self._with(SKIPPED)

    @property
    def failed(self) -> list[FileResult]:
        return self._with(FAILED)

    @property
    def ok(self) -> bool:
        return not self.failed

    def format(self) -> str:
        """A one-line summary (failures are listed by the caller from ``failed``)."""
        done = self.done
        b_in, b_out = sum(r.bytes_in for r in done), sum(r.bytes_out for r in done)
        ratio = f", {b_in:,} -> {b_out:,} bytes" if done else ""
        n = len(self.subfolders)
        folders = f", {n} subfolder{'s' if n > 1 else ''} not entered (-r enters them)" if n else ""
        return (f"{len(done)} done, {len(self.skipped)} already present, {len(self.failed)} failed, "
                f"{len(self.ignored)} ignored{folders}{ratio} in {self.seconds:.1f} s")


def subfolders_left_out(src: str | Path, out: str | Path, recursive: bool) -> list[Path]:
    """The subfolders of a local folder ``src`` that a run without ``recursive`` does not enter
    (the output folder aside), sorted; [] with ``recursive`` and for a glob or a URL."""
    src, out = storage.location(src), storage.location(out)
    if recursive or not isinstance(src, Path) or storage.is_glob(src) or not src.is_dir():
        return []
    output = out.resolve() if isinstance(out, Path) else None
    return sorted(p for p in src.iterdir() if p.is_dir() and p.resolve() != output)


def plan(src: str | Path, out: str | Path, extensions: tuple[str, ...], out_suffix: str,
         recursive: bool = False) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """Pair each input under ``src`` with its output under ``out``.

    Returns ([(input, output)], [ignored files]). Names that would collide (``a.png`` and
    ``a.jpg``) keep their full name: ``a.png<suffix>``, ``a.jpg<suffix>``. ``src`` may be a
    glob and either may be a URL (storage.py).
    """
    out = storage.location(out)
    pairs, ignored, by_target = [], [], {}
    for path, rel in storage.list_files(src, recursive, exclude=out):
        if rel.suffix.lower() not in extensions:
            ignored.append(path)
            continue
        by_target.setdefault(rel.parent / (rel.stem + out_suffix), []).append((path, rel))
    for target, sources in by_target.items():
        for path, rel in sources:
            name = target if len(sources) == 1 else rel.parent / (rel.name + out_suffix)
            pairs.append((path, storage.join(out, name)))
    return sorted(pairs), ignored


def compressed_extensions() -> tuple[str, ...]:
    """File extensions to decompress: .mlc and every classical codec's, except .png (the output)."""
    from . import registry

    found = {".mlc"} | {c.extension.lower() for c in registry.codecs() if not c.native}
    return tuple(sorted(found - {".png"}))


def _read(path: storage.Location) -> bytes:
    return storage.read_bytes(path)


def _describe(exc: Exception) -> str:
    """The message of an mlcompress error; other exceptions (bugs) keep their type name."""
    if isinstance(exc, Error):
        return str(exc) or type(exc).__name__
    if isinstance(exc, OSError):
        return f"cannot write: {exc.strerror or exc}"
    return f"unexpected {type(exc).__name__}: {exc}"


def _compress_one(src: Path, dst: Path, codec_name: str, quality, force: bool) -> FileResult:
    from . import registry
    from .image import read_image

    try:
        data = _read(src)
        encoded = registry.get(codec_name).encode(read_image(data), quality)
        storage.make_parent(dst)
        write_atomic(dst, encoded, force=force)
    except Exception as exc:  # noqa: BLE001 - one bad file must not end the run
        return FileResult(src, dst, FAILED, _describe(exc))
    return FileResult(src, dst, DONE, "", len(data), len(encoded))


def _decompress_one(src: Path, dst: Path, png_level: int, force: bool) -> FileResult:
    import mlcompress

    try:
        data = _read(src)
        png = png_bytes(mlcompress.decode(data), png_level)
        storage.make_parent(dst)
        write_atomic(dst, png, force=force)
    except Exception as exc:  # noqa: BLE001 - one bad file must not end the run
        return FileResult(src, dst, FAILED, _describe(exc))
    return FileResult(src, dst, DONE, "", len(data), len(png))


def _enhance_one(src: Path, dst: Path, force: bool) -> FileResult:
    from .codecs.restored import enhance

    try:
        data = _read(src)
        png = png_bytes(enhance(data), PNG_LEVEL)
        storage.make_parent(dst)
        write_atomic(dst, png, force=force)
    except Exception as exc:  # noqa: BLE001 - one bad file must not end the run
        return FileResult(src, dst, FAILED, _describe(exc))
    return FileResult(src, dst, DONE, "", len(data), len(png))


#: what `enhance DIR` takes: the files of the base codecs that have a restoration network
ENHANCE_EXTENSIONS = (".jpg", ".jpeg", ".webp", ".avif")


def _make_folder(out: str | Path) -> None:
    storage.make_folder(storage.location(out))


def _init_worker(max_pixels: int | None) -> None:
    from .limits import set_max_pixels

    set_max_pixels(max_pixels)


def _again(work: Callable, src, dst, args: tuple, force: bool) -> FileResult:
    """``work`` for one file of a cluster partition. A partition runs again when its worker dies
    and finds the outputs that worker wrote first: this run planned them as missing, so they are
    done by this run, not 'already present'."""
    if not force and storage.exists(dst):
        return FileResult(src, dst, DONE, "", storage.size(src), storage.size(dst))
    return work(src, dst, *args, force)


def _run(pairs: list[tuple[Path, Path]], work: Callable, args: tuple, force: bool, jobs: int,
         progress: bool, on_result: Callable[[FileResult], None] | None, desc: str,
         cluster=None) -> list[FileResult]:
    """``work(src, dst, *args, force)`` for every pair whose output is missing (all with
    ``force``): in this process, in ``jobs`` processes, or on a Dask ``cluster`` (an address or
    a distributed.Client; cluster.run)."""
    from tqdm import tqdm

    from . import limits

    results: list[FileResult] = []

    def record(r: FileResult) -> None:
        results.append(r)
        if on_result is not None:
            on_result(r)

    check_jobs(cluster, jobs)
    private = any(storage.in_this_process_only(loc) for loc in (pairs[0] if pairs else ()))
    if private and jobs > 1:
        raise UsageError("memory:// lives in this process only: use it with --jobs 1")
    todo = []
    present = storage.existing([dst for _, dst in pairs])
    for src, dst in pairs:
        if dst in present and storage.same_file(src, dst):
            record(FileResult(src, dst, FAILED, "the output would overwrite the input"))
        elif dst in present and not force:
            record(FileResult(src, dst, SKIPPED))
        else:
            todo.append((src, dst))
    with tqdm(total=len(todo), unit="file", desc=desc, disable=not progress, leave=False) as bar:
        if cluster is not None and todo:
            from contextlib import closing

            from . import cluster as dask_cluster

            def lost(item, why):
                return FileResult(item[1], item[2], FAILED, why)

            try:  # closing: on Ctrl-C the queued work is cancelled and a local cluster stopped at once
                with closing(dask_cluster.run(cluster, _again, [(work, s, d, args, force) for s, d in todo], lost,
                                              init=_init_worker, init_args=(limits._max_pixels,),
                                              this_process_only=private)) as stream:
                    for r in stream:
                        record(r)
                        bar.update(1)
            finally:  # what a killed worker was writing
                remove_temporaries(d for _, d in todo)
        elif jobs <= 1 or len(todo) <= 1:
            for src, dst in todo:
                record(work(src, dst, *args, force))
                bar.update(1)
        else:
            from concurrent.futures import as_completed

            with worker_pool(jobs, initializer=_init_worker, initargs=(limits._max_pixels,)) as pool:
                futures = [pool.submit(work, src, dst, *args, force) for src, dst in todo]
                for fut in as_completed(futures):
                    record(fut.result())
                    bar.update(1)
    return sorted(results, key=lambda r: r.source)


def compress_tree(src: str | Path, out: str | Path, codec: str | None = None, quality=None,
                  recursive: bool = False, jobs: int = 1, force: bool = False, progress: bool = False,
                  on_result: Callable[[FileResult], None] | None = None, cluster=None) -> BatchSummary:
    """Compress every image under ``src`` into ``out`` (mirroring folders with ``recursive``).

    ``jobs`` > 1 uses that many worker processes; ``cluster`` (a Dask scheduler address, ``local``,
    ``local:N`` or a distributed.Client) runs on a Dask cluster instead. Existing outputs are
    skipped unless ``force``.
    ``on_result`` is called with each FileResult as it completes. Raises UsageError for a bad
    codec, quality or folder; bad input files are reported in the summary instead.
    """
    import mlcompress

    t0 = time.perf_counter()
    name = codec or mlcompress.default_codec()
    c = mlcompress.get_codec(name)
    c.require_available()
    q = c.check_quality(quality)
    require_at_least("--jobs", jobs, 1)
    pairs, ignored = plan(src, out, IMAGE_EXTENSIONS, c.extension, recursive)
    _make_folder(out)
    results = _run(pairs, _compress_one, (name, q), force, jobs, progress, on_result, "compress", cluster)
    return BatchSummary(results, ignored, time.perf_counter() - t0, subfolders_left_out(src, out, recursive))


def decompress_tree(src: str | Path, out: str | Path, recursive: bool = False, jobs: int = 1,
                    force: bool = False, progress: bool = False,
                    on_result: Callable[[FileResult], None] | None = None, cluster=None,
                    png_level: int = PNG_LEVEL) -> BatchSummary:
    """Decompress every .mlc (and classical compressed) file under ``src`` into PNGs under ``out``,
    written at zlib level ``png_level`` (image.png_bytes)."""
    t0 = time.perf_counter()
    require_at_least("--jobs", jobs, 1)
    check_png_level(png_level)  # bad usage, not a failed file
    pairs, ignored = plan(src, out, compressed_extensions(), ".png", recursive)
    _make_folder(out)
    results = _run(pairs, _decompress_one, (png_level,), force, jobs, progress, on_result, "decompress", cluster)
    return BatchSummary(results, ignored, time.perf_counter() - t0, subfolders_left_out(src, out, recursive))


def enhance_tree(src: str | Path, out: str | Path, recursive: bool = False, jobs: int = 1,
                 force: bool = False, progress: bool = False,
                 on_result: Callable[[FileResult], None] | None = None, cluster=None) -> BatchSummary:
    """Restore every JPEG, WebP and AVIF file under ``src`` into PNGs under ``out`` (`enhance DIR`)."""
    t0 = time.perf_counter()
    require_at_least("--jobs", jobs, 1)
    pairs, ignored = plan(src, out, ENHANCE_EXTENSIONS, ".png", recursive)
    _make_folder(out)
    results = _run(pairs, _enhance_one, (), force, jobs, progress, on_result, "enhance", cluster)
    return BatchSummary(results, ignored, time.perf_counter() - t0, subfolders_left_out(src, out, recursive))
