"""The benchmark runner: every (codec, quality, image) cell measured once, cached, resumable.

A *cell* is one image encoded at one quality by one codec, decoded, and measured:
real bytes, bpp (metrics.bpp), PSNR-RGB (metrics.psnr), MS-SSIM (metrics.ms_ssim), encode and
decode wall time. Finished cells are appended to ``OUT/cells.jsonl`` (one JSON object a line)
as soon as they are measured; a re-run skips every cell already there, so an interrupted run
resumes and adding a codec later costs only that codec's cells. A cell is keyed by codec name,
quality, the SHA-256 of the image file and, for codecs with trained weights, a hash of the
weights (``Codec.weights_tag``), so a changed image or re-exported weights are measured again; a
changed codec implementation is not detected: pass ``recompute=True`` (``--recompute``) for its
cells.
Failed cells are reported but not cached, so they are retried next time.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from concurrent.futures import as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .. import metrics, registry
from ..cluster import check_jobs
from ..errors import UnsupportedError, UsageError, require_at_least
from ..fileio import require_folder
from ..image import IMAGE_EXTENSIONS, read_image
from ..interrupt import worker_pool

CELLS_FILE = "cells.jsonl"

from ..data import kodak_dir as default_data_dir  # noqa: E402


@dataclass
class Cell:
    """One measurement. ``quality`` is None for codecs without a knob; ``error`` is set on failure."""

    codec: str
    quality: float | int | None
    image: str
    image_sha256: str
    width: int = 0
    height: int = 0
    channels: int = 0
    bytes: int = 0
    bpp: float = math.nan
    psnr: float = math.nan
    ms_ssim: float = math.nan
    encode_s: float = math.nan
    decode_s: float = math.nan
    #: CPU time of the process (all threads), robust to other load on a shared machine
    encode_cpu_s: float = math.nan
    decode_cpu_s: float = math.nan
    error: str | None = None
    #: Codec.weights_tag of the weights measured ("" for codecs without weights)
    weights: str = ""

    @property
    def key(self) -> str:
        return cell_key(self.codec, self.quality, self.image_sha256, self.weights)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6

    def to_json(self) -> str:
        d = asdict(self)
        for k in _FLOAT_FIELDS:
            v = d[k]
            d[k] = None if v is None or math.isnan(v) else ("inf" if math.isinf(v) else v)
        return json.dumps(d, allow_nan=False)

    @classmethod
    def from_json(cls, line: str) -> Cell:
        d = json.loads(line)
        for k in _FLOAT_FIELDS:
            v = d.get(k)
            d[k] = math.nan if v is None else (math.inf if v == "inf" else float(v))
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


_FLOAT_FIELDS = ("bpp", "psnr", "ms_ssim", "encode_s", "decode_s", "encode_cpu_s", "decode_cpu_s")


def cell_key(codec: str, quality, image_sha256: str, weights: str = "") -> str:
    q = "-" if quality is None else repr(float(quality))
    return f"{codec}|{q}|{image_sha256}" + (f"|{weights}" if weights else "")


@dataclass
class Plan:
    """What to measure: image files (with their hashes) and, per codec, the quality sweep."""

    images: list[Path]
    image_sha256: dict[str, str]
    qualities: dict[str, list]
    skipped: dict[str, str] = field(default_factory=dict)  # codec -> why it is not measured
    #: (codec, quality) -> Codec.weights_tag, for codecs with trained weights
    weights: dict[tuple, str] = field(default_factory=dict)

    def tag(self, codec: str, quality) -> str:
        return self.weights.get((codec, quality), "")

    def cell_key(self, codec: str, quality, image: Path) -> str:
        """The cache key of one planned cell (image hash and weights tag included)."""
        return cell_key(codec, quality, self.image_sha256[image.name], self.tag(codec, quality))

    @property
    def codecs(self) -> list[str]:
        return list(self.qualities)

    def keys(self):
        for name, qs in self.qualities.items():
            for q in qs:
                for p in self.images:
                    yield name, q, p


@dataclass
class BenchSummary:
    """What a run did and wrote. ``computed`` counts cells measured now, ``cached`` cells reused."""

    out_dir: Path
    codecs: list[str]
    images: int
    computed: int
    cached: int
    failures: list[Cell]
    seconds: float
    files: list[Path]
    skipped: dict[str, str]

    def describe(self) -> str:
        lines = [
            f"{len(self.codecs)} codecs x {self.images} images: {self.computed} cells measured, "
            f"{self.cached} reused from cache, {len(self.failures)} failed, {self.seconds:.1f} s",
        ]
        lines += [f"skipped {name}: {why}" for name, why in self.skipped.items()]
        lines += [f"failed {c.codec} q={c.quality} {c.image}: {c.error}" for c in self.failures[:20]]
        if len(self.failures) > 20:
            lines.append(f"... and {len(self.failures) - 20} more failures (see report.md)")
        lines += [f"wrote {p}" for p in self.files]
        return "\n".join(lines)


# ---------------------------------------------------------------- planning


def list_images(data_dir: str | Path, limit: int | None = None) -> list[Path]:
    """The image files of a folder (by image.IMAGE_EXTENSIONS), sorted by name; UsageError if none."""
    folder = require_folder(data_dir, "data folder")
    images = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not images:
        raise UsageError(f"data folder {folder} has no images ({', '.join(IMAGE_EXTENSIONS)})")
    if limit is not None:
        require_at_least("--limit", limit, 1)
        images = images[:limit]
    return images


def plan(data_dir: str | Path, codecs: list[str] | None = None, qualities: list | None = None,
         limit: int | None = None) -> Plan:
    """Resolve codecs and quality sweeps, list and hash the images. Raises UsageError on bad args.

    ``codecs`` None means every registered codec that is available here (the others are listed
    in ``Plan.skipped``); a named codec that is unavailable is an error. ``qualities`` replaces
    the sweep of every lossy codec (each value is checked against the codec's range).
    """
    images = list_images(data_dir, limit)
    skipped: dict[str, str] = {}
    if codecs is None:
        names = []
        for c in registry.codecs():
            if c.available():
                names.append(c.name)
            else:
                skipped[c.name] = c.unavailable_reason() or "unavailable"
    else:
        if not codecs:
            raise UsageError("no codec given")
        names = list(dict.fromkeys(codecs))
        for n in names:
            registry.get(n).require_available()  # UsageError / UnsupportedError
    sweeps: dict[str, list] = {}
    for n in names:
        codec = registry.get(n)
        if codec.quality_range is None:
            sweeps[n] = [None]
            continue
        qs = list(qualities) if qualities else list(codec.bench_qualities)
        if not qs:
            qs = [codec.default_quality]
        sweeps[n] = list(dict.fromkeys(codec.check_quality(q) for q in qs))
    shas = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in images}
    tags = {(n, q): registry.get(n).weights_tag(q) for n, qs in sweeps.items() for q in qs}
    return Plan(images, shas, sweeps, skipped, {k: v for k, v in tags.items() if v})


# ---------------------------------------------------------------- measuring


def measure_cell(codec, img: np.ndarray, quality, image: str, sha: str, weights: str = "",
                 keep: dict | None = None) -> Cell:
    """Encode and decode ``img`` once with timing; failures become a Cell with ``error`` set.
    ``keep``: a dict that receives the decoded image under ``quality`` (for report.html's viewer)."""
    h, w = img.shape[:2]
    ch = 1 if img.ndim == 2 else img.shape[2]
    cell = Cell(codec.name, quality, image, sha, w, h, ch, weights=weights)
    try:
        c0, t0 = time.process_time(), time.perf_counter()
        data = codec.encode(img, quality)
        c1, t1 = time.process_time(), time.perf_counter()
        out = codec.decode(data)
        c2, t2 = time.process_time(), time.perf_counter()
        if out.shape != img.shape or out.dtype != np.uint8:
            raise UnsupportedError(f"decoded image has shape {out.shape} {out.dtype}, expected {img.shape} uint8")
        cell.bytes = len(data)
        cell.bpp = metrics.bpp(len(data), w, h)
        cell.psnr = metrics.psnr(img, out)
        cell.ms_ssim = metrics.ms_ssim(img, out)
        cell.encode_s, cell.decode_s = t1 - t0, t2 - t1
        cell.encode_cpu_s, cell.decode_cpu_s = c1 - c0, c2 - c1
        if keep is not None:
            keep[quality] = out
    except Exception as exc:  # a codec failing on one image is reported, never a crash
        cell.error = f"{type(exc).__name__}: {exc}".strip()
    return cell


_WARMED: set[str] = set()


def _warm_up(codec) -> None:
    """One untimed encode/decode of a small image, so lazy imports and weight loading are not timed."""
    if codec.name in _WARMED:
        return
    _WARMED.add(codec.name)
    yy, xx = np.mgrid[0:192, 0:192]  # 108 KiB: large enough for compiled paths (rle's numba kernels)
    img = np.stack([xx, yy, (xx + yy) // 2], axis=2).astype(np.uint8)
    try:
        q = codec.check_quality(None)
        codec.decode(codec.encode(img, q))
        metrics.ms_ssim(img, img)
    except Exception:  # the real cells report the failure
        pass


def measure_task(path: str, codec_name: str, qualities: list, sha: str, weights: dict | None = None,
                 view: tuple[str, int] | None = None) -> list[Cell]:
    """Every pending quality of one codec on one image (the unit of work of a worker process);
    ``weights`` maps a quality to its Codec.weights_tag. ``view`` (bench folder, points): store
    the decoded images report.html's viewer shows (html.store_selected)."""
    codec = registry.get(codec_name)
    name = Path(path).name
    tag = (weights or {}).get
    try:
        img = read_image(path)
    except Exception as exc:
        return [Cell(codec_name, q, name, sha, error=f"{type(exc).__name__}: {exc}", weights=tag(q, ""))
                for q in qualities]
    _warm_up(codec)
    decoded: dict | None = {} if view else None
    cells = [measure_cell(codec, img, q, name, sha, tag(q, ""), decoded) for q in qualities]
    if view:
        from .html import store_selected

        store_selected(view[0], cells, decoded, view[1])
    return cells


def _tags(p: Plan, name: str, qualities: list) -> dict:
    return {q: p.tag(name, q) for q in qualities}


def _lost_cells(task: tuple, why: str) -> list[Cell]:
    """The failed cells of a measure_task the cluster could not run (cluster.run's ``lost``)."""
    path, codec_name, qualities, sha, weights = task
    return [Cell(codec_name, q, Path(path).name, sha, error=why, weights=weights.get(q, "")) for q in qualities]


def _worker_init() -> None:
    """Worker processes use one torch thread and one BLAS thread each, so --jobs N uses N cores."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # numpy was imported before this ran; the limit holds for the process
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


from ..threads import one_core  # noqa: E402


# ---------------------------------------------------------------- cache


def load_cells(path: Path) -> dict[str, Cell]:
    """The successful cells of a cells.jsonl file by key; a torn last line (interrupted run) is ignored."""
    cells: dict[str, Cell] = {}
    if not path.exists():
        return cells
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                cell = Cell.from_json(line)
            except (ValueError, TypeError, KeyError):
                continue
            if cell.ok:
                cells[cell.key] = cell
    return cells


def _append_cells(fh, cells: list[Cell]) -> None:
    for c in cells:
        if c.ok:
            fh.write(c.to_json() + "\n")
    fh.flush()
    os.fsync(fh.fileno())


def measure(p: Plan, out_dir: Path, jobs: int = 1, recompute: bool = False,
            progress: bool = True, cluster=None, view_points: int = 0,
            view_images: int = 0) -> tuple[dict[str, Cell], int, int, list[Cell]]:
    """Measure the plan's pending cells; returns (cells by key, computed, cached, failures).

    Local runs keep the decoded images of the first ``view_images`` images for report.html's
    viewer, at most ``view_points`` per codec and image (html.py renders the rest afterwards).

    ``cluster`` (a Dask scheduler address, ``local:N`` or a distributed.Client) measures on a
    Dask cluster instead of ``jobs`` processes; this process stays the one writer of cells.jsonl.
    """
    require_at_least("--jobs", jobs, 1)
    check_jobs(cluster, jobs)
    cache_path = out_dir / CELLS_FILE
    cache = load_cells(cache_path)
    if recompute:
        for k in [k for k, c in cache.items() if c.codec in p.qualities]:
            del cache[k]
    tasks: dict[tuple[str, str], list] = {}
    wanted: dict[str, Cell] = {}
    cached = 0
    for name, q, path in p.keys():
        key = p.cell_key(name, q, path)
        if key in cache:
            wanted[key] = cache[key]
            cached += 1
        else:
            tasks.setdefault((str(path), name), []).append(q)
    pending = sum(len(qs) for qs in tasks.values())
    failures: list[Cell] = []
    computed = 0
    if not pending:
        return wanted, 0, cached, failures

    from tqdm import tqdm

    viewed = {str(path) for path in p.images[:view_images]} if view_points > 0 else set()

    def view(path: str):
        return (str(out_dir), view_points) if path in viewed else None

    bar = tqdm(total=pending, desc="bench", unit="cell", disable=not progress, dynamic_ncols=True)
    with cache_path.open("a", encoding="utf-8") as fh:
        # A run that was killed in the middle of a line leaves a torn line: start on a fresh one.
        if fh.tell() > 0:
            with cache_path.open("rb") as rb:
                rb.seek(-1, os.SEEK_END)
                if rb.read(1) != b"\n":
                    fh.write("\n")

        def take(cells: list[Cell]) -> None:
            nonlocal computed
            _append_cells(fh, cells)
            for c in cells:
                computed += 1
                if c.ok:
                    wanted[c.key] = c
                else:
                    failures.append(c)
            bar.update(len(cells))

        try:
            items = list(tasks.items())
            if cluster is not None:
                from contextlib import closing

                from ..cluster import run as run_on_cluster

                work = [(path, name, qs, p.image_sha256[Path(path).name], _tags(p, name, qs)) for (path, name), qs in items]
                with closing(run_on_cluster(cluster, measure_task, work, _lost_cells, init=_worker_init)) as results:
                    for cells in results:
                        take(cells)
            elif jobs == 1:
                with one_core():
                    for (path, name), qs in items:
                        bar.set_postfix_str(f"{name} {Path(path).name}", refresh=False)
                        take(measure_task(path, name, qs, p.image_sha256[Path(path).name], _tags(p, name, qs),
                                          view(path)))
            else:
                import multiprocessing

                ctx = multiprocessing.get_context("spawn")  # no fork after torch started threads
                with worker_pool(jobs, mp_context=ctx, initializer=_worker_init) as pool:
                    futs = [pool.submit(measure_task, path, name, qs, p.image_sha256[Path(path).name],
                                        _tags(p, name, qs), view(path))
                            for (path, name), qs in items]
                    for fut in as_completed(futs):
                        take(fut.result())
        finally:
            bar.close()
    return wanted, computed, cached, failures


# ---------------------------------------------------------------- the whole run


def run_bench(data_dir: str | Path | None = None, out_dir: str | Path = "bench/results",
              codecs: list[str] | None = None, qualities: list | None = None, jobs: int = 1,
              anchors: list[str] | bool | None = None, limit: int | None = None,
              recompute: bool = False, progress: bool = True, command: str | None = None,
              cluster=None, view_points: int | None = None, view_images: int | None = None) -> BenchSummary:
    """Measure, then write results JSON, per-image CSV, plots, report.md and report.html into ``out_dir``.

    ``view_points`` / ``view_images`` cap report.html's per-image viewer (html.py): at most that
    many decoded points per codec and image, for the first that many images (0: no viewer).

    ``anchors``: True for the default published curves, a list of anchor names
    (see anchors.py), or None/False for none. ``command`` is quoted in the report as the way to
    reproduce it. ``cluster``: measure on a Dask cluster (see :func:`measure`); the data folder
    must be at the same path on every worker. Raises UsageError for bad arguments (unknown codec,
    missing or empty data).
    """
    from . import anchors as anchors_mod
    from . import html, report, results

    view_points = html.DEFAULT_VIEW_POINTS if view_points is None else view_points
    view_images = html.DEFAULT_VIEW_IMAGES if view_images is None else view_images
    require_at_least("--view-points", view_points, 0)
    require_at_least("--view-images", view_images, 0)

    t0 = time.perf_counter()
    data = Path(data_dir) if data_dir is not None else default_data_dir()
    p = plan(data, codecs, qualities, limit)
    anchor_curves = anchors_mod.load_anchors(anchors) if anchors else []
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {out}: {exc.strerror or exc}") from None
    cells, computed, cached, failures = measure(p, out, jobs, recompute, progress, cluster, view_points=view_points,
                                                view_images=view_images)
    curves = results.aggregate(p, cells)
    files = results.write_results(curves, out)
    files.append(results.write_csv(p, cells, failures, out / "per_image.csv"))
    seconds = time.perf_counter() - t0
    files += report.write_report(out, data, p, curves, anchor_curves, failures, jobs=jobs,
                                 command=command, run_seconds=seconds, computed=computed, cached=cached)
    report_md = next(f for f in files if f.name == "report.md")
    files.append(html.write_report_html(out, p, cells, curves, anchor_curves, report_md.read_text(encoding="utf-8"),
                                        view_points, view_images, progress))
    return BenchSummary(out, p.codecs, len(p.images), computed, cached, failures, seconds, files, p.skipped)
