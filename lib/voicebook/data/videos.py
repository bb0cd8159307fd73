"""Readers of real talking-face video folders: LRW and VoxCeleb2 (chapter 5; Chung et al. section 2).

The paper trains on LRW (BBC news, one word per 1.16 s clip) and VoxCeleb (celebrity
interviews). Neither can be downloaded here; a reader who has a local copy points the chapter's
``data_dir`` at it and :func:`load_videos` finds the layout:

* LRW: ``lipread_mp4/<WORD>/{train,val,test}/<WORD>_<5 digits>.mp4`` (``root`` may hold
  ``lipread_mp4`` or be it); the ``.txt`` files beside the videos are ignored;
* VoxCeleb2: ``{dev,test}/mp4/<idNNNNN>/<YouTube id>/<5 digits>.mp4`` (``root`` may hold the
  split folders, be one of them, or be its ``mp4`` folder: a bare ``mp4`` folder is the split
  its parent is named after, else "dev").

Each :class:`VideoItem` has ``load()`` -> :class:`Video` ``(frames, fps, audio, sr)``: frames
uint8 ``(T, H, W, 3)`` RGB resampled to ``fps`` (25 by default, the paper's rate; ``None``
keeps the file's), audio float32 mono ``(samples,)`` at ``sr`` Hz (16 kHz by default). Decoding
uses the ffmpeg binary of the ``imageio-ffmpeg`` wheel (no system ffmpeg is needed). Generated
clips (:mod:`voicebook.data.faces`) load into objects with the same four attributes.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..checks import AudioError, CorpusError
from ..files import ffmpeg_exe

__all__ = ["LRW_LAYOUT", "VOXCELEB2_LAYOUT", "Video", "VideoItem", "VideoSet", "read_video",
           "read_lrw", "read_voxceleb2", "load_videos"]

LRW_LAYOUT = "lipread_mp4/<WORD>/{train,val,test}/<WORD>_<5 digits>.mp4"
VOXCELEB2_LAYOUT = "{dev,test}/mp4/<idNNNNN>/<YouTube id>/<5 digits>.mp4"
_LRW_SPLITS, _VOX_SPLITS = ("train", "val", "test"), ("dev", "test")


class Video(NamedTuple):
    """Decoded video: ``frames`` uint8 ``(T, H, W, 3)`` RGB at ``fps`` frames/s, ``audio``
    float32 mono ``(samples,)`` at ``sr`` Hz."""

    frames: np.ndarray
    fps: float
    audio: np.ndarray
    sr: int


def _run(args: list[str], path: Path, what: str) -> tuple[bytes, str]:
    proc = subprocess.run([ffmpeg_exe(), "-nostdin", "-hide_banner", "-i", str(path), *args, "-"],
                          capture_output=True)
    err = proc.stderr.decode(errors="replace")
    if proc.returncode != 0:
        if "matches no streams" in err:
            kind = AudioError if what == "audio" else CorpusError
            raise kind(f"{path}: the file has no {what} track (expected an mp4 with video and audio)")
        last = [ln for ln in err.strip().splitlines() if ln.strip()][-1:] or ["(no message)"]
        raise CorpusError(f"{path}: ffmpeg cannot decode its {what}: {last[0].strip()}")
    return proc.stdout, err


def _native_fps(info: str, path: Path) -> float:
    m = re.search(r"Stream #\d+:\d+.*?Video:.*?([\d.]+) fps", info)
    if not m:
        raise CorpusError(f"{path}: ffmpeg reports no frame rate for the video stream; pass fps=")
    return float(m.group(1))


def _frames(data: bytes, path: Path) -> np.ndarray:
    """Concatenated binary PPM images -> ``(T, H, W, 3)`` uint8."""
    m = re.match(rb"P6\s+(\d+)\s+(\d+)\s+255\s", data[:64])
    if not m:
        raise CorpusError(f"{path}: ffmpeg decoded no video frames")
    w, h, head = int(m.group(1)), int(m.group(2)), m.end()
    size = head + w * h * 3
    if len(data) % size:
        raise CorpusError(f"{path}: decoded frames of unequal size (does the video change resolution?)")
    frames = np.frombuffer(data, np.uint8).reshape(-1, size)[:, head:]
    return frames.reshape(-1, h, w, 3).copy()


def read_video(path, fps: float | None = 25.0, sr: int = 16000) -> Video:
    """Decode a video file with its audio: frames at ``fps`` (``None``: the file's rate),
    audio mono at ``sr`` Hz. Raises :class:`CorpusError` for a missing or undecodable file
    and :class:`AudioError` for one without an audio track, naming the file."""
    path = Path(path)
    if fps is not None and not fps > 0:
        raise ValueError(f"read_video: fps must be positive or None (the file's rate), got {fps}")
    if not int(sr) > 0:
        raise ValueError(f"read_video: sr must be a positive number of Hz, got {sr}")
    if not path.is_file():
        raise CorpusError(f"{path}: no such video file")
    video_args = ["-map", "0:v:0", "-an"] + (["-vf", f"fps={fps}"] if fps else [])
    data, info = _run(video_args + ["-f", "image2pipe", "-c:v", "ppm"], path, "video")
    frames = _frames(data, path)
    rate = float(fps) if fps else _native_fps(info, path)
    pcm, _ = _run(["-map", "0:a:0", "-vn", "-ac", "1", "-ar", str(int(sr)), "-f", "f32le"], path, "audio")
    audio = np.frombuffer(pcm, np.float32).copy()
    if not audio.size:
        raise AudioError(f"{path}: the audio track decodes to no samples")
    return Video(frames, rate, audio, int(sr))


@dataclass(frozen=True)
class VideoItem:
    """One video of a real corpus: ``corpus`` "lrw" or "voxceleb2", its ``split`` (LRW: train,
    val, test; VoxCeleb2: dev, test), ``word`` (LRW), ``speaker`` and YouTube ``video`` id
    (VoxCeleb2), ``path``; :meth:`load` decodes it."""

    id: str
    corpus: str
    split: str
    speaker: str
    word: str
    video: str
    path: Path

    def load(self, fps: float | None = 25.0, sr: int = 16000) -> Video:
        return read_video(self.path, fps, sr)


@dataclass
class VideoSet:
    items: list[VideoItem]
    root: Path
    corpus: str

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return iter(self.items)

    def __getitem__(self, i):
        return self.items[i]

    @property
    def splits(self) -> list[str]:
        return sorted({v.split for v in self.items})

    @property
    def speakers(self) -> list[str]:
        return sorted({v.speaker for v in self.items if v.speaker})

    @property
    def words(self) -> list[str]:
        return sorted({v.word for v in self.items if v.word})

    def split(self, name: str) -> list[VideoItem]:
        if name not in self.splits:
            raise ValueError(f"{self.root}: no {name!r} split in this {self.corpus} folder; it has {self.splits}")
        return [v for v in self.items if v.split == name]


def _dirs(folder: Path) -> list[os.DirEntry]:
    return sorted((e for e in os.scandir(folder) if e.is_dir()), key=lambda e: e.name)


def _lrw_root(root: Path) -> Path | None:
    """The folder holding LRW's word folders, or None."""
    for base in (root / "lipread_mp4", root):
        if base.is_dir() and any(Path(w.path, s).is_dir() for w in _dirs(base)[:50] for s in _LRW_SPLITS):
            return base
    return None


def read_lrw(root) -> VideoSet:
    """The LRW videos under ``root`` (see :data:`LRW_LAYOUT`)."""
    base = _lrw_root(Path(root))
    if base is None:
        raise CorpusError(f"{root}: not an LRW folder (expected {LRW_LAYOUT})")
    items = []
    for word in _dirs(base):
        pattern = re.compile(rf"^{re.escape(word.name)}_(\d{{5}})\.mp4$")
        for split in _LRW_SPLITS:
            folder = Path(word.path, split)
            if folder.is_dir():
                for name in sorted(os.listdir(folder)):
                    if m := pattern.match(name):
                        items.append(VideoItem(f"{split}/{word.name}_{m.group(1)}", "lrw", split, "", word.name, "",
                                               folder / name))
    if not items:
        raise CorpusError(f"{base}: looks like LRW but holds no videos named as {LRW_LAYOUT}")
    return VideoSet(items, base, "lrw")


def _vox_splits(root: Path) -> list[tuple[str, Path]] | None:
    """``(split, mp4 folder)`` pairs of a VoxCeleb2 folder, or None."""
    found = [(s, root / s / "mp4") for s in _VOX_SPLITS if (root / s / "mp4").is_dir()]
    if found:
        return found
    if (root / "mp4").is_dir():
        return [(root.name if root.name in _VOX_SPLITS else "dev", root / "mp4")]
    if root.name == "mp4" and any(d.name.startswith("id") for d in _dirs(root)):
        return [(root.parent.name if root.parent.name in _VOX_SPLITS else "dev", root)]
    return None


def read_voxceleb2(root) -> VideoSet:
    """The VoxCeleb2 videos under ``root`` (see :data:`VOXCELEB2_LAYOUT`)."""
    root = Path(root)
    splits = _vox_splits(root)
    if splits is None:
        raise CorpusError(f"{root}: not a VoxCeleb2 folder (expected {VOXCELEB2_LAYOUT})")
    items = []
    for split, mp4 in splits:
        for spk in (d for d in _dirs(mp4) if re.fullmatch(r"id\d+", d.name)):
            for yt in _dirs(spk.path):
                for name in sorted(os.listdir(yt.path)):
                    if re.fullmatch(r"\d{5}\.mp4", name):
                        items.append(VideoItem(f"{spk.name}/{yt.name}/{name[:-4]}", "voxceleb2", split, spk.name, "",
                                               yt.name, Path(yt.path, name)))
    if not items:
        raise CorpusError(f"{root}: looks like VoxCeleb2 but holds no videos named as {VOXCELEB2_LAYOUT}")
    return VideoSet(items, root, "voxceleb2")


def load_videos(root) -> VideoSet:
    """The LRW or VoxCeleb2 videos of the folder ``root`` (whichever layout it has)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise CorpusError(f"{root}: no such folder (expected a local copy of LRW or VoxCeleb2)")
    if _vox_splits(root) is not None:
        return read_voxceleb2(root)
    if _lrw_root(root) is not None:
        return read_lrw(root)
    raise CorpusError(f"{root}: neither an LRW nor a VoxCeleb2 video folder. Expected LRW as {LRW_LAYOUT} (or the "
                      f"lipread_mp4 folder itself), or VoxCeleb2 as {VOXCELEB2_LAYOUT} (or one split folder, or its "
                      f"mp4 folder).")
