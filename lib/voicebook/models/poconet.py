"""A PoCoNet-style separator (Isik et al. 2020), as Wang et al. use it for singing voice (section 2.2).

The mixture's STFT (1024 points, hop 256) enters as real and imaginary parts, with the
frequency-positional embedding of eq. (1) appended to every time-frequency bin; a 2-D U-Net
of DenseNet blocks (3 conv + batch-norm + ReLU layers each, 3 x 3 kernels, causal in time,
not in frequency) and self-attention blocks predicts one complex ratio mask per source; the
masked spectrograms go back to waveforms by the inverse STFT.

Shapes: spectrograms ``(batch, freq, frames)`` complex; the network works on ``(batch,
channels, frames, freq)`` maps. Causality: every layer's output at frame ``t`` depends on
input frames ``<= t`` only (in eval mode; batch norm in training mode pools statistics over
the whole batch, as in the paper). Sizes: ``levels`` (depth of the U-Net) and ``max_ch``
(channels double from ``base_ch`` per level, capped there) set the parameter count.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .. import audio

__all__ = ["N_FFT", "HOP", "freq_embedding", "CausalConv", "DenseBlock", "TimeAttention", "PoCoNet",
           "apply_masks", "separate"]

N_FFT, HOP = 1024, 256            # section 3.2


def freq_embedding(n_freq: int, k: int = 10) -> torch.Tensor:
    """Eq. (1): ``rho(t, f) = (cos(pi f / F), cos(2 pi f / F), ..., cos(2^(k-1) pi f / F))``
    for bins ``f = 0 .. n_freq - 1`` and ``F = n_freq - 1`` (the band edge) -> ``(k, n_freq)``.
    The same for every frame ``t``."""
    f = torch.arange(n_freq, dtype=torch.float64) / max(n_freq - 1, 1)
    return torch.stack([torch.cos(2.0 ** i * math.pi * f) for i in range(k)]).float()


class CausalConv(nn.Module):
    """3 x 3 (or ``kernel``) convolution over ``(frames, freq)`` padded on the past side of time
    only and on both sides of frequency: output frame ``t`` sees input frames ``t - 2 .. t``
    (with ``stride=(2, 2)``: output ``s`` sees frames ``2s - 2 .. 2s`` and halves both axes)."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, stride: tuple[int, int] = (1, 1)):
        super().__init__()
        self.kernel = kernel
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel
        # time: k - 1 past frames, none ahead; with stride 2 output s then sees frames 2s-2 .. 2s,
        # so the nearest-neighbour upsampling back to frames 2s and 2s+1 stays causal.
        return self.conv(F.pad(x, (k // 2, k // 2, k - 1, 0)))


class DenseBlock(nn.Module):
    """Three causal conv + batch norm + ReLU layers, each fed the block's input and every earlier
    layer's output (DenseNet connections); returns the last layer's ``c_out`` channels."""

    def __init__(self, c_in: int, c_out: int, layers: int = 3):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(CausalConv(c_in + i * c_out, c_out), nn.BatchNorm2d(c_out), nn.ReLU())
            for i in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for layer in self.layers:
            feats.append(layer(torch.cat(feats, dim=1)))
        return feats[-1]


class TimeAttention(nn.Module):
    """Causal self-attention across frames (PoCoNet's attention block): the maps are squeezed to
    ``ch`` channels (5), each frame's ``ch x freq`` values projected to a ``key_dim`` (20) key
    and query; every frame attends to itself and earlier frames; the attended ``ch``-channel
    maps are appended to the input -> ``c_in + ch`` channels."""

    def __init__(self, c_in: int, n_freq: int, ch: int = 5, key_dim: int = 20):
        super().__init__()
        self.squeeze = nn.Sequential(nn.Conv2d(c_in, ch, 1), nn.BatchNorm2d(ch), nn.ReLU())
        self.query, self.key = nn.Linear(ch * n_freq, key_dim), nn.Linear(ch * n_freq, key_dim)
        self.ch = ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, t, f = x.shape
        v = self.squeeze(x).permute(0, 2, 1, 3).reshape(b, t, self.ch * f)        # (batch, frames, ch*freq)
        scores = self.query(v) @ self.key(v).transpose(1, 2) / math.sqrt(self.query.out_features)
        future = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        att = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1) @ v
        return torch.cat([x, att.reshape(b, t, self.ch, f).permute(0, 2, 1, 3)], dim=1)


class PoCoNet(nn.Module):
    """The U-Net: ``levels`` down steps (causal stride-2 convolutions over time and frequency),
    a DenseNet block (and an attention block where ``attention``) at every scale, ``levels`` up
    steps with skip connections; a 1 x 1 convolution gives ``2 x sources`` maps: the real and
    imaginary parts of each source's complex ratio mask.

    Input: mixture spectrogram ``(batch, n_freq, frames)`` complex -> masks ``(batch, sources,
    n_freq, frames)`` complex. ``n_freq`` = n_fft / 2 + 1; the maps are zero-padded in frequency
    (and time) to a multiple of ``2^levels`` and cropped back.
    """

    def __init__(self, levels: int = 3, base_ch: int = 32, max_ch: int = 256, sources: int = 2, k: int = 10,
                 n_freq: int = N_FFT // 2 + 1, attention: bool = True):
        super().__init__()
        self.levels, self.sources, self.n_freq = levels, sources, n_freq
        self.register_buffer("emb", freq_embedding(n_freq, k), persistent=False)
        chans = [min(base_ch * 2 ** i, max_ch) for i in range(levels + 1)]
        self.padded_freq = -(-n_freq // 2 ** levels) * 2 ** levels
        freqs = [self.padded_freq // 2 ** i for i in range(levels + 1)]

        def block(c_in, c_out, n_f):
            dense = DenseBlock(c_in, c_out)
            return nn.ModuleList([dense, TimeAttention(c_out, n_f)]) if attention else nn.ModuleList([dense])

        att = 5 if attention else 0
        self.enc = nn.ModuleList(block(2 + k if i == 0 else chans[i], chans[i], freqs[i]) for i in range(levels))
        self.down = nn.ModuleList(CausalConv(chans[i] + att, chans[i + 1], stride=(2, 2)) for i in range(levels))
        self.mid = block(chans[levels], chans[levels], freqs[levels])
        self.up = nn.ModuleList(nn.Conv2d(chans[i + 1] + att, chans[i], 1) for i in range(levels))
        self.dec = nn.ModuleList(block(2 * chans[i] + att, chans[i], freqs[i]) for i in range(levels))
        self.out = nn.Conv2d(chans[0] + att, 2 * sources, 1)

    @staticmethod
    def _run(blocks: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
        for m in blocks:
            x = m(x)
        return x

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        if not torch.is_complex(spec) or spec.ndim != 3 or spec.shape[1] != self.n_freq:
            raise ValueError(f"PoCoNet: expected a complex (batch, {self.n_freq}, frames) spectrogram, "
                             f"got {tuple(spec.shape)} {spec.dtype}")
        b, n_f, t = spec.shape
        step = 2 ** self.levels
        t_pad = -(-t // step) * step
        x = torch.stack([spec.real, spec.imag], dim=1).transpose(2, 3)                    # (b, 2, t, f)
        x = torch.cat([x, self.emb[None, :, None, :].expand(b, -1, t, -1)], dim=1)        # eq. (1) per bin
        x = F.pad(x, (0, self.padded_freq - n_f, 0, t_pad - t))                           # future/top padding
        skips = []
        for enc, down in zip(self.enc, self.down):
            x = self._run(enc, x)
            skips.append(x)
            x = down(x)
        x = self._run(self.mid, x)
        for i in reversed(range(self.levels)):
            x = F.interpolate(self.up[i](x), scale_factor=2, mode="nearest")             # frame 2s, 2s+1 <- s
            x = self._run(self.dec[i], torch.cat([x, skips[i]], dim=1))
        m = self.out(x).float()[:, :, :t, :n_f].reshape(b, self.sources, 2, t, n_f)   # fp32 under autocast: no bf16 complex
        return torch.complex(m[:, :, 0], m[:, :, 1]).transpose(2, 3)                     # (b, sources, f, t)


def apply_masks(masks: torch.Tensor, mix_spec: torch.Tensor) -> torch.Tensor:
    """Complex ratio masks ``(batch, sources, freq, frames)`` times the mixture ``(batch, freq,
    frames)`` -> the sources' spectrograms (complex multiplication: magnitude and phase)."""
    return masks * mix_spec[:, None]


def separate(model: PoCoNet, mix: torch.Tensor) -> torch.Tensor:
    """Mixture waveforms ``(batch, samples)`` -> source waveforms ``(batch, sources, samples)``:
    STFT, masks, inverse STFT (section 2.2)."""
    spec = audio.stft(mix, N_FFT, HOP)
    est = apply_masks(model(spec), spec)                                   # (batch, sources, freq, frames)
    wav = audio.istft(est.flatten(0, 1), N_FFT, HOP, length=mix.shape[-1])
    return wav.reshape(*est.shape[:2], -1)
