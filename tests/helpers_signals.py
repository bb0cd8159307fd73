"""Synthetic test signals with known properties, shared by the unit tests.

``speech_like(sr)`` is a crude source-filter "utterance": a harmonic source whose F0 glides
linearly from 100 to 200 Hz, shaped by two formant resonances (700 Hz and 1200 Hz), followed
by an unvoiced noise burst and digital silence (exact zeros). The voiced part carries a
little aspiration noise (-46 dB re its peak). Its true F0 at any time is known in closed form, so
F0 trackers can be scored against it without trusting the code under test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

F0_START, F0_END = 100.0, 200.0
VOICED_S, NOISE_S, SILENCE_S = 0.6, 0.15, 0.15
FORMANTS = ((700.0, 90.0), (1200.0, 110.0))  # (centre Hz, bandwidth Hz)


@dataclass(frozen=True)
class SpeechLike:
    wav: np.ndarray          # float64 (samples,), peak 0.5
    sr: int
    voiced: tuple[float, float]  # seconds
    noise: tuple[float, float]
    silence: tuple[float, float]

    def true_f0(self, t: np.ndarray) -> np.ndarray:
        """F0 in Hz at times ``t`` (s), 0 outside the voiced segment."""
        t = np.asarray(t, dtype=np.float64)
        f = F0_START + (F0_END - F0_START) * t / VOICED_S
        return np.where((t >= 0) & (t < VOICED_S), f, 0.0)


def resonator(x: np.ndarray, freq: float, bw: float, sr: int) -> np.ndarray:
    """Second-order all-pole resonance at ``freq`` Hz with bandwidth ``bw`` Hz, unit gain at DC."""
    r = np.exp(-np.pi * bw / sr)
    a = [1.0, -2 * r * np.cos(2 * np.pi * freq / sr), r * r]
    return lfilter([sum(a)], a, x)


def speech_like(sr: int, seed: int = 0) -> SpeechLike:
    rng = np.random.default_rng(seed)
    n_v, n_n, n_s = (int(round(d * sr)) for d in (VOICED_S, NOISE_S, SILENCE_S))
    t = np.arange(n_v) / sr
    f0 = F0_START + (F0_END - F0_START) * t / VOICED_S
    phase = 2 * np.pi * np.cumsum(f0) / sr
    source = np.zeros(n_v)
    for k in range(1, 40):
        # only harmonics safely below Nyquist at every instant, so the source is band-limited
        source += np.where(k * f0 < 0.45 * sr, np.cos(k * phase) / k ** 0.5, 0.0)
    ramp = np.minimum(1.0, np.minimum(np.arange(n_v), np.arange(n_v)[::-1]) / (0.01 * sr))
    voiced = source * ramp
    for freq, bw in FORMANTS:
        voiced = resonator(voiced, freq, bw, sr)
    voiced /= np.abs(voiced).max()
    # a little aspiration noise, as in real voices: without it the spectrum above the last
    # harmonic is empty (-inf dB), which no vocoder reproduces and every log measure punishes
    voiced += 0.005 * ramp * rng.standard_normal(n_v)
    noise = rng.standard_normal(n_n)
    noise = resonator(noise, 3000.0, 800.0, sr) if sr > 8000 else noise
    noise *= 0.3 / np.abs(noise).max()
    wav = np.concatenate([voiced, noise, np.zeros(n_s)])
    wav *= 0.5 / np.abs(wav).max()
    return SpeechLike(wav, sr, (0.0, VOICED_S), (VOICED_S, VOICED_S + NOISE_S),
                      (VOICED_S + NOISE_S, VOICED_S + NOISE_S + SILENCE_S))


def sine(freq: float, sr: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    return amp * np.sin(2 * np.pi * freq * np.arange(int(round(seconds * sr))) / sr)
