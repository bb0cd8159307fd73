"""Objective measures shared by the chapters.

Speech: mel-cepstral distortion (with and without DTW alignment), F0 RMSE, V/UV error.
Signals: SNR and log-spectral distance, used to score round trips (Griffin-Lim, WORLD).
Later chapters add separation (SDR), image (PSNR/SSIM) and sync measures here.
"""

from __future__ import annotations

import librosa
import numpy as np

from .checks import AudioError

#: MCD's constant: 10 / ln 10 * sqrt(2), in dB per unit of cepstral Euclidean distance.
MCD_CONST = 10.0 / np.log(10.0) * np.sqrt(2.0)


def _frames(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise AudioError(f"{name}: expected (frames, coefficients) with frames > 0, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise AudioError(f"{name}: contains NaN or inf")
    return x


def mcd(ref_mcep, est_mcep) -> float:
    """Mel-cepstral distortion in dB between two time-aligned ``(frames, order + 1)`` mel-cepstra.

    ``MCD = 10 / ln 10 * sqrt(2 * sum_{d >= 1} (c_d - c'_d)^2)``, averaged over frames; the
    energy term c_0 is excluded, as is usual in voice conversion (Kubichek 1993; Toda 2007).
    """
    a, b = _frames(ref_mcep, "mcd(ref)"), _frames(est_mcep, "mcd(est)")
    if a.shape != b.shape:
        raise AudioError(f"mcd: shapes differ {a.shape} vs {b.shape}; align them first or use mcd_dtw")
    return float(np.mean(MCD_CONST * np.sqrt(np.sum((a[:, 1:] - b[:, 1:]) ** 2, axis=1))))


def dtw_path(ref, est) -> np.ndarray:
    """Minimum-cost monotonic alignment of ``(frames_a, dims)`` and ``(frames_b, dims)`` (Euclidean).

    Returns ``(steps, 2)`` index pairs from the start of both sequences to the end (librosa DTW).
    """
    a, b = _frames(ref, "dtw(ref)"), _frames(est, "dtw(est)")
    _, wp = librosa.sequence.dtw(X=a.T, Y=b.T, metric="euclidean")
    return wp[::-1]


def mcd_dtw(ref_mcep, est_mcep) -> float:
    """MCD in dB after aligning the two utterances with DTW on c_1.. (different lengths allowed).

    The usual objective for voice conversion scored against the target speaker's real
    utterance of the same sentence.
    """
    a, b = _frames(ref_mcep, "mcd_dtw(ref)"), _frames(est_mcep, "mcd_dtw(est)")
    path = dtw_path(a[:, 1:], b[:, 1:])
    return mcd(a[path[:, 0]], b[path[:, 1]])


def f0_rmse(ref_f0, est_f0, cents: bool = False) -> float:
    """RMSE of F0 (Hz, or cents if ``cents``) over frames voiced in both contours (0 = unvoiced).

    Returns NaN when no frame is voiced in both.
    """
    a, b = np.asarray(ref_f0, dtype=np.float64), np.asarray(est_f0, dtype=np.float64)
    if a.shape != b.shape:
        raise AudioError(f"f0_rmse: contours differ in length {a.shape} vs {b.shape}")
    both = (a > 0) & (b > 0)
    if not both.any():
        return float("nan")
    diff = 1200 * np.log2(b[both] / a[both]) if cents else b[both] - a[both]
    return float(np.sqrt(np.mean(diff ** 2)))


def vuv_error(ref_f0, est_f0) -> float:
    """Fraction of frames whose voicing decision (F0 > 0) differs between the two contours."""
    a, b = np.asarray(ref_f0), np.asarray(est_f0)
    if a.shape != b.shape:
        raise AudioError(f"vuv_error: contours differ in length {a.shape} vs {b.shape}")
    return float(np.mean((a > 0) != (b > 0)))


def snr_db(ref, est) -> float:
    """Signal-to-noise ratio ``10 log10(|ref|^2 / |ref - est|^2)`` in dB over equal-length signals."""
    a, b = np.asarray(ref, dtype=np.float64), np.asarray(est, dtype=np.float64)
    if a.shape != b.shape:
        raise AudioError(f"snr_db: shapes differ {a.shape} vs {b.shape}")
    return float(10 * np.log10(np.sum(a ** 2) / max(np.sum((a - b) ** 2), 1e-20)))


def log_spectral_distance(ref, est, n_fft: int = 1024, hop: int = 256, floor: float = 1e-8) -> float:
    """Log-spectral distance in dB between two equal-length waveforms.

    ``LSD = mean_t sqrt(mean_f (10 log10 P_ref(t, f) - 10 log10 P_est(t, f))^2)`` on STFT power:
    insensitive to phase, so it scores Griffin-Lim fairly where SNR cannot.
    """
    a, b = np.asarray(ref, dtype=np.float64), np.asarray(est, dtype=np.float64)
    if a.shape != b.shape:
        raise AudioError(f"log_spectral_distance: shapes differ {a.shape} vs {b.shape}")
    pa = np.abs(librosa.stft(a, n_fft=n_fft, hop_length=hop)) ** 2
    pb = np.abs(librosa.stft(b, n_fft=n_fft, hop_length=hop)) ** 2
    d = 10 * np.log10(pa + floor) - 10 * np.log10(pb + floor)
    return float(np.mean(np.sqrt(np.mean(d ** 2, axis=0))))
