"""Voice and accompaniment activity detectors for filtering self-labelled songs (Wang et al. 2.1.1).

A 2-D CRNN reads a track's log-magnitude STFT and predicts, per frame, the share of the
mixture's energy that one source holds (its target: :func:`energy_ratio`, 0 where everything
is silent), trained with binary cross-entropy on the labelled songs. Two are trained: one for
vocals, one for accompaniment. A self-labelled song's frame is *poor* when the accompaniment
detector hears accompaniment in its vocal track or the vocal detector hears voice in its
accompaniment track (:func:`poor_frames`); songs with the smallest share of poor frames are
kept (:func:`keep_best`).

Shapes: waveforms ``(batch, samples)`` at 16 kHz; STFT 1024 / 256 as the separator;
predictions ``(batch, frames)`` in [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .. import audio
from ..fp32 import fp32_rnn

__all__ = ["energy_ratio", "CRNN", "log_magnitude", "poor_frames", "keep_best"]


def _frame_energy(wav: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    return audio.stft(wav, n_fft, hop).abs().pow(2).sum(dim=-2)               # (batch, frames)


def energy_ratio(source: torch.Tensor, mixture: torch.Tensor, *, n_fft: int = 1024, hop: int = 256,
                 silence: float = 1e-6) -> torch.Tensor:
    """Per-frame ``E_source / E_mixture`` clipped to [0, 1]; 0 where the mixture's frame energy
    is below ``silence`` times its loudest frame (both sources silent). ``(batch, samples)``
    waveforms -> ``(batch, frames)``."""
    e_s, e_m = _frame_energy(source, n_fft, hop), _frame_energy(mixture, n_fft, hop)
    quiet = e_m <= silence * e_m.amax(dim=-1, keepdim=True).clamp_min(1e-20)
    return torch.where(quiet, torch.zeros_like(e_m), (e_s / e_m.clamp_min(1e-20)).clamp(0, 1))


def log_magnitude(wav: torch.Tensor, n_fft: int = 1024, hop: int = 256, floor_db: float = 80.0) -> torch.Tensor:
    """The CRNN's input: ``(batch, samples)`` -> ``(batch, 1, frames, freq)`` power in dB
    relative to each clip's loudest bin, floored at ``-floor_db`` and mapped to [0, 1].

    Relative to the clip, as the targets are (:func:`energy_ratio` is level-free and calls a
    frame silent relative to the loudest one), so a detector cannot key on a track's level."""
    power = audio.stft(wav, n_fft, hop).abs().pow(2)
    ref = power.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-20)
    db = 10 * torch.log10(power / ref + 10 ** (-floor_db / 10))
    return (1 + db / floor_db).transpose(1, 2)[:, None]


class CRNN(nn.Module):
    """Conv (3 x 3, batch norm, ReLU, pooling over frequency only) x ``blocks``, then a
    bidirectional GRU over frames and a per-frame sigmoid: ``(batch, samples)`` ->
    ``(batch, frames)`` predicted energy ratios."""

    def __init__(self, n_freq: int = 513, channels: int = 16, blocks: int = 3, hidden: int = 64,
                 n_fft: int = 1024, hop: int = 256):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        layers, c, f = [], 1, n_freq
        for _ in range(blocks):
            layers += [nn.Conv2d(c, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(),
                       nn.MaxPool2d((1, 4))]
            c, f = channels, f // 4
        self.conv = nn.Sequential(*layers)
        self.gru = nn.GRU(channels * f, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, 1)

    def logits(self, wav: torch.Tensor) -> torch.Tensor:
        x = self.conv(log_magnitude(wav, self.n_fft, self.hop))                # (b, c, t, f')
        x = x.permute(0, 2, 1, 3).flatten(2)                                     # (b, t, c * f')
        return self.out(fp32_rnn(self.gru, x)[0]).squeeze(-1)                   # (b, t)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(wav))


@torch.no_grad()
def poor_frames(vad_voice: CRNN, vad_acc: CRNN, vocal_track: torch.Tensor, acc_track: torch.Tensor, *,
                threshold: float = 0.2) -> torch.Tensor:
    """Section 2.1.1: the fraction of each song's frames where the accompaniment detector finds
    more than ``threshold`` of accompaniment energy in the (self-labelled) vocal track, or the
    voice detector more than ``threshold`` of voice in the accompaniment track.
    ``(batch, samples)`` tracks -> ``(batch,)`` fractions."""
    vad_voice.eval(), vad_acc.eval()
    poor = (vad_acc(vocal_track) > threshold) | (vad_voice(acc_track) > threshold)
    return poor.float().mean(dim=-1)


def keep_best(fractions, top: float) -> np.ndarray:
    """Indices of the ``top`` share (e.g. 0.5) of songs with the fewest poor frames, best first
    (ties by index: deterministic)."""
    f = np.asarray(fractions, dtype=np.float64)
    if not 0 < top <= 1:
        raise ValueError(f"keep_best: top must be in (0, 1], got {top}")
    n = max(1, int(round(top * len(f))))
    return np.lexsort((np.arange(len(f)), f))[:n]
