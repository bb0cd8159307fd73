"""Atomic file writes, checksums and inter-process locks, shared by checkpoints, caches and
results; and the one place that finds the ffmpeg binary (:func:`ffmpeg_exe`) for media soundfile
cannot read or write.

A file is written to a temporary name in the same folder, flushed to disk and renamed over
the destination, so a reader sees either the old file or the whole new one, never a torn one.
:func:`locked` makes a second process that wants to fill the same cache wait for the first,
instead of computing everything twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    Use it for writers that want a file name (``soundfile.write``, ``torch.save``,
    ``np.save``). If the block raises, the temporary file is removed and ``path`` is untouched.
    The temporary name keeps ``path``'s suffix so format-sniffing writers still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=float) + "\n").encode())


def sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@contextmanager
def locked(path: str | os.PathLike, what: str = "") -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (a file or folder being made) for the block.

    The lock is the file ``.<name>.lock`` beside ``path`` (made if missing). Another process
    (or thread) asking for the same ``path`` waits until this block ends; it says once that it
    is waiting (``what`` names what the other one is making), so a second notebook or test
    worker that needs a cache being generated waits instead of generating it again. The lock
    is the operating system's (``filelock``): a killed holder releases it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path.parent / f".{path.name}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"waiting for another process that is making {path}" + (f" ({what})" if what else ""),
              flush=True)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def ffmpeg_exe(required: bool = True) -> str | None:
    """Path of an ffmpeg binary: the one the ``imageio-ffmpeg`` wheel ships (a voicebook
    dependency; ``$IMAGEIO_FFMPEG_EXE`` overrides it), else one on ``PATH``. With none: a
    RuntimeError saying what to install, or None if not ``required``."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        exe = shutil.which("ffmpeg")
    if exe is None and required:
        raise RuntimeError("no ffmpeg found: install imageio-ffmpeg (a voicebook dependency ships one) "
                           "or put ffmpeg on PATH")
    return exe
