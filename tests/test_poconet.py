"""voicebook.models.poconet and losses.separation_loss (Wang et al. section 2.2, eqs. 1-3):
the positional embedding, causality in time, the complex-mask round trip, the loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from voicebook import audio, losses
from voicebook.metrics import song_sdr
from voicebook.models.poconet import HOP, N_FFT, PoCoNet, apply_masks, freq_embedding, separate

SR = 16000


def test_positional_embedding_is_eq1():
    e = freq_embedding(513, k=10)
    assert e.shape == (10, 513)
    for i, f in [(0, 0), (0, 512), (1, 256), (3, 100), (9, 7)]:
        assert float(e[i, f]) == pytest.approx(math.cos(2 ** i * math.pi * f / 512), abs=1e-6)
    assert torch.allclose(e[:, 0], torch.ones(10)) and float(e[0, 512]) == pytest.approx(-1.0)


def _small(**kw):
    torch.manual_seed(0)
    return PoCoNet(levels=2, base_ch=4, max_ch=8, **kw).eval()


def test_outputs_are_causal_in_time_not_in_frequency():
    model = _small()
    spec = torch.randn(1, 513, 24, dtype=torch.complex64)
    with torch.no_grad():
        before = model(spec)
        future = spec.clone()
        future[:, :, 15:] += 3 * torch.randn(1, 513, 9, dtype=torch.complex64)   # change frames 15..23
        after = model(future)
        high = spec.clone()
        high[:, 400:, :] *= 5                                                      # change high bins only
        other = model(high)
    assert before.shape == (1, 2, 513, 24) and torch.is_complex(before)
    torch.testing.assert_close(after[..., :15], before[..., :15])                 # the past is untouched
    assert not torch.allclose(after[..., 15:], before[..., 15:])
    assert not torch.allclose(other[:, :, :100], before[:, :, :100])               # frequency context is used


def test_ideal_complex_masks_give_the_sources_back():
    rng = np.random.default_rng(0)
    t = np.arange(2 * SR) / SR
    voice = 0.4 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 2 * t))
    acc = 0.2 * rng.standard_normal(len(t))
    refs = torch.tensor(np.stack([voice, acc]), dtype=torch.float32)
    mix = refs.sum(0, keepdim=True)
    mix_spec = audio.stft(mix, N_FFT, HOP)
    ideal = audio.stft(refs, N_FFT, HOP) / mix_spec                                  # S_j / X
    est = audio.istft(apply_masks(ideal[None], mix_spec)[0], N_FFT, HOP, length=refs.shape[1])
    assert (song_sdr(refs.numpy(), est.numpy(), SR) > 60).all()


def test_separation_runs_end_to_end_and_learns():
    model = _small().train()
    mix = torch.randn(2, 8000)
    out = separate(model, mix)
    assert out.shape == (2, 2, 8000)
    loss = losses.separation_loss(out, torch.stack([mix, 0 * mix], dim=1))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    with pytest.raises(ValueError, match="complex"):
        model(torch.randn(1, 513, 10))


def test_separation_loss_is_eqs_2_and_3():
    torch.manual_seed(1)
    est, ref = torch.randn(2, 2, 4096), torch.randn(2, 2, 4096)
    window = torch.hann_window(1024)

    def mag(x):
        return torch.stft(x, 1024, 256, 1024, window, return_complex=True).abs()

    by_source = [(est[:, s] - ref[:, s]).abs().mean() + 0.5 * (mag(est[:, s]) - mag(ref[:, s])).abs().mean()
                 for s in range(2)]
    expected = 1.0 * by_source[0] + 2.0 * by_source[1]
    got = losses.separation_loss(est, ref, weights=(1.0, 2.0), lambda_spec=0.5)
    assert float(got) == pytest.approx(float(expected), rel=1e-6)
    assert float(losses.separation_loss(ref, ref)) == 0.0
    with pytest.raises(ValueError, match="separation_loss"):
        losses.separation_loss(est, ref[:, :1])
