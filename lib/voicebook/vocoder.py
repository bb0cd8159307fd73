"""The WORLD vocoder and the compact acoustic features built on it.

WORLD (Morise et al., 2016) splits speech into an F0 contour, a smooth spectral envelope and
an aperiodicity map, all on a fixed frame grid (5 ms here, as in the papers of chapters 2-3).
On top of it this module codes the envelope as an all-pass-warped mel-cepstrum (SPTK's
``sp2mc``, through diffsptk), the aperiodicity as a few band averages in dB, and F0 as a
continuous log-F0 plus a voiced/unvoiced flag: the acoustic targets of statistical parametric
synthesis (chapter 3, section 3 of Li & Zen) and the features MCD is measured on.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import diffsptk
import numpy as np
import pyworld
import torch

from . import audio
from .checks import AudioError, check_wave

FRAME_PERIOD_MS = 5.0


@dataclass
class WorldFeatures:
    """WORLD parameters of one utterance, ``frames`` = duration / frame period + 1.

    f0: ``(frames,)`` Hz, 0 where unvoiced. sp: ``(frames, fft_size // 2 + 1)`` power
    spectral envelope. ap: same shape, aperiodicity ratio in [0, 1].
    """

    f0: np.ndarray
    sp: np.ndarray
    ap: np.ndarray
    sr: int
    frame_period: float = FRAME_PERIOD_MS

    @property
    def fft_size(self) -> int:
        return (self.sp.shape[1] - 1) * 2


def analyze(wav, sr: int, frame_period: float = FRAME_PERIOD_MS, f0_floor: float = 60.0,
            f0_ceil: float = 600.0, f0_method: str = "harvest") -> WorldFeatures:
    """WORLD analysis of a mono ``(samples,)`` waveform at ``sr`` Hz.

    F0 by Harvest (robust, slower) or DIO + StoneMask (``f0_method="dio"``, about 10x faster),
    envelope by CheapTrick, aperiodicity by D4C.
    """
    if not sr or int(sr) <= 0:
        raise AudioError(f"vocoder.analyze: sr must be a positive number of Hz, got {sr}")
    if not 0 < f0_floor < f0_ceil:
        raise AudioError(f"vocoder.analyze: need 0 < f0_floor < f0_ceil, got {f0_floor} and {f0_ceil} Hz")
    x = np.asarray(wav.detach().cpu() if isinstance(wav, torch.Tensor) else wav)
    x = audio.to_tensor(x).double().numpy() if np.issubdtype(x.dtype, np.integer) else x.astype(np.float64)   # PCM -> [-1, 1)
    check_wave(x, "vocoder.analyze(wav)", sr=sr, min_seconds=0.05)
    if x.ndim != 1:
        raise AudioError(f"vocoder.analyze: expected one mono clip (samples,), got shape {x.shape}")
    if f0_method == "harvest":
        f0, t = pyworld.harvest(x, sr, f0_floor=f0_floor, f0_ceil=f0_ceil, frame_period=frame_period)
    elif f0_method == "dio":
        f0, t = pyworld.dio(x, sr, f0_floor=f0_floor, f0_ceil=f0_ceil, frame_period=frame_period)
        f0 = pyworld.stonemask(x, f0, t, sr)
    else:
        raise ValueError(f"vocoder.analyze: f0_method must be 'harvest' or 'dio', got {f0_method!r}")
    fft_size = pyworld.get_cheaptrick_fft_size(sr, f0_floor)
    sp = pyworld.cheaptrick(x, f0, t, sr, f0_floor=f0_floor, fft_size=fft_size)
    ap = pyworld.d4c(x, f0, t, sr, fft_size=fft_size)
    return WorldFeatures(f0, sp, ap, int(sr), frame_period)


def synthesize(feats: WorldFeatures) -> np.ndarray:
    """WORLD synthesis: :class:`WorldFeatures` -> float32 ``(samples,)`` at ``feats.sr`` Hz."""
    for name in ("f0", "sp", "ap"):
        if not np.all(np.isfinite(getattr(feats, name))):
            raise AudioError(f"vocoder.synthesize: {name} contains NaN or inf")
    args = [np.ascontiguousarray(a, dtype=np.float64) for a in (feats.f0, feats.sp, feats.ap)]
    return pyworld.synthesize(*args, feats.sr, feats.frame_period).astype(np.float32)


# ----------------------------------------------------------------------------- mel-cepstrum

@functools.lru_cache(maxsize=32)
def mcep_alpha(sr: int) -> float:
    """All-pass constant that best maps the frequency axis at ``sr`` Hz onto the mel scale.

    Same criterion as SPTK/pysptk (0.41 at 16 kHz, 0.455 at 22.05 kHz, 0.554 at 48 kHz): the
    alpha in [0, 1) whose normalised warped frequency is closest, in RMS over [0, sr/2], to the
    normalised mel scale ``log(1 + f / 1000)``.
    """
    omega = np.arange(1000) * np.pi / 1000
    mel = np.log1p(np.arange(1000) * (sr / 2 / 1000) / 1000.0)
    mel = mel / mel[-1]
    alphas = np.arange(0.0, 1.0, 0.001)[:, None]
    warped = omega + 2 * np.arctan(alphas * np.sin(omega) / (1 - alphas * np.cos(omega)))
    warped = warped / warped[:, -1:]
    return float(round(alphas[np.argmin(np.sqrt(np.mean((warped - mel) ** 2, axis=1))), 0], 3))


@functools.lru_cache(maxsize=16)
def _sp2mc(fft_size, order, alpha):
    return diffsptk.MelCepstralAnalysis(fft_length=fft_size, cep_order=order, alpha=alpha, n_iter=0)


@functools.lru_cache(maxsize=16)
def _mc2sp(fft_size, order, alpha):
    return diffsptk.MelGeneralizedCepstrumToSpectrum(order, fft_size, alpha=alpha, out_format="power",
                                                     n_fft=max(4096, fft_size))


def sp_to_mcep(sp, sr: int, order: int = 39, alpha: float | None = None, fft_size: int | None = None):
    """Power spectral envelope ``(frames, fft_size // 2 + 1)`` -> mel-cepstrum ``(frames, order + 1)``.

    Cepstrum of the log envelope, then frequency warping (SPTK ``sp2mc``). Coefficient 0 is
    the log gain; MCD excludes it. numpy in, numpy out; a tensor stays a tensor (any device).
    ``fft_size`` (optional) is the analysis FFT length: given, a transposed envelope is refused.
    """
    alpha = mcep_alpha(sr) if alpha is None else alpha
    x = sp if isinstance(sp, torch.Tensor) else torch.from_numpy(np.asarray(sp))
    if x.ndim < 1 or x.shape[-1] < 2:
        raise AudioError(f"sp_to_mcep: expected (frames, fft_size // 2 + 1), got shape {tuple(x.shape)}")
    if fft_size is not None and x.shape[-1] != fft_size // 2 + 1:
        raise AudioError(f"sp_to_mcep: expected {fft_size // 2 + 1} bins for fft_size={fft_size} in the last axis, "
                         f"got shape {tuple(x.shape)} (is it (bins, frames)?)")
    layer = _sp2mc((x.shape[-1] - 1) * 2, order, alpha).to(x.device)
    out = layer(x.float().clamp_min(1e-20))
    return out if isinstance(sp, torch.Tensor) else out.numpy().astype(np.float64)


def mcep_to_sp(mcep, sr: int, fft_size: int, alpha: float | None = None):
    """Inverse of :func:`sp_to_mcep`: ``(frames, order + 1)`` -> ``(frames, fft_size // 2 + 1)`` power."""
    alpha = mcep_alpha(sr) if alpha is None else alpha
    x = mcep if isinstance(mcep, torch.Tensor) else torch.from_numpy(np.asarray(mcep))
    layer = _mc2sp(fft_size, x.shape[-1] - 1, alpha).to(x.device)
    out = layer(x.float())
    return out if isinstance(mcep, torch.Tensor) else out.numpy().astype(np.float64)


# ----------------------------------------------------------------------------- aperiodicity

def band_edges(sr: int, n_bands: int) -> np.ndarray:
    """``n_bands + 1`` band edges in Hz, equally spaced on the mel scale from 0 to sr/2."""
    mel_max = 1127.0 * np.log1p(sr / 2 / 700.0)
    return 700.0 * np.expm1(np.linspace(0, mel_max, n_bands + 1) / 1127.0)


def ap_to_bap(ap: np.ndarray, sr: int, n_bands: int = 5) -> np.ndarray:
    """Aperiodicity ``(frames, bins)`` in [0, 1] -> band aperiodicity ``(frames, n_bands)`` in dB.

    Each band is the mean of ``20 log10 ap`` over the bins between mel-spaced edges (Li & Zen
    use 7 bands at 22.05 kHz; the band count is a parameter here).
    """
    freqs = np.linspace(0, sr / 2, ap.shape[1])
    edges = band_edges(sr, n_bands)
    band = np.clip(np.searchsorted(edges, freqs, side="right") - 1, 0, n_bands - 1)
    ap_db = 20 * np.log10(np.clip(ap, 1e-4, 1.0))
    counts = np.bincount(band, minlength=n_bands)
    if np.any(counts == 0):
        raise AudioError(f"ap_to_bap: {n_bands} bands is too many for {ap.shape[1]} frequency bins at {sr} Hz")
    sums = np.stack([np.bincount(band, weights=row, minlength=n_bands) for row in ap_db])
    return sums / counts


def bap_to_ap(bap: np.ndarray, sr: int, fft_size: int) -> np.ndarray:
    """Band aperiodicity ``(frames, n_bands)`` in dB -> aperiodicity ``(frames, fft_size // 2 + 1)``.

    Linear interpolation between band centres (mel-spaced), constant beyond the outer ones.
    """
    edges = band_edges(sr, bap.shape[1])
    centres = (edges[:-1] + edges[1:]) / 2
    freqs = np.linspace(0, sr / 2, fft_size // 2 + 1)
    ap_db = np.stack([np.interp(freqs, centres, row) for row in bap])
    return np.clip(10 ** (ap_db / 20), 0.0, 1.0)


# ----------------------------------------------------------------------------- F0

def continuous_log_f0(f0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """F0 ``(frames,)`` in Hz with zeros where unvoiced -> ``(log_f0, vuv)``.

    ``log_f0`` is ln F0 linearly interpolated across unvoiced gaps and held constant before
    the first and after the last voiced frame (Yu & Young's continuous F0); ``vuv`` is 1.0 on
    voiced frames and 0.0 elsewhere. Raises :class:`AudioError` if no frame is voiced.
    """
    f0 = np.asarray(f0, dtype=np.float64)
    voiced = f0 > 0
    if not voiced.any():
        raise AudioError("continuous_log_f0: no voiced frame (is the clip speech?)")
    idx = np.arange(len(f0))
    lf0 = np.interp(idx, idx[voiced], np.log(f0[voiced]))
    return lf0, voiced.astype(np.float64)


def log_f0_to_f0(log_f0: np.ndarray, vuv: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Inverse of :func:`continuous_log_f0`: F0 in Hz where ``vuv > threshold``, else 0."""
    return np.where(np.asarray(vuv) > threshold, np.exp(log_f0), 0.0)


def log_f0_stats(f0s) -> tuple[float, float]:
    """Mean and standard deviation of ln F0 over the voiced frames of one or more contours."""
    f0 = np.concatenate([np.asarray(f, dtype=np.float64).ravel() for f in (f0s if isinstance(f0s, (list, tuple)) else [f0s])])
    voiced = f0[f0 > 0]
    if voiced.size < 2:
        raise AudioError("log_f0_stats: need at least two voiced frames")
    return float(np.log(voiced).mean()), float(np.log(voiced).std())


def convert_f0(f0: np.ndarray, source: tuple[float, float], target: tuple[float, float]) -> np.ndarray:
    """Move an F0 contour (Hz, 0 = unvoiced) from the source's log-F0 mean/std to the target's.

    The usual Gaussian-normalised log-F0 transform of voice conversion (e.g. Ferro et al.,
    section 4.1): ``ln f' = (ln f - mu_s) / sigma_s * sigma_t + mu_t`` on voiced frames.
    """
    f0 = np.asarray(f0, dtype=np.float64)
    out = np.zeros_like(f0)
    v = f0 > 0
    out[v] = np.exp((np.log(f0[v]) - source[0]) / source[1] * target[1] + target[0])
    return out


# ----------------------------------------------------------------------------- acoustic features

@dataclass
class AcousticFeatures:
    """Compact vocoder features of one utterance on a 5 ms grid.

    mcep ``(frames, order + 1)``; lf0 ``(frames,)`` continuous ln F0; vuv ``(frames,)`` in {0, 1};
    bap ``(frames, n_bands)`` dB. :meth:`stack` gives the ``(frames, order + 3 + n_bands)``
    matrix a network predicts.
    """

    mcep: np.ndarray
    lf0: np.ndarray
    vuv: np.ndarray
    bap: np.ndarray
    sr: int
    fft_size: int
    frame_period: float = FRAME_PERIOD_MS

    def stack(self) -> np.ndarray:
        return np.concatenate([self.mcep, self.lf0[:, None], self.vuv[:, None], self.bap], axis=1)

    @classmethod
    def unstack(cls, matrix: np.ndarray, sr: int, fft_size: int, order: int = 39,
                frame_period: float = FRAME_PERIOD_MS) -> "AcousticFeatures":
        m = np.asarray(matrix, dtype=np.float64)
        if m.ndim != 2 or m.shape[1] < order + 4:
            raise AudioError(f"AcousticFeatures.unstack: expected (frames, {order + 1} mcep + log-F0 + V/UV + "
                             f">= 1 BAP band), got shape {m.shape} (is it (dims, frames)? or another order?)")
        return cls(m[:, :order + 1], m[:, order + 1], m[:, order + 2], m[:, order + 3:], sr, fft_size, frame_period)


def encode(wav, sr: int, order: int = 39, n_bands: int = 5, **analyze_kwargs) -> AcousticFeatures:
    """Waveform ``(samples,)`` -> :class:`AcousticFeatures` (WORLD, then mcep, log-F0, V/UV, BAP)."""
    w = analyze(wav, sr, **analyze_kwargs)
    lf0, vuv = continuous_log_f0(w.f0)
    return AcousticFeatures(sp_to_mcep(w.sp, sr, order), lf0, vuv, ap_to_bap(w.ap, sr, n_bands),
                            sr, w.fft_size, w.frame_period)


def decode(feats: AcousticFeatures) -> np.ndarray:
    """:class:`AcousticFeatures` -> waveform ``(samples,)`` float32 through WORLD synthesis."""
    sp = mcep_to_sp(feats.mcep, feats.sr, feats.fft_size)
    ap = bap_to_ap(feats.bap, feats.sr, feats.fft_size)
    f0 = log_f0_to_f0(feats.lf0, feats.vuv)
    return synthesize(WorldFeatures(f0, sp, ap, feats.sr, feats.frame_period))
