"""Reader of a DAMP-VSEP copy, or of a plain DAMP-style folder, as chapter 4's karaoke songs.

DAMP-VSEP (Smule, "Digital Archive of Mobile Performances - Vocal Separation", Zenodo 2019,
doi:10.5281/zenodo.3553059) holds karaoke-app performances: the singer's vocal track (the
backing track bleeds into it through headphones or speakers) and the backing track, plus the
app's own mix. Wang et al. 3.1 use it as the unlabelled set. Accepted layouts::

    DAMP-VSEP:   root/<N>/<country>/<language>/<performance key>/vocal.ogg
                                                                /background.m4a
                                                                /mix.m4a      (not used)
                 e.g. 18/IT/en/1000106951_2735676261/vocal.ogg
    DAMP-style:  root/<performance id>/vocal.<ext> + background.<ext>

That is, a performance is a folder one or four levels below ``root`` holding ``vocal.*`` and
``background.*``, each any of wav, flac, ogg or m4a. The DAMP-VSEP layout is the one its paths
show in the split files of DAMP-VSEP-Singles (github.com/groadabike/DAMP-VSEP-Singles,
``split/*.csv``: ``perf_key, background_path, mix_path, vocal_path``) and in asteroid's DAMP-VSEP
recipe: vocal tracks are Ogg Vorbis at 22.05 to 48 kHz, backing tracks AAC ``.m4a`` at 44.1 kHz.
soundfile reads the Ogg files; the m4a files are decoded with imageio-ffmpeg's ffmpeg
(:mod:`voicebook.data.tracks`). The release's metadata CSV files are not needed and not read.

Every performance -> split ``karaoke``, id = its folder name (the performance key). Its
:meth:`DampPerformance.stems` are row 0 the vocal track, row 1 the backing track, each the mean
of its channels at 16 kHz, the shorter zero-padded. The two tracks are used as recorded, from
their first samples: DAMP-VSEP's vocal and backing tracks can be offset from each other
(DAMP-VSEP-Singles estimates the offset against ``mix.m4a`` by cross-correlation); this reader
does not re-align them. Section 2.1's teacher labels each track on its own, which an offset
does not change; only the karaoke mixture (their sum) is then not the performance as heard.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..checks import CorpusError
from . import tracks
from .songs import SongItem

__all__ = ["LAYOUT", "AUDIO_SUFFIXES", "DampPerformance", "find_root", "read_damp"]

LAYOUT = ("<N>/<country>/<language>/<performance>/vocal.ogg + background.m4a (DAMP-VSEP), "
          "or <performance>/vocal.<ext> + background.<ext> with ext wav, flac, ogg or m4a (DAMP-style)")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".m4a")
_DEPTHS = ("*", "*/*/*/*")          # DAMP-style, DAMP-VSEP: where performance folders sit below root


@dataclass(frozen=True)
class DampPerformance(SongItem):
    """One karaoke performance: its ``vocal`` and ``background`` track files; ``seconds`` the
    vocal track's length where its header tells it, else None."""

    id: str
    split: str
    vocal: Path
    background: Path
    seconds: float | None = None
    singer: str = ""

    def stems(self) -> np.ndarray:
        """``(2, samples)`` float32 at 16 kHz, mono: vocal track, backing track."""
        vocal, sr_vocal = tracks.read_mono(self.vocal)          # DAMP-VSEP: 22.05 to 48 kHz
        background, sr_background = tracks.read_mono(self.background)   # DAMP-VSEP: 44.1 kHz
        return tracks.song_stems(vocal, background, sr_vocal, sr_background)


def _track(folder: Path, name: str) -> Path | None:
    """``folder/name.<ext>`` (any case of an audio suffix; wav before flac, ogg, m4a), else None."""
    files = [p for p in folder.glob(name + ".*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()]
    return min(files, key=lambda p: AUDIO_SUFFIXES.index(p.suffix.lower()), default=None)


def _vocal_files(root: Path):
    """``vocal.*`` audio files of performance folders one or four levels below ``root``."""
    for depth in _DEPTHS:
        for path in root.glob(f"{depth}/vocal.*"):
            if path.suffix.lower() in AUDIO_SUFFIXES and path.is_file():
                yield path


def find_root(path: str | Path) -> Path | None:
    """``path`` if performance folders (``vocal.*``) sit one or four levels below it, else None."""
    path = Path(path)
    return path if path.is_dir() and next(_vocal_files(path), None) is not None else None


def _performance(folder: Path) -> DampPerformance:
    vocal, background = _track(folder, "vocal"), _track(folder, "background")
    if background is None:
        raise CorpusError(f"{folder}: has {vocal.name} but no background track (expected background.<ext>, "
                          f"ext one of {', '.join(s[1:] for s in AUDIO_SUFFIXES)})")
    tracks.probe(background)
    return DampPerformance(folder.name, "karaoke", vocal, background, seconds=tracks.probe(vocal))


def read_damp(root: str | Path) -> list[DampPerformance]:
    """Every performance of a DAMP-VSEP or DAMP-style folder at ``root`` (see the module doc),
    sorted by id; each one's tracks are checked (present, header readable where soundfile can)."""
    root = Path(root)
    if find_root(root) != root:
        raise CorpusError(f"{root}: not a DAMP-VSEP or DAMP-style folder (expected {LAYOUT})")
    songs = sorted((_performance(f) for f in {v.parent for v in _vocal_files(root)}), key=lambda s: s.id)
    for a, b in zip(songs, songs[1:]):
        if a.id == b.id:
            raise CorpusError(f"{root}: two performances named {a.id!r} ({a.vocal.parent} and {b.vocal.parent})")
    return songs
