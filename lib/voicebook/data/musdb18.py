"""Reader of a local copy of MUSDB18 (Rafii et al., 2017) as chapter 4's labelled and test songs.

Accepted layouts (the published ones, as the ``musdb`` package lays them out)::

    MUSDB18-HQ:  root/train/<track name>/{mixture,vocals,drums,bass,other}.wav  (44.1 kHz stereo)
                 root/test/<track name>/...
    MUSDB18:     root/train/<track name>.stem.mp4, root/test/<track name>.stem.mp4
                 (five AAC streams: 0 mixture, 1 drums, 2 bass, 3 other, 4 vocals)

``train`` -> split ``labelled`` (Wang et al. 3.1), ``test`` -> ``test`` (section 4.1: its 50
songs). A track's :meth:`MusdbTrack.stems` is row 0 the vocals, row 1 the accompaniment, drums +
bass + other (musdb's ``targets["accompaniment"]``, gains 1), each the mean of its channels,
resampled from 44.1 kHz to 16 kHz (section 3.2); whole tracks (the chapter segments them); nothing
is kept in memory. ``mixture.wav`` is not read: the mixture is the sum of the two stems.

Why not through ``musdb`` itself: musdb 0.4.3 imports stempeg, which raises at import unless both
``ffmpeg`` and ``ffprobe`` are on ``PATH``, and it reads even the wav layout through them
(``stempeg.Info`` runs ffprobe on every track, ``stempeg.read_stems`` runs ffmpeg). The machines
this book is tested on have neither (imageio-ffmpeg ships ffmpeg, no ffprobe), and musdb is no
dependency of voicebook. So this module follows musdb's layout and definitions (its
``configs/mus.yaml``: file names, stream ids, target gains), reading wav files with soundfile and
stem files with imageio-ffmpeg's ffmpeg; ``tests/test_song_readers.py`` checks the track names,
subsets and stems against ``musdb.DB``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..checks import CorpusError
from . import tracks
from .songs import SongItem

__all__ = ["LAYOUT", "SPLITS", "STEM_IDS", "MusdbTrack", "find_root", "read_musdb18"]

LAYOUT = ("train/<track>/{vocals,drums,bass,other}.wav (MUSDB18-HQ) or train/<track>.stem.mp4 (MUSDB18), "
          "and the same under test/")
#: MUSDB subset -> song set of chapter 4.
SPLITS = {"train": "labelled", "test": "test"}
#: Audio stream of each source in a ``.stem.mp4`` (musdb's ``stem_ids``).
STEM_IDS = {"mixture": 0, "drums": 1, "bass": 2, "other": 3, "vocals": 4}
ACCOMPANIMENT = ("drums", "bass", "other")
_WAVS = ("vocals", *ACCOMPANIMENT)
_STEM = ".stem.mp4"
_HQ_HINT = ("MUSDB18-HQ's wav layout needs no ffmpeg (download MUSDB18-HQ, or convert: musdb's `musdbconvert` "
            "writes it, given ffmpeg and ffprobe)")


@dataclass(frozen=True)
class MusdbTrack(SongItem):
    """One MUSDB18 track: ``path`` is its folder (HQ wav layout) or its ``.stem.mp4`` file;
    ``seconds`` its length where the header tells it (wav), else None."""

    id: str
    split: str
    path: Path
    seconds: float | None = None
    singer: str = ""

    def stems(self) -> np.ndarray:
        """``(2, samples)`` float32 at 16 kHz, mono: vocals, accompaniment (drums + bass + other)."""
        if self.path.is_dir():
            vocals, sr = tracks.read_mono(self.path / "vocals.wav")
            parts = [tracks.read_mono(self.path / f"{name}.wav") for name in ACCOMPANIMENT]
            if any(rate != sr for _, rate in parts):
                raise CorpusError(f"{self.path}: the stems have different sample rates ({sr} and "
                                  f"{sorted({rate for _, rate in parts})} Hz)")
            waves = [w for w, _ in parts]
        else:
            try:
                (vocals, *waves), sr = tracks.decode_mono(self.path, tuple(STEM_IDS[n] for n in _WAVS))
            except CorpusError as err:
                raise CorpusError(f"{err}. {_HQ_HINT}") from err
        accompaniment = np.zeros(max(len(w) for w in waves), dtype=np.float32)
        for w in waves:
            accompaniment[: len(w)] += w
        return tracks.song_stems(vocals, accompaniment, sr)


def _track_dirs(subset: Path) -> list[Path]:
    """Folders of ``subset`` holding any MUSDB18-HQ wav (``mixture.wav`` or a stem)."""
    names = ("mixture", *_WAVS)
    return sorted(p for p in subset.iterdir() if p.is_dir() and any((p / f"{n}.wav").is_file() for n in names))


def _stem_files(subset: Path) -> list[Path]:
    return sorted(p for p in subset.glob("*" + _STEM) if p.is_file())


def find_root(path: str | Path) -> Path | None:
    """``path`` if its ``train/`` or ``test/`` folder holds MUSDB18 tracks (either layout), else None."""
    path = Path(path)
    for subset in SPLITS:
        folder = path / subset
        if folder.is_dir() and (_track_dirs(folder) or _stem_files(folder)):
            return path
    return None


def _wav_track(folder: Path, split: str) -> MusdbTrack:
    """A track of the HQ layout, its four stems checked (present, header readable)."""
    for name in _WAVS:
        if not (folder / f"{name}.wav").is_file():
            raise CorpusError(f"{folder / f'{name}.wav'}: missing (a MUSDB18-HQ track folder holds "
                              f"{', '.join(n + '.wav' for n in _WAVS)}, and mixture.wav)")
    seconds = [tracks.probe(folder / f"{name}.wav") for name in _WAVS]
    return MusdbTrack(folder.name, split, folder, seconds=seconds[0])


def _stem_track(file: Path, split: str) -> MusdbTrack:
    """A track of the compressed layout: the file is not empty and an ffmpeg exists to decode it."""
    if file.stat().st_size == 0:
        raise CorpusError(f"{file}: empty file (expected a MUSDB18 .stem.mp4 with five audio streams)")
    try:
        tracks.need_ffmpeg(file)
    except CorpusError as err:
        raise CorpusError(f"{err}. {_HQ_HINT}") from err
    return MusdbTrack(file.name[: -len(_STEM)], split, file)


def read_musdb18(root: str | Path, subsets=("train", "test")) -> list[MusdbTrack]:
    """The tracks of a MUSDB18 or MUSDB18-HQ copy at ``root`` (see the module doc), sorted by name
    within each subset. A subset folder with wav track folders is read as MUSDB18-HQ, else as
    ``.stem.mp4`` files (decoded when a track's stems are read, with ffmpeg: one must exist)."""
    root = Path(root)
    if find_root(root) != root:
        raise CorpusError(f"{root}: not a MUSDB18 copy (expected {LAYOUT})")
    songs = []
    for subset in subsets:
        if subset not in SPLITS:
            raise ValueError(f"unknown MUSDB18 subset {subset!r}; choose from {tuple(SPLITS)}")
        folder = root / subset
        if not folder.is_dir():
            continue
        if dirs := _track_dirs(folder):
            songs += [_wav_track(d, SPLITS[subset]) for d in dirs]
        else:
            songs += [_stem_track(f, SPLITS[subset]) for f in _stem_files(folder)]
    if not songs:
        raise CorpusError(f"{root}: no MUSDB18 tracks in the subsets {list(subsets)} (expected {LAYOUT})")
    return songs
