"""Audio in and out, and the time-frequency representations the chapters share.

Files are read and written with soundfile (torchaudio's own I/O needs torchcodec). Features are
computed with torchaudio transforms on whatever device the input tensor lives on, so the same
call runs on a laptop CPU and on a GPU batch. Shapes follow torchaudio: a waveform is
``(samples,)`` or ``(batch, samples)``; a spectrogram is ``(..., freq, frames)``.
"""

from __future__ import annotations

import functools
import math
import os
import re
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from .checks import AudioError, check_wave
from .files import atomic_path

__all__ = [
    "AudioError", "load", "save", "resample", "to_tensor", "stft", "istft", "magnitude_db",
    "mel_spectrogram", "log_mel", "mfcc", "fit_normaliser", "normalise", "denormalise",
    "griffin_lim", "mel_to_wave",
]


# ----------------------------------------------------------------------------- files

def _hz(value, name: str) -> int:
    """A sample rate as a positive whole number of Hz (16000, 16000.0, "16000"), or an error."""
    try:
        hz = float(value)
    except (TypeError, ValueError):
        hz = math.nan
    if not (hz > 0 and hz == int(hz)):
        raise AudioError(f"{name} must be a positive whole number of Hz, got {value!r}")
    return int(hz)


def load(path, sr: int | None = None, *, mono: bool = True, mix_down: bool = False,
         resample_to_sr: bool = False, min_seconds: float | None = None,
         allow_silence: bool = True) -> tuple[np.ndarray, int]:
    """Read an audio file as float32 samples in [-1, 1].

    Args:
        path: a file soundfile can read (wav, flac, ogg...).
        sr: the sample rate the caller needs (Hz). A file at another rate raises
            :class:`AudioError`, unless ``resample_to_sr`` is set.
        mono: require one channel; a multi-channel file raises unless ``mix_down`` is set,
            in which case channels are averaged.
        min_seconds: shortest acceptable duration.

    Returns:
        ``(wav, sr)``: ``wav`` is ``(samples,)`` if mono else ``(samples, channels)``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such audio file")
    sr = None if sr is None else _hz(sr, f"load({path}): sr")
    try:
        with sf.SoundFile(str(path)) as f:
            _check_complete(f, path)
            wav, file_sr = f.read(dtype="float32", always_2d=True), f.samplerate
    except AudioError:
        raise
    except Exception as err:  # soundfile raises LibsndfileError/RuntimeError on corrupt files
        raise AudioError(f"{path}: cannot read audio ({err})") from err
    if mono:
        if wav.shape[1] > 1 and not mix_down:
            raise AudioError(f"{path}: has {wav.shape[1]} channels, expected mono (pass mix_down=True to average them)")
        wav = wav.mean(axis=1)
    if sr is not None and file_sr != sr:
        if not resample_to_sr:
            raise AudioError(f"{path}: sample rate is {file_sr} Hz, expected {sr} Hz (pass resample_to_sr=True to convert)")
        # resample and check_wave work along the last axis: give them (channels, samples)
        wav, file_sr = (resample(wav, file_sr, sr) if wav.ndim == 1 else resample(wav.T, file_sr, sr).T), sr
    check_wave(wav if wav.ndim == 1 else wav.T, str(path), sr=file_sr, mono=mono, min_seconds=min_seconds,
               allow_silence=allow_silence)
    return np.ascontiguousarray(wav, dtype=np.float32), int(file_sr)


def _check_complete(f: sf.SoundFile, path) -> None:
    """Refuse a WAV cut short (an interrupted copy): libsndfile reads what is there and notes
    ``data : <header's bytes> (should be <bytes present>)`` in its log, which we read."""
    m = re.search(r"data\s*:\s*(\d+)\s*\(should be (\d+)\)", f.extra_info)
    if m and int(m.group(2)) < int(m.group(1)):
        raise AudioError(f"{path}: truncated file: its header announces {int(m.group(1))} bytes of audio, "
                         f"only {int(m.group(2))} are there (copy the file again)")


def save(path, wav, sr: int, *, subtype: str = "PCM_16") -> Path:
    """Write ``wav`` ``(samples,)`` or ``(samples, channels)`` at ``sr`` Hz, atomically.

    Float samples are in [-1, 1] (clipped for integer subtypes); integer PCM (int16...) is
    scaled by its full scale first, as :func:`to_tensor` does. Returns the path.
    """
    sr = _hz(sr, f"save({path}): sr")
    x = to_tensor(wav).detach().cpu().numpy()
    check_wave(x, f"save({path})", mono=False, allow_silence=True)
    if x.ndim == 2 and x.shape[0] < x.shape[1] and x.shape[0] <= 8:
        raise AudioError(f"save({path}): got shape {tuple(x.shape)}, which looks like (channels, samples); "
                         "expected (samples,) or (samples, channels): squeeze a batch axis of 1, or transpose")
    if subtype.startswith("PCM"):
        x = np.clip(x, -1.0, 1.0)
    path = Path(path)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), x, int(sr), subtype=subtype, format=path.suffix.lstrip(".").upper() or "WAV")
    return path


# ----------------------------------------------------------------------------- tensors

def to_tensor(wav, device: str | torch.device | None = None) -> torch.Tensor:
    """A float32 tensor view of ``wav`` (numpy or tensor), on ``device`` if given. Integer PCM
    (int16, int32: what ``soundfile.read(dtype="int16")`` or a WAV reader gives) is scaled to
    [-1, 1) by its full scale, unsigned 8-bit around its mid-point 128, as soundfile does."""
    t = wav if isinstance(wav, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(wav))
    if t.dtype == torch.uint8:
        t = (t.float() - 128.0) / 128.0
    elif not t.is_floating_point() and t.dtype != torch.bool:
        t = t.float() / (float(torch.iinfo(t.dtype).max) + 1.0)
    t = t.float()
    return t.to(device) if device is not None else t


def _like(result: torch.Tensor, template):
    """Return ``result`` as numpy if ``template`` was numpy, else as a tensor."""
    return result if isinstance(template, torch.Tensor) else result.cpu().numpy()


def resample(wav, orig_sr: int, new_sr: int):
    """Band-limited resampling (torchaudio's windowed sinc) along the last axis.

    ``wav``: ``(..., samples)`` numpy or tensor, returned as the same type at ``new_sr`` Hz.
    """
    for name, value in (("orig_sr", orig_sr), ("new_sr", new_sr)):
        if int(value) <= 0:
            raise AudioError(f"resample: {name} must be a positive number of Hz, got {value}")
    check_wave(wav, "resample(wav)", allow_silence=True)
    if int(orig_sr) == int(new_sr):
        return wav
    x = to_tensor(wav)
    out = _resampler(int(orig_sr), int(new_sr), str(x.device), x.dtype)(x)
    return _like(out, wav)


@functools.lru_cache(maxsize=16)
def _resampler(orig_sr: int, new_sr: int, device: str, dtype) -> torchaudio.transforms.Resample:
    """One torchaudio Resample per rate pair and device: building its sinc kernel is the slow part."""
    return torchaudio.transforms.Resample(orig_sr, new_sr, dtype=dtype).to(device)


def stft(wav, n_fft: int = 1024, hop: int = 256, win: int | None = None) -> torch.Tensor:
    """Complex STFT with a Hann window: ``(..., samples)`` -> ``(..., n_fft // 2 + 1, frames)``.

    Frames are centred (``frames = samples // hop + 1``).
    """
    x = to_tensor(wav)
    check_wave(x, "stft(wav)", min_samples=n_fft // 2 + 1, allow_silence=True)
    win = win or n_fft
    window = torch.hann_window(win, device=x.device)
    return torch.stft(x, n_fft, hop, win, window, center=True, return_complex=True)


def istft(spec: torch.Tensor, n_fft: int = 1024, hop: int = 256, win: int | None = None,
          length: int | None = None) -> torch.Tensor:
    """Inverse of :func:`stft`: ``(..., freq, frames)`` complex -> ``(..., samples)``."""
    spec = torch.as_tensor(spec)
    if not spec.is_complex():
        raise AudioError(f"istft: expected a complex spectrogram (as from stft), got dtype {spec.dtype}")
    if spec.ndim < 2 or spec.shape[-2] != n_fft // 2 + 1:
        raise AudioError(f"istft: expected (..., {n_fft // 2 + 1} bins, frames) for n_fft={n_fft}, got shape {tuple(spec.shape)}")
    if not torch.isfinite(torch.view_as_real(spec)).all():
        raise AudioError("istft: the spectrogram contains NaN or inf")
    win = win or n_fft
    window = torch.hann_window(win, device=spec.device)
    return torch.istft(spec, n_fft, hop, win, window, center=True, length=length)


def magnitude_db(spec: torch.Tensor, floor_db: float = -100.0) -> torch.Tensor:
    """Magnitude in dB (20 log10 |X|) of a complex or magnitude spectrogram, floored."""
    mag = spec.abs() if torch.is_complex(spec) else spec
    return (20 * torch.log10(mag.clamp_min(1e-12))).clamp_min(floor_db)


@functools.lru_cache(maxsize=32)
def _mel_transform(sr, n_fft, hop, n_mels, fmin, fmax, power, device):
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels, f_min=fmin, f_max=fmax,
        power=power, norm="slaney", mel_scale="slaney", center=True).to(device)


def mel_spectrogram(wav, sr: int, n_fft: int = 1024, hop: int = 256, n_mels: int = 80,
                    fmin: float = 0.0, fmax: float | None = None, power: float = 1.0) -> torch.Tensor:
    """Mel spectrogram (Slaney mel scale and filter norm) of ``(..., samples)`` at ``sr`` Hz.

    Returns ``(..., n_mels, frames)`` magnitudes (``power=1``) or powers (``power=2``), on the
    input's device.
    """
    x = to_tensor(wav)
    check_wave(x, "mel_spectrogram(wav)", min_samples=n_fft // 2 + 1, allow_silence=True)
    fmax = fmax or sr / 2
    if not 0 <= fmin < fmax <= sr / 2:
        raise AudioError(f"mel_spectrogram: need 0 <= fmin < fmax <= sr/2 = {sr / 2} Hz, got fmin={fmin}, fmax={fmax}")
    tf = _mel_transform(int(sr), n_fft, hop, n_mels, float(fmin), float(fmax), float(power), x.device)
    return tf(x)


def log_mel(wav, sr: int, n_fft: int = 1024, hop: int = 256, n_mels: int = 80,
            fmin: float = 0.0, fmax: float | None = None, floor: float = 1e-5) -> torch.Tensor:
    """Natural-log mel magnitude ``log(max(mel, floor))``: ``(..., n_mels, frames)``.

    The representation AutoVC (ch. 1) and the talking-face audio encoder (ch. 5) start from.
    """
    return torch.log(mel_spectrogram(wav, sr, n_fft, hop, n_mels, fmin, fmax).clamp_min(floor))


@functools.lru_cache(maxsize=16)
def _mfcc_transform(sr, n_mfcc, n_fft, hop, n_mels, device):
    return torchaudio.transforms.MFCC(
        sample_rate=sr, n_mfcc=n_mfcc, log_mels=True,
        melkwargs=dict(n_fft=n_fft, hop_length=hop, n_mels=n_mels, center=True)).to(device)


def mfcc(wav, sr: int, n_mfcc: int = 13, n_fft: int = 512, hop: int | None = None,
         n_mels: int = 40) -> torch.Tensor:
    """MFCCs (DCT-II of the log mel spectrum) of ``(..., samples)``: ``(..., n_mfcc, frames)``.

    ``hop`` defaults to 10 ms (100 frames per second, the rate chapter 5's audio encoder uses).
    """
    hop = hop or int(round(sr / 100))
    x = to_tensor(wav)
    check_wave(x, "mfcc(wav)", min_samples=n_fft // 2 + 1, allow_silence=True)
    return _mfcc_transform(int(sr), n_mfcc, n_fft, hop, n_mels, x.device)(x)


def fit_normaliser(features, dim: int = -1) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation over ``dim`` (frames) and any batch axes.

    ``features``: ``(channels, frames)`` or ``(batch, channels, frames)`` tensor, or a list of
    ``(channels, frames_i)`` tensors of different lengths. Returns two ``(channels, 1)`` tensors.
    """
    if isinstance(features, (list, tuple)):
        features = torch.cat([to_tensor(f) for f in features], dim=dim)  # join along the frames axis
    x = to_tensor(features).movedim(dim, -1)
    x = x.reshape(-1, x.shape[-2], x.shape[-1]).transpose(0, 1).reshape(x.shape[-2], -1)
    if not torch.isfinite(x).all():
        raise AudioError("fit_normaliser: features contain NaN or inf")
    return x.mean(-1, keepdim=True), x.std(-1, keepdim=True).clamp_min(1e-5)


def _check_channels(features: torch.Tensor, mean: torch.Tensor, name: str) -> None:
    """Band-major features ``(..., channels, frames)`` and ``(channels, 1)`` statistics agree."""
    if features.ndim < 2 or features.shape[-2] != mean.shape[-2]:
        raise AudioError(f"{name}: features of shape {tuple(features.shape)} for statistics of {mean.shape[-2]} channels; "
                         f"expected (..., {mean.shape[-2]}, frames), channels before frames (time-major? transpose it)")


def normalise(features: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``(features - mean) / std`` with ``(channels, 1)`` statistics from :func:`fit_normaliser`;
    ``features`` ``(..., channels, frames)``."""
    _check_channels(features, mean, "normalise")
    return (features - mean.to(features.device)) / std.to(features.device)


def denormalise(features: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`normalise`."""
    _check_channels(features, mean, "denormalise")
    return features * std.to(features.device) + mean.to(features.device)


@functools.lru_cache(maxsize=8)
def _griffin_lim(n_fft, hop, n_iter, power, device):
    return torchaudio.transforms.GriffinLim(
        n_fft=n_fft, hop_length=hop, win_length=n_fft, power=power, n_iter=n_iter,
        momentum=0.99, rand_init=False).to(device)


def griffin_lim(magnitude: torch.Tensor, n_fft: int = 1024, hop: int = 256, n_iter: int = 60,
                length: int | None = None) -> torch.Tensor:
    """Phase reconstruction (Griffin & Lim 1984, fast variant with momentum 0.99).

    ``magnitude``: ``(..., n_fft // 2 + 1, frames)`` linear STFT magnitude. Returns
    ``(..., samples)``. Deterministic: the phase starts at zero, not at random.
    """
    magnitude = torch.as_tensor(magnitude)
    if magnitude.is_complex():
        raise AudioError("griffin_lim: expected a real magnitude, got a complex spectrogram (pass spec.abs())")
    if magnitude.ndim < 2 or magnitude.shape[-1] < 2:
        raise AudioError(f"griffin_lim: expected (..., freq, frames) with 2 frames or more, got shape {tuple(magnitude.shape)}")
    if magnitude.shape[-2] != n_fft // 2 + 1:
        raise AudioError(f"griffin_lim: expected {n_fft // 2 + 1} frequency bins for n_fft={n_fft}, got shape {tuple(magnitude.shape)}")
    if not torch.isfinite(magnitude).all():
        raise AudioError("griffin_lim: magnitude contains NaN or inf")
    wav = _griffin_lim(n_fft, hop, n_iter, 1.0, magnitude.device)(magnitude.float())
    if length is not None:
        wav = torch.nn.functional.pad(wav, (0, max(0, length - wav.shape[-1])))[..., :length]
    return wav


@functools.lru_cache(maxsize=16)
def _mel_basis(sr, n_fft, n_mels, fmin, fmax, device):
    fb = torchaudio.functional.melscale_fbanks(n_fft // 2 + 1, fmin, fmax, n_mels, sr, norm="slaney", mel_scale="slaney")
    return fb.to(device)  # (freq, n_mels)


def mel_to_wave(mel: torch.Tensor, sr: int, n_fft: int = 1024, hop: int = 256, fmin: float = 0.0,
                fmax: float | None = None, n_iter: int = 60, log: bool = True,
                length: int | None = None, n_mels: int | None = None) -> torch.Tensor:
    """Invert a (log-)mel magnitude spectrogram to a waveform: mel -> linear -> Griffin-Lim.

    ``mel``: ``(..., n_mels, frames)``, natural-log magnitudes if ``log`` (as from :func:`log_mel`).
    The linear magnitude is the non-negative least-squares-like pseudo-inverse of the mel
    filterbank (clamped at zero). Runs on the input's device; returns ``(..., samples)``.
    ``n_mels`` (optional) is the band count expected: given, a ``(frames, n_mels)`` mel is refused.
    """
    mel = torch.as_tensor(mel)
    if mel.ndim < 2:
        raise AudioError(f"mel_to_wave: expected (..., n_mels, frames), got shape {tuple(mel.shape)}")
    if n_mels is not None and mel.shape[-2] != n_mels:
        raise AudioError(f"mel_to_wave: expected (..., {n_mels} mel bands, frames), got shape {tuple(mel.shape)}"
                         f"{' (is it (frames, n_mels)?)' if mel.shape[-1] == n_mels else ''}")
    if mel.shape[-2] > n_fft // 2 + 1:
        raise AudioError(f"mel_to_wave: {mel.shape[-2]} mel bands is more than the {n_fft // 2 + 1} bins of "
                         f"n_fft={n_fft}; is the mel (frames, n_mels)? pass (n_mels, frames)")
    if not torch.isfinite(mel).all():
        raise AudioError("mel_to_wave: the mel contains NaN or inf")
    mag = torch.exp(mel) if log else mel
    fb = _mel_basis(int(sr), n_fft, mel.shape[-2], float(fmin), float(fmax or sr / 2), mel.device)
    linear = (torch.linalg.pinv(fb.T) @ mag.float()).clamp_min(0.0)  # (..., freq, frames)
    return griffin_lim(linear, n_fft, hop, n_iter, length)
