"""Training examples for the separator, with the data noise of Wang et al. section 2.1.2.

From a pool of songs' stems (``(2, samples)``: vocals, accompaniment) :class:`SeparationCrops`
draws item ``i`` as a pure function of ``(seed, i)``:

1. a random window of ``seconds`` (the paper's T < 30 s);
2. *random mixing*: with probability ``p_mix`` the accompaniment comes from another song
   (never the vocals' own pool entry: with ``p_mix = 1`` every example mixes two entries; where
   the pool holds segments of songs, two segments of one song can still meet);
3. a *dynamic mixing ratio*: the vocals scaled by a random gain (dB);
4. *pitch shift* by a random number of semitones (phase vocoder + resampling): one shift for
   both sources of one song, so they stay in the same key; independent shifts for the two
   sources of a random mix, which share no key anyway;
5. *low-pass* and *EQ* filtering (biquads) of the mixture's sources.

Section 2.1.2 names these steps but gives no values, nor whether a shift is per source; with
the shared shift no example at ``p_mix = 0`` mixes two keys (only random mixing does), which
keeps Table 1's random-mixing comparison about random mixing.

Items are ``(mixture (samples,), sources (2, samples))`` float32 tensors at ``sr``; the
mixture is the sum of the augmented sources, so the targets stay exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

import numpy as np
import torch
import torchaudio.functional as AF

from ..checks import check_wave

__all__ = ["VERSION", "Augment", "SeparationCrops", "pitch_shift"]

#: Bumped whenever the examples of a (seed, i) change (2: one shift per song, no self-mixing);
#: chapter 4 keys its checkpoints on it, so separators trained on older examples are not loaded.
VERSION = 2


@dataclass(frozen=True)
class Augment:
    """Augmentation settings; the defaults are ours (the paper gives no values). ``None`` or 0
    switches a step off."""

    p_mix: float = 0.5                 # random mixing probability p
    gain_db: float = 6.0               # vocals scaled by U(-gain_db, gain_db) dB
    semitones: int = 2                 # pitch shift by an integer in [-semitones, semitones]
    p_shift: float = 0.3               # ... with this probability (per song; per source of a random mix)
    p_lowpass: float = 0.3             # low-pass with this probability ...
    lowpass_hz: tuple[float, float] = (3000.0, 7500.0)   # ... at a cutoff drawn from this range
    p_eq: float = 0.3                  # one peaking EQ band, +-6 dB at 200 Hz-5 kHz, with this probability


def _ratio(steps: int) -> Fraction:
    """``2^(steps/12)`` as a fraction with a denominator of at most 24 (within 4 cents for
    |steps| <= 4): resampling by it needs a short polyphase filter. torchaudio's own
    ``pitch_shift`` resamples ``sr / ratio -> sr``, whose gcd is tiny, and takes seconds."""
    return Fraction(2 ** (steps / 12)).limit_denominator(24)


def pitch_shift(x: torch.Tensor, steps: int, n_fft: int = 512, hop: int = 128) -> torch.Tensor:
    """Shift ``(samples,)`` by ``steps`` semitones, length kept: phase-vocoder time stretch by
    the ratio, then resampling by it (the recipe of ``torchaudio.functional.pitch_shift``, with
    :func:`_ratio`'s small fraction instead of the exact irrational one)."""
    if steps == 0:
        return x
    r = _ratio(steps)
    window = torch.hann_window(n_fft, device=x.device)
    spec = torch.stft(x, n_fft, hop, window=window, return_complex=True)
    advance = torch.linspace(0, math.pi * hop, spec.shape[-2], device=x.device)[:, None]
    stretched = AF.phase_vocoder(spec, float(1 / r), advance)                  # r times longer
    y = torch.istft(stretched, n_fft, hop, window=window, length=round(x.shape[-1] * float(r)))
    y = AF.resample(y, r.numerator, r.denominator)                             # back to the length, pitch x r
    return torch.nn.functional.pad(y, (0, max(0, x.shape[-1] - y.shape[-1])))[: x.shape[-1]]


class SeparationCrops(torch.utils.data.Dataset):
    """Random augmented windows of ``stems`` (a list of ``(2, samples)`` arrays at ``sr`` Hz:
    vocals, accompaniment), each item a pure function of ``(seed, i)``.

    The stems are checked here, once: each must be ``(2, samples)`` with finite samples (a NaN
    stem would otherwise surface steps later as a non-finite loss). ``sr`` is not checked
    against a model's rate: the model's entry points (:mod:`voicebook.separation`) do that.
    """

    def __init__(self, stems: Sequence, sr: int, seconds: float, aug: Augment | None = None, *, seed: int = 0,
                 length: int = 1_000_000):
        if not stems:
            raise ValueError("SeparationCrops: no songs")
        self.stems = [torch.as_tensor(np.asarray(s), dtype=torch.float32) for s in stems]
        bad = [i for i, s in enumerate(self.stems) if s.ndim != 2 or s.shape[0] != 2]
        if bad:
            raise ValueError(f"SeparationCrops: songs {bad} are not (2, samples) stems")
        _check_finite(self.stems)
        self.sr, self.n, self.aug, self.seed, self.length = sr, int(round(seconds * sr)), aug, seed, length

    def __len__(self) -> int:
        return self.length

    def _start(self, rng: np.random.Generator, song: torch.Tensor) -> int:
        return int(rng.integers(song.shape[1] - self.n + 1)) if song.shape[1] >= self.n else 0

    def _cut(self, x: torch.Tensor, start: int) -> torch.Tensor:
        x = x[start:start + self.n]
        return torch.nn.functional.pad(x, (0, self.n - x.shape[0]))   # a short song is zero-padded (3.2)

    def _other_song(self, rng: np.random.Generator, a: int) -> int:
        """Random mixing's second song: uniform over every song but ``a`` (one draw). The pool's
        entries are taken as distinct songs: two segments of one song are not told apart."""
        b = int(rng.integers(len(self.stems) - 1))
        return b + (b >= a)

    def _steps(self, rng: np.random.Generator) -> int:
        """Semitones of one pitch shift: 0 with probability ``1 - p_shift``, else a whole number
        in ``[-semitones, semitones]``."""
        au = self.aug
        if au.semitones and rng.random() < au.p_shift:
            return int(rng.integers(-au.semitones, au.semitones + 1))
        return 0

    def _filter(self, rng: np.random.Generator, x: torch.Tensor) -> torch.Tensor:
        """Low-pass and peaking EQ of one source ``(samples,)``, each with its probability."""
        au = self.aug
        if rng.random() < au.p_lowpass:
            lo, hi = au.lowpass_hz
            x = AF.lowpass_biquad(x, self.sr, float(rng.uniform(lo, min(hi, self.sr / 2 - 100))))
        if rng.random() < au.p_eq:
            x = AF.equalizer_biquad(x, self.sr, float(rng.uniform(200, 5000)), float(rng.uniform(-6, 6)))
        return x

    def _noise(self, rng: np.random.Generator, voc: torch.Tensor, acc: torch.Tensor, mixed: bool):
        """Section 2.1.2's data noise on one window's sources ``(samples,)`` each: the vocals'
        gain, then pitch shift (one shift for both sources of one song, so they stay in one key;
        independent shifts when ``mixed``, the sources of two songs), then the filters."""
        au = self.aug
        voc = voc * 10 ** (rng.uniform(-au.gain_db, au.gain_db) / 20)
        shifts = (self._steps(rng), self._steps(rng)) if mixed else (self._steps(rng),) * 2
        return [self._filter(rng, pitch_shift(x, k)) for x, k in zip((voc, acc), shifts)]

    def __getitem__(self, i: int):
        rng = np.random.default_rng([self.seed, i])
        a = int(rng.integers(len(self.stems)))
        start = self._start(rng, self.stems[a])
        voc, acc = self._cut(self.stems[a][0], start), self._cut(self.stems[a][1], start)
        mixed = bool(self.aug) and rng.random() < self.aug.p_mix and len(self.stems) > 1
        if mixed:                                                     # random mixing: another song's backing
            b = self._other_song(rng, a)
            acc = self._cut(self.stems[b][1], self._start(rng, self.stems[b]))
        if self.aug:
            voc, acc = self._noise(rng, voc, acc, mixed)
        sources = torch.stack([voc, acc]).float()
        return sources.sum(0), sources


def _check_finite(stems: Sequence[torch.Tensor]) -> None:
    """Raise a ValueError naming the first song (its index in ``stems``) and source (vocals or
    accompaniment) that holds NaN or infinite samples; ``stems``: ``(2, samples)`` tensors."""
    for i, s in enumerate(stems):
        for k, source in enumerate(("vocals", "accompaniment")):
            check_wave(s[k], f"SeparationCrops: song {i}, {source}", allow_silence=True)
