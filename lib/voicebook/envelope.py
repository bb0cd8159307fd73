"""The mel-band spectral envelope of Ferro, Obin & Roebel (section 4.1), on WORLD.

The paper estimates the spectral envelope with True Envelope (SuperVP) and integrates it over
32 mel filters, "the energy of each Mel filter normalised to unity": each filter's weights sum
to one, so a band's value is the weighted *mean* power of the envelope under it and a flat
envelope gives the same value in every band. WORLD's CheapTrick envelope is our stand-in for
True Envelope. The converter changes only this envelope; the excitation stays the source's
(F0 moved to the target's log-F0 mean and variance, aperiodicity kept) and WORLD resynthesises.

Shapes: ``sp`` is WORLD's ``(frames, fft_size // 2 + 1)`` power envelope; ``bands`` is the
network's ``(n_bands, frames)`` natural-log band power (frequency first, like an image).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import librosa
import numpy as np

from . import vocoder
from .checks import AudioError

__all__ = ["N_BANDS", "SR", "MelEnvelope", "band_weights", "band_centres", "sp_to_bands", "bands_to_sp",
           "analyze", "synthesize"]

N_BANDS = 32        # section 4.1
SR = 16000          # VCC2018 as the paper used it
_FLOOR = 1e-12      # power floor before the log (WORLD's envelope is never exactly 0, but a band may be)


@functools.lru_cache(maxsize=16)
def band_weights(sr: int, fft_size: int, n_bands: int = N_BANDS) -> np.ndarray:
    """``(n_bands, fft_size // 2 + 1)`` triangular mel filters over 0..sr/2, each row summing to 1.

    Slaney mel scale (librosa's default), no area normalisation first; then every filter is
    divided by its sum: "the energy of each Mel filter is normalised to unity" (section 4.1).
    """
    w = librosa.filters.mel(sr=sr, n_fft=fft_size, n_mels=n_bands, fmin=0.0, fmax=sr / 2, norm=None,
                            dtype=np.float64)
    sums = w.sum(axis=1, keepdims=True)
    if np.any(sums <= 0):
        raise AudioError(f"band_weights: {n_bands} mel bands is too many for a {fft_size}-point FFT at {sr} Hz "
                         f"(some filters cover no frequency bin)")
    w = w / sums
    w.flags.writeable = False
    return w


def band_centres(sr: int, n_bands: int = N_BANDS) -> np.ndarray:
    """Centre frequency (Hz) of each filter of :func:`band_weights`, ``(n_bands,)``."""
    return librosa.mel_frequencies(n_mels=n_bands + 2, fmin=0.0, fmax=sr / 2)[1:-1]


def sp_to_bands(sp: np.ndarray, sr: int, n_bands: int = N_BANDS) -> np.ndarray:
    """WORLD power envelope ``(frames, bins)`` -> log band power ``(n_bands, frames)`` float32.

    ``bands[b, t] = ln sum_k w[b, k] sp[t, k]`` with the unit-sum filters of :func:`band_weights`.
    """
    sp = np.asarray(sp, dtype=np.float64)
    if sp.ndim != 2:
        raise AudioError(f"sp_to_bands: expected a (frames, bins) envelope, got shape {sp.shape}")
    w = band_weights(sr, (sp.shape[1] - 1) * 2, n_bands)
    return np.log(np.maximum(w @ sp.T, _FLOOR)).astype(np.float32)


def bands_to_sp(bands: np.ndarray, sr: int, fft_size: int) -> np.ndarray:
    """Inverse of :func:`sp_to_bands` as far as 32 numbers allow: log band power ``(n_bands,
    frames)`` -> power envelope ``(frames, fft_size // 2 + 1)`` float64.

    Linear interpolation of the log power between band centres on the mel axis (the filters
    overlap by half, so each centre is where its band is most representative), held constant
    below the first and above the last centre.
    """
    bands = np.asarray(bands, dtype=np.float64)
    if bands.ndim != 2 or not np.all(np.isfinite(bands)):
        raise AudioError(f"bands_to_sp: expected finite (n_bands, frames) log powers, got shape {bands.shape}"
                         + ("" if bands.ndim != 2 else " with NaN or inf"))
    centres = librosa.hz_to_mel(band_centres(sr, bands.shape[0]))
    bins = librosa.hz_to_mel(np.linspace(0, sr / 2, fft_size // 2 + 1))
    log_sp = np.stack([np.interp(bins, centres, frame) for frame in bands.T])
    return np.exp(log_sp)


@dataclass
class MelEnvelope:
    """One utterance, analysed: what the converter changes (``bands``) and what it keeps.

    bands ``(n_bands, frames)`` log band power; f0 ``(frames,)`` Hz (0 = unvoiced); ap
    ``(frames, bins)`` WORLD aperiodicity; frames on WORLD's 5 ms grid.
    """

    bands: np.ndarray
    f0: np.ndarray
    ap: np.ndarray
    sr: int
    fft_size: int


def analyze(wav, sr: int, n_bands: int = N_BANDS, f0_method: str = "dio") -> MelEnvelope:
    """Mono ``(samples,)`` waveform at ``sr`` Hz -> :class:`MelEnvelope` (WORLD analysis, then
    :func:`sp_to_bands`). DIO + StoneMask by default: ~10x faster than Harvest and good on
    clean read speech. Raises :class:`AudioError` (from :func:`voicebook.vocoder.analyze`, which
    checks its input) on stereo, NaN, silence or < 50 ms."""
    w = vocoder.analyze(wav, sr, f0_method=f0_method)
    return MelEnvelope(sp_to_bands(w.sp, sr, n_bands), w.f0, w.ap, sr, w.fft_size)


def synthesize(bands: np.ndarray, f0: np.ndarray, ap: np.ndarray, sr: int) -> np.ndarray:
    """WORLD synthesis from log band power ``(n_bands, frames)``, F0 ``(frames,)`` Hz and
    aperiodicity ``(frames, bins)`` -> float32 ``(samples,)`` at ``sr`` Hz."""
    bands = np.asarray(bands)
    if bands.ndim != 2 or np.asarray(ap).ndim != 2:
        raise AudioError(f"envelope.synthesize: expected bands (n_bands, frames) and ap (frames, bins), got "
                         f"{bands.shape} and {np.asarray(ap).shape}")
    if not (bands.shape[1] == len(f0) == len(ap)):
        raise AudioError(f"envelope.synthesize: frame counts differ: bands {bands.shape[1]}, f0 {len(f0)}, "
                         f"ap {len(ap)}")
    fft_size = (np.asarray(ap).shape[1] - 1) * 2
    sp = bands_to_sp(bands, sr, fft_size)
    return vocoder.synthesize(vocoder.WorldFeatures(np.asarray(f0, dtype=np.float64), sp, np.asarray(ap), sr))
