"""Generated accompaniment: a pop-song arrangement as MIDI, rendered with real instrument samples.

:func:`arrangement` writes a :class:`pretty_midi.PrettyMIDI` (drums, bass, and chords in the
singer's range, from a chord progression in a key); :func:`render` plays it through the General
MIDI SoundFont that ships inside the ``pretty_midi`` wheel (``TimGM6mb.sf2``) with
``tinysoundfont`` (installed without its playback dependency: rendering needs none). Both are
deterministic: same arguments, same samples.

Shapes and units: times in seconds, pitches as MIDI numbers (60 = C4), audio float32 mono
``(samples,)`` at ``sr`` Hz.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

__all__ = ["SOUNDFONT", "MAJOR", "MINOR", "PROGRESSIONS", "soundfont_path", "scale", "arrangement", "render"]

SOUNDFONT = "TimGM6mb.sf2"
MAJOR, MINOR = (0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10)
#: Chord progressions as scale degrees (0 = tonic): I-V-vi-IV, vi-IV-I-V, I-vi-IV-V, i-VI-III-VII.
PROGRESSIONS = ((0, 4, 5, 3), (5, 3, 0, 4), (0, 5, 3, 4), (0, 5, 2, 6))
_CHORD_PROGRAMS = (0, 4, 24, 48, 88)       # acoustic piano, e-piano, nylon guitar, strings, pad
_BASS_PROGRAMS = (33, 34, 38)              # finger, pick, synth bass


def soundfont_path() -> Path:
    """The General MIDI SoundFont of the ``pretty_midi`` wheel."""
    import pretty_midi

    path = Path(pretty_midi.__file__).parent / SOUNDFONT
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the SoundFont that pretty_midi ships is missing (reinstall pretty_midi)")
    return path


def scale(tonic: int, minor: bool) -> list[int]:
    """MIDI pitches of the key's scale over the whole MIDI range."""
    steps = MINOR if minor else MAJOR
    return [p for p in range(128) if (p - tonic) % 12 in steps]


def _triad(tonic: int, minor: bool, degree: int, low: int, high: int) -> list[int]:
    """The diatonic triad on ``degree``, voiced inside ``[low, high]``."""
    steps = MINOR if minor else MAJOR
    pcs = [(tonic + steps[(degree + k) % 7]) % 12 for k in (0, 2, 4)]
    return sorted(p for p in range(low, high + 1) if p % 12 in pcs)[:4]


def arrangement(*, tonic: int, minor: bool, tempo: float, seconds: float, voice_range: tuple[int, int],
                seed: int):
    """A generated backing track: ``pretty_midi.PrettyMIDI`` with drums (kick, snare, hi-hat),
    bass on the chord roots, and chords voiced in ``voice_range`` (the singer's range, as
    section 3 of Wang et al. wants the hard case), four beats a bar, one chord a bar."""
    import pretty_midi

    rng = np.random.default_rng(seed)
    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    beat = 60.0 / tempo
    progression = PROGRESSIONS[rng.integers(len(PROGRESSIONS))]
    drums = pretty_midi.Instrument(0, is_drum=True, name="drums")
    bass = pretty_midi.Instrument(int(rng.choice(_BASS_PROGRAMS)), name="bass")
    chords = pretty_midi.Instrument(int(rng.choice(_CHORD_PROGRAMS)), name="chords")
    low, high = voice_range
    n_bars = int(np.ceil(seconds / (4 * beat)))
    for bar in range(n_bars):
        t0 = bar * 4 * beat
        degree = progression[bar % len(progression)]
        triad = _triad(tonic, minor, degree, low, high)
        for p in triad:
            chords.notes.append(pretty_midi.Note(int(rng.integers(55, 80)), p, t0, t0 + 4 * beat * 0.95))
        root = min(p for p in range(28, 52) if p % 12 == triad[0] % 12)
        for b in range(4):
            bass.notes.append(pretty_midi.Note(int(rng.integers(80, 105)), root + (12 if b == 3 and rng.random() < 0.3
                                                                                 else 0),
                                               t0 + b * beat, t0 + (b + 0.9) * beat))
        for b in range(8):                                              # eighth-note hi-hat
            drums.notes.append(pretty_midi.Note(int(rng.integers(50, 80)), 42, t0 + b * beat / 2, t0 + (b + 1) * beat / 2))
        for b in (0, 2):
            drums.notes.append(pretty_midi.Note(110, 36, t0 + b * beat, t0 + (b + 0.5) * beat))   # kick
        for b in (1, 3):
            drums.notes.append(pretty_midi.Note(100, 38, t0 + b * beat, t0 + (b + 0.5) * beat))   # snare
    pm.instruments += [drums, bass, chords]
    return pm


@functools.lru_cache(maxsize=1)
def _soundfont_bytes() -> bytes:
    return soundfont_path().read_bytes()


def render(pm, sr: int = 16000, seconds: float | None = None, gain: float = 0.5) -> np.ndarray:
    """Play a ``PrettyMIDI`` through the General MIDI SoundFont -> float32 mono ``(samples,)``.

    Events are applied at their exact sample positions; ``seconds`` (default: the end of the
    last note plus 1 s of release) fixes the length. Raises ``ValueError`` for an empty MIDI."""
    import tinysoundfont

    events = []                                                        # (time, order, kind, args)
    for ch, inst in enumerate(pm.instruments):
        chan = 9 if inst.is_drum else ch if ch < 9 else ch + 1
        for n in inst.notes:
            events.append((n.start, 1, "on", (chan, n.pitch, n.velocity)))
            events.append((n.end, 0, "off", (chan, n.pitch)))
    if not events:
        raise ValueError("render: the MIDI has no notes")
    total = int(round((seconds if seconds is not None else max(e[0] for e in events) + 1.0) * sr))
    synth = tinysoundfont.Synth(samplerate=sr, gain=-6.0)
    sfid = synth.sfload(str(soundfont_path()))
    for ch, inst in enumerate(pm.instruments):
        chan = 9 if inst.is_drum else ch if ch < 9 else ch + 1
        synth.program_select(chan, sfid, 128 if inst.is_drum else 0, 0 if inst.is_drum else inst.program,
                             is_drums=inst.is_drum)
    out, done = np.zeros(total, dtype=np.float32), 0
    for t, _, kind, args in sorted(events, key=lambda e: (e[0], e[1])):
        at = min(int(round(t * sr)), total)
        if at > done:
            block = np.frombuffer(synth.generate(at - done), dtype=np.float32).reshape(-1, 2)
            out[done:at] = block.mean(axis=1)
            done = at
        if kind == "on":
            synth.noteon(*args)
        else:
            synth.noteoff(*args)
    if done < total:
        out[done:] = np.frombuffer(synth.generate(total - done), dtype=np.float32).reshape(-1, 2).mean(axis=1)
    return gain * out
