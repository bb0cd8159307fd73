"""A speaking voice made to sing: a generated melody imposed on espeak speech with WORLD.

:func:`melody` writes a vocal line in a key (notes of one to three beats, phrases with rests);
:func:`sing` stretches a spoken utterance to the phrase's length, replaces its F0 on voiced
frames by the melody (notes held, a short glide into each note, vibrato), keeps its spectral
envelope and aperiodicity (so the words and the voice stay), and resynthesises it. An
``amateur`` singer detunes each note and drifts, as karaoke singers do.

Units: pitches MIDI (69 = A4 = 440 Hz), times seconds, audio float32 ``(samples,)`` at ``sr``.
"""

from __future__ import annotations

import numpy as np

from .. import audio, vocoder
from .midi_render import scale

__all__ = ["Note", "melody", "f0_contour", "sing", "midi_to_hz"]

Note = tuple  # (pitch, start_s, end_s)


def midi_to_hz(pitch) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(pitch, dtype=np.float64) - 69) / 12)


def melody(*, tonic: int, minor: bool, tempo: float, seconds: float, voice_range: tuple[int, int],
           rng: np.random.Generator) -> list[Note]:
    """A vocal line: phrases of 2 bars sung, then 1/2 to 1 bar of rest; steps of the scale
    (mostly by step, sometimes a leap) inside ``voice_range``; notes of 1, 2 or 3 beats."""
    beat = 60.0 / tempo
    pitches = [p for p in scale(tonic, minor) if voice_range[0] <= p <= voice_range[1]]
    if len(pitches) < 3:
        raise ValueError(f"melody: voice range {voice_range} holds fewer than 3 notes of the scale")
    notes, t, i = [], float(rng.uniform(0.5, 2.0)) * beat, len(pitches) // 2
    while t < seconds:
        phrase_end = t + 8 * beat
        while t < min(phrase_end, seconds):
            i = int(np.clip(i + rng.choice([-2, -1, -1, 0, 1, 1, 2, 3]), 0, len(pitches) - 1))
            length = float(rng.choice([1, 1, 2, 2, 3])) * beat
            notes.append((pitches[i], t, min(t + length, seconds)))
            t += length
        t += float(rng.choice([2, 3, 4])) * beat
    return notes


def f0_contour(notes: list[Note], frames: int, frame_period_s: float, rng: np.random.Generator, *,
               vibrato_cents: float = 30.0, vibrato_hz: float = 5.5, glide_s: float = 0.06,
               detune_cents: float = 0.0) -> np.ndarray:
    """F0 in Hz per frame, 0 outside notes: each note held at its pitch (plus a random
    ``detune_cents`` spread per note), a glide from the previous note over ``glide_s``, and
    vibrato that fades in over the first 0.3 s of the note."""
    t = np.arange(frames) * frame_period_s
    cents = np.full(frames, np.nan)
    prev = None
    for pitch, start, end in notes:
        on = (t >= start) & (t < end)
        target = 100.0 * pitch + rng.normal(0, detune_cents) if detune_cents else 100.0 * pitch
        since = t[on] - start
        c = np.full(since.shape, target)
        if prev is not None and start - prev[1] < 0.05:            # legato: glide from the last note
            c += (prev[0] - target) * np.clip(1 - since / glide_s, 0, 1)
        c += vibrato_cents * np.clip(since / 0.3, 0, 1) * np.sin(2 * np.pi * vibrato_hz * since + rng.uniform(0, 6.3))
        cents[on] = c
        prev = (target, end)
    return np.where(np.isnan(cents), 0.0, midi_to_hz(np.nan_to_num(cents) / 100.0))


def sing(speech, speech_sr: int, notes: list[Note], seconds: float, sr: int, rng: np.random.Generator, *,
         amateur: bool = False) -> np.ndarray:
    """``speech`` (a spoken utterance) sung on ``notes`` -> ``(round(seconds * sr),)`` float32.

    The speech is stretched in time so its voiced stretch covers the sung notes (the words
    follow the melody from its first to its last note); where the melody rests the voice is
    silent; where the speech is unvoiced (consonants) it stays unvoiced. ``amateur``: 35 cents
    of detuning per note and a slow pitch drift.
    """
    wav = audio.resample(np.asarray(speech, dtype=np.float32), speech_sr, sr)
    w = vocoder.analyze(wav, sr, f0_method="dio")
    frame_s = w.frame_period / 1000.0
    n = int(round(seconds / frame_s)) + 1
    first, last = notes[0][1], notes[-1][2]
    # stretch: map output frame k in [first, last] onto the speech's frames linearly
    src = np.clip((np.arange(n) * frame_s - first) / max(last - first, 1e-3), 0, 1) * (len(w.f0) - 1)
    idx = np.rint(src).astype(int)
    sp, ap, spoken_voiced = w.sp[idx], w.ap[idx], w.f0[idx] > 0
    f0 = f0_contour(notes, n, frame_s, rng, detune_cents=35.0 if amateur else 0.0)
    if amateur:                                   # sharp or flat overall, and a slow wander
        t = np.arange(n) * frame_s
        drift = rng.normal(0, 15) + 20 * np.sin(2 * np.pi * t / rng.uniform(6, 12) + rng.uniform(0, 6.3))
        f0 = f0 * 2.0 ** (drift / 1200)
    singing = f0 > 0
    out = vocoder.synthesize(vocoder.WorldFeatures(np.where(spoken_voiced, f0, 0.0), sp, ap, sr, w.frame_period))
    length = int(round(seconds * sr))
    out = np.pad(out, (0, max(0, length - len(out))))[:length]
    gate = np.interp(np.arange(length) / sr, np.arange(n) * frame_s, singing.astype(np.float64))
    gate = np.convolve(gate, np.hanning(int(0.02 * sr)) / np.hanning(int(0.02 * sr)).sum(), mode="same")
    out = out * gate                              # rests are silent; 10 ms fades at note edges
    return out.astype(np.float32)
