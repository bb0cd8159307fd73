"""Generated songs for singing-voice separation (chapter 4; Wang et al. section 3.1).

Every song is a sung vocal line (:mod:`voicebook.data.singing`: espeak voices of the speech
corpus made to sing a generated melody with WORLD) over a generated arrangement
(:mod:`voicebook.data.midi_render`: drums, bass, chords in the singer's range, rendered with a
General MIDI SoundFont), 16 kHz mono, zero-padded to a fixed length (30 s above ``smoke``, as
section 3.2 segments). Three sets play the paper's roles:

* ``labelled``: clean stems (MIR-1K + ccMixter + MUSDB-train);
* ``karaoke``: DAMP-like, far larger and without clean stems: an amateur singer (detuned
  notes, drifting pitch, uneven level) recorded in a room (reverberation and noise) with the
  backing track bleeding into the vocal track through headphones, and the voice bleeding into
  the backing track; only the two *tracks* are known;
* ``test``: clean stems, singers none of the other sets uses (MUSDB-test).

Each song is one 2-channel file: channel 0 the vocals (karaoke: the vocal track), channel 1 the
accompaniment (karaoke: the backing track). Cached on disk with a manifest like the speech corpus;
deterministic by seed.

Real corpora yield the same items (:class:`SongItem`): :mod:`voicebook.data.musdb18` (labelled and
test) and :mod:`voicebook.data.damp` (karaoke). :func:`load_song_sets` reads what a ``data_dir``
holds and generates the rest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.signal import butter, fftconvolve, sosfilt

from .. import audio
from ..checks import CorpusError
from . import cache
from .espeak import SAMPLE_RATE as SPEECH_SR, synthesize
from .midi_render import arrangement, render
from .singing import melody, sing
from .speech import SPEAKERS, _text_language, make_sentences

__all__ = ["SR", "SIZES", "SETS", "SongItem", "Song", "SongSet", "plan_songs", "generate_songs", "load_songs",
           "load_song_sets"]

GENERATOR, VERSION = "songs", 1
SR = 16000
SETS = ("labelled", "karaoke", "test")
#: Songs per set and their length in seconds.
SIZES = {
    "smoke": {"labelled": 6, "karaoke": 12, "test": 6, "seconds": 10.0},
    "standard": {"labelled": 40, "karaoke": 200, "test": 50, "seconds": 30.0},
    "paper": {"labelled": 200, "karaoke": 1000, "test": 50, "seconds": 30.0},
}
_RANGE = {"F": (57, 76), "M": (45, 64)}      # A3-E5 and A2-E4 as MIDI pitches
#: Singers of the test set only (held out from the labelled and karaoke sets).
TEST_SINGERS = ("en-gb-f3", "en-us-m3", "fr-f1", "de-f1", "es-f1", "en-us-f4")


class SongItem:
    """What chapter 4 uses of a song, generated or real: ``id``, ``split`` (one of :data:`SETS`),
    ``stems()`` -> ``(2, samples)`` float32 at :data:`SR` Hz, mono (row 0 the vocals or the vocal
    track, row 1 the accompaniment or the backing track) and ``mixture()`` -> ``(samples,)``, their
    sum. Items hold paths, never audio: each call reads the files again."""

    id: str
    split: str

    def stems(self) -> np.ndarray:
        raise NotImplementedError

    def mixture(self) -> np.ndarray:
        return self.stems().sum(axis=0)


@dataclass(frozen=True)
class Song(SongItem):
    """One generated song: ``stems()`` -> ``(2, samples)`` float32 at :data:`SR` (vocals or
    vocal track, accompaniment or backing track); ``mixture()`` their sum."""

    id: str
    split: str
    path: Path
    singer: str
    sex: str
    tonic: int
    minor: bool
    tempo: float
    vocal_gain_db: float
    seconds: float
    sr: int = SR

    def stems(self) -> np.ndarray:
        wav, _ = audio.load(self.path, self.sr, mono=False, allow_silence=True)
        if wav.ndim != 2 or wav.shape[1] != 2:
            raise audio.AudioError(f"{self.path}: expected 2 channels (vocals, accompaniment), got shape {wav.shape}")
        return np.ascontiguousarray(wav.T)


@dataclass
class SongSet:
    """Songs of the three sets; ``sources`` says where each set came from, e.g.
    ``{"labelled": "musdb18:/data/musdb18hq", "karaoke": "generated:smoke", "test": ...}``."""

    songs: list[SongItem]
    root: Path
    sources: dict[str, str] = field(default_factory=dict)

    def split(self, name: str) -> list[SongItem]:
        if name not in SETS:
            raise ValueError(f"unknown song set {name!r}; choose one of {SETS}")
        return [s for s in self.songs if s.split == name]


def _job(split: str, i: int, size: str, seed: int) -> dict:
    rng = random.Random(f"song/{seed}/{split}/{i}")
    singers = [s for s in SPEAKERS if (s.id in TEST_SINGERS) == (split == "test")]
    spk = singers[rng.randrange(len(singers))]
    seconds = SIZES[size]["seconds"]
    n_sentences = max(2, int(seconds / 6))
    texts = make_sentences(_text_language(spk.language), 60, seed=rng.randrange(2 ** 31))[:n_sentences]
    job = {"id": f"{split}-{i:04d}", "split": split, "singer": spk.id, "sex": spk.sex, "voice": spk.voice,
           "rate": spk.rate, "pitch": spk.pitch, "texts": texts, "tonic": rng.randrange(55, 67),
           "minor": rng.random() < 0.4, "tempo": float(rng.randrange(80, 132)),
           "vocal_gain_db": rng.uniform(-6, 6), "seconds": seconds, "seed": rng.randrange(2 ** 31)}
    if split == "karaoke":
        job.update(vocal_gain_db=rng.uniform(-10, 6), bleed_acc_db=rng.uniform(-24, -12),
                   bleed_voc_db=rng.uniform(-30, -18), noise_db=rng.uniform(-35, -20), rt60=rng.uniform(0.2, 0.6))
    return job


def plan_songs(size: str = "smoke", seed: int = 0) -> dict[str, dict]:
    """Relative path -> job of every song :func:`generate_songs` makes (no audio)."""
    if size not in SIZES:
        raise ValueError(f"unknown song set size {size!r}; choose one of {sorted(SIZES)}")
    return {f"{split}/{split}-{i:04d}.wav": _job(split, i, size, seed)
            for split in SETS for i in range(SIZES[size][split])}


def _room(x: np.ndarray, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """A little room: convolution with exponentially decaying noise (``rt60`` s), 25 % wet."""
    t = np.arange(int(rt60 * SR)) / SR
    ir = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)
    wet = fftconvolve(x, ir / np.sqrt(np.sum(ir ** 2)))[: len(x)]
    return 0.75 * x + 0.25 * wet


def _bleed(x: np.ndarray, db: float, delay_s: float, cutoff_hz: float) -> np.ndarray:
    """``x`` as another track hears it: low-passed (headphones), delayed, ``db`` down."""
    y = sosfilt(butter(2, cutoff_hz, fs=SR, output="sos"), x)
    d = int(delay_s * SR)
    return 10 ** (db / 20) * np.concatenate([np.zeros(d), y[: len(y) - d]])


def _make_song(folder: Path, relpath: str, job: dict) -> dict:
    """Cache worker: render one song into ``folder/relpath`` (2 channels); -> metadata."""
    rng = np.random.default_rng(job["seed"])
    speech = np.concatenate([synthesize(t, job["voice"], rate=job["rate"], pitch=job["pitch"],
                                        seed=job["seed"])[0] for t in job["texts"]])
    key = dict(tonic=job["tonic"], minor=job["minor"], tempo=job["tempo"], seconds=job["seconds"],
               voice_range=_RANGE[job["sex"]])
    notes = melody(**key, rng=rng)
    karaoke = job["split"] == "karaoke"
    vocals = sing(speech, SPEECH_SR, notes, job["seconds"], SR, rng, amateur=karaoke).astype(np.float64)
    acc = render(arrangement(**key, seed=job["seed"]), SR, job["seconds"]).astype(np.float64)
    vocals *= 10 ** (job["vocal_gain_db"] / 20) * np.sqrt(np.mean(acc ** 2) / max(np.mean(vocals ** 2), 1e-12))
    if karaoke:
        noise = 10 ** (job["noise_db"] / 20) * np.sqrt(np.mean(vocals ** 2)) * rng.standard_normal(len(vocals))
        vocals = _room(vocals, job["rt60"], rng) + noise          # room noise, noise_db below the voice
        voc_track = vocals + _bleed(acc, job["bleed_acc_db"], 0.03, 4000.0)
        acc_track = acc + _bleed(vocals, job["bleed_voc_db"], 0.01, 6000.0)
        vocals, acc = voc_track, acc_track
    stems = np.stack([vocals, acc], axis=1)
    stems *= 0.9 / max(np.abs(stems.sum(axis=1)).max(), np.abs(stems).max(), 1e-9)   # no clipping of the mix
    audio.save(Path(folder) / relpath, stems.astype(np.float32), SR)
    return {k: v for k, v in job.items() if k != "texts"} | {"n_notes": len(notes)}


def _header(size: str, seed: int, jobs: dict) -> dict:
    plan = hashlib.sha256(json.dumps(jobs, sort_keys=True).encode()).hexdigest()
    return cache.describe(GENERATOR, VERSION, {"size": size, "plan_sha256": plan,
                                               "speakers": [dataclasses.asdict(s) for s in SPEAKERS]}, seed)


def generate_songs(root, size: str = "smoke", seed: int = 0, workers: int | None = None) -> SongSet:
    """Make (or complete, or repair) the generated songs of ``size`` in ``root``."""
    jobs = plan_songs(size, seed)
    manifest = cache.fill(root, _header(size, seed, jobs), jobs, _make_song, workers=workers,
                          desc=f"songs ({size})")
    songs = []
    for rel, entry in sorted(manifest["files"].items()):
        m = entry["meta"]
        songs.append(Song(m["id"], m["split"], Path(root) / rel, m["singer"], m["sex"], m["tonic"], m["minor"],
                          m["tempo"], m["vocal_gain_db"], m["seconds"]))
    return SongSet(songs, Path(root), {name: f"generated:{size}" for name in SETS})


def load_songs(*, size: str = "smoke", seed: int = 0, cache_dir=None, workers: int | None = None) -> SongSet:
    """The generated songs, made on first use in ``cache_dir/songs/<size>-seed<seed>-v<version>``."""
    if size not in SIZES:
        raise ValueError(f"unknown song set size {size!r}; choose one of {sorted(SIZES)}")
    folder = Path(cache_dir or cache.default_cache_dir()) / "songs" / f"{size}-seed{seed}-v{VERSION}"
    return generate_songs(folder, size, seed, workers)


def _real_sets(data_dir: Path) -> dict[str, tuple[list[SongItem], str]]:
    """The sets a local folder provides: set name -> (songs, source). MUSDB18 and DAMP copies are
    found by their layout in ``data_dir`` itself or in one of its sub-folders."""
    from . import damp, musdb18

    layouts = f"MUSDB18 ({musdb18.LAYOUT}) and/or DAMP-VSEP / DAMP-style ({damp.LAYOUT})"
    if not data_dir.is_dir():
        raise CorpusError(f"{data_dir}: no such folder (expected {layouts})")
    candidates = [data_dir, *sorted(p for p in data_dir.iterdir() if p.is_dir())]
    found: dict[str, tuple[list[SongItem], str]] = {}
    if (root := next((c for c in candidates if musdb18.find_root(c)), None)) is not None:
        for song in musdb18.read_musdb18(root):
            found.setdefault(song.split, ([], f"musdb18:{root}"))[0].append(song)
        if missing := [name for name in ("labelled", "test") if name not in found]:
            warnings.warn(f"{root}: the MUSDB18 copy has no {' or '.join(missing)} songs; that set is "
                          f"the generated one (see the set table's 'from' column)", stacklevel=3)
    if (root := next((c for c in candidates if damp.find_root(c)), None)) is not None:
        found["karaoke"] = (damp.read_damp(root), f"damp:{root}")
    if not found:
        raise CorpusError(f"{data_dir}: not a music corpus voicebook can read. Looked for {layouts}, "
                          f"in the folder and its sub-folders.")
    return found


def load_song_sets(data_dir=None, *, size: str = "smoke", seed: int = 0, cache_dir=None,
                   workers: int | None = None) -> SongSet:
    """The three song sets of chapter 4.

    ``data_dir=None``: the generated songs of ``size`` (:func:`load_songs`). Otherwise a local
    MUSDB18 copy (train -> ``labelled``, test -> ``test``), a DAMP-VSEP or DAMP-style folder
    (``karaoke``), or a folder holding both as sub-folders; the sets it does not provide are the
    generated ones of ``size`` and ``seed`` (all three are made, in ``cache_dir``). The result's
    ``sources`` names where each set came from; ``root`` is ``data_dir``.
    """
    if size not in SIZES:
        raise ValueError(f"unknown song set size {size!r}; choose one of {sorted(SIZES)}")
    if data_dir is None:
        return load_songs(size=size, seed=seed, cache_dir=cache_dir, workers=workers)
    data_dir = Path(data_dir).expanduser()
    real = _real_sets(data_dir)
    generated = None
    if any(name not in real for name in SETS):
        generated = load_songs(size=size, seed=seed, cache_dir=cache_dir, workers=workers)
    songs, sources = [], {}
    for name in SETS:
        items, sources[name] = real[name] if name in real else (generated.split(name), generated.sources[name])
        songs += items
    return SongSet(songs, data_dir, sources)
