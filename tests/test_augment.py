"""voicebook.data.augment: the separator's training windows and the data noise of Wang et al. 2.1.2."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from voicebook.data.augment import Augment, SeparationCrops

SR = 8000


def songs(n=3, seconds=3.0):
    rng = np.random.default_rng(0)
    return [rng.standard_normal((2, int(seconds * SR))).astype(np.float32) * (k + 1) for k in range(n)]


def test_plain_windows_are_aligned_cuts_of_one_song():
    pool = songs()
    data = SeparationCrops(pool, SR, 1.0, None, seed=1)
    for i in range(5):
        mix, src = data[i]
        assert mix.shape == (SR,) and src.shape == (2, SR)
        torch.testing.assert_close(mix, src.sum(0))
        hits = [(k, s) for k, song in enumerate(pool) for s in range(song.shape[1] - SR + 1)
                if np.array_equal(song[0, s:s + SR], src[0].numpy())]
        assert len(hits) == 1
        k, s = hits[0]
        assert np.array_equal(pool[k][1, s:s + SR], src[1].numpy())          # same song, same window
    a, b = data[3], data[3]
    assert torch.equal(a[1], b[1])                                          # a function of (seed, i)
    assert not torch.equal(SeparationCrops(pool, SR, 1.0, None, seed=2)[3][1], a[1])


def test_random_mixing_and_gain():
    pool = songs()
    data = SeparationCrops(pool, SR, 1.0, Augment(p_mix=1.0, gain_db=0.0, p_shift=0, p_lowpass=0, p_eq=0), seed=0)
    mixed = 0
    for i in range(20):
        _, src = data[i]
        voc_song = [k for k, s in enumerate(pool) if np.isclose(np.std(s[0]), src[0].std().item(), rtol=0.2)]
        acc_song = [k for k, s in enumerate(pool) if np.isclose(np.std(s[1]), src[1].std().item(), rtol=0.2)]
        mixed += voc_song != acc_song
    assert mixed >= 8                                       # 2 in 3 draws pick another song's backing
    gained = SeparationCrops(pool, SR, 1.0, Augment(p_mix=0, gain_db=12.0, p_shift=0, p_lowpass=0, p_eq=0))
    ratios = [float(s[0].std() / s[1].std()) / 1.0 for _, s in (gained[i] for i in range(20))]
    assert max(ratios) / min(ratios) > 2                    # the vocals' level varies, the backing's not


def test_pitch_shift_low_pass_and_padding():
    t = np.arange(2 * SR) / SR
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    pool = [np.stack([tone, 0.1 * tone])]
    shifted = SeparationCrops(pool, SR, 1.0, Augment(p_mix=0, gain_db=0, semitones=2, p_shift=1.0, p_lowpass=0,
                                                     p_eq=0), seed=0)
    steps = set()
    for i in range(8):
        _, src = shifted[i]
        x = src[0].numpy()[1000:-1000]
        spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
        f0 = np.argmax(spec) * SR / len(x)
        k = 12 * np.log2(f0 / 440)
        assert abs(k - round(k)) < 0.25 and -2 <= round(k) <= 2, f0      # a whole number of semitones
        steps.add(round(k))
    assert len(steps) >= 2                                  # several shifts were drawn
    low = SeparationCrops([np.stack([np.random.default_rng(0).standard_normal(2 * SR).astype(np.float32)] * 2)], SR,
                          1.0, Augment(p_mix=0, gain_db=0, p_shift=0, p_lowpass=1.0, lowpass_hz=(500.0, 500.0), p_eq=0))
    _, src = low[0]
    spec = np.abs(np.fft.rfft(src[0].numpy())) ** 2
    hz = np.arange(len(spec)) * SR / 2 / (len(spec) - 1)
    assert spec[hz > 2000].mean() < 0.02 * spec[hz < 250].mean()   # 2nd order: -24 dB per octave
    short = SeparationCrops([np.ones((2, SR // 2), np.float32)], SR, 1.0, None)
    _, src = short[0]
    assert src.shape == (2, SR) and float(src[:, SR // 2:].abs().max()) == 0.0
    with pytest.raises(ValueError, match="not \\(2, samples\\) stems"):
        SeparationCrops([np.ones(10)], SR, 1.0)


def test_pitch_shift_moves_a_tone_by_whole_semitones_at_16k():
    from voicebook.data.augment import _ratio, pitch_shift

    sr = 16000
    tone = torch.sin(2 * np.pi * 440 * torch.arange(2 * sr) / sr)
    for steps in (-3, -1, 2, 4):
        assert abs(1200 * np.log2(float(_ratio(steps))) - 100 * steps) < 5     # the fraction: within 5 cents
        y = pitch_shift(tone, steps).numpy()
        assert y.shape == tone.shape
        x = y[2000:-2000]
        f0 = np.argmax(np.abs(np.fft.rfft(x * np.hanning(len(x))))) * sr / len(x)
        assert abs(1200 * np.log2(f0 / 440) - 100 * steps) < 15, (steps, f0)   # bin width ~0.6 Hz
