"""Audio of the real music corpora (MUSDB18, DAMP-VSEP) as chapter 4's songs.

One file is read as a mono track, ``(samples,)`` float32 at the file's own rate: with soundfile
(wav, flac, ogg), or, for the AAC files soundfile cannot read (``.m4a``, ``.stem.mp4``), with the
ffmpeg binary that the ``imageio-ffmpeg`` wheel ships (a voicebook dependency; an ``ffmpeg`` on
``PATH`` also works). Two tracks become a song's stems with :func:`song_stems`: ``(2, samples)``
float32 at 16 kHz (Wang et al. section 3.2: downsample to 16 kHz, convert to mono). Every error
is a :class:`~voicebook.checks.CorpusError` that names the file.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from .. import audio
from ..checks import AudioError, CorpusError
from ..files import ffmpeg_exe
from .songs import SR

__all__ = ["FFMPEG_SUFFIXES", "ffmpeg_exe", "need_ffmpeg", "probe", "read_mono", "decode_mono", "song_stems"]

#: Suffixes soundfile cannot read and ffmpeg decodes (AAC in an MP4 container).
FFMPEG_SUFFIXES = (".m4a", ".mp4", ".aac")
_INSTALL = ("install ffmpeg (pip install imageio-ffmpeg, a voicebook dependency, ships one; or put ffmpeg "
            "on PATH), or convert the file to wav or flac")


def need_ffmpeg(path: Path) -> str:
    """The ffmpeg binary that will decode ``path``; :class:`CorpusError` saying what to do if none."""
    exe = ffmpeg_exe(required=False)
    if exe is None:
        raise CorpusError(f"{path}: soundfile cannot read {Path(path).suffix} files and no ffmpeg was found: {_INSTALL}")
    return exe


def probe(path: Path) -> float | None:
    """Check that ``path`` is there and, if soundfile reads its format, that its header reads;
    -> duration in seconds, or None for an AAC file (checked when decoded; an ffmpeg must exist)."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: missing audio file")
    if path.suffix.lower() in FFMPEG_SUFFIXES:
        try:                                    # some ".m4a" files hold Ogg Vorbis: soundfile reads those
            return sf.info(str(path)).duration
        except Exception:                       # soundfile raises LibsndfileError/RuntimeError
            need_ffmpeg(path)
            return None
    try:
        info = sf.info(str(path))
    except Exception as err:
        raise CorpusError(f"{path}: cannot read the audio header ({err})") from err
    return info.frames / info.samplerate


def read_mono(path: Path) -> tuple[np.ndarray, int]:
    """One track as ``(samples,)`` float32 (the mean of its channels) and its rate in Hz."""
    path = Path(path)
    try:
        wav, sr = audio.load(path, mono=True, mix_down=True)
    except FileNotFoundError as err:
        raise CorpusError(f"{path}: missing audio file") from err
    except AudioError as err:
        if path.suffix.lower() not in FFMPEG_SUFFIXES:
            raise CorpusError(str(err)) from err
        (wav,), sr = decode_mono(path, (0,))
    if len(wav) == 0:
        raise CorpusError(f"{path}: the audio file holds no samples")
    return wav, sr


def decode_mono(path: Path, streams: tuple[int, ...]) -> tuple[list[np.ndarray], int]:
    """Audio streams ``streams`` (0 = the first audio stream) of an ffmpeg-readable file, each as
    ``(samples,)`` float32 (mean of its channels), decoded in one ffmpeg run at the file's own
    rate (via temporary float wavs); -> (tracks, rate in Hz)."""
    path = Path(path)
    exe = need_ffmpeg(path)
    with tempfile.TemporaryDirectory(prefix="voicebook-decode-") as tmp:
        outs = [Path(tmp) / f"stream{i}.wav" for i in streams]
        cmd = [exe, "-nostdin", "-v", "error", "-i", str(path)]
        for i, out in zip(streams, outs):
            cmd += ["-map", f"0:a:{i}", "-c:a", "pcm_f32le", str(out)]
        try:
            run = subprocess.run(cmd, capture_output=True, text=True)
        except OSError as err:
            raise CorpusError(f"{path}: cannot run ffmpeg ({exe}: {err}): {_INSTALL}") from err
        if run.returncode != 0 or not all(o.is_file() for o in outs):
            why = (run.stderr.strip().splitlines() or ["no message"])[-1]
            raise CorpusError(f"{path}: ffmpeg could not decode audio stream(s) {list(streams)} ({why})")
        loaded = [audio.load(o, mono=True, mix_down=True) for o in outs]
    rates = {sr for _, sr in loaded}
    if len(rates) != 1:
        raise CorpusError(f"{path}: its audio streams have different sample rates {sorted(rates)}")
    return [w for w, _ in loaded], rates.pop()


def song_stems(first: np.ndarray, second: np.ndarray, sr: int, second_sr: int | None = None) -> np.ndarray:
    """Two mono tracks ``(samples,)`` (vocals or vocal track, accompaniment or backing track) at
    ``sr`` Hz (the second at ``second_sr`` if given) -> ``(2, samples)`` float32 at 16 kHz; the
    shorter track is zero-padded at its end."""
    rows = [audio.resample(first, int(sr), SR), audio.resample(second, int(second_sr or sr), SR)]
    out = np.zeros((2, max(len(r) for r in rows)), dtype=np.float32)
    for row, r in zip(out, rows):
        row[: len(r)] = r
    return out
