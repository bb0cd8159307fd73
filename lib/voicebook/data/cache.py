"""The on-disk cache of generated data: a folder of files described by ``manifest.json``.

The manifest holds a *header* (generator name, version, parameters, seed) and, for every file,
its path relative to the folder, its size in bytes, its SHA-256 and free metadata (JSON) that the
generator returned with it. A manifest whose header differs from the one asked for is not reused.

:func:`fill` makes whatever :func:`verify` finds missing, truncated or corrupted, in parallel
processes, writing each file atomically and saving the manifest every few seconds, so an
interrupted generation resumes and keeps the good files; two processes filling one folder take
turns (a lock file), so the second finds the first one's files instead of making them again.
Any generator fits: speech corpora, songs, face videos.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from tqdm.auto import tqdm

from ..files import atomic_write_json, locked, sha256

__all__ = ["MANIFEST", "default_cache_dir", "describe", "folder_for", "read_manifest",
           "write_manifest", "verify", "fill", "cpu_workers", "process_pool"]

MANIFEST = "manifest.json"

# make(folder, relpath, job) -> metadata: writes folder/relpath atomically (runs in a worker)
Maker = Callable[[Path, str, Any], dict]


def default_cache_dir() -> Path:
    """``$VOICEBOOK_CACHE``, else ``$XDG_CACHE_HOME/voicebook``, else ``~/.cache/voicebook``."""
    if os.environ.get("VOICEBOOK_CACHE"):
        return Path(os.environ["VOICEBOOK_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "voicebook"


def describe(generator: str, version: str | int, params: dict, seed: int) -> dict:
    """The header identifying what a cache folder holds (JSON-normalised, so it compares equal
    to the header read back from disk)."""
    header = {"generator": generator, "version": str(version), "params": params, "seed": int(seed)}
    return json.loads(json.dumps(header, sort_keys=True))


def folder_for(root: str | os.PathLike, header: dict) -> Path:
    """A sub-folder of ``root`` named after the header: ``<generator>-<12 hex digits>``, so a
    cache made with another version, seed or parameters lives elsewhere."""
    digest = hashlib.sha256(json.dumps(header, sort_keys=True).encode()).hexdigest()[:12]
    return Path(root) / f"{header['generator']}-{digest}"


def read_manifest(folder: str | os.PathLike, header: dict | None = None) -> dict:
    """The manifest in ``folder``; an empty one (no files) if there is none, if it cannot be
    parsed, or if its header differs from ``header`` (when given)."""
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
        ok = isinstance(manifest.get("files"), dict) and (header is None or manifest.get("header") == header)
    except (OSError, ValueError, AttributeError):
        ok = False
    return manifest if ok else {"header": header, "files": {}}


def write_manifest(folder: str | os.PathLike, manifest: dict) -> None:
    """Save ``manifest`` atomically as ``folder/manifest.json`` (key-sorted, reproducible)."""
    atomic_write_json(Path(folder) / MANIFEST, manifest)


def verify(folder: str | os.PathLike, manifest: dict, wanted: Iterable[str] | None = None,
           *, checksums: bool = True) -> list[str]:
    """Relative paths (of ``wanted``, default: all in the manifest) that must be regenerated:
    not in the manifest, missing on disk, of another size (truncated) or, if ``checksums``,
    with another SHA-256 (corrupted)."""
    folder, files = Path(folder), manifest["files"]
    bad = []
    for rel in (files if wanted is None else wanted):
        entry, path = files.get(rel), Path(folder) / rel
        if entry is None or not path.is_file() or path.stat().st_size != entry["bytes"]:
            bad.append(rel)
        elif checksums and sha256(path) != entry["sha256"]:
            bad.append(rel)
    return bad


def cpu_workers(workers: int | None = None) -> int:
    """``workers`` if given, else the CPU cores this process may use."""
    if workers is not None:
        return max(1, int(workers))
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def process_pool(workers: int) -> cf.ProcessPoolExecutor:
    """A pool of ``workers`` processes for CPU work (data generation, WORLD analysis).

    They are forked (quick to start, they share what this process has loaded), unless this
    process has started CUDA: a forked child of a CUDA process cannot use it and may hang, so
    then they start from a fork server, a clean process without CUDA. Either way the function
    they run must be a module-level one.
    """
    torch = sys.modules.get("torch")                       # not imported here just to ask
    cuda_started = torch is not None and torch.cuda.is_initialized()
    return cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("forkserver" if cuda_started else "fork"))


def _make_chunk(make: Maker, folder: Path, chunk: list[tuple[str, Any]]) -> list[tuple[str, dict]]:
    """Worker side: make each file, then return its manifest entry."""
    out = []
    for rel, job in chunk:
        meta = make(folder, rel, job)
        path = folder / rel
        out.append((rel, {"bytes": path.stat().st_size, "sha256": sha256(path), "meta": meta}))
    return out


def _chunks(items: list, n_workers: int) -> list[list]:
    size = max(1, min(32, len(items) // (4 * n_workers) or 1))
    return [items[i:i + size] for i in range(0, len(items), size)]


def _run(make: Maker, folder: Path, todo: list[tuple[str, Any]], workers: int):
    """Yield ``(relpath, entry)`` as files are made, in worker processes if ``workers > 1``."""
    chunks = _chunks(todo, workers)
    if workers <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            yield from _make_chunk(make, folder, chunk)
        return
    with process_pool(min(workers, len(chunks))) as pool:
        futures = [pool.submit(_make_chunk, make, folder, chunk) for chunk in chunks]
        try:
            for future in cf.as_completed(futures):
                yield from future.result()
        finally:
            for future in futures:
                future.cancel()


def fill(folder: str | os.PathLike, header: dict, jobs: dict[str, Any], make: Maker, *,
         workers: int | None = None, desc: str = "generating", save_every_s: float = 5.0) -> dict:
    """Make every file of ``jobs`` (relative path -> job) that is not already good in ``folder``.

    ``make(folder, relpath, job)`` must write ``folder/relpath`` atomically (e.g. with
    :func:`voicebook.files.atomic_path`) and return JSON-able metadata; it runs in
    ``workers`` processes (default: all usable cores), so it must be a module-level function.
    Manifest entries not in ``jobs`` are dropped. Returns the saved manifest. A second process
    filling the same folder meanwhile waits for this one (a lock file beside the folder), then
    finds the files made.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with locked(folder, desc):
        return _fill(folder, header, jobs, make, cpu_workers(workers), desc, save_every_s)


def _fill(folder: Path, header: dict, jobs: dict[str, Any], make: Maker, workers: int, desc: str,
          save_every_s: float) -> dict:
    on_disk = read_manifest(folder, header)
    files = {rel: entry for rel, entry in on_disk["files"].items() if rel in jobs}
    manifest = {"header": header, "files": files}
    todo = verify(folder, manifest, jobs)
    for rel in todo:
        files.pop(rel, None)
    if not todo:
        if manifest != on_disk:
            write_manifest(folder, manifest)
        return manifest
    last_save = time.monotonic()
    try:
        with tqdm(total=len(todo), desc=desc, unit="file") as bar:
            for rel, entry in _run(make, folder, [(rel, jobs[rel]) for rel in todo], workers):
                files[rel] = entry
                bar.update(1)
                if time.monotonic() - last_save > save_every_s:
                    write_manifest(folder, manifest)
                    last_save = time.monotonic()
    finally:
        write_manifest(folder, manifest)
    return manifest
