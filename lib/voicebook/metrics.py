"""Objective measures shared by the chapters.

Speech: mel-cepstral distortion (with and without DTW alignment), F0 RMSE, V/UV error.
Signals: SNR and log-spectral distance, used to score round trips (Griffin-Lim, WORLD).
Separation: SDR as SiSEC 2018 / museval compute it (BSS Eval v4), per window and per song.
Later chapters add image (PSNR/SSIM) and sync measures here.
"""

from __future__ import annotations

import librosa
import numpy as np

from .checks import AudioError, check_wave

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
    """Signal-to-noise ratio ``10 log10(|ref|^2 / |ref - est|^2)`` in dB over equal-length signals.

    Undefined (an error) for a silent ``ref`` or NaN in either; the noise energy is floored at
    1e-20, so a perfect ``est`` gives a large finite number, not inf."""
    a, b = np.asarray(ref, dtype=np.float64), np.asarray(est, dtype=np.float64)
    if a.shape != b.shape:
        raise AudioError(f"snr_db: shapes differ {a.shape} vs {b.shape}")
    for name, x in (("ref", a), ("est", b)):
        if not np.isfinite(x).all():
            raise AudioError(f"snr_db: {name} contains NaN or inf")
    if not np.any(a):
        raise AudioError("snr_db: ref is silent (all zeros), so the SNR is undefined")
    return float(10 * np.log10(np.sum(a ** 2) / max(np.sum((a - b) ** 2), 1e-20)))


def log_spectral_distance(ref, est, n_fft: int = 1024, hop: int = 256, floor: float = 1e-8) -> float:
    """Log-spectral distance in dB between two equal-length waveforms.

    ``LSD = mean_t sqrt(mean_f (10 log10 P_ref(t, f) - 10 log10 P_est(t, f))^2)`` on STFT power:
    insensitive to phase, so it scores Griffin-Lim fairly where SNR cannot.
    """
    a, b = np.asarray(ref, dtype=np.float64), np.asarray(est, dtype=np.float64)
    if a.shape != b.shape:
        raise AudioError(f"log_spectral_distance: shapes differ {a.shape} vs {b.shape}")
    for name, x in (("ref", a), ("est", b)):
        check_wave(x, f"log_spectral_distance({name})", min_samples=n_fft // 2 + 1, allow_silence=True)
    pa = np.abs(librosa.stft(a, n_fft=n_fft, hop_length=hop)) ** 2
    pb = np.abs(librosa.stft(b, n_fft=n_fft, hop_length=hop)) ** 2
    d = 10 * np.log10(pa + floor) - 10 * np.log10(pb + floor)
    return float(np.mean(np.sqrt(np.mean(d ** 2, axis=0))))


# ----------------------------------------------------------------------------- separation (SDR)

def _sources(x, name: str) -> np.ndarray:
    """``(sources, samples)`` or ``(sources, samples, channels)`` -> float64 3-d array."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3 or x.shape[1] == 0:
        raise AudioError(f"{name}: expected (sources, samples[, channels]), got shape {x.shape}")
    if x.shape[0] > x.shape[1]:
        raise AudioError(f"{name}: {x.shape[0]} sources of {x.shape[1]} samples each; expected (sources, samples[, channels]) "
                         "(is it (samples, sources)? transpose it)")
    if not np.all(np.isfinite(x)):
        raise AudioError(f"{name}: contains NaN or inf")
    return x


def _silent(x: np.ndarray) -> bool:
    """Is some source all zeros (its channels summed) over the whole span? museval's test."""
    return bool(np.any(np.all(x.sum(axis=2) == 0, axis=1)))


def sdr_windows(references, estimates, sr: int, window_s: float = 1.0) -> np.ndarray:
    """SDR in dB of each source on consecutive non-overlapping windows: ``(sources, windows)``.

    BSS Eval v4 as SiSEC 2018 uses it (Liutkus et al. 2018; Wang et al. section 4.1; museval's
    ``bss_eval`` with the images version and time-invariant filters): the estimate of a window
    is split into the true source, spatial distortion, interference and artefacts, and SDR is
    the true source's energy over the three error terms'. Those terms add up to ``estimate -
    reference``, so for each window ``SDR = 10 log10(sum s^2 / sum (s_hat - s)^2)``, which is
    what this computes (no filters, no ffmpeg). A window where any reference or estimated
    source is all zeros is NaN (museval skips it too); a trailing partial window is dropped.
    """
    ref, est = _sources(references, "sdr(references)"), _sources(estimates, "sdr(estimates)")
    if ref.shape != est.shape:
        raise AudioError(f"sdr: references {ref.shape} and estimates {est.shape} differ in shape")
    if _silent(ref):
        raise AudioError("sdr: a reference source is silent over the whole clip; SDR is undefined")
    win = int(round(window_s * sr))
    if win <= 0:
        raise AudioError(f"sdr: window of {window_s} s at {sr} Hz has no samples")
    whole = win >= ref.shape[1]                           # a clip shorter than a window: one window
    n_win = 1 if whole else ref.shape[1] // win
    out = np.full((ref.shape[0], n_win), np.nan)
    for t in range(n_win):
        span = slice(0, ref.shape[1]) if whole else slice(t * win, (t + 1) * win)
        r, e = ref[:, span], est[:, span]
        if _silent(r) or _silent(e):
            continue
        signal, noise = (r ** 2).sum(axis=(1, 2)), ((e - r) ** 2).sum(axis=(1, 2))
        with np.errstate(divide="ignore"):
            out[:, t] = np.where(noise > 0, 10 * np.log10(signal / np.where(noise > 0, noise, 1.0)), np.inf)
    return out


def song_sdr(references, estimates, sr: int, window_s: float = 1.0) -> np.ndarray:
    """Section 4.1's per-song score: the median over 1-s windows of :func:`sdr_windows`
    (windows that are NaN left out) -> ``(sources,)``; NaN where no window counts, which is
    every source when one reference source is silent over the whole song (no window has all
    sources; museval gives NaN there too). The chapter then takes the median over songs."""
    ref = _sources(references, "song_sdr(references)")
    if _silent(ref):
        return np.full(ref.shape[0], np.nan)
    per_window = sdr_windows(ref, estimates, sr, window_s)
    out = np.full(per_window.shape[0], np.nan)
    for j, row in enumerate(per_window):
        if np.any(~np.isnan(row)):
            out[j] = float(np.nanmedian(row))
    return out
