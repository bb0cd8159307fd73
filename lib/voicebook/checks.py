"""Input validation with messages that say what was wrong, where, and what was expected.

Every public function that takes audio calls :func:`check_wave` first (images:
:func:`check_image_range`), so a user who passes stereo, silence, NaN or the wrong sample rate
learns it at the call, not three cells later as a shape error deep inside a model.
"""

from __future__ import annotations

import numpy as np
import torch


class AudioError(ValueError):
    """Audio that cannot be used as asked (wrong rate, channels, length, values, file)."""


class CorpusError(ValueError):
    """A data folder that is missing, incomplete, or not the corpus it claims to be."""


def _as_samples(x):
    """A tensor as it is (detached), anything else as a numpy array."""
    return x.detach() if isinstance(x, torch.Tensor) else np.asarray(x)


def _kind(x) -> tuple[bool, bool]:
    """(integer samples, real samples) of a tensor or array."""
    if isinstance(x, torch.Tensor):
        integer = not (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool)
        return integer, integer or x.is_floating_point()
    integer = np.issubdtype(x.dtype, np.integer)
    return integer, integer or np.issubdtype(x.dtype, np.floating)


def _nonfinite_and_peak(x) -> tuple[int, float]:
    """(number of NaN / infinite samples, peak ``|x|`` of the finite ones). A tensor is reduced
    where it lives and only these two numbers cross to the host (on a GPU, no copy of the clip)."""
    if isinstance(x, torch.Tensor):
        x = x if x.is_floating_point() else x.double()
        finite = torch.isfinite(x)
        bad, peak = torch.stack([(~finite).sum().double(), torch.where(finite, x.abs(), 0).max().double()]).tolist()
        return int(bad), peak
    finite = np.isfinite(x)
    return int(x.size - finite.sum()), float(np.max(np.abs(np.where(finite, x, 0))))


def check_wave(
    wav,
    name: str = "wav",
    *,
    sr: int | None = None,
    expected_sr: int | None = None,
    mono: bool = True,
    min_seconds: float | None = None,
    min_samples: int | None = None,
    allow_silence: bool = False,
    silence_db: float = -80.0,
):
    """Check a waveform and return it unchanged, or raise :class:`AudioError`.

    Args:
        wav: samples, numpy or torch; mono is ``(samples,)`` or ``(batch, samples)``.
        name: how the error message names the input (a file path or an argument name).
        sr, expected_sr: the clip's sample rate in Hz and the one required.
        mono: if true, reject a trailing channel axis of size > 1 (a ``(samples, channels)`` array).
        min_seconds / min_samples: shortest acceptable clip (e.g. the model's window).
        allow_silence: if false, reject a clip whose peak is below ``silence_db`` dBFS.
    """
    if expected_sr is not None and sr is not None and int(sr) != int(expected_sr):
        raise AudioError(f"{name}: sample rate is {sr} Hz, expected {expected_sr} Hz (resample it first: voicebook.audio.resample)")
    x = _as_samples(wav)
    integer, real = _kind(x)
    if 0 in x.shape:
        raise AudioError(f"{name}: empty audio (0 samples)")
    if not real:
        raise AudioError(f"{name}: expected real-valued samples, got dtype {x.dtype}")
    if mono and x.ndim == 2 and x.shape[1] in (2, 3, 4, 6, 8) and x.shape[0] > x.shape[1]:
        raise AudioError(f"{name}: looks like {x.shape[1]}-channel audio of shape {tuple(x.shape)}; expected mono (samples,) (mix down with wav.mean(axis=1))")
    if x.ndim > 2:
        raise AudioError(f"{name}: expected (samples,) or (batch, samples), got shape {tuple(x.shape)}")
    bad, peak = _nonfinite_and_peak(x)
    if bad:
        raise AudioError(f"{name}: {bad} samples are NaN or infinite")
    n = x.shape[-1]
    if min_samples is not None and n < min_samples:
        raise AudioError(f"{name}: {n} samples is shorter than the {min_samples} samples required")
    if min_seconds is not None and sr is not None and n < min_seconds * sr:
        raise AudioError(f"{name}: {n / sr:.3f} s is shorter than the {min_seconds:.3f} s required")
    if not allow_silence:
        scale = 32768.0 if integer else 1.0
        if peak / scale <= 10 ** (silence_db / 20):
            raise AudioError(f"{name}: the clip is silent (peak {20 * np.log10(peak / scale + 1e-30):.1f} dBFS, threshold {silence_db} dBFS)")
    return wav


def check_image_range(x, name: str = "images"):
    """Images (numpy or torch) as they are if uint8 (0-255) or float, finite and in [0, 1]
    (1e-3 of rounding slack); else ValueError saying what was found. A frame cast with
    ``astype(float)`` is still 0-255, and would be read as if its peak were 1."""
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.dtype == np.uint8 or a.size == 0:
        return x
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"{name}: images must be uint8 (0-255) or float in [0, 1], got dtype {a.dtype}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: the image holds NaN or infinite values")
    lo, hi = float(a.min()), float(a.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(f"{name}: float images must be in [0, 1], got values in [{lo:.3g}, {hi:.3g}] "
                         "(divide by 255, or pass uint8 0-255)")
    return x
