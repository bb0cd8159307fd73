"""Evaluating an AutoVC or CycleAutoVC (chapter 1): self-reconstruction error, content codes for
the leakage probe, and conversions rendered as audio for the judges and the listening tables.

Mels here are the chapter's normalised, time-major ``(frames, n_mels)`` log-mels at
:data:`voicebook.data.features.AUTOVC_MEL` (16 kHz, hop 256) made by
:func:`voicebook.models.cycle_autovc.prepare_mels`; embeddings are ``{speaker: (dim_emb,)}``.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch

from .. import audio
from ..checks import check_wave
from ..data.features import AUTOVC_MEL
from .autovc import content_codes, convert
from .cycle_autovc import prepare_mels, restore_log_mel

__all__ = ["mel_to_audio", "wave_to_mel", "convert_wave", "reconstruction_error", "codes_of", "convert_pairs"]


def mel_to_audio(mel: torch.Tensor, stats, *, n_iter: int = 60, device=None) -> torch.Tensor:
    """A normalised ``(frames, n_mels)`` mel -> a ``(samples,)`` 16 kHz waveform on the CPU.

    Undoes the normalisation (``stats`` from ``prepare_mels``), then Griffin-Lim with
    ``n_iter`` iterations through :func:`voicebook.audio.mel_to_wave`, on ``device`` (default:
    the mel's). This is the vocoder the chapter uses in place of AutoVC's WaveNet.
    """
    s = AUTOVC_MEL
    log_mel = restore_log_mel(mel.to(device or mel.device), stats)
    wav = audio.mel_to_wave(log_mel, s["sr"], s["n_fft"], s["hop"], s["fmin"], s["fmax"], n_iter=n_iter,
                            n_mels=s["n_mels"])
    return wav.cpu()


def wave_to_mel(wav, sr: int, stats, *, min_seconds: float = 0.25, name: str = "wav") -> torch.Tensor:
    """A mono 16 kHz waveform ``(samples,)`` -> the chapter's normalised ``(frames, n_mels)`` mel.

    Raises :class:`voicebook.checks.AudioError` naming ``name`` for a rate other than 16 kHz,
    stereo, NaN, silence, or a clip shorter than ``min_seconds`` (default: a quarter second,
    enough frames for the content encoder's convolutions and down-sampling).
    """
    s = AUTOVC_MEL
    check_wave(wav, name, sr=sr, expected_sr=s["sr"], mono=True, min_seconds=min_seconds)
    x = audio.to_tensor(wav)
    if x.dim() != 1:
        raise audio.AudioError(f"{name}: expected a mono waveform (samples,), got shape {tuple(x.shape)}")
    return prepare_mels({"x": audio.log_mel(x, **AUTOVC_MEL)}, stats)[0]["x"]


def convert_wave(model, wav, sr: int, emb_src: torch.Tensor, emb_tgt: torch.Tensor, stats, *,
                 n_iter: int = 60) -> torch.Tensor:
    """End to end, as a user would convert a recording: 16 kHz waveform of the source speaker
    -> log-mel -> ``C(X, B)`` -> Griffin-Lim -> ``(samples,)`` waveform in the target's voice."""
    mel = wave_to_mel(wav, sr, stats).to(next(model.parameters()).device)
    return mel_to_audio(convert(model, mel, emb_src, emb_tgt), stats, n_iter=n_iter)


def reconstruction_error(model, items, mels: Mapping[str, torch.Tensor],
                         embeddings: Mapping[str, torch.Tensor]) -> float:
    """Mean squared error (normalised log-mel units) of the self-reconstruction
    ``C(X_A, A)`` of whole utterances ``items`` (``.id``, ``.speaker``): the "too narrow"
    symptom of section 4.2."""
    errors = []
    for u in items:
        x = mels[u.id]
        e = embeddings[u.speaker]
        y = convert(model, x, e, e).cpu()
        errors.append(torch.mean((y - x) ** 2).item())
    if not errors:
        raise ValueError("reconstruction_error: no utterances")
    return float(sum(errors) / len(errors))


def codes_of(model, items, mels: Mapping[str, torch.Tensor], embeddings: Mapping[str, torch.Tensor]) -> list:
    """The content codes ``(frames // freq, 2 dim_neck)`` of each utterance (CPU), for
    :func:`voicebook.conversion.speaker_leakage`."""
    return [content_codes(model, mels[u.id], embeddings[u.speaker]).cpu() for u in items]


def convert_pairs(model, pairs: Sequence[tuple], mels: Mapping[str, torch.Tensor],
                  embeddings: Mapping[str, torch.Tensor], stats, *, n_iter: int = 60) -> tuple[list, list]:
    """Convert each ``(source, target)`` pair's source utterance to the target's speaker.

    Returns ``(converted mels (frames, n_mels), waveforms (samples,) at 16 kHz)``.
    """
    out_mels, wavs = [], []
    for src, tgt in pairs:
        y = convert(model, mels[src.id], embeddings[src.speaker], embeddings[tgt.speaker])
        out_mels.append(y.cpu())
        wavs.append(mel_to_audio(y, stats, n_iter=n_iter))
    return out_mels, wavs
